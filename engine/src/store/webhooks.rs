//! Webhook subscriptions, the outbox of events, and each delivery's attempts.
//!
//! An event is one JSON file, `webhooks/outbox/<seq>.json`, created only if its number
//! is free (as override entries are), before the change it reports is acknowledged:
//! whatever happens to the process afterwards, the event is there to deliver, with the
//! id it will always carry. A subscription is `webhooks/subscriptions/<id>.json`; it
//! receives the events numbered from the next one when it was made. A delivery's
//! attempts are `webhooks/deliveries/<webhook>/<seq>.json`, rewritten whole after each
//! attempt, so a restarted server goes on where the last one stopped: an event whose
//! delivery was not recorded as done is sent again (at least once, same event id).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::storage::Storage;

const OUTBOX: &str = "webhooks/outbox";
const SUBSCRIPTIONS: &str = "webhooks/subscriptions";
const DELIVERIES: &str = "webhooks/deliveries";

/// What a subscriber can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A decision run was computed and published.
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// Effective verdicts or reorders changed: by a new run, or an override.
    #[serde(rename = "decision.changed")]
    DecisionChanged,
    #[serde(rename = "override.created")]
    OverrideCreated,
    /// A reorder was approved, by a person or a rule.
    #[serde(rename = "reorder.approved")]
    ReorderApproved,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::RunCompleted,
        EventType::DecisionChanged,
        EventType::OverrideCreated,
        EventType::ReorderApproved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RunCompleted => "run.completed",
            EventType::DecisionChanged => "decision.changed",
            EventType::OverrideCreated => "override.created",
            EventType::ReorderApproved => "reorder.approved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

/// One event, as stored and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub created_at: DateTime<Utc>,
    /// What the event is about (a run or override id): one event per subject and type.
    pub subject: String,
    pub data: serde_json::Value,
}

/// A subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub webhook_id: String,
    pub url: String,
    pub events: Vec<EventType>,
    /// Signs every delivery (HMAC-SHA256); never shown again after creation.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Events numbered from this one on are delivered to it.
    pub from_seq: u64,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Retried for as long as retries go on, without a 2xx answer.
    GaveUp,
}

/// One try to deliver an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The subscriber's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub seconds: f64,
}

/// An event's delivery to one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub webhook_id: String,
    pub seq: u64,
    pub event_id: String,
    pub event_type: EventType,
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
    /// When to try again, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct State {
    events: BTreeMap<u64, Event>,
    subjects: HashSet<(EventType, String)>,
    subscriptions: BTreeMap<String, Subscription>,
    /// By webhook, then event number.
    deliveries: HashMap<String, BTreeMap<u64, Delivery>>,
    next_seq: u64,
}

/// The durable webhook records and their in-memory view.
#[derive(Debug)]
pub struct WebhookStore {
    storage: Storage,
    state: RwLock<State>,
    /// Serializes outbox writers in this process.
    write: Mutex<()>,
}

impl WebhookStore {
    /// Opens the records in the dataset at `storage`.
    ///
    /// # Errors
    /// A record cannot be listed, read or parsed (named).
    pub fn open(storage: Storage) -> Result<Arc<Self>> {
        let mut state = State::default();
        for (seq, event) in
            super::numbered_log::read_all::<Event>(&storage, OUTBOX, "webhook event")?
        {
            state
                .subjects
                .insert((event.event_type, event.subject.clone()));
            state.events.insert(seq, event);
            state.next_seq = state.next_seq.max(seq + 1);
        }
        for entry in storage.list(SUBSCRIPTIONS)? {
            if entry.key.ends_with(".json") {
                let sub: Subscription = read_json(&storage, &entry.key)?;
                state.subscriptions.insert(sub.webhook_id.clone(), sub);
            }
        }
        for entry in storage.list(DELIVERIES)? {
            if numbered(entry.name()).is_some() {
                let d: Delivery = read_json(&storage, &entry.key)?;
                state
                    .deliveries
                    .entry(d.webhook_id.clone())
                    .or_default()
                    .insert(d.seq, d);
            }
        }
        Ok(Arc::new(Self {
            storage,
            state: RwLock::new(state),
            write: Mutex::new(()),
        }))
    }

    /// Records an event durably (unless one of this type and subject is already
    /// recorded) and returns its number; `None` when it was already there.
    ///
    /// # Errors
    /// The outbox cannot be written: the event is not recorded.
    pub fn emit(
        &self,
        event_type: EventType,
        subject: &str,
        data: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .read()
            .subjects
            .contains(&(event_type, subject.to_owned()))
        {
            return Ok(None);
        }
        let event = Event {
            event_id: format!("evt-{}", uuid::Uuid::now_v7().simple()),
            event_type,
            created_at: now,
            subject: subject.to_owned(),
            data,
        };
        let seq = super::numbered_log::append(&self.storage, OUTBOX, self.read().next_seq, &event)?;
        let mut state = self.write_state();
        state.subjects.insert((event_type, subject.to_owned()));
        state.events.insert(seq, event);
        state.next_seq = state.next_seq.max(seq + 1);
        Ok(Some(seq))
    }

    /// Whether an event of this type and subject was recorded.
    pub fn has_event(&self, event_type: EventType, subject: &str) -> bool {
        self.read()
            .subjects
            .contains(&(event_type, subject.to_owned()))
    }

    /// Adds a subscriber, which receives the events recorded from now on.
    ///
    /// # Errors
    /// The subscription cannot be written.
    pub fn subscribe(
        &self,
        url: String,
        events: Vec<EventType>,
        secret: String,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Subscription> {
        let sub = Subscription {
            webhook_id: format!("wh-{}", uuid::Uuid::now_v7().simple()),
            url,
            events,
            secret,
            created_at: now,
            created_by: by.to_owned(),
            from_seq: self.read().next_seq,
        };
        let body = serde_json::to_vec_pretty(&sub).map_err(|e| self.err(e))?;
        self.storage.write(
            &format!("{SUBSCRIPTIONS}/{}.json", sub.webhook_id),
            body.into(),
        )?;
        self.write_state()
            .subscriptions
            .insert(sub.webhook_id.clone(), sub.clone());
        Ok(sub)
    }

    /// Removes a subscriber; `false` when there was none of that id.
    ///
    /// # Errors
    /// The subscription cannot be deleted.
    pub fn unsubscribe(&self, webhook_id: &str) -> Result<bool> {
        if !self.read().subscriptions.contains_key(webhook_id) {
            return Ok(false);
        }
        self.storage
            .delete(&format!("{SUBSCRIPTIONS}/{webhook_id}.json"))?;
        self.write_state().subscriptions.remove(webhook_id);
        Ok(true)
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.read().subscriptions.values().cloned().collect()
    }

    pub fn subscription(&self, webhook_id: &str) -> Option<Subscription> {
        self.read().subscriptions.get(webhook_id).cloned()
    }

    /// A subscriber's deliveries, newest event first.
    pub fn deliveries(&self, webhook_id: &str) -> Vec<Delivery> {
        self.read()
            .deliveries
            .get(webhook_id)
            .map(|d| d.values().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// The (subscriber, event) pairs due at `now`: events after the subscription of a
    /// type it wants, not delivered or given up, and not waiting for a retry. Oldest
    /// event first for each subscriber.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<(Subscription, u64, Event)> {
        let state = self.read();
        let mut due = Vec::new();
        for sub in state.subscriptions.values() {
            let done = state.deliveries.get(&sub.webhook_id);
            for (&seq, event) in state.events.range(sub.from_seq..) {
                if !sub.events.contains(&event.event_type) {
                    continue;
                }
                let waiting = done.and_then(|d| d.get(&seq)).is_some_and(|d| {
                    d.state != DeliveryState::Pending || d.next_attempt_at.is_some_and(|t| t > now)
                });
                if !waiting {
                    due.push((sub.clone(), seq, event.clone()));
                }
            }
        }
        due
    }

    /// The delivery record of an event to a subscriber, if any attempt was made.
    pub fn delivery(&self, webhook_id: &str, seq: u64) -> Option<Delivery> {
        self.read()
            .deliveries
            .get(webhook_id)
            .and_then(|d| d.get(&seq))
            .cloned()
    }

    /// Stores a delivery's new state.
    ///
    /// # Errors
    /// The record cannot be written (the attempt will be made again).
    pub fn record(&self, delivery: &Delivery) -> Result<()> {
        let body = serde_json::to_vec_pretty(delivery).map_err(|e| self.err(e))?;
        self.storage.write(
            &format!(
                "{DELIVERIES}/{}/{:012}.json",
                delivery.webhook_id, delivery.seq
            ),
            body.into(),
        )?;
        self.write_state()
            .deliveries
            .entry(delivery.webhook_id.clone())
            .or_default()
            .insert(delivery.seq, delivery.clone());
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Store {
            path: self.storage.display("webhooks"),
            message: e.to_string(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn numbered(name: &str) -> Option<u64> {
    name.strip_suffix(".json")?.parse().ok()
}

fn read_json<T: serde::de::DeserializeOwned>(storage: &Storage, key: &str) -> Result<T> {
    let text = storage.read(key)?;
    serde_json::from_slice(&text).map_err(|e| EngineError::Store {
        path: storage.display(key),
        message: format!("unreadable webhook record: {e}"),
    })
}
