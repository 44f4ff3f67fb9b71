//! assay's input tables: where they live, their schemas, and their registration.
//!
//! Every file is checked before it is registered, so a missing column or a corrupt file
//! is reported with its path instead of failing a query later.

pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{EngineError, Result};

/// The partition column of `events/`.
pub const EVENT_DATE: &str = "event_date";

/// Paths of a dataset's input files.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
}

impl Dataset {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }
    pub fn styles_file(&self) -> PathBuf {
        self.root.join("styles.parquet")
    }
    pub fn receipts_file(&self) -> PathBuf {
        self.root.join("stock_receipts.parquet")
    }
    /// Ground truth, present only in generated datasets.
    pub fn truth_file(&self) -> PathBuf {
        self.root.join("truth.parquet")
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
    /// Move it to `DATA/quarantine/` (same relative path), report it and go on with the
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

impl Dataset {
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }
}

/// Checks event files; bad ones fail the call or are moved to quarantine.
///
/// # Errors
/// A bad file under [`BadFiles::Fail`], or a failed move.
pub fn check_event_files(
    data: &Dataset,
    files: &[PathBuf],
    bad: BadFiles,
) -> Result<Vec<SetAside>> {
    let expected = schema::events_file_schema();
    let mut set_aside = Vec::new();
    for file in files {
        let Err(error) = check_file(file, &expected) else {
            continue;
        };
        if bad == BadFiles::Fail {
            return Err(error);
        }
        let relative = file.strip_prefix(&data.root).unwrap_or(file);
        let dest = data.quarantine_dir().join(relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::rename(file, &dest).map_err(|e| io_err(file, e))?;
        let problem = error.to_string();
        tracing::warn!(file = %file.display(), moved_to = %dest.display(), %problem,
            "an unreadable event file was set aside; queries go on without it");
        set_aside.push(SetAside {
            path: file.display().to_string(),
            problem,
            moved_to: dest.display().to_string(),
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
    if !data.root.is_dir() {
        return Err(EngineError::MissingDataDir {
            path: data.root.display().to_string(),
        });
    }
    for (path, table, expected) in catalog_tables(data) {
        if !path.is_file() {
            return Err(EngineError::MissingTable {
                path: path.display().to_string(),
                table,
            });
        }
        check_file(&path, &expected)?;
    }
    let truth = data.truth_file();
    if truth.is_file() {
        check_file(&truth, &schema::truth_schema())?;
    }

    let events_dir = data.events_dir();
    let mut files = event_files(&events_dir)?;
    let set_aside = check_event_files(data, &files, bad)?;
    files.retain(|f| !set_aside.iter().any(|b| Path::new(&b.path) == f));
    if files.is_empty() {
        return Err(EngineError::NoEvents {
            path: events_dir.display().to_string(),
        });
    }
    let partitions = files
        .iter()
        .filter_map(|f| f.parent())
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
fn catalog_tables(data: &Dataset) -> [(PathBuf, &'static str, SchemaRef); 2] {
    [
        (data.styles_file(), "styles", schema::styles_schema()),
        (
            data.receipts_file(),
            "stock_receipts",
            schema::stock_receipts_schema(),
        ),
    ]
}

/// Registers the input tables of a dataset [`register_inputs`] has checked, as Parquet
/// listing tables: the one kind of table every engine (Ballista too) can run.
///
/// # Errors
/// A folder that cannot be resolved, or a registration failure.
pub async fn register_tables(ctx: &SessionContext, data: &Dataset) -> Result<()> {
    for (path, table, expected) in catalog_tables(data) {
        let options = ParquetReadOptions::default().schema(&expected);
        ctx.register_parquet(table, path.to_string_lossy().as_ref(), options)
            .await?;
    }
    let truth = data.truth_file();
    if truth.is_file() {
        let expected = schema::truth_schema();
        let options = ParquetReadOptions::default().schema(&expected);
        ctx.register_parquet("truth", truth.to_string_lossy().as_ref(), options)
            .await?;
    }
    let events_dir = data.events_dir();
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(EVENT_DATE.to_string(), DataType::Date32)]);
    let url = format!(
        "{}/",
        events_dir
            .canonicalize()
            .map_err(|source| io_err(&events_dir, source))?
            .display()
    );
    ctx.register_listing_table(
        "events",
        url,
        options,
        Some(schema::events_file_schema()),
        None,
    )
    .await?;
    Ok(())
}

/// Every `*.parquet` file under `events/event_date=YYYY-MM-DD/`, sorted.
pub fn event_files(events_dir: &Path) -> Result<Vec<PathBuf>> {
    if !events_dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(events_dir).map_err(|e| io_err(events_dir, e))? {
        let entry = entry.map_err(|e| io_err(events_dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if !path.is_dir() || name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let valid = name
            .strip_prefix("event_date=")
            .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
        if !valid {
            return Err(EngineError::BadPartition {
                path: events_dir.display().to_string(),
                folder: name,
            });
        }
        for file in std::fs::read_dir(&path).map_err(|e| io_err(&path, e))? {
            let file = file.map_err(|e| io_err(&path, e))?.path();
            if file.extension().is_some_and(|x| x == "parquet") {
                files.push(file);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a file's footer and compares its schema with the expected one.
fn check_file(path: &Path, expected: &SchemaRef) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| EngineError::CorruptFile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let problems = schema::check_schema(builder.schema(), expected);
    if problems.is_empty() {
        return Ok(());
    }
    Err(EngineError::Schema {
        path: path.display().to_string(),
        problems: problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    })
}

fn io_err(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}
