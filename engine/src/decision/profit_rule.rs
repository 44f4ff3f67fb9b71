//! The profit rule: calls and reorders that maximise expected profit over the rest of
//! the season.
//!
//! Each market's launch rate λ_m has a Gamma posterior on its own decayed exposure
//! (in-stock days weighed by the category's demand curve), from a prior that is the
//! category's, scaled to the market's share of the test batch — never the style's own
//! pooled data, which would count the market's sales twice. Over-dispersed days widen
//! it: counts and exposure are divided by φ = 1 + (units per in-stock day)/k, which
//! keeps the mean and multiplies the variance by φ. The style's pooled rate is the sum
//! of its markets' rates (a Gamma matched to the sum's mean and variance), so a market
//! that sold out early counts at the rate it sold at while in stock.
//!
//! The call is the reorder's: **keep** when the best reorder ([`plan_reorder`]) is
//! expected to make money with probability at least `profit_probability`; **drop** when
//! no reorder is likely to pay (P ≤ 1 − `drop_probability`), when returns are too high,
//! or when a reorder would arrive after the season; at the test deadline, or once sold
//! out everywhere (no more can be learnt), keep if the best reorder's expected profit is
//! positive and drop otherwise; else **test**. Market rows carry the style's call and
//! their share of its reorder: a style is bought as a whole.

use std::collections::BTreeMap;

use super::continuity::hold_previous_calls;
use super::curves::{Curve, DemandCurves};
use super::profit::{MarketState, PlanInputs, ReorderPlan, plan_reorder, seed_of};
use super::style::{Measured, measure};
use super::wrong_calls::{WrongCalls, control_wrong_calls};
use super::{
    ALL_MARKETS, CategoryPriors, Decision, GammaPrior, Policy, PreviousCalls, Priors, Reason,
    Rules, StyleObservation, Verdict, map_on_all_cores,
};

/// A style's observations: its pooled row and its market rows.
struct StyleRows<'a> {
    pooled: &'a StyleObservation,
    markets: Vec<&'a StyleObservation>,
}

pub(super) fn decide(
    observations: &[StyleObservation],
    policy: &Policy,
    curves: &DemandCurves,
    previous: &PreviousCalls,
) -> (Vec<Decision>, WrongCalls) {
    let mut styles: BTreeMap<&str, (Option<&StyleObservation>, Vec<&StyleObservation>)> =
        BTreeMap::new();
    for o in observations {
        let entry = styles.entry(o.style_id.as_str()).or_default();
        if o.market == ALL_MARKETS {
            entry.0 = Some(o);
        } else {
            entry.1.push(o);
        }
    }
    let styles: Vec<StyleRows<'_>> = styles
        .into_values()
        .filter_map(|(pooled, markets)| pooled.map(|pooled| StyleRows { pooled, markets }))
        .collect();
    // Category priors on the launch rate: early units over early decayed exposure.
    let for_priors: Vec<StyleObservation> = styles
        .iter()
        .map(|s| StyleObservation {
            early_exposure_days: s.pooled.early_decayed_exposure_days,
            ..s.pooled.clone()
        })
        .collect();
    let priors = CategoryPriors::estimate(&for_priors.iter().collect::<Vec<_>>(), &policy.priors);
    let decided: Vec<(Decision, Vec<Decision>)> = map_on_all_cores(&styles, |s| {
        let rules = policy.rules_for(&s.pooled.category);
        let curve = curves.for_category(&s.pooled.category);
        decide_style(s, &priors.for_category(&s.pooled.category), rules, curve)
    });
    let mut pooled: Vec<Decision> = decided.iter().map(|(p, _)| p.clone()).collect();
    hold_previous_calls(&mut pooled, previous, policy);
    let wrong = control_wrong_calls(&mut pooled, policy.max_wrong_share);
    let mut out = Vec::with_capacity(observations.len());
    for (settled, (model, markets)) in pooled.into_iter().zip(decided) {
        // Held or held back: the model's reorder is not the list's.
        let overruled = settled.verdict != model.verdict;
        for mut m in markets {
            m.verdict = settled.verdict;
            m.reasons = settled.reasons.clone();
            m.previous_verdict = previous
                .get(&(m.style_id.clone(), m.market.clone()))
                .copied();
            if overruled {
                m.reorder_units = 0;
            }
            out.push(m);
        }
        out.push(settled);
    }
    (out, wrong)
}

/// The pooled row and the market rows of one style.
fn decide_style(
    s: &StyleRows<'_>,
    priors: &Priors,
    rules: &Rules,
    curve: Curve,
) -> (Decision, Vec<Decision>) {
    let life_mean = curve.integral(0.0, rules.planned_life_days) / rules.planned_life_days;
    let horizon = |age: f64| curve.integral(age, rules.planned_life_days.max(age));
    let pooled_batch = s.pooled.test_batch_units.max(1) as f64;
    // Each market on its own exposure, from the category's prior scaled to its share.
    let mut market_rows = Vec::with_capacity(s.markets.len());
    let mut states = Vec::with_capacity(s.markets.len());
    let (mut mean, mut variance, mut prior_mean, mut prior_variance) = (0.0, 0.0, 0.0, 0.0);
    for obs in &s.markets {
        let share = obs.test_batch_units.max(0) as f64 / pooled_batch;
        let prior = GammaPrior {
            shape: (priors.rate.shape * share).max(1e-3),
            rate: priors.rate.rate,
        };
        let posterior = posterior(prior, obs, curve);
        let market_priors = Priors {
            rate: prior,
            ..*priors
        };
        let Measured { decision, .. } = measure(
            obs,
            &market_priors,
            rules,
            posterior,
            life_mean,
            horizon(obs.days_live),
            curve.at(obs.days_live),
        );
        mean += posterior.shape / posterior.rate;
        variance += posterior.shape / posterior.rate.powi(2);
        prior_mean += prior.shape / prior.rate;
        prior_variance += prior.shape / prior.rate.powi(2);
        states.push(MarketState {
            rate_shape: posterior.shape,
            rate_rate: posterior.rate,
            exposure_days: obs.exposure_days,
            on_hand: obs.on_hand,
        });
        market_rows.push(decision);
    }
    let moment_match = |mean: f64, variance: f64, fallback: GammaPrior| {
        if mean > 0.0 && variance > 0.0 {
            GammaPrior {
                shape: mean * mean / variance,
                rate: mean / variance,
            }
        } else {
            fallback
        }
    };
    let pooled_prior = moment_match(prior_mean, prior_variance, priors.rate);
    let pooled_posterior = moment_match(mean, variance, posterior(priors.rate, s.pooled, curve));
    let obs = s.pooled;
    let Measured {
        decision: mut pooled,
        p_high_returns,
        matured,
    } = measure(
        obs,
        &Priors {
            rate: pooled_prior,
            ..*priors
        },
        rules,
        pooled_posterior,
        life_mean,
        horizon(obs.days_live),
        curve.at(obs.days_live),
    );

    let salvage = rules.salvage_share * obs.unit_cost.max(0.0);
    let returns = return_rate_estimate(obs);
    let value_per_sale = pooled.price_paid * (1.0 - returns) + returns * salvage;
    let plan = plan_reorder(&PlanInputs {
        markets: &states,
        curve,
        age_days: obs.days_live,
        lead_time_days: obs.lead_time_days,
        season_days: rules.season_days,
        open_order_units: obs.open_order_units,
        value_per_sale,
        unit_cost: obs.unit_cost,
        salvage_value: salvage,
        moq: obs.moq,
        min_p_profit: rules.profit_probability,
        wait_days: if could_wait(obs, rules) {
            rules.wait_days
        } else {
            0.0
        },
        seed: seed_of(&obs.style_id),
    });
    let (verdict, reasons, p_wrong) = rule(obs, rules, &plan, p_high_returns, matured);
    let keep = verdict == Verdict::Keep;
    let fill = |d: &mut Decision, units: i64| {
        d.decay_half_life_days = curve
            .half_life_days
            .is_finite()
            .then_some(curve.half_life_days);
        d.decay_half_life_spread = curve
            .half_life_days
            .is_finite()
            .then_some(curve.half_life_spread);
        d.day_dispersion = curve
            .day_dispersion
            .is_finite()
            .then_some(curve.day_dispersion);
        d.value_per_sale = value_per_sale;
        d.return_rate_estimate = returns;
        d.salvage_value = salvage;
        d.planned_reorder_units = units;
        d.reorder_units = if keep { units } else { 0 };
    };
    for ((d, units), (p10, p90)) in market_rows
        .iter_mut()
        .zip(&plan.by_market)
        .zip(&plan.demand_by_market)
    {
        fill(d, *units);
        (d.demand_p10, d.demand_p90) = (*p10, *p90);
    }
    fill(&mut pooled, plan.units);
    pooled.lead_demand = plan.lead_demand;
    pooled.season_demand = plan.season_demand;
    pooled.stock_at_arrival = plan.stock_at_arrival;
    (pooled.demand_p10, pooled.demand_p90) = (plan.demand_p10, plan.demand_p90);
    pooled.reorder_expected_profit = plan.expected_profit;
    pooled.p_reorder_profit = plan.p_profit;
    pooled.p_reorder_pays = plan.p_reorder_pays;
    pooled.value_of_waiting = plan.value_of_waiting;
    pooled.verdict = verdict;
    pooled.reasons = reasons;
    pooled.p_wrong = p_wrong;
    (pooled, market_rows)
}

/// Whether testing on could still teach something before the deadline: not sold out
/// everywhere, before the test's last day and the minimums met.
fn could_wait(obs: &StyleObservation, rules: &Rules) -> bool {
    rules.wait_days > 0.0
        && !obs.sold_out
        && obs.days_live >= rules.min_days_live
        && obs.exposure_days >= rules.min_exposure_days
        && obs.days_live + rules.wait_days < rules.max_days_to_verdict
}

/// The launch rate's posterior on the decayed exposure, widened for noisy days.
fn posterior(prior: GammaPrior, obs: &StyleObservation, curve: Curve) -> GammaPrior {
    let units = obs.units_sold.max(0) as f64;
    let per_day = units / obs.exposure_days.max(1.0);
    let phi = if curve.day_dispersion.is_finite() {
        1.0 + per_day / curve.day_dispersion
    } else {
        1.0
    };
    GammaPrior {
        shape: prior.shape + units / phi,
        rate: prior.rate + obs.decayed_exposure_days.max(0.0) / phi,
    }
}

/// The share of units sold that will come back (all reasons: each is refunded), from
/// the returns so far over the maturity-weighted units, with a weak prior of 20 %.
fn return_rate_estimate(obs: &StyleObservation) -> f64 {
    ((obs.units_returned.max(0) as f64 + 1.0) / (obs.matured_units.max(0.0) + 5.0)).clamp(0.0, 0.9)
}

fn rule(
    obs: &StyleObservation,
    rules: &Rules,
    plan: &ReorderPlan,
    p_high_returns: f64,
    matured: f64,
) -> (Verdict, Vec<Reason>, f64) {
    let mut reasons = Vec::new();
    if obs.sold_out {
        reasons.push(Reason::SoldOut);
    }
    let keep = |mut reasons: Vec<Reason>| {
        reasons.push(Reason::ProfitableReorder);
        (Verdict::Keep, reasons, 1.0 - plan.p_profit)
    };
    let drop = |mut reasons: Vec<Reason>, why: Reason| {
        reasons.push(why);
        (Verdict::Drop, reasons, plan.p_reorder_pays)
    };
    if obs.days_live + obs.lead_time_days >= rules.season_days {
        return drop(reasons, Reason::SeasonOver);
    }
    let too_early = obs.test_batch_units <= 0
        || obs.days_live < rules.min_days_live
        || obs.exposure_days < rules.min_exposure_days;
    if too_early {
        if obs.sold_out && plan.units > 0 && plan.p_profit >= rules.sold_out_keep_probability {
            return keep(reasons);
        }
        reasons.push(Reason::TooEarly);
        return (Verdict::Test, reasons, 0.0);
    }
    if matured >= rules.min_matured_units && p_high_returns >= rules.return_probability {
        return drop(reasons, Reason::HighReturns);
    }
    // A call the data would make now still waits while the next days are expected to
    // show enough to earn more than they cost (a later reorder lands further down the
    // curve).
    let tolerance =
        rules.waiting_value_share * obs.test_batch_units.max(0) as f64 * obs.unit_cost.max(0.0);
    let worth_waiting = could_wait(obs, rules) && plan.value_of_waiting > tolerance;
    let calls = (plan.units > 0 && plan.p_profit >= rules.profit_probability)
        || plan.p_reorder_pays <= 1.0 - rules.drop_probability;
    if calls && worth_waiting {
        reasons.push(Reason::Uncertain);
        return (Verdict::Test, reasons, 0.0);
    }
    if plan.units > 0 && plan.p_profit >= rules.profit_probability {
        return keep(reasons);
    }
    if plan.p_reorder_pays <= 1.0 - rules.drop_probability {
        return drop(reasons, Reason::UnprofitableReorder);
    }
    // Nothing more will be learnt by waiting: decide on the expected profit.
    if obs.days_live >= rules.max_days_to_verdict || obs.sold_out {
        if plan.units > 0 {
            return keep(reasons);
        }
        return drop(reasons, Reason::MaxWindow);
    }
    reasons.push(Reason::Uncertain);
    (Verdict::Test, reasons, 0.0)
}
