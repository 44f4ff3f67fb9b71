//! Canonical events ⇄ files: staging files, and the partition files a day's new rows
//! are written to.

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
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::formats::Event;
use super::{DayRows, IdSet, io_err};
use crate::error::{EngineError, Result};
use crate::parquet_io::events_writer_properties;
use crate::source::schema;
use crate::storage::Blob;

/// Writes batches in the `events` file schema to a new staging file: Arrow IPC with
/// LZ4, because staging is read back once, at publish, and Parquet's encoding would be
/// paid twice.
pub(crate) fn write_staged(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let options =
        IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
    let schema = schema::events_file_schema();
    let mut writer =
        FileWriter::try_new_with_options(std::io::BufWriter::new(file), &schema, options)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(())
}

/// Events parsed one row at a time, gathered into the `events` file schema's columns.
pub(crate) struct EventColumns {
    event_id: StringBuilder,
    time: TimestampMicrosecondBuilder,
    event_type: StringBuilder,
    style_id: StringBuilder,
    sku_id: StringBuilder,
    size: StringBuilder,
    user_id: StringBuilder,
    session_id: StringBuilder,
    order_id: StringBuilder,
    quantity: Int32Builder,
    price: Float64Builder,
    market: StringBuilder,
    channel: StringBuilder,
    return_reason: StringBuilder,
}

impl EventColumns {
    pub(crate) fn new() -> Self {
        let text = StringBuilder::new;
        Self {
            event_id: text(),
            time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            event_type: text(),
            style_id: text(),
            sku_id: text(),
            size: text(),
            user_id: text(),
            session_id: text(),
            order_id: text(),
            quantity: Int32Builder::new(),
            price: Float64Builder::new(),
            market: text(),
            channel: text(),
            return_reason: text(),
        }
    }

    pub(crate) fn push(&mut self, e: &Event) {
        self.event_id.append_value(&e.event_id);
        self.time.append_value(e.event_time.timestamp_micros());
        self.event_type.append_value(e.event_type.as_str());
        self.style_id.append_value(&e.style_id);
        self.sku_id.append_option(e.sku_id.as_deref());
        self.size.append_option(e.size);
        self.user_id.append_option(e.user_id);
        self.session_id.append_option(e.session_id);
        self.order_id.append_option(e.order_id);
        self.quantity.append_value(e.quantity);
        self.price.append_option(e.price);
        self.market.append_value(e.market);
        self.channel.append_value(e.channel);
        self.return_reason.append_option(e.return_reason);
    }

    /// Rows pushed since the last [`EventColumns::finish`].
    pub(crate) fn len(&self) -> usize {
        arrow::array::ArrayBuilder::len(&self.quantity)
    }

    /// The rows pushed so far as one batch; the builders start over empty.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.style_id.finish()),
            Arc::new(self.sku_id.finish()),
            Arc::new(self.size.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.order_id.finish()),
            Arc::new(self.quantity.finish()),
            Arc::new(self.price.finish()),
            Arc::new(self.market.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.return_reason.finish()),
        ];
        Ok(RecordBatch::try_new(schema::events_file_schema(), columns)?)
    }
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
            .ok_or_else(|| EngineError::BadInput {
                path: path.to_string(),
                message: "event_id is not text".into(),
            })?;
        for id in column.iter().flatten() {
            ids.insert(id);
        }
    }
    Ok(())
}

/// Copies a day's rows whose ids are not in `ids` (adding them) into one Parquet file
/// at `dest`, in the order they were read; returns (rows written, duplicates dropped).
pub(crate) fn copy_new_rows(day: DayRows, ids: &mut IdSet, dest: &Path) -> Result<(u64, u64)> {
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let (mut added, mut dropped) = (0u64, 0u64);
    let mut staged = Vec::new();
    for path in &day.spilled {
        let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        staged.push(FileReader::try_new(std::io::BufReader::new(file), None)?);
    }
    let batches = staged
        .into_iter()
        .flatten()
        .map(|b| b.map_err(EngineError::from))
        .chain(day.batches.into_iter().map(Ok));
    for batch in batches {
        let batch = batch?;
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("staged rows have the events schema");
        let keep: BooleanArray = column
            .iter()
            .map(|id| Some(id.is_some_and(|id| ids.insert(id))))
            .collect();
        let kept = if keep.true_count() == batch.num_rows() {
            batch
        } else {
            let kept = filter_record_batch(&batch, &keep)?;
            dropped += (batch.num_rows() - kept.num_rows()) as u64;
            kept
        };
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
    if let Some(w) = writer {
        w.close()?;
    }
    Ok((added, dropped))
}
