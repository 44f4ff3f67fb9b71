//! The engine's errors: each names the file, table or setting it concerns.

use datafusion::error::DataFusionError;

use crate::decision::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("data directory {path} does not exist")]
    MissingDataDir { path: String },
    #[error("{path} is missing: expected the {table} table there")]
    MissingTable { path: String, table: &'static str },
    #[error("{path}: not a readable Parquet file: {message}")]
    CorruptFile { path: String, message: String },
    #[error("{path}: {problems}")]
    Schema { path: String, problems: String },
    #[error("{path}: partition folder `{folder}` is not `event_date=YYYY-MM-DD`")]
    BadPartition { path: String, folder: String },
    #[error("no events: {path} holds no event files (events/event_date=YYYY-MM-DD/*.parquet)")]
    NoEvents { path: String },
    #[error("no styles: {path} has no rows")]
    NoStyles { path: String },
    #[error("nothing to decide as of {as_of}: no style had launched by then")]
    NothingToDecide { as_of: String },
    #[error("query failed: {0}")]
    Query(#[from] DataFusionError),
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("backtest: {0}")]
    Backtest(String),
    #[error("ingest: {0}")]
    Ingest(String),
    #[error("SQL not allowed: {0}")]
    NotAllowed(String),
    #[error("column `{column}` of {query}: {message}")]
    Column {
        query: &'static str,
        column: String,
        message: String,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("decision store {path}: {message}")]
    Store { path: String, message: String },
    #[error("run `{run_id}` not found")]
    RunNotFound { run_id: String },
    #[error("--engine `{given}`: expected local, ballista-standalone or ballista://HOST:PORT")]
    BadEngine { given: String },
    #[error(
        "--engine {engine}: this assay was built without Ballista; rebuild with `--features ballista`"
    )]
    BallistaNotBuilt { engine: String },
    #[error("--engine {engine}: {message}")]
    Ballista { engine: String, message: String },
    #[error("--data `{given}`: {message}")]
    BadLocation { given: String, message: String },
    #[error("{path}: {}", innermost(source))]
    ObjectStore {
        path: String,
        source: object_store::Error,
    },
    #[error(
        "{path} is locked by {holder}; if that process is gone, delete the lock object and retry"
    )]
    Locked { path: String, holder: String },
    #[error("I/O on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The deepest cause of an error: `object_store` repeats each cause in its own message,
/// so the whole chain printed an S3 response four times over.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    deepest.to_string().trim().to_string()
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
