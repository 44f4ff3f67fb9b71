//! What every request shares: the engine, the stores, and an in-memory snapshot of the
//! latest run so reads never wait on a query.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;

use assay_engine::decision::style::expected_days_to_verdict;
use assay_engine::decision::{ALL_MARKETS, Decision, Policy, Verdict};
use assay_engine::rollup::RefreshReport;
use assay_engine::sandbox::{Sandbox, SandboxLimits};
use assay_engine::storage::Storage;
use assay_engine::store::approvals::{DecideError, Reorder, ReorderStatus};
use assay_engine::store::jobs::{JobKind, JobStore};
use assay_engine::store::overrides::{Override, OverrideStore};
use assay_engine::store::webhooks::EventType;
use assay_engine::{DailyRow, Engine, EngineError, RunSummary, StyleInfo};

use super::dto::{DecisionView, RowContext, decision_view};
use super::error::ApiError;
use super::jobs::JobOutcome;
use crate::auth::TokenStore;
use crate::webhooks::Webhooks;

/// The latest run, indexed for reads.
pub struct Snapshot {
    pub run: RunSummary,
    /// Sorted by style, then `ALL` before the markets.
    pub rows: Vec<Decision>,
    pub by_style: HashMap<String, Vec<usize>>,
    pub catalog: HashMap<String, StyleInfo>,
    pub daily: HashMap<String, Vec<DailyRow>>,
    /// The model's verdicts in the run published before this one, by style × market:
    /// what tells a merchandiser a call is new.
    pub previous: HashMap<(String, String), Verdict>,
    /// Serialized `GET /v1/styles/{id}` answers with the override generation they were
    /// made at: the style page is the hottest read, and its JSON only changes when an
    /// override does (or a new run replaces this snapshot).
    pub style_json: RwLock<HashMap<String, (u64, bytes::Bytes)>>,
}

impl Snapshot {
    async fn load(engine: &Engine, run: RunSummary) -> Result<Self, EngineError> {
        let mut rows = engine.store().read_run(&run.run_id)?.decisions;
        rows.sort_by(|a, b| {
            (&a.style_id, a.market != ALL_MARKETS, &a.market).cmp(&(
                &b.style_id,
                b.market != ALL_MARKETS,
                &b.market,
            ))
        });
        let mut by_style: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, d) in rows.iter().enumerate() {
            by_style.entry(d.style_id.clone()).or_default().push(i);
        }
        let catalog = engine
            .catalog()
            .await?
            .into_iter()
            .map(|s| (s.style_id.clone(), s))
            .collect();
        let mut daily: HashMap<String, Vec<DailyRow>> = HashMap::new();
        for d in engine.daily(run.as_of).await? {
            daily.entry(d.style_id.clone()).or_default().push(d);
        }
        // A run made after this feature stores the call it followed on each row.
        let previous = if run.previous_run_id.is_some() {
            rows.iter()
                .filter_map(|d| {
                    d.previous_verdict
                        .map(|v| ((d.style_id.clone(), d.market.clone()), v))
                })
                .collect()
        } else {
            match engine.store().published_before(&run.run_id)? {
                Some(p) => engine
                    .store()
                    .read_run(&p.run_id)?
                    .decisions
                    .into_iter()
                    .map(|d| ((d.style_id, d.market), d.verdict))
                    .collect(),
                None => HashMap::new(),
            }
        };
        Ok(Self {
            run,
            rows,
            by_style,
            catalog,
            daily,
            previous,
            style_json: RwLock::new(HashMap::new()),
        })
    }

    /// The API view of one row, with its live override applied: the row's own, else
    /// for a market row the style's pooled one, which applies to every market.
    pub fn view(
        &self,
        d: &Decision,
        live: &HashMap<(String, String), Override>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> DecisionView {
        let info = self.catalog.get(&d.style_id);
        let applied = applied_override(d, live);
        let reorder = effective_reorder(d, applied, || self.pooled_row(&d.style_id));
        decision_view(
            d,
            RowContext {
                name: info.and_then(|s| s.name.clone()),
                launch_at: info.and_then(|s| s.launch_at),
                live: applied,
                reorder_units: reorder,
                expected_days_to_verdict: expected_days_to_verdict(
                    d,
                    policy.rules_for(&d.category),
                ),
                confidence: self.pooled_row(&d.style_id).unwrap_or(d).confidence(),
                previous_verdict: self
                    .previous
                    .get(&(d.style_id.clone(), d.market.clone()))
                    .copied(),
            },
            now,
        )
    }

    /// The reorders this run proposes: market rows whose effective verdict is keep with
    /// units to order (under the overrides `live`).
    pub fn proposals<'a>(
        &'a self,
        live: &HashMap<(String, String), Override>,
    ) -> Vec<(&'a Decision, i64)> {
        self.rows
            .iter()
            .filter(|d| d.market != ALL_MARKETS)
            .filter_map(|d| {
                let applied = applied_override(d, live);
                let verdict = applied.map_or(d.verdict, |o| o.verdict);
                let units = effective_reorder(d, applied, || self.pooled_row(&d.style_id));
                (verdict == Verdict::Keep && units > 0).then_some((d, units))
            })
            .collect()
    }

    fn pooled_row(&self, style_id: &str) -> Option<&Decision> {
        self.by_style
            .get(style_id)?
            .iter()
            .map(|&i| &self.rows[i])
            .find(|d| d.market == ALL_MARKETS)
    }
}

/// The override that applies to a row: its own, else for a market row the style's
/// pooled one, which applies to every market.
pub fn applied_override<'a>(
    d: &Decision,
    live: &'a HashMap<(String, String), Override>,
) -> Option<&'a Override> {
    let own = live.get(&(d.style_id.clone(), d.market.clone()));
    let pooled_override = || live.get(&(d.style_id.clone(), ALL_MARKETS.to_owned()));
    own.or_else(|| (d.market != ALL_MARKETS).then(pooled_override).flatten())
}

/// What buying systems should order for a row: the model's units, or under a keep
/// override the merchandiser's quantity (a pooled one split over the markets as the
/// plan splits its own) or else the plan's proposal; nothing under a drop or test.
pub fn effective_reorder<'a>(
    d: &Decision,
    applied: Option<&Override>,
    pooled: impl FnOnce() -> Option<&'a Decision>,
) -> i64 {
    let Some(o) = applied else {
        return d.reorder_units;
    };
    if o.verdict != Verdict::Keep {
        return 0;
    }
    match o.reorder_units {
        None => d.planned_reorder_units,
        Some(units) if o.market == d.market => units,
        Some(units) => {
            let whole = pooled().map_or(0, |p| p.planned_reorder_units);
            if whole > 0 {
                (units as f64 * d.planned_reorder_units as f64 / whole as f64).round() as i64
            } else {
                0
            }
        }
    }
}

/// The durable records a server keeps beside the engine's.
pub struct Records {
    pub overrides: Arc<OverrideStore>,
    pub tokens: Arc<TokenStore>,
    pub jobs: Arc<JobStore>,
    pub webhooks: Arc<Webhooks>,
}

/// A rule that approves reorders without a person.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoApprove {
    pub min_p_keep: f64,
    pub max_units: i64,
}

impl AutoApprove {
    pub fn applies(&self, d: &Decision, units: i64) -> bool {
        d.p_keep >= self.min_p_keep && units <= self.max_units
    }

    /// The rule in words, as recorded on what it approved.
    pub fn describe(&self) -> String {
        format!(
            "auto-approved: P(keep) ≥ {} and units ≤ {}",
            self.min_p_keep, self.max_units
        )
    }
}

/// How reorders are approved and exported.
#[derive(Debug, Clone, Default)]
pub struct ReorderSettings {
    pub auto_approve: Option<AutoApprove>,
    /// Where exports go: a folder or `s3://bucket/prefix` (default: the dataset's
    /// `exports/`).
    pub export_to: Option<Storage>,
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub reorders: ReorderSettings,
    pub overrides: Arc<OverrideStore>,
    pub tokens: Arc<TokenStore>,
    /// Every ingest, rollup refresh and decision run this server did.
    pub jobs: Arc<JobStore>,
    /// Subscribers, and the outbox of events for them.
    pub webhooks: Arc<Webhooks>,
    pub policy: Policy,
    pub metrics: PrometheusHandle,
    /// Runs analysts' SQL within its limits.
    pub sandbox: Arc<Sandbox>,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// One recomputation at a time.
    recompute: tokio::sync::Mutex<()>,
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        records: Records,
        reorders: ReorderSettings,
        policy: Policy,
        metrics: PrometheusHandle,
        sql_limits: SandboxLimits,
    ) -> Self {
        let Records {
            overrides,
            tokens,
            jobs,
            webhooks,
        } = records;
        let sandbox =
            Sandbox::new(engine.ctx().clone(), sql_limits).expect("the SQL query runtime starts");
        Self {
            sandbox: Arc::new(sandbox),
            engine,
            overrides,
            tokens,
            jobs,
            webhooks,
            reorders,
            policy,
            metrics,
            snapshot: RwLock::new(None),
            recompute: tokio::sync::Mutex::new(()),
        }
    }

    /// The current snapshot; 503 before the first one is loaded.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, ApiError> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                ApiError::of(
                    assay_engine::ErrorKind::Unavailable,
                    "no decision run is loaded yet; try again shortly",
                )
            })
    }

    pub fn is_ready(&self) -> bool {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Loads the published run, computing and publishing one first if none ever was.
    ///
    /// # Errors
    /// The run cannot be computed or read.
    pub async fn load_published(&self) -> Result<RunSummary, EngineError> {
        let _guard = self.recompute.lock().await;
        // The style page's daily series come from the rollup: a dataset that never had
        // one (the bundled sample, a copied directory), or has one of an older layout,
        // gets it on first start.
        let current = self.engine.rollup().state()?;
        if !current.is_some_and(|s| s.is_current()) {
            let report = self.refresh_rollup("assay serve").await?;
            tracing::info!(?report, "built the daily rollup");
        }
        let run = match self.engine.store().published()? {
            Some(published) => {
                let run = self.engine.store().run_summary(&published.run_id)?;
                self.install(run.clone()).await?;
                run
            }
            None => {
                tracing::info!("no decision run published yet: computing one and publishing it");
                let step = self
                    .engine
                    .progress()
                    .step("computing the first decision run");
                let run = self.decide(None, true, "assay serve").await?;
                step.finish_and_clear();
                run
            }
        };
        Ok(run)
    }

    /// Brings the daily rollup up to date with the events, as a job started by
    /// `trigger`.
    ///
    /// # Errors
    /// The rollup cannot be read, computed or written.
    pub async fn refresh_rollup(&self, trigger: &str) -> Result<RefreshReport, EngineError> {
        self.run_job(JobKind::Rollup, trigger, None, async {
            let report = self.engine.refresh_rollup(false).await?;
            let outcome = JobOutcome {
                rows: Some(report.rows_written as u64),
                note: Some(match report.from {
                    Some(from) => format!("days {from} … {}", report.through),
                    None => format!("up to date through {}", report.through),
                }),
                ..JobOutcome::default()
            };
            Ok((report, outcome))
        })
        .await
    }

    /// Computes and stores a new run as a job started by `by`, and serves it when
    /// `publish`. One run at a time; a run that fails leaves the served one served.
    ///
    /// # Errors
    /// The run cannot be computed, stored or read back.
    pub async fn recompute(
        &self,
        as_of: Option<DateTime<Utc>>,
        publish: bool,
        by: &str,
    ) -> Result<RunSummary, EngineError> {
        let _guard = self.recompute.lock().await;
        self.decide(as_of, publish, by).await
    }

    /// [`AppState::recompute`] under its lock.
    async fn decide(
        &self,
        as_of: Option<DateTime<Utc>>,
        publish: bool,
        by: &str,
    ) -> Result<RunSummary, EngineError> {
        self.run_job(JobKind::Decide, by, None, async {
            let run = self.engine.decide(as_of, &self.policy).await?.summary;
            if publish {
                self.engine.publish(&run.run_id, by).await?;
                self.install(run.clone()).await?;
            }
            let outcome = JobOutcome {
                rows: Some(run.rows as u64),
                run_id: Some(run.run_id.clone()),
                note: Some(format!(
                    "as of {}: {} keep, {} drop, {} test{}",
                    run.as_of.to_rfc3339(),
                    run.keep,
                    run.drop,
                    run.test,
                    if publish {
                        "; published"
                    } else {
                        "; stored, not published"
                    }
                )),
                ..JobOutcome::default()
            };
            Ok((run, outcome))
        })
        .await
    }

    /// The run id published on this dataset, by this server or another process
    /// (`assay decide --publish`).
    pub fn published_id(&self) -> Result<Option<String>, EngineError> {
        Ok(self.engine.store().published()?.map(|p| p.run_id))
    }

    /// Serves what another process published, checking every `every`; ends with the
    /// state.
    pub async fn follow_publications(state: std::sync::Weak<Self>, every: std::time::Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            if let Err(e) = state.serve_newly_published().await {
                tracing::warn!("checking for a newly published run: {e}");
            }
        }
    }

    async fn serve_newly_published(&self) -> Result<(), EngineError> {
        let served = self.snapshot().ok().map(|s| s.run.run_id.clone());
        let Some(published) = self.published_id()? else {
            return Ok(());
        };
        if served.as_ref() == Some(&published) {
            return Ok(());
        }
        let _guard = self.recompute.lock().await;
        let summary = self.engine.store().run_summary(&published)?;
        // `decisions` in this process's SQL still names the old run.
        self.engine.register_decisions().await?;
        tracing::info!(run_id = %published, "a newly published run: serving it");
        self.install(summary).await
    }

    /// Records `run.completed` and `decision.changed` for a run about to be served,
    /// once per run: against the run served before it here, or at start against the
    /// run published before it. Overrides count as they are now on both sides, so the
    /// changes are the model's.
    fn announce(&self, next: &Snapshot) -> Result<(), EngineError> {
        let run_id = &next.run.run_id;
        if !self
            .webhooks
            .store
            .has_event(EventType::DecisionChanged, run_id)
        {
            let served = self.snapshot().ok().filter(|s| &s.run.run_id != run_id);
            let (previous_run_id, rows) = match served {
                Some(s) => (Some(s.run.run_id.clone()), s.rows.clone()),
                None => match self.engine.store().published_before(run_id)? {
                    Some(p) => (
                        Some(p.run_id.clone()),
                        self.engine.store().read_run(&p.run_id)?.decisions,
                    ),
                    None => (None, Vec::new()),
                },
            };
            let live = self.overrides.live(Utc::now());
            let items = super::feed::changes(&rows, &live, &next.rows, &live, None);
            if previous_run_id.is_some() && !items.is_empty() {
                self.webhooks.emit(
                    EventType::DecisionChanged,
                    run_id,
                    &serde_json::json!({
                        "run_id": run_id,
                        "previous_run_id": previous_run_id,
                        "items": items,
                    }),
                )?;
            }
        }
        self.webhooks.emit(
            EventType::RunCompleted,
            run_id,
            &super::dto::RunView::of(&next.run, true),
        )?;
        if let Some(rule) = self.reorders.auto_approve {
            let live = self.overrides.live(Utc::now());
            for (d, units) in next.proposals(&live) {
                if !rule.applies(d, units)
                    || self
                        .engine
                        .approvals()
                        .get(&Reorder::id(run_id, &d.style_id, &d.market))
                        .is_some()
                {
                    continue;
                }
                let reorder = new_reorder(next, d, units, ReorderStatus::Approved, "auto-approve");
                let reorder = Reorder {
                    auto_rule: Some(rule.describe()),
                    ..reorder
                };
                self.record_reorder(reorder).map_err(|e| match e {
                    DecideError::Store(e) => e,
                    other => EngineError::Store {
                        path: "approvals".into(),
                        message: other.to_string(),
                    },
                })?;
            }
        }
        Ok(())
    }

    /// Records a decision on a reorder, and for an approval its `reorder.approved`
    /// event, before either is acknowledged.
    ///
    /// # Errors
    /// The reorder was already decided, or a write failed.
    pub fn record_reorder(&self, reorder: Reorder) -> Result<Reorder, DecideError> {
        let reorder = self.engine.approvals().decide(reorder)?;
        if reorder.status == ReorderStatus::Approved {
            self.webhooks.emit(
                EventType::ReorderApproved,
                &reorder.reorder_id,
                &super::dto::ReorderView::of(&reorder),
            )?;
        }
        Ok(reorder)
    }

    /// Records `override.created` for overrides a server stopped before it could (the
    /// override was stored, its event not yet).
    ///
    /// # Errors
    /// The outbox cannot be written.
    pub fn announce_missed_overrides(&self) -> Result<(), EngineError> {
        let now = Utc::now();
        for o in self.overrides.all() {
            if !self
                .webhooks
                .store
                .has_event(EventType::OverrideCreated, &o.override_id)
            {
                self.webhooks.emit(
                    EventType::OverrideCreated,
                    &o.override_id,
                    &super::dto::OverrideView::new(&o, now),
                )?;
            }
        }
        Ok(())
    }

    async fn install(&self, run: RunSummary) -> Result<(), EngineError> {
        let snapshot = Snapshot::load(&self.engine, run).await?;
        self.announce(&snapshot)?;
        tracing::info!(run_id = %snapshot.run.run_id, rows = snapshot.rows.len(), "serving decision run");
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snapshot));
        Ok(())
    }
}

/// A decision on the reorder `d` proposes in the run of `snapshot`, made now by `by`.
pub fn new_reorder(
    snapshot: &Snapshot,
    d: &Decision,
    units: i64,
    status: ReorderStatus,
    by: &str,
) -> Reorder {
    Reorder {
        reorder_id: Reorder::id(&snapshot.run.run_id, &d.style_id, &d.market),
        run_id: snapshot.run.run_id.clone(),
        run_as_of: snapshot.run.as_of,
        style_id: d.style_id.clone(),
        market: d.market.clone(),
        category: d.category.clone(),
        units: if status == ReorderStatus::Rejected {
            0
        } else {
            units
        },
        proposed_units: units,
        status,
        by: by.to_owned(),
        comment: None,
        decided_at: Utc::now(),
        auto_rule: None,
        lead_time_days: snapshot
            .catalog
            .get(&d.style_id)
            .map_or(0.0, |s| s.lead_time_days as f64),
        export_id: None,
        exported_at: None,
    }
}
