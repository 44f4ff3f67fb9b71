//! Decision runs, kept as immutable Parquet files next to the data.
//!
//! A run is one file, `decisions/<run_id>.parquet`, written under a temporary name and
//! renamed into place: a crash mid-write leaves no partial run visible, and no run ever
//! rewrites another. The run's summary travels in the same file's footer, so a run and
//! its summary appear together or not at all.

mod batch;
pub mod overrides;
mod overrides_table;

pub use overrides_table::{OverridesTable, overrides_schema};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::SessionContext;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};

use crate::decision::{Decision, WrongCalls};
use crate::error::{EngineError, Result};
use crate::parquet_io::AtomicParquetFile;

pub use batch::{decisions_schema, read_decisions};

const SUMMARY_KEY: &str = "assay.run";

/// What a run decided, in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub wrong_calls: WrongCalls,
    /// Problems in the input that did not stop the run.
    pub warnings: Vec<String>,
}

/// A run with its rows.
#[derive(Debug, Clone)]
pub struct DecisionRun {
    pub summary: RunSummary,
    pub decisions: Vec<Decision>,
}

pub struct DecisionStore {
    root: PathBuf,
}

impl DecisionStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn run_path(&self, run_id: &str) -> PathBuf {
        self.root.join(format!("{run_id}.parquet"))
    }

    /// Writes a run atomically.
    ///
    /// # Errors
    /// The store directory cannot be created or written, or a run of that id exists.
    pub fn write_run(&self, run: &DecisionRun) -> Result<()> {
        let path = self.run_path(&run.summary.run_id);
        if path.exists() {
            return Err(self.err(format!("run {} already exists", run.summary.run_id)));
        }
        let batch = batch::decisions_batch(&run.summary, &run.decisions)
            .map_err(|e| self.err(e.to_string()))?;
        let mut file = AtomicParquetFile::create(&path, decisions_schema())
            .map_err(|e| self.err(e.to_string()))?;
        let summary = serde_json::to_string(&run.summary).map_err(|e| self.err(e.to_string()))?;
        file.append_metadata(SUMMARY_KEY, summary);
        file.write(&batch).map_err(|e| self.err(e.to_string()))?;
        file.publish().map_err(|e| self.err(e.to_string()))
    }

    /// Every run's summary, oldest first.
    ///
    /// # Errors
    /// The directory cannot be listed or a run file's footer cannot be read.
    pub fn list_runs(&self) -> Result<Vec<RunSummary>> {
        let mut runs = Vec::new();
        for path in self.run_files()? {
            runs.push(self.read_summary(&path)?);
        }
        runs.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        Ok(runs)
    }

    /// The newest run, if any.
    pub fn latest_run(&self) -> Result<Option<RunSummary>> {
        Ok(self.list_runs()?.pop())
    }

    /// One run's rows.
    ///
    /// # Errors
    /// No such run, or its file cannot be read.
    pub fn read_run(&self, run_id: &str) -> Result<DecisionRun> {
        let path = self.run_path(run_id);
        if !path.is_file() {
            return Err(EngineError::RunNotFound {
                run_id: run_id.into(),
            });
        }
        let summary = self.read_summary(&path)?;
        let decisions =
            read_decisions(&path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
        Ok(DecisionRun { summary, decisions })
    }

    fn run_files(&self) -> Result<Vec<PathBuf>> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let entries = std::fs::read_dir(&self.root).map_err(|e| self.err(e.to_string()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        Ok(files)
    }

    fn read_summary(&self, path: &Path) -> Result<RunSummary> {
        let file =
            std::fs::File::open(path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| self.err(format!("{}: {e}", path.display())))?;
        let text = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| {
                kv.iter()
                    .find(|e| e.key == SUMMARY_KEY)
                    .and_then(|e| e.value.clone())
            })
            .ok_or_else(|| self.err(format!("{}: no run summary in its footer", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| self.err(format!("{}: run summary: {e}", path.display())))
    }

    /// Registers the `decisions` table: every run's rows.
    ///
    /// # Errors
    /// The table cannot be registered.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        ctx.deregister_table("decisions")?;
        if self.run_files()?.is_empty() {
            // Not a `MemTable`: Ballista can ship an `EmptyTable` to its executors.
            ctx.register_table("decisions", Arc::new(EmptyTable::new(decisions_schema())))?;
            return Ok(());
        }
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let dir = self
            .root
            .canonicalize()
            .map_err(|e| self.err(e.to_string()))?;
        ctx.register_listing_table(
            "decisions",
            format!("{}/", dir.display()),
            options,
            Some(decisions_schema()),
            None,
        )
        .await?;
        Ok(())
    }

    fn err(&self, message: String) -> EngineError {
        EngineError::Store {
            path: self.root.display().to_string(),
            message,
        }
    }
}
