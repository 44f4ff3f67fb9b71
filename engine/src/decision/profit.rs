//! The reorder that maximises expected profit over the rest of the season.
//!
//! A reorder placed now arrives after the supplier's lead time. Until then each market
//! sells from its own stock, and demand a stock-out cannot serve is lost, not
//! back-ordered. From arrival to the season's end the reorder, with whatever stock and
//! open orders are left, serves the demand that is still coming down the decay curve;
//! a unit sold nets its price less expected refunds (a returned unit is worth its
//! salvage); a unit left at the season's end fetches its salvage value; a reorder that
//! would arrive after the season's end is worth its salvage only. With Y the demand
//! after arrival that existing stock cannot meet, the profit of ordering Q against not
//! ordering is (p − s)·min(Q, Y) − (c − s)·Q, maximised by the newsvendor quantile of Y
//! at (p − c)/(p − s).
//!
//! Y's distribution comes from the style's posterior: each market's launch rate is
//! drawn from its Gamma posterior, and demand over a span of the curve is Poisson with a
//! Gamma day factor (over-dispersion k). The draws are seeded by the style id, so the
//! same row always gives the same plan.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

use super::curves::Curve;

/// Draws of the demand after arrival.
const DRAWS: usize = 400;

/// What one market brings to the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarketState {
    /// Gamma posterior of the launch rate (units per launch-rate day).
    pub rate_shape: f64,
    pub rate_rate: f64,
    /// Days it has been in stock, at the start of its life: the span its sales were
    /// seen over.
    pub exposure_days: f64,
    pub on_hand: i64,
}

/// Everything the plan depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInputs<'a> {
    pub markets: &'a [MarketState],
    pub curve: Curve,
    pub age_days: f64,
    pub lead_time_days: f64,
    pub season_days: f64,
    pub open_order_units: i64,
    /// What a sold unit nets: price paid less expected refunds plus their salvage.
    pub value_per_sale: f64,
    pub unit_cost: f64,
    pub salvage_value: f64,
    pub moq: i64,
    /// The order is cut to the largest one that makes money with at least this
    /// probability (0: no cut).
    pub min_p_profit: f64,
    /// Days of waiting whose worth the plan weighs (0: not weighed).
    pub wait_days: f64,
    pub seed: u64,
}

/// The best reorder and what it is expected to bring.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReorderPlan {
    /// 0, or at least the MOQ.
    pub units: i64,
    /// Expected profit of the reorder over the season, against not reordering.
    pub expected_profit: f64,
    /// Probability that it makes money.
    pub p_profit: f64,
    /// Probability that a reorder (at least the MOQ, of the best size in hindsight)
    /// would make money at all: low means nothing is worth ordering.
    pub p_reorder_pays: f64,
    /// Expected profit gained by deciding `wait_days` later, with what those days will
    /// show, over deciding now on this plan (0 when waiting is worth nothing).
    pub value_of_waiting: f64,
    /// Expected demand until the reorder arrives, and from then to the season's end.
    pub lead_demand: f64,
    pub season_demand: f64,
    /// Expected stock (on hand and on order) left when the reorder arrives.
    pub stock_at_arrival: f64,
    /// 80 % interval (P10, P90) of the demand from now to the season's end, all markets
    /// together: what customers would buy with stock always on the shelf.
    pub demand_p10: f64,
    pub demand_p90: f64,
    /// The same interval for each market (in `markets` order).
    #[serde(skip)]
    pub demand_by_market: Vec<(f64, f64)>,
    /// The reorder's share for each market (in `markets` order), by the demand each is
    /// expected to leave unmet.
    #[serde(skip)]
    pub by_market: Vec<i64>,
}

/// Draws of what the season holds for the style.
struct Draws {
    /// Demand after arrival that stock and open orders cannot meet, per draw.
    unmet: Vec<f64>,
    /// Its sum per market (before open orders), over all draws.
    unmet_by_market: Vec<f64>,
    /// Demand from now to the season's end, per draw, all markets and per market.
    demand: Vec<f64>,
    demand_by_market: Vec<Vec<f64>>,
    lead_sum: f64,
    season_sum: f64,
    stock_sum: f64,
    /// Each draw's style curve and market launch rates, for the value of waiting.
    params: Vec<DrawParams>,
}

/// What one draw took the style to be.
pub(super) struct DrawParams {
    pub curve: Curve,
    pub rates: Vec<f64>,
}

/// Each draw takes the style's own half-life around the category's, each market's
/// launch rate from its posterior (rescaled to the drawn curve: the same sales over a
/// longer-lived curve's exposure mean a lower launch rate), and noisy demand over the
/// lead time and after it.
fn draw(i: &PlanInputs<'_>, arrival: f64) -> Draws {
    let mut rng = StdRng::seed_from_u64(i.seed);
    let posteriors: Vec<Option<Gamma<f64>>> = i
        .markets
        .iter()
        .map(|m| Gamma::new(m.rate_shape.max(1e-9), 1.0 / m.rate_rate.max(1e-9)).ok())
        .collect();
    let spread = if i.curve.half_life_days.is_finite() {
        i.curve.half_life_spread.max(0.0)
    } else {
        0.0
    };
    let fixed = Spans::new(&i.curve, i.age_days, arrival, i.season_days);
    let open = i.open_order_units.max(0) as f64;
    let mut d = Draws {
        unmet: Vec::with_capacity(DRAWS),
        unmet_by_market: vec![0.0; i.markets.len()],
        demand: Vec::with_capacity(DRAWS),
        demand_by_market: vec![Vec::with_capacity(DRAWS); i.markets.len()],
        lead_sum: 0.0,
        season_sum: 0.0,
        stock_sum: 0.0,
        params: Vec::with_capacity(DRAWS),
    };
    for _ in 0..DRAWS {
        let own;
        let (curve, spans) = if spread > 0.0 {
            let z: f64 = StandardNormal.sample(&mut rng);
            let curve = i
                .curve
                .with_half_life(i.curve.half_life_days * (spread * z).exp());
            own = Spans::new(&curve, i.age_days, arrival, i.season_days);
            (curve, &own)
        } else {
            (i.curve, &fixed)
        };
        let (mut total, mut left, mut short) = (0.0, open, 0.0);
        let mut rates = Vec::with_capacity(i.markets.len());
        for (m, (market, posterior)) in i.markets.iter().zip(&posteriors).enumerate() {
            let seen = market.exposure_days.clamp(0.0, i.age_days.max(0.0));
            let rescale = if seen > 0.0 {
                i.curve.integral(0.0, seen) / curve.integral(0.0, seen).max(1e-12)
            } else {
                1.0
            };
            let rate = posterior.as_ref().map_or(0.0, |g| g.sample(&mut rng)) * rescale;
            rates.push(rate);
            let d1 = spans.lead_noise.draw(&mut rng, rate * spans.lead);
            let d2 = spans.after_noise.draw(&mut rng, rate * spans.after);
            // Stock stays in its market: what one market has left cannot serve
            // another's demand. The reorder (and open orders) go where demand is.
            let market_left = (market.on_hand.max(0) as f64 - d1).max(0.0);
            let market_short = (d2 - market_left).max(0.0);
            d.unmet_by_market[m] += market_short;
            short += market_short;
            left += market_left;
            d.lead_sum += d1;
            d.season_sum += d2;
            d.demand_by_market[m].push(d1 + d2);
            total += d1 + d2;
        }
        d.stock_sum += left;
        d.params.push(DrawParams { curve, rates });
        d.demand.push(total);
        d.unmet.push((short - open).max(0.0));
    }
    d
}

/// The curve's weight until arrival and after it, with the noise of each span.
pub(super) struct Spans {
    pub lead: f64,
    pub after: f64,
    pub lead_noise: SpanNoise,
    pub after_noise: SpanNoise,
}

impl Spans {
    pub(super) fn new(curve: &Curve, age: f64, arrival: f64, season: f64) -> Self {
        let lead = curve.integral(age, arrival);
        let after = curve.integral(arrival, season);
        Self {
            lead,
            after,
            lead_noise: SpanNoise::new(curve, age, arrival, lead),
            after_noise: SpanNoise::new(curve, arrival, season, after),
        }
    }
}

/// Plans the reorder.
pub fn plan_reorder(i: &PlanInputs<'_>) -> ReorderPlan {
    let margin = i.value_per_sale - i.salvage_value;
    let overage = i.unit_cost - i.salvage_value;
    let arrival = (i.age_days + i.lead_time_days.max(0.0)).min(i.season_days);
    if i.markets.is_empty() {
        return ReorderPlan::default();
    }
    let Draws {
        mut unmet,
        unmet_by_market,
        mut demand,
        mut demand_by_market,
        lead_sum,
        season_sum,
        stock_sum,
        params,
    } = draw(i, arrival);
    unmet.sort_by(f64::total_cmp);
    let n = DRAWS as f64;
    let interval = |draws: &mut Vec<f64>| {
        draws.sort_by(f64::total_cmp);
        (quantile(draws, 0.1), quantile(draws, 0.9))
    };
    let (demand_p10, demand_p90) = interval(&mut demand);
    let demand_by_market: Vec<(f64, f64)> = demand_by_market.iter_mut().map(interval).collect();
    let forecast = ReorderPlan {
        lead_demand: lead_sum / n,
        season_demand: season_sum / n,
        stock_at_arrival: stock_sum / n,
        demand_p10,
        demand_p90,
        demand_by_market,
        by_market: vec![0; i.markets.len()],
        ..ReorderPlan::default()
    };
    // Nothing to order when a unit cannot earn more than it costs, or would arrive
    // after the season.
    if margin <= overage || arrival >= i.season_days {
        return forecast;
    }
    let profit = |q: f64| margin * unmet.iter().map(|y| y.min(q)).sum::<f64>() / n - overage * q;
    let p_profit = |q: f64| {
        let breakeven = q * overage / margin;
        unmet.iter().filter(|y| **y > breakeven).count() as f64 / n
    };
    let critical = (margin - overage) / margin;
    let index = ((critical * n).ceil() as usize).clamp(1, DRAWS) - 1;
    let mut units = unmet[index].ceil() as i64;
    // Cutting the order to the largest that still pays with probability
    // `min_p_profit` gives up little expected profit (it is flat near its peak) and
    // turns a wide posterior into a smaller order rather than no order at all.
    if i.min_p_profit > 0.0 {
        let pays = ((i.min_p_profit.min(1.0) * n).ceil() as usize).clamp(1, DRAWS);
        let mut cap = (unmet[DRAWS - pays] * margin / overage).floor() as i64;
        while cap > 0 && p_profit(cap as f64) < i.min_p_profit {
            cap -= 1;
        }
        units = units.min(cap.max(0));
    }
    // The smallest order allowed, and how likely it is to make money at all.
    let p_reorder_pays = p_profit(i.moq.max(1) as f64);
    if units > 0 && units < i.moq {
        units = if p_reorder_pays >= i.min_p_profit {
            i.moq
        } else {
            0
        };
    }
    if units > 0 && profit(units as f64) <= 0.0 {
        units = 0;
    }
    let expected_profit = if units > 0 { profit(units as f64) } else { 0.0 };
    let value_of_waiting = if i.wait_days > 0.0 {
        super::waiting::value_of_waiting(i, &params, &unmet).max(0.0)
    } else {
        0.0
    };
    ReorderPlan {
        units,
        expected_profit,
        value_of_waiting,
        p_profit: if units > 0 {
            p_profit(units as f64)
        } else {
            0.0
        },
        p_reorder_pays,
        by_market: allocate(units, &unmet_by_market),
        ..forecast
    }
}

/// The `q` quantile of sorted draws (the nearest rank below).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).floor() as usize]
}

/// A stable seed from a style id (FNV-1a): a row's plan, and the backtest's demand
/// paths of a style, are the same every time.
pub fn seed_of(style_id: &str) -> u64 {
    style_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Splits `units` in proportion to `weights` (largest remainders; evenly if all are 0).
fn allocate(units: i64, weights: &[f64]) -> Vec<i64> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() {
        return Vec::new();
    }
    let shares: Vec<f64> = if total > 0.0 {
        weights.iter().map(|w| units as f64 * w / total).collect()
    } else {
        vec![units as f64 / weights.len() as f64; weights.len()]
    };
    let mut out: Vec<i64> = shares.iter().map(|s| s.floor() as i64).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor()))
    });
    let mut rest = units - out.iter().sum::<i64>();
    for &k in order.iter().cycle().take(shares.len() * 2) {
        if rest <= 0 {
            break;
        }
        out[k] += 1;
        rest -= 1;
    }
    out
}

/// Demand over a span of the curve given the launch rate: Poisson with a Gamma factor
/// whose shape grows with the span (independent day factors average out).
pub(super) struct SpanNoise {
    factor: Option<Gamma<f64>>,
}

impl SpanNoise {
    pub(super) fn new(curve: &Curve, from: f64, to: f64, total: f64) -> Self {
        let k = curve.day_dispersion;
        let squared = curve.integral_squared(from, to);
        let factor = (k.is_finite() && squared > 0.0 && total > 0.0)
            .then(|| {
                // Var = μ + λ²·∫g²/k: a Gamma(r, 1/r) factor with r = k·(∫g)²/∫g².
                let r = k * total * total / squared;
                Gamma::new(r, 1.0 / r).ok()
            })
            .flatten();
        Self { factor }
    }

    pub(super) fn draw(&self, rng: &mut StdRng, mean: f64) -> f64 {
        let mean = match &self.factor {
            Some(f) => mean * f.sample(rng),
            None => mean,
        };
        if mean <= 0.0 || !mean.is_finite() {
            return 0.0;
        }
        Poisson::new(mean).map_or(0.0, |p| p.sample(rng))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A style ten days old, 14 days from a reorder, selling at 25 what costs 10.
    pub(in crate::decision) fn inputs(markets: &[MarketState]) -> PlanInputs<'_> {
        PlanInputs {
            markets,
            curve: Curve::fallback(28.0, 5.0),
            age_days: 10.0,
            lead_time_days: 14.0,
            season_days: 84.0,
            open_order_units: 0,
            value_per_sale: 25.0,
            unit_cost: 10.0,
            salvage_value: 5.0,
            moq: 50,
            min_p_profit: 0.0,
            wait_days: 0.0,
            seed: 7,
        }
    }

    /// 10 units/day at launch, known well (posterior worth 30 launch-rate days).
    fn selling(on_hand: i64) -> MarketState {
        MarketState {
            rate_shape: 300.0,
            rate_rate: 30.0,
            exposure_days: 10.0,
            on_hand,
        }
    }

    /// The plan's expected profit, by brute force over every order size, for a small
    /// case: the quantile rule must find the best whole order (up to the draws' noise).
    #[test]
    fn the_plan_is_the_best_order_by_enumeration() {
        let markets = [selling(40)];
        let i = inputs(&markets);
        let plan = plan_reorder(&i);
        assert!(plan.units > 0);
        let margin = i.value_per_sale - i.salvage_value;
        let overage = i.unit_cost - i.salvage_value;
        // The same draws, re-made: the plan is deterministic.
        assert_eq!(plan_reorder(&i), plan);
        let mut best = (0, 0.0);
        for q in 0..=1500 {
            let at_q = plan_profit(&i, q as f64, margin, overage);
            if at_q > best.1 {
                best = (q, at_q);
            }
        }
        assert!(
            (plan.units - best.0).abs() <= 2 && (plan.expected_profit - best.1).abs() < 1.0,
            "plan {} ({:.1}), enumeration {} ({:.1})",
            plan.units,
            plan.expected_profit,
            best.0,
            best.1
        );
    }

    /// Expected profit of ordering `q` under the plan's own draws.
    fn plan_profit(i: &PlanInputs<'_>, q: f64, margin: f64, overage: f64) -> f64 {
        let unmet = plan_unmet(i);
        unmet
            .iter()
            .map(|y| margin * y.min(q) - overage * q)
            .sum::<f64>()
            / unmet.len() as f64
    }

    /// The plan's draws of unmet demand after arrival.
    fn plan_unmet(i: &PlanInputs<'_>) -> Vec<f64> {
        let arrival = (i.age_days + i.lead_time_days).min(i.season_days);
        draw(i, arrival).unmet
    }

    #[test]
    fn a_wide_posterior_cuts_the_order_to_one_that_pays_often_enough() {
        // 10 units/day at launch but known only roughly (±50 %), at a thin margin:
        // the order pays only if at least half of it sells.
        let markets = [MarketState {
            rate_shape: 4.0,
            rate_rate: 0.4,
            exposure_days: 10.0,
            on_hand: 40,
        }];
        let wide = PlanInputs {
            unit_cost: 15.0,
            ..inputs(&markets)
        };
        let free = plan_reorder(&wide);
        let cut = plan_reorder(&PlanInputs {
            min_p_profit: 0.9,
            ..wide.clone()
        });
        assert!(free.p_profit < 0.9, "{free:?}");
        assert!(
            cut.units > 0 && cut.units < free.units,
            "{cut:?} vs {free:?}"
        );
        assert!(cut.p_profit >= 0.9, "{cut:?}");
        // The largest such order: one more unit would pay less often than asked.
        let one_more = plan_profit_share(&wide, (cut.units + 1) as f64 * 10.0 / 20.0);
        assert!(one_more < 0.9, "{one_more}");
        // Near the peak profit is flat: the smaller order keeps most of it.
        assert!(
            cut.expected_profit > 0.8 * free.expected_profit,
            "{cut:?} vs {free:?}"
        );
    }

    /// Share of the plan's draws whose unmet demand exceeds `breakeven`.
    fn plan_profit_share(i: &PlanInputs<'_>, breakeven: f64) -> f64 {
        let unmet = plan_unmet(i);
        unmet.iter().filter(|y| **y > breakeven).count() as f64 / unmet.len() as f64
    }

    #[test]
    fn more_stock_never_raises_the_reorder() {
        let mut last = i64::MAX;
        for on_hand in (0..=1000).step_by(50) {
            let markets = [selling(on_hand)];
            let plan = plan_reorder(&inputs(&markets));
            assert!(
                plan.units <= last,
                "{on_hand} on hand: {} > {last}",
                plan.units
            );
            last = plan.units;
        }
    }

    #[test]
    fn a_shorter_season_never_raises_the_reorder() {
        let markets = [selling(40)];
        let mut last = i64::MAX;
        for season in (30..=120).rev().step_by(10) {
            let plan = plan_reorder(&PlanInputs {
                season_days: f64::from(season),
                ..inputs(&markets)
            });
            assert!(
                plan.units <= last,
                "season {season}: {} > {last}",
                plan.units
            );
            last = plan.units;
        }
        // Arriving after the season's end, nothing is worth ordering.
        let plan = plan_reorder(&PlanInputs {
            season_days: 20.0,
            ..inputs(&markets)
        });
        assert_eq!(plan.units, 0);
    }

    #[test]
    fn a_higher_salvage_never_lowers_the_reorder() {
        let markets = [selling(40)];
        let mut last = 0;
        for salvage in [0.0, 2.0, 4.0, 6.0, 8.0] {
            let plan = plan_reorder(&PlanInputs {
                salvage_value: salvage,
                ..inputs(&markets)
            });
            assert!(
                plan.units >= last,
                "salvage {salvage}: {} < {last}",
                plan.units
            );
            last = plan.units;
        }
    }

    #[test]
    fn the_moq_is_ordered_only_when_it_pays() {
        // ~1 unit/day at launch halving every 10 days: ~6 units could sell after
        // arrival; an MOQ of 50 loses money.
        let markets = [MarketState {
            rate_shape: 30.0,
            rate_rate: 30.0,
            exposure_days: 10.0,
            on_hand: 0,
        }];
        let plan = plan_reorder(&PlanInputs {
            curve: Curve::fallback(10.0, 5.0),
            ..inputs(&markets)
        });
        assert_eq!(plan.units, 0, "{plan:?}");
        assert!(plan.p_reorder_pays < 0.2, "{plan:?}");
    }

    #[test]
    fn open_orders_are_netted() {
        let markets = [selling(0)];
        let without = plan_reorder(&inputs(&markets));
        let with = plan_reorder(&PlanInputs {
            open_order_units: 200,
            ..inputs(&markets)
        });
        assert!(
            with.units <= without.units - 150,
            "{} vs {}",
            with.units,
            without.units
        );
    }

    #[test]
    fn lost_sales_in_a_sold_out_market_are_not_served_by_another() {
        // Same total stock, split evenly or all in one market: in the second case the
        // empty market's demand is lost until the reorder comes and the full market's
        // stock is left over; that leftover cannot serve the empty market after
        // arrival, so the order exceeds the pooled shortfall, nearly all of it for the
        // empty market.
        let balanced = [selling(150), selling(150)];
        let lopsided = [selling(300), selling(0)];
        let a = plan_reorder(&inputs(&balanced));
        let b = plan_reorder(&inputs(&lopsided));
        assert!(b.stock_at_arrival > a.stock_at_arrival, "{a:?} {b:?}");
        assert!(
            b.units as f64 > b.season_demand - b.stock_at_arrival + 20.0,
            "{b:?}"
        );
        assert!(b.by_market[1] > b.by_market[0], "{b:?}");
        assert_eq!(a.by_market.iter().sum::<i64>(), a.units);
    }

    #[test]
    fn allocation_adds_up() {
        assert_eq!(allocate(10, &[1.0, 1.0, 1.0]).iter().sum::<i64>(), 10);
        assert_eq!(allocate(7, &[0.0, 0.0]), vec![4, 3]);
        assert_eq!(allocate(100, &[3.0, 1.0]), vec![75, 25]);
    }
}
