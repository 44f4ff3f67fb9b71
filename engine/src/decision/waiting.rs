//! What waiting before a call is worth.
//!
//! Testing longer shows more of a style's demand, but a reorder placed later lands
//! further down the decay curve and later in the season, and its lead time loses more
//! sales. The plan's draws are what the style may be. Taking each of them in turn as
//! the truth (a scenario), the sales the next `wait_days` would show reweigh all the
//! draws by how likely each makes those sales (importance weights: no new draws); the
//! best order placed then is the reweighted newsvendor quantile of the demand a later
//! order would meet, and is worth its reweighted expected profit. The mean over the
//! scenarios is what deciding later is worth; less what deciding now is worth, it is the
//! value of waiting. The look-ahead is one step: every run reconsiders the call.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::profit::{DrawParams, PlanInputs, SpanNoise, Spans};

/// Expected profit of deciding after `i.wait_days`, less that of deciding now; `now`
/// holds the plan's draws of unmet demand after a reorder placed now arrives.
pub(super) fn value_of_waiting(i: &PlanInputs<'_>, params: &[DrawParams], now: &[f64]) -> f64 {
    let margin = i.value_per_sale - i.salvage_value;
    let overage = i.unit_cost - i.salvage_value;
    let later = i.age_days + i.wait_days.max(0.0);
    let arrival = (later + i.lead_time_days.max(0.0)).min(i.season_days);
    if margin <= overage || params.is_empty() || i.wait_days <= 0.0 {
        return 0.0;
    }
    let (_, deciding_now) = best_order(
        now,
        &ascending(now),
        &vec![1.0; now.len()],
        None,
        margin,
        overage,
        i.moq,
    );
    if arrival >= i.season_days {
        // A reorder placed after waiting would come too late: waiting loses it all.
        return -deciding_now;
    }
    let mut rng = StdRng::seed_from_u64(i.seed ^ 0x5741_4954);
    let open = i.open_order_units.max(0) as f64;
    let n = params.len();
    // Per draw: sales the waiting days show, their expected number, and the demand a
    // reorder placed after waiting would leave unmet.
    let (mut shown, mut expected, mut unmet) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in params {
        let weight = p.curve.integral(i.age_days, later);
        let wait = SpanNoise::new(&p.curve, i.age_days, later, weight);
        let spans = Spans::new(&p.curve, later, arrival, i.season_days);
        let (mut seen, mut mean, mut short) = (0.0, 0.0, 0.0);
        for (market, rate) in i.markets.iter().zip(&p.rates) {
            let stock = market.on_hand.max(0) as f64;
            let d0 = wait.draw(&mut rng, rate * weight);
            let d1 = spans.lead_noise.draw(&mut rng, rate * spans.lead);
            let d2 = spans.after_noise.draw(&mut rng, rate * spans.after);
            // Only a market with stock shows its demand.
            if stock > 0.0 {
                seen += d0.min(stock);
                mean += rate * weight;
            }
            short += (d2 - (stock - d0 - d1).max(0.0)).max(0.0);
        }
        shown.push(seen);
        expected.push(mean);
        unmet.push((short - open).max(0.0));
    }
    let k = i.curve.day_dispersion;
    // Shared by every scenario: each reweighs the same draws.
    let ln_expected: Vec<f64> = expected
        .iter()
        .map(|&mu| if mu > 0.0 { mu.ln() } else { 0.0 })
        .collect();
    let by_unmet = ascending(&unmet);
    // How every draw is weighed once `seen` units have sold (`skip`: a draw left out).
    let weights_for = |seen: f64, skip: Option<usize>| -> Vec<f64> {
        // Noisy days say less: the likelihood is flattened as in the posterior.
        let phi = if k.is_finite() {
            1.0 + seen / i.wait_days / k
        } else {
            1.0
        };
        let log_weights: Vec<f64> = expected
            .iter()
            .zip(&ln_expected)
            .enumerate()
            .map(|(d, (&mu, &ln_mu))| {
                if Some(d) == skip {
                    f64::NEG_INFINITY
                } else if mu > 0.0 {
                    (seen * ln_mu - mu) / phi
                } else if seen > 0.0 {
                    f64::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let top = log_weights
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        log_weights.iter().map(|lw| (lw - top).exp()).collect()
    };
    // The scenario's own draw is left out of the weights and is what the order is then
    // scored against: the order is chosen on what the waiting days show, not on the
    // outcome they cannot show. Sales shown are whole units, so many scenarios show the
    // same number: their weights are computed once and each leaves out its own draw.
    let mut by_shown: Vec<usize> = (0..n).collect();
    by_shown.sort_by(|&a, &b| shown[a].total_cmp(&shown[b]));
    let mut scenarios = vec![0.0; n];
    for group in by_shown.chunk_by(|&a, &b| shown[a] == shown[b]) {
        let shared = weights_for(shown[group[0]], None);
        for &truth in group {
            let rest: f64 = shared
                .iter()
                .enumerate()
                .filter(|&(d, _)| d != truth)
                .map(|(_, w)| w)
                .sum();
            // Where the own draw outweighs all others past f64's range, weigh afresh.
            let own;
            let weights = if rest > 1e-200 {
                &shared
            } else {
                own = weights_for(shown[truth], Some(truth));
                &own
            };
            let (q, _) = best_order(
                &unmet,
                &by_unmet,
                weights,
                Some(truth),
                margin,
                overage,
                i.moq,
            );
            scenarios[truth] = margin * unmet[truth].min(q) - overage * q;
        }
    }
    scenarios.iter().sum::<f64>() / scenarios.len() as f64 - deciding_now
}

/// The indices of `values`, smallest value first (ties in index order).
fn ascending(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

/// The best order against weighted draws of unmet demand (`order`: their indices,
/// smallest first; `skip`: a draw weighed as 0) — the newsvendor quantile, raised to
/// the MOQ, or 0 when that does not pay — and its expected profit.
fn best_order(
    unmet: &[f64],
    order: &[usize],
    weights: &[f64],
    skip: Option<usize>,
    margin: f64,
    overage: f64,
    moq: i64,
) -> (f64, f64) {
    let weight = |d: usize| if Some(d) == skip { 0.0 } else { weights[d] };
    let total: f64 = (0..weights.len()).map(weight).sum();
    if total <= 0.0 || !total.is_finite() {
        return (0.0, 0.0);
    }
    let critical = (margin - overage) / margin * total;
    let mut cumulative = 0.0;
    let mut q = 0.0;
    for &d in order {
        cumulative += weight(d);
        if cumulative >= critical {
            q = unmet[d].ceil();
            break;
        }
    }
    if q <= 0.0 {
        return (0.0, 0.0);
    }
    let q = q.max(moq.max(1) as f64);
    let value = unmet
        .iter()
        .enumerate()
        .map(|(d, y)| weight(d) * (margin * y.min(q) - overage * q))
        .sum::<f64>()
        / total;
    if value > 0.0 { (q, value) } else { (0.0, 0.0) }
}

#[cfg(test)]
mod tests {
    use super::super::curves::Curve;
    use super::super::profit::{self, MarketState, plan_reorder};
    use super::*;

    fn inputs(markets: &[MarketState], curve: Curve, age: f64) -> PlanInputs<'_> {
        PlanInputs {
            curve,
            age_days: age,
            wait_days: 2.0,
            ..profit::tests::inputs(markets)
        }
    }

    /// ~10 units a day at launch, known to a given number of launch-rate days.
    fn known_for(days: f64) -> MarketState {
        MarketState {
            rate_shape: 10.0 * days,
            rate_rate: days,
            exposure_days: days,
            on_hand: 200,
        }
    }

    #[test]
    fn waiting_is_worth_less_the_more_is_known() {
        let curve = Curve {
            half_life_spread: 0.0,
            ..Curve::fallback(28.0, 5.0)
        };
        let vague = [known_for(1.0)];
        let sure = [known_for(60.0)];
        let a = plan_reorder(&inputs(&vague, curve, 3.0));
        let b = plan_reorder(&inputs(&sure, curve, 3.0));
        assert!(a.value_of_waiting > 0.0, "{a:?}");
        assert!(
            b.value_of_waiting < a.value_of_waiting / 4.0,
            "{} vs {}",
            b.value_of_waiting,
            a.value_of_waiting
        );
    }

    #[test]
    fn waiting_is_worth_less_when_demand_decays_fast() {
        let markets = [known_for(3.0)];
        let slow = plan_reorder(&inputs(&markets, Curve::fallback(60.0, 5.0), 3.0));
        let fast = plan_reorder(&inputs(&markets, Curve::fallback(8.0, 5.0), 3.0));
        assert!(
            fast.value_of_waiting < slow.value_of_waiting,
            "{} vs {}",
            fast.value_of_waiting,
            slow.value_of_waiting
        );
    }

    #[test]
    fn the_best_value_is_the_best_order() {
        let unmet: Vec<f64> = (0..100).map(f64::from).collect();
        let weights = vec![1.0; 100];
        let (_, best) = best_order(&unmet, &ascending(&unmet), &weights, None, 20.0, 5.0, 1);
        let brute = (0..=100)
            .map(|q| {
                let q = f64::from(q);
                unmet.iter().map(|y| 20.0 * y.min(q) - 5.0 * q).sum::<f64>() / 100.0
            })
            .fold(0.0, f64::max);
        assert!((best - brute).abs() < 1.0, "{best} vs {brute}");
    }
}
