//! Event-log formats and how each row maps onto assay's `events` (DESIGN.md §1).
//!
//! Each format is one file here: a [`RowFormat`] that turns one CSV record into an
//! [`Event`] or a reason the row is rejected; none of them fails the whole batch for
//! one bad row. A new format is that file plus its variant in [`Format`] (its name on
//! the command line and in config files follows) and its line in [`Format::rows`].

mod canonical;
mod hm;
mod rees46;
mod retailrocket;

use std::borrow::Cow;
use std::collections::HashMap;

use crate::source::schema::EventType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

/// The formats `assay ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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

impl Format {
    /// How rows of this format are read. Parquet files of assay's own columns are read
    /// column by column, but a row that needs checking goes through the CSV reader.
    pub fn rows(self) -> &'static dyn RowFormat {
        match self {
            Self::Rees46 => &rees46::Rees46,
            Self::Retailrocket => &retailrocket::Retailrocket,
            Self::Hm => &hm::Hm,
            Self::EventsCsv | Self::EventsParquet => &canonical::Canonical,
        }
    }

    /// The header columns a file of this format must have.
    pub fn required_columns(self) -> &'static [&'static str] {
        self.rows().required_columns()
    }

    /// Whether the format carries a market of its own.
    pub fn has_market(self) -> bool {
        self.rows().has_market()
    }
}

/// One source format's rows.
pub trait RowFormat: Sync {
    /// The header columns a file of this format must have.
    fn required_columns(&self) -> &'static [&'static str];

    /// Whether rows carry a market of their own; without one, the batch names it.
    fn has_market(&self) -> bool {
        false
    }

    /// Whether a row's meaning depends on the rows before it (see [`RowMemory`]): then
    /// a file is decoded in order by one worker, else in pieces on several.
    fn ordered(&self) -> bool {
        false
    }

    /// Maps one record onto an event. `market` is the batch's market for formats
    /// without one; `memory` is what an [`ordered`](Self::ordered) format keeps of the
    /// rows before.
    ///
    /// # Errors
    /// Why the row is rejected, naming the field and value.
    fn parse<'r>(
        &self,
        header: &Header,
        record: &'r csv::StringRecord,
        market: &'r str,
        memory: &mut RowMemory,
    ) -> Result<Event<'r>, Reject>;
}

/// What an ordered format remembers of the rows before the current one: the group
/// they were in (e.g. a day) and how often each distinct row was seen in it.
#[derive(Debug, Default)]
pub struct RowMemory {
    group: String,
    seen: HashMap<[u8; 16], u32>,
}

impl RowMemory {
    /// Counts one more sighting of the row with digest `key` in `group`, forgetting the
    /// previous group's rows when the group changes; returns the count.
    fn count(&mut self, group: &str, key: [u8; 16]) -> u32 {
        if group != self.group {
            self.seen.clear();
            self.group = group.to_string();
        }
        let n = self.seen.entry(key).or_insert(0);
        *n += 1;
        *n
    }
}

/// One canonical event, borrowing what it can from the record it was read from: it
/// goes into Arrow builders at once, and an owned string per field was a fifth of a
/// CSV ingest's time in allocation alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'r> {
    pub event_id: Cow<'r, str>,
    pub event_time: DateTime<Utc>,
    pub event_type: EventType,
    pub style_id: Cow<'r, str>,
    pub sku_id: Option<Cow<'r, str>>,
    pub size: Option<&'r str>,
    pub user_id: Option<&'r str>,
    pub session_id: Option<&'r str>,
    pub order_id: Option<&'r str>,
    pub quantity: i32,
    pub price: Option<f64>,
    pub market: &'r str,
    pub channel: &'r str,
    pub return_reason: Option<&'r str>,
    /// A category the source names, for a placeholder catalog entry.
    pub category_hint: Option<&'r str>,
    pub brand_hint: Option<&'r str>,
}

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
    /// ahash: every field of every row is looked up here by name.
    index: HashMap<String, usize, ahash::RandomState>,
}

impl Header {
    /// # Errors
    /// A required column of `format` is missing; the message lists what was found.
    pub fn new(record: &csv::StringRecord, format: Format) -> Result<Self, String> {
        let index: HashMap<String, usize, ahash::RandomState> = record
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

/// An event with only its id, time and style: a view of one unit on the web, with no
/// market yet; each source fills in what it has.
pub(crate) fn blank_event<'r>(
    event_id: Cow<'r, str>,
    event_time: DateTime<Utc>,
    style_id: Cow<'r, str>,
) -> Event<'r> {
    Event {
        event_id,
        event_time,
        event_type: EventType::View,
        style_id,
        sku_id: None,
        size: None,
        user_id: None,
        session_id: None,
        order_id: None,
        quantity: 1,
        price: None,
        market: "",
        channel: "web",
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 1 + 2 * short.len() + 4);
    id.push_str(prefix);
    id.push(':');
    for b in short {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    (id, short)
}

fn event_type(value: &str) -> Result<EventType, Reject> {
    EventType::parse(value).ok_or_else(|| {
        Reject::new(
            "unknown event type",
            format!("`{value}` (expected one of {})", EventType::listed()),
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
    if let Some(t) = parse_utc_fast(value) {
        return Ok(t);
    }
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

/// The common shapes of [`parse_time`] without chrono's format machinery (a tenth of
/// a REES46 ingest): `YYYY-MM-DD HH:MM:SS`, then an optional fraction of up to 9
/// digits, then nothing or ` UTC` (after a space), `Z` or `+00:00`; a `T` in the
/// middle only with `Z` or `+00:00`, as RFC 3339 wants. Anything else, a leap second
/// included, is `None` and left to chrono, so the two can only agree.
fn parse_utc_fast(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let (mut rest, mut nanos) = (&b[19..], 0u32);
    if let Some(fraction) = rest.strip_prefix(b".") {
        let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(20..20 + n)? * 10u32.pow(9 - n as u32);
        rest = &fraction[n..];
    }
    let zoned = matches!(rest, b"Z" | b"+00:00");
    let ok = match b[10] {
        b' ' => zoned || rest.is_empty() || rest == b" UTC",
        b'T' => zoned,
        _ => false,
    };
    let time = chrono::NaiveTime::from_hms_nano_opt(
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
        nanos,
    )?;
    ok.then(|| date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn record(fields: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(fields.to_vec())
    }

    /// Parses `row` of `format` under a header of its required columns, in market US.
    pub(super) fn parse(format: Format, row: &csv::StringRecord) -> Result<Event<'_>, Reject> {
        let header = Header::new(&record(format.required_columns()), format).unwrap();
        format
            .rows()
            .parse(&header, row, "US", &mut RowMemory::default())
    }

    #[test]
    fn the_fast_time_shapes_agree_with_chrono() {
        let slow = |v: &str| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    let naive = v.strip_suffix(" UTC").unwrap_or(v);
                    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
                        .ok()
                        .map(|t| t.and_utc())
                })
        };
        for v in [
            "2019-10-01 00:00:04 UTC",
            "2019-10-01 00:00:04",
            "2019-10-01T23:59:59Z",
            "2019-10-01T23:59:59.5Z",
            "2019-10-01 23:59:59.123456789+00:00",
            "2024-02-29 12:00:00",
        ] {
            let fast = parse_utc_fast(v);
            assert!(fast.is_some(), "{v} takes the fast path");
            assert_eq!(fast, slow(v), "{v}");
        }
        for v in [
            "2019-10-01T00:00:04",
            "2019-10-01T00:00:04 UTC",
            "2019-02-29 00:00:00",
            "2019-10-01 24:00:00",
            "2019-10-01 23:59:60",
            "2019-10-01 00:00:04+02:00",
            "2019-10-01 00:00:04.",
            "2019-10-01 00:00:04.1234567890",
            "2019-1a-01 00:00:04",
            "2019-10-01 00:00:04 utc",
        ] {
            assert_eq!(parse_utc_fast(v), None, "{v} is left to chrono");
        }
        // What chrono alone decides is still decided the same way.
        assert_eq!(
            parse_time("2019-10-01 00:00:04+02:00")
                .unwrap()
                .to_rfc3339(),
            "2019-09-30T22:00:04+00:00"
        );
        assert!(parse_time("2019-02-29 00:00:00").is_err());
    }
}
