//! Empirical-Bayes priors per category, by the method of moments.
//!
//! Each category's recent launches give a spread of observed rates; the prior's mean is
//! their mean and its variance what is left of their variance after the sampling noise of
//! each launch's own counts. The strength is capped so a style's own data dominate within
//! days; a category with too few launches falls back to a weak prior built from all of
//! them.

use std::collections::HashMap;

use super::StyleObservation;
use super::policy::PriorSettings;

/// Gamma prior (or posterior) on a daily rate: shape `a`, rate `b` (worth `b` days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaPrior {
    pub shape: f64,
    pub rate: f64,
}

impl GammaPrior {
    pub fn mean(&self) -> f64 {
        self.shape / self.rate
    }

    /// A prior for a sub-population holding `share` of this one's rate, worth at most
    /// `max_strength` days.
    pub fn shrinkage_prior(&self, share: f64, max_strength: f64) -> GammaPrior {
        let strength = self.rate.min(max_strength);
        GammaPrior {
            shape: (self.mean() * share * strength).max(1e-3),
            rate: strength,
        }
    }
}

/// Beta prior on a proportion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaPrior {
    pub alpha: f64,
    pub beta: f64,
}

impl BetaPrior {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// The priors one style starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    pub rate: GammaPrior,
    pub conversion: BetaPrior,
    pub returns: BetaPrior,
}

/// Priors by category, with the global fallback.
#[derive(Debug, Clone)]
pub struct CategoryPriors {
    by_category: HashMap<String, Priors>,
    fallback: Priors,
}

/// Used only when there is no usable launch at all.
const UNINFORMED: Priors = Priors {
    rate: GammaPrior {
        shape: 0.5,
        rate: 0.1,
    },
    conversion: BetaPrior {
        alpha: 0.5,
        beta: 20.0,
    },
    returns: BetaPrior {
        alpha: 1.0,
        beta: 4.0,
    },
};

impl CategoryPriors {
    /// Fits priors from pooled observations (one per style).
    pub fn estimate(pooled: &[&StyleObservation], settings: &PriorSettings) -> Self {
        let recent: Vec<&StyleObservation> = pooled
            .iter()
            .copied()
            .filter(|o| o.days_live <= settings.lookback_days && o.early_exposure_days > 0.0)
            .collect();
        let fallback = fit(&recent, settings, 1.0, &UNINFORMED);
        let mut groups: HashMap<&str, Vec<&StyleObservation>> = HashMap::new();
        for o in &recent {
            groups.entry(o.category.as_str()).or_default().push(o);
        }
        let by_category = groups
            .into_iter()
            .filter(|(_, launches)| launches.len() >= settings.min_launches)
            .map(|(category, launches)| {
                (
                    category.to_string(),
                    fit(&launches, settings, settings.max_rate_strength, &fallback),
                )
            })
            .collect();
        Self {
            by_category,
            fallback,
        }
    }

    pub fn for_category(&self, category: &str) -> Priors {
        self.by_category
            .get(category)
            .copied()
            .unwrap_or(self.fallback)
    }
}

fn fit(
    launches: &[&StyleObservation],
    settings: &PriorSettings,
    max_rate_strength: f64,
    otherwise: &Priors,
) -> Priors {
    if launches.is_empty() {
        return *otherwise;
    }
    let rates: Vec<(f64, f64)> = launches
        .iter()
        .map(|o| (o.early_units / o.early_exposure_days, o.early_exposure_days))
        .collect();
    let rate = gamma_moments(&rates, max_rate_strength).unwrap_or(otherwise.rate);
    let conversions: Vec<(f64, f64)> = launches
        .iter()
        .filter(|o| o.views_in_stock > 0)
        .map(|o| {
            let n = o.views_in_stock as f64;
            ((o.purchases as f64 / n).min(1.0), n)
        })
        .collect();
    let conversion =
        beta_moments(&conversions, settings.max_beta_strength).unwrap_or(otherwise.conversion);
    let returns: Vec<(f64, f64)> = launches
        .iter()
        .filter(|o| o.matured_units > 0.0)
        .map(|o| {
            let n = o.matured_units;
            ((o.matured_non_size_returns as f64 / n).min(1.0), n)
        })
        .collect();
    let returns = beta_moments(&returns, settings.max_beta_strength).unwrap_or(otherwise.returns);
    Priors {
        rate,
        conversion,
        returns,
    }
}

/// Gamma prior from observed rates `(rate, exposure)`, exposure-weighted. The Poisson
/// noise of each observed rate (mean/exposure) is removed from the spread.
fn gamma_moments(obs: &[(f64, f64)], max_strength: f64) -> Option<GammaPrior> {
    let total: f64 = obs.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mean = obs.iter().map(|(r, w)| r * w).sum::<f64>() / total;
    if mean <= 0.0 {
        return None;
    }
    let n = obs.len() as f64;
    let spread = obs.iter().map(|(r, _)| (r - mean).powi(2)).sum::<f64>() / n;
    let noise = obs.iter().map(|(_, e)| mean / e).sum::<f64>() / n;
    let variance = spread - noise;
    // With no spread left over the noise, the data say nothing against a strong prior;
    // the cap then sets its strength.
    let strength = if variance > 0.0 {
        (mean / variance).min(max_strength)
    } else {
        max_strength
    };
    Some(GammaPrior {
        shape: mean * strength,
        rate: strength,
    })
}

/// Beta prior from observed proportions `(p, trials)`, trial-weighted mean, binomial noise
/// removed from the spread, strength α+β capped.
fn beta_moments(obs: &[(f64, f64)], max_strength: f64) -> Option<BetaPrior> {
    let total: f64 = obs.iter().map(|(_, n)| n).sum();
    if total <= 0.0 {
        return None;
    }
    let mean = (obs.iter().map(|(p, n)| p * n).sum::<f64>() / total).clamp(1e-6, 1.0 - 1e-6);
    let n = obs.len() as f64;
    let spread = obs.iter().map(|(p, _)| (p - mean).powi(2)).sum::<f64>() / n;
    let noise = obs
        .iter()
        .map(|(_, t)| mean * (1.0 - mean) / t)
        .sum::<f64>()
        / n;
    let variance = spread - noise;
    let strength = if variance > 0.0 {
        (mean * (1.0 - mean) / variance - 1.0).clamp(2.0, max_strength)
    } else {
        max_strength
    };
    Some(BetaPrior {
        alpha: mean * strength,
        beta: (1.0 - mean) * strength,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_moments_recover_a_known_spread() {
        // Rates 2 and 6 with huge exposure (no noise): mean 4, variance 4 → strength 1.
        let p = gamma_moments(&[(2.0, 1e9), (6.0, 1e9)], 3.0).unwrap();
        assert!((p.mean() - 4.0).abs() < 1e-9);
        assert!((p.rate - 1.0).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn gamma_strength_is_capped() {
        // Nearly identical rates would give a very strong prior; the cap holds it at 3 days.
        let p = gamma_moments(&[(4.0, 1e9), (4.01, 1e9), (3.99, 1e9)], 3.0).unwrap();
        assert_eq!(p.rate, 3.0);
        assert!((p.mean() - 4.0).abs() < 0.01);
    }

    #[test]
    fn beta_moments_recover_mean_and_cap() {
        let p = beta_moments(&[(0.02, 1e6), (0.04, 1e6)], 200.0).unwrap();
        assert!((p.mean() - 0.03).abs() < 1e-9);
        // variance 1e-4 → α+β = 0.03·0.97/1e-4 − 1 ≈ 290, capped to 200.
        assert!((p.alpha + p.beta - 200.0).abs() < 1e-9);
    }

    #[test]
    fn small_categories_fall_back() {
        let obs: Vec<StyleObservation> = (0..12)
            .map(|i| StyleObservation {
                style_id: format!("s{i}"),
                category: if i < 11 { "tops".into() } else { "rare".into() },
                days_live: 20.0,
                early_units: 10.0 + i as f64,
                early_exposure_days: 5.0,
                ..Default::default()
            })
            .collect();
        let refs: Vec<&StyleObservation> = obs.iter().collect();
        let priors = CategoryPriors::estimate(&refs, &PriorSettings::default());
        assert_eq!(priors.for_category("rare"), priors.for_category("unknown"));
        assert_ne!(priors.for_category("tops"), priors.for_category("rare"));
        // The global fallback is weak: worth at most one day.
        assert!(priors.for_category("rare").rate.rate <= 1.0);
    }
}
