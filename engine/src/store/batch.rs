//! Decision rows ⇄ Arrow: the `decisions` table's columns (DESIGN.md §3).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::RunSummary;
use crate::columns::Columns;
use crate::decision::{Decision, Reason, Verdict};
use crate::source::schema::timestamp_type;

const F64_COLUMNS: [&str; 17] = [
    "sell_through",
    "prior_shape",
    "prior_rate",
    "rate_shape",
    "rate_rate",
    "keep_rate",
    "drop_rate",
    "p_keep",
    "p_drop",
    "conv_alpha",
    "conv_beta",
    "return_alpha",
    "return_beta",
    "projected_st_p10",
    "projected_st_p50",
    "projected_st_p90",
    "days_of_cover",
];

/// The profit rule's columns, after `model_version` (nullable: runs stored before them
/// read back as zero, or as no curve).
const PLAN_F64_COLUMNS: [&str; 13] = [
    "decayed_exposure_days",
    "decay_half_life_days",
    "day_dispersion",
    "value_per_sale",
    "price_paid",
    "return_rate_estimate",
    "salvage_value",
    "lead_demand",
    "season_demand",
    "stock_at_arrival",
    "reorder_expected_profit",
    "p_reorder_profit",
    "p_reorder_pays",
];

/// The count columns between `sold_out` and `sell_through`, in table order.
const I64_COLUMNS: [&str; 7] = [
    "views",
    "carts",
    "purchases",
    "units_sold",
    "units_returned",
    "units_received",
    "on_hand",
];

pub fn decisions_schema() -> SchemaRef {
    let f64s = |names: &[&str]| {
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, *n == "days_of_cover"))
            .collect::<Vec<_>>()
    };
    let i64s = |names: &[&str]| {
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, false))
            .collect::<Vec<_>>()
    };
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("as_of", timestamp_type(), false),
        Field::new("style_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("days_live", DataType::Float64, false),
        Field::new("exposure_days", DataType::Float64, false),
        Field::new("sold_out", DataType::Boolean, false),
    ];
    fields.extend(i64s(&I64_COLUMNS));
    fields.extend(f64s(&F64_COLUMNS));
    fields.extend(i64s(&["reorder_units"]));
    fields.extend([
        Field::new("verdict", DataType::Utf8, false),
        Field::new("reasons", DataType::Utf8, false),
        Field::new("policy_version", DataType::Utf8, false),
        Field::new("model_version", DataType::Utf8, false),
    ]);
    fields.extend(
        PLAN_F64_COLUMNS
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true)),
    );
    fields.push(Field::new("open_order_units", DataType::Int64, true));
    fields.push(Field::new("planned_reorder_units", DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

fn f64_of(d: &Decision, name: &str) -> Option<f64> {
    Some(match name {
        "sell_through" => d.sell_through,
        "prior_shape" => d.prior_shape,
        "prior_rate" => d.prior_rate,
        "rate_shape" => d.rate_shape,
        "rate_rate" => d.rate_rate,
        "keep_rate" => d.keep_rate,
        "drop_rate" => d.drop_rate,
        "p_keep" => d.p_keep,
        "p_drop" => d.p_drop,
        "conv_alpha" => d.conv_alpha,
        "conv_beta" => d.conv_beta,
        "return_alpha" => d.return_alpha,
        "return_beta" => d.return_beta,
        "projected_st_p10" => d.projected_st_p10,
        "projected_st_p50" => d.projected_st_p50,
        "projected_st_p90" => d.projected_st_p90,
        // A style selling nothing has unbounded cover: stored as NULL.
        "days_of_cover" => return d.days_of_cover.is_finite().then_some(d.days_of_cover),
        other => unreachable!("not a float column: {other}"),
    })
}

fn plan_f64_of(d: &Decision, name: &str) -> Option<f64> {
    Some(match name {
        "decayed_exposure_days" => d.decayed_exposure_days,
        // No decay and Poisson days are stored as NULL.
        "decay_half_life_days" => return d.decay_half_life_days,
        "day_dispersion" => return d.day_dispersion,
        "value_per_sale" => d.value_per_sale,
        "price_paid" => d.price_paid,
        "return_rate_estimate" => d.return_rate_estimate,
        "salvage_value" => d.salvage_value,
        "lead_demand" => d.lead_demand,
        "season_demand" => d.season_demand,
        "stock_at_arrival" => d.stock_at_arrival,
        "reorder_expected_profit" => d.reorder_expected_profit,
        "p_reorder_profit" => d.p_reorder_profit,
        "p_reorder_pays" => d.p_reorder_pays,
        other => unreachable!("not a float column: {other}"),
    })
}

pub fn decisions_batch(summary: &RunSummary, rows: &[Decision]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let text = |f: &dyn Fn(&Decision) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let int = |f: &dyn Fn(&Decision) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            summary.run_id.as_str(),
            n,
        ))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
                summary.as_of.timestamp_micros(),
                n,
            ))
            .with_timezone("UTC"),
        ),
        text(&|d| d.style_id.clone()),
        text(&|d| d.market.clone()),
        text(&|d| d.category.clone()),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|d| d.days_live),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|d| d.exposure_days),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|d| Some(d.sold_out)),
        )),
        int(&|d| d.views),
        int(&|d| d.carts),
        int(&|d| d.purchases),
        int(&|d| d.units_sold),
        int(&|d| d.units_returned),
        int(&|d| d.units_received),
        int(&|d| d.on_hand),
    ];
    for name in &F64_COLUMNS {
        columns.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|d| f64_of(d, name)),
        )));
    }
    columns.push(int(&|d| d.reorder_units));
    columns.push(text(&|d| d.verdict.as_str().to_string()));
    columns.push(text(&|d| {
        d.reasons
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }));
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(summary.policy_version.as_str(), n),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(summary.model_version.as_str(), n),
    )));
    for name in &PLAN_F64_COLUMNS {
        columns.push(Arc::new(Float64Array::from_iter(
            rows.iter().map(|d| plan_f64_of(d, name)),
        )));
    }
    columns.push(Arc::new(Int64Array::from_iter(
        rows.iter().map(|d| Some(d.open_order_units)),
    )));
    columns.push(Arc::new(Int64Array::from_iter(
        rows.iter().map(|d| Some(d.planned_reorder_units)),
    )));
    RecordBatch::try_new(decisions_schema(), columns)
}

/// Reads decision rows back from a run file.
pub fn read_decisions(
    file: impl parquet::file::reader::ChunkReader + 'static,
) -> Result<Vec<Decision>, Box<dyn std::error::Error + Send + Sync>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let c = Columns {
            query: "decisions",
            batch: &batch,
        };
        let (style_id, market, category, verdict, reasons) = (
            c.texts("style_id")?,
            c.texts("market")?,
            c.texts("category")?,
            c.texts("verdict")?,
            c.texts("reasons")?,
        );
        let sold_out = c.bools("sold_out")?;
        // days_of_cover is the one nullable float: NULL stands for unbounded cover.
        let floats: Vec<Vec<f64>> = F64_COLUMNS
            .iter()
            .map(|n| {
                c.optional_floats(n)
                    .map(|v| v.into_iter().map(|x| x.unwrap_or(f64::INFINITY)).collect())
            })
            .collect::<Result<_, _>>()?;
        let (days_live, exposure) = (c.floats("days_live")?, c.floats("exposure_days")?);
        let ints: Vec<Vec<i64>> = I64_COLUMNS
            .iter()
            .chain(&["reorder_units"])
            .map(|n| c.ints(n))
            .collect::<Result<_, _>>()?;
        // Runs stored before the profit rule have none of its columns.
        let has = |n: &str| batch.column_by_name(n).is_some();
        let plan: Vec<Vec<Option<f64>>> = PLAN_F64_COLUMNS
            .iter()
            .map(|n| {
                if has(n) {
                    c.optional_floats(n)
                } else {
                    Ok(vec![None; batch.num_rows()])
                }
            })
            .collect::<Result<_, _>>()?;
        let open_orders = if has("open_order_units") {
            c.ints("open_order_units")?
        } else {
            vec![0; batch.num_rows()]
        };
        // Runs stored before it planned only their keeps.
        let planned = if has("planned_reorder_units") {
            c.ints("planned_reorder_units")?
        } else {
            ints[7].clone()
        };
        for r in 0..batch.num_rows() {
            let g = |k: usize| floats[k][r];
            let plan_at = |k: usize| plan[k][r].unwrap_or(0.0);
            out.push(Decision {
                style_id: style_id[r].clone(),
                market: market[r].clone(),
                category: category[r].clone(),
                days_live: days_live[r],
                exposure_days: exposure[r],
                sold_out: sold_out[r],
                views: ints[0][r],
                carts: ints[1][r],
                purchases: ints[2][r],
                units_sold: ints[3][r],
                units_returned: ints[4][r],
                units_received: ints[5][r],
                on_hand: ints[6][r],
                sell_through: g(0),
                prior_shape: g(1),
                prior_rate: g(2),
                rate_shape: g(3),
                rate_rate: g(4),
                keep_rate: g(5),
                drop_rate: g(6),
                p_keep: g(7),
                p_drop: g(8),
                conv_alpha: g(9),
                conv_beta: g(10),
                return_alpha: g(11),
                return_beta: g(12),
                projected_st_p10: g(13),
                projected_st_p50: g(14),
                projected_st_p90: g(15),
                days_of_cover: g(16),
                reorder_units: ints[7][r],
                planned_reorder_units: planned[r],
                verdict: Verdict::parse(&verdict[r])
                    .ok_or_else(|| format!("unknown verdict {}", verdict[r]))?,
                reasons: reasons[r]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Reason::parse(s).ok_or_else(|| format!("unknown reason {s}")))
                    .collect::<Result<_, _>>()?,
                decayed_exposure_days: plan[0][r].unwrap_or(exposure[r]),
                decay_half_life_days: plan[1][r],
                day_dispersion: plan[2][r],
                value_per_sale: plan_at(3),
                price_paid: plan_at(4),
                return_rate_estimate: plan_at(5),
                salvage_value: plan_at(6),
                lead_demand: plan_at(7),
                season_demand: plan_at(8),
                stock_at_arrival: plan_at(9),
                reorder_expected_profit: plan_at(10),
                p_reorder_profit: plan_at(11),
                p_reorder_pays: plan_at(12),
                open_order_units: open_orders[r],
                p_wrong: 0.0,
            });
        }
    }
    Ok(out)
}
