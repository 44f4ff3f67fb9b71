//! What every request shares: the engine, the stores, and an in-memory snapshot of the
//! latest run so reads never wait on a query.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;

use assay_engine::decision::style::expected_days_to_verdict;
use assay_engine::decision::{Decision, Policy};
use assay_engine::sandbox::{Sandbox, SandboxLimits};
use assay_engine::store::overrides::{Override, OverrideStore};
use assay_engine::{DailyRow, Engine, EngineError, RunSummary, StyleInfo};

use super::dto::{DecisionView, decision_view};
use super::error::ApiError;
use crate::auth::TokenStore;

/// The latest run, indexed for reads.
pub struct Snapshot {
    pub run: RunSummary,
    /// Sorted by style, then `ALL` before the markets.
    pub rows: Vec<Decision>,
    pub by_style: HashMap<String, Vec<usize>>,
    pub catalog: HashMap<String, StyleInfo>,
    pub daily: HashMap<String, Vec<DailyRow>>,
    /// Serialized `GET /v1/styles/{id}` answers with the override generation they were
    /// made at: the style page is the hottest read, and its JSON only changes when an
    /// override does (or a new run replaces this snapshot).
    pub style_json: RwLock<HashMap<String, (u64, bytes::Bytes)>>,
}

impl Snapshot {
    async fn load(engine: &Engine, run: RunSummary) -> Result<Self, EngineError> {
        let mut rows = engine.store().read_run(&run.run_id)?.decisions;
        rows.sort_by(|a, b| {
            (
                &a.style_id,
                a.market != assay_engine::decision::ALL_MARKETS,
                &a.market,
            )
                .cmp(&(
                    &b.style_id,
                    b.market != assay_engine::decision::ALL_MARKETS,
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
        Ok(Self {
            run,
            rows,
            by_style,
            catalog,
            daily,
            style_json: RwLock::new(HashMap::new()),
        })
    }

    /// The API view of one row, with its live override applied.
    pub fn view(
        &self,
        d: &Decision,
        live: &HashMap<(String, String), Override>,
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> DecisionView {
        let info = self.catalog.get(&d.style_id);
        let key = (d.style_id.clone(), d.market.clone());
        decision_view(
            d,
            info.and_then(|s| s.name.clone()),
            info.and_then(|s| s.launch_at),
            live.get(&key),
            expected_days_to_verdict(d, policy.rules_for(&d.category)),
            now,
        )
    }
}

pub struct AppState {
    pub engine: Arc<Engine>,
    pub overrides: Arc<OverrideStore>,
    pub tokens: Arc<TokenStore>,
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
        overrides: Arc<OverrideStore>,
        tokens: Arc<TokenStore>,
        policy: Policy,
        metrics: PrometheusHandle,
        sql_limits: SandboxLimits,
    ) -> Self {
        let sandbox =
            Sandbox::new(engine.ctx().clone(), sql_limits).expect("the SQL query runtime starts");
        Self {
            sandbox: Arc::new(sandbox),
            engine,
            overrides,
            tokens,
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

    /// Loads the latest stored run, computing one first if there is none.
    ///
    /// # Errors
    /// The run cannot be computed or read.
    pub async fn load_latest(&self) -> Result<RunSummary, EngineError> {
        let _guard = self.recompute.lock().await;
        // The style page's daily series come from the rollup: a dataset that never had
        // one (the bundled sample, a copied directory) gets it on first start.
        if self.engine.rollup().state()?.is_none() {
            let params =
                assay_engine::sql::ViewParams::for_policy(self.engine.latest_event(), &self.policy);
            let report = self.engine.refresh_rollup(&params, false).await?;
            tracing::info!(?report, "built the daily rollup");
        }
        let run = match self.engine.store().latest_run()? {
            Some(run) => run,
            None => {
                tracing::info!("no decision run stored yet: computing one");
                self.engine.decide(None, &self.policy).await?.summary
            }
        };
        self.install(run.clone()).await?;
        Ok(run)
    }

    /// Computes, stores and serves a new run.
    ///
    /// # Errors
    /// The run cannot be computed, stored or read back.
    pub async fn recompute(&self, as_of: Option<DateTime<Utc>>) -> Result<RunSummary, EngineError> {
        let _guard = self.recompute.lock().await;
        let run = self.engine.decide(as_of, &self.policy).await?.summary;
        self.install(run.clone()).await?;
        Ok(run)
    }

    async fn install(&self, run: RunSummary) -> Result<(), EngineError> {
        let snapshot = Snapshot::load(&self.engine, run).await?;
        tracing::info!(run_id = %snapshot.run.run_id, rows = snapshot.rows.len(), "serving decision run");
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snapshot));
        Ok(())
    }
}
