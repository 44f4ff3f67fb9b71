//! The funnel, daily and catalog queries' rows as typed values.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::columns::Columns;
use crate::decision::curves::Curve;
use crate::decision::{DailySales, DemandCurves, Policy, StyleObservation};
use crate::error::Result;
use crate::session::Engine;
use crate::sql::{FunnelSteps, ViewParams};

/// A style of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StyleInfo {
    pub style_id: String,
    pub name: Option<String>,
    pub category: String,
    pub brand: Option<String>,
    pub launch_at: Option<DateTime<Utc>>,
    pub list_price: f64,
    pub unit_cost: f64,
    pub lead_time_days: i64,
    pub moq: i64,
}

/// One style × market × day of the `style_daily` view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyRow {
    pub style_id: String,
    pub market: String,
    pub day: NaiveDate,
    pub views: i64,
    pub carts: i64,
    pub purchases: i64,
    pub units: i64,
    pub returns: i64,
    pub revenue: f64,
    /// Hours in stock that day: under 24 marks a stock-out (or the launch day).
    pub exposure_hours: f64,
}

/// A run's funnel: every style's observation, and the demand curves the funnel weighed
/// in-stock time by (and the profit rule plans with).
#[derive(Debug, Clone)]
pub struct Funnel {
    pub observations: Vec<StyleObservation>,
    pub curves: DemandCurves,
}

impl Engine {
    /// Every style's funnel (per market and pooled) as of `as_of`, using only events and
    /// receipts up to then, with each category's demand curve fitted to the in-stock
    /// daily sales of the launches before it.
    ///
    /// A read: it writes nothing. It reads the rollup as it stands when its rows can be
    /// cut to the policy's windows (whole days), and raw events otherwise; bring the
    /// rollup up to date first ([`Engine::observe_fresh`]) for a run.
    ///
    /// # Errors
    /// The query fails, or a column comes back with a type that cannot be read.
    pub async fn observations(&self, as_of: DateTime<Utc>, policy: &Policy) -> Result<Funnel> {
        let params = policy.view_params(as_of);
        let state = self.rollup().state()?.filter(|s| s.serves(&params));
        let curves = match &state {
            Some(_) => self.demand_curves(&params, policy).await?,
            None => DemandCurves::uniform(fallback_curve(policy)),
        };
        let (by_category, default) = curves.decay_per_day();
        let params = params.with_decay(by_category, default);
        let steps = params.funnel_steps(state.map(|s| s.through));
        tracing::trace!(?steps, "funnel");
        Ok(Funnel {
            observations: self.observations_from(&steps).await?,
            curves,
        })
    }

    /// Brings the rollup up to date, then reads the funnel as of
    /// `as_of`: what a decision run (or a backtest's day) observes.
    ///
    /// # Errors
    /// As [`Engine::refresh_rollup`] and [`Engine::observations`].
    pub async fn observe_fresh(&self, as_of: DateTime<Utc>, policy: &Policy) -> Result<Funnel> {
        let started = std::time::Instant::now();
        self.refresh_rollup(false).await?;
        tracing::debug!(
            seconds = started.elapsed().as_secs_f64(),
            "rollup up to date"
        );
        self.observations(as_of, policy).await
    }

    /// The funnel computed from raw events alone, every category on the policy's
    /// curve: the reference the rollup must match.
    ///
    /// # Errors
    /// As [`Engine::observations`].
    pub async fn observations_from_raw_events(
        &self,
        as_of: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<StyleObservation>> {
        let steps = policy.view_params(as_of).funnel_steps(None);
        self.observations_from(&steps).await
    }

    /// Each category's demand curve, fitted to the rollup's in-stock daily sales of the
    /// launches in the priors' lookback.
    async fn demand_curves(&self, params: &ViewParams, policy: &Policy) -> Result<DemandCurves> {
        let started = std::time::Instant::now();
        let sql = params.daily_sales(policy.priors.lookback_days);
        let mut rows = Vec::new();
        for batch in &self.run_compute(&sql).await? {
            let c = Columns {
                query: "daily_sales",
                batch,
            };
            let (style_id, market, category) = (
                c.texts("style_id")?,
                c.texts("market")?,
                c.texts("category")?,
            );
            let weekday = c.ints("weekday")?;
            let (age, units, exposure) = (
                c.floats("age_days")?,
                c.floats("units")?,
                c.floats("exposure_days")?,
            );
            for i in 0..batch.num_rows() {
                rows.push(DailySales {
                    style_id: style_id[i].clone(),
                    market: market[i].clone(),
                    category: category[i].clone(),
                    age_days: age[i],
                    weekday: weekday[i].clamp(0, 6) as usize,
                    units: units[i],
                    exposure_days: exposure[i],
                });
            }
        }
        let queried = started.elapsed().as_secs_f64();
        // A fixed order: the fit sums floats, and the same data must give the same curve.
        rows.sort_by(|a, b| {
            (&a.style_id, &a.market)
                .cmp(&(&b.style_id, &b.market))
                .then(a.age_days.total_cmp(&b.age_days))
        });
        let curves =
            DemandCurves::estimate(&rows, policy.priors.min_launches, fallback_curve(policy));
        tracing::debug!(
            query_s = queried,
            fit_s = started.elapsed().as_secs_f64() - queried,
            days = rows.len(),
            "demand curves"
        );
        Ok(curves)
    }

    async fn observations_from(&self, steps: &FunnelSteps) -> Result<Vec<StyleObservation>> {
        // The heavy step (events and rollup scans) on the chosen engine, once; the pooled
        // rows from its few thousand rows, here.
        let market_rows = self.run_compute(&steps.market_rows).await?;
        let Some(schema) = market_rows.first().map(RecordBatch::schema) else {
            return Ok(Vec::new());
        };
        let pooled = SessionContext::new();
        pooled.register_table(
            "market_rows",
            Arc::new(MemTable::try_new(schema, vec![market_rows])?),
        )?;
        let mut out = Vec::new();
        for batch in &pooled.sql(&steps.with_pooled).await?.collect().await? {
            let c = Columns {
                query: "style_funnel",
                batch,
            };
            let (style_id, market, category) = (
                c.texts("style_id")?,
                c.texts("market")?,
                c.texts("category")?,
            );
            let (days_live, exposure, early_exposure) = (
                c.floats("days_live")?,
                c.floats("exposure_days")?,
                c.floats("early_exposure_days")?,
            );
            let (decayed, early_decayed, revenue, open_orders) = (
                c.floats("decayed_exposure_days")?,
                c.floats("early_decayed_exposure_days")?,
                c.floats("revenue")?,
                c.ints("open_order_units")?,
            );
            let (early_units, matured_units) =
                (c.floats("early_units")?, c.floats("matured_units")?);
            let sold_out = c.bools("sold_out")?;
            let (views, views_in_stock, carts, purchases) = (
                c.ints("views")?,
                c.ints("views_in_stock")?,
                c.ints("carts")?,
                c.ints("purchases")?,
            );
            let (units_sold, units_returned, matured_returns) = (
                c.ints("units_sold")?,
                c.ints("units_returned")?,
                c.ints("matured_non_size_returns")?,
            );
            let (received, batch_units, on_hand) = (
                c.ints("units_received")?,
                c.ints("test_batch_units")?,
                c.ints("on_hand")?,
            );
            let (price, cost, lead, moq) = (
                c.floats("list_price")?,
                c.floats("unit_cost")?,
                c.floats("lead_time_days")?,
                c.ints("moq")?,
            );
            for i in 0..batch.num_rows() {
                out.push(StyleObservation {
                    style_id: style_id[i].clone(),
                    market: market[i].clone(),
                    category: category[i].clone(),
                    days_live: days_live[i],
                    exposure_days: exposure[i],
                    decayed_exposure_days: decayed[i],
                    early_units: early_units[i],
                    early_exposure_days: early_exposure[i],
                    early_decayed_exposure_days: early_decayed[i],
                    sold_out: sold_out[i],
                    views: views[i],
                    views_in_stock: views_in_stock[i],
                    carts: carts[i],
                    purchases: purchases[i],
                    units_sold: units_sold[i],
                    units_returned: units_returned[i],
                    revenue: revenue[i],
                    matured_units: matured_units[i],
                    matured_non_size_returns: matured_returns[i],
                    units_received: received[i],
                    test_batch_units: batch_units[i],
                    open_order_units: open_orders[i],
                    on_hand: on_hand[i],
                    list_price: price[i],
                    unit_cost: cost[i],
                    lead_time_days: lead[i],
                    moq: moq[i],
                });
            }
        }
        // Deterministic order: the same inputs always give the same run.
        out.sort_by(|a, b| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)));
        Ok(out)
    }

    /// Every style × market × day of the rollup up to `as_of`'s day (whole days),
    /// ordered by style, market and day.
    ///
    /// # Errors
    /// The query fails.
    pub async fn daily(&self, as_of: DateTime<Utc>) -> Result<Vec<DailyRow>> {
        let sql = crate::sql::daily_series(as_of.date_naive());
        let mut out = Vec::new();
        for batch in &self.run_internal(&sql).await? {
            let c = Columns {
                query: "style_daily",
                batch,
            };
            let (style_id, market, day) =
                (c.texts("style_id")?, c.texts("market")?, c.dates("day")?);
            let (views, carts, purchases) =
                (c.ints("views")?, c.ints("carts")?, c.ints("purchases")?);
            let (units, returns, revenue, hours) = (
                c.ints("units")?,
                c.ints("returns")?,
                c.floats("revenue")?,
                c.floats("exposure_hours")?,
            );
            for i in 0..batch.num_rows() {
                let Some(day) = day[i] else { continue };
                out.push(DailyRow {
                    style_id: style_id[i].clone(),
                    market: market[i].clone(),
                    day,
                    views: views[i],
                    carts: carts[i],
                    purchases: purchases[i],
                    units: units[i],
                    returns: returns[i],
                    revenue: revenue[i],
                    exposure_hours: hours[i],
                });
            }
        }
        Ok(out)
    }

    /// Refuses a policy whose category tables name no category of the catalog.
    ///
    /// # Errors
    /// The catalog query fails, or the policy names an unknown category.
    pub async fn check_policy(&self, policy: &Policy) -> Result<()> {
        if policy.categories.is_empty() {
            return Ok(());
        }
        let catalog = self.catalog().await?;
        policy.check_categories(catalog.iter().map(|s| s.category.as_str()))?;
        Ok(())
    }

    /// The style catalog, ordered by style id.
    ///
    /// # Errors
    /// The query fails.
    pub async fn catalog(&self) -> Result<Vec<StyleInfo>> {
        let batches = self
            .run_internal("SELECT * FROM styles ORDER BY style_id")
            .await?;
        let mut out = Vec::new();
        for batch in &batches {
            let c = Columns {
                query: "styles",
                batch,
            };
            let (style_id, name, category, brand) = (
                c.texts("style_id")?,
                c.strings("name")?,
                c.texts("category")?,
                c.strings("brand")?,
            );
            let launch_at = c.timestamps("launch_at")?;
            let (price, cost, lead, moq) = (
                c.floats("list_price")?,
                c.floats("unit_cost")?,
                c.ints("lead_time_days")?,
                c.ints("moq")?,
            );
            for i in 0..batch.num_rows() {
                out.push(StyleInfo {
                    style_id: style_id[i].clone(),
                    name: name[i].clone(),
                    category: category[i].clone(),
                    brand: brand[i].clone(),
                    launch_at: launch_at[i],
                    list_price: price[i],
                    unit_cost: cost[i],
                    lead_time_days: lead[i],
                    moq: moq[i],
                });
            }
        }
        Ok(out)
    }
}

/// The policy's own curve, for categories too thin to fit.
fn fallback_curve(policy: &Policy) -> Curve {
    Curve::fallback(
        policy.defaults.decay_half_life_days,
        policy.defaults.day_dispersion,
    )
}
