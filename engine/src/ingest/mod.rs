//! `assay ingest`: event logs in their own formats → `events/` partitions.
//!
//! A batch is identified by its content (format + bytes of every source), so ingesting
//! the same files twice adds nothing. Sources are decoded a piece at a time (a Parquet
//! row group, a run of CSV records) on all cores, and the pieces are taken in source
//! order: rows are checked, split by day and held with a bound on memory, past which
//! they are spilled to a staging folder. Bad rows go to a rejects file with their line
//! and reason. A day is complete when no later piece can hold rows of it (the row
//! group statistics of day-ordered Parquet tell, for other sources it is the end);
//! then, on a writer thread while reading goes on, rows whose `event_id` is already in
//! the partition (or earlier in the batch) are dropped, and the rest written under a
//! temporary name. Publishing is a journal of renames: once the journal is written the
//! batch is committed, and an interrupted publish is completed by the next command that
//! opens the dataset; before that, nothing of the batch is visible.

mod catalog;
mod columnar;
mod decode;
pub mod formats;
mod ids;
mod journal;
mod parallel;
mod rows;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use decode::{DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_ROW_GROUP_BYTES};
pub use formats::Format;
pub use journal::recover;

use crate::error::{EngineError, Result};
use crate::source::Dataset;
use crate::storage::Storage;
use decode::{Decoded, StyleNotes};
pub(crate) use ids::IdSet;
pub(crate) use rows::EventColumns;

/// Decoded rows held in memory across all days (Arrow bytes) before they are spilled to
/// the staging folder. A batch whose days complete as it is read (day-ordered Parquet
/// with statistics, the usual case) never reaches it and is never staged.
const BUFFER_BYTES: usize = 128 << 20;

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub format: Format,
    pub sources: Vec<PathBuf>,
    /// The market of formats that have none.
    pub market: Option<String>,
    /// A catalog (Parquet, `styles.parquet` columns) to merge into the dataset's.
    pub styles: Option<PathBuf>,
    pub show_progress: bool,
    /// The longest CSV record accepted, in bytes ([`DEFAULT_MAX_RECORD_BYTES`]).
    pub max_record_bytes: usize,
    /// The largest Parquet row group accepted, uncompressed bytes
    /// ([`DEFAULT_MAX_ROW_GROUP_BYTES`]).
    pub max_row_group_bytes: u64,
}

/// What a batch did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestSummary {
    pub batch_id: String,
    /// True when this exact batch had been ingested before: nothing was added.
    pub already_ingested: bool,
    pub rows_read: u64,
    pub events_added: u64,
    pub duplicates_dropped: u64,
    pub rejected: u64,
    /// Rejects by reason, with counts.
    pub reject_reasons: BTreeMap<String, u64>,
    /// Where the rejected rows were stored: a path or a URL.
    pub rejects_file: Option<String>,
    pub days: Vec<NaiveDate>,
    /// Styles seen in events that the catalog lacked, added with placeholders.
    pub new_styles: Vec<String>,
    /// Styles seen in events that the given catalog (`--styles`) lacks: their events
    /// are kept, but they have no funnel until the catalog names them.
    pub unknown_styles: Vec<String>,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Ingests one batch into `data`.
///
/// # Errors
/// A source that cannot be read at all (missing, not the format's columns, corrupt
/// compression): the batch fails and the dataset is unchanged. Also I/O errors.
pub fn ingest(data: &Dataset, request: &IngestRequest) -> Result<IngestSummary> {
    let started = Instant::now();
    let market = match (&request.market, request.format.has_market()) {
        (Some(m), _) if m == "ALL" => {
            return Err(EngineError::BadOption {
                option: "--market",
                message: "ALL is reserved for the pooled rows; name a real market".into(),
            });
        }
        (Some(m), _) => m.clone(),
        (None, true) => String::new(),
        (None, false) => {
            return Err(EngineError::BadOption {
                option: "--market",
                message: format!(
                    "{:?} rows carry no market: say which (e.g. --market US)",
                    request.format
                ),
            });
        }
    };
    let _lock = journal::lock(&data.storage)?;
    journal::recover_locked(data)?;

    let batch_id = batch_id(request)?;
    if let Some(text) = data.storage.read_opt(&journal::summary_key(&batch_id))? {
        let mut summary: IngestSummary =
            serde_json::from_slice(&text).map_err(|e| EngineError::Journal {
                path: data.storage.display(&journal::summary_key(&batch_id)),
                message: format!("not a readable batch summary: {e}"),
            })?;
        summary.already_ingested = true;
        return Ok(summary);
    }

    // Local scratch either way: beside the data in a folder, in a temporary folder for
    // an object store.
    let staging = data
        .storage
        .work_path(&format!("ingest/.staging-{batch_id}"))?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging, e))?;
    let result = stage_and_publish(data, request, &market, &batch_id, &staging, started);
    // Staging is scratch either way; a failure leaves the dataset as it was.
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage_and_publish(
    data: &Dataset,
    request: &IngestRequest,
    market: &str,
    batch_id: &str,
    staging: &Path,
    started: Instant,
) -> Result<IngestSummary> {
    let mut stager = Stager::new(staging)?;
    let total_bytes: u64 = request
        .sources
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = if request.show_progress {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let days = journal::write_days(data, batch_id, workers, |write| {
        read_sources(request, market, &mut stager, &bar, workers, write)?;
        bar.finish_and_clear();
        stager.take_all().into_iter().try_for_each(write)
    })?;
    journal::publish(data, request, batch_id, stager, days, started)
}

/// Decodes every source on `workers` threads into the stager, in source order, and
/// hands each day to `write` as soon as no later row can belong to it.
fn read_sources(
    request: &IngestRequest,
    market: &str,
    stager: &mut Stager,
    bar: &ProgressBar,
    workers: usize,
    write: &dyn Fn(DayRows) -> Result<()>,
) -> Result<()> {
    let in_flight = 2 * workers;
    if request.format == Format::EventsParquet {
        let (groups, horizon) =
            decode::parquet_row_groups(&request.sources, request.max_row_group_bytes)?;
        let mut position = 0;
        return parallel::map_in_order(
            groups.iter(),
            workers,
            in_flight,
            decode::decode_row_group,
            |decoded| {
                stager.add(decoded?)?;
                if let Some(horizon) = &horizon {
                    stager
                        .complete_days(horizon, position)
                        .try_for_each(write)?;
                }
                position += 1;
                stager.show_progress(bar);
                Ok(())
            },
        );
    }
    for path in &request.sources {
        let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        let reader = bar.wrap_read(file);
        let input: Box<dyn Read + Send> = if path.extension().is_some_and(|x| x == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut pieces = decode::CsvPieces::new(path, input, request.max_record_bytes);
        let source = decode::CsvSource::new(path, &mut pieces, request.format, market)?;
        parallel::map_in_order(
            pieces,
            if source.parallel() { workers } else { 1 },
            in_flight,
            |piece| piece.and_then(|p| source.decode(p)),
            |decoded| {
                stager.add(decoded?)?;
                stager.show_progress(bar);
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// The rows of one day, in the order they were read: spilled to staging files first,
/// then still in memory.
pub(crate) struct DayRows {
    pub day: NaiveDate,
    pub spilled: Vec<PathBuf>,
    pub batches: Vec<RecordBatch>,
    /// Rows in all, spilled or not.
    pub rows: usize,
    /// Arrow bytes of `batches`.
    bytes: usize,
}

/// Rows an ingest turned away, with the reason, next to its staged days.
const REJECTS_FILE: &str = "rejects.csv";

/// Holds decoded rows by day until a day is complete, within [`BUFFER_BYTES`]: past
/// that, every day's rows in memory are spilled to the staging folder. Also counts
/// rows, stores rejects and notes styles.
pub(crate) struct Stager {
    dir: PathBuf,
    days: BTreeMap<NaiveDate, DayRows>,
    /// Days handed on as complete: a row of one of these is a contradiction.
    handed_on: BTreeSet<NaiveDate>,
    buffered: usize,
    spills: usize,
    rows_read: u64,
    rejected: u64,
    reject_reasons: BTreeMap<String, u64>,
    rejects: csv::Writer<std::fs::File>,
    styles: StyleNotes,
    started: Instant,
}

impl Stager {
    fn new(dir: &Path) -> Result<Self> {
        let path = dir.join(REJECTS_FILE);
        let failed = |source| EngineError::Rejects {
            path: path.display().to_string(),
            source,
        };
        let mut rejects = csv::Writer::from_path(&path).map_err(failed)?;
        rejects
            .write_record(["file", "line", "reason", "raw"])
            .map_err(failed)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            days: BTreeMap::new(),
            handed_on: BTreeSet::new(),
            buffered: 0,
            spills: 0,
            rows_read: 0,
            rejected: 0,
            reject_reasons: BTreeMap::new(),
            rejects,
            styles: StyleNotes::default(),
            started: Instant::now(),
        })
    }

    /// Rows so far and their rate, on the progress bar.
    fn show_progress(&self, bar: &ProgressBar) {
        let rate = self.rows_read as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{} rows, {rate:.0} rows/s", self.rows_read));
    }

    /// Takes the next decoded piece (pieces come in source order).
    fn add(&mut self, decoded: Decoded) -> Result<()> {
        decode::merge_notes(&mut self.styles, decoded.styles);
        self.rows_read += decoded.rows_read;
        let file = decoded.source.display().to_string();
        for reject in decoded.rejects {
            self.rejected += 1;
            *self
                .reject_reasons
                .entry(reject.kind.to_string())
                .or_default() += 1;
            self.rejects
                .write_record([
                    file.as_str(),
                    reject.line.to_string().as_str(),
                    reject.reason.as_str(),
                    reject.raw.as_str(),
                ])
                .map_err(|source| EngineError::Rejects {
                    path: self.dir.join(REJECTS_FILE).display().to_string(),
                    source,
                })?;
        }
        for (day, batch) in decoded.days {
            if self.handed_on.contains(&day) {
                return Err(EngineError::BadInput {
                    path: file.to_string(),
                    message: format!(
                        "has rows of {day}, which the row group statistics of the files \
                         before it said were all read: are those statistics wrong?"
                    ),
                });
            }
            let bytes = batch.get_array_memory_size();
            let rows = self.days.entry(day).or_insert_with(|| DayRows {
                day,
                spilled: Vec::new(),
                batches: Vec::new(),
                rows: 0,
                bytes: 0,
            });
            rows.rows += batch.num_rows();
            rows.batches.push(batch);
            rows.bytes += bytes;
            self.buffered += bytes;
        }
        if self.buffered > BUFFER_BYTES {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes every day's rows in memory to a staging file of its own.
    fn spill(&mut self) -> Result<()> {
        for rows in self.days.values_mut().filter(|r| !r.batches.is_empty()) {
            let path = self
                .dir
                .join(rows.day.to_string())
                .join(format!("{:06}.arrow", self.spills));
            rows::write_staged(&path, &rows.batches)?;
            self.spills += 1;
            rows.spilled.push(path);
            rows.batches.clear();
            rows.bytes = 0;
        }
        self.buffered = 0;
        Ok(())
    }

    /// The days no row after piece `position` can belong to, by `horizon`.
    fn complete_days(
        &mut self,
        horizon: &BTreeMap<NaiveDate, usize>,
        position: usize,
    ) -> impl Iterator<Item = DayRows> + use<> {
        let complete: Vec<NaiveDate> = self
            .days
            .keys()
            .filter(|day| horizon.get(day).is_some_and(|&last| last <= position))
            .copied()
            .collect();
        let mut rows = Vec::with_capacity(complete.len());
        for day in complete {
            let day_rows = self.days.remove(&day).expect("listed above");
            self.buffered -= day_rows.bytes;
            self.handed_on.insert(day);
            rows.push(day_rows);
        }
        rows.into_iter()
    }

    /// Every day still held, in day order.
    fn take_all(&mut self) -> Vec<DayRows> {
        self.buffered = 0;
        std::mem::take(&mut self.days).into_values().collect()
    }
}

/// The batch's id: a digest of its format and the bytes of every source, in order.
fn batch_id(request: &IngestRequest) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}\n", request.format));
    hasher.update(request.market.clone().unwrap_or_default());
    for source in &request.sources {
        let mut file = std::fs::File::open(source).map_err(|e| io_err(source, e))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| io_err(source, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hasher.update([0u8]);
    }
    if let Some(styles) = &request.styles {
        hasher.update(std::fs::read(styles).map_err(|e| io_err(styles, e))?);
    }
    Ok(hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Event ids already in a partition (a folder key).
fn existing_ids(storage: &Storage, partition: &str) -> Result<IdSet> {
    let mut ids = IdSet::default();
    for entry in storage.list(partition)? {
        let in_partition = !entry.under(partition).contains('/');
        if in_partition && entry.key.ends_with(".parquet") {
            rows::read_ids(
                storage.open(&entry.key)?,
                &storage.display(&entry.key),
                &mut ids,
            )?;
        }
    }
    Ok(ids)
}

fn io_err(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}
