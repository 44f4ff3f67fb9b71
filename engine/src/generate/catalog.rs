//! The styles of a generated dataset and their true behaviour.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution, LogNormal, Normal};

use super::GenerateError;
use super::world::World;
use crate::decision::Rules;

pub const MARKETS: [&str; 8] = ["US", "DE", "SA", "GB", "FR", "AE", "JP", "AU"];

/// Mean units per order (1 unit in 90 % of orders, 2 in 10 %).
pub const UNITS_PER_ORDER: f64 = 1.1;
/// Share of carts later removed.
pub const REMOVE_SHARE: f64 = 0.3;
/// Share of views a sold-out style still gets (it drops out of listings, not the site).
pub const SOLD_OUT_VIEW_SHARE: f64 = 0.3;

struct Category {
    name: &'static str,
    price: f64,
    /// Beta parameters of the true return rate.
    returns: (f64, f64),
    nouns: &'static [&'static str],
}

const CATEGORIES: [Category; 8] = [
    Category {
        name: "dresses",
        price: 39.9,
        returns: (6.0, 14.0),
        nouns: &["Dress", "Slip Dress", "Midi Dress", "Shirt Dress"],
    },
    Category {
        name: "tops",
        price: 19.9,
        returns: (3.0, 17.0),
        nouns: &["Top", "Tee", "Blouse", "Cami"],
    },
    Category {
        name: "jeans",
        price: 49.9,
        returns: (5.0, 15.0),
        nouns: &["Jeans", "Mom Jeans", "Flare Jeans"],
    },
    Category {
        name: "skirts",
        price: 29.9,
        returns: (4.0, 16.0),
        nouns: &["Skirt", "Mini Skirt", "Maxi Skirt"],
    },
    Category {
        name: "knitwear",
        price: 44.9,
        returns: (3.0, 17.0),
        nouns: &["Cardigan", "Jumper", "Vest"],
    },
    Category {
        name: "outerwear",
        price: 89.9,
        returns: (3.0, 17.0),
        nouns: &["Jacket", "Trench", "Blazer", "Puffer"],
    },
    Category {
        name: "shoes",
        price: 59.9,
        returns: (5.0, 15.0),
        nouns: &["Loafers", "Boots", "Sneakers", "Mules"],
    },
    Category {
        name: "accessories",
        price: 14.9,
        returns: (1.0, 19.0),
        nouns: &["Bag", "Belt", "Scarf", "Cap"],
    },
];

const ADJECTIVES: [&str; 15] = [
    "Satin",
    "Linen",
    "Ribbed",
    "Oversized",
    "Cropped",
    "Pleated",
    "Floral",
    "Denim",
    "Wool-blend",
    "Faux-leather",
    "Striped",
    "Tie-front",
    "Wide-leg",
    "Puff-sleeve",
    "Utility",
];
const BRANDS: [&str; 4] = ["Assay Studio", "North Lane", "Petal & Co", "Urban Thread"];

/// A style sold in one market: its test batch and true demand there.
#[derive(Debug, Clone)]
pub struct MarketPlan {
    pub market: &'static str,
    pub batch_units: i32,
    /// True units per day at launch (age 0), at average weekday traffic, while in
    /// stock; demand decays from there as the style's half-life says.
    pub daily_units: f64,
}

/// A generated style, with its hidden truth.
#[derive(Debug, Clone)]
pub struct Style {
    pub style_id: String,
    pub name: String,
    pub category: &'static str,
    pub brand: &'static str,
    pub launch_at: DateTime<Utc>,
    pub launch_day: u32,
    pub list_price: f64,
    pub unit_cost: f64,
    pub lead_time_days: i32,
    pub moq: i32,
    pub markets: Vec<MarketPlan>,
    /// Purchases per in-stock view.
    pub conversion: f64,
    /// Carts per purchase.
    pub carts_per_order: f64,
    pub return_rate: f64,
    /// Share of returns made for size reasons.
    pub size_return_share: f64,
    /// Demand halves every this many days after launch (`None`: it does not decay).
    pub half_life_days: Option<f64>,
}

impl Style {
    pub fn test_batch_units(&self) -> i32 {
        self.markets.iter().map(|m| m.batch_units).sum()
    }

    /// Mean units per in-stock day over the planned life of the default rules.
    pub fn true_daily_rate(&self) -> f64 {
        let life = Rules::default().planned_life_days;
        self.markets.iter().map(|m| m.daily_units).sum::<f64>()
            * World::mean_decay(self.half_life_days, life)
    }

    /// The demand multiplier at `age_days` after launch.
    pub fn decay_at(&self, age_days: f64) -> f64 {
        match self.half_life_days {
            Some(h) => (-std::f64::consts::LN_2 * age_days.max(0.0) / h).exp(),
            None => 1.0,
        }
    }

    pub fn non_size_return_rate(&self) -> f64 {
        self.return_rate * (1.0 - self.size_return_share)
    }

    /// Would a buyer who knew the true rates keep it under these rules?
    pub fn truly_keep(&self, rules: &Rules) -> bool {
        let keep_level =
            rules.keep_sell_through * f64::from(self.test_batch_units()) / rules.planned_life_days;
        self.true_daily_rate() >= keep_level
            && self.non_size_return_rate() <= rules.return_rate_limit
    }
}

pub fn make_styles(
    rng: &mut StdRng,
    n: usize,
    days: u32,
    markets: usize,
    start: DateTime<Utc>,
    world: &World,
) -> Vec<Style> {
    let normal = Normal::<f64>::new(0.0, 1.0).expect("valid");
    // Category-level appetite: what the empirical-Bayes priors should pick up.
    let appetite: Vec<f64> = CATEGORIES
        .iter()
        .map(|_| (0.25 * normal.sample(rng)).exp())
        .collect();
    // Each category's median half-life; the default world draws nothing here, so its
    // datasets stay what they were.
    let category_half_life: Vec<Option<f64>> = CATEGORIES
        .iter()
        .map(|_| {
            world.half_life_days.map(|(lo, hi)| {
                if hi > lo {
                    rng.random_range(lo..hi)
                } else {
                    lo
                }
            })
        })
        .collect();
    let share_noise = LogNormal::new(0.0, world.misallocation).expect("valid σ");
    let base_conversion = Beta::<f64>::new(3.0, 97.0).expect("valid");
    let launch_span = ((f64::from(days) * 0.85).ceil() as u32).max(1);
    (0..n)
        .map(|i| {
            let c = rng.random_range(0..CATEGORIES.len());
            let cat = &CATEGORIES[c];
            let launch_day = rng.random_range(0..launch_span);
            let launch_at = start
                + Duration::days(i64::from(launch_day))
                + Duration::minutes(rng.random_range(6 * 60..12 * 60));
            let mut plans: Vec<MarketPlan> = Vec::new();
            for m in &MARKETS[..markets] {
                if rng.random_bool(0.7) {
                    plans.push(MarketPlan {
                        market: m,
                        batch_units: rng.random_range(10..=50) * 10,
                        daily_units: 0.0,
                    });
                }
            }
            if plans.is_empty() {
                let m = MARKETS[rng.random_range(0..markets)];
                plans.push(MarketPlan {
                    market: m,
                    batch_units: rng.random_range(10..=50) * 10,
                    daily_units: 0.0,
                });
            }
            // Demand over the planned life is lognormal around the keep level of the
            // style's batch: a third or so are keeps, a third drops, the rest in
            // between. With decay, the launch rate is higher by as much as the curve
            // loses on average over that life.
            let batch: f64 = plans.iter().map(|p| f64::from(p.batch_units)).sum();
            let keep_level = 0.8 * batch / 42.0;
            let half_life = category_half_life[c]
                .map(|h| h * LogNormal::new(0.0, 0.25).expect("valid").sample(rng));
            let demand =
                keep_level * appetite[c] * LogNormal::new(-0.3, 0.8).expect("valid").sample(rng)
                    / World::mean_decay(half_life, 42.0);
            let weights: Vec<f64> = plans
                .iter()
                .map(|p| f64::from(p.batch_units) * share_noise.sample(rng))
                .collect();
            let total_weight: f64 = weights.iter().sum();
            for (p, w) in plans.iter_mut().zip(&weights) {
                p.daily_units = demand * w / total_weight;
            }
            let quality_problem = rng.random_bool(0.08);
            let (return_rate, size_return_share) = if quality_problem {
                (rng.random_range(0.5..0.65), 0.25)
            } else {
                (
                    Beta::new(cat.returns.0, cat.returns.1)
                        .expect("valid")
                        .sample(rng),
                    rng.random_range(0.5..0.8),
                )
            };
            let price = ((cat.price * (0.15 * normal.sample(rng)).exp()).round() - 0.1).max(4.9);
            Style {
                style_id: format!("ST{:06}", i + 1),
                name: format!(
                    "{} {}",
                    ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
                    cat.nouns[rng.random_range(0..cat.nouns.len())]
                ),
                category: cat.name,
                brand: BRANDS[rng.random_range(0..BRANDS.len())],
                launch_at,
                launch_day,
                list_price: price,
                unit_cost: (price * rng.random_range(0.28..0.45) * 100.0).round() / 100.0,
                lead_time_days: rng.random_range(14..=35),
                moq: [50, 100, 150][rng.random_range(0..3)],
                markets: plans,
                conversion: base_conversion.sample(rng).max(0.004),
                carts_per_order: rng.random_range(2.5..4.0),
                return_rate,
                size_return_share,
                half_life_days: half_life,
            }
        })
        .collect()
}

/// Scales conversion so the expected number of events is about `target` (more events
/// per purchase = lower conversion; demand, and so every verdict, stays the same).
/// Returns the expected number of events.
///
/// The expectation follows each market's stock: the test batch sells out after about
/// batch / demand days, after which the style gets a share of its views and no sales
/// (reorders are left out, so the total comes out slightly above `target`).
pub fn calibrate_traffic(
    styles: &mut [Style],
    days: u32,
    target: Option<u64>,
) -> Result<u64, GenerateError> {
    // (views at the style's current conversion, every other event), expected.
    let expected = |s: &Style| -> (f64, f64) {
        let active = f64::from(days - s.launch_day) - 0.4;
        let (mut views, mut others) = (0.0, 0.0);
        for m in &s.markets {
            let orders_per_day = m.daily_units / UNITS_PER_ORDER;
            let in_stock = active.min(f64::from(m.batch_units) / m.daily_units.max(1e-9));
            let sold_out = active - in_stock;
            views += orders_per_day / s.conversion * (in_stock + SOLD_OUT_VIEW_SHARE * sold_out);
            others += orders_per_day
                * in_stock
                * (1.0 + s.carts_per_order * (1.0 + REMOVE_SHARE) + s.return_rate);
        }
        (views, others)
    };
    let total = |styles: &[Style]| {
        styles
            .iter()
            .map(expected)
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    if let Some(target) = target {
        let (views, others) = total(styles);
        let target = target as f64;
        if target <= others * 1.05 {
            return Err(GenerateError::Config(format!(
                "--events {target} is too few for {} styles over {days} days: they make about {:.0} purchase, cart and return events before any view; ask for at least {:.0}",
                styles.len(),
                others,
                others * 1.5
            )));
        }
        let scale = views / (target - others);
        for s in styles.iter_mut() {
            s.conversion = (s.conversion * scale).min(0.5);
            s.carts_per_order = s.carts_per_order.min(0.9 / s.conversion);
        }
    }
    let (views, others) = total(styles);
    Ok((views + others).round() as u64)
}
