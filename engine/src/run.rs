//! A decision run: funnel as of a time → decisions → stored run.

use chrono::{DateTime, Utc};

use crate::decision::{self, ALL_MARKETS, Changes, Policy, PreviousCalls, Verdict};
use crate::error::{EngineError, Result};
use crate::rollup::RollupState;
use crate::session::Engine;
use crate::source::schema::EventType;
use crate::store::{DecisionRun, RunSummary};

impl Engine {
    /// Computes decisions as of `as_of` (default: the latest event) under `policy`,
    /// stores them as a new immutable run, and makes them queryable in
    /// `decision_history`. Nobody is served it until it is [published](Engine::publish).
    ///
    /// # Errors
    /// No style had launched by `as_of`, the funnel query failed, or the run could not be
    /// stored.
    pub async fn decide(
        &self,
        as_of: Option<DateTime<Utc>>,
        policy: &Policy,
    ) -> Result<DecisionRun> {
        let run = self.compute(as_of, policy).await?;
        self.store().write_run(&run)?;
        self.register_decisions().await?;
        Ok(run)
    }

    /// Makes a stored run the one served (the `decisions` table, and the API of every
    /// server on this dataset, which picks it up).
    ///
    /// # Errors
    /// No such run, or the publication cannot be written.
    pub async fn publish(&self, run_id: &str, by: &str) -> Result<crate::store::Publication> {
        let publication = self.store().publish(run_id, by)?;
        self.register_decisions().await?;
        Ok(publication)
    }

    /// Computes a run without storing it.
    ///
    /// # Errors
    /// As [`Engine::decide`], less storing.
    pub async fn compute(
        &self,
        as_of: Option<DateTime<Utc>>,
        policy: &Policy,
    ) -> Result<DecisionRun> {
        let newest = self.latest_event();
        let as_of = as_of.unwrap_or(newest);
        if as_of > newest + chrono::Duration::days(1) {
            return Err(EngineError::AsOfBeyondData {
                as_of: as_of.to_rfc3339(),
                newest: newest.to_rfc3339(),
            });
        }
        self.check_policy(policy).await?;
        let started = std::time::Instant::now();
        let mut funnel = self.observe_fresh(as_of, policy).await?;
        // Reorders approved in earlier runs are on order until their lead time passes.
        crate::store::approvals::net_on_order(
            &mut funnel.observations,
            &self.approvals().on_order(as_of),
        );
        if funnel.observations.is_empty() {
            return Err(EngineError::NothingToDecide {
                as_of: as_of.to_rfc3339(),
            });
        }
        let funnel_s = started.elapsed().as_secs_f64();
        let mut warnings = self.data_warnings(as_of, policy).await?;
        let behind = newest - as_of;
        if behind > chrono::Duration::days(1) {
            warnings.push(format!(
                "decided as of {as_of}, {} days before the newest event ({newest}): a look back, not today's decision",
                behind.num_days()
            ));
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let (previous_run_id, previous) = self.previous_calls(as_of)?;
        let checks_s = started.elapsed().as_secs_f64() - funnel_s;
        let (decisions, wrong_calls) =
            decision::decide_run(&funnel.observations, policy, &funnel.curves, &previous);
        tracing::debug!(
            funnel_s,
            checks_s,
            decide_s = started.elapsed().as_secs_f64() - funnel_s - checks_s,
            "decision run computed"
        );
        let pooled = decisions.iter().filter(|d| d.market == ALL_MARKETS);
        let count = |v: Verdict| pooled.clone().filter(|d| d.verdict == v).count();
        let created_at = Utc::now();
        let policy_version = policy.version();
        let summary = RunSummary {
            run_id: format!(
                "{}-{}",
                created_at.format("%Y%m%dT%H%M%S%.3fZ"),
                &uuid::Uuid::now_v7().simple().to_string()[26..]
            ),
            as_of,
            created_at,
            policy_version,
            model_version: decision::MODEL_VERSION.to_string(),
            styles: pooled.clone().count(),
            rows: decisions.len(),
            keep: count(Verdict::Keep),
            drop: count(Verdict::Drop),
            test: count(Verdict::Test),
            wrong_calls,
            warnings,
            previous_run_id,
            changes: Changes::count(&decisions),
        };
        Ok(DecisionRun { summary, decisions })
    }

    /// The calls a run as of `as_of` follows: the published run's, unless it looks
    /// further ahead than `as_of` (a look back follows nothing).
    fn previous_calls(&self, as_of: DateTime<Utc>) -> Result<(Option<String>, PreviousCalls)> {
        let Some(publication) = self.store().published()? else {
            return Ok((None, PreviousCalls::new()));
        };
        let run = self.store().read_run(&publication.run_id)?;
        if run.summary.as_of > as_of {
            return Ok((None, PreviousCalls::new()));
        }
        let calls = run
            .decisions
            .into_iter()
            .map(|d| ((d.style_id, d.market), d.verdict))
            .collect();
        Ok((Some(publication.run_id), calls))
    }

    /// Problems in the input that a run survives but a person should know about: counted
    /// by the rollup for past days and read raw for the rest, like the funnel.
    async fn data_warnings(&self, as_of: DateTime<Utc>, policy: &Policy) -> Result<Vec<String>> {
        let params = policy.view_params(as_of);
        let current = self.rollup().state()?.filter(RollupState::is_current);
        let first_raw_day = match current {
            Some(state) => params.first_raw_day(state.through),
            None => DateTime::<Utc>::UNIX_EPOCH.date_naive(),
        };
        let unknown_types = format!(
            "events have an unknown event_type (expected one of {})",
            EventType::listed()
        );
        // In the order of the query's columns (see `sql/views/data_warnings.sql`).
        let checks: [&str; 3] = [
            "events reference style ids missing from styles.parquet and were left out",
            "events have a quantity below 1 and were left out",
            &unknown_types,
        ];
        let sql = params.data_warnings(first_raw_day);
        let batches = self.run_compute(&sql).await?;
        let mut warnings = Vec::new();
        let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(warnings);
        };
        for (i, what) in checks.iter().enumerate() {
            let n = arrow::compute::cast(b.column(3 * i), &arrow::datatypes::DataType::Int64)?;
            let n = n
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0));
            if n > 0 {
                let example = arrow::util::display::array_value_to_string(b.column(3 * i + 1), 0)?;
                let day = arrow::util::display::array_value_to_string(b.column(3 * i + 2), 0)?;
                warnings.push(format!(
                    "{n} {what} (e.g. style `{example}` in events/event_date={day})"
                ));
            }
        }
        Ok(warnings)
    }
}
