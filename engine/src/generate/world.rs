//! How the generated world behaves beyond what the decision model assumes.
//!
//! The default world is the model's own: a constant rate of sale, Poisson days, demand
//! split across markets roughly as the stock is, and a buyer who reorders fast sellers.
//! A backtest on it only checks the model against itself, so a world can break each
//! assumption: demand that decays after launch, over-dispersed days, stock allocated
//! far from demand, promotions, and no reorders but the ones the policy under test
//! makes (sales a stock-out cannot serve are always lost, never back-ordered).

use std::fmt;
use std::str::FromStr;

/// The world's settings (`assay generate --world`).
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// Demand halves every this many days after launch: each category's median
    /// half-life is drawn from this range, each style's around it. `None`: no decay.
    pub half_life_days: Option<(f64, f64)>,
    /// Shape k of a Gamma(k, 1/k) factor on each day's demand (variance of a day's
    /// units grows by mean²/k). `None`: Poisson days.
    pub day_dispersion: Option<f64>,
    /// Spread (log-normal σ) of each market's share of demand around its share of the
    /// stock: 0.3 keeps them close, 1 or more puts stock far from demand.
    pub misallocation: f64,
    /// Share of style × market days with a promotion...
    pub promotion_share: f64,
    /// ...which multiplies that day's demand by this.
    pub promotion_lift: f64,
    /// The generator's own buyer reorders each fast seller's test batch once. Off in a
    /// world meant for backtests of reorders, where the policy's calls are the reorders.
    pub auto_reorders: bool,
}

impl Default for World {
    fn default() -> Self {
        Self {
            half_life_days: None,
            day_dispersion: None,
            misallocation: 0.3,
            promotion_share: 0.0,
            promotion_lift: 2.0,
            auto_reorders: true,
        }
    }
}

impl World {
    /// A fast-fashion season that breaks every assumption of the model: demand halving
    /// every two to six weeks, noisy days, stock far from demand, promotions, and no
    /// reorders of the generator's own.
    pub fn fast_fashion() -> Self {
        Self {
            half_life_days: Some((14.0, 42.0)),
            day_dispersion: Some(3.0),
            misallocation: 1.0,
            promotion_share: 0.03,
            promotion_lift: 2.0,
            auto_reorders: false,
        }
    }

    /// Whether this world is the model's own (the default).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Mean of the decay curve 2^(−a/h) over ages [0, days]: how much of its launch
    /// rate a style sells on average over that span.
    pub fn mean_decay(half_life_days: Option<f64>, days: f64) -> f64 {
        match half_life_days {
            Some(h) if h.is_finite() && days > 0.0 => {
                let theta = std::f64::consts::LN_2 / h;
                (1.0 - (-theta * days).exp()) / (theta * days)
            }
            _ => 1.0,
        }
    }
}

/// A `--world` value that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--world `{given}`: {message}")]
pub struct WorldError {
    given: String,
    message: String,
}

impl FromStr for World {
    type Err = WorldError;

    /// `default`, `fast-fashion`, or either followed by (or just) comma-separated
    /// `key=value` settings: `decay=14-42` (or `decay=none`), `dispersion=3` (or
    /// `none`), `misallocation=1.0`, `promotions=0.03`, `promotion_lift=2`,
    /// `reorders=on|off`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |message: String| WorldError {
            given: s.to_string(),
            message,
        };
        let mut world = World::default();
        for (i, part) in s.split(',').map(str::trim).enumerate() {
            match part {
                "default" if i == 0 => continue,
                "fast-fashion" if i == 0 => {
                    world = World::fast_fashion();
                    continue;
                }
                _ => {}
            }
            let (key, value) = part.split_once('=').ok_or_else(|| {
                err(format!(
                    "`{part}`: expected default, fast-fashion or key=value"
                ))
            })?;
            let number = |v: &str, ok: fn(f64) -> bool, what: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && ok(*x))
                    .ok_or_else(|| err(format!("{key}={v}: expected {what}")))
            };
            match key {
                "decay" if value == "none" => world.half_life_days = None,
                "decay" => {
                    let (lo, hi) = value.split_once('-').unwrap_or((value, value));
                    let lo = number(
                        lo,
                        |x| x > 0.0,
                        "a half-life in days, or a range like 14-42",
                    )?;
                    let hi = number(
                        hi,
                        |x| x > 0.0,
                        "a half-life in days, or a range like 14-42",
                    )?;
                    if hi < lo {
                        return Err(err(format!("decay={value}: the range runs backwards")));
                    }
                    world.half_life_days = Some((lo, hi));
                }
                "dispersion" if value == "none" => world.day_dispersion = None,
                "dispersion" => {
                    world.day_dispersion = Some(number(
                        value,
                        |x| x > 0.0,
                        "a positive Gamma shape, or none",
                    )?);
                }
                "misallocation" => {
                    world.misallocation = number(value, |x| x >= 0.0, "a σ of 0 or more")?;
                }
                "promotions" => {
                    world.promotion_share =
                        number(value, |x| (0.0..1.0).contains(&x), "a share in [0, 1)")?;
                }
                "promotion_lift" => {
                    world.promotion_lift = number(value, |x| x >= 1.0, "a factor of 1 or more")?;
                }
                "reorders" => {
                    world.auto_reorders = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(err(format!("reorders={value}: expected on or off"))),
                    };
                }
                _ => {
                    return Err(err(format!(
                        "unknown setting `{key}`: expected decay, dispersion, misallocation, promotions, promotion_lift or reorders"
                    )));
                }
            }
        }
        Ok(world)
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decay = match self.half_life_days {
            Some((lo, hi)) if lo == hi => format!("{lo}"),
            Some((lo, hi)) => format!("{lo}-{hi}"),
            None => "none".into(),
        };
        let dispersion = self
            .day_dispersion
            .map_or_else(|| "none".to_string(), |k| k.to_string());
        write!(
            f,
            "decay={decay},dispersion={dispersion},misallocation={},promotions={},promotion_lift={},reorders={}",
            self.misallocation,
            self.promotion_share,
            self.promotion_lift,
            if self.auto_reorders { "on" } else { "off" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_settings_parse_and_print_back() {
        assert!("default".parse::<World>().unwrap().is_default());
        let ff: World = "fast-fashion".parse().unwrap();
        assert_eq!(ff, World::fast_fashion());
        let w: World = "fast-fashion,dispersion=none,reorders=on".parse().unwrap();
        assert_eq!(w.day_dispersion, None);
        assert!(w.auto_reorders);
        assert_eq!(w.half_life_days, Some((14.0, 42.0)));
        let again: World = w.to_string().parse().unwrap();
        assert_eq!(again, w);
        let err = "decay=x".parse::<World>().unwrap_err().to_string();
        assert!(
            err.contains("decay=x") && err.contains("half-life"),
            "{err}"
        );
        let err = "colour=red".parse::<World>().unwrap_err().to_string();
        assert!(err.contains("unknown setting `colour`"), "{err}");
    }

    #[test]
    fn mean_decay_is_the_average_of_the_curve() {
        assert_eq!(World::mean_decay(None, 42.0), 1.0);
        // Halving every 21 days over 42 days: (1 − 1/4) / (2 ln 2).
        let m = World::mean_decay(Some(21.0), 42.0);
        assert!((m - 0.75 / (2.0 * std::f64::consts::LN_2)).abs() < 1e-12);
    }
}
