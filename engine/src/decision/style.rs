//! One style's decision: posteriors, probabilities, the rule, projection and reorder.

use super::numerics::{beta_sf, gamma_cdf, gamma_sf};
use super::projection::{projected_sell_through, reorder_units};
use super::{Decision, Priors, Reason, Rules, StyleObservation, Verdict};

/// Decides one observation under its rules, starting from `priors`.
pub fn decide_style(obs: &StyleObservation, priors: &Priors, rules: &Rules) -> Decision {
    let batch = obs.test_batch_units.max(0) as f64;
    let keep_rate = rules.keep_sell_through * batch / rules.planned_life_days;
    let drop_rate = rules.drop_sell_through * batch / rules.planned_life_days;

    let rate_shape = priors.rate.shape + obs.units_sold.max(0) as f64;
    let rate_rate = priors.rate.rate + obs.exposure_days.max(0.0);
    // With no test batch there is no bar to clear: neither probability is meaningful.
    let (p_keep, p_drop) = if batch > 0.0 {
        (
            gamma_sf(rate_shape, rate_rate, keep_rate),
            gamma_cdf(rate_shape, rate_rate, drop_rate),
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

    let (verdict, reasons, p_wrong) = rule(&RuleInputs {
        obs,
        rules,
        has_batch: batch > 0.0,
        p_keep,
        p_drop,
        p_high_returns,
        matured,
    });

    let remaining_days = (rules.planned_life_days - obs.days_live).max(0.0);
    let projection = projected_sell_through(obs, rate_shape, rate_rate, remaining_days);
    let mean_rate = rate_shape / rate_rate;
    let days_of_cover = if mean_rate > 0.0 {
        obs.on_hand.max(0) as f64 / mean_rate
    } else {
        f64::INFINITY
    };
    let reorder = if verdict == Verdict::Keep {
        reorder_units(obs, rate_shape, rate_rate, rules)
    } else {
        0
    };
    let sell_through = if obs.units_received > 0 {
        obs.units_sold as f64 / obs.units_received as f64
    } else {
        0.0
    };

    Decision {
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
        reorder_units: reorder,
        verdict,
        reasons,
        p_wrong,
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
