//! Cancel requests: psql's Ctrl-C, JDBC's `Statement.cancel()`, psycopg's
//! `conn.cancel()`. A client learns its connection's process id and secret key at login
//! (`BackendKeyData`) and sends them on a new connection to stop what the first one is
//! running; the key must match, so no one can stop another's queries by guessing an id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use assay_engine::sandbox::Sandbox;
use async_trait::async_trait;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::startup::SecretKey;

/// Every logged-in connection's (process id, secret key), and the connection it names.
#[derive(Default)]
pub struct CancelKeys {
    next: AtomicU64,
    by_key: Mutex<HashMap<(i32, Vec<u8>), u64>>,
}

impl CancelKeys {
    /// A fresh id for a connection being accepted.
    pub fn next_connection(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Vec<u8>), u64>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection has logged in with this key.
    pub fn register(&self, pid: i32, key: &SecretKey, connection: u64) {
        self.lock()
            .insert((pid, key.to_bytes().to_vec()), connection);
    }

    /// The connection has ended.
    pub fn forget(&self, connection: u64) {
        self.lock().retain(|_, c| *c != connection);
    }

    fn connection(&self, pid: i32, key: &SecretKey) -> Option<u64> {
        self.lock().get(&(pid, key.to_bytes().to_vec())).copied()
    }
}

/// Stops the queries of the connection a cancel request names.
pub struct CancelQueries {
    pub keys: Arc<CancelKeys>,
    pub sandbox: Arc<Sandbox>,
}

#[async_trait]
impl CancelHandler for CancelQueries {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // An unknown key gets nothing, as in PostgreSQL: no answer says whether it was.
        if let Some(connection) = self.keys.connection(request.pid, &request.secret_key) {
            let stopped = self.sandbox.cancel_connection(connection);
            tracing::info!(connection, stopped, "pgwire cancel request");
        }
    }
}
