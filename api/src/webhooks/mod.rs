//! Webhooks: events written to the durable outbox before the change they report is
//! acknowledged, and delivered from it, signed and retried, by one task per server.

mod deliver;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use assay_engine::EngineError;
use assay_engine::storage::Storage;
use assay_engine::store::webhooks::{EventType, WebhookStore};

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// An event not delivered this long after it was made is given up.
    pub give_up_after: Duration,
    /// The first retry's delay; each next one doubles, up to `max_delay`, with jitter.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// One attempt's limit, connection to answer.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            give_up_after: Duration::from_secs(24 * 3600),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The outbox and the task that empties it.
pub struct Webhooks {
    pub store: Arc<WebhookStore>,
    wake: Arc<Notify>,
    retry: RetryPolicy,
}

impl Webhooks {
    /// Opens the webhook records of the dataset at `storage`.
    ///
    /// # Errors
    /// The records cannot be read.
    pub fn open(storage: Storage, retry: RetryPolicy) -> Result<Self, EngineError> {
        Ok(Self {
            store: WebhookStore::open(storage)?,
            wake: Arc::new(Notify::new()),
            retry,
        })
    }

    /// Records an event durably (once per type and subject) and wakes the deliveries.
    ///
    /// # Errors
    /// The outbox cannot be written.
    pub fn emit(
        &self,
        event_type: EventType,
        subject: &str,
        data: &impl serde::Serialize,
    ) -> Result<(), EngineError> {
        let data = serde_json::to_value(data).map_err(|e| EngineError::Store {
            path: "webhooks/outbox".into(),
            message: format!("{} {subject}: {e}", event_type.as_str()),
        })?;
        if self
            .store
            .emit(event_type, subject, data, Utc::now())?
            .is_some()
        {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Delivers due events until the returned task is aborted.
    pub fn spawn_deliveries(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(deliver::run(
            Arc::clone(&self.store),
            Arc::clone(&self.wake),
            self.retry,
        ))
    }
}
