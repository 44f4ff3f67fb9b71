//! The SQL views over the input tables, as plain SQL files so any engine that speaks
//! DataFusion's SQL (including Ballista) runs them unchanged.
//!
//! Each file is a template with `{as_of}`-style parameters. The session registers them
//! as views as of the latest event; a decision run as of another time renders the same
//! text with its own `as_of`, so no event after it can leak in.

mod style_daily_schema;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::source::schema::EventType;

pub use style_daily_schema::style_daily_schema;

const MOVEMENTS: &str = include_str!("views/movements.sql");
const STOCK_LEVELS: &str = include_str!("views/stock_levels.sql");
const STOCK_SPELLS: &str = include_str!("views/stock_spells.sql");
const OPENING: &str = include_str!("views/opening.sql");
const STYLE_DAILY: &str = include_str!("views/style_daily.sql");
/// The rollup's days cut to a policy's windows, before `{window_days_before}`.
const WINDOW_DAYS: &str = include_str!("views/window_days.sql");
/// The funnel's per-market rows (ends with the `market_rows` expression) …
const STYLE_FUNNEL: &str = include_str!("views/style_funnel.sql");
/// … and its rows per market and pooled, from `market_rows`.
const STYLE_FUNNEL_POOLED: &str = include_str!("views/style_funnel_pooled.sql");
const DATA_WARNINGS: &str = include_str!("views/data_warnings.sql");
const DAILY_SALES: &str = include_str!("views/daily_sales.sql");
const DAILY_SERIES: &str = include_str!("views/daily_series.sql");
const DECISIONS: &str = include_str!("views/decisions.sql");
const DECISION_RUNS: &str = include_str!("views/decision_runs.sql");

/// The opening stock when movements start at the epoch: none.
const NO_OPENING: &str = "SELECT CAST(NULL AS VARCHAR) AS style_id, \
     CAST(NULL AS VARCHAR) AS market, CAST(0 AS BIGINT) AS on_hand WHERE false";

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
    /// Demand decay per category (per day of age; 0 = none), and for any other.
    pub decay_per_day: Vec<(String, f64)>,
    pub default_decay_per_day: f64,
}

const TIMESTAMP_TYPE: &str = r#"'Timestamp(µs, "UTC")'"#;

/// Where a query's raw events start: at the epoch (all history is read raw), or at a
/// day before which the daily rollup (`style_daily`) holds the sums.
#[derive(Debug, Clone, Copy)]
enum RawFrom {
    Epoch,
    Day(NaiveDate),
}

impl ViewParams {
    /// The same parameters with each category's own decay (per day of age).
    pub fn with_decay(mut self, by_category: Vec<(String, f64)>, default: f64) -> Self {
        self.decay_per_day = by_category;
        self.default_decay_per_day = default;
        self
    }

    /// The `curves` table of the funnel: category → decay per microsecond.
    fn curves_sql(&self) -> String {
        let per_us = |d: f64| format!("{:e}", d / 86_400e6);
        if self.decay_per_day.is_empty() {
            return "SELECT CAST(NULL AS VARCHAR) AS category, CAST(NULL AS DOUBLE) AS decay_per_us \
                    WHERE false"
                .to_string();
        }
        let rows: Vec<String> = self
            .decay_per_day
            .iter()
            .map(|(c, d)| {
                format!(
                    "('{}', CAST({} AS DOUBLE))",
                    c.replace('\'', "''"),
                    per_us(*d)
                )
            })
            .collect();
        format!(
            "SELECT column1 AS category, column2 AS decay_per_us FROM (VALUES {})",
            rows.join(", ")
        )
    }

    /// `template` with every parameter filled in, `extra` ones included.
    fn render(&self, template: &str, from: RawFrom, extra: &[(&str, String)]) -> String {
        let timestamp = |t: DateTime<Utc>| {
            format!(
                "arrow_cast('{}', {TIMESTAMP_TYPE})",
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ")
            )
        };
        let date = |d: NaiveDate| format!("DATE '{d}'");
        let seconds = |days: f64| ((days * 86400.0).round() as i64).to_string();
        let micros = |days: f64| (days * 86_400e6).round() as i64;
        let maturity = micros(self.maturity_days);
        let maturity_cut = self.as_of - chrono::Duration::microseconds(maturity);
        let (opening, past, from_day) = match from {
            RawFrom::Epoch => (
                NO_OPENING.to_string(),
                style_daily_schema::no_window_days_sql(),
                DateTime::<Utc>::UNIX_EPOCH.date_naive(),
            ),
            RawFrom::Day(day) => (
                OPENING.to_string(),
                WINDOW_DAYS.replace("{window_days_before}", "{from_date}"),
                day,
            ),
        };
        let from_start = from_day.and_time(NaiveTime::MIN).and_utc();
        let curves = self.curves_sql();
        // Templates first (they hold further placeholders), then the values.
        let params = [
            ("{stock_levels}", STOCK_LEVELS.to_string()),
            ("{stock_spells}", STOCK_SPELLS.to_string()),
            ("{movements}", MOVEMENTS.to_string()),
            ("{opening}", opening),
            ("{past}", past),
            ("{decay_curves}", curves),
            (
                "{default_decay_per_us}",
                format!(
                    "CAST({:e} AS DOUBLE)",
                    self.default_decay_per_day / 86_400e6
                ),
            ),
            ("{half_day_us}", "43200000000".to_string()),
            ("{day_us_int}", "86400000000".to_string()),
            ("{from}", timestamp(from_start)),
            ("{from_date}", date(from_day)),
            ("{until_us}", self.as_of.timestamp_micros().to_string()),
            ("{until_date}", date(self.as_of.date_naive())),
            ("{until}", timestamp(self.as_of)),
            ("{maturity_date}", date(maturity_cut.date_naive())),
            ("{matured_before}", date(matured_before(maturity_cut))),
            ("{maturity_us}", maturity.to_string()),
            ("{timestamp_type}", TIMESTAMP_TYPE.to_string()),
            ("{day_us}", "86400000000.0".to_string()),
            ("{window_seconds}", seconds(self.window_days)),
            ("{early_seconds}", seconds(self.early_days)),
            (
                "{early_units_seconds}",
                seconds(self.early_days.min(self.window_days)),
            ),
        ];
        fill(&fill(template, extra), &params)
    }

    /// The funnel (per market and pooled) as of these parameters, in its two steps:
    /// from raw events only (`through` none), or reading whole days before as_of's own
    /// from the registered `style_daily` rollup, whose last day is `through`, and only
    /// the events after those days raw.
    pub fn funnel_steps(&self, through: Option<NaiveDate>) -> FunnelSteps {
        let from = match through {
            Some(through) => RawFrom::Day(self.first_raw_day(through)),
            None => RawFrom::Epoch,
        };
        FunnelSteps {
            market_rows: self.render(
                &format!("{STYLE_FUNNEL}\nSELECT * FROM market_rows"),
                from,
                &[],
            ),
            with_pooled: self.render(STYLE_FUNNEL_POOLED, from, &[]),
        }
    }

    /// The funnel as one query, as the `style_funnel` view holds it.
    pub fn style_funnel(&self, through: Option<NaiveDate>) -> String {
        let from = match through {
            Some(through) => RawFrom::Day(self.first_raw_day(through)),
            None => RawFrom::Epoch,
        };
        self.render(&format!("{STYLE_FUNNEL}\n{STYLE_FUNNEL_POOLED}"), from, &[])
    }

    /// The run's data checks (see `views/data_warnings.sql`): the rollup's counts
    /// before `first_raw_day`, raw events from it.
    pub fn data_warnings(&self, first_raw_day: NaiveDate) -> String {
        let types = EventType::ALL
            .map(|t| format!("'{}'", t.as_str()))
            .join(", ");
        self.render(
            DATA_WARNINGS,
            RawFrom::Day(first_raw_day),
            &[("{event_types}", types)],
        )
    }

    /// Whether the windows are whole days, so the rollup's days can be cut to them
    /// (see `views/window_days.sql`); else a funnel reads raw events alone.
    pub fn whole_day_windows(&self) -> bool {
        whole_days(self.window_days) && whole_days(self.early_days)
    }

    /// The first day a query as of these parameters reads raw, over a rollup whose
    /// last day is `through`: as_of's own day, or the day after the rollup's last.
    pub fn first_raw_day(&self, through: NaiveDate) -> NaiveDate {
        self.as_of.date_naive().min(through + chrono::Days::new(1))
    }

    /// In-stock daily sales of the launches of the `lookback_days` before as_of, from
    /// the registered `style_daily` rollup: what demand curves are fitted to.
    pub fn daily_sales(&self, lookback_days: f64) -> String {
        let lookback = format!("{}", (lookback_days * 86400.0).round() as i64);
        self.render(
            DAILY_SALES,
            RawFrom::Epoch,
            &[
                (
                    "{window_days}",
                    WINDOW_DAYS.replace("{window_days_before}", "{until_date}"),
                ),
                ("{lookback_days}", lookback_days.to_string()),
                ("{lookback_seconds}", lookback),
            ],
        )
    }
}

/// The rollup's rows for the days `[from, until)`, with stock carried in from the
/// registered `style_daily` rows before `from`, ordered by day (the rollup writes a
/// file per day). No policy plays a part.
pub fn style_daily_days(from: NaiveDate, until: NaiveDate) -> String {
    day_params(until).render(STYLE_DAILY, RawFrom::Day(from), &[])
}

/// The registered rollup's rows through `through`, by style, market and day.
pub fn daily_series(through: NaiveDate) -> String {
    day_params(through).render(DAILY_SERIES, RawFrom::Day(through), &[])
}

/// Parameters of the queries that need no policy: only the day they run up to (its
/// start is `{until}`, the day itself `{until_date}`).
fn day_params(until: NaiveDate) -> ViewParams {
    ViewParams {
        as_of: until.and_time(NaiveTime::MIN).and_utc(),
        window_days: 0.0,
        early_days: 0.0,
        maturity_days: 0.0,
        decay_per_day: Vec::new(),
        default_decay_per_day: 0.0,
    }
}

/// Whether a window of `days` is whole days as the templates render it (in whole
/// seconds): only then can the rollup's days be cut to it.
pub fn whole_days(days: f64) -> bool {
    days.is_finite() && (days * 86400.0).round() as i64 % 86400 == 0
}

/// Decay per day of age of a curve that halves every `half_life_days` (0 for `inf`).
pub fn decay_per_day(half_life_days: f64) -> f64 {
    if half_life_days.is_finite() && half_life_days > 0.0 {
        std::f64::consts::LN_2 / half_life_days
    } else {
        0.0
    }
}

/// The first day not wholly matured at `cut` (as_of − the return maturity): the day
/// after the cut's own when the cut is that day's last microsecond (as_of at the end of
/// a day, as a daily run's is), so no day straddles it and none needs its purchases
/// read raw; else the cut's day, whose purchases the funnel reads raw.
fn matured_before(cut: DateTime<Utc>) -> NaiveDate {
    let day = cut.date_naive();
    let next = day + chrono::Days::new(1);
    if cut + chrono::Duration::microseconds(1) == next.and_time(NaiveTime::MIN).and_utc() {
        next
    } else {
        day
    }
}

/// A rendered funnel query in two steps. DataFusion computes a common table
/// expression once per reference, and the pooled rows referred to the market rows a
/// second time: every event and rollup scan ran twice.
#[derive(Debug, Clone)]
pub struct FunnelSteps {
    /// The per-market rows (`market_rows`).
    pub market_rows: String,
    /// The funnel's rows, per market and pooled, from a table `market_rows`.
    pub with_pooled: String,
}

/// `template` with each `{name}` of `params` replaced by its value, in order (a value
/// may hold further names for later entries to fill).
fn fill(template: &str, params: &[(&str, String)]) -> String {
    let mut text = template.to_string();
    for (name, value) in params {
        text = text.replace(name, value);
    }
    text
}

/// The views the session registers, rendered for `params`. Each is self-contained:
/// the stock views it builds on are inlined as common table expressions.
pub fn views(params: &ViewParams) -> Vec<(&'static str, String)> {
    let raw = |template: &str| params.render(template, RawFrom::Epoch, &[]);
    vec![
        ("stock_levels", raw(STOCK_LEVELS)),
        (
            "stock_spells",
            raw(&format!(
                "WITH stock_levels AS ({STOCK_LEVELS}) {STOCK_SPELLS}"
            )),
        ),
        ("style_funnel", params.style_funnel(None)),
    ]
}

/// The views over `decision_history`, for the published run `published` (none: every
/// run is history and `decisions` is empty).
pub fn decision_views(published: Option<&str>) -> Vec<(&'static str, String)> {
    let is_published = match published {
        Some(id) => format!("run_id = '{}'", id.replace('\'', "''")),
        None => "false".to_owned(),
    };
    [("decisions", DECISIONS), ("decision_runs", DECISION_RUNS)]
        .into_iter()
        .map(|(name, template)| {
            let text = fill(template, &[("{is_published}", is_published.clone())]);
            (name, text)
        })
        .collect()
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
        let params = crate::decision::Policy::default().view_params(Utc::now());
        let today = Utc::now().date_naive();
        let steps = params.funnel_steps(Some(today));
        let more = [
            ("style_daily", style_daily_days(today, today)),
            ("daily series", daily_series(today)),
            ("funnel over rollup", params.style_funnel(Some(today))),
            ("funnel's market rows", steps.market_rows),
            ("funnel's pooled rows", steps.with_pooled),
            ("data warnings", params.data_warnings(today)),
            ("daily sales", params.daily_sales(28.0)),
        ];
        let decisions = decision_views(Some("r1")).into_iter();
        for (name, text) in views(&params).into_iter().chain(more).chain(decisions) {
            let left: Vec<&str> = text
                .match_indices('{')
                .map(|(i, _)| &text[i..(i + 20).min(text.len())])
                .collect();
            assert!(left.is_empty(), "{name} keeps placeholders: {left:?}");
        }
    }
}
