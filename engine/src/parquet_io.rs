//! Writing Parquet files the way assay's tables expect them.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Properties for every file assay writes: zstd, page statistics for pruning, and row
/// groups small enough to skip by style.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(256 * 1024))
        .build()
}

/// Properties for event partition files: as [`writer_properties`], without dictionary
/// encoding for the columns that are nearly unique per event (`event_time` too: at
/// microseconds few events share one), and without statistics for the ids. Dictionary-
/// encoding them interned every value only to fall back to plain pages, a fifth of
/// ingest's time; min/max statistics compared every id twice (a tenth) for ranges no
/// query prunes by. `event_time`, `style_id` and the rest keep theirs.
pub fn events_writer_properties() -> WriterProperties {
    const IDS: [&str; 4] = ["event_id", "user_id", "session_id", "order_id"];
    let mut builder = writer_properties().into_builder();
    for column in IDS.iter().chain(&["event_time"]) {
        builder = builder.set_column_dictionary_enabled((*column).into(), false);
    }
    for column in IDS {
        builder = builder.set_column_statistics_enabled(column.into(), EnabledStatistics::None);
    }
    builder.build()
}

/// Properties for the daily rollup's files: as [`writer_properties`], compressed with
/// LZ4. A decision run scans the rollup's small day files several times over; with zstd
/// the creation of a decompression context per column chunk was a tenth of its CPU.
pub fn rollup_writer_properties() -> WriterProperties {
    writer_properties()
        .into_builder()
        .set_compression(Compression::LZ4_RAW)
        .build()
}

/// A Parquet file being written under a temporary name; [`AtomicParquetFile::publish`]
/// renames it into place, so readers see the whole file or nothing.
pub struct AtomicParquetFile {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicParquetFile {
    pub fn create(dest: &Path, schema: SchemaRef) -> Result<Self, ParquetError> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A name without the .parquet extension, so a table listing skips it.
        let tmp = dest.with_extension(format!("parquet.{}.tmp", std::process::id()));
        let file = File::create(&tmp)?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties()))?;
        Ok(Self {
            writer,
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// Adds a key-value entry to the file's footer metadata.
    pub fn append_metadata(&mut self, key: &str, value: String) {
        self.writer
            .append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                key.to_string(),
                value,
            ));
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.writer.write(batch)
    }

    pub fn publish(self) -> Result<(), ParquetError> {
        let file = self.writer.into_inner()?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        Ok(())
    }
}

/// Writes one file atomically from whole batches.
pub fn write_parquet(
    dest: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), ParquetError> {
    let mut file = AtomicParquetFile::create(dest, schema)?;
    for b in batches {
        file.write(b)?;
    }
    file.publish()
}
