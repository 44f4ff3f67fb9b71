//! Event-log formats and how each row maps onto assay's `events` (DESIGN.md §1).
//!
//! Every parser turns one CSV record into an [`Event`] or a reason the row is rejected;
//! none of them fails the whole batch for one bad row.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

/// The formats `assay ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// REES46 "eCommerce behavior data" CSV (optionally gzip).
    Rees46,
    /// RetailRocket `events.csv`.
    Retailrocket,
    /// H&M `transactions_train.csv`.
    Hm,
    /// assay's own columns as CSV.
    EventsCsv,
    /// assay's own columns as Parquet.
    EventsParquet,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Ok(match name {
            "rees46" => Self::Rees46,
            "retailrocket" => Self::Retailrocket,
            "hm" => Self::Hm,
            "events-csv" => Self::EventsCsv,
            "events-parquet" => Self::EventsParquet,
            _ => {
                return Err(format!(
                    "unknown format `{name}` (expected rees46, retailrocket, hm, events-csv or events-parquet)"
                ));
            }
        })
    }
}

impl Format {
    /// The header columns a CSV file of this format must have.
    pub fn required_columns(self) -> &'static [&'static str] {
        match self {
            Self::Rees46 => &[
                "event_time",
                "event_type",
                "product_id",
                "category_id",
                "category_code",
                "brand",
                "price",
                "user_id",
                "user_session",
            ],
            Self::Retailrocket => &["timestamp", "visitorid", "event", "itemid", "transactionid"],
            Self::Hm => &[
                "t_dat",
                "customer_id",
                "article_id",
                "price",
                "sales_channel_id",
            ],
            Self::EventsCsv | Self::EventsParquet => &[
                "event_id",
                "event_time",
                "event_type",
                "style_id",
                "quantity",
                "market",
            ],
        }
    }

    /// Whether the format carries a market of its own.
    pub fn has_market(self) -> bool {
        matches!(self, Self::EventsCsv | Self::EventsParquet)
    }
}

/// One canonical event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub event_type: &'static str,
    pub style_id: String,
    pub sku_id: Option<String>,
    pub size: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub order_id: Option<String>,
    pub quantity: i32,
    pub price: Option<f64>,
    pub market: String,
    pub channel: String,
    pub return_reason: Option<String>,
    /// A category the source names, for a placeholder catalog entry.
    pub category_hint: Option<String>,
    pub brand_hint: Option<String>,
}

pub(super) const EVENT_TYPES: [&str; 5] =
    ["view", "cart", "remove_from_cart", "purchase", "return"];
pub(super) const RETURN_REASONS: [&str; 7] = [
    "size_small",
    "size_large",
    "quality",
    "not_as_pictured",
    "changed_mind",
    "damaged",
    "other",
];

/// Why a row was rejected: a kind to count by, and the detail naming field and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub kind: &'static str,
    pub detail: String,
}

impl Reject {
    fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// Column positions of a CSV file's header.
pub struct Header {
    index: HashMap<String, usize>,
}

impl Header {
    /// # Errors
    /// A required column of `format` is missing; the message lists what was found.
    pub fn new(record: &csv::StringRecord, format: Format) -> Result<Self, String> {
        let index: HashMap<String, usize> = record
            .iter()
            .enumerate()
            .map(|(i, name)| (name.trim().trim_start_matches('\u{feff}').to_string(), i))
            .collect();
        let missing: Vec<&str> = format
            .required_columns()
            .iter()
            .copied()
            .filter(|c| !index.contains_key(*c))
            .collect();
        if missing.is_empty() {
            return Ok(Self { index });
        }
        let found: Vec<&str> = record.iter().collect();
        Err(format!(
            "missing column(s) {} (found: {})",
            missing.join(", "),
            found.join(", ")
        ))
    }

    fn get<'r>(&self, record: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        let value = record.get(*self.index.get(name)?)?.trim();
        (!value.is_empty()).then_some(value)
    }

    fn required<'r>(&self, record: &'r csv::StringRecord, name: &str) -> Result<&'r str, Reject> {
        self.get(record, name)
            .ok_or_else(|| Reject::new("missing field", format!("`{name}` is empty")))
    }
}

/// Parses one record of `format`. `market` is the market for formats without one.
/// `occurrence` counts identical H&M lines of a day (each is one more unit sold).
pub fn parse_record(
    format: Format,
    header: &Header,
    record: &csv::StringRecord,
    market: &str,
    occurrences: &mut HashMap<[u8; 16], u32>,
) -> Result<Event, Reject> {
    match format {
        Format::Rees46 => rees46(header, record, market),
        Format::Retailrocket => retailrocket(header, record, market),
        Format::Hm => hm(header, record, market, occurrences),
        Format::EventsCsv | Format::EventsParquet => canonical(header, record),
    }
}

fn blank_event(event_id: String, event_time: DateTime<Utc>, style_id: String) -> Event {
    Event {
        event_id,
        event_time,
        event_type: "view",
        style_id,
        sku_id: None,
        size: None,
        user_id: None,
        session_id: None,
        order_id: None,
        quantity: 1,
        price: None,
        market: String::new(),
        channel: "web".into(),
        return_reason: None,
        category_hint: None,
        brand_hint: None,
    }
}

/// A stable id for a source row without one: the same row always gets the same id, so
/// a row logged twice is dropped as a duplicate.
fn row_id(prefix: &str, record: &csv::StringRecord) -> (String, [u8; 16]) {
    let mut hasher = Sha256::new();
    for field in record {
        hasher.update(field.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    let mut short = [0u8; 16];
    short.copy_from_slice(&digest[..16]);
    let hex: String = short.iter().map(|b| format!("{b:02x}")).collect();
    (format!("{prefix}:{hex}"), short)
}

fn event_type(value: &str) -> Result<&'static str, Reject> {
    EVENT_TYPES
        .iter()
        .copied()
        .find(|t| *t == value)
        .ok_or_else(|| {
            Reject::new(
                "unknown event type",
                format!("`{value}` (expected one of {})", EVENT_TYPES.join(", ")),
            )
        })
}

fn price(value: Option<&str>) -> Result<Option<f64>, Reject> {
    let Some(value) = value else { return Ok(None) };
    match value.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
        _ => Err(Reject::new(
            "bad price",
            format!("`{value}` is not a non-negative number"),
        )),
    }
}

/// Times as the sources write them: RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` with an optional
/// ` UTC` (REES46), or a date alone (midnight UTC).
pub fn parse_time(value: &str) -> Result<DateTime<Utc>, Reject> {
    let bad = || {
        Reject::new(
            "bad time",
            format!("`{value}` is not RFC 3339, `YYYY-MM-DD HH:MM:SS[ UTC]` or `YYYY-MM-DD`"),
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = value.strip_suffix(" UTC").unwrap_or(value);
    if let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| bad())
}

fn rees46(h: &Header, r: &csv::StringRecord, market: &str) -> Result<Event, Reject> {
    let time = parse_time(h.required(r, "event_time")?)?;
    let kind = event_type(h.required(r, "event_type")?)?;
    let style = h.required(r, "product_id")?.to_string();
    let (id, _) = row_id("rees46", r);
    let mut e = blank_event(id, time, style);
    e.event_type = kind;
    e.user_id = Some(h.required(r, "user_id")?.to_string());
    e.session_id = h.get(r, "user_session").map(str::to_string);
    // A REES46 purchase has no order id; the session groups one checkout.
    if kind == "purchase" {
        e.order_id = e.session_id.clone();
    }
    e.price = price(h.get(r, "price"))?;
    e.market = market.to_string();
    e.category_hint = h
        .get(r, "category_code")
        .or_else(|| h.get(r, "category_id"))
        .map(str::to_string);
    e.brand_hint = h.get(r, "brand").map(str::to_string);
    Ok(e)
}

fn retailrocket(h: &Header, r: &csv::StringRecord, market: &str) -> Result<Event, Reject> {
    let raw_time = h.required(r, "timestamp")?;
    let millis: i64 = raw_time.parse().map_err(|_| {
        Reject::new(
            "bad time",
            format!("timestamp `{raw_time}` is not milliseconds since the epoch"),
        )
    })?;
    let time = DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        Reject::new(
            "bad time",
            format!("timestamp `{raw_time}` is out of range"),
        )
    })?;
    let kind = match h.required(r, "event")? {
        "view" => "view",
        "addtocart" => "cart",
        "transaction" => "purchase",
        other => {
            return Err(Reject::new(
                "unknown event type",
                format!("`{other}` (expected view, addtocart or transaction)"),
            ));
        }
    };
    let (id, _) = row_id("retailrocket", r);
    let mut e = blank_event(id, time, h.required(r, "itemid")?.to_string());
    e.event_type = kind;
    e.user_id = Some(h.required(r, "visitorid")?.to_string());
    e.order_id = h.get(r, "transactionid").map(str::to_string);
    e.market = market.to_string();
    Ok(e)
}

fn hm(
    h: &Header,
    r: &csv::StringRecord,
    market: &str,
    occurrences: &mut HashMap<[u8; 16], u32>,
) -> Result<Event, Reject> {
    let day = h.required(r, "t_dat")?;
    let time = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| Reject::new("bad time", format!("t_dat `{day}` is not YYYY-MM-DD")))?
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let article = h.required(r, "article_id")?;
    if !article.bytes().all(|b| b.is_ascii_digit()) || article.len() > 10 {
        return Err(Reject::new(
            "bad id",
            format!("article_id `{article}` is not up to 10 digits"),
        ));
    }
    // Spreadsheets drop the leading zero of H&M's 10-digit article ids.
    let article = format!("{article:0>10}");
    let (id, key) = row_id("hm", r);
    // Identical lines are several units of one article bought the same day.
    let n = occurrences.entry(key).or_insert(0);
    *n += 1;
    let mut e = blank_event(format!("{id}#{n}"), time, article[..7].to_string());
    e.event_type = "purchase";
    e.sku_id = Some(article);
    e.user_id = Some(h.required(r, "customer_id")?.to_string());
    e.price = Some(price(Some(h.required(r, "price")?))?.unwrap_or_default());
    e.channel = match h.required(r, "sales_channel_id")? {
        "1" => "store".into(),
        "2" => "web".into(),
        other => {
            return Err(Reject::new(
                "bad channel",
                format!("sales_channel_id `{other}` is not 1 or 2"),
            ));
        }
    };
    e.market = market.to_string();
    Ok(e)
}

fn canonical(h: &Header, r: &csv::StringRecord) -> Result<Event, Reject> {
    let time = parse_time(h.required(r, "event_time")?)?;
    let kind = event_type(h.required(r, "event_type")?)?;
    let mut e = blank_event(
        h.required(r, "event_id")?.to_string(),
        time,
        h.required(r, "style_id")?.to_string(),
    );
    e.event_type = kind;
    let quantity = h.required(r, "quantity")?;
    e.quantity = match quantity.parse::<i32>() {
        Ok(q) if q >= 1 => q,
        _ => {
            return Err(Reject::new(
                "bad quantity",
                format!("`{quantity}` is not a whole number ≥ 1"),
            ));
        }
    };
    e.price = price(h.get(r, "price"))?;
    e.market = h.required(r, "market")?.to_string();
    if e.market == "ALL" {
        return Err(Reject::new(
            "bad market",
            "`ALL` is reserved for the pooled rows",
        ));
    }
    if let Some(channel) = h.get(r, "channel") {
        e.channel = channel.to_string();
    }
    let text = |name: &str| h.get(r, name).map(str::to_string);
    (e.sku_id, e.size, e.user_id) = (text("sku_id"), text("size"), text("user_id"));
    (e.session_id, e.order_id) = (text("session_id"), text("order_id"));
    e.return_reason = text("return_reason");
    if let Some(reason) = &e.return_reason
        && !RETURN_REASONS.contains(&reason.as_str())
    {
        return Err(Reject::new(
            "bad return reason",
            format!("`{reason}` is not one of {}", RETURN_REASONS.join(", ")),
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    #[test]
    fn rees46_times_and_types() {
        let h = Header::new(&record(Format::Rees46.required_columns()), Format::Rees46).unwrap();
        let row = record(&[
            "2019-10-01 00:00:04 UTC",
            "purchase",
            "0044600062",
            "2103807459595387724",
            "",
            "shiseido",
            "35.79",
            "541312140",
            "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        ]);
        let e = parse_record(Format::Rees46, &h, &row, "US", &mut HashMap::new()).unwrap();
        assert_eq!(e.event_time.to_rfc3339(), "2019-10-01T00:00:04+00:00");
        assert_eq!(e.style_id, "0044600062");
        assert_eq!(
            e.order_id.as_deref(),
            Some("72d76fde-8bb3-4e00-8c23-a032dfed738c")
        );
        assert_eq!(e.category_hint.as_deref(), Some("2103807459595387724"));
        let mut bad = row.clone();
        bad = record(
            &bad.iter()
                .enumerate()
                .map(|(i, f)| if i == 6 { "abc" } else { f })
                .collect::<Vec<_>>(),
        );
        let err = parse_record(Format::Rees46, &h, &bad, "US", &mut HashMap::new()).unwrap_err();
        assert_eq!(err.kind, "bad price");
        assert!(err.detail.contains("`abc`"), "{err}");
    }

    #[test]
    fn identical_hm_lines_are_separate_units() {
        let h = Header::new(&record(Format::Hm.required_columns()), Format::Hm).unwrap();
        let row = record(&["2018-09-20", "c1", "663713001", "0.0508", "2"]);
        let mut seen = HashMap::new();
        let a = parse_record(Format::Hm, &h, &row, "SE", &mut seen).unwrap();
        let b = parse_record(Format::Hm, &h, &row, "SE", &mut seen).unwrap();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.style_id, "0663713");
        assert_eq!(a.sku_id.as_deref(), Some("0663713001"));
    }
}
