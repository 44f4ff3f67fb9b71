//! One style's decision: posteriors, probabilities, the rule, projection and reorder.

use super::numerics::{beta_sf, gamma_cdf, gamma_sf};
use super::projection::{projected_sell_through, reorder_units};
use super::{Decision, GammaPrior, Priors, Reason, Rules, StyleObservation, Verdict};

/// Decides one observation under its rules, starting from `priors` (the
/// `sell_through` rule).
pub fn decide_style(obs: &StyleObservation, priors: &Priors, rules: &Rules) -> Decision {
    let posterior = GammaPrior {
        shape: priors.rate.shape + obs.units_sold.max(0) as f64,
        rate: priors.rate.rate + obs.exposure_days.max(0.0),
    };
    let remaining_days = (rules.planned_life_days - obs.days_live).max(0.0);
    let Measured {
        mut decision,
        p_high_returns,
        matured,
    } = measure(obs, priors, rules, posterior, 1.0, remaining_days, 1.0);
    let (verdict, reasons, p_wrong) = rule(&RuleInputs {
        obs,
        rules,
        has_batch: obs.test_batch_units > 0,
        p_keep: decision.p_keep,
        p_drop: decision.p_drop,
        p_high_returns,
        matured,
    });
    decision.planned_reorder_units = reorder_units(obs, posterior.shape, posterior.rate, rules);
    if verdict == Verdict::Keep {
        decision.reorder_units = decision.planned_reorder_units;
    }
    decision.verdict = verdict;
    decision.reasons = reasons;
    decision.p_wrong = p_wrong;
    decision
}

/// A row's numbers before its verdict: the row (verdict `test`, no reasons, no
/// reorder), the probability of excessive returns and the matured units it rests on.
pub(crate) struct Measured {
    pub decision: Decision,
    pub p_high_returns: f64,
    pub matured: f64,
}

/// Everything but the verdict, from the rate's posterior. `life_mean` is the mean of
/// the demand curve over the planned life (the posterior is on the launch rate, the
/// levels on the mean rate over the life), `horizon` the launch-rate days left in the
/// planned life, `rate_now` the curve's value today.
pub(crate) fn measure(
    obs: &StyleObservation,
    priors: &Priors,
    rules: &Rules,
    posterior: GammaPrior,
    life_mean: f64,
    horizon: f64,
    rate_now: f64,
) -> Measured {
    let batch = obs.test_batch_units.max(0) as f64;
    let keep_rate = rules.keep_sell_through * batch / rules.planned_life_days;
    let drop_rate = rules.drop_sell_through * batch / rules.planned_life_days;
    let (rate_shape, rate_rate) = (posterior.shape, posterior.rate);
    // With no test batch there is no bar to clear: neither probability is meaningful.
    let (p_keep, p_drop) = if batch > 0.0 {
        (
            gamma_sf(rate_shape, rate_rate, keep_rate / life_mean),
            gamma_cdf(rate_shape, rate_rate, drop_rate / life_mean),
        )
    } else {
        (0.0, 0.0)
    };

    let purchases = obs.purchases.max(0) as f64;
    let conv_alpha = priors.conversion.alpha + purchases;
    let conv_beta =
        priors.conversion.beta + (obs.views_in_stock.max(0) as f64 - purchases).max(0.0);
    let returned = obs.matured_non_size_returns.max(0) as f64;
    let matured = obs.matured_units.max(0.0);
    let return_alpha = priors.returns.alpha + returned;
    let return_beta = priors.returns.beta + (matured - returned).max(0.0);
    let p_high_returns = beta_sf(return_alpha, return_beta, rules.return_rate_limit);

    let projection = projected_sell_through(obs, rate_shape, rate_rate, horizon);
    let mean_rate = rate_shape / rate_rate * rate_now;
    let days_of_cover = if mean_rate > 0.0 {
        obs.on_hand.max(0) as f64 / mean_rate
    } else {
        f64::INFINITY
    };
    // Units sold net of returns over units received: restocked returns resold would
    // otherwise count twice and push it past 100 %.
    let sell_through = if obs.units_received > 0 {
        ((obs.units_sold - obs.units_returned).max(0) as f64 / obs.units_received as f64).min(1.0)
    } else {
        0.0
    };
    let price_paid = if obs.units_sold > 0 && obs.revenue > 0.0 {
        obs.revenue / obs.units_sold as f64
    } else {
        obs.list_price
    };

    Measured {
        decision: Decision {
            style_id: obs.style_id.clone(),
            market: obs.market.clone(),
            category: obs.category.clone(),
            days_live: obs.days_live,
            exposure_days: obs.exposure_days,
            sold_out: obs.sold_out,
            views: obs.views,
            carts: obs.carts,
            purchases: obs.purchases,
            units_sold: obs.units_sold,
            units_returned: obs.units_returned,
            units_received: obs.units_received,
            on_hand: obs.on_hand,
            sell_through,
            prior_shape: priors.rate.shape,
            prior_rate: priors.rate.rate,
            rate_shape,
            rate_rate,
            keep_rate,
            drop_rate,
            p_keep,
            p_drop,
            conv_alpha,
            conv_beta,
            return_alpha,
            return_beta,
            projected_st_p10: projection[0],
            projected_st_p50: projection[1],
            projected_st_p90: projection[2],
            days_of_cover,
            reorder_units: 0,
            planned_reorder_units: 0,
            verdict: Verdict::Test,
            reasons: Vec::new(),
            decayed_exposure_days: obs.decayed_exposure_days,
            decay_half_life_days: None,
            decay_half_life_spread: None,
            day_dispersion: None,
            open_order_units: obs.open_order_units,
            value_per_sale: 0.0,
            price_paid,
            return_rate_estimate: 0.0,
            salvage_value: 0.0,
            lead_demand: 0.0,
            season_demand: 0.0,
            stock_at_arrival: 0.0,
            demand_p10: 0.0,
            demand_p90: 0.0,
            previous_verdict: None,
            reorder_expected_profit: 0.0,
            p_reorder_profit: 0.0,
            p_reorder_pays: 0.0,
            value_of_waiting: 0.0,
            p_wrong: 0.0,
        },
        p_high_returns,
        matured,
    }
}

struct RuleInputs<'a> {
    obs: &'a StyleObservation,
    rules: &'a Rules,
    has_batch: bool,
    p_keep: f64,
    p_drop: f64,
    p_high_returns: f64,
    matured: f64,
}

/// The rule of DESIGN.md §2, with the probability that its verdict is wrong.
///
/// The return test comes before the keep test: reordering a style that customers send
/// back for quality or fit-independent reasons loses money however fast it sells.
fn rule(i: &RuleInputs<'_>) -> (Verdict, Vec<Reason>, f64) {
    let r = i.rules;
    let obs = i.obs;
    let mut reasons = Vec::new();
    if obs.sold_out {
        reasons.push(Reason::SoldOut);
    }
    let too_early =
        !i.has_batch || obs.days_live < r.min_days_live || obs.exposure_days < r.min_exposure_days;
    if too_early {
        if obs.sold_out && i.has_batch && i.p_keep >= r.sold_out_keep_probability {
            reasons.push(Reason::HighRate);
            return (Verdict::Keep, reasons, 1.0 - i.p_keep);
        }
        reasons.push(Reason::TooEarly);
        return (Verdict::Test, reasons, 0.0);
    }
    if i.matured >= r.min_matured_units && i.p_high_returns >= r.return_probability {
        reasons.push(Reason::HighReturns);
        return (Verdict::Drop, reasons, 1.0 - i.p_high_returns);
    }
    if i.p_keep >= r.keep_probability {
        reasons.push(Reason::HighRate);
        return (Verdict::Keep, reasons, 1.0 - i.p_keep);
    }
    // A sold-out style's low rate is censored demand, not weak demand: never drop it for
    // its rate or for running out of test window.
    if obs.sold_out {
        return (Verdict::Test, reasons, 0.0);
    }
    if i.p_drop >= r.drop_probability {
        reasons.push(Reason::LowRate);
        return (Verdict::Drop, reasons, 1.0 - i.p_drop);
    }
    if obs.days_live >= r.max_days_to_verdict {
        reasons.push(Reason::MaxWindow);
        // Wrong if it would in fact have reached the keep level.
        return (Verdict::Drop, reasons, i.p_keep);
    }
    (Verdict::Test, reasons, 0.0)
}

/// Expected further in-stock days until the style gets a keep or a drop, if it keeps
/// selling at its posterior mean rate; `None` once it has a verdict.
pub fn expected_days_to_verdict(d: &Decision, rules: &Rules) -> Option<f64> {
    if d.verdict != Verdict::Test || d.keep_rate <= 0.0 {
        return None;
    }
    let deadline = (rules.max_days_to_verdict - d.days_live).max(0.0);
    let wait_for_minimums = (rules.min_days_live - d.days_live)
        .max(rules.min_exposure_days - d.exposure_days)
        .max(0.0);
    let mean = d.rate_shape / d.rate_rate;
    let decided = |h: f64| {
        let (a, b) = (d.rate_shape + mean * h, d.rate_rate + h);
        gamma_sf(a, b, d.keep_rate) >= rules.keep_probability
            || gamma_cdf(a, b, d.drop_rate) >= rules.drop_probability
    };
    let mut h = wait_for_minimums.ceil();
    while h < deadline {
        if decided(h) {
            return Some(h);
        }
        h += 1.0;
    }
    Some(deadline.max(wait_for_minimums))
}
