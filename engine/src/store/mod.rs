//! Decision runs, kept as immutable Parquet files next to the data.
//!
//! A run is one file, `decisions/<run_id>.parquet`, stored whole (a local dataset writes
//! a temporary file and renames it): a crash mid-write leaves no partial run visible,
//! and no run ever rewrites another. The run's summary travels in the same file's
//! footer, so a run and its summary appear together or not at all.
//!
//! Storing a run does not serve it. A run is served once it is *published*: each
//! publication is a small file of its own, `decisions/published/<time>-<run_id>.json`,
//! never rewritten, and the newest names the published run. Experiments (a past as-of,
//! a trial policy) are stored and queryable in `decision_history`, never served by
//! accident.

pub mod approvals;
mod batch;
pub mod jobs;
mod numbered_log;
pub mod overrides;
mod overrides_table;
pub mod webhooks;

pub use overrides_table::{OverridesTable, overrides_schema};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::SessionContext;
use parquet::arrow::ArrowWriter;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use crate::decision::{Changes, Decision, WrongCalls};
use crate::error::{EngineError, Result};
use crate::parquet_io::writer_properties;
use crate::storage::Storage;

pub use batch::{decisions_batch, decisions_schema, read_decisions};

const SUMMARY_KEY: &str = "assay.run";
/// Every run's rows, as a table.
const HISTORY: &str = "decision_history";

/// What a run decided, in numbers: stored as JSON in the run file's footer, and served
/// as it is (`GET /v1/runs`, `assay decide --format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    pub run_id: String,
    pub as_of: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub policy_version: String,
    pub model_version: String,
    /// Styles decided (pooled rows).
    pub styles: usize,
    /// All rows: pooled plus per market.
    pub rows: usize,
    pub keep: usize,
    pub drop: usize,
    pub test: usize,
    #[serde(flatten)]
    pub wrong_calls: WrongCalls,
    /// Problems in the input that did not stop the run.
    pub warnings: Vec<String>,
    /// The published run this one followed: its calls were held unless reversed, and
    /// the rows' `previous_verdict` are its verdicts (absent for a first run or a look
    /// back).
    #[serde(default)]
    pub previous_run_id: Option<String>,
    /// How the calls differ from that run's.
    #[serde(flatten)]
    pub changes: Changes,
}

impl RunSummary {
    /// Reads a summary as a footer holds it. Footers written before the summary was
    /// flat hold `wrong_calls` and `changes` as objects of their own.
    fn from_footer(text: &str) -> serde_json::Result<Self> {
        let mut value: serde_json::Value = serde_json::from_str(text)?;
        if let Some(fields) = value.as_object_mut() {
            for nested in ["wrong_calls", "changes"] {
                if let Some(serde_json::Value::Object(inner)) = fields.remove(nested) {
                    fields.extend(inner);
                }
            }
        }
        serde_json::from_value(value)
    }
}

/// A run made the one buying systems and merchandisers see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub run_id: String,
    pub published_at: DateTime<Utc>,
    /// Who published it: a token's name, or the command.
    pub by: String,
}

/// A run with its rows.
#[derive(Debug, Clone)]
pub struct DecisionRun {
    pub summary: RunSummary,
    pub decisions: Vec<Decision>,
}

impl DecisionRun {
    /// The run's rows as they are stored and as `decision_history` holds them.
    ///
    /// # Errors
    /// A row that does not fit its column.
    pub fn batch(
        &self,
    ) -> std::result::Result<arrow::array::RecordBatch, Box<dyn std::error::Error + Send + Sync>>
    {
        decisions_batch(&self.summary, &self.decisions)
    }
}

pub struct DecisionStore {
    storage: Storage,
    /// Summaries read from run footers, by key: a run file is never rewritten, so a
    /// listing reads only the footers of runs it has not seen (on S3 each is a request).
    summaries: Mutex<HashMap<String, RunSummary>>,
}

/// The runs' folder in the dataset.
const DIR: &str = "decisions";
/// The publications' folder.
const PUBLISHED: &str = "decisions/published";

impl DecisionStore {
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            summaries: Mutex::default(),
        }
    }

    /// Where the runs are, for messages.
    pub fn location(&self) -> String {
        self.storage.display(DIR)
    }

    fn run_key(run_id: &str) -> String {
        format!("{DIR}/{run_id}.parquet")
    }

    /// Writes a run atomically.
    ///
    /// # Errors
    /// The store cannot be written, or a run of that id exists.
    pub fn write_run(&self, run: &DecisionRun) -> Result<()> {
        let key = Self::run_key(&run.summary.run_id);
        let batch = run.batch().map_err(|e| self.err(e.to_string()))?;
        let mut writer =
            ArrowWriter::try_new(Vec::new(), decisions_schema(), Some(writer_properties()))?;
        let summary = serde_json::to_string(&run.summary).map_err(|e| self.err(e.to_string()))?;
        writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
            SUMMARY_KEY.to_string(),
            summary,
        ));
        writer.write(&batch)?;
        if !self.storage.create(&key, writer.into_inner()?.into())? {
            return Err(self.err(format!("run {} already exists", run.summary.run_id)));
        }
        Ok(())
    }

    /// Every run's summary, oldest first.
    ///
    /// # Errors
    /// The directory cannot be listed or a run file's footer cannot be read.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>> {
        let mut runs = Vec::new();
        for key in self.run_files()? {
            runs.push(self.read_summary(&key)?);
        }
        runs.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        Ok(runs)
    }

    /// The newest run, if any.
    pub fn latest_run(&self) -> Result<Option<RunSummary>> {
        Ok(self.list_runs()?.pop())
    }

    /// One run's summary.
    ///
    /// # Errors
    /// No such run, or its footer cannot be read.
    pub fn run_summary(&self, run_id: &str) -> Result<RunSummary> {
        let key = Self::run_key(run_id);
        if !self.storage.exists(&key)? {
            return Err(EngineError::RunNotFound {
                run_id: run_id.into(),
            });
        }
        self.read_summary(&key)
    }

    /// Makes a stored run the published one.
    ///
    /// # Errors
    /// No such run, or the publication cannot be written.
    pub fn publish(&self, run_id: &str, by: &str) -> Result<Publication> {
        self.run_summary(run_id)?;
        let publication = Publication {
            run_id: run_id.to_owned(),
            published_at: Utc::now(),
            by: by.to_owned(),
        };
        let body = serde_json::to_vec(&publication).map_err(|e| self.err(e.to_string()))?;
        // Names sort by time; the run id keeps two in one millisecond apart.
        let key = format!(
            "{PUBLISHED}/{}-{run_id}.json",
            publication.published_at.format("%Y%m%dT%H%M%S%.6fZ")
        );
        if !self.storage.create(&key, body.into())? {
            return Err(self.err(format!("publication {key} already exists")));
        }
        Ok(publication)
    }

    /// The published run, if any run was ever published.
    ///
    /// # Errors
    /// The publications cannot be listed or the newest cannot be read.
    pub fn published(&self) -> Result<Option<Publication>> {
        let Some(key) = self.publication_keys()?.pop() else {
            return Ok(None);
        };
        self.read_publication(&key).map(Some)
    }

    /// The run published before `run_id` was (the newest publication of another run
    /// older than `run_id`'s newest one): what "changed since the last list" compares
    /// with.
    ///
    /// # Errors
    /// The publications cannot be listed or read.
    pub fn published_before(&self, run_id: &str) -> Result<Option<Publication>> {
        let mut keys = self.publication_keys()?;
        let suffix = format!("-{run_id}.json");
        if let Some(own) = keys.iter().rposition(|k| k.ends_with(&suffix)) {
            keys.truncate(own);
        }
        while let Some(key) = keys.pop() {
            if !key.ends_with(&suffix) {
                return self.read_publication(&key).map(Some);
            }
        }
        Ok(None)
    }

    /// Publication files, oldest first (their names sort by time).
    fn publication_keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .storage
            .list(PUBLISHED)?
            .into_iter()
            .filter(|e| e.key.ends_with(".json"))
            .map(|e| e.key)
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn read_publication(&self, key: &str) -> Result<Publication> {
        let text = self.storage.read(key)?;
        serde_json::from_slice(&text)
            .map_err(|e| self.err(format!("{}: {e}", self.storage.display(key))))
    }

    /// One run's rows.
    ///
    /// # Errors
    /// No such run, or its file cannot be read.
    pub fn read_run(&self, run_id: &str) -> Result<DecisionRun> {
        let key = Self::run_key(run_id);
        if !self.storage.exists(&key)? {
            return Err(EngineError::RunNotFound {
                run_id: run_id.into(),
            });
        }
        let summary = self.read_summary(&key)?;
        let decisions = read_decisions(self.storage.open(&key)?)
            .map_err(|e| self.err(format!("{}: {e}", self.storage.display(&key))))?;
        Ok(DecisionRun { summary, decisions })
    }

    fn run_files(&self) -> Result<Vec<String>> {
        Ok(self
            .storage
            .list(DIR)?
            .into_iter()
            .filter(|e| e.key.ends_with(".parquet") && !e.under(DIR).contains('/'))
            .map(|e| e.key)
            .collect())
    }

    fn read_summary(&self, key: &str) -> Result<RunSummary> {
        let cached = self.lock_summaries().get(key).cloned();
        if let Some(summary) = cached {
            return Ok(summary);
        }
        let summary = self.read_footer(key)?;
        self.lock_summaries()
            .insert(key.to_owned(), summary.clone());
        Ok(summary)
    }

    fn lock_summaries(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunSummary>> {
        self.summaries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_footer(&self, key: &str) -> Result<RunSummary> {
        let path = self.storage.display(key);
        let reader = SerializedFileReader::new(self.storage.open(key)?)
            .map_err(|e| self.err(format!("{path}: {e}")))?;
        let text = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| {
                kv.iter()
                    .find(|e| e.key == SUMMARY_KEY)
                    .and_then(|e| e.value.clone())
            })
            .ok_or_else(|| self.err(format!("{path}: no run summary in its footer")))?;
        RunSummary::from_footer(&text).map_err(|e| self.err(format!("{path}: run summary: {e}")))
    }

    /// Registers `decision_history` (every run's rows), `decisions` (the published
    /// run's rows: what the API serves) and `decision_runs` (one row per run).
    ///
    /// # Errors
    /// The tables cannot be registered.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        ctx.deregister_table(HISTORY)?;
        if self.run_files()?.is_empty() {
            // Not a `MemTable`: Ballista can ship an `EmptyTable` to its executors.
            ctx.register_table(HISTORY, Arc::new(EmptyTable::new(decisions_schema())))?;
        } else {
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            ctx.register_listing_table(
                HISTORY,
                self.storage.table_url(DIR)?,
                options,
                Some(decisions_schema()),
                None,
            )
            .await?;
        }
        let published = self.published()?.map(|p| p.run_id);
        for (name, text) in crate::sql::decision_views(published.as_deref()) {
            ctx.deregister_table(name)?;
            let view = ctx.sql(&text).await?.into_view();
            ctx.register_table(name, view)?;
        }
        Ok(())
    }

    fn err(&self, message: String) -> EngineError {
        EngineError::Store {
            path: self.location(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_run(store: &DecisionStore, run_id: &str) {
        let now = Utc::now();
        let summary = RunSummary {
            run_id: run_id.into(),
            as_of: now,
            created_at: now,
            policy_version: "p".into(),
            model_version: "m".into(),
            styles: 0,
            rows: 0,
            keep: 0,
            drop: 0,
            test: 0,
            wrong_calls: WrongCalls::default(),
            warnings: vec![],
            previous_run_id: None,
            changes: Default::default(),
        };
        store
            .write_run(&DecisionRun {
                summary,
                decisions: vec![],
            })
            .unwrap();
    }

    #[test]
    fn the_run_published_before_skips_republications_of_the_same_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = DecisionStore::new(Storage::local(dir.path()));
        for id in ["a", "b", "c"] {
            stored_run(&store, id);
        }
        assert_eq!(store.published_before("a").unwrap(), None);
        for id in ["a", "b", "b", "c"] {
            store.publish(id, "test").unwrap();
        }
        let before = |id| store.published_before(id).unwrap().map(|p| p.run_id);
        assert_eq!(before("c").as_deref(), Some("b"));
        assert_eq!(before("b").as_deref(), Some("a"));
        assert_eq!(before("a"), None);
        assert_eq!(store.published().unwrap().unwrap().run_id, "c");
    }

    #[test]
    fn a_summary_reads_back_flat_and_from_the_nested_footers_of_earlier_runs() {
        let now = "2026-09-28T00:00:00Z";
        let nested = format!(
            r#"{{"run_id":"r","as_of":"{now}","created_at":"{now}","policy_version":"p",
            "model_version":"m","styles":2,"rows":4,"keep":1,"drop":1,"test":0,
            "wrong_calls":{{"expected_wrong_keeps":0.25,"expected_wrong_drops":0.5,
            "demoted_keeps":1,"demoted_drops":0,"new_keeps":1}},"warnings":["w"],
            "changes":{{"reversed":1,"held":2}}}}"#
        );
        let old = RunSummary::from_footer(&nested).unwrap();
        assert_eq!(old.wrong_calls.expected_wrong_drops, 0.5);
        assert_eq!(
            (old.wrong_calls.demoted_keeps, old.wrong_calls.new_keeps),
            (1, 1)
        );
        assert_eq!((old.changes.reversed, old.changes.held), (1, 2));
        let flat = serde_json::to_value(&old).unwrap();
        assert_eq!(flat["expected_wrong_keeps"], 0.25);
        assert_eq!(flat["held"], 2);
        assert!(flat.get("wrong_calls").is_none() && flat.get("changes").is_none());
        let again = RunSummary::from_footer(&flat.to_string()).unwrap();
        assert_eq!(again, old);
        // A run stored before the changes were counted holds none.
        let first = nested.replace(r#""changes":{"reversed":1,"held":2}"#, r#""other":0"#);
        assert_ne!(first, nested);
        assert_eq!(
            RunSummary::from_footer(&first).unwrap().changes,
            Changes::default()
        );
    }
}
