//! A call the published list holds stands until the evidence reverses it.
//!
//! Buying acts on a keep (reorders, plans the range) or a drop (stops, marks down) the
//! day it sees it, so a list that flips with each day's noise costs more than either
//! call. Each run therefore starts from the calls of the run it follows (the published
//! one). A call the model makes again is *carried*. One the model would now leave to
//! test is *held*: the evidence has weakened, not reversed. One the model now makes the
//! other way is *reversed* only when that call's confidence reaches the category's
//! `reversal_probability` (above the levels that make a call, so a style near a level
//! does not flip back and forth), and held otherwise. A held keep orders nothing more:
//! a new reorder needs today's evidence to clear the keep bar.
//!
//! Only the calls new in this run are then bounded by wrong-call control (see
//! [`super::wrong_calls`]): the settled ones were bounded when they were made.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ALL_MARKETS, Decision, Policy, Reason, Verdict};

/// The calls of the run a new run follows, by style × market.
pub type PreviousCalls = HashMap<(String, String), Verdict>;

/// How a run's pooled calls differ from the run it followed, beyond the new calls
/// [`super::WrongCalls`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changes {
    /// Calls turned the other way.
    #[serde(default)]
    pub reversed: usize,
    /// Calls the model no longer makes, standing because nothing reversed them
    /// (`GET /v1/runs/{run_id}/changes` lists them).
    #[serde(default)]
    pub held: usize,
}

impl Changes {
    /// Counts the pooled rows' changes, once every rule has run.
    pub fn count(decisions: &[Decision]) -> Self {
        let mut changes = Self::default();
        for d in decisions.iter().filter(|d| d.market == ALL_MARKETS) {
            if d.reasons.contains(&Reason::Held) {
                changes.held += 1;
            }
            if d.reasons.contains(&Reason::Reversed) {
                changes.reversed += 1;
            }
        }
        changes
    }
}

/// Records each row's previous call and holds the ones the evidence has not reversed.
pub fn hold_previous_calls(decisions: &mut [Decision], previous: &PreviousCalls, policy: &Policy) {
    for d in decisions {
        d.previous_verdict = previous
            .get(&(d.style_id.clone(), d.market.clone()))
            .copied();
        let Some(held) = d.previous_verdict.filter(|v| *v != Verdict::Test) else {
            continue;
        };
        if d.verdict == held {
            continue;
        }
        let bar = policy.rules_for(&d.category).reversal_probability;
        // A call without a confidence of its own (a drop for returns) cleared its own
        // test, which is stricter than the levels.
        if d.verdict != Verdict::Test && d.confidence().is_none_or(|c| c >= bar) {
            d.reasons.push(Reason::Reversed);
            continue;
        }
        d.verdict = held;
        d.reorder_units = 0;
        d.p_wrong = 1.0 - d.support(held).unwrap_or(0.0);
        d.reasons.push(Reason::Held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::tests::decision;

    fn previous(verdict: Verdict) -> PreviousCalls {
        HashMap::from([(("S1".to_string(), ALL_MARKETS.to_string()), verdict)])
    }

    fn row(verdict: Verdict, p_keep: f64, p_drop: f64) -> Decision {
        let mut d = decision("S1", ALL_MARKETS, verdict, 1.0 - p_keep);
        d.p_keep = p_keep;
        d.p_drop = p_drop;
        d.reorder_units = if verdict == Verdict::Keep { 40 } else { 0 };
        d
    }

    fn held(d: &Decision) -> bool {
        d.reasons.contains(&Reason::Held)
    }

    #[test]
    fn a_call_made_again_is_carried_unchanged() {
        let mut rows = [row(Verdict::Keep, 0.85, 0.01)];
        hold_previous_calls(&mut rows, &previous(Verdict::Keep), &Policy::default());
        assert_eq!(rows[0].verdict, Verdict::Keep);
        assert_eq!(rows[0].reorder_units, 40);
        assert_eq!(rows[0].previous_verdict, Some(Verdict::Keep));
        assert!(!held(&rows[0]));
    }

    #[test]
    fn a_keep_the_model_would_now_test_is_held_without_a_new_reorder() {
        let mut rows = [row(Verdict::Test, 0.6, 0.1)];
        hold_previous_calls(&mut rows, &previous(Verdict::Keep), &Policy::default());
        assert_eq!(rows[0].verdict, Verdict::Keep);
        assert_eq!(rows[0].reorder_units, 0);
        assert!(held(&rows[0]));
        assert!((rows[0].p_wrong - 0.4).abs() < 1e-12, "{}", rows[0].p_wrong);
    }

    #[test]
    fn a_drop_reverses_a_keep_only_past_the_reversal_bar() {
        // P(drop) 0.85 makes a drop (bar 0.8) but does not reverse a keep (bar 0.9).
        let mut weak = [row(Verdict::Drop, 0.02, 0.85)];
        hold_previous_calls(&mut weak, &previous(Verdict::Keep), &Policy::default());
        assert_eq!(weak[0].verdict, Verdict::Keep);
        assert!(held(&weak[0]));

        let mut strong = [row(Verdict::Drop, 0.01, 0.95)];
        hold_previous_calls(&mut strong, &previous(Verdict::Keep), &Policy::default());
        assert_eq!(strong[0].verdict, Verdict::Drop);
        assert!(strong[0].reasons.contains(&Reason::Reversed));
        assert_eq!(Changes::count(&strong).reversed, 1);
        assert!(strong[0].is_new_call());
    }

    #[test]
    fn a_season_over_drop_always_reverses() {
        let mut rows = [row(Verdict::Drop, 0.5, 0.1)];
        rows[0].reasons = vec![Reason::SeasonOver];
        hold_previous_calls(&mut rows, &previous(Verdict::Keep), &Policy::default());
        assert_eq!(rows[0].verdict, Verdict::Drop);
    }

    #[test]
    fn without_a_previous_call_nothing_is_held_and_every_call_is_new() {
        let mut rows = [row(Verdict::Keep, 0.85, 0.0), row(Verdict::Test, 0.5, 0.1)];
        rows[1].style_id = "S2".into();
        hold_previous_calls(&mut rows, &previous(Verdict::Test), &Policy::default());
        assert_eq!(rows[0].verdict, Verdict::Keep);
        assert_eq!(rows[1].verdict, Verdict::Test);
        assert_eq!(rows[1].previous_verdict, None);
        assert!(rows[0].is_new_call() && !rows[1].is_new_call());
        assert_eq!(Changes::count(&rows).held, 0);
    }
}
