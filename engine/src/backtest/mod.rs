//! Backtest: replay history day by day, decide as of each day with only what was known
//! then, and score each policy's first keep/drop calls against what the styles went on
//! to do, next to simple rules and perfect hindsight.
//!
//! Each day's funnel comes from the daily rollup plus that day's raw events (see
//! [`Engine::observations`]), so a day costs about as much as a daily run; the decision
//! math for every policy then runs on the same observations.

pub mod money;
pub mod report;
pub mod score;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::decision::{self, ALL_MARKETS, DecisionRule, Policy, Verdict};
use crate::error::{EngineError, Result};
use crate::funnel::Funnel;
use crate::session::Engine;
use money::{
    AgedInterval, Economics, MarketTruth, MoneyScores, MoneyWorld, StyleMoney, StyleTruth,
};
use score::{CalibrationBin, Call, Forecast, Outcome, Scores};

/// A policy under test, with the name the report shows.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: Policy,
}

/// Days to replay and the policies to replay them with.
#[derive(Debug, Clone)]
pub struct BacktestRequest {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub policies: Vec<NamedPolicy>,
}

/// A run's expected wrong calls (Σ P(wrong) over its calls) against those observed,
/// on the last day replayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedVsObserved {
    pub expected_wrong_keeps: f64,
    pub expected_wrong_drops: f64,
    pub observed_wrong_keeps: usize,
    pub observed_wrong_drops: usize,
    /// Calls on that day whose outcome is known.
    pub judged: usize,
}

/// What a scored line of the report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    /// A decision policy (the default, or one given with `--policy`).
    Policy,
    /// A simple rule to beat (fixed horizon, naive), tuned or not.
    Baseline,
    /// Perfect hindsight: the best calls knowing the truth.
    Hindsight,
}

impl std::fmt::Display for ResultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Policy => "policy",
            Self::Baseline => "baseline",
            Self::Hindsight => "hindsight",
        })
    }
}

/// How one policy or rule did.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub name: String,
    pub kind: ResultKind,
    pub policy_version: Option<String>,
    pub overall: Scores,
    pub by_category: BTreeMap<String, Scores>,
    pub calibration: Vec<CalibrationBin>,
    pub expected_vs_observed: Option<ExpectedVsObserved>,
    /// What the calls make in money, on the styles scored in money (generated data).
    pub money: Option<MoneyScores>,
    /// On the Pareto front of (wrong keeps, wrong drops, median days) among the
    /// policies under test.
    pub pareto: bool,
    #[serde(skip)]
    pub calls: Vec<Call>,
    /// Each scored style's money, by style id.
    #[serde(skip)]
    pub style_money: HashMap<String, StyleMoney>,
}

/// Everything a backtest found.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    pub id: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The newest event: realised outcomes are read up to here.
    pub data_end: DateTime<Utc>,
    /// Styles launched in [from, to]: the ones whose whole test the replay covers.
    pub styles: usize,
    /// Styles whose window had closed by `data_end` (realised outcome known).
    pub styles_resolved: usize,
    pub has_truth: bool,
    /// How the money was scored, where the data has the true demand curves.
    pub money: Option<MoneySetup>,
    pub seconds: f64,
    pub results: Vec<PolicyResult>,
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
}

/// How the money scores were made.
#[derive(Debug, Clone, Serialize)]
pub struct MoneySetup {
    /// The world the data came from, as its truth shows it.
    pub world: WorldSummary,
    /// Season length and salvage share of the reference policy: every policy, rule and
    /// hindsight is scored with these.
    pub season_days: f64,
    pub salvage_share: f64,
    /// Of the styles launched at least the test window (`max_days_to_verdict`) before
    /// the last day replayed, those launched before `scored_from` tune the baseline and
    /// the rest are scored.
    pub scored_from: DateTime<Utc>,
    pub tuning_styles: usize,
    pub scored_styles: usize,
    /// The tuned fixed-horizon rule: at day `day`, reorder `multiple` × the test batch
    /// if at least `sell_through` of it has sold.
    pub baseline_day: f64,
    pub baseline_sell_through: f64,
    pub baseline_multiple: f64,
}

/// The world behind a generated dataset, read from its truth.
#[derive(Debug, Clone, Serialize)]
pub struct WorldSummary {
    /// Median half-life of demand (days); `None` where demand does not decay.
    pub median_half_life_days: Option<f64>,
    /// Gamma shape of the day noise; `None` for Poisson days.
    pub day_dispersion: Option<f64>,
    pub promotion_share: f64,
    /// Spread (sd of the log ratio) of each market's share of demand against its share
    /// of the test batch: 0 when stock follows demand.
    pub demand_vs_stock_log_sd: f64,
}

impl std::fmt::Display for WorldSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let decay = self.median_half_life_days.map_or_else(
            || "no decay".to_string(),
            |h| format!("demand halving every {h:.0} days (median)"),
        );
        let noise = self.day_dispersion.map_or_else(
            || "Poisson days".to_string(),
            |k| format!("day noise Gamma k = {k}"),
        );
        write!(
            f,
            "{decay}, {noise}, promotions on {:.0} % of days, market demand vs stock log-sd {:.2}",
            self.promotion_share * 100.0,
            self.demand_vs_stock_log_sd
        )
    }
}

/// The end of a day: a run "as of" a day sees all of it.
pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    (day + Days::new(1)).and_time(NaiveTime::MIN).and_utc() - chrono::Duration::microseconds(1)
}

/// A policy's running state through the replay.
struct Tracker {
    calls: HashMap<String, Call>,
    /// (P(keep) at the call, 1 if it reached the keep level else 0): one per style.
    samples: Vec<(f64, f64)>,
    last_day: Option<ExpectedVsObserved>,
    /// Each style's age and stock on the last day it was seen (for styles still
    /// testing at the end).
    last_seen: HashMap<String, (f64, Vec<(String, i64)>)>,
    /// Each style's demand interval on the first day it was at least each of
    /// `COVERAGE_AGES` old.
    intervals: Vec<HashMap<String, AgedInterval>>,
    /// The calls of the policy's run of the day before.
    previous: decision::PreviousCalls,
}

/// Ages at which the forecasts' intervals are checked against the truth.
const COVERAGE_AGES: [f64; 3] = [3.0, 7.0, 14.0];

impl Tracker {
    fn new() -> Self {
        Self {
            calls: HashMap::new(),
            samples: Vec::new(),
            last_day: None,
            last_seen: HashMap::new(),
            intervals: vec![HashMap::new(); COVERAGE_AGES.len()],
            previous: decision::PreviousCalls::new(),
        }
    }

    /// Records a style's forecast interval at the ages it has just reached.
    fn interval(&mut self, d: &decision::Decision) {
        if d.demand_p90 <= 0.0 {
            return;
        }
        for (age, seen) in COVERAGE_AGES.iter().zip(self.intervals.iter_mut()) {
            if d.days_live >= *age && !seen.contains_key(&d.style_id) {
                seen.insert(
                    d.style_id.clone(),
                    AgedInterval {
                        days_live: d.days_live,
                        p10: d.demand_p10,
                        p90: d.demand_p90,
                    },
                );
            }
        }
    }

    /// Records a style's first keep or drop; `reached` is whether it in fact reached
    /// the keep level, where known.
    fn call(&mut self, call: Call, reached: Option<bool>) {
        if self.calls.contains_key(&call.style_id) {
            return;
        }
        if let (Some(p), Some(reached)) = (call.p_keep, reached) {
            self.samples.push((p, if reached { 1.0 } else { 0.0 }));
        }
        self.calls.insert(call.style_id.clone(), call);
    }

    fn into_calls(
        mut self,
        scope: &[Outcome],
    ) -> (Vec<Call>, Vec<(f64, f64)>, Option<ExpectedVsObserved>) {
        let calls = scope
            .iter()
            .map(|o| {
                self.calls.remove(&o.style_id).unwrap_or_else(|| {
                    let (days, on_hand) = self.last_seen.remove(&o.style_id).unwrap_or_default();
                    Call {
                        style_id: o.style_id.clone(),
                        verdict: None,
                        days_to_verdict: Some(days),
                        p_keep: None,
                        reorder_units: 0,
                        expected_profit: None,
                        forecast: None,
                        on_hand_by_market: on_hand,
                    }
                })
            })
            .collect();
        (calls, self.samples, self.last_day)
    }
}

/// Stock per market of every style in a funnel.
fn stock_by_style(funnel: &Funnel) -> HashMap<&str, Vec<(String, i64)>> {
    let mut out: HashMap<&str, Vec<(String, i64)>> = HashMap::new();
    for o in funnel
        .observations
        .iter()
        .filter(|o| o.market != ALL_MARKETS)
    {
        out.entry(o.style_id.as_str())
            .or_default()
            .push((o.market.clone(), o.on_hand));
    }
    out
}

/// What a fixed-horizon rule sees of a style on the first day it is `day` days old.
#[derive(Debug, Clone)]
struct Snapshot {
    days_live: f64,
    sold_share: f64,
    test_batch_units: i64,
    on_hand: Vec<(String, i64)>,
}

/// The days a fixed-horizon rule may look at, for its tuning.
const BASELINE_DAYS: [f64; 5] = [7.0, 10.0, 14.0, 21.0, 28.0];

/// Replays `request` over `engine`'s data.
///
/// # Errors
/// An empty range, no policy, or a failed query.
pub async fn run(engine: &Engine, request: &BacktestRequest) -> Result<BacktestReport> {
    let started = Instant::now();
    if request.from > request.to {
        return Err(EngineError::BadOption {
            option: "--from",
            message: format!("{} is after --to {}", request.from, request.to),
        });
    }
    let reference = request
        .policies
        .first()
        .ok_or_else(|| EngineError::BadOption {
            option: "--policy",
            message: "no policy to test: name one".into(),
        })?;
    for named in &request.policies {
        engine.check_policy(&named.policy).await?;
    }
    let data_end = engine.latest_event();
    let step = engine
        .progress()
        .step("reading what each style went on to do");
    let outcomes = outcomes(engine, request, &reference.policy, data_end).await?;
    step.finish_and_clear();
    let scope: HashMap<&str, &Outcome> =
        outcomes.iter().map(|o| (o.style_id.as_str(), o)).collect();

    let mut trackers: Vec<Tracker> = request.policies.iter().map(|_| Tracker::new()).collect();
    let (mut fixed, mut early) = (Tracker::new(), Tracker::new());
    let mut snapshots: HashMap<String, BTreeMap<usize, Snapshot>> = HashMap::new();
    let mut day = request.from;
    let bar = engine.progress().bar(
        (request.to - request.from).num_days() as u64 + 1,
        "days replayed",
    );
    while day <= request.to {
        bar.inc(1);
        // Past the newest event there is nothing more to know.
        let as_of = end_of_day(day).min(data_end);
        let mut by_window: HashMap<String, Funnel> = HashMap::new();
        for (named, tracker) in request.policies.iter().zip(trackers.iter_mut()) {
            let key = window_key(&named.policy);
            if !by_window.contains_key(&key) {
                let funnel = match engine.observe_fresh(as_of, &named.policy).await {
                    Ok(f) => f,
                    Err(EngineError::NothingToDecide { .. }) => continue,
                    Err(e) => return Err(e),
                };
                by_window.insert(key.clone(), funnel);
            }
            let funnel = &by_window[&key];
            if funnel.observations.is_empty() {
                continue;
            }
            let stock = stock_by_style(funnel);
            // Each day's run follows the day before's, as if each were published.
            let (decisions, wrong_calls) = decision::decide_run(
                &funnel.observations,
                &named.policy,
                &funnel.curves,
                &tracker.previous,
            );
            tracker.previous = decisions
                .iter()
                .map(|d| ((d.style_id.clone(), d.market.clone()), d.verdict))
                .collect();
            let mut observed = ExpectedVsObserved {
                expected_wrong_keeps: wrong_calls.expected_wrong_keeps,
                expected_wrong_drops: wrong_calls.expected_wrong_drops,
                observed_wrong_keeps: 0,
                observed_wrong_drops: 0,
                judged: 0,
            };
            for d in decisions.iter().filter(|d| d.market == ALL_MARKETS) {
                let Some(outcome) = scope.get(d.style_id.as_str()) else {
                    continue;
                };
                let on_hand = stock.get(d.style_id.as_str()).cloned().unwrap_or_default();
                tracker.interval(d);
                if matches!(d.verdict, Verdict::Keep | Verdict::Drop) {
                    tracker.call(
                        Call {
                            style_id: d.style_id.clone(),
                            verdict: Some(d.verdict),
                            days_to_verdict: Some(d.days_live),
                            p_keep: Some(d.p_keep),
                            reorder_units: d.reorder_units,
                            expected_profit: Some(d.reorder_expected_profit),
                            forecast: forecast(d),
                            on_hand_by_market: on_hand,
                        },
                        outcome.reached_keep(),
                    );
                    if let Some(is_wrong) = wrong_as_run_measures(d, outcome) {
                        observed.judged += 1;
                        match d.verdict {
                            Verdict::Keep if is_wrong => observed.observed_wrong_keeps += 1,
                            Verdict::Drop if is_wrong => observed.observed_wrong_drops += 1,
                            _ => {}
                        }
                    }
                } else {
                    tracker
                        .last_seen
                        .insert(d.style_id.clone(), (d.days_live, on_hand));
                }
            }
            // The run's expected wrong calls are in the sense of the rule that made them:
            // rates against the keep/drop levels for the sell-through rule, money for
            // the profit rule, whose calls the forecast check scores on the true paths.
            if named.policy.defaults.decision_rule == DecisionRule::SellThrough {
                tracker.last_day = Some(observed);
            }
        }
        // The baselines look at the reference policy's funnel.
        if let Some(funnel) = by_window.get(&window_key(&reference.policy)) {
            let stock = stock_by_style(funnel);
            for o in funnel
                .observations
                .iter()
                .filter(|o| o.market == ALL_MARKETS)
            {
                let Some(outcome) = scope.get(o.style_id.as_str()) else {
                    continue;
                };
                let on_hand = stock.get(o.style_id.as_str()).cloned().unwrap_or_default();
                let sold = o.units_sold as f64 / (o.units_received.max(1)) as f64;
                let seen = snapshots.entry(o.style_id.clone()).or_default();
                for (i, horizon) in BASELINE_DAYS.iter().enumerate() {
                    if o.days_live >= *horizon && !seen.contains_key(&i) {
                        seen.insert(
                            i,
                            Snapshot {
                                days_live: o.days_live,
                                sold_share: sold,
                                test_batch_units: o.test_batch_units,
                                on_hand: on_hand.clone(),
                            },
                        );
                    }
                }
                let verdict = |keep: bool| if keep { Verdict::Keep } else { Verdict::Drop };
                let call = |keep: bool| Call {
                    style_id: o.style_id.clone(),
                    verdict: Some(verdict(keep)),
                    days_to_verdict: Some(o.days_live),
                    p_keep: None,
                    reorder_units: if keep { outcome.test_batch_units } else { 0 },
                    expected_profit: None,
                    forecast: None,
                    on_hand_by_market: on_hand.clone(),
                };
                if o.days_live >= 14.0 {
                    fixed.call(call(sold >= 0.5), None);
                }
                if o.days_live >= 7.0 {
                    early.call(call(sold >= 0.2), None);
                }
            }
        }
        day = day + Days::new(1);
    }
    bar.finish_and_clear();

    let step = engine
        .progress()
        .step("scoring every call in money on the world's demand paths");
    let money_world = money_world(engine, &outcomes, &reference.policy).await?;
    // Only styles whose whole test the replay covers (launched at least the test
    // window before its last day) are scored in money: a style launched the day before
    // could not have been called by anyone. The earlier half of them tune the baseline;
    // the later half is scored, so no rule is scored on the styles it was tuned on.
    let covered_until = end_of_day(request.to)
        - chrono::Duration::seconds(
            (reference.policy.defaults.max_days_to_verdict * 86400.0).round() as i64,
        );
    let covered: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.launch_at.is_some_and(|t| t <= covered_until))
        .collect();
    let mut launches: Vec<DateTime<Utc>> = covered.iter().filter_map(|o| o.launch_at).collect();
    launches.sort();
    let scored_from = launches
        .get(launches.len() / 2)
        .copied()
        .unwrap_or(data_end);
    let (tuning, scored): (Vec<&Outcome>, Vec<&Outcome>) = covered
        .iter()
        .partition(|o| o.launch_at.is_some_and(|t| t < scored_from));
    fn ids<'a>(set: &[&'a Outcome]) -> Vec<&'a str> {
        set.iter().map(|o| o.style_id.as_str()).collect()
    }
    let (tuning_ids, scored_ids) = (ids(&tuning), ids(&scored));
    let money = |r: &mut PolicyResult| {
        if let Some(world) = &money_world {
            let (scores, by_style) = world.score(&r.calls, &scored_ids);
            r.money = Some(scores);
            r.style_money = by_style;
        }
    };
    // A rule to beat: no probabilities to calibrate, scored like the policies.
    let baseline = |name: &str, calls: Vec<Call>| {
        let mut r = result(
            name,
            ResultKind::Baseline,
            None,
            calls,
            &[],
            None,
            &outcomes,
        );
        money(&mut r);
        r
    };

    let mut results = Vec::new();
    for (named, mut tracker) in request.policies.iter().zip(trackers) {
        let intervals = std::mem::take(&mut tracker.intervals);
        let (calls, samples, last_day) = tracker.into_calls(&outcomes);
        let mut r = result(
            &named.name,
            ResultKind::Policy,
            Some(named.policy.version()),
            calls,
            &samples,
            last_day,
            &outcomes,
        );
        money(&mut r);
        if let (Some(world), Some(f)) = (
            &money_world,
            r.money.as_mut().and_then(|m| m.forecasts.as_mut()),
        ) {
            f.by_age = world.coverage_by_age(&COVERAGE_AGES, &intervals, &scored_ids);
        }
        results.push(r);
    }
    let mut setup = None;
    if let Some(world) = &money_world {
        let (day, share, multiple, calls) = tune_fixed_horizon(world, &snapshots, &tuning_ids);
        results.push(baseline(
            &format!(
                "tuned fixed horizon: reorder {multiple} × batch if ≥ {:.0} % sold at day {day}",
                share * 100.0
            ),
            calls,
        ));
        let rules = reference.policy.rules_for("");
        setup = Some(MoneySetup {
            world: world_summary(engine).await?,
            season_days: rules.season_days,
            salvage_share: rules.salvage_share,
            scored_from,
            tuning_styles: tuning_ids.len(),
            scored_styles: scored_ids.len(),
            baseline_day: day,
            baseline_sell_through: share,
            baseline_multiple: multiple,
        });
    }
    for (name, tracker) in [
        ("fixed horizon: keep if ≥ 50 % sold at day 14", fixed),
        ("naive early: keep if ≥ 20 % sold by day 7", early),
    ] {
        let (calls, _, _) = tracker.into_calls(&outcomes);
        results.push(baseline(name, calls));
    }
    let hindsight: Vec<Call> = match &money_world {
        Some(world) => world.hindsight_calls(&ids(&outcomes.iter().collect::<Vec<_>>())),
        None => outcomes
            .iter()
            .map(|o| {
                let reached = o.reached_keep();
                let demand =
                    o.true_rate.or(o.realised_rate).unwrap_or(0.0) * o.reorder_horizon_days;
                Call {
                    style_id: o.style_id.clone(),
                    verdict: reached.map(|k| if k { Verdict::Keep } else { Verdict::Drop }),
                    days_to_verdict: reached.map(|_| 0.0),
                    p_keep: None,
                    reorder_units: demand.round() as i64,
                    expected_profit: None,
                    forecast: None,
                    on_hand_by_market: Vec::new(),
                }
            })
            .collect(),
    };
    let mut r = result(
        "perfect hindsight",
        ResultKind::Hindsight,
        None,
        hindsight,
        &[],
        None,
        &outcomes,
    );
    money(&mut r);
    results.push(r);

    // The Pareto front among the policies under test.
    let policy_points: Vec<(usize, (f64, f64, f64))> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == ResultKind::Policy)
        .map(|(i, r)| {
            let wrong = r.overall.wrong_truth.unwrap_or(r.overall.wrong_realised);
            let days = r.overall.days_to_verdict_median.unwrap_or(f64::INFINITY);
            (i, (wrong.keeps as f64, wrong.drops as f64, days))
        })
        .collect();
    let points: Vec<(f64, f64, f64)> = policy_points.iter().map(|(_, p)| *p).collect();
    for front in score::pareto_front(&points) {
        results[policy_points[front].0].pareto = true;
    }

    step.finish_and_clear();
    let created = Utc::now();
    Ok(BacktestReport {
        id: format!(
            "{}-{}-{}",
            created.format("%Y%m%dT%H%M%SZ"),
            request.from,
            request.to
        ),
        from: request.from,
        to: request.to,
        data_end,
        styles: outcomes.len(),
        styles_resolved: outcomes
            .iter()
            .filter(|o| o.realised_rate.is_some())
            .count(),
        has_truth: outcomes.iter().any(|o| o.truth_keep.is_some()),
        money: setup,
        seconds: started.elapsed().as_secs_f64(),
        results,
        outcomes,
    })
}

/// Whether a call was wrong in the sense its P(wrong) measures (see the rule): a keep
/// whose rate is below the keep level; a low-rate drop whose rate is above the drop
/// level; a day-21 drop that would have reached the keep level; a returns drop whose
/// true return rate is within the limit. `None` when the outcome is unknown.
fn wrong_as_run_measures(d: &decision::Decision, o: &Outcome) -> Option<bool> {
    use decision::Reason;
    let rate = o.known_rate();
    match d.verdict {
        Verdict::Keep => rate.map(|r| r < o.keep_rate),
        Verdict::Drop if d.reasons.contains(&Reason::HighReturns) => o
            .true_non_size_return_rate
            .map(|r| r <= o.return_rate_limit),
        Verdict::Drop if d.reasons.contains(&Reason::MaxWindow) => rate.map(|r| r >= o.keep_rate),
        Verdict::Drop => rate.map(|r| r > o.drop_rate),
        Verdict::Test => None,
    }
}

/// The profit rule's forecast behind a call: the probability that it is right in
/// money (a keep's reorder makes money; a drop's smallest reorder would not) and its
/// interval of the demand still to come.
fn forecast(d: &decision::Decision) -> Option<Forecast> {
    if d.value_per_sale <= 0.0 {
        return None;
    }
    let p_right = match d.verdict {
        Verdict::Keep if d.reorder_units > 0 => d.p_reorder_profit,
        Verdict::Drop => 1.0 - d.p_reorder_pays,
        _ => return None,
    };
    Some(Forecast {
        p_right,
        demand_p10: d.demand_p10,
        demand_p90: d.demand_p90,
        half_life_days: d.decay_half_life_days,
    })
}

/// Policies with the same window and curve settings share one funnel per day.
fn window_key(policy: &Policy) -> String {
    format!(
        "{}/{}/{}/{}/{}/{}/{}",
        policy.defaults.planned_life_days,
        policy.priors.launch_window_days,
        policy.defaults.return_maturity_days,
        policy.defaults.decay_half_life_days,
        policy.defaults.day_dispersion,
        policy.priors.lookback_days,
        policy.priors.min_launches,
    )
}

/// The best fixed-horizon rule on the tuning styles: (day, sell-through share, batch
/// multiple), and its calls on every style.
fn tune_fixed_horizon(
    world: &MoneyWorld,
    snapshots: &HashMap<String, BTreeMap<usize, Snapshot>>,
    tuning: &[&str],
) -> (f64, f64, f64, Vec<Call>) {
    let calls_for = |day: usize, share: f64, multiple: f64| -> Vec<Call> {
        let mut styles: Vec<&String> = snapshots.keys().collect();
        styles.sort();
        styles
            .into_iter()
            .filter_map(|style| {
                let s = snapshots[style].get(&day)?;
                let keep = s.sold_share >= share;
                Some(Call {
                    style_id: style.clone(),
                    verdict: Some(if keep { Verdict::Keep } else { Verdict::Drop }),
                    days_to_verdict: Some(s.days_live),
                    p_keep: None,
                    reorder_units: if keep {
                        (s.test_batch_units as f64 * multiple).round() as i64
                    } else {
                        0
                    },
                    expected_profit: None,
                    forecast: None,
                    on_hand_by_market: s.on_hand.clone(),
                })
            })
            .collect()
    };
    // A style's value under a rule depends only on the day and the multiple: the
    // sell-through share picks which of them are kept.
    let shares = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let multiples = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0];
    let mut best = (0, 0.5, 1.0, f64::NEG_INFINITY);
    for day in 0..BASELINE_DAYS.len() {
        let seen: Vec<(&str, &Snapshot)> = tuning
            .iter()
            .filter_map(|s| snapshots.get(*s)?.get(&day).map(|snap| (*s, snap)))
            .collect();
        for multiple in multiples {
            let values = crate::decision::map_on_all_cores(&seen, |(style, s)| {
                let units = (s.test_batch_units as f64 * multiple).round() as i64;
                (
                    s.sold_share,
                    world.value(style, s.days_live, &s.on_hand, units),
                )
            });
            for share in shares {
                let profit: f64 = values
                    .iter()
                    .filter(|(sold, _)| *sold >= share)
                    .map(|(_, v)| v)
                    .sum();
                if profit > best.3 {
                    best = (day, share, multiple, profit);
                }
            }
        }
    }
    let (day, share, multiple, _) = best;
    (
        BASELINE_DAYS[day],
        share,
        multiple,
        calls_for(day, share, multiple),
    )
}

/// Each style's true demand curve and its economics, where the data has them.
async fn money_world(
    engine: &Engine,
    outcomes: &[Outcome],
    policy: &Policy,
) -> Result<Option<MoneyWorld>> {
    if !engine.ctx().table_exist("truth_markets")? {
        return Ok(None);
    }
    let batches = engine
        .query(
            "SELECT m.style_id, m.market, m.test_batch_units, m.initial_rate, m.half_life_days, \
                    m.day_dispersion, m.promotion_share, m.promotion_lift, t.true_return_rate \
             FROM truth_markets m JOIN truth t ON m.style_id = t.style_id \
             ORDER BY m.style_id, m.market",
        )
        .await?;
    let mut truths: BTreeMap<String, StyleTruth> = BTreeMap::new();
    for batch in &batches {
        let c = crate::columns::Columns {
            query: "truth_markets",
            batch,
        };
        let (ids, markets, batch_units) = (
            c.texts("style_id")?,
            c.texts("market")?,
            c.ints("test_batch_units")?,
        );
        let (rate, half_life, dispersion) = (
            c.floats("initial_rate")?,
            c.optional_floats("half_life_days")?,
            c.optional_floats("day_dispersion")?,
        );
        let (promotions, lift, returns) = (
            c.floats("promotion_share")?,
            c.floats("promotion_lift")?,
            c.floats("true_return_rate")?,
        );
        for i in 0..batch.num_rows() {
            let t = truths.entry(ids[i].clone()).or_insert_with(|| StyleTruth {
                style_id: ids[i].clone(),
                markets: Vec::new(),
                half_life_days: half_life[i],
                day_dispersion: dispersion[i],
                promotion_share: promotions[i],
                promotion_lift: lift[i],
                return_rate: returns[i],
            });
            t.markets.push(MarketTruth {
                market: markets[i].clone(),
                initial_rate: rate[i],
                test_batch_units: batch_units[i],
            });
        }
    }
    let styles: Vec<(StyleTruth, Economics)> = outcomes
        .iter()
        .filter_map(|o| {
            let truth = truths.remove(&o.style_id)?;
            let rules = policy.rules_for(&o.category);
            Some((
                truth,
                Economics {
                    price: o.list_price,
                    unit_cost: o.unit_cost,
                    lead_time_days: o.lead_time_days,
                    moq: o.moq,
                    season_days: rules.season_days,
                    salvage_value: rules.salvage_share * o.unit_cost,
                },
            ))
        })
        .collect();
    Ok(Some(MoneyWorld::new(styles)))
}

/// The world behind the data, from its truth.
async fn world_summary(engine: &Engine) -> Result<WorldSummary> {
    let batches = engine
        .query(
            "SELECT approx_median(half_life_days) AS half_life, MIN(day_dispersion) AS k, \
                    MAX(promotion_share) AS promotions, \
                    stddev_pop(ln((initial_rate / NULLIF(style_rate, 0)) \
                                  / (CAST(test_batch_units AS DOUBLE) / NULLIF(style_batch, 0)))) \
                        AS spread \
             FROM (SELECT *, SUM(initial_rate) OVER (PARTITION BY style_id) AS style_rate, \
                          SUM(CAST(test_batch_units AS DOUBLE)) OVER (PARTITION BY style_id) \
                              AS style_batch \
                   FROM truth_markets) m \
             WHERE initial_rate > 0",
        )
        .await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(WorldSummary {
            median_half_life_days: None,
            day_dispersion: None,
            promotion_share: 0.0,
            demand_vs_stock_log_sd: 0.0,
        });
    };
    let c = crate::columns::Columns {
        query: "truth_markets",
        batch: b,
    };
    Ok(WorldSummary {
        median_half_life_days: c.optional_floats("half_life")?[0],
        day_dispersion: c.optional_floats("k")?[0],
        promotion_share: c.floats("promotions")?[0],
        demand_vs_stock_log_sd: c.floats("spread")?[0],
    })
}

fn result(
    name: &str,
    kind: ResultKind,
    policy_version: Option<String>,
    calls: Vec<Call>,
    samples: &[(f64, f64)],
    last_day: Option<ExpectedVsObserved>,
    outcomes: &[Outcome],
) -> PolicyResult {
    let mut categories: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for o in outcomes {
        categories
            .entry(o.category.clone())
            .or_default()
            .push(o.clone());
    }
    PolicyResult {
        name: name.to_string(),
        kind,
        policy_version,
        overall: score::score(&calls, outcomes),
        by_category: categories
            .into_iter()
            .map(|(c, subset)| (c, score::score(&calls, &subset)))
            .collect(),
        calibration: if samples.is_empty() {
            Vec::new()
        } else {
            score::calibration(samples)
        },
        expected_vs_observed: last_day,
        money: None,
        pareto: false,
        calls,
        style_money: HashMap::new(),
    }
}

/// What each style launched in [from, to] went on to do: its funnel at the newest
/// event (the whole window where it has closed), and the truth where the data has one.
async fn outcomes(
    engine: &Engine,
    request: &BacktestRequest,
    policy: &Policy,
    data_end: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let launched: HashSet<String> = engine
        .catalog()
        .await?
        .into_iter()
        .filter(|s| {
            s.launch_at
                .is_some_and(|t| t.date_naive() >= request.from && t.date_naive() <= request.to)
        })
        .map(|s| s.style_id)
        .collect();
    let launch_at: HashMap<String, Option<DateTime<Utc>>> = engine
        .catalog()
        .await?
        .into_iter()
        .map(|s| (s.style_id, s.launch_at))
        .collect();
    let funnel = engine.observe_fresh(data_end, policy).await?;
    let observations = &funnel.observations;
    let (decisions, _) = decision::decide_run(
        observations,
        policy,
        &funnel.curves,
        &decision::PreviousCalls::new(),
    );
    let pooled: HashMap<&str, &decision::Decision> = decisions
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .map(|d| (d.style_id.as_str(), d))
        .collect();
    let truth = truth(engine).await?;
    let mut out = Vec::new();
    for o in observations {
        if o.market != ALL_MARKETS || !launched.contains(&o.style_id) {
            continue;
        }
        let Some(d) = pooled.get(o.style_id.as_str()) else {
            continue;
        };
        let rules = policy.rules_for(&o.category);
        let closed = o.days_live >= rules.planned_life_days;
        let (truth_keep, true_rate) = truth.get(&o.style_id).map(|t| (t.0, t.1)).unzip();
        out.push(Outcome {
            style_id: o.style_id.clone(),
            category: o.category.clone(),
            launch_at: launch_at.get(&o.style_id).copied().flatten(),
            lead_time_days: o.lead_time_days,
            moq: o.moq,
            test_batch_units: o.test_batch_units,
            keep_rate: d.keep_rate,
            drop_rate: d.drop_rate,
            list_price: o.list_price,
            unit_cost: o.unit_cost,
            reorder_horizon_days: o.lead_time_days + rules.reorder_cover_days,
            realised_rate: (closed && o.exposure_days > 0.0)
                .then(|| o.units_sold as f64 / o.exposure_days),
            truth_keep,
            true_rate,
            true_non_size_return_rate: truth.get(&o.style_id).map(|t| t.2),
            return_rate_limit: rules.return_rate_limit,
        });
    }
    out.sort_by(|a, b| a.style_id.cmp(&b.style_id));
    Ok(out)
}

/// Per style: (keep, true rate, true non-size return rate).
async fn truth(engine: &Engine) -> Result<HashMap<String, (bool, f64, f64)>> {
    if !engine.ctx().table_exist("truth")? {
        return Ok(HashMap::new());
    }
    let batches = engine
        .query("SELECT style_id, keep, true_daily_rate, true_non_size_return_rate FROM truth")
        .await?;
    let mut out = HashMap::new();
    for batch in &batches {
        let c = crate::columns::Columns {
            query: "truth",
            batch,
        };
        let (ids, keep) = (c.texts("style_id")?, c.bools("keep")?);
        let (rate, returns) = (
            c.floats("true_daily_rate")?,
            c.floats("true_non_size_return_rate")?,
        );
        for i in 0..batch.num_rows() {
            out.insert(ids[i].clone(), (keep[i], rate[i], returns[i]));
        }
    }
    Ok(out)
}
