//! The shape of `style_daily`, the daily rollup's rows: the output of
//! `views/style_daily.sql`, which the rollup stores and the funnel reads back.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// The rollup's columns after `style_id`, `market` and `day`, in the query's order:
/// counts are integers (in-stock time in integer microseconds), money is a float. The
/// `life_` columns count what happened at or after the style's launch, the `cut_` ones
/// the same up to the launch's time of day (see `views/style_daily.sql`).
const COLUMNS: [(&str, DataType); 32] = [
    ("views", DataType::Int64),
    ("carts", DataType::Int64),
    ("purchases", DataType::Int64),
    ("units", DataType::Int64),
    ("returns", DataType::Int64),
    ("revenue", DataType::Float64),
    ("exposure_hours", DataType::Float64),
    ("restocked_units", DataType::Int64),
    ("exposure_us", DataType::Int64),
    ("life_views", DataType::Int64),
    ("life_views_in_stock", DataType::Int64),
    ("life_carts", DataType::Int64),
    ("life_purchases", DataType::Int64),
    ("life_units", DataType::Int64),
    ("life_returns", DataType::Int64),
    ("life_revenue", DataType::Float64),
    ("life_non_size_returns", DataType::Int64),
    ("life_unit_time_us", DataType::Int64),
    ("life_exposure_us", DataType::Int64),
    ("cut_views", DataType::Int64),
    ("cut_views_in_stock", DataType::Int64),
    ("cut_carts", DataType::Int64),
    ("cut_purchases", DataType::Int64),
    ("cut_units", DataType::Int64),
    ("cut_returns", DataType::Int64),
    ("cut_revenue", DataType::Float64),
    ("cut_non_size_returns", DataType::Int64),
    ("cut_unit_time_us", DataType::Int64),
    ("cut_exposure_us", DataType::Int64),
    ("unknown_style_events", DataType::Int64),
    ("bad_quantity_events", DataType::Int64),
    ("unknown_type_events", DataType::Int64),
];

/// The columns of a rollup day cut to a policy's windows (`views/window_days.sql`),
/// after `style_id`, `market` and `day`.
const WINDOW_COLUMNS: [(&str, DataType); 12] = [
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
    ("window_exposure_us", DataType::Int64),
    ("window_early_exposure_us", DataType::Int64),
];

/// The columns of `style_daily` (see `sql/views/style_daily.sql`), `day` included.
pub fn style_daily_schema() -> SchemaRef {
    keyed_by_day(&COLUMNS)
}

fn keyed_by_day(columns: &[(&str, DataType)]) -> SchemaRef {
    let mut fields = vec![
        Field::new("style_id", DataType::Utf8, true),
        Field::new("market", DataType::Utf8, true),
        Field::new("day", DataType::Date32, true),
    ];
    for (name, data_type) in columns {
        fields.push(Field::new(*name, data_type.clone(), true));
    }
    Arc::new(Schema::new(fields))
}

/// A relation with the columns of rollup days cut to windows and no rows, for queries
/// over raw history only.
pub(super) fn no_window_days_sql() -> String {
    let columns: Vec<String> = keyed_by_day(&WINDOW_COLUMNS)
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
