//! The expected schemas of assay's input tables (DESIGN.md §1), and the check that a
//! file's schema can be read as them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Timestamps are microseconds in UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// What an event records: the values `events.event_type` may hold (DESIGN.md §1). The
/// SQL views spell them as literals; everything in Rust goes through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    View,
    Cart,
    RemoveFromCart,
    Purchase,
    Return,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::View,
        EventType::Cart,
        EventType::RemoveFromCart,
        EventType::Purchase,
        EventType::Return,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Cart => "cart",
            EventType::RemoveFromCart => "remove_from_cart",
            EventType::Purchase => "purchase",
            EventType::Return => "return",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// `view, cart, …`: for messages naming what was expected.
    pub fn listed() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// One `events/event_date=…/*.parquet` file (the partition column is not in the file).
pub fn events_file_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_time", timestamp_type(), false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("style_id", DataType::Utf8, false),
        Field::new("sku_id", DataType::Utf8, true),
        Field::new("size", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("session_id", DataType::Utf8, true),
        Field::new("order_id", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, false),
        Field::new("price", DataType::Float64, true),
        Field::new("market", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("return_reason", DataType::Utf8, true),
    ]))
}

/// The `events` table as queries see it: the files' columns, strings read as
/// `Utf8View`. Short ids (styles, markets, event types) then sit inline in each row's
/// view, so a join or a grouping on them neither copies nor chases string buffers.
pub fn events_table_schema() -> SchemaRef {
    with_views(&events_file_schema())
}

/// `schema` with its strings as `Utf8View`: how every input table is read. A join of
/// events to the catalog then takes the catalog's ids and categories into each joined
/// row as 16-byte views, not as copied strings.
pub fn with_views(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `styles.parquet`, the catalog.
pub fn styles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("style_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, false),
        Field::new("brand", DataType::Utf8, true),
        Field::new("launch_at", timestamp_type(), false),
        Field::new("list_price", DataType::Float64, false),
        Field::new("unit_cost", DataType::Float64, false),
        Field::new("lead_time_days", DataType::Int32, false),
        Field::new("moq", DataType::Int32, false),
    ]))
}

/// `stock_receipts.parquet`.
pub fn stock_receipts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("style_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("received_at", timestamp_type(), false),
        Field::new("units", DataType::Int32, false),
        Field::new("batch", DataType::Int32, false),
    ]))
}

/// `truth.parquet`, written only by the generator: what a perfectly informed buyer knows.
pub fn truth_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("style_id", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("test_batch_units", DataType::Int32, false),
        Field::new("true_daily_rate", DataType::Float64, false),
        Field::new("true_conversion", DataType::Float64, false),
        Field::new("true_return_rate", DataType::Float64, false),
        Field::new("true_non_size_return_rate", DataType::Float64, false),
        Field::new("keep", DataType::Boolean, false),
    ]))
}

/// `truth_markets.parquet`, written only by the generator: each style's true demand in
/// each market, from which the backtest simulates what any reorder would have sold.
/// Demand at age `a` days is `initial_rate · 2^(−a / half_life_days)` units/day
/// (no decay where `half_life_days` is NULL), times a Gamma(k, 1/k) day factor with
/// `k = day_dispersion` (Poisson days where NULL), times `promotion_lift` on the share
/// `promotion_share` of days.
pub fn truth_markets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("style_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("test_batch_units", DataType::Int32, false),
        Field::new("initial_rate", DataType::Float64, false),
        Field::new("half_life_days", DataType::Float64, true),
        Field::new("day_dispersion", DataType::Float64, true),
        Field::new("promotion_share", DataType::Float64, false),
        Field::new("promotion_lift", DataType::Float64, false),
    ]))
}

/// Why a file's column cannot be read as the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnProblem {
    Missing {
        column: String,
        expected: String,
    },
    WrongType {
        column: String,
        expected: String,
        found: String,
    },
}

/// Compares a file's schema with the expected one. Types are checked by family, so a
/// file written with `Utf8View`, `LargeUtf8`, another integer width or another timestamp
/// unit is accepted (DataFusion casts it on read), but a string where a number belongs,
/// or a timestamp without a time zone, is not. Extra columns are ignored.
pub fn check_schema(found: &Schema, expected: &Schema) -> Vec<ColumnProblem> {
    expected
        .fields()
        .iter()
        .filter_map(|want| match found.field_with_name(want.name()) {
            Err(_) => Some(ColumnProblem::Missing {
                column: want.name().clone(),
                expected: describe(want.data_type()),
            }),
            Ok(have) if !compatible(have.data_type(), want.data_type()) => {
                Some(ColumnProblem::WrongType {
                    column: want.name().clone(),
                    expected: describe(want.data_type()),
                    found: have.data_type().to_string(),
                })
            }
            Ok(_) => None,
        })
        .collect()
}

fn compatible(have: &DataType, want: &DataType) -> bool {
    use DataType::*;
    match (have, want) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8) => true,
        (Dictionary(_, value), Utf8) => compatible(value, want),
        (Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32, Int32) => true,
        (Float32 | Float64, Float64) => true,
        (Timestamp(_, Some(tz)), Timestamp(_, Some(_))) => is_utc(tz),
        (a, b) => a == b,
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "+00:00" | "Z" | "Etc/UTC" | "utc")
}

fn describe(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "a string (Utf8)".into(),
        DataType::Int32 => "an integer (Int32)".into(),
        DataType::Float64 => "a number (Float64)".into(),
        DataType::Timestamp(_, _) => "a UTC timestamp (Timestamp(µs, \"UTC\"))".into(),
        other => other.to_string(),
    }
}

impl std::fmt::Display for ColumnProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnProblem::Missing { column, expected } => {
                write!(f, "column `{column}` is missing (expected {expected})")
            }
            ColumnProblem::WrongType {
                column,
                expected,
                found,
            } => write!(f, "column `{column}` is {found}, expected {expected}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_compatible_and_names_problems() {
        let found = Schema::new(vec![
            Field::new("style_id", DataType::Utf8View, false),
            Field::new("market", DataType::Int64, false),
            Field::new(
                "received_at",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                false,
            ),
            Field::new("units", DataType::Int64, false),
        ]);
        let problems = check_schema(&found, &stock_receipts_schema());
        assert_eq!(
            problems,
            vec![
                ColumnProblem::WrongType {
                    column: "market".into(),
                    expected: "a string (Utf8)".into(),
                    found: "Int64".into()
                },
                ColumnProblem::Missing {
                    column: "batch".into(),
                    expected: "an integer (Int32)".into()
                },
            ]
        );
        assert_eq!(
            problems[1].to_string(),
            "column `batch` is missing (expected an integer (Int32))"
        );
    }

    #[test]
    fn rejects_naive_timestamps() {
        let found = Schema::new(vec![Field::new(
            "received_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        )]);
        let problems = check_schema(&found, &stock_receipts_schema());
        assert!(
            problems.iter().any(
                |p| matches!(p, ColumnProblem::WrongType { column, .. } if column == "received_at")
            ),
            "{problems:?}"
        );
    }
}
