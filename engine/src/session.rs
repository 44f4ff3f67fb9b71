//! The one DataFusion session assay owns: input tables, views and decision tables.

use std::sync::Arc;

use arrow::array::{Array, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::compute::{self, QueryEngine};
use crate::decision::Policy;
use crate::error::{EngineError, Result};
use crate::rollup::{RefreshReport, Rollup};
use crate::source::{self, BadFiles, Dataset, SetAside, SourceSummary};
use crate::sql;
use crate::store::approvals::ApprovalStore;
use crate::store::overrides::OverrideStore;
use crate::store::{DecisionStore, OverridesTable};

/// Owns the session every consumer (CLI, HTTP, SQL ports) queries.
pub struct Engine {
    ctx: SessionContext,
    /// Where the funnel and rollup queries run: `ctx` itself, or a Ballista session over
    /// the same Parquet tables (overrides and decision runs stay with `ctx`).
    compute: SessionContext,
    query_engine: QueryEngine,
    dataset: Dataset,
    sources: SourceSummary,
    /// Moves forward when new events are ingested ([`Engine::reload_events`]).
    latest_event: std::sync::RwLock<DateTime<Utc>>,
    store: DecisionStore,
    overrides: Arc<OverrideStore>,
    /// Approved reorders: open orders for the runs after them.
    approvals: Arc<ApprovalStore>,
    rollup: Rollup,
    /// Bars and spinners for long work (the rollup, a backtest), when a CLI asks.
    progress: crate::progress::Progress,
    bad_files: BadFiles,
    set_aside: std::sync::Mutex<Vec<SetAside>>,
}

impl Engine {
    /// Opens a dataset: checks and registers its tables, the funnel views as of the
    /// latest event, the decision runs stored with it, and its override log.
    ///
    /// # Errors
    /// Any problem with the input files (see [`source::register_inputs`]), or a dataset
    /// whose events hold no rows.
    pub async fn open(root: impl Into<std::path::PathBuf>) -> Result<Self> {
        Self::open_with(root, BadFiles::Fail).await
    }

    /// Opens a dataset, doing `bad` with unreadable event files, now and whenever the
    /// rollup is refreshed (files that arrive later are checked then).
    ///
    /// # Errors
    /// As [`Engine::open`].
    pub async fn open_with(root: impl Into<std::path::PathBuf>, bad: BadFiles) -> Result<Self> {
        Self::open_on(Dataset::new(root), bad, &QueryEngine::Local).await
    }

    /// Opens a dataset whose funnel and rollup queries run on `engine`.
    ///
    /// # Errors
    /// As [`Engine::open`], or a Ballista engine that cannot be started or reached.
    pub async fn open_on(dataset: Dataset, bad: BadFiles, engine: &QueryEngine) -> Result<Self> {
        // A batch interrupted mid-publish is finished before anything reads the data.
        crate::ingest::recover(&dataset)?;
        let s3 = dataset.storage.s3_settings();
        let ctx = compute::session_context(&QueryEngine::Local, &s3).await?;
        let sources = source::register_inputs(&ctx, &dataset, bad).await?;
        let latest_event = latest_event_time(&ctx)
            .await?
            .ok_or_else(|| EngineError::NoEvents {
                path: dataset.storage.display(source::EVENTS),
            })?;
        let store = DecisionStore::new(dataset.storage.clone());
        let overrides = OverrideStore::open(dataset.storage.clone())?;
        let approvals = ApprovalStore::open(dataset.storage.clone())?;
        ctx.register_table(
            "overrides",
            Arc::new(OverridesTable::new(Arc::clone(&overrides))),
        )?;
        let rollup = Rollup::new(&dataset);
        rollup.register(&ctx).await?;
        let compute = if engine.is_ballista() {
            let compute = compute::session_context(engine, &s3).await?;
            source::register_tables(&compute, &dataset).await?;
            rollup.register(&compute).await?;
            compute
        } else {
            ctx.clone()
        };
        let engine = Self {
            ctx,
            compute,
            query_engine: engine.clone(),
            rollup,
            progress: crate::progress::Progress::default(),
            bad_files: bad,
            set_aside: std::sync::Mutex::new(sources.set_aside.clone()),
            dataset,
            sources,
            latest_event: std::sync::RwLock::new(latest_event),
            store,
            overrides,
            approvals,
        };
        for ctx in engine.contexts() {
            sql::register_views(ctx, &Policy::default().view_params(latest_event)).await?;
        }
        engine.register_decisions().await?;
        Ok(engine)
    }

    /// The sessions that hold the tables: this process's, and Ballista's when chosen.
    fn contexts(&self) -> impl Iterator<Item = &SessionContext> {
        std::iter::once(&self.ctx).chain(self.query_engine.is_ballista().then_some(&self.compute))
    }

    /// Makes the stored runs queryable (`decision_history`, `decisions`,
    /// `decision_runs`), again after a new run or publication.
    pub async fn register_decisions(&self) -> Result<()> {
        for ctx in self.contexts() {
            self.store.register(ctx).await?;
        }
        Ok(())
    }

    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn sources(&self) -> &SourceSummary {
        &self.sources
    }

    pub fn store(&self) -> &DecisionStore {
        &self.store
    }

    /// The approvals of reorders of this dataset.
    pub fn approvals(&self) -> &Arc<ApprovalStore> {
        &self.approvals
    }

    /// The merchandisers' override log of this dataset (also the `overrides` table).
    pub fn overrides(&self) -> &Arc<OverrideStore> {
        &self.overrides
    }

    /// Brings the daily rollup up to date (see [`Rollup`]); it serves every policy.
    ///
    /// # Errors
    /// I/O or a query failure while recomputing.
    pub async fn refresh_rollup(&self, rebuild: bool) -> Result<RefreshReport> {
        self.check_new_event_files()?;
        let report = self
            .rollup
            .refresh(&self.compute, &self.dataset, rebuild, &self.progress)
            .await?;
        if self.query_engine.is_ballista() {
            // Ballista ships only listing tables to its executors: the compute session
            // keeps the files.
            self.rollup.register(&self.ctx).await?;
        }
        self.rollup.hold_in_memory(&self.ctx).await?;
        Ok(report)
    }

    /// Whether long work draws progress on the terminal (off by default).
    pub fn progress(&self) -> &crate::progress::Progress {
        &self.progress
    }

    /// The engine the funnel and rollup queries run on.
    pub fn query_engine(&self) -> &QueryEngine {
        &self.query_engine
    }

    /// Event files set aside as unreadable since the engine opened.
    pub fn set_aside_files(&self) -> Vec<SetAside> {
        self.set_aside
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Checks the event files the rollup has not seen yet, so one that arrived broken
    /// after opening is handled as at opening.
    fn check_new_event_files(&self) -> Result<()> {
        let seen = self.rollup.state()?.map(|s| s.events).unwrap_or_default();
        let new: Vec<String> = source::event_files(&self.dataset.storage)?
            .into_iter()
            .map(|f| f.key)
            .filter(|key| !crate::rollup::is_listed(&seen, key))
            .collect();
        let set_aside = source::check_event_files(&self.dataset, &new, self.bad_files)?;
        if !set_aside.is_empty() {
            self.set_aside
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(set_aside);
        }
        Ok(())
    }

    pub fn rollup(&self) -> &Rollup {
        &self.rollup
    }

    /// The time of the newest event: the default `as_of`.
    pub fn latest_event(&self) -> DateTime<Utc> {
        *self
            .latest_event
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes in events ingested since the engine opened (by this process or another):
    /// the newest event time moves on, and analysts' funnel views are cut as of it.
    /// Returns the newest event time.
    ///
    /// # Errors
    /// The events cannot be read, or the views cannot be registered.
    pub async fn reload_events(&self) -> Result<DateTime<Utc>> {
        let Some(latest) = latest_event_time(&self.ctx).await? else {
            return Ok(self.latest_event());
        };
        if latest != self.latest_event() {
            for ctx in self.contexts() {
                sql::register_views(ctx, &Policy::default().view_params(latest)).await?;
            }
            *self
                .latest_event
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = latest;
        }
        Ok(latest)
    }

    /// Runs one read-only statement from a user: no DDL, no DML, no `SET`, no `COPY`.
    /// It runs on the chosen [`QueryEngine`]; on Ballista every table but `overrides`
    /// (which lives in this process) is there.
    ///
    /// # Errors
    /// A statement that is not read-only, a syntax or planning error, or an execution
    /// failure, with DataFusion's message.
    pub async fn query(&self, text: &str) -> Result<Vec<RecordBatch>> {
        let plan = self.compute.state().create_logical_plan(text).await?;
        check_read_only(&plan).map_err(EngineError::NotAllowed)?;
        Ok(self
            .compute
            .execute_logical_plan(plan)
            .await?
            .collect()
            .await?)
    }

    /// Runs engine-owned SQL (trusted text built by assay) in this process.
    pub(crate) async fn run_internal(&self, text: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.ctx.sql(text).await?.collect().await?)
    }

    /// Runs engine-owned SQL over the whole history on the chosen [`QueryEngine`].
    pub(crate) async fn run_compute(&self, text: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.compute.sql(text).await?.collect().await?)
    }
}

/// What user SQL may do: read. The statement that is not a read, named by its plan
/// node's type (a DDL, DML, `COPY` or `SET` anywhere, subqueries included); `Err` holds
/// what was refused.
pub(crate) fn check_read_only(plan: &LogicalPlan) -> std::result::Result<(), String> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        refused = match node {
            LogicalPlan::Ddl(ddl) => Some(format!("DDL {}", ddl.name())),
            LogicalPlan::Dml(dml) => Some(format!("DML {}", dml.op)),
            LogicalPlan::Copy(_) => Some("DML COPY".to_string()),
            LogicalPlan::Statement(statement) => Some(format!("statement {}", statement.name())),
            _ => None,
        };
        Ok(if refused.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })
    .expect("the visitor itself never fails");
    refused.map_or(Ok(()), Err)
}

async fn latest_event_time(ctx: &SessionContext) -> Result<Option<DateTime<Utc>>> {
    let batches = ctx
        .sql("SELECT max(event_time) AS t FROM events")
        .await?
        .collect()
        .await?;
    let value = batches.first().and_then(|b| {
        let col = b
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()?;
        (!col.is_null(0)).then(|| col.value(0))
    });
    Ok(value.and_then(DateTime::<Utc>::from_timestamp_micros))
}
