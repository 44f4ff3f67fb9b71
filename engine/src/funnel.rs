//! The funnel query's rows as typed [`StyleObservation`]s, the decision's input.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::{DateTime, Utc};

use crate::decision::{Policy, StyleObservation};
use crate::error::{EngineError, Result};
use crate::session::Engine;
use crate::sql::ViewParams;

const QUERY: &str = "style_funnel";

impl Engine {
    /// Every style's funnel (per market and pooled) as of `as_of`, using only events and
    /// receipts up to then.
    ///
    /// # Errors
    /// The query fails, or a column comes back with a type that cannot be read.
    pub async fn observations(
        &self,
        as_of: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Vec<StyleObservation>> {
        let sql = ViewParams::for_policy(as_of, policy).style_funnel();
        let batches = self.run_internal(&sql).await?;
        let mut out = Vec::new();
        for batch in &batches {
            read_batch(batch, &mut out)?;
        }
        // Deterministic order: the same inputs always give the same run.
        out.sort_by(|a, b| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)));
        Ok(out)
    }
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| EngineError::Column {
            query: QUERY,
            column: name.into(),
            message: "missing".into(),
        })?;
    cast(col, to).map_err(|e| EngineError::Column {
        query: QUERY,
        column: name.into(),
        message: e.to_string(),
    })
}

fn read_batch(batch: &RecordBatch, out: &mut Vec<StyleObservation>) -> Result<()> {
    let text = |name| column(batch, name, &DataType::Utf8);
    let float = |name| column(batch, name, &DataType::Float64);
    let int = |name| column(batch, name, &DataType::Int64);
    let (style_id, market, category) = (text("style_id")?, text("market")?, text("category")?);
    let (style_id, market, category) = (
        style_id.as_string::<i32>(),
        market.as_string::<i32>(),
        category.as_string::<i32>(),
    );
    let sold_out = column(batch, "sold_out", &DataType::Boolean)?;
    let sold_out = sold_out.as_boolean();
    let f = |name| -> Result<Vec<f64>> {
        let a = float(name)?;
        let a = a.as_primitive::<Float64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_null(i) { 0.0 } else { a.value(i) })
            .collect())
    };
    let n = |name| -> Result<Vec<i64>> {
        let a = int(name)?;
        let a = a.as_primitive::<Int64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_null(i) { 0 } else { a.value(i) })
            .collect())
    };
    let days_live = f("days_live")?;
    let exposure = f("exposure_days")?;
    let early_exposure = f("early_exposure_days")?;
    let early_units = f("early_units")?;
    let views = n("views")?;
    let views_in_stock = n("views_in_stock")?;
    let carts = n("carts")?;
    let purchases = n("purchases")?;
    let units_sold = n("units_sold")?;
    let units_returned = n("units_returned")?;
    let matured_units = f("matured_units")?;
    let matured_returns = n("matured_non_size_returns")?;
    let received = n("units_received")?;
    let batch_units = n("test_batch_units")?;
    let on_hand = n("on_hand")?;
    let price = f("list_price")?;
    let cost = f("unit_cost")?;
    let lead = f("lead_time_days")?;
    let moq = n("moq")?;
    for i in 0..batch.num_rows() {
        out.push(StyleObservation {
            style_id: style_id.value(i).to_string(),
            market: market.value(i).to_string(),
            category: category.value(i).to_string(),
            days_live: days_live[i],
            exposure_days: exposure[i],
            early_units: early_units[i],
            early_exposure_days: early_exposure[i],
            sold_out: !sold_out.is_null(i) && sold_out.value(i),
            views: views[i],
            views_in_stock: views_in_stock[i],
            carts: carts[i],
            purchases: purchases[i],
            units_sold: units_sold[i],
            units_returned: units_returned[i],
            matured_units: matured_units[i],
            matured_non_size_returns: matured_returns[i],
            units_received: received[i],
            test_batch_units: batch_units[i],
            on_hand: on_hand[i],
            list_price: price[i],
            unit_cost: cost[i],
            lead_time_days: lead[i],
            moq: moq[i],
        });
    }
    Ok(())
}
