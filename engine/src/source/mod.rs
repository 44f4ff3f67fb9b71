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
}

/// Checks and registers `events`, `styles` and `stock_receipts` in `ctx` (and `truth`
/// where a generated dataset has it).
///
/// # Errors
/// A missing directory or file, a file that is not Parquet, a column that is missing or
/// of the wrong type, a partition folder that is not a date, or no event files at all.
pub async fn register_inputs(ctx: &SessionContext, data: &Dataset) -> Result<SourceSummary> {
    if !data.root.is_dir() {
        return Err(EngineError::MissingDataDir {
            path: data.root.display().to_string(),
        });
    }
    for (path, table, expected) in [
        (data.styles_file(), "styles", schema::styles_schema()),
        (
            data.receipts_file(),
            "stock_receipts",
            schema::stock_receipts_schema(),
        ),
    ] {
        if !path.is_file() {
            return Err(EngineError::MissingTable {
                path: path.display().to_string(),
                table,
            });
        }
        check_file(&path, &expected)?;
        let options = ParquetReadOptions::default().schema(&expected);
        ctx.register_parquet(table, path.to_string_lossy().as_ref(), options)
            .await?;
    }

    let truth = data.truth_file();
    if truth.is_file() {
        let expected = schema::truth_schema();
        check_file(&truth, &expected)?;
        let options = ParquetReadOptions::default().schema(&expected);
        ctx.register_parquet("truth", truth.to_string_lossy().as_ref(), options)
            .await?;
    }

    let events_dir = data.events_dir();
    let files = event_files(&events_dir)?;
    if files.is_empty() {
        return Err(EngineError::NoEvents {
            path: events_dir.display().to_string(),
        });
    }
    let expected = schema::events_file_schema();
    for file in &files {
        check_file(file, &expected)?;
    }
    let partitions = files
        .iter()
        .filter_map(|f| f.parent())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
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
    ctx.register_listing_table("events", url, options, Some(expected), None)
        .await?;
    Ok(SourceSummary {
        event_files: files.len(),
        event_partitions: partitions,
    })
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
