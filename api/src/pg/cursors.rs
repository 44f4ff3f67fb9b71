//! Server-side cursors (`DECLARE … CURSOR FOR`, `FETCH`, `CLOSE`): SQLAlchemy's
//! `stream_results`, psycopg's named cursors and other drivers' fetch sizes.
//!
//! A cursor holds its query's running answer, not its rows: the sandbox produces the
//! next batch only as a `FETCH` takes the last, so a cursor costs one query slot and
//! the query's own memory however many rows it has. Its query keeps the sandbox's
//! limits (time, memory, rows). Cursors move forward only, belong to their connection
//! and end with `CLOSE` or with the connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use assay_engine::sandbox::{Answer, SandboxError};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::ast::{FetchDirection, Value};

/// Open cursors a connection may hold at once: each holds a running query.
const MAX_PER_CONNECTION: usize = 8;

/// Why a cursor statement cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error("cursor \"{0}\" does not exist")]
    Unknown(String),
    #[error("cursor \"{0}\" already exists")]
    Duplicate(String),
    #[error("a connection holds at most {MAX_PER_CONNECTION} open cursors; close one first")]
    TooMany,
    #[error("cursors here move forward only: FETCH [FORWARD] n, NEXT or ALL")]
    Backward,
    #[error("{0}")]
    Query(#[from] SandboxError),
}

impl CursorError {
    /// PostgreSQL's SQLSTATE for it.
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            Self::Unknown(_) => Some("34000"),
            Self::Duplicate(_) => Some("42P03"),
            Self::TooMany => Some("53000"),
            Self::Backward => Some("55000"),
            Self::Query(_) => None,
        }
    }
}

/// How many rows a `FETCH` asks for; `None` for all that are left.
pub fn rows_asked(direction: &FetchDirection) -> Result<Option<usize>, CursorError> {
    let count = |v: &Value| match v {
        Value::Number(n, _) => n.parse::<usize>().map_err(|_| CursorError::Backward),
        _ => Err(CursorError::Backward),
    };
    match direction {
        FetchDirection::Next | FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            count(&limit.value).map(Some)
        }
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        _ => Err(CursorError::Backward),
    }
}

/// One cursor: the answer it reads and the rows of a batch not yet fetched.
pub struct Cursor {
    schema: SchemaRef,
    answer: Answer,
    held: Option<RecordBatch>,
}

impl Cursor {
    pub fn new(answer: Answer) -> Self {
        Self {
            schema: Arc::clone(&answer.schema),
            answer,
            held: None,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The next `rows` rows (all that are left for `None`); fewer at the end.
    pub async fn fetch(&mut self, rows: Option<usize>) -> Result<Vec<RecordBatch>, SandboxError> {
        let mut left = rows.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while left > 0 {
            let batch = match self.held.take() {
                Some(batch) => batch,
                None => match self.answer.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            if batch.num_rows() > left {
                out.push(batch.slice(0, left));
                self.held = Some(batch.slice(left, batch.num_rows() - left));
                break;
            }
            left -= batch.num_rows();
            out.push(batch);
        }
        Ok(out)
    }
}

/// Every connection's open cursors, by the connection's peer address.
#[derive(Default)]
pub struct Cursors {
    open: Mutex<HashMap<SocketAddr, HashMap<String, Cursor>>>,
}

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, HashMap<String, Cursor>>> {
        // A panic elsewhere leaves the map itself whole.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(
        &self,
        connection: SocketAddr,
        name: &str,
        cursor: Cursor,
    ) -> Result<(), CursorError> {
        let mut open = self.lock();
        let mine = open.entry(connection).or_default();
        if mine.contains_key(name) {
            return Err(CursorError::Duplicate(name.to_owned()));
        }
        if mine.len() >= MAX_PER_CONNECTION {
            return Err(CursorError::TooMany);
        }
        mine.insert(name.to_owned(), cursor);
        Ok(())
    }

    /// Whether the connection has a cursor of that name, and the schema of its rows.
    pub fn schema(&self, connection: SocketAddr, name: &str) -> Result<SchemaRef, CursorError> {
        self.lock()
            .get(&connection)
            .and_then(|mine| mine.get(name))
            .map(Cursor::schema)
            .ok_or_else(|| CursorError::Unknown(name.to_owned()))
    }

    /// The cursor, out of the map while a `FETCH` reads it (no lock held across it).
    pub fn take(&self, connection: SocketAddr, name: &str) -> Result<Cursor, CursorError> {
        self.lock()
            .get_mut(&connection)
            .and_then(|mine| mine.remove(name))
            .ok_or_else(|| CursorError::Unknown(name.to_owned()))
    }

    pub fn put_back(&self, connection: SocketAddr, name: &str, cursor: Cursor) {
        self.lock()
            .entry(connection)
            .or_default()
            .insert(name.to_owned(), cursor);
    }

    /// Closes one cursor, or all of the connection's for `None`.
    pub fn close(&self, connection: SocketAddr, name: Option<&str>) -> Result<(), CursorError> {
        let mut open = self.lock();
        match name {
            None => {
                open.remove(&connection);
                Ok(())
            }
            Some(name) => open
                .get_mut(&connection)
                .and_then(|mine| mine.remove(name))
                .map(drop)
                .ok_or_else(|| CursorError::Unknown(name.to_owned())),
        }
    }
}
