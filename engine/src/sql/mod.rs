//! The SQL views over the input tables, as plain SQL files so any engine that speaks
//! DataFusion's SQL (including Ballista) runs them unchanged.
//!
//! Each file is a template with `{as_of}`-style parameters. The session registers them
//! as views as of the latest event; a decision run as of another time renders the same
//! text with its own `as_of`, so no event after it can leak in.

use chrono::{DateTime, Utc};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

const STOCK_LEVELS: &str = include_str!("views/stock_levels.sql");
const STOCK_SPELLS: &str = include_str!("views/stock_spells.sql");
const STYLE_DAILY: &str = include_str!("views/style_daily.sql");
const STYLE_FUNNEL: &str = include_str!("views/style_funnel.sql");

/// The parameters every view template takes.
#[derive(Debug, Clone)]
pub struct ViewParams {
    pub as_of: DateTime<Utc>,
    /// A style's window: its planned life (the policy's default).
    pub window_days: f64,
    /// The early window whose rates inform category priors.
    pub early_days: f64,
    /// Units count toward the return test this long after purchase.
    pub maturity_days: f64,
}

const TIMESTAMP_TYPE: &str = r#"'Timestamp(µs, "UTC")'"#;

impl ViewParams {
    /// Parameters of the default policy.
    pub fn as_of(as_of: DateTime<Utc>) -> Self {
        Self::for_policy(as_of, &crate::decision::Policy::default())
    }

    pub fn for_policy(as_of: DateTime<Utc>, policy: &crate::decision::Policy) -> Self {
        Self {
            as_of,
            window_days: policy.defaults.planned_life_days,
            early_days: policy.priors.launch_window_days,
            maturity_days: policy.defaults.return_maturity_days,
        }
    }

    fn render(&self, template: &str) -> String {
        let as_of = self.as_of.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let seconds = |days: f64| ((days * 86400.0).round() as i64).to_string();
        let micros = |days: f64| ((days * 86_400e6).round() as i64).to_string();
        let params = [
            ("{stock_levels}", STOCK_LEVELS.to_string()),
            ("{stock_spells}", STOCK_SPELLS.to_string()),
            (
                "{as_of}",
                format!("arrow_cast('{as_of}', {TIMESTAMP_TYPE})"),
            ),
            ("{as_of_us}", self.as_of.timestamp_micros().to_string()),
            (
                "{as_of_date}",
                format!("DATE '{}'", self.as_of.date_naive()),
            ),
            (
                "{day_start}",
                format!("arrow_cast(c.day, {TIMESTAMP_TYPE})"),
            ),
            ("{day_us}", "86400000000.0".to_string()),
            ("{window_seconds}", seconds(self.window_days)),
            ("{early_seconds}", seconds(self.early_days)),
            ("{maturity_us}", micros(self.maturity_days)),
        ];
        let mut text = template.to_string();
        for (name, value) in &params {
            text = text.replace(name, value);
        }
        text
    }

    /// The daily query (per style × market × day) as of these parameters.
    pub fn style_daily(&self) -> String {
        self.render(STYLE_DAILY)
    }

    /// The funnel query (per market and pooled) as of these parameters.
    pub fn style_funnel(&self) -> String {
        self.render(STYLE_FUNNEL)
    }
}

/// The views the session registers, rendered for `params`. Each is self-contained:
/// the stock views it builds on are inlined as common table expressions.
pub fn views(params: &ViewParams) -> Vec<(&'static str, String)> {
    vec![
        ("stock_levels", params.render(STOCK_LEVELS)),
        (
            "stock_spells",
            params.render(&format!(
                "WITH stock_levels AS ({STOCK_LEVELS}) {STOCK_SPELLS}"
            )),
        ),
        ("style_daily", params.render(STYLE_DAILY)),
        ("style_funnel", params.render(STYLE_FUNNEL)),
    ]
}

/// Registers (or replaces) the views in `ctx`, over its `events`, `styles` and
/// `stock_receipts` tables.
///
/// # Errors
/// A view does not plan against the tables in `ctx`.
pub async fn register_views(ctx: &SessionContext, params: &ViewParams) -> Result<()> {
    for (name, text) in views(params) {
        ctx.deregister_table(name)?;
        let view = ctx.sql(&text).await?.into_view();
        ctx.register_table(name, view)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_rendered() {
        let params = ViewParams::as_of(Utc::now());
        for (name, text) in views(&params) {
            let left: Vec<&str> = text
                .match_indices('{')
                .map(|(i, _)| &text[i..(i + 20).min(text.len())])
                .collect();
            assert!(left.is_empty(), "{name} keeps placeholders: {left:?}");
        }
    }
}
