//! A seeded generator of realistic launch data, with the ground truth behind it.
//!
//! Styles launch over the period in several categories and markets. Each has a true
//! daily demand (lognormal around its batch's keep level, so some are hits and most are
//! not), conversion, add-to-cart and return rates. Customers arrive day by day with
//! weekday seasonality; a style that sells its stock out stops selling (demand is
//! censored), fast sellers get a reorder after the supplier's lead time, and returns
//! arrive days after their purchase. Events are written one day at a time, so memory
//! stays bounded whatever the total.

mod catalog;
mod events;
pub mod world;

use std::path::{Path, PathBuf};

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Arc;

use crate::parquet_io::write_parquet;
use crate::source::schema;

pub use catalog::Style;
pub use world::World;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub out: PathBuf,
    pub styles: usize,
    pub days: u32,
    pub seed: u64,
    pub markets: usize,
    /// Approximate total number of events; `None` lets it follow from styles and days.
    pub events: Option<u64>,
    pub start: NaiveDate,
    /// How demand behaves (decay, noisy days, misallocation, reorders).
    pub world: World,
    pub show_progress: bool,
}

/// What was generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    pub styles: usize,
    pub events: u64,
    pub receipts: usize,
    pub first_event: Option<DateTime<Utc>>,
    pub last_event: Option<DateTime<Utc>>,
    pub keeps_in_truth: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid generator setting: {0}")]
    Config(String),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("output directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn write_err(
    path: &Path,
) -> impl FnOnce(parquet::errors::ParquetError) -> GenerateError + '_ {
    move |source| GenerateError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Generates a dataset into `config.out`.
///
/// # Errors
/// Invalid settings (no styles, no days, more markets than known, too few events for
/// the styles), an output directory that already holds events, or a failed write.
pub fn generate(config: &GenerateConfig) -> Result<GenerateSummary, GenerateError> {
    if config.styles == 0 || config.days == 0 {
        return Err(GenerateError::Config(
            "--styles and --days must be at least 1".into(),
        ));
    }
    if config.markets == 0 || config.markets > catalog::MARKETS.len() {
        return Err(GenerateError::Config(format!(
            "--markets must be between 1 and {}",
            catalog::MARKETS.len()
        )));
    }
    let events_dir = config.out.join("events");
    if events_dir.exists() {
        return Err(GenerateError::Config(format!(
            "{} already exists: generate into a new directory",
            events_dir.display()
        )));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let start: DateTime<Utc> = config
        .start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    let mut styles = catalog::make_styles(
        &mut rng,
        config.styles,
        config.days,
        config.markets,
        start,
        &config.world,
    );
    let expected = catalog::calibrate_traffic(&mut styles, config.days, config.events)?;
    std::fs::create_dir_all(&events_dir).map_err(|source| GenerateError::Io {
        path: events_dir.display().to_string(),
        source,
    })?;

    let progress = if config.show_progress {
        let bar = ProgressBar::new(expected);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bar:40} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let sim = events::simulate(&mut rng, &mut styles, config, start, &progress)?;
    progress.finish_and_clear();

    write_catalog(&config.out, &styles)?;
    write_parquet(
        &config.out.join("stock_receipts.parquet"),
        schema::stock_receipts_schema(),
        &[sim.receipts_batch()],
    )
    .map_err(write_err(&config.out.join("stock_receipts.parquet")))?;
    let keeps = write_truth(&config.out, &styles)?;
    write_truth_markets(&config.out, &styles, &config.world)?;
    Ok(GenerateSummary {
        styles: styles.len(),
        events: sim.events,
        receipts: sim.receipts.len(),
        first_event: sim.first_event,
        last_event: sim.last_event,
        keeps_in_truth: keeps,
    })
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn write_catalog(out: &Path, styles: &[Style]) -> Result<(), GenerateError> {
    let col = |f: &dyn Fn(&Style) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(styles.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        col(&|s| s.style_id.clone()),
        col(&|s| s.name.clone()),
        col(&|s| s.category.to_string()),
        col(&|s| s.brand.to_string()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(styles.iter().map(|s| micros(s.launch_at)))
                .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.list_price),
        )),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.unit_cost),
        )),
        Arc::new(Int32Array::from_iter_values(
            styles.iter().map(|s| s.lead_time_days),
        )),
        Arc::new(Int32Array::from_iter_values(styles.iter().map(|s| s.moq))),
    ];
    let path = out.join("styles.parquet");
    let batch = RecordBatch::try_new(schema::styles_schema(), columns)
        .expect("catalog columns match schema");
    write_parquet(&path, schema::styles_schema(), &[batch]).map_err(write_err(&path))
}

/// Writes `truth.parquet`; returns how many styles a perfectly informed buyer keeps.
fn write_truth(out: &Path, styles: &[Style]) -> Result<usize, GenerateError> {
    let rules = crate::decision::Rules::default();
    let keep: Vec<bool> = styles.iter().map(|s| s.truly_keep(&rules)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            styles.iter().map(|s| s.style_id.clone()),
        )),
        Arc::new(StringArray::from_iter_values(
            styles.iter().map(|s| s.category),
        )),
        Arc::new(Int32Array::from_iter_values(
            styles.iter().map(|s| s.test_batch_units()),
        )),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.true_daily_rate()),
        )),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.conversion),
        )),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.return_rate),
        )),
        Arc::new(Float64Array::from_iter_values(
            styles.iter().map(|s| s.non_size_return_rate()),
        )),
        Arc::new(BooleanArray::from(keep.clone())),
    ];
    let path = out.join("truth.parquet");
    let batch =
        RecordBatch::try_new(schema::truth_schema(), columns).expect("truth columns match schema");
    write_parquet(&path, schema::truth_schema(), &[batch]).map_err(write_err(&path))?;
    Ok(keep.iter().filter(|k| **k).count())
}

/// Writes `truth_markets.parquet`: each style's true demand curve per market.
fn write_truth_markets(out: &Path, styles: &[Style], world: &World) -> Result<(), GenerateError> {
    let plans: Vec<(&Style, &catalog::MarketPlan)> = styles
        .iter()
        .flat_map(|s| s.markets.iter().map(move |m| (s, m)))
        .collect();
    let floats = |f: &dyn Fn(&Style, &catalog::MarketPlan) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(plans.iter().map(|(s, m)| f(s, m))))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            plans.iter().map(|(s, _)| s.style_id.clone()),
        )),
        Arc::new(StringArray::from_iter_values(
            plans.iter().map(|(_, m)| m.market),
        )),
        Arc::new(Int32Array::from_iter_values(
            plans.iter().map(|(_, m)| m.batch_units),
        )),
        floats(&|_, m| Some(m.daily_units)),
        floats(&|s, _| s.half_life_days),
        floats(&|_, _| world.day_dispersion),
        floats(&|_, _| Some(world.promotion_share)),
        floats(&|_, _| Some(world.promotion_lift)),
    ];
    let path = out.join(crate::source::TRUTH_MARKETS);
    let batch = RecordBatch::try_new(schema::truth_markets_schema(), columns)
        .expect("truth columns match schema");
    write_parquet(&path, schema::truth_markets_schema(), &[batch]).map_err(write_err(&path))
}

/// The first instant of `day` days after `start`.
pub(crate) fn day_start(start: DateTime<Utc>, day: u32) -> DateTime<Utc> {
    start + Duration::days(i64::from(day))
}
