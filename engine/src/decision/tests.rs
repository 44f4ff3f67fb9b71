//! Invariants of the decision rule, checked over grids of inputs.

use super::style::{decide_style, expected_days_to_verdict};
use super::*;

fn priors() -> Priors {
    Priors {
        rate: GammaPrior {
            shape: 6.0,
            rate: 2.0,
        },
        conversion: BetaPrior {
            alpha: 3.0,
            beta: 97.0,
        },
        returns: BetaPrior {
            alpha: 2.0,
            beta: 8.0,
        },
    }
}

fn style(units_sold: i64, exposure_days: f64, days_live: f64) -> StyleObservation {
    StyleObservation {
        style_id: "S1".into(),
        market: ALL_MARKETS.into(),
        category: "tops".into(),
        days_live,
        exposure_days,
        units_sold,
        purchases: units_sold,
        views: units_sold * 30,
        views_in_stock: units_sold * 30,
        units_received: 300,
        test_batch_units: 300,
        on_hand: 300 - units_sold,
        list_price: 30.0,
        unit_cost: 12.0,
        lead_time_days: 21.0,
        moq: 50,
        ..Default::default()
    }
}

#[test]
fn thresholds_follow_the_test_batch() {
    let d = decide_style(&style(0, 10.0, 10.0), &priors(), &Rules::default());
    assert!((d.keep_rate - 0.8 * 300.0 / 42.0).abs() < 1e-12);
    assert!((d.drop_rate - 0.4 * 300.0 / 42.0).abs() < 1e-12);
    assert_eq!(d.rate_shape, 6.0);
    assert_eq!(d.rate_rate, 12.0);
}

#[test]
fn more_sales_never_lower_p_keep() {
    let rules = Rules::default();
    for exposure in [5.0, 10.0, 20.0] {
        let mut last = -1.0;
        for sold in (0..=300).step_by(5) {
            let d = decide_style(&style(sold, exposure, 14.0), &priors(), &rules);
            assert!(
                d.p_keep >= last,
                "sold {sold} at {exposure} days: {} < {last}",
                d.p_keep
            );
            last = d.p_keep;
        }
    }
}

#[test]
fn more_exposure_never_raises_p_keep() {
    let rules = Rules::default();
    for sold in [10, 60, 150] {
        let mut last = 2.0;
        for exposure in 1..=40 {
            let d = decide_style(&style(sold, exposure as f64, 20.0), &priors(), &rules);
            assert!(
                d.p_keep <= last,
                "sold {sold}, {exposure} days: {} > {last}",
                d.p_keep
            );
            last = d.p_keep;
        }
    }
}

#[test]
fn a_sold_out_style_is_never_dropped_for_low_rate() {
    let rules = Rules::default();
    for days_live in [3.0, 10.0, 20.0, 30.0] {
        for exposure in [1.0, 5.0, 15.0] {
            for sold in [10, 50, 120] {
                let mut s = style(sold, exposure, days_live);
                s.sold_out = true;
                s.on_hand = 0;
                let d = decide_style(&s, &priors(), &rules);
                assert!(
                    !(d.verdict == Verdict::Drop
                        && (d.reasons.contains(&Reason::LowRate)
                            || d.reasons.contains(&Reason::MaxWindow))),
                    "sold-out style dropped for rate: {d:?}"
                );
                assert!(d.reasons.contains(&Reason::SoldOut));
            }
        }
    }
}

#[test]
fn verdicts_follow_the_rule() {
    let rules = Rules::default();
    // Too early: 3 days live.
    let d = decide_style(&style(100, 3.0, 3.0), &priors(), &rules);
    assert_eq!(
        (d.verdict, d.reasons.clone()),
        (Verdict::Test, vec![Reason::TooEarly])
    );
    // Strong seller: 150 units in 10 days = 15/day vs keep level 5.7/day.
    let d = decide_style(&style(150, 10.0, 10.0), &priors(), &rules);
    assert_eq!(d.verdict, Verdict::Keep);
    assert!(d.p_keep >= 0.8 && d.reasons == vec![Reason::HighRate]);
    assert!(
        d.reorder_units >= 50,
        "a keep reorders at least the MOQ: {}",
        d.reorder_units
    );
    // Weak seller: 5 units in 10 days vs drop level 2.9/day.
    let d = decide_style(&style(5, 10.0, 10.0), &priors(), &rules);
    assert_eq!(
        (d.verdict, d.reasons.clone()),
        (Verdict::Drop, vec![Reason::LowRate])
    );
    assert_eq!(d.reorder_units, 0);
    // In between at day 22: dropped for having no keep by day 21.
    let d = decide_style(&style(95, 22.0, 22.0), &priors(), &rules);
    assert_eq!(d.verdict, Verdict::Drop, "{d:?}");
    assert_eq!(d.reasons, vec![Reason::MaxWindow]);
    // The same style at day 12 is still testing, with a finite wait for a verdict.
    let d = decide_style(&style(52, 12.0, 12.0), &priors(), &rules);
    assert_eq!(d.verdict, Verdict::Test, "{d:?}");
    let wait = expected_days_to_verdict(&d, &rules).unwrap();
    assert!(wait > 0.0 && wait <= 9.0, "{wait}");
}

#[test]
fn high_returns_drop_a_fast_seller() {
    let mut s = style(150, 10.0, 25.0);
    s.matured_units = 60.0;
    s.matured_non_size_returns = 35;
    let d = decide_style(&s, &priors(), &Rules::default());
    assert_eq!(d.verdict, Verdict::Drop);
    assert_eq!(d.reasons, vec![Reason::HighReturns]);
    // Too few matured units: not enough evidence, the rate decides.
    s.matured_units = 10.0;
    s.matured_non_size_returns = 8;
    let d = decide_style(&s, &priors(), &Rules::default());
    assert_eq!(d.verdict, Verdict::Keep);
}

#[test]
fn early_sold_out_keep_needs_the_stricter_bar() {
    let mut s = style(300, 4.0, 4.0);
    s.sold_out = true;
    s.on_hand = 0;
    let d = decide_style(&s, &priors(), &Rules::default());
    assert_eq!(d.verdict, Verdict::Keep);
    assert!(d.p_keep >= 0.9);
    assert_eq!(d.reasons, vec![Reason::SoldOut, Reason::HighRate]);
}

#[test]
fn projection_is_ordered_and_bounded() {
    for sold in [0, 40, 120, 280] {
        let d = decide_style(&style(sold, 10.0, 10.0), &priors(), &Rules::default());
        assert!(
            d.projected_st_p10 <= d.projected_st_p50 && d.projected_st_p50 <= d.projected_st_p90
        );
        assert!(d.projected_st_p10 >= d.sell_through - 1e-12 && d.projected_st_p90 <= 1.0);
    }
    // No life left: the projection is today's sell-through.
    let d = decide_style(&style(120, 40.0, 50.0), &priors(), &Rules::default());
    assert!((d.projected_st_p90 - 0.4).abs() < 1e-12, "{d:?}");
}

/// A sell-through row of style `style_id` with the given call and P(wrong).
pub(super) fn decision(style_id: &str, market: &str, verdict: Verdict, p_wrong: f64) -> Decision {
    let mut d = decide_style(&style(150, 10.0, 10.0), &priors(), &Rules::default());
    d.style_id = style_id.into();
    d.market = market.into();
    d.verdict = verdict;
    d.p_wrong = p_wrong;
    d
}

#[test]
fn wrong_call_control_demotes_the_weakest_keeps() {
    // Keeps with P(keep) from just above the bar to certain.
    let mut decisions: Vec<Decision> = (0..20)
        // P(wrong) 0.00 … 0.19, mean 0.095.
        .map(|i| {
            decision(
                &format!("S{i:02}"),
                ALL_MARKETS,
                Verdict::Keep,
                0.01 * i as f64,
            )
        })
        .collect();
    let wrong = wrong_calls::control_wrong_calls(&mut decisions, 0.05);
    let kept: Vec<&Decision> = decisions
        .iter()
        .filter(|d| d.verdict == Verdict::Keep)
        .collect();
    let mean = kept.iter().map(|d| d.p_wrong).sum::<f64>() / kept.len() as f64;
    assert!(mean <= 0.05, "{mean}");
    // 0.00…0.10 has mean 0.05: the eleven strongest stay, the nine weakest go.
    assert_eq!(kept.len(), 11);
    assert_eq!(wrong.demoted_keeps, 9);
    assert!((wrong.expected_wrong_keeps - 0.55).abs() < 1e-9);
    let demoted = decisions.iter().find(|d| d.style_id == "S19").unwrap();
    assert_eq!(demoted.verdict, Verdict::Test);
    assert_eq!(demoted.reorder_units, 0);
    assert!(demoted.reasons.contains(&Reason::WrongCallControl));
}

#[test]
fn wrong_call_control_bounds_the_new_calls_not_the_settled_ones() {
    // Thirty settled keeps at P(wrong) 0 and ten new ones at 0.05, 0.08, …, 0.32: the
    // whole list's mean (0.047) is under the bound, the new calls' (0.185) is not.
    let mut decisions: Vec<Decision> = (0..40)
        .map(|i| {
            let settled = i < 30;
            let p = if settled {
                0.0
            } else {
                0.05 + 0.03 * (i - 30) as f64
            };
            let mut d = decision(&format!("S{i:02}"), ALL_MARKETS, Verdict::Keep, p);
            d.previous_verdict = settled.then_some(Verdict::Keep);
            d
        })
        .collect();
    let wrong = wrong_calls::control_wrong_calls(&mut decisions, 0.10);
    // 0.05 … 0.14 has mean 0.095: four new keeps stay, six go; no settled one moves.
    assert_eq!((wrong.new_keeps, wrong.demoted_keeps), (4, 6));
    assert!((wrong.expected_wrong_new_keeps - 0.38).abs() < 1e-9);
    assert!((wrong.expected_wrong_keeps - 0.38).abs() < 1e-9);
    let kept = decisions.iter().filter(|d| d.verdict == Verdict::Keep);
    assert_eq!(kept.count(), 34);
}

#[test]
fn wrong_call_control_never_demotes_a_reversal() {
    let mut reversed = decision("S1", ALL_MARKETS, Verdict::Keep, 0.3);
    reversed.previous_verdict = Some(Verdict::Drop);
    reversed.reasons.push(Reason::Reversed);
    let mut decisions = vec![reversed, decision("S2", ALL_MARKETS, Verdict::Keep, 0.05)];
    let wrong = wrong_calls::control_wrong_calls(&mut decisions, 0.10);
    assert_eq!(decisions[0].verdict, Verdict::Keep);
    assert_eq!(decisions[1].verdict, Verdict::Test);
    assert_eq!((wrong.new_keeps, wrong.demoted_keeps), (1, 1));
}

fn sell_through_policy() -> Policy {
    Policy::from_toml("[defaults]\ndecision_rule = \"sell_through\"\n", "test").unwrap()
}

fn flat_curves() -> DemandCurves {
    DemandCurves::uniform(Curve::fallback(f64::INFINITY, f64::INFINITY))
}

#[test]
fn decide_run_gives_market_rows_a_prior_from_their_style() {
    let mut pooled = style(150, 10.0, 10.0);
    pooled.test_batch_units = 300;
    let mut us = pooled.clone();
    us.market = "US".into();
    us.units_sold = 100;
    us.test_batch_units = 200;
    let mut de = pooled.clone();
    de.market = "DE".into();
    de.units_sold = 50;
    de.test_batch_units = 100;
    let (decisions, _) = decide_run(
        &[pooled, us, de],
        &sell_through_policy(),
        &flat_curves(),
        &PreviousCalls::new(),
    );
    assert_eq!(decisions.len(), 3);
    let us = decisions.iter().find(|d| d.market == "US").unwrap();
    let de = decisions.iter().find(|d| d.market == "DE").unwrap();
    // Priors proportional to each market's share of the batch, with capped strength.
    assert!(
        (us.prior_shape / us.prior_rate * 100.0 - 2.0 * de.prior_shape / de.prior_rate * 100.0)
            .abs()
            < 1e-6
    );
    assert!(us.prior_rate <= 3.0);
}

#[test]
fn reason_and_verdict_codes_round_trip() {
    for r in Reason::ALL {
        assert_eq!(Reason::parse(r.as_str()), Some(r));
    }
    for v in [Verdict::Keep, Verdict::Drop, Verdict::Test] {
        assert_eq!(Verdict::parse(v.as_str()), Some(v));
    }
    assert_eq!(Reason::parse("vibes"), None);
}

/// A style sold in two markets: the US batch of 100 sold out on day 7.5 (100 units on
/// 7.5 exposure days), DE still in stock with 500 of its 600 left after 20 days (100
/// units). The pooled row must rate the style by the sum of its market rates
/// (13.3 + 5 = 18.3 units/day), not by the receipt-weighted mean exposure, which
/// pretends DE's slow days were the US's too.
fn misallocated() -> Vec<StyleObservation> {
    let market = |m: &str, sold: i64, exposure: f64, batch: i64| StyleObservation {
        style_id: "S9".into(),
        market: m.into(),
        category: "tops".into(),
        days_live: 20.0,
        exposure_days: exposure,
        decayed_exposure_days: exposure,
        units_sold: sold,
        purchases: sold,
        views: sold * 30,
        views_in_stock: sold * 30,
        units_received: batch,
        test_batch_units: batch,
        on_hand: batch - sold,
        sold_out: batch == sold,
        list_price: 30.0,
        unit_cost: 10.0,
        lead_time_days: 14.0,
        moq: 50,
        ..Default::default()
    };
    let us = market("US", 100, 7.5, 100);
    let de = market("DE", 100, 20.0, 600);
    let mut pooled = market(ALL_MARKETS, 200, 0.0, 700);
    pooled.exposure_days = (7.5 * 100.0 + 20.0 * 600.0) / 700.0;
    pooled.decayed_exposure_days = pooled.exposure_days;
    pooled.sold_out = false;
    vec![pooled, us, de]
}

#[test]
fn the_pooled_rate_is_the_sum_of_market_rates() {
    let (decisions, _) = decide_run(
        &misallocated(),
        &Policy::default(),
        &flat_curves(),
        &PreviousCalls::new(),
    );
    let pooled = decisions.iter().find(|d| d.market == ALL_MARKETS).unwrap();
    let mean = pooled.rate_shape / pooled.rate_rate;
    assert!((mean - 18.3).abs() < 1.0, "pooled rate {mean}");
    // Keep level 0.8 · 700 / 42 = 13.3/day: the summed rate clears it.
    assert!(pooled.p_keep > 0.9, "P(keep) {}", pooled.p_keep);
    let (legacy, _) = decide_run(
        &misallocated(),
        &sell_through_policy(),
        &flat_curves(),
        &PreviousCalls::new(),
    );
    let legacy = legacy.iter().find(|d| d.market == ALL_MARKETS).unwrap();
    assert!(
        legacy.p_keep < 0.2,
        "the mean exposure undoes the censoring: {}",
        legacy.p_keep
    );
}

#[test]
fn market_priors_leave_the_market_out_and_market_rows_carry_the_call() {
    let (decisions, _) = decide_run(
        &misallocated(),
        &Policy::default(),
        &flat_curves(),
        &PreviousCalls::new(),
    );
    let us = decisions.iter().find(|d| d.market == "US").unwrap();
    let de = decisions.iter().find(|d| d.market == "DE").unwrap();
    let pooled = decisions.iter().find(|d| d.market == ALL_MARKETS).unwrap();
    // The US prior is the category's scaled to 1/7 of the batch: it holds none of the
    // US's own 100 units.
    assert!(us.prior_shape < 10.0, "{}", us.prior_shape);
    // Poisson days (the flat curve's): the posterior adds exactly the US's units.
    assert!((us.rate_shape - us.prior_shape - 100.0).abs() < 1e-9);
    assert_eq!(us.verdict, pooled.verdict);
    assert_eq!(de.verdict, pooled.verdict);
    assert_eq!(us.reorder_units + de.reorder_units, pooled.reorder_units);
}

#[test]
fn under_the_profit_rule_more_sales_never_lower_p_keep() {
    let policy = Policy::default();
    let curves = DemandCurves::uniform(Curve::fallback(28.0, 5.0));
    let mut last_p = -1.0;
    for sold in (0..=280).step_by(20) {
        let mut obs = misallocated();
        for o in &mut obs {
            o.sold_out = false;
        }
        obs[1].units_sold = sold / 2;
        obs[1].on_hand = 350 - sold / 2;
        obs[1].test_batch_units = 350;
        obs[1].units_received = 350;
        obs[1].exposure_days = 20.0;
        obs[1].decayed_exposure_days = 20.0;
        obs[2].units_sold = sold / 2;
        obs[2].on_hand = 350 - sold / 2;
        obs[2].test_batch_units = 350;
        obs[2].units_received = 350;
        obs[0].units_sold = sold;
        let (d, _) = decide_run(&obs, &policy, &curves, &PreviousCalls::new());
        let pooled = d.iter().find(|d| d.market == ALL_MARKETS).unwrap();
        assert!(
            pooled.p_keep >= last_p,
            "{sold}: {} < {last_p}",
            pooled.p_keep
        );
        last_p = pooled.p_keep;
    }
}

#[test]
fn a_reorder_that_would_arrive_after_the_season_is_a_drop() {
    let mut obs = misallocated();
    for o in &mut obs {
        o.days_live = 75.0;
    }
    let (d, _) = decide_run(
        &obs,
        &Policy::default(),
        &flat_curves(),
        &PreviousCalls::new(),
    );
    let pooled = d.iter().find(|d| d.market == ALL_MARKETS).unwrap();
    assert_eq!(pooled.verdict, Verdict::Drop);
    assert!(pooled.reasons.contains(&Reason::SeasonOver));
    assert_eq!(pooled.reorder_units, 0);
}
