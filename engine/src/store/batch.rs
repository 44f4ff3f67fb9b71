//! Decision rows ⇄ Arrow. The columns are traced from [`Decision`] itself
//! (serde_arrow), with the run's own columns around them: `run_id` and `as_of` first,
//! `policy_version` and `model_version` after `reasons` (DESIGN.md §3). A new field of
//! `Decision` is a new column, with nothing to add here.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_arrow::schema::{SchemaLike, TracingOptions};

use super::RunSummary;
use crate::decision::Decision;
use crate::source::schema::timestamp_type;

/// The run's columns that `Decision` does not hold, and the one they follow.
const RUN_KEY: [&str; 2] = ["run_id", "as_of"];
const RUN_VERSIONS: [&str; 2] = ["policy_version", "model_version"];
const VERSIONS_AFTER: &str = "reasons";

/// `Decision`'s columns as serde_arrow traces them, with the verdict (a unit enum) as
/// plain text rather than a dictionary. Every column is nullable: a column added to `Decision`
/// later reads as NULL from runs stored before it.
static DECISION_FIELDS: LazyLock<Vec<FieldRef>> = LazyLock::new(|| {
    let options = TracingOptions::default()
        .strings_as_large_utf8(false)
        .enums_without_data_as_strings(true);
    Vec::<FieldRef>::from_type::<Decision>(options)
        .expect("Decision is a flat struct of scalars")
        .into_iter()
        .map(|f| {
            let text = matches!(f.data_type(), DataType::Dictionary(..));
            let data_type = if text {
                DataType::Utf8
            } else {
                f.data_type().clone()
            };
            Arc::new(Field::new(f.name(), data_type, true))
        })
        .collect()
});

/// The stored run file's schema, which is also `decision_history`'s.
pub fn decisions_schema() -> SchemaRef {
    let text = |name: &str| Arc::new(Field::new(name, DataType::Utf8, false));
    let mut fields: Vec<FieldRef> = vec![
        text(RUN_KEY[0]),
        Arc::new(Field::new(RUN_KEY[1], timestamp_type(), false)),
    ];
    for f in DECISION_FIELDS.iter() {
        fields.push(Arc::clone(f));
        if f.name() == VERSIONS_AFTER {
            fields.extend(RUN_VERSIONS.map(text));
        }
    }
    Arc::new(Schema::new(fields))
}

/// A run's rows as one batch of [`decisions_schema`].
///
/// # Errors
/// A row that does not fit its column (never for rows `Decision` can hold).
pub fn decisions_batch(
    summary: &RunSummary,
    rows: &[Decision],
) -> Result<RecordBatch, Box<dyn std::error::Error + Send + Sync>> {
    let decided = serde_arrow::to_record_batch(&DECISION_FIELDS, &rows)?;
    let n = rows.len();
    let constant = |value: &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, n)))
    };
    let as_of = TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(
        summary.as_of.timestamp_micros(),
        n,
    ))
    .with_timezone("UTC");
    let mut columns: Vec<ArrayRef> = vec![constant(&summary.run_id), Arc::new(as_of)];
    for (field, column) in DECISION_FIELDS.iter().zip(decided.columns()) {
        columns.push(Arc::clone(column));
        if field.name() == VERSIONS_AFTER {
            columns.push(constant(&summary.policy_version));
            columns.push(constant(&summary.model_version));
        }
    }
    Ok(RecordBatch::try_new(decisions_schema(), columns)?)
}

/// Reads decision rows back from a run file. The run's own columns are ignored, and
/// columns a run stored before them lacks take their defaults, but for two that old
/// runs did hold in another form: the plan's proposal was the reorder itself, and
/// exposure was not yet weighed by a demand curve.
pub fn read_decisions(
    file: impl parquet::file::reader::ChunkReader + 'static,
) -> Result<Vec<Decision>, Box<dyn std::error::Error + Send + Sync>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let has = |name: &str| batch.column_by_name(name).is_some();
        let (planned, decayed) = (has("planned_reorder_units"), has("decayed_exposure_days"));
        let mut rows: Vec<Decision> = serde_arrow::from_record_batch(&batch)?;
        for d in &mut rows {
            if !planned {
                d.planned_reorder_units = d.reorder_units;
            }
            if !decayed {
                d.decayed_exposure_days = d.exposure_days;
            }
        }
        out.extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::decision::{Reason, Verdict, WrongCalls};

    fn row(style: &str, days_of_cover: f64, reasons: Vec<Reason>) -> Decision {
        Decision {
            style_id: style.into(),
            market: "ALL".into(),
            category: "tops".into(),
            days_live: 7.5,
            exposure_days: 6.25,
            sold_out: false,
            views: 1000,
            carts: 80,
            purchases: 30,
            units_sold: 32,
            units_returned: 3,
            units_received: 200,
            on_hand: 171,
            sell_through: 0.145,
            prior_shape: 2.0,
            prior_rate: 1.0,
            rate_shape: 34.0,
            rate_rate: 7.25,
            keep_rate: 3.8,
            drop_rate: 1.9,
            p_keep: 0.9,
            p_drop: 0.01,
            conv_alpha: 31.0,
            conv_beta: 971.0,
            return_alpha: 4.0,
            return_beta: 20.0,
            projected_st_p10: 0.5,
            projected_st_p50: 0.6,
            projected_st_p90: 0.7,
            days_of_cover,
            reorder_units: 120,
            verdict: Verdict::Keep,
            reasons,
            decayed_exposure_days: 5.5,
            decay_half_life_days: Some(28.0),
            decay_half_life_spread: Some(0.3),
            day_dispersion: None,
            value_per_sale: 21.5,
            price_paid: 24.0,
            return_rate_estimate: 0.1,
            salvage_value: 4.0,
            lead_demand: 40.0,
            season_demand: 160.0,
            stock_at_arrival: 131.0,
            reorder_expected_profit: 512.0,
            p_reorder_profit: 0.85,
            p_reorder_pays: 0.9,
            value_of_waiting: 12.5,
            open_order_units: 10,
            planned_reorder_units: 120,
            demand_p10: 150.0,
            demand_p90: 260.0,
            previous_verdict: Some(Verdict::Test),
            p_wrong: 0.0,
        }
    }

    fn summary() -> RunSummary {
        RunSummary {
            run_id: "r1".into(),
            as_of: Utc::now(),
            created_at: Utc::now(),
            policy_version: "pol".into(),
            model_version: "mod".into(),
            styles: 2,
            rows: 2,
            keep: 2,
            drop: 0,
            test: 0,
            wrong_calls: WrongCalls::default(),
            warnings: vec![],
            previous_run_id: None,
            changes: Default::default(),
        }
    }

    fn parquet(batch: &RecordBatch) -> bytes::Bytes {
        let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None).unwrap();
        w.write(batch).unwrap();
        w.into_inner().unwrap().into()
    }

    #[test]
    fn rows_round_trip_through_a_run_file() {
        let rows = vec![
            row("S1", 12.5, vec![Reason::HighRate, Reason::SoldOut]),
            // Unbounded cover is NULL on disk; no reasons is empty text.
            row("S2", f64::INFINITY, vec![]),
        ];
        let batch = decisions_batch(&summary(), &rows).unwrap();
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(&names[..4], ["run_id", "as_of", "style_id", "market"]);
        let at = names.iter().position(|n| *n == "reasons").unwrap();
        assert_eq!(
            &names[at..at + 3],
            ["reasons", "policy_version", "model_version"]
        );
        assert_eq!(names.last(), Some(&"previous_verdict"));
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_string()
        };
        assert_eq!(text("reasons"), "high_rate,sold_out");
        assert_eq!(text("verdict"), "keep");
        assert_eq!(text("previous_verdict"), "test");
        assert_eq!(text("policy_version"), "pol");
        assert!(batch.column_by_name("days_of_cover").unwrap().is_null(1));
        assert_eq!(read_decisions(parquet(&batch)).unwrap(), rows);
    }

    #[test]
    fn a_run_stored_before_the_plan_columns_still_reads() {
        let rows = vec![row("S1", 3.0, vec![Reason::HighRate])];
        let full = decisions_batch(&summary(), &rows).unwrap();
        let added_since = [
            "decayed_exposure_days",
            "p_reorder_pays",
            "planned_reorder_units",
            "previous_verdict",
        ];
        let first_release: Vec<usize> = (0..full.num_columns())
            .filter(|&i| !added_since.contains(&full.schema_ref().field(i).name().as_str()))
            .collect();
        let old = full.project(&first_release).unwrap();
        let read = read_decisions(parquet(&old)).unwrap();
        assert_eq!(read[0].planned_reorder_units, read[0].reorder_units);
        assert_eq!(read[0].decayed_exposure_days, read[0].exposure_days);
        assert_eq!(read[0].p_reorder_pays, 0.0);
        assert_eq!(read[0].previous_verdict, None);
        let unknown = RecordBatch::try_from_iter([
            (
                "style_id",
                Arc::new(StringArray::from(vec!["S1"])) as ArrayRef,
            ),
            (
                "reasons",
                Arc::new(StringArray::from(vec!["high_rate,colour"])) as ArrayRef,
            ),
        ])
        .unwrap();
        let err = read_decisions(parquet(&unknown)).unwrap_err().to_string();
        assert!(
            err.contains("missing field") || err.contains("colour"),
            "{err}"
        );
    }
}
