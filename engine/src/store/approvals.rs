//! Approvals of reorders: a keep's reorder in a published run is proposed; a
//! merchandiser (or a rule) approves or rejects it; an export hands the approved ones to
//! the ERP. An approved reorder is an open order for the runs after it (netted like a
//! receipt on order) until its lead time has passed.
//!
//! The log is append-only like the override log: each decision or export is one JSON
//! file, `approvals/<seq>.json`, created only if its number is free, durable before it
//! is acknowledged, never rewritten.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::decision::{ALL_MARKETS, StyleObservation};
use crate::error::{EngineError, Result};
use crate::storage::Storage;

const DIR: &str = "approvals";

/// Where a reorder stands (a proposal has no record yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReorderStatus {
    Approved,
    Rejected,
    /// Approved and written to an export for the ERP.
    Exported,
}

impl ReorderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReorderStatus::Approved => "approved",
            ReorderStatus::Rejected => "rejected",
            ReorderStatus::Exported => "exported",
        }
    }
}

/// A reorder of one run, style and market, as decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reorder {
    /// `<run_id>/<style_id>/<market>`.
    pub reorder_id: String,
    pub run_id: String,
    /// The run's as-of: from then on, an approved reorder is on order.
    pub run_as_of: DateTime<Utc>,
    pub style_id: String,
    pub market: String,
    pub category: String,
    /// Units ordered (what was proposed, or what the approver set); 0 when rejected.
    pub units: i64,
    /// What the run proposed.
    pub proposed_units: i64,
    pub status: ReorderStatus,
    pub by: String,
    pub comment: Option<String>,
    pub decided_at: DateTime<Utc>,
    /// The rule that approved it without a person, in words.
    pub auto_rule: Option<String>,
    /// Days from order to receipt (the catalog's): how long it stays on order.
    pub lead_time_days: f64,
    pub export_id: Option<String>,
    pub exported_at: Option<DateTime<Utc>>,
}

impl Reorder {
    pub fn id(run_id: &str, style_id: &str, market: &str) -> String {
        format!("{run_id}/{style_id}/{market}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LogEntry {
    Decided(Box<Reorder>),
    Exported {
        export_id: String,
        reorder_ids: Vec<String>,
        at: DateTime<Utc>,
    },
}

/// Why a decision on a reorder was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApprovalRejected {
    #[error("reorder `{0}` was already {1}")]
    AlreadyDecided(String, &'static str),
    #[error("units must be 1 or more for an approval, not {0}")]
    BadUnits(i64),
}

#[derive(Debug, Default)]
struct State {
    reorders: BTreeMap<String, Reorder>,
    next_seq: u64,
}

impl State {
    fn apply(&mut self, seq: u64, entry: LogEntry) {
        self.next_seq = self.next_seq.max(seq + 1);
        match entry {
            LogEntry::Decided(r) => {
                self.reorders.entry(r.reorder_id.clone()).or_insert(*r);
            }
            LogEntry::Exported {
                export_id,
                reorder_ids,
                at,
            } => {
                for id in reorder_ids {
                    if let Some(r) = self.reorders.get_mut(&id) {
                        r.status = ReorderStatus::Exported;
                        r.export_id = Some(export_id.clone());
                        r.exported_at = Some(at);
                    }
                }
            }
        }
    }
}

/// A refused or failed decision.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Rejected(#[from] ApprovalRejected),
    #[error(transparent)]
    Store(#[from] EngineError),
}

impl DecideError {
    /// What this error means to the caller; see [`crate::error::ErrorKind`].
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::Rejected(ApprovalRejected::AlreadyDecided(..)) => {
                crate::error::ErrorKind::Conflict
            }
            Self::Rejected(ApprovalRejected::BadUnits(_)) => crate::error::ErrorKind::Unprocessable,
            Self::Store(e) => e.kind(),
        }
    }
}

/// The durable approval log and its in-memory view.
#[derive(Debug)]
pub struct ApprovalStore {
    storage: Storage,
    state: RwLock<State>,
    write: Mutex<()>,
}

impl ApprovalStore {
    /// Opens the log in the dataset at `storage`.
    ///
    /// # Errors
    /// The log cannot be listed, read or parsed (named).
    pub fn open(storage: Storage) -> Result<Arc<Self>> {
        let mut state = State::default();
        for (seq, entry) in super::numbered_log::read_all(&storage, DIR, "approval entry")? {
            state.apply(seq, entry);
        }
        Ok(Arc::new(Self {
            storage,
            state: RwLock::new(state),
            write: Mutex::new(()),
        }))
    }

    /// Records a decision on a reorder, durably, before returning it.
    ///
    /// # Errors
    /// The reorder was already decided, an approval of no units, or a failed write.
    pub fn decide(&self, reorder: Reorder) -> std::result::Result<Reorder, DecideError> {
        if reorder.status == ReorderStatus::Approved && reorder.units < 1 {
            return Err(ApprovalRejected::BadUnits(reorder.units).into());
        }
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = self.get(&reorder.reorder_id) {
            return Err(ApprovalRejected::AlreadyDecided(
                existing.reorder_id,
                existing.status.as_str(),
            )
            .into());
        }
        let entry = LogEntry::Decided(Box::new(reorder.clone()));
        let seq = self.append(&entry)?;
        self.write_state().apply(seq, entry);
        Ok(reorder)
    }

    /// Marks approved reorders exported under `export_id`, durably.
    ///
    /// # Errors
    /// The log cannot be written.
    pub fn mark_exported(
        &self,
        export_id: &str,
        reorder_ids: Vec<String>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let entry = LogEntry::Exported {
            export_id: export_id.to_owned(),
            reorder_ids,
            at,
        };
        let seq = self.append(&entry)?;
        self.write_state().apply(seq, entry);
        Ok(())
    }

    pub fn get(&self, reorder_id: &str) -> Option<Reorder> {
        self.read().reorders.get(reorder_id).cloned()
    }

    /// Every decided reorder in `status` (all when `None`), by id.
    pub fn list(&self, status: Option<ReorderStatus>) -> Vec<Reorder> {
        self.read()
            .reorders
            .values()
            .filter(|r| status.is_none_or(|s| r.status == s))
            .cloned()
            .collect()
    }

    /// Units approved (or exported) and still on order at `as_of`, by style and market:
    /// approved in a run as of `as_of` or before, whose lead time has not passed.
    pub fn on_order(&self, as_of: DateTime<Utc>) -> HashMap<(String, String), i64> {
        let mut open = HashMap::new();
        for r in self.read().reorders.values() {
            let arrives =
                r.run_as_of + Duration::milliseconds((r.lead_time_days * 86_400_000.0) as i64);
            if r.status != ReorderStatus::Rejected && r.run_as_of <= as_of && as_of < arrives {
                *open
                    .entry((r.style_id.clone(), r.market.clone()))
                    .or_insert(0) += r.units;
            }
        }
        open
    }

    fn append(&self, entry: &LogEntry) -> Result<u64> {
        super::numbered_log::append(&self.storage, DIR, self.read().next_seq, entry)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reorders as the ERP reads them: CSV (a header, one row per reorder, every field of
/// [`Reorder`]) and Parquet with the same columns (times as RFC 3339 text in both).
///
/// # Errors
/// A value that does not fit its column (never for what `Reorder` holds).
pub fn export_files(reorders: &[Reorder]) -> Result<(Vec<u8>, Vec<u8>)> {
    let fail = |e: &dyn std::fmt::Display| EngineError::Store {
        path: DIR.into(),
        message: format!("writing an export: {e}"),
    };
    let mut csv = csv::Writer::from_writer(Vec::new());
    for r in reorders {
        csv.serialize(r).map_err(|e| fail(&e))?;
    }
    if reorders.is_empty() {
        csv.write_record(EXPORT_COLUMNS).map_err(|e| fail(&e))?;
    }
    let csv = csv.into_inner().map_err(|e| fail(&e))?;
    // Explicit columns: times serialize as RFC 3339 text, which tracing cannot see.
    let fields: Vec<arrow::datatypes::FieldRef> = EXPORT_COLUMNS
        .iter()
        .map(|&name| {
            let data_type = match name {
                "units" | "proposed_units" => arrow::datatypes::DataType::Int64,
                "lead_time_days" => arrow::datatypes::DataType::Float64,
                _ => arrow::datatypes::DataType::Utf8,
            };
            Arc::new(arrow::datatypes::Field::new(name, data_type, true))
        })
        .collect();
    let batch = serde_arrow::to_record_batch(&fields, &reorders).map_err(|e| fail(&e))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        Vec::new(),
        batch.schema(),
        Some(crate::parquet_io::writer_properties()),
    )?;
    writer.write(&batch)?;
    Ok((csv, writer.into_inner()?))
}

/// The export's columns, for the header of an empty CSV.
const EXPORT_COLUMNS: [&str; 16] = [
    "reorder_id",
    "run_id",
    "run_as_of",
    "style_id",
    "market",
    "category",
    "units",
    "proposed_units",
    "status",
    "by",
    "comment",
    "decided_at",
    "auto_rule",
    "lead_time_days",
    "export_id",
    "exported_at",
];

/// Counts approved reorders still on order as open orders: a market row's open orders
/// are at least its approved units (a receipt the ERP already recorded for the same
/// order is not counted twice), and a pooled row's at least its markets' together.
pub fn net_on_order(
    observations: &mut [StyleObservation],
    on_order: &HashMap<(String, String), i64>,
) {
    if on_order.is_empty() {
        return;
    }
    let mut by_style: HashMap<&str, i64> = HashMap::new();
    for ((style, market), units) in on_order {
        if market != ALL_MARKETS {
            *by_style.entry(style.as_str()).or_insert(0) += units;
        }
    }
    for obs in observations.iter_mut() {
        let approved = if obs.market == ALL_MARKETS {
            by_style.get(obs.style_id.as_str()).copied()
        } else {
            on_order
                .get(&(obs.style_id.clone(), obs.market.clone()))
                .copied()
        };
        if let Some(units) = approved {
            obs.open_order_units = obs.open_order_units.max(units);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-10-{day:02}T06:00:00Z"))
            .unwrap()
            .to_utc()
    }

    fn reorder(run: &str, market: &str, units: i64, status: ReorderStatus) -> Reorder {
        Reorder {
            reorder_id: Reorder::id(run, "ST1", market),
            run_id: run.into(),
            run_as_of: at(10),
            style_id: "ST1".into(),
            market: market.into(),
            category: "tops".into(),
            units,
            proposed_units: units,
            status,
            by: "mia".into(),
            comment: None,
            decided_at: at(10),
            auto_rule: None,
            lead_time_days: 14.0,
            export_id: None,
            exported_at: None,
        }
    }

    #[test]
    fn decisions_are_durable_once_each_and_exports_mark_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(Storage::local(dir.path())).unwrap();
        let us = store
            .decide(reorder("r1", "US", 120, ReorderStatus::Approved))
            .unwrap();
        store
            .decide(reorder("r1", "DE", 0, ReorderStatus::Rejected))
            .unwrap();
        let again = store.decide(reorder("r1", "US", 50, ReorderStatus::Approved));
        assert!(matches!(
            again,
            Err(DecideError::Rejected(ApprovalRejected::AlreadyDecided(..)))
        ));
        assert!(matches!(
            store.decide(reorder("r2", "US", 0, ReorderStatus::Approved)),
            Err(DecideError::Rejected(ApprovalRejected::BadUnits(0)))
        ));
        store
            .mark_exported("ex1", vec![us.reorder_id.clone()], at(11))
            .unwrap();
        drop(store);
        let store = ApprovalStore::open(Storage::local(dir.path())).unwrap();
        let exported = store.list(Some(ReorderStatus::Exported));
        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].export_id.as_deref(), Some("ex1"));
        assert_eq!(store.list(Some(ReorderStatus::Rejected)).len(), 1);
        let (csv, parquet) = export_files(&exported).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(text.lines().next().unwrap(), EXPORT_COLUMNS.join(","));
        assert!(
            text.lines().nth(1).unwrap().starts_with("r1/ST1/US,r1,"),
            "{text}"
        );
        let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(parquet),
        )
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
        assert_eq!(rows, 1);
    }

    #[test]
    fn approved_units_are_on_order_for_one_lead_time_and_netted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(Storage::local(dir.path())).unwrap();
        store
            .decide(reorder("r1", "US", 120, ReorderStatus::Approved))
            .unwrap();
        store
            .decide(reorder("r1", "DE", 0, ReorderStatus::Rejected))
            .unwrap();
        assert!(store.on_order(at(9)).is_empty(), "not before its run");
        assert!(store.on_order(at(24)).is_empty(), "received after 14 days");
        let open = store.on_order(at(12));
        assert_eq!(open.len(), 1);
        let obs = |market: &str, open: i64| StyleObservation {
            style_id: "ST1".into(),
            market: market.into(),
            open_order_units: open,
            ..StyleObservation::default()
        };
        // The ERP's own receipt of 100 for the US is the same order: max, not sum.
        let mut rows = vec![obs(ALL_MARKETS, 100), obs("US", 100), obs("DE", 0)];
        net_on_order(&mut rows, &open);
        let units: Vec<i64> = rows.iter().map(|o| o.open_order_units).collect();
        assert_eq!(units, [120, 120, 0]);
    }
}
