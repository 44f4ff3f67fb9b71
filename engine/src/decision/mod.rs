//! Keep / drop / test decisions: pure functions of numbers, no DataFusion.
//!
//! The flow of one run: [`prior::CategoryPriors::estimate`] fits empirical-Bayes priors
//! per category from recent launches, [`style::decide_style`] turns one style's
//! observation into a [`Decision`], [`continuity::hold_previous_calls`] keeps the
//! published list's calls that the evidence has not reversed, and
//! [`wrong_calls::control_wrong_calls`] bounds the share of expected wrong keeps and
//! drops among the run's new calls.

pub mod continuity;
pub mod curves;
pub mod numerics;
pub mod policy;
pub mod prior;
pub mod profit;
mod profit_rule;
pub mod projection;
mod row_format;
pub mod style;
mod waiting;
pub mod wrong_calls;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use continuity::{Changes, PreviousCalls};
pub use curves::{Curve, DailySales, DemandCurves};
pub use policy::{DecisionRule, Policy, PolicyError, PriorSettings, Rules};
pub use prior::{BetaPrior, CategoryPriors, GammaPrior, Priors};
pub use wrong_calls::WrongCalls;

/// Version of the decision method; changes whenever the math changes meaning.
pub const MODEL_VERSION: &str = "assay-model-2";

/// The market value of a style's pooled, all-market row.
pub const ALL_MARKETS: &str = "ALL";

/// What one style (in one market, or pooled) showed up to `as_of`: the decision's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleObservation {
    pub style_id: String,
    /// A market code, or [`ALL_MARKETS`] for the pooled row.
    pub market: String,
    pub category: String,
    /// Days from launch to `as_of`.
    pub days_live: f64,
    /// In-stock days inside the style's window (sales are only possible then).
    pub exposure_days: f64,
    /// In-stock days weighed by the demand curve, g(age) at each day's midday: the
    /// exposure of the launch rate (equal to `exposure_days` where demand does not decay).
    pub decayed_exposure_days: f64,
    /// Units sold and in-stock days within the first `launch_window_days` (for priors),
    /// and those days weighed by the curve.
    pub early_units: f64,
    pub early_exposure_days: f64,
    pub early_decayed_exposure_days: f64,
    pub sold_out: bool,
    pub views: i64,
    /// Views while the style was in stock: the denominator of conversion.
    pub views_in_stock: i64,
    pub carts: i64,
    pub purchases: i64,
    pub units_sold: i64,
    pub units_returned: i64,
    /// Money taken for the units sold (price paid × quantity).
    pub revenue: f64,
    /// Units bought, each weighted by how much of the return maturity period has passed
    /// since its purchase: min(1, age / `return_maturity_days`)...
    pub matured_units: f64,
    /// ...and those of them returned for reasons other than size.
    pub matured_non_size_returns: i64,
    /// All units received (test batch and reorders).
    pub units_received: i64,
    /// Units of the test batch (batch 0): the bar does not move with reorders.
    pub test_batch_units: i64,
    /// Units on order: receipts recorded for after as_of, due within one lead time.
    pub open_order_units: i64,
    pub on_hand: i64,
    pub list_price: f64,
    pub unit_cost: f64,
    pub lead_time_days: f64,
    pub moq: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Keep,
    Drop,
    Test,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Keep => "keep",
            Verdict::Drop => "drop",
            Verdict::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keep" => Some(Verdict::Keep),
            "drop" => Some(Verdict::Drop),
            "test" => Some(Verdict::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verdict was reached; several can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// P(rate ≥ keep level) cleared the keep probability.
    HighRate,
    /// P(rate ≤ drop level) cleared the drop probability.
    LowRate,
    /// Too many non-size returns on enough matured units.
    HighReturns,
    /// No keep by the last day of the test window.
    MaxWindow,
    /// The style has no stock left in this market.
    SoldOut,
    /// Not enough days live or in stock for any verdict.
    TooEarly,
    /// The call cleared its own bar but was among the weakest of a run whose expected
    /// share of wrong calls exceeded the policy's bound.
    WrongCallControl,
    /// The best reorder is expected to make money, with the policy's confidence.
    ProfitableReorder,
    /// No reorder is likely to make money over the rest of the season.
    UnprofitableReorder,
    /// A reorder would arrive after the season's end.
    SeasonOver,
    /// The evidence does not settle it yet: more days will.
    Uncertain,
    /// The published list's call stands: the model no longer makes it, but the evidence
    /// has not reversed it (see `continuity`).
    Held,
    /// The published list's call was reversed: the model makes the other call with at
    /// least the policy's `reversal_probability`.
    Reversed,
}

impl Reason {
    pub const ALL: [Reason; 13] = [
        Reason::HighRate,
        Reason::LowRate,
        Reason::HighReturns,
        Reason::MaxWindow,
        Reason::SoldOut,
        Reason::TooEarly,
        Reason::WrongCallControl,
        Reason::ProfitableReorder,
        Reason::UnprofitableReorder,
        Reason::SeasonOver,
        Reason::Uncertain,
        Reason::Held,
        Reason::Reversed,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HighRate => "high_rate",
            Reason::LowRate => "low_rate",
            Reason::HighReturns => "high_returns",
            Reason::MaxWindow => "max_window",
            Reason::SoldOut => "sold_out",
            Reason::TooEarly => "too_early",
            Reason::WrongCallControl => "wrong_call_control",
            Reason::ProfitableReorder => "profitable_reorder",
            Reason::UnprofitableReorder => "unprofitable_reorder",
            Reason::SeasonOver => "season_over",
            Reason::Uncertain => "uncertain",
            Reason::Held => "held",
            Reason::Reversed => "reversed",
        }
    }
}

/// One decision row: everything needed to recompute the verdict from its numbers.
///
/// This struct is the row's one definition: its fields, in order, are the `decisions`
/// table's columns (DESIGN.md §3) after `run_id` and `as_of`, which the run adds (and
/// `policy_version` and `model_version`, which the run adds after `reasons`); the
/// stored Arrow schema is traced from it (see `store::batch`). Columns added since the
/// first release are `#[serde(default)]`, so runs stored before them still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub style_id: String,
    pub market: String,
    pub category: String,
    pub days_live: f64,
    pub exposure_days: f64,
    pub sold_out: bool,
    pub views: i64,
    pub carts: i64,
    pub purchases: i64,
    pub units_sold: i64,
    pub units_returned: i64,
    pub units_received: i64,
    pub on_hand: i64,
    pub sell_through: f64,
    pub prior_shape: f64,
    pub prior_rate: f64,
    pub rate_shape: f64,
    pub rate_rate: f64,
    pub keep_rate: f64,
    pub drop_rate: f64,
    pub p_keep: f64,
    pub p_drop: f64,
    pub conv_alpha: f64,
    pub conv_beta: f64,
    pub return_alpha: f64,
    pub return_beta: f64,
    pub projected_st_p10: f64,
    pub projected_st_p50: f64,
    pub projected_st_p90: f64,
    /// Days the stock on hand lasts at the current rate; unbounded (stored as NULL)
    /// for a style selling nothing.
    #[serde(with = "row_format::unbounded")]
    pub days_of_cover: f64,
    /// What to reorder: the plan's units for a keep, else 0.
    pub reorder_units: i64,
    pub verdict: Verdict,
    /// Stored as one comma-separated text column (`high_rate,sold_out`).
    #[serde(with = "row_format::reason_list")]
    pub reasons: Vec<Reason>,
    /// The profit rule's inputs and plan (zero / NULL under the `sell_through` rule):
    /// in-stock days weighed by the demand curve, the curve (NULL: no decay, Poisson
    /// days) and how far a style's own half-life may stray from it...
    #[serde(default)]
    pub decayed_exposure_days: f64,
    #[serde(default)]
    pub decay_half_life_days: Option<f64>,
    /// Spread (sd of the log) of the style's own half-life around the curve's.
    #[serde(default)]
    pub decay_half_life_spread: Option<f64>,
    #[serde(default)]
    pub day_dispersion: Option<f64>,
    /// ...what a sale nets (price paid less expected refunds, plus their salvage), the
    /// price paid, the expected share of units returned, what a leftover unit fetches...
    #[serde(default)]
    pub value_per_sale: f64,
    #[serde(default)]
    pub price_paid: f64,
    #[serde(default)]
    pub return_rate_estimate: f64,
    #[serde(default)]
    pub salvage_value: f64,
    /// ...expected demand until a reorder arrives and from then to the season's end,
    /// stock expected to be left at its arrival...
    #[serde(default)]
    pub lead_demand: f64,
    #[serde(default)]
    pub season_demand: f64,
    #[serde(default)]
    pub stock_at_arrival: f64,
    /// ...and the reorder's expected profit, the probability it makes money, and the
    /// probability that any reorder would...
    #[serde(default)]
    pub reorder_expected_profit: f64,
    #[serde(default)]
    pub p_reorder_profit: f64,
    #[serde(default)]
    pub p_reorder_pays: f64,
    /// ...and units on order (receipts due within a lead time).
    #[serde(default)]
    pub open_order_units: i64,
    /// Expected profit gained by deciding `wait_days` later rather than now: the call
    /// waits (`test`) while this exceeds `waiting_value_share` of the batch's cost.
    #[serde(default)]
    pub value_of_waiting: f64,
    /// What the plan would reorder if the style were kept, whatever its verdict: the
    /// quantity a merchandiser's keep override proposes.
    #[serde(default)]
    pub planned_reorder_units: i64,
    /// 80 % interval (P10, P90) of this row's demand from as-of to the season's end,
    /// stock permitting or not (`profit` rule; 0 otherwise).
    #[serde(default)]
    pub demand_p10: f64,
    #[serde(default)]
    pub demand_p90: f64,
    /// The call the published list held for this row when the run was made (NULL: none,
    /// or the run followed no published run): a verdict that differs is a change.
    #[serde(default)]
    pub previous_verdict: Option<Verdict>,
    /// Probability that this verdict is wrong (not stored; drives wrong-call control).
    #[serde(skip)]
    pub p_wrong: f64,
}

impl Decision {
    /// How sure the call is, on the scale of its own rule: for a keep the probability
    /// the reorder makes money (P(keep) under the sell-through rule), for a drop the
    /// probability that no reorder would (P(drop)); certain for a season that is over;
    /// none for a test, or a drop for returns (its evidence is the return test's).
    /// Read from the pooled row: a market row carries its style's call.
    pub fn confidence(&self) -> Option<f64> {
        match self.verdict {
            Verdict::Drop if self.reasons.contains(&Reason::SeasonOver) => Some(1.0),
            Verdict::Drop if self.reasons.contains(&Reason::HighReturns) => None,
            v => self.support(v),
        }
    }

    /// A keep or drop the run it followed did not hold (reversals included): the calls
    /// wrong-call control bounds.
    pub fn is_new_call(&self) -> bool {
        self.verdict != Verdict::Test && self.previous_verdict != Some(self.verdict)
    }

    /// The probability, on this row's numbers, that `verdict` would be the right call,
    /// whatever the row's own verdict: what a call held from an earlier run rests on
    /// today. None for test.
    pub fn support(&self, verdict: Verdict) -> Option<f64> {
        let by_profit = self.value_per_sale > 0.0;
        match verdict {
            Verdict::Test => None,
            Verdict::Keep if by_profit => Some(self.p_reorder_profit),
            Verdict::Keep => Some(self.p_keep),
            Verdict::Drop if by_profit => Some(1.0 - self.p_reorder_pays),
            Verdict::Drop => Some(self.p_drop),
        }
    }
}

/// Decides every observation of a run: each category by its rule (see
/// [`DecisionRule`]); `curves` are the demand curves the profit rule plans with (and
/// the funnel weighed exposure by), `previous` the calls of the run this one follows.
pub fn decide_run(
    observations: &[StyleObservation],
    policy: &Policy,
    curves: &DemandCurves,
    previous: &PreviousCalls,
) -> (Vec<Decision>, WrongCalls) {
    let profit =
        |o: &StyleObservation| policy.rules_for(&o.category).decision_rule == DecisionRule::Profit;
    let (by_profit, by_sell_through): (Vec<StyleObservation>, Vec<StyleObservation>) =
        observations.iter().cloned().partition(|o| profit(o));
    let (mut decisions, wrong) = decide_by_sell_through(&by_sell_through, policy, previous);
    let (more, more_wrong) = profit_rule::decide(&by_profit, policy, curves, previous);
    decisions.extend(more);
    decisions.sort_by(|a, b| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)));
    (decisions, wrong.plus(more_wrong))
}

/// The first release's rule: pooled rows first, market rows' priors from them.
fn decide_by_sell_through(
    observations: &[StyleObservation],
    policy: &Policy,
    previous: &PreviousCalls,
) -> (Vec<Decision>, WrongCalls) {
    let pooled: Vec<&StyleObservation> = observations
        .iter()
        .filter(|o| o.market == ALL_MARKETS)
        .collect();
    let priors = CategoryPriors::estimate(&pooled, &policy.priors);
    // Each style's numbers are its own (the priors are estimated above), so the styles
    // are decided on all cores; the incomplete beta and gamma functions are most of a
    // daily run's own time.
    let mut decisions = map_on_all_cores(&pooled, |obs| {
        let p = priors.for_category(&obs.category);
        style::decide_style(obs, &p, policy.rules_for(&obs.category))
    });
    let pooled_posteriors: HashMap<&str, (GammaPrior, i64)> = pooled
        .iter()
        .zip(&decisions)
        .map(|(obs, d)| {
            let posterior = GammaPrior {
                shape: d.rate_shape,
                rate: d.rate_rate,
            };
            (obs.style_id.as_str(), (posterior, obs.test_batch_units))
        })
        .collect();
    let per_market: Vec<&StyleObservation> = observations
        .iter()
        .filter(|o| o.market != ALL_MARKETS)
        .collect();
    decisions.extend(map_on_all_cores(&per_market, |obs| {
        let category_priors = priors.for_category(&obs.category);
        let p = match pooled_posteriors.get(obs.style_id.as_str()) {
            Some((posterior, pooled_batch)) => {
                let share = if *pooled_batch > 0 {
                    obs.test_batch_units as f64 / *pooled_batch as f64
                } else {
                    1.0
                };
                Priors {
                    rate: posterior.shrinkage_prior(share, policy.priors.max_rate_strength),
                    ..category_priors
                }
            }
            None => category_priors,
        };
        style::decide_style(obs, &p, policy.rules_for(&obs.category))
    }));
    continuity::hold_previous_calls(&mut decisions, previous, policy);
    let wrong = wrong_calls::control_wrong_calls(&mut decisions, policy.max_wrong_share);
    (decisions, wrong)
}

/// `f` of every item, in order, computed on all cores in contiguous chunks.
pub(crate) fn map_on_all_cores<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    // Below a few hundred styles a thread costs more than it saves.
    map_in_chunks(items, 256, f)
}

/// `f` of every item, in order, on all cores in contiguous chunks of at least
/// `min_chunk` items (fewer items: on this thread).
pub(crate) fn map_in_chunks<T: Sync, R: Send>(
    items: &[T],
    min_chunk: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(cores).max(min_chunk.max(1));
    if chunk >= items.len() {
        return items.iter().map(f).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker does not panic"))
            .collect()
    })
}

#[cfg(test)]
mod tests;
