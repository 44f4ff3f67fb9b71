//! Publishing a batch all at once: every new file is stored under a temporary key, then
//! a journal lists the renames that publish them. Storing the journal (one object,
//! whole) commits the batch; the renames follow (on an object store, copies and
//! deletes), and whoever opens the dataset next finishes them if the writer died half
//! way. Temporary files without a journal are an uncommitted batch's and are removed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{DayRows, IngestRequest, IngestSummary, Stager, catalog, existing_ids, io_err, rows};
use crate::error::{EngineError, Result};
use crate::source::{self, Dataset, schema};
use crate::storage::{Lock, Storage};

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    batch_id: String,
    /// (temporary, final) keys, applied in order; the batch's summary comes last.
    renames: Vec<(String, String)>,
}

const DIR: &str = "ingest";
const LOCK: &str = "ingest/.lock";

pub(crate) fn summary_key(batch_id: &str) -> String {
    format!("{DIR}/batches/{batch_id}.json")
}

fn temp_key(dest: &str, batch_id: &str) -> String {
    format!("{dest}.ingest-{batch_id}.tmp")
}

/// Takes the dataset's ingest lock (one batch at a time, across processes).
pub(crate) fn lock(storage: &Storage) -> Result<Lock> {
    Ok(storage.lock(LOCK, true)?.expect("a waiting lock is taken"))
}

/// Finishes or discards an interrupted batch, unless an ingest is running right now
/// (it finishes its own). Does nothing on a dataset that was never ingested into.
///
/// # Errors
/// I/O while renaming or removing files.
pub fn recover(data: &Dataset) -> Result<()> {
    let storage = &data.storage;
    if storage.list(DIR)?.is_empty() {
        return Ok(());
    }
    match storage.lock(LOCK, false) {
        Ok(Some(_lock)) => recover_locked(data),
        // Held: the running ingest finishes its own batch.
        Ok(None) => Ok(()),
        // A read-only dataset: nobody can be ingesting into it.
        Err(_) => Ok(()),
    }
}

pub(crate) fn recover_locked(data: &Dataset) -> Result<()> {
    let storage = &data.storage;
    // One listing serves both passes: keys a journal renames away are gone by the time
    // the second pass deletes temporary files, and deleting a missing key is no error.
    let entries = storage.list("")?;
    let mut staging = std::collections::BTreeSet::new();
    for entry in entries
        .iter()
        .filter(|e| e.key.starts_with(&format!("{DIR}/")))
    {
        let relative = entry.under(DIR);
        if relative.starts_with("journal-") && relative.ends_with(".json") {
            let text = storage.read(&entry.key)?;
            let journal: Journal =
                serde_json::from_slice(&text).map_err(|e| EngineError::Journal {
                    path: storage.display(&entry.key),
                    message: format!("not a readable journal: {e}"),
                })?;
            apply(storage, &journal)?;
            tracing::info!(batch = %journal.batch_id, "finished publishing an interrupted batch");
            storage.delete(&entry.key)?;
        } else if let Some((folder, _)) = relative.split_once('/')
            && folder.starts_with(".staging-")
        {
            staging.insert(format!("{DIR}/{folder}"));
        }
    }
    for folder in staging {
        storage.delete_all(&folder)?;
    }
    // Temporary files of a batch that never committed.
    for entry in &entries {
        if entry.name().contains(".ingest-") && entry.key.ends_with(".tmp") {
            storage.delete(&entry.key)?;
        }
    }
    Ok(())
}

fn apply(storage: &Storage, journal: &Journal) -> Result<()> {
    for (from, to) in &journal.renames {
        // Done already when the temporary file is gone and the final one exists.
        if storage.exists(from)? {
            storage.rename(from, to)?;
        } else if !storage.exists(to)? {
            return Err(EngineError::Journal {
                path: storage.display(from),
                message: format!(
                    "batch {}: the file is missing and {} was never published",
                    journal.batch_id,
                    storage.display(to)
                ),
            });
        }
    }
    Ok(())
}

/// What deduplicating one day's rows did.
pub(crate) struct DayOutcome {
    added: u64,
    dropped: u64,
    /// The day's new partition file, stored under a temporary key, and its final key.
    rename: Option<(String, String)>,
}

/// Runs `feed` with a function that hands a complete day to one of `workers` writers,
/// which drop the rows whose ids the day's partition (or the batch) already has and
/// write the rest under a temporary name. Days are independent, so they are written
/// on all cores while `feed` is still reading; the outcomes come back in day order.
///
/// # Errors
/// The first failing day's error, else `feed`'s; the temporary files already written
/// are removed then.
pub(crate) fn write_days(
    data: &Dataset,
    batch_id: &str,
    workers: usize,
    feed: impl FnOnce(&dyn Fn(DayRows) -> Result<()>) -> Result<()>,
) -> Result<Vec<(NaiveDate, DayOutcome)>> {
    let failed = AtomicBool::new(false);
    let outcomes = Mutex::new(Vec::new());
    let (tx, rx) = sync_channel::<DayRows>(1);
    let rx = Mutex::new(rx);
    let fed = std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let day = rx.lock().expect("no writer panicked").recv();
                    let Ok(day) = day else { break };
                    let date = day.day;
                    let outcome = dedupe_day(data, batch_id, day);
                    if outcome.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    outcomes
                        .lock()
                        .expect("no writer panicked")
                        .push((date, outcome));
                }
            });
        }
        let write = |day: DayRows| {
            if failed.load(Ordering::Relaxed) {
                return Err(EngineError::WriterFailed);
            }
            tx.send(day).map_err(|_| EngineError::WriterFailed)
        };
        let fed = feed(&write);
        drop(tx);
        fed
    });
    let mut outcomes = outcomes.into_inner().expect("no writer panicked");
    outcomes.sort_by_key(|(day, _)| *day);
    if fed.is_ok() && outcomes.iter().all(|(_, o)| o.is_ok()) {
        return Ok(outcomes
            .into_iter()
            .map(|(day, o)| (day, o.expect("no failure")))
            .collect());
    }
    let mut error = None;
    for (_, outcome) in outcomes {
        match outcome {
            Ok(DayOutcome {
                rename: Some((tmp, _)),
                ..
            }) => {
                let _ = data.storage.delete(&tmp);
            }
            Ok(_) => {}
            // A day's own error says more than the reader's "a day failed".
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    Err(error.or(fed.err()).expect("a failure was seen"))
}

fn dedupe_day(data: &Dataset, batch_id: &str, day: DayRows) -> Result<DayOutcome> {
    let partition = format!("{}/event_date={}", source::EVENTS, day.day);
    let mut ids = existing_ids(&data.storage, &partition)?;
    ids.reserve(day.rows, 24);
    let dest = format!("{partition}/part-{batch_id}.parquet");
    let tmp = temp_key(&dest, batch_id);
    let local = data.storage.work_path(&tmp)?;
    let (added, dropped) = rows::copy_new_rows(day, &mut ids, &local)?;
    let rename = if added > 0 {
        data.storage.put_file(&local, &tmp)?;
        Some((tmp, dest))
    } else {
        None
    };
    Ok(DayOutcome {
        added,
        dropped,
        rename,
    })
}

/// Dedupes the staged rows against their partitions, writes every new file under a
/// temporary name, commits the journal, and publishes.
pub(crate) fn publish(
    data: &Dataset,
    request: &IngestRequest,
    batch_id: &str,
    mut stager: Stager,
    written: Vec<(NaiveDate, DayOutcome)>,
    started: Instant,
) -> Result<IngestSummary> {
    stager.rejects.flush().map_err(|e| io_err(&stager.dir, e))?;
    let mut renames = Vec::new();
    let (mut added, mut dropped) = (0u64, 0u64);
    let mut days = Vec::new();
    for (day, outcome) in written {
        (added, dropped) = (added + outcome.added, dropped + outcome.dropped);
        if let Some(rename) = outcome.rename {
            renames.push(rename);
            days.push(day);
        }
    }

    let storage = &data.storage;
    let change = catalog::update(storage, request.styles.as_deref(), &stager.styles)?;
    if let Some(batch) = &change.catalog {
        let tmp = temp_key(source::STYLES, batch_id);
        storage.write(&tmp, parquet_bytes(batch)?)?;
        renames.push((tmp, source::STYLES.to_string()));
    }
    if !storage.exists(source::RECEIPTS)? {
        // A dataset needs its receipts table; without receipts nothing is in stock yet.
        let tmp = temp_key(source::RECEIPTS, batch_id);
        let empty = arrow::array::RecordBatch::new_empty(schema::stock_receipts_schema());
        storage.write(&tmp, parquet_bytes(&empty)?)?;
        renames.push((tmp, source::RECEIPTS.to_string()));
    }
    let rejects_file = if stager.rejected > 0 {
        let dest = format!("{DIR}/rejects/{batch_id}.csv");
        let tmp = temp_key(&dest, batch_id);
        storage.put_file(&stager.dir.join("rejects.csv"), &tmp)?;
        renames.push((tmp, dest.clone()));
        Some(storage.display(&dest))
    } else {
        None
    };

    let seconds = started.elapsed().as_secs_f64();
    let summary = IngestSummary {
        batch_id: batch_id.to_string(),
        already_ingested: false,
        rows_read: stager.rows_read,
        events_added: added,
        duplicates_dropped: dropped,
        rejected: stager.rejected,
        reject_reasons: stager.reject_reasons.clone(),
        rejects_file,
        days,
        new_styles: change.added,
        unknown_styles: change.unknown,
        seconds,
        rows_per_second: stager.rows_read as f64 / seconds.max(1e-9),
    };
    let dest = summary_key(batch_id);
    let tmp = temp_key(&dest, batch_id);
    let text = serde_json::to_vec_pretty(&summary).expect("summary serialises");
    storage.write(&tmp, text.into())?;
    renames.push((tmp, dest));

    let journal = Journal {
        batch_id: batch_id.to_string(),
        renames,
    };
    let journal_key = format!("{DIR}/journal-{batch_id}.json");
    let text = serde_json::to_vec(&journal).expect("serialises");
    // The commit point: one object, stored whole.
    storage.write(&journal_key, text.into())?;
    apply(storage, &journal)?;
    storage.delete(&journal_key)?;
    Ok(summary)
}

/// A small table (the catalog, empty receipts) as a Parquet file's bytes.
fn parquet_bytes(batch: &arrow::array::RecordBatch) -> Result<bytes::Bytes> {
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        Vec::new(),
        batch.schema(),
        Some(crate::parquet_io::writer_properties()),
    )?;
    writer.write(batch)?;
    Ok(writer.into_inner()?.into())
}
