//! Backtest: replay history day by day, decide as of each day with only what was known
//! then, and score each policy's first keep/drop calls against what the styles went on
//! to do, next to simple rules and perfect hindsight.
//!
//! Each day's funnel comes from the daily rollup plus that day's raw events (see
//! [`Engine::observations`]), so a day costs about as much as a daily run; the decision
//! math for every policy then runs on the same observations.

pub mod report;
pub mod score;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::decision::{self, ALL_MARKETS, Policy, StyleObservation, Verdict};
use crate::error::{EngineError, Result};
use crate::session::Engine;
use score::{CalibrationBin, Call, Outcome, Scores};

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

/// How one policy or rule did.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub name: String,
    /// `policy`, `baseline` or `hindsight`.
    pub kind: &'static str,
    pub policy_version: Option<String>,
    pub overall: Scores,
    pub by_category: BTreeMap<String, Scores>,
    pub calibration: Vec<CalibrationBin>,
    pub expected_vs_observed: Option<ExpectedVsObserved>,
    /// On the Pareto front of (wrong keeps, wrong drops, median days) among the
    /// policies under test.
    pub pareto: bool,
    #[serde(skip)]
    pub calls: Vec<Call>,
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
    pub seconds: f64,
    pub results: Vec<PolicyResult>,
    #[serde(skip)]
    pub outcomes: Vec<Outcome>,
}

/// The end of a day: a run "as of" a day sees all of it.
pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    (day + Days::new(1)).and_time(NaiveTime::MIN).and_utc() - chrono::Duration::microseconds(1)
}

/// A policy's running state through the replay.
struct Tracker {
    calls: HashMap<String, Call>,
    samples: Vec<(f64, bool)>,
    last_day: Option<ExpectedVsObserved>,
}

impl Tracker {
    fn new() -> Self {
        Self {
            calls: HashMap::new(),
            samples: Vec::new(),
            last_day: None,
        }
    }

    fn call(
        &mut self,
        style: &str,
        verdict: Verdict,
        days: f64,
        p_keep: Option<f64>,
        reorder: i64,
    ) {
        self.calls.entry(style.to_string()).or_insert_with(|| Call {
            style_id: style.to_string(),
            verdict: Some(verdict),
            days_to_verdict: Some(days),
            p_keep,
            reorder_units: reorder,
        });
    }

    fn into_calls(
        mut self,
        scope: &[Outcome],
    ) -> (Vec<Call>, Vec<(f64, bool)>, Option<ExpectedVsObserved>) {
        let calls = scope
            .iter()
            .map(|o| {
                self.calls.remove(&o.style_id).unwrap_or(Call {
                    style_id: o.style_id.clone(),
                    verdict: None,
                    days_to_verdict: None,
                    p_keep: None,
                    reorder_units: 0,
                })
            })
            .collect();
        (calls, self.samples, self.last_day)
    }
}

/// Replays `request` over `engine`'s data.
///
/// # Errors
/// An empty range, no policy, or a failed query.
pub async fn run(engine: &Engine, request: &BacktestRequest) -> Result<BacktestReport> {
    let started = Instant::now();
    if request.from > request.to {
        return Err(EngineError::Backtest(format!(
            "--from {} is after --to {}",
            request.from, request.to
        )));
    }
    let reference = request
        .policies
        .first()
        .ok_or_else(|| EngineError::Backtest("no policy to test".into()))?;
    let data_end = engine.latest_event();
    let outcomes = outcomes(engine, request, &reference.policy, data_end).await?;
    let scope: HashMap<&str, &Outcome> =
        outcomes.iter().map(|o| (o.style_id.as_str(), o)).collect();

    let mut trackers: Vec<Tracker> = request.policies.iter().map(|_| Tracker::new()).collect();
    let (mut fixed, mut early) = (Tracker::new(), Tracker::new());
    let mut day = request.from;
    while day <= request.to {
        // Past the newest event there is nothing more to know.
        let as_of = end_of_day(day).min(data_end);
        let mut by_window: HashMap<String, Vec<StyleObservation>> = HashMap::new();
        for (named, tracker) in request.policies.iter().zip(trackers.iter_mut()) {
            let key = window_key(&named.policy);
            if !by_window.contains_key(&key) {
                let obs = engine
                    .observations(as_of, &named.policy)
                    .await
                    .or_else(|e| match e {
                        EngineError::NothingToDecide { .. } => Ok(Vec::new()),
                        e => Err(e),
                    })?;
                by_window.insert(key.clone(), obs);
            }
            let observations = &by_window[&key];
            if observations.is_empty() {
                continue;
            }
            let (decisions, wrong_calls) = decision::decide_run(observations, &named.policy);
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
                let reached = outcome.reached_keep();
                if let Some(reached) = reached {
                    tracker.samples.push((d.p_keep, reached));
                }
                if matches!(d.verdict, Verdict::Keep | Verdict::Drop) {
                    tracker.call(
                        &d.style_id,
                        d.verdict,
                        d.days_live,
                        Some(d.p_keep),
                        d.reorder_units,
                    );
                    if let Some(is_wrong) = wrong_as_run_measures(d, outcome) {
                        observed.judged += 1;
                        match d.verdict {
                            Verdict::Keep if is_wrong => observed.observed_wrong_keeps += 1,
                            Verdict::Drop if is_wrong => observed.observed_wrong_drops += 1,
                            _ => {}
                        }
                    }
                }
            }
            tracker.last_day = Some(observed);
        }
        // The baselines look at the reference policy's funnel.
        if let Some(observations) = by_window.get(&window_key(&reference.policy)) {
            for o in observations.iter().filter(|o| o.market == ALL_MARKETS) {
                let Some(outcome) = scope.get(o.style_id.as_str()) else {
                    continue;
                };
                let sold = o.units_sold as f64 / (o.units_received.max(1)) as f64;
                let verdict = |keep: bool| if keep { Verdict::Keep } else { Verdict::Drop };
                if o.days_live >= 14.0 {
                    fixed.call(
                        &o.style_id,
                        verdict(sold >= 0.5),
                        o.days_live,
                        None,
                        outcome.test_batch_units,
                    );
                }
                if o.days_live >= 7.0 {
                    early.call(
                        &o.style_id,
                        verdict(sold >= 0.2),
                        o.days_live,
                        None,
                        outcome.test_batch_units,
                    );
                }
            }
        }
        day = day + Days::new(1);
    }

    let mut results = Vec::new();
    for (named, tracker) in request.policies.iter().zip(trackers) {
        let (calls, samples, last_day) = tracker.into_calls(&outcomes);
        results.push(result(
            &named.name,
            "policy",
            Some(named.policy.version()),
            calls,
            &samples,
            last_day,
            &outcomes,
        ));
    }
    for (name, tracker) in [
        ("fixed horizon: keep if ≥ 50 % sold at day 14", fixed),
        ("naive early: keep if ≥ 20 % sold by day 7", early),
    ] {
        let (calls, _, _) = tracker.into_calls(&outcomes);
        results.push(result(name, "baseline", None, calls, &[], None, &outcomes));
    }
    let hindsight: Vec<Call> = outcomes
        .iter()
        .map(|o| {
            let reached = o.reached_keep();
            let demand = o.true_rate.or(o.realised_rate).unwrap_or(0.0) * o.reorder_horizon_days;
            Call {
                style_id: o.style_id.clone(),
                verdict: reached.map(|k| if k { Verdict::Keep } else { Verdict::Drop }),
                days_to_verdict: reached.map(|_| 0.0),
                p_keep: None,
                reorder_units: demand.round() as i64,
            }
        })
        .collect();
    results.push(result(
        "perfect hindsight",
        "hindsight",
        None,
        hindsight,
        &[],
        None,
        &outcomes,
    ));

    // The Pareto front among the policies under test.
    let policy_points: Vec<(usize, (f64, f64, f64))> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == "policy")
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

/// Policies with the same window share one funnel per day.
fn window_key(policy: &Policy) -> String {
    format!(
        "{}/{}/{}",
        policy.defaults.planned_life_days,
        policy.priors.launch_window_days,
        policy.defaults.return_maturity_days
    )
}

fn result(
    name: &str,
    kind: &'static str,
    policy_version: Option<String>,
    calls: Vec<Call>,
    samples: &[(f64, bool)],
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
        pareto: false,
        calls,
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
    let observations = engine.observations(data_end, policy).await?;
    let (decisions, _) = decision::decide_run(&observations, policy);
    let pooled: HashMap<&str, &decision::Decision> = decisions
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .map(|d| (d.style_id.as_str(), d))
        .collect();
    let truth = truth(engine).await?;
    let mut out = Vec::new();
    for o in &observations {
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
