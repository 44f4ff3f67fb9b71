//! Demand curves per category: how fast demand decays after launch, and how noisy its
//! days are, estimated from earlier launches' in-stock daily sales.
//!
//! A style's units on day d (age a_d at midday, e_d days in stock) are taken as
//! Poisson(λ · g(a_d) · e_d) with its own launch rate λ and the category's curve
//! g(a) = 2^(−a / h). The half-life h maximises the category's likelihood with each
//! style's λ profiled out (λ̂ = units / Σ g·e), so fast sellers that sell out early —
//! and leave only slow sellers at older ages — do not pass for decay: each style is
//! compared with itself. Day-to-day noise beyond Poisson is the Gamma shape k of a day
//! factor, by the method of moments over whole in-stock days:
//! 1/k = Σ[(u − μ)² − u] / Σ μ². Thin categories fall back to the curve of all
//! categories together, and that to the policy's.
//!
//! Early in a season every launch is young on the same calendar days, so a busy weekend
//! followed by quiet weekdays looks like decay: each day of the week gets its own
//! traffic factor, fitted with the curve, and the half-life has a log-normal prior
//! around the policy's (σ = 0.5), which the data outweigh once they span a few weeks.
//!
//! One half-life per category is what the exposure weighs by, but styles differ around
//! it: demand late in the season grows fast with the half-life, so a forecast on the
//! category's alone is too low for the long sellers and too sure of itself. A style's
//! half-life is log-normal around the category's centre; centre and spread maximise
//! the likelihood with each style's own half-life integrated out (on the grid; each
//! style's likelihood flattened by its day noise, φ = 1 + units per day / k), so every
//! style counts once, not by its units — fitting one half-life to all would let the
//! fast sellers, which sell most early, pull it short. A new style's spread is that of
//! the styles and of the centre's own uncertainty together.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// One style × market × day of in-stock selling, for the curve fit.
#[derive(Debug, Clone, PartialEq)]
pub struct DailySales {
    pub style_id: String,
    pub market: String,
    pub category: String,
    /// Days from launch to the day's midday (at least 0).
    pub age_days: f64,
    /// Day of the week (0 = Sunday … 6).
    pub weekday: usize,
    pub units: f64,
    /// Days in stock that day (0–1).
    pub exposure_days: f64,
}

/// A demand curve: half-life and day-noise shape (`inf` where there is none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub half_life_days: f64,
    pub day_dispersion: f64,
    /// Launches the curve was estimated from (0: the policy's fallback).
    pub launches: usize,
    /// Spread (sd of the log) of one style's half-life around `half_life_days`: the
    /// styles' own and the estimate's uncertainty (0 with no decay).
    #[serde(default)]
    pub half_life_spread: f64,
}

impl Curve {
    /// The policy's curve, used where no category has enough launches: a style's
    /// half-life is as uncertain as the prior on a category's.
    pub fn fallback(half_life_days: f64, day_dispersion: f64) -> Self {
        Self {
            half_life_days,
            day_dispersion,
            launches: 0,
            half_life_spread: if half_life_days.is_finite() {
                HALF_LIFE_PRIOR_SD
            } else {
                0.0
            },
        }
    }

    /// The same curve with another half-life (one style's, drawn around this one).
    pub fn with_half_life(&self, half_life_days: f64) -> Self {
        Self {
            half_life_days,
            ..*self
        }
    }

    /// Decay per day of age (0 where demand does not decay).
    pub fn decay_per_day(&self) -> f64 {
        crate::sql::decay_per_day(self.half_life_days)
    }

    /// g(a): the share of its launch rate a style sells at age `a` days.
    pub fn at(&self, age_days: f64) -> f64 {
        (-self.decay_per_day() * age_days.max(0.0)).exp()
    }

    /// ∫ g over ages [from, to].
    pub fn integral(&self, from: f64, to: f64) -> f64 {
        if to <= from {
            return 0.0;
        }
        let theta = self.decay_per_day();
        if theta <= 0.0 {
            return to - from;
        }
        ((-theta * from).exp() - (-theta * to).exp()) / theta
    }

    /// ∫ g² over ages [from, to]: with the day noise, the spread of demand over a span.
    pub fn integral_squared(&self, from: f64, to: f64) -> f64 {
        self.with_half_life(self.half_life_days / 2.0)
            .integral(from, to)
    }
}

/// The curves of every category with enough launches, and the fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct DemandCurves {
    by_category: BTreeMap<String, Curve>,
    fallback: Curve,
}

/// Half-lives tried, in days: a log-spaced grid from 3 days to a year, and no decay.
fn half_life_grid() -> Vec<f64> {
    let mut grid: Vec<f64> = (0..=60)
        .map(|i| 3.0 * (365.0_f64 / 3.0).powf(f64::from(i) / 60.0))
        .collect();
    grid.push(f64::INFINITY);
    grid
}

impl DemandCurves {
    /// Every category on the policy's curve.
    pub fn uniform(fallback: Curve) -> Self {
        Self {
            by_category: BTreeMap::new(),
            fallback,
        }
    }

    /// Fits a curve per category with at least `min_launches` launches that sold
    /// something; the others get the curve of all launches together, or, with too few
    /// of those, `fallback`.
    pub fn estimate(rows: &[DailySales], min_launches: usize, fallback: Curve) -> Self {
        let mut by_category: HashMap<&str, Vec<&DailySales>> = HashMap::new();
        for r in rows.iter().filter(|r| r.exposure_days > 0.0) {
            by_category.entry(r.category.as_str()).or_default().push(r);
        }
        let all: Vec<&DailySales> = by_category.values().flatten().copied().collect();
        let overall = fit(&all, min_launches, &fallback).unwrap_or(fallback);
        Self {
            by_category: by_category
                .iter()
                .filter_map(|(c, rows)| {
                    fit(rows, min_launches, &fallback).map(|f| (c.to_string(), f))
                })
                .collect(),
            fallback: overall,
        }
    }

    pub fn for_category(&self, category: &str) -> Curve {
        self.by_category
            .get(category)
            .copied()
            .unwrap_or(self.fallback)
    }

    /// (category, decay per day) of the categories with their own curve, and the
    /// decay of any other: what the funnel query weighs exposure with.
    pub fn decay_per_day(&self) -> (Vec<(String, f64)>, f64) {
        (
            self.by_category
                .iter()
                .map(|(c, curve)| (c.clone(), curve.decay_per_day()))
                .collect(),
            self.fallback.decay_per_day(),
        )
    }
}

/// One style × market's days: a range of the fit's [`Days`], and what the likelihood
/// needs of them whatever the curve (ln g(a) = −θ·a, so Σ u·ln g is −θ·Σ u·a).
struct Series {
    days: std::ops::Range<usize>,
    units: f64,
    units_by_weekday: [f64; 7],
    /// Σ units × age.
    unit_age: f64,
}

/// The fit's in-stock days, column by column, each series' days together.
struct Days {
    age: Vec<f64>,
    weekday: Vec<usize>,
    units: Vec<f64>,
    exposure: Vec<f64>,
}

/// How far (σ of log half-life) the fit may stray from the policy's curve on thin data.
const HALF_LIFE_PRIOR_SD: f64 = 0.5;

/// Spreads (sd of log half-life between styles) tried.
const STYLE_SPREADS: [f64; 9] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

/// Where on the log scale a half-life sits (no decay: just past the grid's longest).
fn log_half_life(h: f64) -> f64 {
    if h.is_finite() {
        h.ln()
    } else {
        400.0_f64.ln()
    }
}

/// The series (style × market, in that order) with sales on more than one day, and
/// their days: only those say anything about the shape.
fn series_of(rows: &[&DailySales]) -> (Vec<Series>, Days, usize) {
    let mut grouped: BTreeMap<(&str, &str), Vec<&DailySales>> = BTreeMap::new();
    for r in rows {
        grouped
            .entry((r.style_id.as_str(), r.market.as_str()))
            .or_default()
            .push(r);
    }
    grouped.retain(|_, days| days.len() > 1 && days.iter().map(|d| d.units).sum::<f64>() > 0.0);
    let launches = grouped
        .keys()
        .map(|(style, _)| *style)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut days = Days {
        age: Vec::new(),
        weekday: Vec::new(),
        units: Vec::new(),
        exposure: Vec::new(),
    };
    let series = grouped
        .into_values()
        .map(|rows| {
            let start = days.age.len();
            let (mut units, mut units_by_weekday, mut unit_age) = (0.0, [0.0; 7], 0.0);
            for d in rows {
                let age = d.age_days.max(0.0);
                days.age.push(age);
                days.weekday.push(d.weekday);
                days.units.push(d.units);
                days.exposure.push(d.exposure_days);
                units += d.units;
                units_by_weekday[d.weekday] += d.units;
                unit_age += d.units * age;
            }
            Series {
                days: start..days.age.len(),
                units,
                units_by_weekday,
                unit_age,
            }
        })
        .collect();
    (series, days, launches)
}

fn fit(rows: &[&DailySales], min_launches: usize, prior: &Curve) -> Option<Curve> {
    let (series, days, launches) = series_of(rows);
    if launches < min_launches.max(1) {
        return None;
    }
    let grid = half_life_grid();
    let xs: Vec<f64> = grid.iter().map(|&h| log_half_life(h)).collect();
    let prior_centre = log_half_life(prior.half_life_days);
    let log_prior = |x: f64| -0.5 * ((x - prior_centre) / HALF_LIFE_PRIOR_SD).powi(2);
    // Each series' log-likelihood at every half-life of the grid, its rate profiled out
    // (the weekday factors refitted at each half-life); the half-lives on all cores.
    let by_half_life: Vec<Vec<f64>> = super::map_in_chunks(&grid, 8, |&h| {
        let theta = crate::sql::decay_per_day(h);
        let exposure = weekday_exposure(&series, &days, theta);
        let weekday = weekday_factors(&series, &exposure);
        let log_weekday = weekday.map(f64::ln);
        series
            .iter()
            .zip(&exposure)
            .map(|(s, e)| series_log_likelihood(s, e, theta, &weekday, &log_weekday))
            .collect()
    });
    // One half-life for every style: what the day noise is measured against.
    let common = (0..grid.len())
        .max_by(|&a, &b| {
            let score = |g: usize| by_half_life[g].iter().sum::<f64>() + log_prior(xs[g]);
            score(a).total_cmp(&score(b))
        })
        .unwrap_or(0);
    let dispersion = day_dispersion(&series, &days, crate::sql::decay_per_day(grid[common]));
    // Each style's own half-life is log-normal around the category's: the category's
    // centre and spread maximise the likelihood with each style's half-life integrated
    // out. Noisy days flatten each style's likelihood (quasi-likelihood: ÷ φ).
    let relative: Vec<Vec<f64>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let in_stock: f64 = days.exposure[s.days.clone()].iter().sum();
            let phi = if dispersion.is_finite() {
                1.0 + s.units / in_stock.max(1.0) / dispersion
            } else {
                1.0
            };
            let top = (0..grid.len())
                .map(|g| by_half_life[g][i])
                .fold(f64::NEG_INFINITY, f64::max);
            (0..grid.len())
                .map(|g| ((by_half_life[g][i] - top) / phi).exp())
                .collect()
        })
        .collect();
    let centres: Vec<usize> = (0..xs.len()).collect();
    let scored: Vec<(usize, f64, f64)> = super::map_in_chunks(&centres, 8, |&centre| {
        STYLE_SPREADS
            .iter()
            .map(|&spread| {
                let weights = spread_weights(&xs, centre, spread);
                let ll: f64 = relative
                    .iter()
                    .map(|e| dot(e, &weights).max(1e-300).ln())
                    .sum();
                (centre, spread, ll + log_prior(xs[centre]))
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect();
    let (centre, spread, best) =
        scored
            .iter()
            .copied()
            .fold((common, 0.0, f64::NEG_INFINITY), |best, s| {
                if s.2 > best.2 { s } else { best }
            });
    // The centre's own uncertainty at that spread.
    let fit_variance = grid_variance(
        scored
            .iter()
            .filter(|s| s.1 == spread)
            .map(|&(c, _, lp)| (xs[c], lp - best)),
    );
    let half_life = grid[centre];
    Some(Curve {
        half_life_days: half_life,
        day_dispersion: dispersion,
        launches,
        half_life_spread: if half_life.is_finite() {
            (spread * spread + fit_variance).sqrt()
        } else {
            0.0
        },
    })
}

/// Each series' in-stock days weighed by the curve, per weekday: Σ e·g(a) with
/// g(a) = exp(−θ·a). The one step of the fit that reads every day.
fn weekday_exposure(series: &[Series], days: &Days, theta: f64) -> Vec<[f64; 7]> {
    series
        .iter()
        .map(|s| {
            let mut by_weekday = [0.0; 7];
            for i in s.days.clone() {
                by_weekday[days.weekday[i]] += days.exposure[i] * (-theta * days.age[i]).exp();
            }
            by_weekday
        })
        .collect()
}

/// A series' Poisson log-likelihood under the curve (decay θ per day) and the weekday
/// factors, its own rate profiled out (up to a constant): Σ u·ln(g·w) − U·ln Σ e·g·w.
fn series_log_likelihood(
    s: &Series,
    exposure: &[f64; 7],
    theta: f64,
    weekday: &[f64; 7],
    log_weekday: &[f64; 7],
) -> f64 {
    let weighted: f64 = (0..7).map(|w| exposure[w] * weekday[w]).sum();
    let log_mean = -theta * s.unit_age
        + (0..7)
            .map(|w| s.units_by_weekday[w] * log_weekday[w])
            .sum::<f64>();
    log_mean - s.units * weighted.max(1e-12).ln()
}

/// Day noise beyond Poisson (the Gamma shape k), over whole in-stock days, each style
/// at its own profiled rate: 1/k = Σ[(u − μ)² − u] / Σ μ².
fn day_dispersion(series: &[Series], days: &Days, theta: f64) -> f64 {
    let exposure = weekday_exposure(series, days, theta);
    let weekday = weekday_factors(series, &exposure);
    let (mut excess, mut squares) = (0.0, 0.0);
    for (s, e) in series.iter().zip(&exposure) {
        let weighted: f64 = (0..7).map(|w| e[w] * weekday[w]).sum();
        let rate = s.units / weighted.max(1e-12);
        for i in s.days.clone().filter(|&i| days.exposure[i] >= 0.999) {
            let shape = (-theta * days.age[i]).exp() * weekday[days.weekday[i]];
            let mean = rate * shape * days.exposure[i];
            excess += (days.units[i] - mean).powi(2) - days.units[i];
            squares += mean * mean;
        }
    }
    if excess > 0.0 && squares > 0.0 {
        squares / excess
    } else {
        f64::INFINITY
    }
}

/// Σ a·b, in four lanes the compiler can keep in one vector register.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for k in 0..4 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// A normal density on the log half-life grid around its `centre` point, summing to 1
/// (all on the centre when the spread is 0).
fn spread_weights(xs: &[f64], centre: usize, spread: f64) -> Vec<f64> {
    if spread <= 0.0 {
        return (0..xs.len())
            .map(|g| f64::from(u8::from(g == centre)))
            .collect();
    }
    let raw: Vec<f64> = xs
        .iter()
        .map(|x| (-0.5 * ((x - xs[centre]) / spread).powi(2)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

/// Variance of x under weights exp(log weight), from (x, log weight) pairs.
fn grid_variance(points: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut w, mut wx, mut wxx) = (0.0, 0.0, 0.0);
    for (x, lw) in points {
        let weight = lw.exp();
        w += weight;
        wx += weight * x;
        wxx += weight * x * x;
    }
    if w <= 0.0 {
        return 0.0;
    }
    let mean = wx / w;
    (wxx / w - mean * mean).max(0.0)
}

/// Each weekday's traffic factor (mean 1) under the curve, from each series' weighed
/// exposure per weekday: units over expected units on that weekday, each style at its
/// own profiled rate (a few rounds of alternating between the rates and the factors).
fn weekday_factors(series: &[Series], exposure: &[[f64; 7]]) -> [f64; 7] {
    let mut units = [0.0; 7];
    for s in series {
        for (total, u) in units.iter_mut().zip(&s.units_by_weekday) {
            *total += u;
        }
    }
    let mut factors = [1.0; 7];
    for _ in 0..3 {
        let mut expected = [0.0; 7];
        for (s, e) in series.iter().zip(exposure) {
            let weighted: f64 = (0..7).map(|w| e[w] * factors[w]).sum();
            let rate = s.units / weighted.max(1e-12);
            for w in 0..7 {
                expected[w] += rate * e[w];
            }
        }
        let mut next = [1.0; 7];
        for w in 0..7 {
            if expected[w] > 0.0 && units[w] > 0.0 {
                next[w] = units[w] / expected[w];
            }
        }
        let mean = next.iter().sum::<f64>() / 7.0;
        factors = next.map(|f| f / mean);
    }
    factors
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_distr::{Distribution, Gamma, Poisson};

    /// Styles with rates spread 1–30 units/day, selling out when their batch of 200 is
    /// gone (so fast sellers drop out early), each on its own curve, log-normal around
    /// `half_life` with sd `spread`, with Gamma(k) day noise.
    fn simulated(half_life: f64, spread: f64, k: f64, styles: usize) -> Vec<DailySales> {
        let mut rng = StdRng::seed_from_u64(3);
        let noise = Gamma::new(k, 1.0 / k).unwrap();
        let own = rand_distr::LogNormal::new(half_life.ln(), spread.max(1e-9)).unwrap();
        let mut rows = Vec::new();
        for i in 0..styles {
            let half_life = if spread > 0.0 {
                own.sample(&mut rng)
            } else {
                half_life
            };
            let rate = 1.0 + 29.0 * (i as f64 / styles as f64);
            let mut stock = 200.0;
            for day in 0..40 {
                if stock <= 0.0 {
                    break;
                }
                let age = day as f64 + 0.5;
                let mean = rate * 0.5_f64.powf(age / half_life) * noise.sample(&mut rng);
                let units = Poisson::new(mean.max(1e-9))
                    .unwrap()
                    .sample(&mut rng)
                    .min(stock);
                let exposure = if units >= stock { 0.5 } else { 1.0 };
                stock -= units;
                rows.push(DailySales {
                    style_id: format!("S{i}"),
                    market: "US".into(),
                    category: "tops".into(),
                    age_days: age,
                    weekday: day % 7,
                    units,
                    exposure_days: exposure,
                });
            }
        }
        rows
    }

    #[test]
    fn the_fit_finds_the_half_life_and_the_day_noise() {
        let curves = DemandCurves::estimate(
            &simulated(20.0, 0.0, 4.0, 300),
            10,
            Curve::fallback(f64::INFINITY, f64::INFINITY),
        );
        let c = curves.for_category("tops");
        assert!(
            (c.half_life_days - 20.0).abs() < 4.0,
            "half-life {}",
            c.half_life_days
        );
        assert!(
            c.day_dispersion > 2.0 && c.day_dispersion < 8.0,
            "dispersion {}",
            c.day_dispersion
        );
        assert_eq!(c.launches, 300);
        // One curve for all: the spread is the centre's uncertainty and little more.
        assert!(c.half_life_spread < 0.15, "spread {}", c.half_life_spread);
    }

    #[test]
    fn the_fit_finds_how_far_styles_stray_from_their_category() {
        let curves = DemandCurves::estimate(
            &simulated(20.0, 0.4, 4.0, 400),
            10,
            Curve::fallback(f64::INFINITY, f64::INFINITY),
        );
        let c = curves.for_category("tops");
        assert!(
            (c.half_life_days - 20.0).abs() < 4.0,
            "half-life {}",
            c.half_life_days
        );
        assert!(
            c.half_life_spread > 0.25 && c.half_life_spread < 0.6,
            "spread {}",
            c.half_life_spread
        );
    }

    #[test]
    fn thin_categories_fall_back() {
        let fallback = Curve::fallback(28.0, 5.0);
        let curves = DemandCurves::estimate(&simulated(20.0, 0.0, 4.0, 5), 10, fallback);
        assert_eq!(curves.for_category("tops"), fallback);
        assert_eq!(curves.for_category("shoes"), fallback);
    }

    #[test]
    fn integrals_of_the_curve() {
        let flat = Curve::fallback(f64::INFINITY, f64::INFINITY);
        assert_eq!(flat.integral(3.0, 10.0), 7.0);
        let halving = Curve::fallback(10.0, 5.0);
        // ∫₀^∞ 2^(−a/10) da = 10 / ln 2.
        assert!((halving.integral(0.0, 1e6) - 10.0 / std::f64::consts::LN_2).abs() < 1e-9);
        assert!((halving.at(10.0) - 0.5).abs() < 1e-12);
        assert!((halving.integral_squared(0.0, 1e6) - 5.0 / std::f64::consts::LN_2).abs() < 1e-9);
    }
}
