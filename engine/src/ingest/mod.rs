//! `assay ingest`: event logs in their own formats → `events/` partitions.
//!
//! A batch is identified by its content (format + bytes of every source), so ingesting
//! the same files twice adds nothing. Rows are streamed: parsed, checked, buffered per
//! day with a bound on memory, and spilled to a staging folder. Bad rows go to a rejects
//! file with their line and reason. Then, per day, rows whose `event_id` is already in
//! the partition (or earlier in the batch) are dropped, and the new files are written
//! under temporary names. Publishing is a journal of renames: once the journal is
//! written the batch is committed, and an interrupted publish is completed by the next
//! command that opens the dataset; before that, nothing of the batch is visible.

mod catalog;
mod columnar;
pub mod formats;
mod journal;
mod rows;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use chrono::{DateTime, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use formats::Format;
pub use journal::recover;

use crate::error::{EngineError, Result};
use crate::source::Dataset;
use crate::storage::Storage;
use formats::{Event, Header};

/// Event ids of a day, for dropping duplicates: ahash, because SipHash over every id was
/// a tenth of ingest's time.
pub(crate) type IdSet = HashSet<String, ahash::RandomState>;

/// Rows held in memory across all days before they are spilled to the staging folder.
const BUFFERED_ROWS: usize = 200_000;

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

/// First sight of a style in the batch, for a placeholder catalog entry.
#[derive(Debug, Clone)]
struct StyleSeen {
    first_event: DateTime<Utc>,
    category: Option<String>,
    brand: Option<String>,
    price: Option<f64>,
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
            return Err(EngineError::Ingest(
                "--market ALL is reserved for the pooled rows; name a real market".into(),
            ));
        }
        (Some(m), _) => m.clone(),
        (None, true) => String::new(),
        (None, false) => {
            return Err(EngineError::Ingest(format!(
                "{:?} rows carry no market: say which with --market (e.g. --market US)",
                request.format
            )));
        }
    };
    let _lock = journal::lock(&data.storage)?;
    journal::recover_locked(data)?;

    let batch_id = batch_id(request)?;
    if let Some(text) = data.storage.read_opt(&journal::summary_key(&batch_id))? {
        let mut summary: IngestSummary =
            serde_json::from_slice(&text).map_err(|e| EngineError::Ingest(e.to_string()))?;
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
    for source in &request.sources {
        let file = std::fs::File::open(source).map_err(|e| io_err(source, e))?;
        let reader = bar.wrap_read(file);
        match request.format {
            Format::EventsParquet => rows::read_parquet(source, &mut stager, &bar)?,
            format => {
                let input: Box<dyn Read> = if source.extension().is_some_and(|x| x == "gz") {
                    Box::new(flate2::read::MultiGzDecoder::new(reader))
                } else {
                    Box::new(reader)
                };
                read_csv(
                    source,
                    BufReader::with_capacity(1 << 20, input),
                    format,
                    market,
                    &mut stager,
                    &bar,
                )?;
            }
        }
    }
    bar.finish_and_clear();
    stager.flush()?;
    journal::publish(data, request, batch_id, stager, started)
}

/// Streams one CSV source into the stager.
fn read_csv(
    source: &Path,
    input: impl Read,
    format: Format,
    market: &str,
    stager: &mut Stager,
    bar: &ProgressBar,
) -> Result<()> {
    let unreadable =
        |message: String| EngineError::Ingest(format!("{}: {message}", source.display()));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let has_header = reader
        .read_record(&mut record)
        .map_err(|e| unreadable(format!("cannot read a CSV header: {e}")))?;
    if !has_header {
        return Err(unreadable("the file is empty".into()));
    }
    let header = Header::new(&record, format)
        .map_err(|m| unreadable(format!("not a {format:?} file: {m}")))?;
    let mut occurrences = HashMap::new();
    let mut occurrence_day = String::new();
    let mut line: u64 = 1;
    loop {
        line += 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                let reject = formats::Reject {
                    kind: "not UTF-8",
                    detail: "the row is not valid UTF-8 text".into(),
                };
                stager.reject(source, line, &csv::StringRecord::new(), &reject)?;
                continue;
            }
            Err(e) => return Err(unreadable(format!("line {line}: {e}"))),
        }
        // H&M's file is sorted by day: identical lines are counted within their day.
        if format == Format::Hm {
            let day = record.get(0).unwrap_or_default();
            if day != occurrence_day {
                occurrences.clear();
                occurrence_day = day.to_string();
            }
        }
        match formats::parse_record(format, &header, &record, market, &mut occurrences) {
            Ok(event) => stager.push(event)?,
            Err(reject) => stager.reject(source, line, &record, &reject)?,
        }
        if line.is_multiple_of(65_536) {
            stager.show_progress(bar);
        }
    }
    Ok(())
}

/// Buffers parsed events per day and spills them to staging files.
pub(crate) struct Stager {
    dir: PathBuf,
    buffers: BTreeMap<NaiveDate, Vec<Event>>,
    /// Rows that came as Arrow batches already in the events file schema.
    batches: BTreeMap<NaiveDate, Vec<RecordBatch>>,
    buffered: usize,
    spills: usize,
    rows_read: u64,
    rejected: u64,
    reject_reasons: BTreeMap<String, u64>,
    rejects: csv::Writer<std::fs::File>,
    styles: HashMap<String, StyleSeen>,
    started: Instant,
}

impl Stager {
    fn new(dir: &Path) -> Result<Self> {
        let path = dir.join("rejects.csv");
        let mut rejects = csv::Writer::from_path(&path)
            .map_err(|e| EngineError::Ingest(format!("{}: {e}", path.display())))?;
        rejects
            .write_record(["file", "line", "reason", "raw"])
            .map_err(|e| EngineError::Ingest(e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            buffers: BTreeMap::new(),
            batches: BTreeMap::new(),
            buffered: 0,
            spills: 0,
            rows_read: 0,
            rejected: 0,
            reject_reasons: BTreeMap::new(),
            rejects,
            styles: HashMap::new(),
            started: Instant::now(),
        })
    }

    /// Rows so far and their rate, on the progress bar.
    pub(crate) fn show_progress(&self, bar: &ProgressBar) {
        let rate = self.rows_read as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{} rows, {rate:.0} rows/s", self.rows_read));
    }

    pub(crate) fn push(&mut self, event: Event) -> Result<()> {
        self.rows_read += 1;
        self.note_style(&event.style_id, event.event_time, event.price);
        if let Some(seen) = self.styles.get_mut(&event.style_id) {
            seen.category = seen.category.take().or_else(|| event.category_hint.clone());
            seen.brand = seen.brand.take().or_else(|| event.brand_hint.clone());
        }
        self.buffers
            .entry(event.event_time.date_naive())
            .or_default()
            .push(event);
        self.buffered += 1;
        if self.buffered >= BUFFERED_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Notes a style's event for its placeholder catalog entry.
    fn note_style(&mut self, style: &str, at: DateTime<Utc>, price: Option<f64>) {
        match self.styles.get_mut(style) {
            Some(seen) => {
                seen.first_event = seen.first_event.min(at);
                seen.price = seen.price.or(price);
            }
            None => {
                let seen = StyleSeen {
                    first_event: at,
                    category: None,
                    brand: None,
                    price,
                };
                self.styles.insert(style.to_string(), seen);
            }
        }
    }

    /// Takes rows already in the events file schema (see `columnar`), a day at a time.
    pub(crate) fn push_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        const DAY_US: i64 = 86_400_000_000;
        let n = batch.num_rows();
        let times: &TimestampMicrosecondArray = batch.column(1).as_primitive();
        let styles = batch.column(3).as_string::<i32>();
        let prices: &Float64Array = batch.column(10).as_primitive();
        let mut days: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for i in 0..n {
            let t = times.value(i);
            days.entry(t.div_euclid(DAY_US)).or_default().push(i as u32);
            let at = DateTime::from_timestamp_micros(t).expect("a valid instant");
            let price = prices.is_valid(i).then(|| prices.value(i));
            self.note_style(styles.value(i), at, price);
        }
        for (day, rows) in days {
            let date = DateTime::from_timestamp_micros(day * DAY_US)
                .expect("a valid day")
                .date_naive();
            let rows = if rows.len() == n {
                batch.clone()
            } else {
                arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?
            };
            self.batches.entry(date).or_default().push(rows);
        }
        self.rows_read += n as u64;
        self.buffered += n;
        if self.buffered >= BUFFERED_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    pub(crate) fn reject(
        &mut self,
        source: &Path,
        line: u64,
        raw: &csv::StringRecord,
        reject: &formats::Reject,
    ) -> Result<()> {
        // The raw row as CSV, so a field with a comma reads back as it was.
        let mut encoded = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        encoded
            .write_record(raw)
            .map_err(|e| EngineError::Ingest(e.to_string()))?;
        let raw = encoded
            .into_inner()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim_end().to_string())
            .unwrap_or_default();
        self.rows_read += 1;
        self.rejected += 1;
        *self
            .reject_reasons
            .entry(reject.kind.to_string())
            .or_default() += 1;
        self.rejects
            .write_record([
                source.display().to_string().as_str(),
                line.to_string().as_str(),
                reject.to_string().as_str(),
                raw.as_str(),
            ])
            .map_err(|e| EngineError::Ingest(e.to_string()))
    }

    fn flush(&mut self) -> Result<()> {
        let mut events = std::mem::take(&mut self.buffers);
        let mut batches = std::mem::take(&mut self.batches);
        let days: std::collections::BTreeSet<NaiveDate> =
            events.keys().chain(batches.keys()).copied().collect();
        for day in days {
            let path = self
                .dir
                .join(day.to_string())
                .join(format!("{:06}.arrow", self.spills));
            let events = events.remove(&day).unwrap_or_default();
            let batches = batches.remove(&day).unwrap_or_default();
            rows::write_events(&path, &events, &batches)?;
            self.spills += 1;
        }
        self.buffered = 0;
        Ok(())
    }

    /// The staged files of every day, in day order.
    fn staged_days(&self) -> Result<BTreeMap<NaiveDate, Vec<PathBuf>>> {
        let mut days = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io_err(&self.dir, e))? {
            let path = entry.map_err(|e| io_err(&self.dir, e))?.path();
            let Some(day) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| NaiveDate::parse_from_str(n, "%Y-%m-%d").ok())
            else {
                continue;
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| io_err(&path, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            days.insert(day, files);
        }
        Ok(days)
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
