//! What a call is worth in money, in the world that truly generated the data.
//!
//! The generator writes each style's true demand curve per market
//! (`truth_markets.parquet`). From it this module samples demand paths day by day to
//! the end of the season — the same paths for every policy (common random numbers), so
//! two policies differ only by their calls — and runs an inventory simulation of a
//! reorder: each market sells from its own stock, and what a stock-out cannot serve is
//! lost, not back-ordered; a reorder arrives after the supplier's lead time and is
//! allocated to whichever market has demand left; returned units are refunded and worth
//! their salvage; whatever is left when the season ends is marked down to its salvage
//! value. A call's worth is its expected profit over the season against never
//! reordering, so a drop (or a style still testing) is worth exactly zero, and a keep
//! whose reorder does not sell loses money.
//!
//! Nothing here reads what the policy saw after its call: the simulation starts from
//! the stock on hand at the call and uses only the truth from then on.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Poisson};
use serde::Serialize;

use super::score::{CalibrationBin, Call, calibration, calibration_error};
use crate::decision::Verdict;
use crate::decision::profit::seed_of;

/// A style's true demand in one market.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketTruth {
    pub market: String,
    /// Units per day at launch (average weekday), while in stock.
    pub initial_rate: f64,
    pub test_batch_units: i64,
}

/// A style's true demand curve.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleTruth {
    pub style_id: String,
    pub markets: Vec<MarketTruth>,
    pub half_life_days: Option<f64>,
    pub day_dispersion: Option<f64>,
    pub promotion_share: f64,
    pub promotion_lift: f64,
    /// Share of sold units returned (refunded).
    pub return_rate: f64,
}

/// The money side of a style, shared by every policy scored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Economics {
    pub price: f64,
    pub unit_cost: f64,
    pub lead_time_days: f64,
    pub moq: i64,
    /// Days after launch the style can sell; a unit left then fetches its salvage.
    pub season_days: f64,
    /// What a unit left at the season's end (or returned) fetches.
    pub salvage_value: f64,
}

/// Sampled daily demand of one style: `units[path][day][market]`, day 0 being the
/// launch day.
#[derive(Debug, Clone)]
pub struct DemandPaths {
    markets: Vec<String>,
    batch: Vec<i64>,
    units: Vec<Vec<Vec<u32>>>,
    return_rate: f64,
}

/// How many demand paths each style is scored over.
pub const PATHS: usize = 64;

impl DemandPaths {
    /// Samples `paths` paths of daily demand to the season's end, seeded by the style
    /// id so every run of the backtest (and every policy) sees the same ones.
    pub fn sample(truth: &StyleTruth, season_days: f64, paths: usize) -> Self {
        let days = season_days.ceil().max(1.0) as usize;
        let mut rng = StdRng::seed_from_u64(seed_of(&truth.style_id));
        let factor = truth
            .day_dispersion
            .and_then(|k| Gamma::new(k, 1.0 / k).ok());
        let decay = |age: f64| match truth.half_life_days {
            Some(h) if h > 0.0 => (-std::f64::consts::LN_2 * age / h).exp(),
            _ => 1.0,
        };
        let units = (0..paths)
            .map(|_| {
                (0..days)
                    .map(|day| {
                        truth
                            .markets
                            .iter()
                            .map(|m| {
                                let mut mean = m.initial_rate * decay(day as f64 + 0.5);
                                if let Some(f) = &factor {
                                    mean *= f.sample(&mut rng);
                                }
                                if truth.promotion_share > 0.0
                                    && rng.random_bool(truth.promotion_share.min(1.0))
                                {
                                    mean *= truth.promotion_lift;
                                }
                                poisson(&mut rng, mean)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self {
            markets: truth.markets.iter().map(|m| m.market.clone()).collect(),
            batch: truth.markets.iter().map(|m| m.test_batch_units).collect(),
            units,
            return_rate: truth.return_rate.clamp(0.0, 1.0),
        }
    }

    /// The test batch per market, as stocked at launch.
    pub fn launch_stock(&self) -> Vec<i64> {
        self.batch.clone()
    }

    /// Stock per market in this style's market order, from `(market, on hand)` pairs
    /// (markets not named hold nothing).
    pub fn stock_from(&self, on_hand: &[(String, i64)]) -> Vec<i64> {
        self.markets
            .iter()
            .map(|m| {
                on_hand
                    .iter()
                    .find(|(name, _)| name == m)
                    .map_or(0, |(_, units)| (*units).max(0))
            })
            .collect()
    }

    /// Expected profit from the start of day `start_day` (day 0 = the launch day) on,
    /// against ordering nothing: `order` units placed then arrive `lead_time_days`
    /// later.
    pub fn order_value(
        &self,
        econ: &Economics,
        start_day: usize,
        stock: &[i64],
        order: i64,
    ) -> f64 {
        if order <= 0 {
            return 0.0;
        }
        let with = self.season_profit(econ, start_day, stock, order);
        let without = self.season_profit(econ, start_day, stock, 0);
        with - without
    }

    /// The best order a buyer who knew the true demand curve would place at the start
    /// of day `start_day` (0 or at least the MOQ), and its expected value.
    pub fn best_order(&self, econ: &Economics, start_day: usize, stock: &[i64]) -> (i64, f64) {
        let base = self.season_profit(econ, start_day, stock, 0);
        let value = |q: i64| {
            if q <= 0 {
                0.0
            } else {
                self.season_profit(econ, start_day, stock, q) - base
            }
        };
        // Profit is concave in the order (each extra unit sells less often), so a
        // ternary search over whole units finds its peak.
        let most = self.max_demand_after(start_day).max(1);
        let (mut lo, mut hi) = (0_i64, most);
        while hi - lo > 2 {
            let a = lo + (hi - lo) / 3;
            let b = hi - (hi - lo) / 3;
            if value(a) < value(b) {
                lo = a;
            } else {
                hi = b;
            }
        }
        let mut best = (0, 0.0);
        for q in lo..=hi {
            let q = if q > 0 { q.max(econ.moq) } else { 0 };
            let v = value(q);
            if v > best.1 {
                best = (q, v);
            }
        }
        best
    }

    fn max_demand_after(&self, start_day: usize) -> i64 {
        self.units
            .iter()
            .map(|path| {
                path.iter()
                    .skip(start_day)
                    .flat_map(|day| day.iter())
                    .map(|&u| i64::from(u))
                    .sum::<i64>()
            })
            .max()
            .unwrap_or(0)
    }

    /// Mean over the paths of the money made from the start of `start_day` to the
    /// season's end (see [`Self::path_profit`]).
    fn season_profit(&self, econ: &Economics, start_day: usize, stock: &[i64], order: i64) -> f64 {
        let total: f64 = self
            .units
            .iter()
            .map(|path| self.path_profit(path, econ, start_day, stock, order))
            .sum();
        total / self.units.len().max(1) as f64
    }

    /// The money one path makes from the start of `start_day` to the season's end:
    /// sales (less refunds, plus the salvage of returned units), plus the salvage of
    /// what is left, less the order's cost.
    fn path_profit(
        &self,
        path: &[Vec<u32>],
        econ: &Economics,
        start_day: usize,
        stock: &[i64],
        order: i64,
    ) -> f64 {
        let per_sale =
            econ.price * (1.0 - self.return_rate) + self.return_rate * econ.salvage_value;
        let arrives = start_day + econ.lead_time_days.max(0.0).ceil() as usize;
        let mut on_hand: Vec<i64> = stock.iter().map(|&s| s.max(0)).collect();
        let mut pool = 0_i64;
        let mut sold = 0_i64;
        for (day, demand) in path.iter().enumerate().skip(start_day) {
            if day == arrives {
                pool = order;
            }
            for (m, &d) in demand.iter().enumerate() {
                let d = i64::from(d);
                let local = d.min(on_hand[m]);
                on_hand[m] -= local;
                let from_pool = (d - local).min(pool);
                pool -= from_pool;
                sold += local + from_pool;
            }
        }
        // An order arriving after the season's end is worth its salvage only.
        let left = on_hand.iter().sum::<i64>() + if arrives < path.len() { pool } else { order };
        sold as f64 * per_sale + left as f64 * econ.salvage_value - order as f64 * econ.unit_cost
    }

    /// Share of the paths on which ordering `order` at the start of `start_day` makes
    /// more money than not ordering: the truth behind a call's "P(the reorder pays)".
    pub fn share_paying(
        &self,
        econ: &Economics,
        start_day: usize,
        stock: &[i64],
        order: i64,
    ) -> f64 {
        if order <= 0 || self.units.is_empty() {
            return 0.0;
        }
        let paying = self
            .units
            .iter()
            .filter(|path| {
                self.path_profit(path, econ, start_day, stock, order)
                    > self.path_profit(path, econ, start_day, stock, 0)
            })
            .count();
        paying as f64 / self.units.len() as f64
    }

    /// Each path's demand from age `age_days` to the season's end, all markets, stock
    /// or not (the day `age_days` falls in counts for the part of it still to come).
    pub fn demand_from(&self, age_days: f64) -> Vec<f64> {
        let first = age_days.max(0.0).floor() as usize;
        let rest_of_first = 1.0 - (age_days.max(0.0) - first as f64);
        self.units
            .iter()
            .map(|path| {
                path.iter()
                    .enumerate()
                    .skip(first)
                    .map(|(day, markets)| {
                        let units: f64 = markets.iter().map(|&u| f64::from(u)).sum();
                        if day == first {
                            units * rest_of_first
                        } else {
                            units
                        }
                    })
                    .sum()
            })
            .collect()
    }
}

fn poisson(rng: &mut StdRng, mean: f64) -> u32 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    Poisson::new(mean).map_or(0, |p| p.sample(rng) as u32)
}

/// The first whole day of the season after a call made at `days_live`.
pub fn start_day(days_live: f64) -> usize {
    days_live.max(0.0).ceil() as usize
}

/// A style's (money, call, forecast against the truth).
type ScoredCall<'a> = (StyleMoney, Option<&'a Call>, Option<ForecastTruth>);

/// One call's forecast next to what the true demand paths say.
#[derive(Debug, Clone, Copy)]
struct ForecastTruth {
    p_right: f64,
    /// Share of the paths on which the call is right in money.
    share_right: f64,
    /// Share of the paths whose demand to the season's end is inside the forecast's
    /// 80 % interval, and below it (the rest are above it).
    share_inside: f64,
    share_below: f64,
}

/// How well a policy's own forecasts held against the truth (profit rule only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastCheck {
    /// Calls with a forecast.
    pub calls: usize,
    /// P(right) at the call against the share of the true demand paths on which the
    /// call was right.
    pub calibration: Vec<CalibrationBin>,
    pub calibration_error: f64,
    /// Σ (1 − P(right)): the wrong calls the policy expected...
    pub expected_wrong: f64,
    /// ...and Σ (1 − share of paths right): the wrong calls the truth makes of them.
    pub observed_wrong: f64,
    /// Share of true demand paths inside the calls' 80 % demand intervals (0.8 when
    /// the intervals are honest), and below their P10 (0.1 when honest; the rest are
    /// above their P90): a forecast too narrow misses on both sides, a biased one on one.
    pub interval_coverage: f64,
    pub below_interval: f64,
    /// The same for every style's forecast on the first day it was at least 3, 7 and 14
    /// days old, whatever its verdict then.
    pub by_age: Vec<AgeCoverage>,
}

/// How a policy's 80 % demand intervals held at one age.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgeCoverage {
    pub age_days: f64,
    pub styles: usize,
    pub inside: f64,
    pub below: f64,
}

/// A style's 80 % interval of demand still to come, as forecast at `days_live`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgedInterval {
    pub days_live: f64,
    pub p10: f64,
    pub p90: f64,
}

impl ForecastCheck {
    fn of(checks: &[ForecastTruth]) -> Option<Self> {
        if checks.is_empty() {
            return None;
        }
        let samples: Vec<(f64, f64)> = checks.iter().map(|c| (c.p_right, c.share_right)).collect();
        let bins = calibration(&samples);
        let n = checks.len() as f64;
        Some(Self {
            calls: checks.len(),
            calibration_error: calibration_error(&bins),
            calibration: bins,
            expected_wrong: checks.iter().map(|c| 1.0 - c.p_right).sum(),
            observed_wrong: checks.iter().map(|c| 1.0 - c.share_right).sum(),
            interval_coverage: checks.iter().map(|c| c.share_inside).sum::<f64>() / n,
            below_interval: checks.iter().map(|c| c.share_below).sum::<f64>() / n,
            by_age: Vec::new(),
        })
    }
}

/// What one call on one style makes, next to what knowing the truth would make.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StyleMoney {
    /// Expected profit of the call's reorder against never reordering (0 unless kept).
    pub profit: f64,
    /// The best order and its value at the call's own time, knowing the truth.
    pub clairvoyant_units: i64,
    pub clairvoyant_profit: f64,
    /// The best order and its value at launch, knowing the truth.
    pub hindsight_units: i64,
    pub hindsight_profit: f64,
    /// Mean true demand from the call to the season's end, all markets, stock
    /// permitting or not: what the call's forecast interval aims at.
    pub true_demand: f64,
}

/// One style's world, with the best order a buyer who knew it would place at launch.
struct ScoredStyle {
    paths: DemandPaths,
    econ: Economics,
    hindsight: (i64, f64),
}

/// The worlds of every style scored, keyed by style id.
pub struct MoneyWorld {
    styles: HashMap<String, ScoredStyle>,
}

/// What a policy's (or a rule's) calls make, over a set of styles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoneyScores {
    pub styles: usize,
    /// Σ expected profit of the calls' reorders against never reordering.
    pub profit: f64,
    /// Σ over the same styles of the best order at launch by a buyer who knew each
    /// style's true demand curve...
    pub hindsight_profit: f64,
    /// ...and of the best order at this policy's own call times (a style still testing
    /// at the end: at the last day replayed).
    pub clairvoyant_profit: f64,
    pub share_of_hindsight: f64,
    pub share_of_clairvoyant: f64,
    pub keeps: usize,
    /// Keeps whose reorder is expected to lose money.
    pub losing_keeps: usize,
    pub losing_keep_share: f64,
    pub units_ordered: i64,
    pub median_days_to_call: Option<f64>,
    /// The calls' own forecasts against the truth, where the policy makes them.
    pub forecasts: Option<ForecastCheck>,
}

impl MoneyWorld {
    /// Samples each style's demand paths and finds its hindsight order, on all cores.
    pub fn new(styles: Vec<(StyleTruth, Economics)>) -> Self {
        let scored = crate::decision::map_on_all_cores(&styles, |(truth, econ)| {
            let paths = DemandPaths::sample(truth, econ.season_days, PATHS);
            let hindsight = paths.best_order(econ, 0, &paths.launch_stock());
            (
                truth.style_id.clone(),
                ScoredStyle {
                    paths,
                    econ: *econ,
                    hindsight,
                },
            )
        });
        Self {
            styles: scored.into_iter().collect(),
        }
    }

    pub fn contains(&self, style_id: &str) -> bool {
        self.styles.contains_key(style_id)
    }

    /// Expected profit of ordering `units` at `days_live` with `on_hand` in stock.
    pub fn value(
        &self,
        style_id: &str,
        days_live: f64,
        on_hand: &[(String, i64)],
        units: i64,
    ) -> f64 {
        self.styles.get(style_id).map_or(0.0, |s| {
            let stock = s.paths.stock_from(on_hand);
            s.paths
                .order_value(&s.econ, start_day(days_live), &stock, units)
        })
    }

    /// A call's forecast against the style's true demand paths.
    fn check(&self, call: &Call) -> Option<ForecastTruth> {
        let forecast = call.forecast?;
        let verdict = call.verdict?;
        let s = self.styles.get(&call.style_id)?;
        let days = call.days_to_verdict.unwrap_or(0.0);
        let stock = s.paths.stock_from(&call.on_hand_by_market);
        let start = start_day(days);
        let share_right = match verdict {
            Verdict::Keep => s
                .paths
                .share_paying(&s.econ, start, &stock, call.reorder_units),
            Verdict::Drop => {
                1.0 - s
                    .paths
                    .share_paying(&s.econ, start, &stock, s.econ.moq.max(1))
            }
            Verdict::Test => return None,
        };
        let demand = s.paths.demand_from(days);
        let share = |inside: &dyn Fn(f64) -> bool| {
            demand.iter().filter(|&&d| inside(d)).count() as f64 / demand.len().max(1) as f64
        };
        Some(ForecastTruth {
            p_right: forecast.p_right,
            share_right,
            share_inside: share(&|d| d >= forecast.demand_p10 && d <= forecast.demand_p90),
            share_below: share(&|d| d < forecast.demand_p10),
        })
    }

    /// Shares of the true demand paths (inside, below) a style's interval.
    fn interval_shares(&self, style_id: &str, interval: &AgedInterval) -> Option<(f64, f64)> {
        let demand = self
            .styles
            .get(style_id)?
            .paths
            .demand_from(interval.days_live);
        let n = demand.len().max(1) as f64;
        let inside = demand
            .iter()
            .filter(|&&d| d >= interval.p10 && d <= interval.p90)
            .count();
        let below = demand.iter().filter(|&&d| d < interval.p10).count();
        Some((inside as f64 / n, below as f64 / n))
    }

    /// Coverage of the intervals forecast at each age, over the styles in `scope`:
    /// `by_age[k]` holds each style's interval at `ages[k]`.
    pub fn coverage_by_age(
        &self,
        ages: &[f64],
        by_age: &[HashMap<String, AgedInterval>],
        scope: &[&str],
    ) -> Vec<AgeCoverage> {
        ages.iter()
            .zip(by_age)
            .filter_map(|(&age, intervals)| {
                let shares: Vec<(f64, f64)> = scope
                    .iter()
                    .filter_map(|s| self.interval_shares(s, intervals.get(*s)?))
                    .collect();
                let n = shares.len() as f64;
                (!shares.is_empty()).then(|| AgeCoverage {
                    age_days: age,
                    styles: shares.len(),
                    inside: shares.iter().map(|s| s.0).sum::<f64>() / n,
                    below: shares.iter().map(|s| s.1).sum::<f64>() / n,
                })
            })
            .collect()
    }

    fn clairvoyant(&self, style_id: &str, days_live: f64, on_hand: &[(String, i64)]) -> (i64, f64) {
        self.styles.get(style_id).map_or((0, 0.0), |s| {
            let stock = s.paths.stock_from(on_hand);
            s.paths.best_order(&s.econ, start_day(days_live), &stock)
        })
    }

    /// Scores calls (one per style; a style without a call is worth 0) over `scope`:
    /// the totals, and each style's money by style id.
    pub fn score(
        &self,
        calls: &[Call],
        scope: &[&str],
    ) -> (MoneyScores, HashMap<String, StyleMoney>) {
        let by_style: HashMap<&str, &Call> =
            calls.iter().map(|c| (c.style_id.as_str(), c)).collect();
        let scope: Vec<&str> = scope.iter().copied().filter(|s| self.contains(s)).collect();
        let rows: Vec<ScoredCall<'_>> = crate::decision::map_on_all_cores(&scope, |style| {
            let (hindsight_units, hindsight_profit) = self.styles[*style].hindsight;
            let nothing = StyleMoney {
                hindsight_units,
                hindsight_profit,
                ..StyleMoney::default()
            };
            let Some(call) = by_style.get(style).copied() else {
                return (nothing, None, None);
            };
            let days = call.days_to_verdict.unwrap_or(0.0);
            let keep = call.verdict == Some(Verdict::Keep);
            let value = if keep {
                self.value(style, days, &call.on_hand_by_market, call.reorder_units)
            } else {
                0.0
            };
            let (clairvoyant_units, clairvoyant_profit) = if call.on_hand_by_market.is_empty() {
                (0, 0.0)
            } else {
                self.clairvoyant(style, days, &call.on_hand_by_market)
            };
            let demand = self.styles[*style].paths.demand_from(days);
            let money = StyleMoney {
                profit: value,
                clairvoyant_units,
                clairvoyant_profit,
                true_demand: demand.iter().sum::<f64>() / demand.len().max(1) as f64,
                ..nothing
            };
            (money, Some(call), self.check(call))
        });
        let sum = |f: &dyn Fn(&StyleMoney) -> f64| rows.iter().map(|r| f(&r.0)).sum::<f64>();
        let (profit, hindsight, clairvoyant) = (
            sum(&|m| m.profit),
            sum(&|m| m.hindsight_profit),
            sum(&|m| m.clairvoyant_profit),
        );
        let keeps: Vec<&ScoredCall<'_>> = rows
            .iter()
            .filter(|r| r.1.is_some_and(|c| c.verdict == Some(Verdict::Keep)))
            .collect();
        let losing = keeps.iter().filter(|r| r.0.profit < 0.0).count();
        let days: Vec<f64> = rows
            .iter()
            .filter_map(|r| {
                r.1.filter(|c| c.verdict.is_some())
                    .and_then(|c| c.days_to_verdict)
            })
            .collect();
        let share = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let scores = MoneyScores {
            styles: scope.len(),
            profit,
            hindsight_profit: hindsight,
            clairvoyant_profit: clairvoyant,
            share_of_hindsight: share(profit, hindsight),
            share_of_clairvoyant: share(profit, clairvoyant),
            keeps: keeps.len(),
            losing_keeps: losing,
            losing_keep_share: share(losing as f64, keeps.len() as f64),
            units_ordered: keeps
                .iter()
                .filter_map(|r| r.1)
                .map(|c| c.reorder_units.max(0))
                .sum(),
            median_days_to_call: super::score::quantile(&days, 0.5),
            forecasts: ForecastCheck::of(&rows.iter().filter_map(|r| r.2).collect::<Vec<_>>()),
        };
        let by_style = scope
            .iter()
            .zip(&rows)
            .map(|(style, r)| (style.to_string(), r.0))
            .collect();
        (scores, by_style)
    }

    /// The calls of a buyer who knew every style's truth and ordered the best quantity
    /// at launch.
    pub fn hindsight_calls(&self, scope: &[&str]) -> Vec<Call> {
        scope
            .iter()
            .filter_map(|style| {
                let s = self.styles.get(*style)?;
                let (units, _) = s.hindsight;
                let on_hand = s
                    .paths
                    .markets
                    .iter()
                    .cloned()
                    .zip(s.paths.launch_stock())
                    .collect();
                Some(Call {
                    style_id: style.to_string(),
                    verdict: Some(if units > 0 {
                        Verdict::Keep
                    } else {
                        Verdict::Drop
                    }),
                    days_to_verdict: Some(0.0),
                    p_keep: None,
                    reorder_units: units,
                    expected_profit: None,
                    forecast: None,
                    on_hand_by_market: on_hand,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(rate: f64, half_life: Option<f64>) -> StyleTruth {
        StyleTruth {
            style_id: "S1".into(),
            markets: vec![
                MarketTruth {
                    market: "US".into(),
                    initial_rate: rate,
                    test_batch_units: 100,
                },
                MarketTruth {
                    market: "DE".into(),
                    initial_rate: rate,
                    test_batch_units: 100,
                },
            ],
            half_life_days: half_life,
            day_dispersion: None,
            promotion_share: 0.0,
            promotion_lift: 2.0,
            return_rate: 0.0,
        }
    }

    fn econ() -> Economics {
        Economics {
            price: 30.0,
            unit_cost: 10.0,
            lead_time_days: 14.0,
            moq: 50,
            season_days: 84.0,
            salvage_value: 5.0,
        }
    }

    #[test]
    fn an_order_that_cannot_sell_loses_its_cost_less_salvage() {
        // No demand at all: every ordered unit is bought at 10 and salvaged at 5.
        let paths = DemandPaths::sample(&truth(0.0, None), 84.0, 8);
        let v = paths.order_value(&econ(), 10, &[50, 50], 200);
        assert!((v - 200.0 * (5.0 - 10.0)).abs() < 1e-9, "{v}");
        assert_eq!(paths.best_order(&econ(), 10, &[50, 50]), (0, 0.0));
    }

    #[test]
    fn strong_demand_is_worth_ordering_and_the_best_order_beats_its_neighbours() {
        // 10 units/day per market, no decay: the batch of 200 lasts ~10 days, so
        // ~1,100 more units could sell after day 20 + 14 of lead time.
        let paths = DemandPaths::sample(&truth(10.0, None), 84.0, 16);
        let stock = paths.launch_stock();
        let (q, v) = paths.best_order(&econ(), 0, &stock);
        assert!(q > 500 && v > 0.0, "{q} {v}");
        for other in [q - 40, q + 40, q / 2, q * 2] {
            assert!(paths.order_value(&econ(), 0, &stock, other) <= v + 1e-9);
        }
        // Ordering later can only sell less of it: less is worth ordering.
        let (later, later_value) = paths.best_order(&econ(), 30, &[0, 0]);
        assert!(later < q && later_value < v, "{later} {later_value}");
    }

    #[test]
    fn decay_and_lost_sales_lower_the_value_of_the_same_order() {
        let flat = DemandPaths::sample(&truth(10.0, None), 84.0, 16);
        let decaying = DemandPaths::sample(&truth(10.0, Some(14.0)), 84.0, 16);
        let stock = flat.launch_stock();
        let order = 600;
        assert!(
            decaying.order_value(&econ(), 7, &stock, order)
                < flat.order_value(&econ(), 7, &stock, order)
        );
    }

    #[test]
    fn an_order_arriving_after_the_season_is_worth_its_salvage_only() {
        let paths = DemandPaths::sample(&truth(10.0, None), 84.0, 8);
        let v = paths.order_value(&econ(), 80, &[0, 0], 100);
        assert!((v - 100.0 * (5.0 - 10.0)).abs() < 1e-9, "{v}");
    }

    #[test]
    fn the_truth_behind_a_forecast() {
        // No demand: no order pays on any path; strong flat demand: a modest order
        // pays on every path.
        let none = DemandPaths::sample(&truth(0.0, None), 84.0, 8);
        assert_eq!(none.share_paying(&econ(), 10, &[0, 0], 100), 0.0);
        let strong = DemandPaths::sample(&truth(10.0, None), 84.0, 8);
        assert_eq!(strong.share_paying(&econ(), 10, &[0, 0], 100), 1.0);
        assert_eq!(strong.share_paying(&econ(), 10, &[0, 0], 0), 0.0);
        // Demand still to come: all of it at launch, half a day less at age 0.5.
        let from_launch = strong.demand_from(0.0);
        let total: f64 = strong.units[0]
            .iter()
            .flatten()
            .map(|&u| f64::from(u))
            .sum();
        assert_eq!(from_launch[0], total);
        let first_day: f64 = strong.units[0][0].iter().map(|&u| f64::from(u)).sum();
        assert!((strong.demand_from(0.5)[0] - (total - first_day / 2.0)).abs() < 1e-9);
    }

    #[test]
    fn paths_are_the_same_every_time() {
        let a = DemandPaths::sample(&truth(3.0, Some(20.0)), 84.0, 4);
        let b = DemandPaths::sample(&truth(3.0, Some(20.0)), 84.0, 4);
        assert_eq!(a.units, b.units);
    }
}
