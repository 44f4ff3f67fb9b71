//! Canonical events ⇄ Parquet: staging files, the partition files, and canonical
//! Parquet sources.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Builder, Int32Builder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::filter_record_batch;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use indicatif::ProgressBar;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::columnar;
use super::formats::{self, Event, Format, Header};
use super::{IdSet, Stager, io_err};
use crate::error::{EngineError, Result};
use crate::parquet_io::events_writer_properties;
use crate::source::schema;
use crate::storage::Blob;

/// Writes events, and batches already in the `events` file schema, to a new staging
/// file: Arrow IPC with LZ4, because staging is read back once, at publish, and Parquet's
/// encoding would be paid twice.
pub(crate) fn write_events(path: &Path, events: &[Event], batches: &[RecordBatch]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let options =
        IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
    let schema = schema::events_file_schema();
    let mut writer =
        FileWriter::try_new_with_options(std::io::BufWriter::new(file), &schema, options)?;
    if !events.is_empty() {
        writer.write(&to_batch(events)?)?;
    }
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

fn to_batch(events: &[Event]) -> Result<RecordBatch> {
    let n = events.len();
    let text = |f: &dyn Fn(&Event) -> Option<&str>| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 8);
        for e in events {
            b.append_option(f(e));
        }
        Arc::new(b.finish())
    };
    let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut quantity = Int32Builder::with_capacity(n);
    let mut price = Float64Builder::with_capacity(n);
    for e in events {
        time.append_value(e.event_time.timestamp_micros());
        quantity.append_value(e.quantity);
        price.append_option(e.price);
    }
    let columns: Vec<ArrayRef> = vec![
        text(&|e| Some(&e.event_id)),
        Arc::new(time.finish()),
        text(&|e| Some(e.event_type)),
        text(&|e| Some(&e.style_id)),
        text(&|e| e.sku_id.as_deref()),
        text(&|e| e.size.as_deref()),
        text(&|e| e.user_id.as_deref()),
        text(&|e| e.session_id.as_deref()),
        text(&|e| e.order_id.as_deref()),
        Arc::new(quantity.finish()),
        Arc::new(price.finish()),
        text(&|e| Some(&e.market)),
        text(&|e| Some(&e.channel)),
        text(&|e| e.return_reason.as_deref()),
    ];
    Ok(RecordBatch::try_new(schema::events_file_schema(), columns)?)
}

/// Adds the `event_id`s of one stored file (named `path` in messages) to `ids`.
pub(crate) fn read_ids(file: Blob, path: &str, ids: &mut IdSet) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["event_id"]);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| EngineError::Ingest(format!("{path}: event_id is not text")))?;
        for id in column.iter().flatten() {
            ids.insert(id.to_string());
        }
    }
    Ok(())
}

/// Copies the rows of staged files whose ids are not in `ids` (adding them) into one
/// writer; returns (rows written, duplicates dropped).
pub(crate) fn copy_new_rows(
    staged: &[std::path::PathBuf],
    ids: &mut IdSet,
    dest: &Path,
) -> Result<(u64, u64)> {
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let (mut added, mut dropped) = (0u64, 0u64);
    for path in staged {
        let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        for batch in FileReader::try_new(std::io::BufReader::new(file), None)? {
            let batch = batch?;
            let column = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("staged files have the events schema");
            let keep: BooleanArray = column
                .iter()
                .map(|id| Some(id.is_some_and(|id| ids.insert(id.to_string()))))
                .collect();
            let kept = filter_record_batch(&batch, &keep)?;
            dropped += (batch.num_rows() - kept.num_rows()) as u64;
            if kept.num_rows() == 0 {
                continue;
            }
            if writer.is_none() {
                let file = std::fs::File::create(dest).map_err(|e| io_err(dest, e))?;
                writer = Some(ArrowWriter::try_new(
                    file,
                    schema::events_file_schema(),
                    Some(events_writer_properties()),
                )?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&kept)?;
            }
            added += kept.num_rows() as u64;
        }
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok((added, dropped))
}

/// Streams a canonical Parquet source: every row is checked like a canonical CSV row,
/// so the rules (and the reject reasons) are the same.
pub(crate) fn read_parquet(source: &Path, stager: &mut Stager, bar: &ProgressBar) -> Result<()> {
    let unreadable = |m: String| EngineError::Ingest(format!("{}: {m}", source.display()));
    let file = std::fs::File::open(source).map_err(|e| io_err(source, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let header = Header::new(
        &csv::StringRecord::from(names.clone()),
        Format::EventsParquet,
    )
    .map_err(|m| unreadable(format!("not an events file: {m}")))?;
    let options = FormatOptions::default().with_null("");
    // A row's "line" is its 1-based position in the file.
    let mut first_line = 1u64;
    let mut unused = std::collections::HashMap::new();
    let reader = builder
        .build()
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(format!("corrupt data: {e}")))?;
        // Rows valid as they stand go through as Arrow; the rest are read one by one.
        let per_row: Vec<usize> = match columnar::split(&batch)? {
            Some(split) => {
                stager.push_batch(&split.clean)?;
                split.others
            }
            None => (0..batch.num_rows()).collect(),
        };
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in per_row {
            let line = first_line + row as u64;
            let record: csv::StringRecord = formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| {
                    if c.is_null(row) {
                        String::new()
                    } else {
                        f.value(row).to_string()
                    }
                })
                .collect();
            match formats::parse_record(Format::EventsParquet, &header, &record, "", &mut unused) {
                Ok(event) => stager.push(event)?,
                Err(reject) => stager.reject(source, line, &record, &reject)?,
            }
        }
        first_line += batch.num_rows() as u64;
        stager.show_progress(bar);
    }
    Ok(())
}
