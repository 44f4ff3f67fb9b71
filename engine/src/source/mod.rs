//! assay's input tables: where they live, their schemas, and their registration.
//!
//! Every file is checked before it is registered, so a missing column or a corrupt file
//! is reported with its path instead of failing a query later.

pub mod schema;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{EngineError, Result};
use crate::storage::s3::S3Settings;
use crate::storage::{self, Entry, Storage};

/// The partition column of `events/`.
pub const EVENT_DATE: &str = "event_date";

/// A dataset: where it lives, and the keys of its input tables under that root.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub storage: Storage,
}

/// The folder of event partitions.
pub const EVENTS: &str = "events";
pub const STYLES: &str = "styles.parquet";
pub const RECEIPTS: &str = "stock_receipts.parquet";
/// Ground truth, present only in generated datasets.
pub const TRUTH: &str = "truth.parquet";
/// Each style's true demand curve per market, present only in generated datasets.
pub const TRUTH_MARKETS: &str = "truth_markets.parquet";
/// Where unreadable event files are moved (see [`BadFiles::SetAside`]).
pub const QUARANTINE: &str = "quarantine";

impl Dataset {
    /// A dataset in a local folder.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            storage: Storage::local(root),
        }
    }

    /// A dataset in a local folder or at `s3://bucket/prefix`, whose S3 stores are
    /// built with `s3`.
    ///
    /// # Errors
    /// As [`Storage::parse`].
    pub fn open(location: &str, s3: &S3Settings) -> Result<Self> {
        Ok(Self {
            storage: Storage::parse(location, s3)?,
        })
    }

    /// The root as users name it: a path or a URL.
    pub fn location(&self) -> String {
        self.storage.location()
    }
}

/// What registration found.
#[derive(Debug, Clone, Default)]
pub struct SourceSummary {
    pub event_files: usize,
    pub event_partitions: usize,
    /// Event files that could not be read, moved out of `events/` (see [`BadFiles`]).
    pub set_aside: Vec<SetAside>,
}

/// What to do with an event file that is not readable Parquet with the events schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadFiles {
    /// Fail, naming the file (the CLI: the user is there to fix it).
    #[default]
    Fail,
    /// Move it to `DATA/quarantine/` (same relative key), report it and go on with the
    /// rest (the server: one bad file must not stop every buyer's request).
    SetAside,
}

/// An event file taken out of the dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SetAside {
    pub path: String,
    pub problem: String,
    pub moved_to: String,
}

/// Checks event files (keys under the dataset's root); bad ones fail the call or are
/// moved to quarantine.
///
/// # Errors
/// A bad file under [`BadFiles::Fail`], or a failed move.
pub fn check_event_files(data: &Dataset, files: &[String], bad: BadFiles) -> Result<Vec<SetAside>> {
    let expected = schema::events_file_schema();
    let mut set_aside = Vec::new();
    for file in files {
        let Err(error) = check_file(&data.storage, file, &expected) else {
            continue;
        };
        if bad == BadFiles::Fail {
            return Err(error);
        }
        let dest = storage::join(QUARANTINE, file);
        data.storage.rename(file, &dest)?;
        let problem = error.to_string();
        let (path, moved_to) = (data.storage.display(file), data.storage.display(&dest));
        tracing::warn!(file = %path, moved_to = %moved_to, %problem,
            "an unreadable event file was set aside; queries go on without it");
        set_aside.push(SetAside {
            path,
            problem,
            moved_to,
        });
    }
    Ok(set_aside)
}

/// Checks and registers `events`, `styles` and `stock_receipts` in `ctx` (and `truth`
/// where a generated dataset has it).
///
/// # Errors
/// A missing directory or file, a file that is not Parquet, a column that is missing or
/// of the wrong type (for event files only under [`BadFiles::Fail`]), a partition folder that is not a date, or no event files at all.
pub async fn register_inputs(
    ctx: &SessionContext,
    data: &Dataset,
    bad: BadFiles,
) -> Result<SourceSummary> {
    let storage = &data.storage;
    if !storage.root_exists()? {
        return Err(EngineError::MissingDataDir {
            path: data.location(),
        });
    }
    for (key, table, expected) in catalog_tables() {
        if !storage.exists(key)? {
            return Err(EngineError::MissingTable {
                path: storage.display(key),
                table,
            });
        }
        check_file(storage, key, &expected)?;
    }
    for (key, _, expected) in truth_tables() {
        if storage.exists(key)? {
            check_file(storage, key, &expected)?;
        }
    }

    let mut files: Vec<String> = event_files(storage)?.into_iter().map(|e| e.key).collect();
    let set_aside = check_event_files(data, &files, bad)?;
    files.retain(|f| !set_aside.iter().any(|b| b.path == storage.display(f)));
    if files.is_empty() {
        return Err(EngineError::NoEvents {
            path: storage.display(EVENTS),
        });
    }
    let partitions = files
        .iter()
        .filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    register_tables(ctx, data).await?;
    Ok(SourceSummary {
        event_files: files.len(),
        event_partitions: partitions,
        set_aside,
    })
}

/// The catalog tables every dataset has: file, table name, schema.
fn catalog_tables() -> [(&'static str, &'static str, SchemaRef); 2] {
    [
        (STYLES, "styles", schema::styles_schema()),
        (RECEIPTS, "stock_receipts", schema::stock_receipts_schema()),
    ]
}

/// The ground-truth tables a generated dataset may have: file, table name, schema.
fn truth_tables() -> [(&'static str, &'static str, SchemaRef); 2] {
    [
        (TRUTH, "truth", schema::truth_schema()),
        (
            TRUTH_MARKETS,
            "truth_markets",
            schema::truth_markets_schema(),
        ),
    ]
}

/// Registers the input tables of a dataset [`register_inputs`] has checked, as Parquet
/// listing tables: the one kind of table every engine (Ballista too) can run.
///
/// # Errors
/// A folder that cannot be resolved, or a registration failure.
pub async fn register_tables(ctx: &SessionContext, data: &Dataset) -> Result<()> {
    let storage = &data.storage;
    for (key, table, expected) in catalog_tables() {
        let expected = schema::with_views(&expected);
        let options = ParquetReadOptions::default().schema(&expected);
        ctx.register_parquet(table, storage.file_url(key)?, options)
            .await?;
    }
    for (key, table, expected) in truth_tables() {
        if storage.exists(key)? {
            let options = ParquetReadOptions::default().schema(&expected);
            ctx.register_parquet(table, storage.file_url(key)?, options)
                .await?;
        }
    }
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(EVENT_DATE.to_string(), DataType::Date32)]);
    ctx.register_listing_table(
        "events",
        storage.table_url(EVENTS)?,
        options,
        Some(schema::events_table_schema()),
        None,
    )
    .await?;
    Ok(())
}

/// Every `*.parquet` file under `events/event_date=YYYY-MM-DD/`, sorted by key.
///
/// # Errors
/// The folder cannot be listed, or a partition folder is not a date.
pub fn event_files(storage: &Storage) -> Result<Vec<Entry>> {
    let mut files = Vec::new();
    for entry in storage.list(EVENTS)? {
        let relative = entry.under(EVENTS);
        // Files directly under events/ are not in any partition; DataFusion skips them.
        let Some((folder, name)) = relative.split_once('/') else {
            continue;
        };
        if folder.starts_with('.') || folder.starts_with('_') {
            continue;
        }
        if partition_day(folder).is_none() {
            return Err(EngineError::BadPartition {
                path: storage.display(EVENTS),
                folder: folder.to_string(),
            });
        }
        if !name.contains('/') && name.ends_with(".parquet") {
            files.push(entry);
        }
    }
    Ok(files)
}

/// The day of a partition folder's name, `event_date=YYYY-MM-DD`.
pub fn partition_day(folder: &str) -> Option<chrono::NaiveDate> {
    folder
        .strip_prefix("event_date=")
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// Reads a file's footer and compares its schema with the expected one.
fn check_file(storage: &Storage, key: &str, expected: &SchemaRef) -> Result<()> {
    let path = storage.display(key);
    let builder = ParquetRecordBatchReaderBuilder::try_new(storage.open(key)?).map_err(|e| {
        EngineError::CorruptFile {
            path: path.clone(),
            message: e.to_string(),
        }
    })?;
    let problems = schema::check_schema(builder.schema(), expected);
    if problems.is_empty() {
        return Ok(());
    }
    Err(EngineError::Schema {
        path,
        problems: problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}
