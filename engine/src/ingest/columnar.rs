//! Canonical Parquet rows checked a column at a time.
//!
//! A row whose every field is valid exactly as it stands (a known event type, a quantity
//! of at least 1, no text that would be trimmed, no empty optional text, …) goes to the
//! stager inside an Arrow batch, with no per-row parsing or copying into strings. Every
//! other row takes the per-row path of `formats`, so what is rejected, why, and how an
//! odd but valid row is cleaned stay one set of rules: this module only decides which
//! rows need them.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::{cast, filter};
use arrow::datatypes::{DataType, TimeUnit};

use super::formats::RETURN_REASONS;
use crate::error::Result;
use crate::source::schema;
use crate::source::schema::EventType;

/// A source batch split in two.
pub(super) struct Split {
    /// The rows that are valid as they stand, in the events file schema.
    pub clean: RecordBatch,
    /// Positions in the source batch of the rows the per-row path must look at.
    pub others: Vec<usize>,
}

/// The batch's columns in the types of the events file schema, by name (`None`: the
/// source lacks that optional column).
struct Conformed {
    columns: Vec<Option<ArrayRef>>,
}

/// Splits `batch`, or `None` when its column types do not allow a column-wise check
/// (then every row takes the per-row path).
pub(super) fn split(batch: &RecordBatch) -> Result<Option<Split>> {
    let Some(c) = conform(batch)? else {
        return Ok(None);
    };
    let texts = |name: &str| c.get(name).map(|a| a.as_string::<i32>().clone());
    let required = |name: &str| texts(name).expect("required columns exist");
    let (ids, types, styles, markets) = (
        required("event_id"),
        required("event_type"),
        required("style_id"),
        required("market"),
    );
    let optional: Vec<StringArray> = ["sku_id", "size", "user_id", "session_id", "order_id"]
        .iter()
        .filter_map(|name| texts(name))
        .collect();
    let (channels, reasons) = (texts("channel"), texts("return_reason"));
    let times = c.get("event_time").expect("required");
    let times: &TimestampMicrosecondArray = times.as_primitive();
    let quantity = c.get("quantity").expect("required");
    let quantity: &Int32Array = quantity.as_primitive();
    let prices = c
        .get("price")
        .map(|a| a.as_primitive::<arrow::datatypes::Float64Type>().clone());

    let (min_us, max_us) = (
        chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_micros(),
        chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_micros(),
    );
    let n = batch.num_rows();
    let mut keep = Vec::with_capacity(n);
    let mut others = Vec::new();
    for i in 0..n {
        let ok = plain(&ids, i)
            && plain(&styles, i)
            && plain(&markets, i)
            && markets.value(i) != "ALL"
            && types.is_valid(i)
            && EventType::parse(types.value(i)).is_some()
            && times.is_valid(i)
            // Beyond chrono's range (±262,000 years) the per-row path says why.
            && (min_us..=max_us).contains(&times.value(i))
            && quantity.is_valid(i)
            && quantity.value(i) >= 1
            && prices
                .as_ref()
                .is_none_or(|p| p.is_null(i) || (p.value(i).is_finite() && p.value(i) >= 0.0))
            && channels
                .as_ref()
                .is_none_or(|a| a.is_null(i) || plain(a, i))
            && optional.iter().all(|a| a.is_null(i) || plain(a, i))
            && reasons
                .as_ref()
                .is_none_or(|a| a.is_null(i) || RETURN_REASONS.contains(&a.value(i)));
        keep.push(ok);
        if !ok {
            others.push(i);
        }
    }
    let keep = BooleanArray::from(keep);
    let kept = n - others.len();
    let target = schema::events_file_schema();
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = match c.get(field.name()) {
            // Every row valid (the usual case): the columns as they are, uncopied.
            Some(array) if others.is_empty() => Arc::clone(array),
            Some(array) => filter(array.as_ref(), &keep)?,
            None => new_null_array(field.data_type(), kept),
        };
        // The per-row path's default for a missing channel.
        let column = if field.name() == "channel" && column.null_count() > 0 {
            let filled: StringArray = column
                .as_string::<i32>()
                .iter()
                .map(|v| Some(v.unwrap_or("web")))
                .collect();
            Arc::new(filled) as ArrayRef
        } else {
            column
        };
        columns.push(column);
    }
    Ok(Some(Split {
        clean: RecordBatch::try_new(target, columns)?,
        others,
    }))
}

/// Non-empty text that trimming would leave as it is.
fn plain(a: &StringArray, i: usize) -> bool {
    a.is_valid(i) && {
        let text = a.value(i);
        // A visible ASCII character at each end settles it; other ends ask `trim`,
        // whose whitespace is Unicode's (a vertical tab or U+3000 too).
        let settled = |b: u8| b.is_ascii_graphic();
        match (text.as_bytes().first(), text.as_bytes().last()) {
            (Some(&first), Some(&last)) if settled(first) && settled(last) => true,
            (Some(_), _) => text.trim() == text,
            (None, _) => false,
        }
    }
}

impl Conformed {
    fn get(&self, name: &str) -> Option<&ArrayRef> {
        let index = schema::events_file_schema().index_of(name).ok()?;
        self.columns[index].as_ref()
    }
}

/// The batch's columns cast to the events file schema's types where that cannot change
/// a value the per-row path would read; `None` when a column's type does not allow it.
fn conform(batch: &RecordBatch) -> Result<Option<Conformed>> {
    let target = schema::events_file_schema();
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let Ok(index) = batch.schema().index_of(field.name()) else {
            if field.is_nullable() || field.name() == "channel" {
                columns.push(None);
                continue;
            }
            return Ok(None);
        };
        let column = batch.column(index);
        let castable = match (field.data_type(), column.data_type()) {
            (DataType::Utf8, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => true,
            // Any unit of an instant in UTC: the per-row path reads the same instant
            // from its text (sub-microsecond digits are dropped either way).
            (DataType::Timestamp(TimeUnit::Microsecond, _), DataType::Timestamp(_, Some(tz))) => {
                matches!(tz.as_ref(), "UTC" | "+00:00" | "Z")
            }
            // A value that does not fit becomes null here, and is rejected per row.
            (DataType::Int32, t) => t.is_integer(),
            // Only f64 itself: an f32 printed and read back is not the f32 widened.
            (DataType::Float64, DataType::Float64) => true,
            _ => false,
        };
        if !castable {
            return Ok(None);
        }
        columns.push(Some(if column.data_type() == field.data_type() {
            Arc::clone(column)
        } else {
            cast(column.as_ref(), field.data_type())?
        }));
    }
    Ok(Some(Conformed { columns }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn text(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn only_rows_valid_as_they_stand_pass_and_the_rest_go_per_row() {
        let n = 7;
        let b = batch(vec![
            (
                "event_id",
                text(&[
                    Some("a"),
                    Some(" b"),
                    Some("c"),
                    Some("d"),
                    Some("e"),
                    Some("f"),
                    Some("g"),
                ]),
            ),
            (
                "event_time",
                Arc::new(TimestampMillisecondArray::from(vec![1_000i64; n]).with_timezone("UTC")),
            ),
            (
                "event_type",
                text(&[
                    Some("view"),
                    Some("view"),
                    Some("click"),
                    Some("purchase"),
                    Some("view"),
                    Some("return"),
                    Some("view"),
                ]),
            ),
            ("style_id", text(&[Some("S1"); 7])),
            (
                "quantity",
                Arc::new(Int64Array::from(vec![1, 1, 1, 0, 1, 1, 5_000_000_000])),
            ),
            (
                "price",
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                ])),
            ),
            (
                "market",
                text(&[
                    Some("US"),
                    Some("US"),
                    Some("US"),
                    Some("US"),
                    Some("ALL"),
                    Some("US"),
                    Some("US"),
                ]),
            ),
            (
                "return_reason",
                text(&[None, None, None, None, None, Some("lost"), None]),
            ),
            (
                "size",
                text(&[Some("M"), None, None, None, None, None, Some("")]),
            ),
        ]);
        let split = split(&b).unwrap().expect("castable types");
        // " b" needs trimming, click is unknown, 0 units, ALL, an unknown reason, an
        // empty size and a quantity beyond i32 all go per row.
        assert_eq!(split.others, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(split.clean.num_rows(), 1);
        assert_eq!(split.clean.schema(), schema::events_file_schema());
        let time: &TimestampMicrosecondArray = split.clean.column(1).as_primitive();
        assert_eq!(time.value(0), 1_000_000, "milliseconds became microseconds");
        let channel = split
            .clean
            .column_by_name("channel")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            channel.value(0),
            "web",
            "the per-row default for no channel"
        );
        assert!(split.clean.column_by_name("sku_id").unwrap().is_null(0));
    }

    #[test]
    fn types_the_per_row_path_reads_differently_are_not_split() {
        let b = batch(vec![
            ("event_id", text(&[Some("a")])),
            (
                "event_time",
                Arc::new(TimestampMillisecondArray::from(vec![1_000i64])),
            ),
            ("event_type", text(&[Some("view")])),
            ("style_id", text(&[Some("S1")])),
            ("quantity", Arc::new(Int32Array::from(vec![1]))),
            ("market", text(&[Some("US")])),
        ]);
        assert!(split(&b).unwrap().is_none(), "a time without a zone");
    }
}
