//! Sources → rows in the `events` file schema, one piece at a time: a Parquet row group
//! or a run of CSV records. Pieces are independent, so they decode on any core
//! (`parallel`); each comes back with its rows split by day, its rejects and what it
//! saw of each style, and the stager takes them in source order.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::formats::{Event, Format, Header, Reject, RowFormat, RowMemory};
use super::{columnar, io_err, rows};
use crate::error::{EngineError, Result};

const DAY_US: i64 = 86_400_000_000;

/// Rows per Arrow batch read from Parquet, and CSV records per piece.
const PIECE_ROWS: usize = 16_384;

/// First sight of a style in the batch, for a placeholder catalog entry.
#[derive(Debug, Clone)]
pub(crate) struct StyleSeen {
    /// The earliest event, in microseconds since the epoch.
    pub first_event_us: i64,
    pub category: Option<String>,
    pub brand: Option<String>,
    pub price: Option<f64>,
}

/// What the batch saw of each style, by style id.
pub(crate) type StyleNotes = HashMap<String, StyleSeen, ahash::RandomState>;

/// Folds `later` (seen after `notes`) into `notes`: the earliest event, and the first
/// price, category and brand seen.
pub(crate) fn merge_notes(notes: &mut StyleNotes, later: StyleNotes) {
    for (style, seen) in later {
        match notes.get_mut(&style) {
            Some(s) => {
                s.first_event_us = s.first_event_us.min(seen.first_event_us);
                s.price = s.price.or(seen.price);
                s.category = s.category.take().or(seen.category);
                s.brand = s.brand.take().or(seen.brand);
            }
            None => {
                notes.insert(style, seen);
            }
        }
    }
}

/// A rejected row, ready for the rejects file.
pub(crate) struct RejectedRow {
    pub line: u64,
    pub kind: &'static str,
    /// The reason with its detail.
    pub reason: String,
    /// The row as CSV, so a field with a comma reads back as it was.
    pub raw: String,
}

/// What one piece of a source decoded to.
pub(crate) struct Decoded {
    pub source: Arc<PathBuf>,
    /// Valid rows in the `events` file schema, each batch within one day.
    pub days: Vec<(NaiveDate, RecordBatch)>,
    pub rejects: Vec<RejectedRow>,
    pub styles: StyleNotes,
    pub rows_read: u64,
    /// Rows parsed one at a time, not yet split by day.
    parsed: rows::EventColumns,
}

impl Decoded {
    fn new(source: &Arc<PathBuf>) -> Self {
        Self {
            source: Arc::clone(source),
            days: Vec::new(),
            rejects: Vec::new(),
            styles: StyleNotes::default(),
            rows_read: 0,
            parsed: rows::EventColumns::new(),
        }
    }

    fn reject(&mut self, line: u64, raw: &csv::StringRecord, reject: &Reject) -> Result<()> {
        let mut encoded = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        encoded
            .write_record(raw)
            .expect("a record is written to memory: no I/O, one record");
        let raw = encoded
            .into_inner()
            .map(|bytes| String::from_utf8_lossy(&bytes).trim_end().to_string())
            .unwrap_or_default();
        self.rows_read += 1;
        self.rejects.push(RejectedRow {
            line,
            kind: reject.kind,
            reason: reject.to_string(),
            raw,
        });
        Ok(())
    }

    /// Takes rows already in the `events` file schema (from `columnar`).
    fn add_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let times = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let styles = batch.column(3).as_string::<i32>();
        let prices: &Float64Array = batch.column(10).as_primitive();
        // Rows of one style tend to come together: note each run of them once.
        let mut run: Option<(&str, i64, Option<f64>)> = None;
        for i in 0..batch.num_rows() {
            let (style, micros) = (styles.value(i), times.value(i));
            let price = prices.is_valid(i).then(|| prices.value(i));
            match &mut run {
                Some((s, first, p)) if *s == style => {
                    *first = (*first).min(micros);
                    *p = p.or(price);
                }
                _ => {
                    if let Some((s, first, p)) = run.replace((style, micros, price)) {
                        self.note(s, first, p, None, None);
                    }
                }
            }
        }
        if let Some((s, first, p)) = run {
            self.note(s, first, p, None, None);
        }
        self.rows_read += batch.num_rows() as u64;
        self.split_by_day(batch)
    }

    /// Takes an event parsed on its own.
    fn push_event(&mut self, e: &Event) {
        self.note(
            &e.style_id,
            e.event_time.timestamp_micros(),
            e.price,
            e.category_hint,
            e.brand_hint,
        );
        self.parsed.push(e);
        self.rows_read += 1;
    }

    /// Splits the events parsed one at a time by day, once the piece is read.
    fn finish(mut self) -> Result<Self> {
        if self.parsed.len() > 0 {
            let batch = self.parsed.finish()?;
            self.split_by_day(&batch)?;
        }
        Ok(self)
    }

    fn note(
        &mut self,
        style: &str,
        micros: i64,
        price: Option<f64>,
        category: Option<&str>,
        brand: Option<&str>,
    ) {
        match self.styles.get_mut(style) {
            Some(seen) => {
                seen.first_event_us = seen.first_event_us.min(micros);
                seen.price = seen.price.or(price);
                if seen.category.is_none() {
                    seen.category = category.map(str::to_string);
                }
                if seen.brand.is_none() {
                    seen.brand = brand.map(str::to_string);
                }
            }
            None => {
                let seen = StyleSeen {
                    first_event_us: micros,
                    category: category.map(str::to_string),
                    brand: brand.map(str::to_string),
                    price,
                };
                self.styles.insert(style.to_string(), seen);
            }
        }
    }

    fn split_by_day(&mut self, batch: &RecordBatch) -> Result<()> {
        let times = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let day_of = |i: usize| times.value(i).div_euclid(DAY_US);
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let first = day_of(0);
        if (1..n).all(|i| day_of(i) == first) {
            self.days.push((day_date(first), batch.clone()));
            return Ok(());
        }
        let mut days: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for i in 0..n {
            days.entry(day_of(i)).or_default().push(i as u32);
        }
        for (day, rows) in days {
            let rows = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?;
            self.days.push((day_date(day), rows));
        }
        Ok(())
    }
}

/// One row group of a canonical Parquet source.
pub(crate) struct RowGroup {
    source: Arc<PathBuf>,
    metadata: ArrowReaderMetadata,
    header: Arc<Header>,
    index: usize,
    /// The 1-based position in the file of the group's first row: a reject's "line".
    first_line: u64,
}

/// For each day the row group statistics allow, the last row group (in reading order)
/// that may hold rows of it: once that group is read, the day is complete and can be
/// written while the rest is still being read. `None` when some group has no usable
/// statistics: then no day is complete before the end.
pub(crate) type DayHorizon = Option<BTreeMap<NaiveDate, usize>>;

/// The row groups of canonical Parquet sources, in reading order, and their horizon.
///
/// # Errors
/// A source that is not a readable Parquet file, lacks the events columns, or has a
/// row group of more than `max_group_bytes` uncompressed (each is decoded whole, a few
/// at a time).
pub(crate) fn parquet_row_groups(
    sources: &[PathBuf],
    max_group_bytes: u64,
) -> Result<(Vec<RowGroup>, DayHorizon)> {
    let mut groups = Vec::new();
    let mut horizon = Some(BTreeMap::new());
    for path in sources {
        let unreadable = |message: String| EngineError::BadInput {
            path: path.display().to_string(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
            .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
        let names: Vec<String> = metadata
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let header = Header::new(&csv::StringRecord::from(names), Format::EventsParquet)
            .map_err(|m| unreadable(format!("not an events file: {m}")))?;
        let header = Arc::new(header);
        let source = Arc::new(path.clone());
        let ranges = day_ranges(&metadata);
        let mut first_line = 1u64;
        for (index, group) in metadata.metadata().row_groups().iter().enumerate() {
            let size = u64::try_from(group.total_byte_size()).unwrap_or(u64::MAX);
            if size > max_group_bytes {
                return Err(unreadable(format!(
                    "row group {index} (rows {first_line} to {}) holds {} MiB uncompressed; at most {} MiB are decoded at once (--max-row-group-mib): rewrite the file with smaller row groups",
                    first_line + group.num_rows() as u64 - 1,
                    size >> 20,
                    max_group_bytes >> 20,
                )));
            }
            match (&mut horizon, ranges.as_ref().and_then(|r| r[index])) {
                (Some(days), Some((from, to))) => {
                    for day in from..=to {
                        days.insert(day_date(day), groups.len());
                    }
                }
                _ => horizon = None,
            }
            groups.push(RowGroup {
                source: Arc::clone(&source),
                metadata: metadata.clone(),
                header: Arc::clone(&header),
                index,
                first_line,
            });
            first_line += group.num_rows() as u64;
        }
    }
    Ok((groups, horizon))
}

/// The date of day number `day` (days since the epoch). Rows hold checked instants;
/// only statistics can name a day beyond chrono's range, and then one no row has.
fn day_date(day: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(day * DAY_US).map_or(NaiveDate::MIN, |t| t.date_naive())
}

/// Each row group's first and last day from its `event_time` statistics, where the
/// column is an instant in UTC (what `columnar` passes through) and every group has
/// them. A group spanning more than a year counts as having none: its days would
/// crowd the horizon for no gain.
fn day_ranges(metadata: &ArrowReaderMetadata) -> Option<Vec<Option<(i64, i64)>>> {
    let schema = metadata.schema();
    let field = schema.field_with_name("event_time").ok()?;
    if !matches!(field.data_type(), DataType::Timestamp(_, Some(_))) {
        return None;
    }
    let converter =
        StatisticsConverter::try_new("event_time", schema, metadata.parquet_schema()).ok()?;
    let groups = metadata.metadata().row_groups();
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let bound = |array: arrow::array::ArrayRef| cast(&array, &micros).ok();
    let mins = bound(converter.row_group_mins(groups.iter()).ok()?)?;
    let maxes = bound(converter.row_group_maxes(groups.iter()).ok()?)?;
    let (mins, maxes) = (
        mins.as_primitive::<TimestampMicrosecondType>(),
        maxes.as_primitive::<TimestampMicrosecondType>(),
    );
    Some(
        (0..groups.len())
            .map(|i| {
                let (lo, hi) = (mins.value(i), maxes.value(i));
                let (from, to) = (lo.div_euclid(DAY_US), hi.div_euclid(DAY_US));
                (mins.is_valid(i) && maxes.is_valid(i) && to >= from && to - from <= 366)
                    .then_some((from, to))
            })
            .collect(),
    )
}

/// Decodes one row group: rows valid as they stand pass as Arrow, the rest are read one
/// by one like canonical CSV rows, so the rules and reject reasons are the same.
pub(crate) fn decode_row_group(group: &RowGroup) -> Result<Decoded> {
    let source = &group.source;
    let unreadable = |message: String| EngineError::BadInput {
        path: source.display().to_string(),
        message,
    };
    let file = std::fs::File::open(source.as_path()).map_err(|e| io_err(source, e))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, group.metadata.clone())
        .with_row_groups(vec![group.index])
        .with_batch_size(PIECE_ROWS)
        .build()
        .map_err(|e| unreadable(format!("not a readable Parquet file: {e}")))?;
    let options = FormatOptions::default().with_null("");
    let mut out = Decoded::new(source);
    let rows = Format::EventsParquet.rows();
    let mut unused = RowMemory::default();
    let mut first_line = group.first_line;
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(format!("corrupt data: {e}")))?;
        let per_row: Vec<usize> = match columnar::split(&batch)? {
            Some(split) => {
                out.add_batch(&split.clean)?;
                split.others
            }
            None => (0..batch.num_rows()).collect(),
        };
        if !per_row.is_empty() {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            for row in per_row {
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
                match rows.parse(&group.header, &record, "", &mut unused) {
                    Ok(event) => out.push_event(&event),
                    Err(reject) => out.reject(first_line + row as u64, &record, &reject)?,
                }
            }
        }
        first_line += batch.num_rows() as u64;
    }
    out.finish()
}

/// Whole CSV records, as bytes, and the line the first one starts on.
pub(crate) struct CsvPiece {
    first_line: u64,
    bytes: Vec<u8>,
}

fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(false)
        .from_reader(bytes)
}

/// How to read the records of one CSV source.
pub(crate) struct CsvSource {
    pub source: Arc<PathBuf>,
    pub rows: &'static dyn RowFormat,
    pub header: Header,
    pub market: String,
    /// What an ordered format remembers across rows: its pieces are decoded in order,
    /// by one worker, with this.
    pub memory: Mutex<RowMemory>,
}

impl CsvSource {
    /// Reads the header of a source from its pieces.
    ///
    /// # Errors
    /// An empty file, or one without the format's columns.
    pub(crate) fn new(
        path: &Path,
        pieces: &mut CsvPieces<impl std::io::Read>,
        format: Format,
        market: &str,
    ) -> Result<Self> {
        let unreadable = |message: String| EngineError::BadInput {
            path: path.display().to_string(),
            message,
        };
        let mut record = csv::StringRecord::new();
        // Blank lines before the header are no records: skip them as the CSV reader does.
        loop {
            let Some(piece) = pieces.next_record()? else {
                return Err(unreadable("the file is empty".into()));
            };
            let read = csv_reader(&piece.bytes)
                .read_record(&mut record)
                .map_err(|e| unreadable(format!("cannot read a CSV header: {e}")))?;
            if read {
                break;
            }
        }
        let header = Header::new(&record, format)
            .map_err(|m| unreadable(format!("not a {format:?} file: {m}")))?;
        Ok(Self {
            source: Arc::new(path.to_path_buf()),
            rows: format.rows(),
            header,
            market: market.to_string(),
            memory: Mutex::new(RowMemory::default()),
        })
    }

    /// Whether pieces may be decoded on several workers at once.
    pub(crate) fn parallel(&self) -> bool {
        !self.rows.ordered()
    }

    pub(crate) fn decode(&self, piece: CsvPiece) -> Result<Decoded> {
        let mut out = Decoded::new(&self.source);
        // Only an ordered format's pieces share memory: the others must not wait on
        // each other here.
        let mut unshared = RowMemory::default();
        let mut shared = self
            .rows
            .ordered()
            .then(|| self.memory.lock().expect("no decoder panicked"));
        let memory = shared.as_deref_mut().unwrap_or(&mut unshared);
        let mut reader = csv_reader(&piece.bytes);
        let mut record = csv::StringRecord::new();
        // The line a record starts on, in the whole file.
        let line_of = |position: Option<&csv::Position>| {
            piece.first_line + position.map_or(1, csv::Position::line) - 1
        };
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => {
                    let reject = Reject {
                        kind: "not UTF-8",
                        detail: "the row is not valid UTF-8 text".into(),
                    };
                    let line = line_of(e.position());
                    out.reject(line, &csv::StringRecord::new(), &reject)?;
                    continue;
                }
                Err(e) => {
                    let line = line_of(e.position());
                    return Err(EngineError::BadInput {
                        path: self.source.display().to_string(),
                        message: format!("line {line}: {e}"),
                    });
                }
            }
            let parsed = self.rows.parse(&self.header, &record, &self.market, memory);
            match parsed {
                Ok(event) => out.push_event(&event),
                Err(reject) => out.reject(line_of(record.position()), &record, &reject)?,
            }
        }
        drop(shared);
        out.finish()
    }
}

/// Bytes of CSV per piece.
const PIECE_BYTES: usize = 4 << 20;

/// The longest CSV record read unless configured otherwise: events and catalog rows are
/// well under a kilobyte, and a record that runs on for megabytes is a quote that never
/// closes, which would otherwise be buffered to the end of the file.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// The largest Parquet row group read unless configured otherwise, uncompressed: a few
/// are decoded at once, whole, so this bounds their memory (pyarrow, DuckDB and Spark
/// write groups of 1 M rows or 128 MiB and less).
pub const DEFAULT_MAX_ROW_GROUP_BYTES: u64 = 512 << 20;

/// Cuts a CSV stream into pieces of whole records, without parsing it: a record ends
/// at a line feed outside quotes, and a quote inside a quoted field is written twice,
/// so counting quotes tells inside from outside (the CSV reader's own dialect).
pub(crate) struct CsvPieces<R> {
    path: PathBuf,
    input: R,
    pending: Vec<u8>,
    /// How far `pending` has been scanned, and whether that point is inside quotes.
    scanned: usize,
    in_quotes: bool,
    /// The end of the last whole record in `pending`, if any.
    boundary: Option<usize>,
    /// The line `pending` starts on.
    line: u64,
    eof: bool,
    max_record: usize,
}

impl<R: std::io::Read> CsvPieces<R> {
    /// Pieces of `input`; a record longer than `max_record` bytes fails the source.
    pub(crate) fn new(path: &Path, input: R, max_record: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            input,
            pending: Vec::new(),
            scanned: 0,
            in_quotes: false,
            boundary: None,
            line: 1,
            eof: false,
            max_record,
        }
    }

    /// The next piece of at least [`PIECE_BYTES`] (less at the end), or `None`.
    fn next_piece(&mut self) -> Result<Option<CsvPiece>> {
        self.take(PIECE_BYTES)
    }

    /// The next single record (the header), or `None`.
    fn next_record(&mut self) -> Result<Option<CsvPiece>> {
        self.take(0)
    }

    fn take(&mut self, min_bytes: usize) -> Result<Option<CsvPiece>> {
        loop {
            self.scan(min_bytes == 0);
            if let Some(end) = self.boundary.filter(|&end| end >= min_bytes) {
                return Ok(Some(self.split(end)));
            }
            if self.eof {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let end = self.pending.len();
                return Ok(Some(self.split(end)));
            }
            self.check_record_length()?;
            self.fill()?;
        }
    }

    /// The record after the last record end must not grow past the bound while it waits
    /// for its end.
    fn check_record_length(&self) -> Result<()> {
        let start = self.boundary.unwrap_or(0);
        if self.pending.len() - start <= self.max_record {
            return Ok(());
        }
        let line = self.line + memchr::memchr_iter(b'\n', &self.pending[..start]).count() as u64;
        let why = if self.in_quotes {
            "inside a quoted field that never closes (an unmatched `\"`?)"
        } else {
            "without a line end"
        };
        Err(EngineError::BadInput {
            path: self.path.display().to_string(),
            message: format!(
                "line {line}: the record starting there runs past {} bytes {why}; no record may be longer (--max-record-bytes)",
                self.max_record
            ),
        })
    }

    fn fill(&mut self) -> Result<()> {
        let start = self.pending.len();
        self.pending.resize(start + (1 << 20), 0);
        let read = loop {
            match self.input.read(&mut self.pending[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(EngineError::BadInput {
                        path: self.path.display().to_string(),
                        message: format!("cannot read: {e}"),
                    });
                }
            }
        };
        self.pending.truncate(start + read);
        self.eof = read == 0;
        Ok(())
    }

    /// Scans what is new in `pending` for quotes and record ends; with `first`, stops
    /// at the first record end.
    fn scan(&mut self, first: bool) {
        if first && self.boundary.is_some() {
            return;
        }
        let from = self.scanned;
        for i in memchr::memchr2_iter(b'"', b'\n', &self.pending[from..]) {
            let at = from + i;
            if self.pending[at] == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                self.boundary = Some(at + 1);
                if first {
                    self.scanned = at + 1;
                    return;
                }
            }
        }
        self.scanned = self.pending.len();
    }

    fn split(&mut self, end: usize) -> CsvPiece {
        let rest = self.pending.split_off(end);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let piece = CsvPiece {
            first_line: self.line,
            bytes,
        };
        self.line += memchr::memchr_iter(b'\n', &piece.bytes).count() as u64;
        self.scanned -= end.min(self.scanned);
        self.boundary = None;
        piece
    }
}

impl<R: std::io::Read> Iterator for CsvPieces<R> {
    type Item = Result<CsvPiece>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_piece().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::formats::blank_event;

    fn records(bytes: &[u8]) -> Vec<Vec<String>> {
        csv_reader(bytes)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn pieces_end_on_record_ends_and_know_their_lines() {
        let text = "a,b\n1,\"two\nlines\"\n2,\"say \"\"hi\n\"\"\"\n\n3,x\n4,\"a,b\"";
        // Every cut point: the smallest pieces the splitter can make.
        let mut pieces = CsvPieces::new(
            Path::new("t.csv"),
            text.as_bytes(),
            DEFAULT_MAX_RECORD_BYTES,
        );
        let mut cut = Vec::new();
        while let Some(piece) = pieces.next_record().unwrap() {
            cut.push(piece);
        }
        let joined: Vec<u8> = cut.iter().flat_map(|p| p.bytes.clone()).collect();
        assert_eq!(joined, text.as_bytes(), "nothing lost or repeated");
        let whole = records(text.as_bytes());
        let in_pieces: Vec<Vec<String>> = cut.iter().flat_map(|p| records(&p.bytes)).collect();
        assert_eq!(in_pieces, whole, "no record was cut in two");
        assert_eq!(whole.len(), 5);
        let lines: Vec<u64> = cut.iter().map(|p| p.first_line).collect();
        // Header on line 1, the two-line record on 2–3, the quoted quotes on 4–5, a blank
        // line 6, then 7 and 8.
        assert_eq!(lines, [1, 2, 4, 6, 7, 8]);
    }

    #[test]
    fn a_record_that_never_ends_fails_naming_its_line_instead_of_filling_memory() {
        // A quote opened on line 3 and never closed, then 3 MB of records.
        let mut text = String::from("a,b\n1,x\n2,\"open\n");
        while text.len() < 3 << 20 {
            text.push_str("3,y\n");
        }
        let mut pieces = CsvPieces::new(Path::new("t.csv"), text.as_bytes(), 1 << 20);
        let header = pieces.next_record().unwrap().unwrap();
        assert_eq!(header.bytes, b"a,b\n");
        let error = pieces
            .next_piece()
            .err()
            .expect("the record is too long")
            .to_string();
        assert!(error.contains("t.csv: line 3:"), "{error}");
        assert!(error.contains("never closes"), "{error}");
        // Within the bound, the same text is read to the end.
        let mut pieces = CsvPieces::new(Path::new("t.csv"), text.as_bytes(), 4 << 20);
        assert!(pieces.all(|p| p.is_ok()));
    }

    /// A Parquet file of canonical events at the given times (seconds into 2026).
    fn parquet_at(dir: &Path, name: &str, seconds: &[i64]) -> PathBuf {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let mut columns = rows::EventColumns::new();
        for (i, s) in seconds.iter().enumerate() {
            let id = format!("{name}-{i}");
            let at = start.to_utc() + chrono::Duration::seconds(*s);
            let mut e = blank_event(id.as_str().into(), at, "S1".into());
            e.market = "US";
            columns.push(&e);
        }
        let path = dir.join(name);
        let batch = columns.finish().unwrap();
        crate::parquet_io::write_parquet(&path, batch.schema(), &[batch]).unwrap();
        path
    }

    #[test]
    fn a_day_is_complete_after_the_last_row_group_that_may_hold_it() {
        let dir = tempfile::tempdir().unwrap();
        const DAY: i64 = 86_400;
        // The first file holds days 1 and 2, the second days 2 and 3.
        let a = parquet_at(dir.path(), "a.parquet", &[10, DAY + 10]);
        let b = parquet_at(dir.path(), "b.parquet", &[DAY + 20, 2 * DAY + 5]);
        let (groups, horizon) = parquet_row_groups(&[a, b], DEFAULT_MAX_ROW_GROUP_BYTES).unwrap();
        assert_eq!(groups.len(), 2);
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 1, d).unwrap();
        let horizon: Vec<(NaiveDate, usize)> = horizon.unwrap().into_iter().collect();
        assert_eq!(horizon, [(day(1), 0), (day(2), 1), (day(3), 1)]);
        let decoded = decode_row_group(&groups[1]).unwrap();
        let days: Vec<(NaiveDate, usize)> = decoded
            .days
            .iter()
            .map(|(d, b)| (*d, b.num_rows()))
            .collect();
        assert_eq!(days, [(day(2), 1), (day(3), 1)]);
        assert_eq!(decoded.rows_read, 2);
    }

    #[test]
    fn a_row_group_larger_than_allowed_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = parquet_at(dir.path(), "a.parquet", &[10, 20, 30]);
        let error = parquet_row_groups(std::slice::from_ref(&a), 16)
            .err()
            .expect("a 3-row group is over 16 bytes")
            .to_string();
        assert!(
            error.contains("a.parquet: row group 0 (rows 1 to 3)"),
            "{error}"
        );
        assert!(error.contains("--max-row-group-mib"), "{error}");
    }

    #[test]
    fn a_rejected_row_names_the_line_it_starts_on() {
        let text = "event_id,event_time,event_type,style_id,quantity,market\n\
                    e1,2026-01-01T00:00:00Z,view,S1,1,US\n\
                    e2,\"2026-01-01\nT00:00:00Z\",view,S1,1,US\n\
                    e3,2026-01-01T00:00:00Z,click,S1,1,US\n";
        let mut pieces = CsvPieces::new(
            Path::new("t.csv"),
            text.as_bytes(),
            DEFAULT_MAX_RECORD_BYTES,
        );
        let source =
            CsvSource::new(Path::new("t.csv"), &mut pieces, Format::EventsCsv, "").unwrap();
        let piece = pieces.next_piece().unwrap().unwrap();
        let decoded = source.decode(piece).unwrap();
        let lines: Vec<(u64, &str)> = decoded.rejects.iter().map(|r| (r.line, r.kind)).collect();
        assert_eq!(lines, [(3, "bad time"), (5, "unknown event type")]);
        assert_eq!(decoded.rows_read, 3);
        assert_eq!(
            decoded
                .days
                .iter()
                .map(|(_, b)| b.num_rows())
                .sum::<usize>(),
            1
        );
    }
}
