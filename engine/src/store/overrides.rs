//! Merchandisers' overrides: an append-only log that never loses an acknowledged write.
//!
//! Every change (an override, or the revocation of one) is one small JSON file,
//! `overrides/<seq>.json`, numbered in the order it was accepted. A write creates its
//! numbered name only if it is free ([`Storage::create`]: a hard link of a flushed
//! temporary file locally, a conditional put on an object store), so two writers can
//! never overwrite each other, and it is durable before the write is acknowledged. A
//! crash at any moment leaves either the whole file or none of it under a numbered
//! name; stray temporary files are ignored. Nothing is ever rewritten or deleted: a revocation is a new entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::Verdict;
use crate::error::{EngineError, ErrorKind, Result};
use crate::storage::Storage;

/// The log's folder in the dataset.
const DIR: &str = "overrides";

/// Why a merchandiser overrode the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideReason {
    TrendSignal,
    MarketingPush,
    QualityIssue,
    SizeFitIssue,
    SupplierConstraint,
    BrandStrategy,
    DataError,
    /// Needs a comment.
    Other,
}

impl OverrideReason {
    pub const ALL: [OverrideReason; 8] = [
        OverrideReason::TrendSignal,
        OverrideReason::MarketingPush,
        OverrideReason::QualityIssue,
        OverrideReason::SizeFitIssue,
        OverrideReason::SupplierConstraint,
        OverrideReason::BrandStrategy,
        OverrideReason::DataError,
        OverrideReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OverrideReason::TrendSignal => "trend_signal",
            OverrideReason::MarketingPush => "marketing_push",
            OverrideReason::QualityIssue => "quality_issue",
            OverrideReason::SizeFitIssue => "size_fit_issue",
            OverrideReason::SupplierConstraint => "supplier_constraint",
            OverrideReason::BrandStrategy => "brand_strategy",
            OverrideReason::DataError => "data_error",
            OverrideReason::Other => "other",
        }
    }
}

/// What a merchandiser asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOverride {
    pub style_id: String,
    pub market: String,
    pub verdict: Verdict,
    pub reason: OverrideReason,
    pub comment: Option<String>,
    pub user: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Retries with the same key (from the same user) return the first result.
    pub idempotency_key: Option<String>,
    /// Units to reorder, for a keep: what buying systems order instead of the
    /// model's plan (none: the plan's own units).
    pub reorder_units: Option<i64>,
}

/// An override as stored, with its revocation if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub override_id: String,
    pub seq: u64,
    pub style_id: String,
    pub market: String,
    pub verdict: Verdict,
    pub reason: OverrideReason,
    pub comment: Option<String>,
    pub user: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_units: Option<i64>,
    /// The newer override of the same style and market that revoked this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

impl Override {
    /// In force at `now`: not revoked and not expired.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now)
    }

    /// In force at a past time `t`, as the log tells it now: created by then, and not
    /// yet revoked or expired.
    pub fn was_live_at(&self, t: DateTime<Utc>) -> bool {
        self.created_at <= t
            && self.revoked_at.is_none_or(|r| r > t)
            && self.expires_at.is_none_or(|e| e > t)
    }
}

/// One entry of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LogEntry {
    Created(Override),
    Revoked {
        override_id: String,
        user: String,
        at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        superseded_by: Option<String>,
    },
}

/// Why an override was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OverrideRejected {
    #[error("a comment is required when the reason is `other`")]
    CommentRequired,
    #[error("expires_at {0} is in the past")]
    ExpiresInThePast(DateTime<Utc>),
    #[error("override `{0}` not found")]
    NotFound(String),
    #[error("override `{0}` was already revoked")]
    AlreadyRevoked(String),
    #[error("reorder_units goes with a keep: a {0} orders nothing")]
    ReorderWithoutKeep(&'static str),
    #[error("reorder_units must be 0 or more, not {0}")]
    NegativeReorder(i64),
    #[error("the Idempotency-Key was used for a different override")]
    KeyReused,
}

#[derive(Debug, Default)]
struct State {
    overrides: Vec<Override>,
    by_id: HashMap<String, usize>,
    by_style: HashMap<String, Vec<usize>>,
    by_key: HashMap<(String, String), usize>,
    next_seq: u64,
}

impl State {
    fn apply(&mut self, seq: u64, entry: LogEntry) {
        self.next_seq = self.next_seq.max(seq + 1);
        match entry {
            LogEntry::Created(mut o) => {
                // The file name is authoritative: a writer may have taken the next number.
                o.seq = seq;
                let i = self.overrides.len();
                self.by_id.insert(o.override_id.clone(), i);
                self.by_style.entry(o.style_id.clone()).or_default().push(i);
                if let Some(key) = &o.idempotency_key {
                    self.by_key.insert((o.user.clone(), key.clone()), i);
                }
                self.overrides.push(o);
            }
            LogEntry::Revoked {
                override_id,
                user,
                at,
                superseded_by,
            } => {
                if let Some(&i) = self.by_id.get(&override_id) {
                    self.overrides[i].revoked_at = Some(at);
                    self.overrides[i].revoked_by = Some(user);
                    self.overrides[i].superseded_by = superseded_by;
                }
            }
        }
    }
}

/// The durable override log and its in-memory view.
#[derive(Debug)]
pub struct OverrideStore {
    storage: Storage,
    state: RwLock<State>,
    /// Serializes writers in this process; create-if-free guards against other processes.
    write: Mutex<()>,
}

impl OverrideStore {
    /// Opens the log in the dataset at `storage` and reads every entry.
    ///
    /// # Errors
    /// The log cannot be listed or read, or an entry cannot be parsed (named).
    pub fn open(storage: Storage) -> Result<Arc<Self>> {
        let mut state = State::default();
        for (seq, entry) in super::numbered_log::read_all(&storage, DIR, "override entry")? {
            state.apply(seq, entry);
        }
        Ok(Arc::new(Self {
            storage,
            state: RwLock::new(state),
            write: Mutex::new(()),
        }))
    }

    /// Records an override, durably, before returning it. A retry with the same
    /// idempotency key returns the original (and `false`: nothing new was written).
    ///
    /// # Errors
    /// A rejected request, or a failed write (then nothing was recorded).
    pub fn create(
        &self,
        new: NewOverride,
        now: DateTime<Utc>,
    ) -> Result<(Override, bool), CreateError> {
        if new.reason == OverrideReason::Other
            && new.comment.as_deref().is_none_or(|c| c.trim().is_empty())
        {
            return Err(OverrideRejected::CommentRequired.into());
        }
        if let Some(t) = new.expires_at
            && t <= now
        {
            return Err(OverrideRejected::ExpiresInThePast(t).into());
        }
        if let Some(units) = new.reorder_units {
            if new.verdict != Verdict::Keep {
                return Err(OverrideRejected::ReorderWithoutKeep(new.verdict.as_str()).into());
            }
            if units < 0 {
                return Err(OverrideRejected::NegativeReorder(units).into());
            }
        }
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = &new.idempotency_key {
            let state = self.read();
            if let Some(&i) = state.by_key.get(&(new.user.clone(), key.clone())) {
                let existing = &state.overrides[i];
                let same = existing.style_id == new.style_id
                    && existing.market == new.market
                    && existing.verdict == new.verdict
                    && existing.reason == new.reason
                    && existing.comment == new.comment
                    && existing.expires_at == new.expires_at
                    && existing.reorder_units == new.reorder_units;
                return if same {
                    Ok((existing.clone(), false))
                } else {
                    Err(OverrideRejected::KeyReused.into())
                };
            }
        }
        let seq = self.read().next_seq;
        let o = Override {
            override_id: format!("ov-{}", uuid::Uuid::now_v7().simple()),
            seq,
            style_id: new.style_id,
            market: new.market,
            verdict: new.verdict,
            reason: new.reason,
            comment: new.comment,
            user: new.user,
            created_at: now,
            expires_at: new.expires_at,
            idempotency_key: new.idempotency_key,
            revoked_at: None,
            revoked_by: None,
            reorder_units: new.reorder_units,
            superseded_by: None,
        };
        // One override in force per style and market: the older ones are revoked by
        // the newer, after it is recorded (a crash between leaves the newer in force,
        // as the latest live one is).
        let superseded: Vec<String> = self
            .for_style(&o.style_id)
            .into_iter()
            .filter(|old| old.market == o.market && old.is_live(now))
            .map(|old| old.override_id)
            .collect();
        let seq = self.append(seq, &LogEntry::Created(o.clone()))?;
        let (id, user) = (o.override_id.clone(), o.user.clone());
        self.write_state().apply(seq, LogEntry::Created(o));
        for old in superseded {
            let entry = LogEntry::Revoked {
                override_id: old,
                user: user.clone(),
                at: now,
                superseded_by: Some(id.clone()),
            };
            let next = self.read().next_seq;
            let seq = self.append(next, &entry)?;
            self.write_state().apply(seq, entry);
        }
        let state = self.read();
        Ok((state.overrides[state.by_id[&id]].clone(), true))
    }

    /// Revokes an override, durably. The override stays in the log, marked revoked.
    ///
    /// # Errors
    /// Unknown or already revoked override, or a failed write.
    pub fn revoke(
        &self,
        override_id: &str,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<Override, CreateError> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let seq = {
            let state = self.read();
            let &i = state
                .by_id
                .get(override_id)
                .ok_or_else(|| OverrideRejected::NotFound(override_id.into()))?;
            if state.overrides[i].revoked_at.is_some() {
                return Err(OverrideRejected::AlreadyRevoked(override_id.into()).into());
            }
            state.next_seq
        };
        let entry = LogEntry::Revoked {
            override_id: override_id.into(),
            user: user.into(),
            at: now,
            superseded_by: None,
        };
        let seq = self.append(seq, &entry)?;
        let mut state = self.write_state();
        state.apply(seq, entry);
        Ok(state.overrides[state.by_id[override_id]].clone())
    }

    /// Writes one entry under the first free sequence number at or after `seq`.
    fn append(&self, seq: u64, entry: &LogEntry) -> Result<u64> {
        super::numbered_log::append(&self.storage, DIR, seq, entry)
    }

    /// Changes with every accepted write: a cache of anything derived from overrides is
    /// current while this is unchanged.
    pub fn generation(&self) -> u64 {
        self.read().next_seq
    }

    /// Every override ever made, oldest first.
    pub fn all(&self) -> Vec<Override> {
        self.read().overrides.clone()
    }

    /// The overrides of one style, oldest first.
    pub fn for_style(&self, style_id: &str) -> Vec<Override> {
        self.read()
            .overrides
            .iter()
            .filter(|o| o.style_id == style_id)
            .cloned()
            .collect()
    }

    pub fn get(&self, override_id: &str) -> Option<Override> {
        let state = self.read();
        state
            .by_id
            .get(override_id)
            .map(|&i| state.overrides[i].clone())
    }

    /// The live override of each (style, market) at `now`: the latest one in force.
    pub fn live(&self, now: DateTime<Utc>) -> HashMap<(String, String), Override> {
        let mut live = HashMap::new();
        for o in self.read().overrides.iter().filter(|o| o.is_live(now)) {
            live.insert((o.style_id.clone(), o.market.clone()), o.clone());
        }
        live
    }

    /// The override of each (style, market) that was in force at a past time `t`.
    pub fn live_at(&self, t: DateTime<Utc>) -> HashMap<(String, String), Override> {
        let mut live = HashMap::new();
        for o in self.read().overrides.iter().filter(|o| o.was_live_at(t)) {
            live.insert((o.style_id.clone(), o.market.clone()), o.clone());
        }
        live
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the log is, for messages.
    pub fn location(&self) -> String {
        self.storage.display(DIR)
    }
}

/// A refused or failed override write.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Rejected(#[from] OverrideRejected),
    #[error(transparent)]
    Store(#[from] EngineError),
}

impl CreateError {
    /// What this error means to the caller; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected(OverrideRejected::NotFound(_)) => ErrorKind::NotFound,
            Self::Rejected(OverrideRejected::AlreadyRevoked(_) | OverrideRejected::KeyReused) => {
                ErrorKind::Conflict
            }
            Self::Rejected(
                OverrideRejected::CommentRequired
                | OverrideRejected::ExpiresInThePast(_)
                | OverrideRejected::ReorderWithoutKeep(_)
                | OverrideRejected::NegativeReorder(_),
            ) => ErrorKind::Unprocessable,
            Self::Store(e) => e.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(style: &str, verdict: Verdict, key: Option<&str>) -> NewOverride {
        NewOverride {
            style_id: style.into(),
            market: "ALL".into(),
            verdict,
            reason: OverrideReason::TrendSignal,
            comment: None,
            user: "mia".into(),
            expires_at: None,
            idempotency_key: key.map(Into::into),
            reorder_units: None,
        }
    }

    #[test]
    fn overrides_survive_reopening_in_order_and_a_newer_one_revokes_the_older() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let store = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let (a, _) = store.create(new("S1", Verdict::Keep, None), now).unwrap();
        let (b, _) = store.create(new("S1", Verdict::Drop, None), now).unwrap();
        assert!(b.seq > a.seq);
        let live = store.live(now);
        assert_eq!(live[&("S1".into(), "ALL".into())].verdict, Verdict::Drop);
        // Only one in force per style and market: the older was revoked by the newer.
        let older = store.get(&a.override_id).unwrap();
        assert!(!older.is_live(now));
        assert_eq!(older.superseded_by.as_deref(), Some(b.override_id.as_str()));
        assert_eq!(older.revoked_by.as_deref(), Some("mia"));
        store.revoke(&b.override_id, "lead", now).unwrap();
        assert!(
            store.live(now).is_empty(),
            "revoking the newer revives nothing"
        );
        drop(store);

        let again = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let all = again.all();
        assert_eq!(all.len(), 2, "a revocation never erases");
        assert_eq!(
            all[0].superseded_by.as_deref(),
            Some(b.override_id.as_str())
        );
        assert_eq!(all[1].revoked_by.as_deref(), Some("lead"));
        assert_eq!(all[1].superseded_by, None);
        assert!(again.live(now).is_empty());
        assert!(matches!(
            again.revoke(&b.override_id, "lead", now),
            Err(CreateError::Rejected(OverrideRejected::AlreadyRevoked(_)))
        ));
    }

    #[test]
    fn a_reorder_quantity_goes_with_a_keep_only() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let store = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let with = |verdict, units| NewOverride {
            reorder_units: Some(units),
            ..new("S1", verdict, None)
        };
        let (kept, _) = store.create(with(Verdict::Keep, 120), now).unwrap();
        assert_eq!(kept.reorder_units, Some(120));
        for (verdict, units, refused) in [
            (
                Verdict::Drop,
                10,
                OverrideRejected::ReorderWithoutKeep("drop"),
            ),
            (Verdict::Keep, -1, OverrideRejected::NegativeReorder(-1)),
        ] {
            match store.create(with(verdict, units), now) {
                Err(CreateError::Rejected(r)) => assert_eq!(r, refused),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(store.all().len(), 1, "nothing refused was recorded");
    }

    #[test]
    fn idempotency_keys_make_retries_safe() {
        let dir = tempfile::tempdir().unwrap();
        let store = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let now = Utc::now();
        let (first, created) = store
            .create(new("S1", Verdict::Keep, Some("k1")), now)
            .unwrap();
        assert!(created);
        let (again, created) = store
            .create(new("S1", Verdict::Keep, Some("k1")), now)
            .unwrap();
        assert!(!created);
        assert_eq!(first, again);
        assert_eq!(store.all().len(), 1);
        let err = store
            .create(new("S2", Verdict::Keep, Some("k1")), now)
            .unwrap_err();
        assert!(matches!(
            err,
            CreateError::Rejected(OverrideRejected::KeyReused)
        ));
        drop(store);
        let reopened = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let (after_restart, created) = reopened
            .create(new("S1", Verdict::Keep, Some("k1")), now)
            .unwrap();
        assert!(!created, "keys survive a restart");
        assert_eq!(after_restart.override_id, first.override_id);
    }

    #[test]
    fn rules_are_enforced_and_expired_overrides_lapse() {
        let dir = tempfile::tempdir().unwrap();
        let store = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let now = Utc::now();
        let mut other = new("S1", Verdict::Drop, None);
        other.reason = OverrideReason::Other;
        assert!(matches!(
            store.create(other.clone(), now),
            Err(CreateError::Rejected(OverrideRejected::CommentRequired))
        ));
        other.comment = Some("supplier closed".into());
        other.expires_at = Some(now + chrono::Duration::hours(1));
        store.create(other, now).unwrap();
        assert_eq!(store.live(now).len(), 1);
        assert!(store.live(now + chrono::Duration::hours(2)).is_empty());
    }

    #[test]
    fn concurrent_writers_are_all_recorded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let now = Utc::now();
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..10 {
                        store
                            .create(new(&format!("S{t}-{i}"), Verdict::Keep, None), now)
                            .unwrap();
                    }
                });
            }
        });
        let reopened = OverrideStore::open(Storage::local(dir.path())).unwrap();
        let seqs: Vec<u64> = reopened.all().iter().map(|o| o.seq).collect();
        assert_eq!(seqs, (0..40).collect::<Vec<_>>());
    }
}
