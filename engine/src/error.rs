//! The engine's errors: each names the file, table or setting it concerns, and says
//! which [`ErrorKind`] it is, so that every protocol answers it the same way.

use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;

use crate::decision::PolicyError;

/// What an error means to whoever asked: the one vocabulary every protocol (HTTP,
/// PostgreSQL wire, Flight SQL) maps to its own codes, in one table in `assay-api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A parameter, field, setting or file of the request is malformed or out of range.
    BadRequest,
    /// SQL text that does not parse.
    Syntax,
    /// SQL that parses but does not plan or fails on its data (a bad cast, a function
    /// that does not exist).
    InvalidQuery,
    /// SQL that names a table or view that does not exist.
    UnknownTable,
    /// SQL that names a column its tables do not have.
    UnknownColumn,
    /// A well-formed request the current state cannot serve (nothing launched by the
    /// as-of, an override the rules refuse).
    Unprocessable,
    /// The thing asked for (a run, a style, an override) does not exist.
    NotFound,
    /// Another writer got there first, or holds the lock.
    Conflict,
    /// Too many requests of this kind are running; retrying shortly will work.
    Busy,
    /// The request is larger than accepted.
    TooLarge,
    /// The query would plan into more than the planner may build (a WITH clause
    /// referenced so often that inlining it explodes).
    TooComplex,
    /// The query needed more memory than its limit.
    MemoryLimit,
    /// The query ran past its time limit.
    Timeout,
    /// The caller may not do this (a write in read-only SQL, a role without the right).
    PermissionDenied,
    /// The caller did not say who they are, or not in a way that can be checked.
    Unauthenticated,
    /// The server cannot serve this yet (still loading); retrying later will work.
    Unavailable,
    /// A fault of the server: logged in full, answered without its details.
    Internal,
}

impl ErrorKind {
    /// Every kind, for the tables that map them and the tests that check those tables.
    pub const ALL: [ErrorKind; 17] = [
        Self::BadRequest,
        Self::Syntax,
        Self::InvalidQuery,
        Self::UnknownTable,
        Self::UnknownColumn,
        Self::Unprocessable,
        Self::NotFound,
        Self::Conflict,
        Self::Busy,
        Self::TooLarge,
        Self::TooComplex,
        Self::MemoryLimit,
        Self::Timeout,
        Self::PermissionDenied,
        Self::Unauthenticated,
        Self::Unavailable,
        Self::Internal,
    ];

    /// A short stable name (the last part of an HTTP problem type).
    pub fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Syntax => "syntax",
            Self::InvalidQuery => "invalid-query",
            Self::UnknownTable => "unknown-table",
            Self::UnknownColumn => "unknown-column",
            Self::Unprocessable => "unprocessable",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::Busy => "busy",
            Self::TooLarge => "too-large",
            Self::TooComplex => "too-complex",
            Self::MemoryLimit => "memory-limit",
            Self::Timeout => "timeout",
            Self::PermissionDenied => "permission-denied",
            Self::Unauthenticated => "unauthenticated",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// How DataFusion's error for a user's query reads to that user: classified by the
    /// error's type (its innermost cause), never by its text.
    pub fn of_user_query(e: &DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => Self::MemoryLimit,
            DataFusionError::SQL(..) => Self::Syntax,
            DataFusionError::SchemaError(e, _)
                if matches!(e.as_ref(), SchemaError::FieldNotFound { .. }) =>
            {
                Self::UnknownColumn
            }
            DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Execution(_)
            | DataFusionError::ArrowError(..) => Self::InvalidQuery,
            _ => Self::Internal,
        }
    }
}

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
    #[error(
        "as of {as_of} is after the newest event ({newest}) by more than a day: the days after it hold no data, which a run would read as no demand; decide as of a time the data covers"
    )]
    AsOfBeyondData { as_of: String, newest: String },
    #[error("query failed: {0}")]
    Query(#[from] DataFusionError),
    #[error("reading query results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A command-line option or request field that cannot be acted on as given.
    #[error("{option}: {message}")]
    BadOption {
        option: &'static str,
        message: String,
    },
    /// An input file the caller handed in (events to ingest, a catalog) that cannot be
    /// read as what it claims to be; `message` says where in it and what was expected.
    #[error("{path}: {message}")]
    BadInput { path: String, message: String },
    /// The ingest journal, which finishes an interrupted batch, cannot be followed.
    #[error("ingest journal {path}: {message}")]
    Journal { path: String, message: String },
    /// A day writer of an ingest batch failed (its error is logged); nothing of the
    /// batch is published.
    #[error("ingest: a day's writer failed, so the batch was not published")]
    WriterFailed,
    /// The rejects file an ingest writes next to its input.
    #[error("{path}: writing rejected rows: {source}")]
    Rejects { path: String, source: csv::Error },
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

impl EngineError {
    /// What this error means to the caller; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Self::RunNotFound { .. } => K::NotFound,
            Self::NothingToDecide { .. } | Self::AsOfBeyondData { .. } => K::Unprocessable,
            Self::NotAllowed(_) => K::PermissionDenied,
            Self::Locked { .. } => K::Conflict,
            Self::Policy(_)
            | Self::BadOption { .. }
            | Self::BadInput { .. }
            | Self::BadEngine { .. }
            | Self::BallistaNotBuilt { .. }
            | Self::BadLocation { .. } => K::BadRequest,
            // The server's own data or queries failing is the server's fault, not the
            // caller's: the data directory is the operator's, engine SQL is assay's.
            Self::MissingDataDir { .. }
            | Self::MissingTable { .. }
            | Self::CorruptFile { .. }
            | Self::Schema { .. }
            | Self::BadPartition { .. }
            | Self::NoEvents { .. }
            | Self::NoStyles { .. }
            | Self::Query(_)
            | Self::Arrow(_)
            | Self::Parquet(_)
            | Self::Column { .. }
            | Self::Store { .. }
            | Self::Ballista { .. }
            | Self::ObjectStore { .. }
            | Self::Journal { .. }
            | Self::WriterFailed
            | Self::Rejects { .. }
            | Self::Io { .. } => K::Internal,
        }
    }
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
