//! The catalog side of a batch: merge a given catalog, or add placeholder entries for
//! styles the events name and the catalog lacks.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::{concat_batches, filter_record_batch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::decode::{StyleNotes, StyleSeen};
use super::io_err;
use crate::error::{EngineError, Result};
use crate::source::{self, schema};
use crate::storage::{Blob, Storage};

/// The catalog after this batch, if it changed, with the styles added as placeholders
/// and the styles still unknown.
pub(crate) struct CatalogChange {
    pub catalog: Option<RecordBatch>,
    pub added: Vec<String>,
    pub unknown: Vec<String>,
}

pub(crate) fn update(
    storage: &Storage,
    given: Option<&Path>,
    seen: &StyleNotes,
) -> Result<CatalogChange> {
    let styles_schema = schema::styles_schema();
    let has_catalog = storage.exists(source::STYLES)?;
    let existing = if has_catalog {
        read(
            storage.open(source::STYLES)?,
            &storage.display(source::STYLES),
        )?
    } else {
        RecordBatch::new_empty(Arc::clone(&styles_schema))
    };
    let mut merged = existing.clone();
    if let Some(given) = given {
        let file = std::fs::File::open(given).map_err(|e| io_err(given, e))?;
        let given = read(Blob::File(file), &given.display().to_string())?;
        let given_ids: HashSet<String> = ids(&given).into_iter().collect();
        let keep: arrow::array::BooleanArray = ids(&existing)
            .iter()
            .map(|id| Some(!given_ids.contains(id)))
            .collect();
        let rest = filter_record_batch(&existing, &keep)?;
        merged = concat_batches(&styles_schema, [&given, &rest])?;
    }
    let known: HashSet<String> = ids(&merged).into_iter().collect();
    let mut missing: Vec<&String> = seen.keys().filter(|s| !known.contains(*s)).collect();
    missing.sort();
    let mut change = CatalogChange {
        catalog: None,
        added: Vec::new(),
        unknown: Vec::new(),
    };
    if given.is_some() {
        change.unknown = missing.into_iter().cloned().collect();
    } else if !missing.is_empty() {
        let placeholders = placeholders(&missing, seen)?;
        merged = concat_batches(&styles_schema, [&merged, &placeholders])?;
        change.added = missing.into_iter().cloned().collect();
    }
    if given.is_some() || !change.added.is_empty() || !has_catalog {
        change.catalog = Some(merged);
    }
    Ok(change)
}

/// Placeholder entries: launched at the first event seen, the category and brand the
/// source names (or `unknown`), the first price seen, and a cost of half that price
/// until the real catalog says otherwise.
fn placeholders(missing: &[&String], seen: &StyleNotes) -> Result<RecordBatch> {
    let info: Vec<&StyleSeen> = missing.iter().map(|s| &seen[*s]).collect();
    let price: Vec<f64> = info.iter().map(|s| s.price.unwrap_or(0.0)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            missing.iter().map(|s| s.as_str()),
        )),
        Arc::new(StringArray::from(vec![None::<&str>; missing.len()])),
        Arc::new(StringArray::from_iter_values(
            info.iter()
                .map(|s| s.category.clone().unwrap_or_else(|| "unknown".into())),
        )),
        Arc::new(StringArray::from_iter(info.iter().map(|s| s.brand.clone()))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(info.iter().map(|s| s.first_event_us))
                .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from(price.clone())),
        Arc::new(Float64Array::from_iter_values(
            price.iter().map(|p| p * 0.5),
        )),
        Arc::new(Int32Array::from(vec![14; missing.len()])),
        Arc::new(Int32Array::from(vec![1; missing.len()])),
    ];
    Ok(RecordBatch::try_new(schema::styles_schema(), columns)?)
}

fn read(file: Blob, path: &str) -> Result<RecordBatch> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| EngineError::BadInput {
            path: path.into(),
            message: format!("not a readable Parquet catalog: {e}"),
        })?;
    let expected = schema::styles_schema();
    let problems = schema::check_schema(builder.schema(), &expected);
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(EngineError::Schema {
            path: path.to_string(),
            problems: text.join("; "),
        });
    }
    let mut batches = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        let columns = expected
            .fields()
            .iter()
            .map(|f| {
                let column = batch.column_by_name(f.name()).expect("checked above");
                arrow::compute::cast(column, f.data_type())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        batches.push(RecordBatch::try_new(Arc::clone(&expected), columns)?);
    }
    Ok(concat_batches(&expected, &batches)?)
}

fn ids(batch: &RecordBatch) -> Vec<String> {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .map(|a| a.iter().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}
