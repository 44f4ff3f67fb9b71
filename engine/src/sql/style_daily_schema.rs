//! The shape of `style_daily`, the daily rollup's rows: the output of
//! `views/style_daily.sql`, which the rollup stores and the funnel reads back.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The rollup's columns after `style_id`, `market` and `day`, in the query's order:
/// counts are integers (in-stock time in integer microseconds), money is a float.
const COLUMNS: [(&str, DataType); 24] = [
    ("views", DataType::Int64),
    ("carts", DataType::Int64),
    ("purchases", DataType::Int64),
    ("units", DataType::Int64),
    ("returns", DataType::Int64),
    ("revenue", DataType::Float64),
    ("exposure_hours", DataType::Float64),
    ("restocked_units", DataType::Int64),
    ("window_views", DataType::Int64),
    ("window_views_in_stock", DataType::Int64),
    ("window_carts", DataType::Int64),
    ("window_purchases", DataType::Int64),
    ("window_units", DataType::Int64),
    ("window_returns", DataType::Int64),
    ("window_revenue", DataType::Float64),
    ("window_early_units", DataType::Int64),
    ("window_non_size_returns", DataType::Int64),
    ("window_unit_time_us", DataType::Int64),
    ("exposure_us", DataType::Int64),
    ("window_exposure_us", DataType::Int64),
    ("window_early_exposure_us", DataType::Int64),
    ("unknown_style_events", DataType::Int64),
    ("bad_quantity_events", DataType::Int64),
    ("unknown_type_events", DataType::Int64),
];

/// The columns of `style_daily` (see `sql/views/style_daily.sql`), `day` included.
pub fn style_daily_schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("style_id", DataType::Utf8, true),
        Field::new("market", DataType::Utf8, true),
        Field::new("day", DataType::Date32, true),
    ];
    for (name, data_type) in COLUMNS {
        fields.push(Field::new(name, data_type, true));
    }
    Arc::new(Schema::new(fields))
}

/// A relation with the rollup's columns and no rows, for queries over raw history only.
pub(super) fn empty_rows_sql() -> String {
    let columns: Vec<String> = style_daily_schema()
        .fields()
        .iter()
        .map(|f| {
            let sql_type = match f.data_type() {
                DataType::Utf8 => "VARCHAR",
                DataType::Date32 => "DATE",
                DataType::Int64 => "BIGINT",
                _ => "DOUBLE",
            };
            format!("CAST(NULL AS {sql_type}) AS {}", f.name())
        })
        .collect();
    format!("SELECT {} WHERE false", columns.join(", "))
}
