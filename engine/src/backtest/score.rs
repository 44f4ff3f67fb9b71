//! Scoring a policy's calls against what the styles went on to do. Pure functions over
//! plain records, so the scores can be checked by hand.

use serde::Serialize;

use crate::decision::Verdict;

/// What a style went on to do, as far as the data (and, for generated data, the truth)
/// shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub style_id: String,
    pub category: String,
    pub launch_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Units of the test batch (Q).
    pub test_batch_units: i64,
    /// Keep and drop levels of the rate (units/day), from the policy's thresholds.
    pub keep_rate: f64,
    pub drop_rate: f64,
    pub list_price: f64,
    pub unit_cost: f64,
    pub lead_time_days: f64,
    pub moq: i64,
    /// Days of demand a reorder has to sell through: lead time + cover.
    pub reorder_horizon_days: f64,
    /// Units sold per in-stock day over the whole window, where the window has closed.
    pub realised_rate: Option<f64>,
    /// Ground truth of generated data: its true rate, and whether a buyer who knew the
    /// true rates and return rates would keep it (reported, not scored: the scores judge
    /// the rate against the levels).
    pub true_rate: Option<f64>,
    pub truth_keep: Option<bool>,
    /// True share of units returned for reasons other than size, and the policy's limit.
    pub true_non_size_return_rate: Option<f64>,
    pub return_rate_limit: f64,
}

impl Outcome {
    /// The best-known rate: the true one where the data has it, else the realised one.
    pub fn known_rate(&self) -> Option<f64> {
        self.true_rate.or(self.realised_rate)
    }

    /// Whether the style reached the keep level; `None` while its rate is unknown.
    pub fn reached_keep(&self) -> Option<bool> {
        self.known_rate().map(|r| r >= self.keep_rate)
    }
}

/// A policy's first final call on a style.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub style_id: String,
    /// Keep or drop; `None` when the style was still testing at the end.
    pub verdict: Option<Verdict>,
    /// Days live when the call was made.
    pub days_to_verdict: Option<f64>,
    pub p_keep: Option<f64>,
    pub reorder_units: i64,
    /// The policy's own expected profit of its reorder, where it has one.
    pub expected_profit: Option<f64>,
    /// What the policy said at the call about its own chances (profit rule only).
    pub forecast: Option<Forecast>,
    /// Stock per market when the call was made (or, for a style still testing, on the
    /// last day replayed): where the money simulation starts.
    #[serde(skip)]
    pub on_hand_by_market: Vec<(String, i64)>,
}

/// A call's own forecast, to be checked against the truth: are its probabilities and
/// intervals as often right as they claim?
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Forecast {
    /// Probability that the call is right in money: for a keep, that its reorder makes
    /// money; for a drop, that the smallest reorder (the MOQ) would not.
    pub p_right: f64,
    /// 80 % interval of the style's demand from the call to the season's end, all
    /// markets, stock permitting or not.
    pub demand_p10: f64,
    pub demand_p90: f64,
    /// The demand curve's half-life the forecast assumed (`None`: no decay).
    pub half_life_days: Option<f64>,
}

/// Wrong calls counted one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WrongCount {
    pub keeps: usize,
    pub drops: usize,
    /// Calls that could be judged this way.
    pub judged: usize,
}

/// One bin of a reliability table: forecasts between `from` and `to`, their mean and
/// how often what they forecast happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationBin {
    pub from: f64,
    pub to: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub share_observed: f64,
}

/// The scores of one policy (or baseline) over a set of styles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub styles: usize,
    pub keeps: usize,
    pub drops: usize,
    pub still_testing_share: f64,
    /// Kept styles that ended below the drop level; dropped styles that would have
    /// reached the keep level: by realised sell-through (closed windows only)...
    pub wrong_realised: WrongCount,
    /// ...and by the ground truth (generated data).
    pub wrong_truth: Option<WrongCount>,
    pub days_to_verdict_median: Option<f64>,
    pub days_to_verdict_p90: Option<f64>,
    /// Σ over keeps of the reorder's outcome: units sold × margin − unsold units × cost.
    pub margin_proxy: f64,
}

fn wrong(
    calls: &[(&Call, &Outcome)],
    judge: impl Fn(&Outcome) -> Option<(bool, bool)>,
) -> WrongCount {
    let mut count = WrongCount::default();
    for (call, outcome) in calls {
        let (Some(verdict), Some((good_keep, bad_keep))) = (call.verdict, judge(outcome)) else {
            continue;
        };
        count.judged += 1;
        match verdict {
            Verdict::Keep if bad_keep => count.keeps += 1,
            Verdict::Drop if good_keep => count.drops += 1,
            _ => {}
        }
    }
    count
}

/// The q-quantile (0 ≤ q ≤ 1) by linear interpolation between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64))
}

/// Scores calls against outcomes, matched by style id (styles without an outcome are
/// left out).
pub fn score(calls: &[Call], outcomes: &[Outcome]) -> Scores {
    let by_style: std::collections::HashMap<&str, &Outcome> =
        outcomes.iter().map(|o| (o.style_id.as_str(), o)).collect();
    let pairs: Vec<(&Call, &Outcome)> = calls
        .iter()
        .filter_map(|c| by_style.get(c.style_id.as_str()).map(|o| (c, *o)))
        .collect();
    let keeps = pairs
        .iter()
        .filter(|(c, _)| c.verdict == Some(Verdict::Keep))
        .count();
    let drops = pairs
        .iter()
        .filter(|(c, _)| c.verdict == Some(Verdict::Drop))
        .count();
    let days: Vec<f64> = pairs
        .iter()
        .filter_map(|(c, _)| c.days_to_verdict)
        .collect();
    let has_truth = pairs.iter().any(|(_, o)| o.true_rate.is_some());
    // A wrong keep ended below the drop level; a wrong drop would have reached the keep
    // level. Judged by the realised rate and, separately, by the true rate.
    let judge = |rate: Option<f64>, o: &Outcome| rate.map(|r| (r >= o.keep_rate, r < o.drop_rate));
    let margin_proxy = pairs
        .iter()
        .filter(|(c, _)| c.verdict == Some(Verdict::Keep))
        .filter_map(|(c, o)| {
            let demand = o.known_rate()? * o.reorder_horizon_days;
            let ordered = c.reorder_units.max(0) as f64;
            let sold = ordered.min(demand);
            Some(sold * (o.list_price - o.unit_cost) - (ordered - sold) * o.unit_cost)
        })
        .sum();
    Scores {
        styles: pairs.len(),
        keeps,
        drops,
        still_testing_share: if pairs.is_empty() {
            0.0
        } else {
            (pairs.len() - keeps - drops) as f64 / pairs.len() as f64
        },
        wrong_realised: wrong(&pairs, |o| judge(o.realised_rate, o)),
        wrong_truth: has_truth.then(|| wrong(&pairs, |o| judge(o.true_rate, o))),
        days_to_verdict_median: quantile(&days, 0.5),
        days_to_verdict_p90: quantile(&days, 0.9),
        margin_proxy,
    }
}

/// The reliability table in ten bins, from (forecast probability, share of the time
/// it happened) samples: the share is 0 or 1 for one outcome, or a share of simulated
/// outcomes.
pub fn calibration(samples: &[(f64, f64)]) -> Vec<CalibrationBin> {
    (0..10)
        .map(|i| {
            let (from, to) = (i as f64 / 10.0, (i + 1) as f64 / 10.0);
            let inside: Vec<&(f64, f64)> = samples
                .iter()
                .filter(|(p, _)| *p >= from && (*p < to || (i == 9 && *p <= to)))
                .collect();
            let n = inside.len();
            let mean = |f: &dyn Fn(&(f64, f64)) -> f64| {
                if n == 0 {
                    0.0
                } else {
                    inside.iter().map(|s| f(s)).sum::<f64>() / n as f64
                }
            };
            CalibrationBin {
                from,
                to,
                count: n,
                mean_predicted: mean(&|s| s.0),
                share_observed: mean(&|s| s.1),
            }
        })
        .collect()
}

/// Expected calibration error: the gap between forecast and observed share, averaged
/// over the bins weighted by their counts (0 = perfectly calibrated).
pub fn calibration_error(bins: &[CalibrationBin]) -> f64 {
    let n: usize = bins.iter().map(|b| b.count).sum();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .map(|b| b.count as f64 * (b.mean_predicted - b.share_observed).abs())
        .sum::<f64>()
        / n as f64
}

/// Indices of the points not dominated on all of (wrong keeps, wrong drops, days to
/// verdict): lower is better on each.
pub fn pareto_front(points: &[(f64, f64, f64)]) -> Vec<usize> {
    let dominates = |a: &(f64, f64, f64), b: &(f64, f64, f64)| {
        a.0 <= b.0 && a.1 <= b.1 && a.2 <= b.2 && (a.0 < b.0 || a.1 < b.1 || a.2 < b.2)
    };
    (0..points.len())
        .filter(|&i| !points.iter().any(|p| dominates(p, &points[i])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, realised: Option<f64>, truth: Option<f64>) -> Outcome {
        Outcome {
            style_id: id.into(),
            category: "tops".into(),
            launch_at: None,
            test_batch_units: 420,
            // Q = 420, L = 42: keep level 0.8·420/42 = 8/day, drop level 4/day.
            keep_rate: 8.0,
            drop_rate: 4.0,
            list_price: 20.0,
            unit_cost: 8.0,
            lead_time_days: 21.0,
            moq: 50,
            reorder_horizon_days: 42.0,
            realised_rate: realised,
            true_rate: truth,
            truth_keep: None,
            true_non_size_return_rate: None,
            return_rate_limit: 0.35,
        }
    }

    fn call(id: &str, verdict: Option<Verdict>, days: Option<f64>, reorder: i64) -> Call {
        Call {
            style_id: id.into(),
            verdict,
            days_to_verdict: days,
            p_keep: None,
            reorder_units: reorder,
            expected_profit: None,
            forecast: None,
            on_hand_by_market: Vec::new(),
        }
    }

    /// Five styles worked by hand.
    /// A: kept on day 7, realised 10/day (good keep); reorder 300 against demand
    ///    10 × 42 = 420: all sold, margin 300 × 12 = 3600.
    /// B: kept on day 9, realised 3/day (< drop level 4: a wrong keep); reorder 200
    ///    against 3 × 42 = 126: 126 × 12 − 74 × 8 = 1512 − 592 = 920.
    /// C: dropped on day 10, realised 9/day (≥ keep level 8: a wrong drop).
    /// D: dropped on day 21, realised 2/day (good drop).
    /// E: still testing; window still open (no realised rate).
    /// Days to verdict 7, 9, 10, 21: median 9.5, P90 = 10 + 0.7 · 11 = 17.7.
    #[test]
    fn scores_match_the_hand_worked_example() {
        let outcomes = vec![
            outcome("A", Some(10.0), None),
            outcome("B", Some(3.0), None),
            outcome("C", Some(9.0), None),
            outcome("D", Some(2.0), None),
            outcome("E", None, None),
        ];
        let calls = vec![
            call("A", Some(Verdict::Keep), Some(7.0), 300),
            call("B", Some(Verdict::Keep), Some(9.0), 200),
            call("C", Some(Verdict::Drop), Some(10.0), 0),
            call("D", Some(Verdict::Drop), Some(21.0), 0),
            call("E", None, None, 0),
        ];
        let s = score(&calls, &outcomes);
        assert_eq!((s.styles, s.keeps, s.drops), (5, 2, 2));
        assert!((s.still_testing_share - 0.2).abs() < 1e-12);
        assert_eq!(
            s.wrong_realised,
            WrongCount {
                keeps: 1,
                drops: 1,
                judged: 4
            }
        );
        assert_eq!(s.wrong_truth, None);
        assert_eq!(s.days_to_verdict_median, Some(9.5));
        assert!((s.days_to_verdict_p90.unwrap() - 17.7).abs() < 1e-12);
        assert!((s.margin_proxy - 4520.0).abs() < 1e-9, "{}", s.margin_proxy);
    }

    /// True rates: A kept at 3/day (below the drop level 4: wrong), B dropped at 8/day
    /// (reaches the keep level 8: wrong), C kept at 6/day (between the levels: not
    /// wrong, just not great).
    #[test]
    fn truth_judges_every_decided_style() {
        let outcomes = vec![
            outcome("A", None, Some(3.0)),
            outcome("B", None, Some(8.0)),
            outcome("C", None, Some(6.0)),
        ];
        let calls = vec![
            call("A", Some(Verdict::Keep), Some(7.0), 0),
            call("B", Some(Verdict::Drop), Some(8.0), 0),
            call("C", Some(Verdict::Keep), Some(8.0), 0),
        ];
        let s = score(&calls, &outcomes);
        assert_eq!(
            s.wrong_truth,
            Some(WrongCount {
                keeps: 1,
                drops: 1,
                judged: 3
            })
        );
        assert_eq!(s.wrong_realised.judged, 0);
    }

    #[test]
    fn calibration_bins_and_pareto_front() {
        let bins = calibration(&[(0.05, 0.0), (0.95, 1.0), (0.92, 0.0), (1.0, 1.0)]);
        assert_eq!(bins[0].count, 1);
        assert_eq!(bins[9].count, 3);
        assert!((bins[9].share_observed - 2.0 / 3.0).abs() < 1e-12);
        assert!((bins[9].mean_predicted - (0.95 + 0.92 + 1.0) / 3.0).abs() < 1e-12);
        // (wrong keeps, wrong drops, days): the second is dominated by the first.
        let front = pareto_front(&[(1.0, 2.0, 9.0), (2.0, 2.0, 9.0), (0.0, 5.0, 12.0)]);
        assert_eq!(front, vec![0, 2]);
    }
}
