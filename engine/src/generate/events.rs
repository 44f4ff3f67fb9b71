//! Day-by-day simulation of customers, stock and returns, written as event partitions.

use std::sync::Arc;

use crate::source::schema::EventType;
use arrow::array::{ArrayRef, Int32Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, Duration, Utc};
use indicatif::ProgressBar;
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma, Poisson};

use super::catalog::{REMOVE_SHARE, SOLD_OUT_VIEW_SHARE, Style};
use super::{GenerateConfig, GenerateError, day_start, write_err};
use crate::ingest::EventColumns;
use crate::ingest::formats::blank_event;
use crate::parquet_io::AtomicParquetFile;
use crate::source::schema;

/// Monday … Sunday traffic relative to the week's mean.
const WEEKDAY: [f64; 7] = [0.92, 0.86, 0.9, 0.95, 1.08, 1.22, 1.07];
const SIZES: [&str; 5] = ["XS", "S", "M", "L", "XL"];
const BATCH_ROWS: usize = 64 * 1024;
const MICROS_PER_DAY: i64 = 86_400_000_000;

pub struct Receipt {
    pub style_id: String,
    pub market: &'static str,
    pub at: i64,
    pub units: i32,
    pub batch: i32,
}

pub struct Simulation {
    pub events: u64,
    pub receipts: Vec<Receipt>,
    pub first_event: Option<DateTime<Utc>>,
    pub last_event: Option<DateTime<Utc>>,
}

impl Simulation {
    pub fn receipts_batch(&self) -> RecordBatch {
        let mut style = StringBuilder::new();
        let mut market = StringBuilder::new();
        let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut units = Int32Builder::new();
        let mut batch = Int32Builder::new();
        for r in &self.receipts {
            style.append_value(&r.style_id);
            market.append_value(r.market);
            at.append_value(r.at);
            units.append_value(r.units);
            batch.append_value(r.batch);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(style.finish()),
            Arc::new(market.finish()),
            Arc::new(at.finish()),
            Arc::new(units.finish()),
            Arc::new(batch.finish()),
        ];
        RecordBatch::try_new(schema::stock_receipts_schema(), columns)
            .expect("receipt columns match schema")
    }
}

struct PendingReturn {
    at: i64,
    quantity: i32,
    reason: &'static str,
    order_id: String,
    user_id: String,
    size: &'static str,
    price: f64,
}

/// Stock and pending flows of one style in one market.
#[derive(Default)]
struct MarketState {
    on_hand: i64,
    sold: i64,
    reordered: bool,
    receipts_due: Vec<(i64, i32, i32)>,
    returns_due: Vec<PendingReturn>,
}

enum Happening {
    Receipt(i32),
    Return(PendingReturn),
    View,
}

pub fn simulate(
    rng: &mut StdRng,
    styles: &mut [Style],
    config: &GenerateConfig,
    start: DateTime<Utc>,
    progress: &ProgressBar,
) -> Result<Simulation, GenerateError> {
    let mut states: Vec<Vec<MarketState>> = styles
        .iter()
        .map(|s| {
            s.markets
                .iter()
                .map(|m| MarketState {
                    on_hand: i64::from(m.batch_units),
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    let mut receipts: Vec<Receipt> = Vec::new();
    for s in styles.iter() {
        for m in &s.markets {
            let at = s.launch_at - Duration::hours(rng.random_range(2..30));
            receipts.push(Receipt {
                style_id: s.style_id.clone(),
                market: m.market,
                at: at.timestamp_micros(),
                units: m.batch_units,
                batch: 0,
            });
        }
    }
    let user_pool = (progress.length().unwrap_or(0) / 40).clamp(1000, 5_000_000);
    let return_lag = Gamma::new(3.0, 3.5).expect("valid");
    let world = &config.world;
    let day_factor = world
        .day_dispersion
        .map(|k| Gamma::new(k, 1.0 / k).expect("a positive dispersion"));
    let mut total = 0_u64;
    let (mut first, mut last) = (i64::MAX, i64::MIN);

    for day in 0..config.days {
        let day_begin = day_start(start, day);
        let date = day_begin.date_naive();
        let season = WEEKDAY[day_begin.weekday().num_days_from_monday() as usize];
        let dir = config.out.join("events").join(format!("event_date={date}"));
        let path = dir.join("part-0.parquet");
        let mut out = DayWriter::new(&path, date.format("%Y%m%d").to_string());
        let (begin, end) = (
            day_begin.timestamp_micros(),
            day_begin.timestamp_micros() + MICROS_PER_DAY,
        );

        for (si, style) in styles.iter().enumerate() {
            if style.launch_day > day {
                continue;
            }
            let active_from = begin.max(style.launch_at.timestamp_micros());
            let active_share = (end - active_from) as f64 / MICROS_PER_DAY as f64;
            for (mi, plan) in style.markets.iter().enumerate() {
                let state = &mut states[si][mi];
                let mut happenings: Vec<(i64, Happening)> = Vec::new();
                for (at, units, batch) in std::mem::take(&mut state.receipts_due) {
                    if at < end {
                        happenings.push((at, Happening::Receipt(units)));
                        receipts.push(Receipt {
                            style_id: style.style_id.clone(),
                            market: plan.market,
                            at,
                            units,
                            batch,
                        });
                    } else {
                        state.receipts_due.push((at, units, batch));
                    }
                }
                for r in std::mem::take(&mut state.returns_due) {
                    if r.at < end {
                        happenings.push((r.at, Happening::Return(r)));
                    } else {
                        state.returns_due.push(r);
                    }
                }
                // The world's demand today: the launch rate down its decay curve (at the
                // middle of the day's selling hours), times the day's own noise and any
                // promotion. The default world draws none of these.
                let age_days = ((active_from + end) / 2 - style.launch_at.timestamp_micros())
                    as f64
                    / MICROS_PER_DAY as f64;
                let mut demand = plan.daily_units * style.decay_at(age_days);
                if let Some(factor) = &day_factor {
                    demand *= factor.sample(rng);
                }
                if world.promotion_share > 0.0 && rng.random_bool(world.promotion_share) {
                    demand *= world.promotion_lift;
                }
                let expected_views = demand / super::catalog::UNITS_PER_ORDER / style.conversion
                    * season
                    * active_share;
                let views = poisson(rng, expected_views);
                for _ in 0..views {
                    happenings.push((rng.random_range(active_from..end), Happening::View));
                }
                happenings.sort_by_key(|(t, _)| *t);
                for (at, happening) in happenings {
                    match happening {
                        Happening::Receipt(units) => state.on_hand += i64::from(units),
                        Happening::Return(r) => {
                            if !matches!(r.reason, "damaged" | "quality") {
                                state.on_hand += i64::from(r.quantity);
                            }
                            out.push(Row {
                                at: r.at,
                                kind: EventType::Return,
                                style,
                                market: plan.market,
                                size: Some(r.size),
                                user: Some(r.user_id),
                                session: None,
                                order: Some(r.order_id),
                                quantity: r.quantity,
                                price: Some(r.price),
                                channel: "web",
                                reason: Some(r.reason),
                            });
                        }
                        Happening::View => {
                            let in_stock = state.on_hand > 0;
                            if !in_stock && !rng.random_bool(SOLD_OUT_VIEW_SHARE) {
                                continue;
                            }
                            let user =
                                format!("{}-{:07}", plan.market, rng.random_range(0..user_pool));
                            // One session per customer and day: structured ids compress well.
                            let session = format!("{user}:{}", out.day_tag);
                            let channel = if rng.random_bool(0.6) { "app" } else { "web" };
                            let size = if style.category == "accessories" {
                                "ONE"
                            } else {
                                SIZES[rng.random_range(0..SIZES.len())]
                            };
                            let view = |kind, at, quantity| Row {
                                at,
                                kind,
                                style,
                                market: plan.market,
                                size: Some(size),
                                user: Some(user.clone()),
                                session: Some(session.clone()),
                                order: None,
                                quantity,
                                price: Some(style.list_price),
                                channel,
                                reason: None,
                            };
                            out.push(view(EventType::View, at, 1));
                            let cart_prob = (style.conversion * style.carts_per_order).min(0.95);
                            if !in_stock || !rng.random_bool(cart_prob) {
                                continue;
                            }
                            let cart_at =
                                (at + rng.random_range(5_000_000..300_000_000)).min(end - 2);
                            out.push(view(EventType::Cart, cart_at, 1));
                            if rng.random_bool(1.0 / style.carts_per_order) {
                                let quantity = if rng.random_bool(0.1) { 2 } else { 1 }
                                    .min(state.on_hand)
                                    as i32;
                                let bought_at = (cart_at + rng.random_range(1_000_000..60_000_000))
                                    .min(end - 1);
                                let order_id = format!("O{}-{:08}", out.day_tag, out.rows);
                                let mut row = view(EventType::Purchase, bought_at, quantity);
                                row.order = Some(order_id.clone());
                                out.push(row);
                                state.on_hand -= i64::from(quantity);
                                state.sold += i64::from(quantity);
                                if rng.random_bool(style.return_rate) {
                                    let lag_days = 1.0 + return_lag.sample(rng);
                                    state.returns_due.push(PendingReturn {
                                        at: bought_at + (lag_days * MICROS_PER_DAY as f64) as i64,
                                        quantity,
                                        reason: return_reason(rng, style.size_return_share),
                                        order_id,
                                        user_id: user.clone(),
                                        size,
                                        price: style.list_price,
                                    });
                                }
                            } else if rng.random_bool(REMOVE_SHARE) {
                                out.push(view(
                                    EventType::RemoveFromCart,
                                    (cart_at + 60_000_000).min(end - 1),
                                    1,
                                ));
                            }
                        }
                    }
                }
                // A fast seller gets a reorder of its test batch after the lead time.
                if world.auto_reorders
                    && !state.reordered
                    && day - style.launch_day <= 21
                    && state.sold as f64 >= 0.6 * f64::from(plan.batch_units)
                {
                    state.reordered = true;
                    let arrive = end
                        + i64::from(style.lead_time_days) * MICROS_PER_DAY
                        + rng.random_range(0..MICROS_PER_DAY);
                    state.receipts_due.push((arrive, plan.batch_units, 1));
                }
            }
        }
        let (rows, lo, hi) = out.finish()?;
        if rows > 0 {
            first = first.min(lo);
            last = last.max(hi);
        }
        total += rows;
        progress.set_position(total);
    }
    let to_time = |t: i64| DateTime::<Utc>::from_timestamp_micros(t);
    Ok(Simulation {
        events: total,
        receipts,
        first_event: if total > 0 { to_time(first) } else { None },
        last_event: if total > 0 { to_time(last) } else { None },
    })
}

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean)
        .map(|p| p.sample(rng) as u64)
        .unwrap_or(0)
}

fn return_reason(rng: &mut StdRng, size_share: f64) -> &'static str {
    if rng.random_bool(size_share) {
        return if rng.random_bool(0.5) {
            "size_small"
        } else {
            "size_large"
        };
    }
    const OTHER: [(&str, f64); 5] = [
        ("quality", 0.3),
        ("not_as_pictured", 0.25),
        ("changed_mind", 0.3),
        ("damaged", 0.1),
        ("other", 0.05),
    ];
    let mut x: f64 = rng.random();
    for (reason, w) in OTHER {
        if x < w {
            return reason;
        }
        x -= w;
    }
    "other"
}

struct Row<'a> {
    at: i64,
    kind: EventType,
    style: &'a Style,
    market: &'static str,
    size: Option<&'static str>,
    user: Option<String>,
    session: Option<String>,
    order: Option<String>,
    quantity: i32,
    price: Option<f64>,
    channel: &'static str,
    reason: Option<&'static str>,
}

/// Buffers one day's events and streams them into that day's partition file.
struct DayWriter<'p> {
    path: &'p std::path::Path,
    day_tag: String,
    file: Option<AtomicParquetFile>,
    rows: u64,
    lo: i64,
    hi: i64,
    columns: EventColumns,
    /// The first write error, reported by `finish` (pushing rows cannot fail).
    error: Option<GenerateError>,
}

impl<'p> DayWriter<'p> {
    fn new(path: &'p std::path::Path, day_tag: String) -> Self {
        Self {
            path,
            day_tag,
            file: None,
            rows: 0,
            lo: i64::MAX,
            hi: i64::MIN,
            columns: EventColumns::new(),
            error: None,
        }
    }

    fn push(&mut self, row: Row<'_>) {
        let at = DateTime::from_timestamp_micros(row.at).expect("a generated instant");
        let event_id = format!("E{}-{:09}", self.day_tag, self.rows);
        let style = row.style.style_id.as_str();
        let mut e = blank_event(event_id.into(), at, style.into());
        e.event_type = row.kind;
        e.sku_id = row.size.map(|s| format!("{style}-{s}").into());
        e.size = row.size;
        (e.user_id, e.session_id) = (row.user.as_deref(), row.session.as_deref());
        e.order_id = row.order.as_deref();
        (e.quantity, e.price) = (row.quantity, row.price);
        (e.market, e.channel, e.return_reason) = (row.market, row.channel, row.reason);
        self.columns.push(&e);
        self.rows += 1;
        self.lo = self.lo.min(row.at);
        self.hi = self.hi.max(row.at);
        if self.columns.len() >= BATCH_ROWS
            && self.error.is_none()
            && let Err(e) = self.flush()
        {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) -> Result<(), GenerateError> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let batch = self.columns.finish().expect("event columns match schema");
        let path = self.path;
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                AtomicParquetFile::create(path, schema::events_file_schema())
                    .map_err(write_err(path))?,
            ),
        };
        file.write(&batch).map_err(write_err(path))
    }

    /// Publishes the day's file; returns (rows, first, last event time).
    fn finish(mut self) -> Result<(u64, i64, i64), GenerateError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.flush()?;
        if let Some(file) = self.file.take() {
            file.publish().map_err(write_err(self.path))?;
        }
        Ok((self.rows, self.lo, self.hi))
    }
}
