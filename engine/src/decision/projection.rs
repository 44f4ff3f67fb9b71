//! Where sell-through will end, and how many units to reorder.

use super::numerics::negbin_quantile;
use super::{Rules, StyleObservation};

/// P10, P50 and P90 of projected sell-through of the received units at the end of the
/// planned life. Demand over the remaining `horizon_days` follows the Gamma–Poisson
/// predictive NegBin(a, b/(b+H)); sales are capped by what is on hand.
pub fn projected_sell_through(
    obs: &StyleObservation,
    rate_shape: f64,
    rate_rate: f64,
    horizon_days: f64,
) -> [f64; 3] {
    if obs.units_received <= 0 {
        return [0.0; 3];
    }
    let received = obs.units_received as f64;
    let sold = obs.units_sold.max(0) as f64;
    let on_hand = obs.on_hand.max(0) as f64;
    let p = rate_rate / (rate_rate + horizon_days);
    [0.1, 0.5, 0.9].map(|q| {
        let demand = negbin_quantile(rate_shape, p, q) as f64;
        ((sold + demand.min(on_hand)) / received).min(1.0)
    })
}

/// Newsvendor reorder for a keep: the demand quantile at the critical ratio
/// (price − cost)/price over lead time plus the cover period, less what is on hand,
/// and at least the supplier's minimum order.
pub fn reorder_units(
    obs: &StyleObservation,
    rate_shape: f64,
    rate_rate: f64,
    rules: &Rules,
) -> i64 {
    if obs.list_price <= 0.0 || obs.unit_cost >= obs.list_price {
        return 0;
    }
    let critical_ratio =
        ((obs.list_price - obs.unit_cost.max(0.0)) / obs.list_price).clamp(0.0, 0.999);
    let horizon = obs.lead_time_days.max(0.0) + rules.reorder_cover_days;
    let p = rate_rate / (rate_rate + horizon);
    let demand = negbin_quantile(rate_shape, p, critical_ratio) as i64;
    let need = demand - obs.on_hand.max(0);
    if need <= 0 {
        0
    } else {
        need.max(obs.moq.max(0))
    }
}
