//! Expected wrong calls across a run, and the bound on their share.
//!
//! Thousands of styles are judged at once, every day; per-style thresholds alone let
//! wrong keeps pile up. Each verdict carries the posterior probability that it is wrong.
//! Their sum over a run's keeps (drops) is the expected number of wrong keeps (drops).
//! If the mean among keeps exceeds the policy's bound, the weakest keeps are demoted to
//! test until it does not (a Bayesian false-discovery control); likewise for drops.
//! Each market's list, and the pooled list, is controlled on its own: each is a list a
//! buyer acts on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, Reason, Verdict};

/// A run's expected wrong calls, after control.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WrongCalls {
    pub expected_wrong_keeps: f64,
    pub expected_wrong_drops: f64,
    /// Calls demoted to test by the bound.
    pub demoted_keeps: usize,
    pub demoted_drops: usize,
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
    for ((market, verdict), mut members) in by_list {
        // Strongest first, so demotion pops the weakest from the end.
        members.sort_by(|&a, &b| {
            decisions[a]
                .p_wrong
                .total_cmp(&decisions[b].p_wrong)
                .then_with(|| decisions[a].style_id.cmp(&decisions[b].style_id))
        });
        let mut sum: f64 = members.iter().map(|&i| decisions[i].p_wrong).sum();
        let mut demoted = 0;
        while !members.is_empty() && sum > max_share * members.len() as f64 {
            let weakest = members.pop().expect("non-empty");
            let d = &mut decisions[weakest];
            sum -= d.p_wrong;
            d.verdict = Verdict::Test;
            d.reorder_units = 0;
            d.reasons.push(Reason::WrongCallControl);
            d.p_wrong = 0.0;
            demoted += 1;
        }
        if market == super::ALL_MARKETS {
            match verdict {
                Verdict::Keep => {
                    totals.expected_wrong_keeps = sum;
                    totals.demoted_keeps = demoted;
                }
                Verdict::Drop => {
                    totals.expected_wrong_drops = sum;
                    totals.demoted_drops = demoted;
                }
                Verdict::Test => {}
            }
        }
    }
    totals
}
