//! Expected wrong calls across a run, and the bound on their share.
//!
//! Thousands of styles are judged at once, every day; per-style thresholds alone let
//! wrong keeps pile up. Each verdict carries the posterior probability that it is wrong.
//! Their sum over a run's keeps (drops) is the expected number of wrong keeps (drops).
//! If the mean among the keeps *new in this run* exceeds the policy's bound, the
//! weakest new keeps are demoted to test until it does not (a Bayesian false-discovery
//! control); likewise for drops. Only new calls are bounded: over a long history the
//! settled calls (P(wrong) near 0) would dilute the mean until the bound never bit, and
//! on a short one the bound would hold back late calls forever. A reversal of a call
//! counts among the new but is not demoted: it cleared the stricter reversal bar, and
//! demoting it would leave the style neither kept nor dropped. Each market's list, and
//! the pooled list, is controlled on its own: each is a list a buyer acts on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, Reason, Verdict};

/// A run's expected wrong calls, after control: over its whole list, and over the
/// calls new in it (the ones the bound applies to).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WrongCalls {
    /// Sum over the run's keeps of P(wrong): the expected number of wrong keeps.
    pub expected_wrong_keeps: f64,
    pub expected_wrong_drops: f64,
    /// Calls demoted to test by the bound.
    pub demoted_keeps: usize,
    pub demoted_drops: usize,
    /// Keeps and drops the run it followed did not hold (reversals included): the
    /// calls the bound applies to, and their expected wrong ones.
    #[serde(default)]
    pub new_keeps: usize,
    #[serde(default)]
    pub new_drops: usize,
    #[serde(default)]
    pub expected_wrong_new_keeps: f64,
    #[serde(default)]
    pub expected_wrong_new_drops: f64,
}

impl WrongCalls {
    /// Two runs' figures together (a run decided by two rules).
    pub fn plus(self, other: Self) -> Self {
        Self {
            expected_wrong_keeps: self.expected_wrong_keeps + other.expected_wrong_keeps,
            expected_wrong_drops: self.expected_wrong_drops + other.expected_wrong_drops,
            demoted_keeps: self.demoted_keeps + other.demoted_keeps,
            demoted_drops: self.demoted_drops + other.demoted_drops,
            new_keeps: self.new_keeps + other.new_keeps,
            new_drops: self.new_drops + other.new_drops,
            expected_wrong_new_keeps: self.expected_wrong_new_keeps
                + other.expected_wrong_new_keeps,
            expected_wrong_new_drops: self.expected_wrong_new_drops
                + other.expected_wrong_new_drops,
        }
    }
}

/// Applies the bound `max_share` per market and returns the expected wrong calls of the
/// pooled (`ALL`) list, the one a buying system acts on for the style as a whole.
pub fn control_wrong_calls(decisions: &mut [Decision], max_share: f64) -> WrongCalls {
    let mut by_list: BTreeMap<(String, Verdict), Vec<usize>> = BTreeMap::new();
    for (i, d) in decisions.iter().enumerate() {
        if d.verdict != Verdict::Test {
            by_list
                .entry((d.market.clone(), d.verdict))
                .or_default()
                .push(i);
        }
    }
    let mut totals = WrongCalls::default();
    for ((market, verdict), members) in by_list {
        let settled: f64 = members
            .iter()
            .map(|&i| &decisions[i])
            .filter(|d| !d.is_new_call())
            .map(|d| d.p_wrong)
            .sum();
        let (reversals, mut demotable): (Vec<usize>, Vec<usize>) = members
            .into_iter()
            .filter(|&i| decisions[i].is_new_call())
            .partition(|&i| decisions[i].reasons.contains(&Reason::Reversed));
        // Strongest first, so demotion pops the weakest from the end.
        demotable.sort_by(|&a, &b| {
            decisions[a]
                .p_wrong
                .total_cmp(&decisions[b].p_wrong)
                .then_with(|| decisions[a].style_id.cmp(&decisions[b].style_id))
        });
        let mut sum: f64 = reversals
            .iter()
            .chain(&demotable)
            .map(|&i| decisions[i].p_wrong)
            .sum();
        let mut demoted = 0;
        while !demotable.is_empty() && sum > max_share * (reversals.len() + demotable.len()) as f64
        {
            let weakest = demotable.pop().expect("non-empty");
            let d = &mut decisions[weakest];
            sum -= d.p_wrong;
            d.verdict = Verdict::Test;
            d.reorder_units = 0;
            d.reasons.push(Reason::WrongCallControl);
            d.p_wrong = 0.0;
            demoted += 1;
        }
        if market == super::ALL_MARKETS {
            let new = reversals.len() + demotable.len();
            match verdict {
                Verdict::Keep => {
                    totals.expected_wrong_keeps = settled + sum;
                    totals.expected_wrong_new_keeps = sum;
                    totals.new_keeps = new;
                    totals.demoted_keeps = demoted;
                }
                Verdict::Drop => {
                    totals.expected_wrong_drops = settled + sum;
                    totals.expected_wrong_new_drops = sum;
                    totals.new_drops = new;
                    totals.demoted_drops = demoted;
                }
                Verdict::Test => {}
            }
        }
    }
    totals
}
