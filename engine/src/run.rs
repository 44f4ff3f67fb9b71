//! A decision run: funnel as of a time → decisions → stored run.

use chrono::{DateTime, Utc};

use crate::decision::{self, ALL_MARKETS, Policy, Verdict};
use crate::error::{EngineError, Result};
use crate::session::Engine;
use crate::store::{DecisionRun, RunSummary};

impl Engine {
    /// Computes decisions as of `as_of` (default: the latest event) under `policy`,
    /// stores them as a new immutable run, and makes them queryable as `decisions`.
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
        self.store().register(self.ctx()).await?;
        Ok(run)
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
        let as_of = as_of.unwrap_or_else(|| self.latest_event());
        let observations = self.observations(as_of, policy).await?;
        if observations.is_empty() {
            return Err(EngineError::NothingToDecide {
                as_of: as_of.to_rfc3339(),
            });
        }
        let warnings = self.data_warnings(as_of).await?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let (decisions, wrong_calls) = decision::decide_run(&observations, policy);
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
        };
        Ok(DecisionRun { summary, decisions })
    }

    /// Problems in the input that a run survives but a person should know about.
    async fn data_warnings(&self, as_of: DateTime<Utc>) -> Result<Vec<String>> {
        let as_of = as_of.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let until = format!("event_time <= arrow_cast('{as_of}', 'Timestamp(µs, \"UTC\")')");
        let checks = [
            (
                format!(
                    "SELECT count(*), min(e.style_id), min(CAST(e.event_date AS VARCHAR)) FROM events e \
                     LEFT JOIN styles s ON e.style_id = s.style_id WHERE s.style_id IS NULL AND {until}"
                ),
                "events reference style ids missing from styles.parquet and were left out",
            ),
            (
                format!(
                    "SELECT count(*), min(event_id), min(CAST(event_date AS VARCHAR)) FROM events \
                     WHERE (quantity IS NULL OR quantity <= 0) AND {until}"
                ),
                "events have a quantity below 1 and were left out",
            ),
            (
                format!(
                    "SELECT count(*), min(event_type), min(CAST(event_date AS VARCHAR)) FROM events \
                     WHERE event_type NOT IN ('view', 'cart', 'remove_from_cart', 'purchase', 'return') AND {until}"
                ),
                "events have an unknown event_type (expected view, cart, remove_from_cart, purchase or return)",
            ),
        ];
        let mut warnings = Vec::new();
        for (sql, what) in checks {
            let batches = self.run_internal(&sql).await?;
            let Some(b) = batches.first() else { continue };
            let n = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64)?;
            let n = n
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map_or(0, |a| a.value(0));
            if n > 0 {
                let example = arrow::util::display::array_value_to_string(b.column(1), 0)?;
                let day = arrow::util::display::array_value_to_string(b.column(2), 0)?;
                warnings.push(format!(
                    "{n} {what} (e.g. `{example}` in events/event_date={day})"
                ));
            }
        }
        Ok(warnings)
    }
}
