//! Publishing a batch all at once: every new file is written under a temporary name,
//! then a journal lists the renames that publish them. Writing the journal commits the
//! batch; the renames follow, and whoever opens the dataset next finishes them if the
//! writer died half way. Temporary files without a journal are an uncommitted batch's
//! and are removed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{IngestRequest, IngestSummary, Stager, catalog, existing_ids, io_err, rows};
use crate::error::{EngineError, Result};
use crate::parquet_io::AtomicParquetFile;
use crate::source::{Dataset, schema};

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    batch_id: String,
    /// (temporary, final) paths, applied in order; the batch's summary comes last.
    renames: Vec<(PathBuf, PathBuf)>,
}

pub(crate) fn summary_path(data: &Dataset, batch_id: &str) -> PathBuf {
    data.root
        .join("ingest")
        .join("batches")
        .join(format!("{batch_id}.json"))
}

fn temp_name(dest: &Path, batch_id: &str) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".ingest-{batch_id}.tmp"));
    dest.with_file_name(name)
}

/// Takes the dataset's ingest lock (one batch at a time, across processes).
pub(crate) fn lock(ingest_dir: &Path) -> Result<std::fs::File> {
    let path = ingest_dir.join(".lock");
    let file = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
    file.lock().map_err(|e| io_err(&path, e))?;
    Ok(file)
}

/// Finishes or discards an interrupted batch, unless an ingest is running right now
/// (it finishes its own). Does nothing on a dataset that was never ingested into.
///
/// # Errors
/// I/O while renaming or removing files.
pub fn recover(data: &Dataset) -> Result<()> {
    let ingest_dir = data.root.join("ingest");
    if !ingest_dir.is_dir() {
        return Ok(());
    }
    let path = ingest_dir.join(".lock");
    let Ok(file) = std::fs::File::create(&path) else {
        // A read-only dataset: nobody can be ingesting into it.
        return Ok(());
    };
    if file.try_lock().is_err() {
        return Ok(());
    }
    recover_locked(data)
}

pub(crate) fn recover_locked(data: &Dataset) -> Result<()> {
    let ingest_dir = data.root.join("ingest");
    for entry in std::fs::read_dir(&ingest_dir).map_err(|e| io_err(&ingest_dir, e))? {
        let path = entry.map_err(|e| io_err(&ingest_dir, e))?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.starts_with("journal-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let journal: Journal = serde_json::from_str(&text).map_err(|e| {
                EngineError::Ingest(format!("{}: unreadable journal: {e}", path.display()))
            })?;
            apply(&journal)?;
            tracing::info!(batch = %journal.batch_id, "finished publishing an interrupted batch");
            std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        } else if name.starts_with(".staging-") {
            std::fs::remove_dir_all(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    // Temporary files of a batch that never committed.
    let mut dirs = vec![
        data.root.clone(),
        ingest_dir.join("batches"),
        ingest_dir.join("rejects"),
    ];
    if let Ok(entries) = std::fs::read_dir(data.events_dir()) {
        dirs.extend(
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir()),
        );
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.contains(".ingest-") && name.ends_with(".tmp") {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
            }
        }
    }
    Ok(())
}

fn apply(journal: &Journal) -> Result<()> {
    for (from, to) in &journal.renames {
        // Done already when the temporary file is gone and the final one exists.
        if from.exists() {
            std::fs::rename(from, to).map_err(|e| io_err(to, e))?;
        } else if !to.exists() {
            return Err(EngineError::Ingest(format!(
                "batch {}: {} is missing and {} was never published",
                journal.batch_id,
                from.display(),
                to.display()
            )));
        }
    }
    Ok(())
}

/// What deduplicating one day's staged rows did.
struct DayOutcome {
    added: u64,
    dropped: u64,
    /// The day's new partition file, written under a temporary name, and its final name.
    rename: Option<(PathBuf, PathBuf)>,
}

/// Drops each day's rows whose ids its partition (or the batch) already has, and writes
/// the rest under temporary names. Days are independent, so they run on all cores; the
/// outcomes come back in day order, and the first failing day's error is the batch's.
fn dedupe_days(
    data: &Dataset,
    batch_id: &str,
    staged: &[(NaiveDate, Vec<PathBuf>)],
) -> Result<Vec<DayOutcome>> {
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, staged.len().max(1));
    let mut outcomes: Vec<Option<Result<DayOutcome>>> = staged.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((day, files)) = staged.get(i) else {
                            break;
                        };
                        done.push((i, dedupe_day(data, batch_id, *day, files)));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            for (i, outcome) in handle.join().expect("a dedupe worker does not panic") {
                outcomes[i] = Some(outcome);
            }
        }
    });
    outcomes
        .into_iter()
        .map(|o| o.expect("every day was taken by a worker"))
        .collect()
}

fn dedupe_day(
    data: &Dataset,
    batch_id: &str,
    day: NaiveDate,
    files: &[PathBuf],
) -> Result<DayOutcome> {
    let partition = data.events_dir().join(format!("event_date={day}"));
    std::fs::create_dir_all(&partition).map_err(|e| io_err(&partition, e))?;
    let mut ids = existing_ids(&partition)?;
    let dest = partition.join(format!("part-{batch_id}.parquet"));
    let tmp = temp_name(&dest, batch_id);
    let (added, dropped) = rows::copy_new_rows(files, &mut ids, &tmp)?;
    let rename = if added > 0 {
        sync(&tmp)?;
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

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(path, e))
}

/// Dedupes the staged rows against their partitions, writes every new file under a
/// temporary name, commits the journal, and publishes.
pub(crate) fn publish(
    data: &Dataset,
    request: &IngestRequest,
    batch_id: &str,
    mut stager: Stager,
    started: Instant,
) -> Result<IngestSummary> {
    stager.rejects.flush().map_err(|e| io_err(&stager.dir, e))?;
    let mut renames = Vec::new();
    let (mut added, mut dropped) = (0u64, 0u64);
    let mut days = Vec::new();
    let staged: Vec<(NaiveDate, Vec<PathBuf>)> = stager.staged_days()?.into_iter().collect();
    for (day, outcome) in staged
        .iter()
        .map(|(d, _)| *d)
        .zip(dedupe_days(data, batch_id, &staged)?)
    {
        (added, dropped) = (added + outcome.added, dropped + outcome.dropped);
        if let Some(rename) = outcome.rename {
            renames.push(rename);
            days.push(day);
        }
    }

    let change = catalog::update(
        &data.styles_file(),
        request.styles.as_deref(),
        &stager.styles,
    )?;
    if let Some(batch) = &change.catalog {
        let dest = data.styles_file();
        let tmp = temp_name(&dest, batch_id);
        write_batch(&tmp, batch)?;
        renames.push((tmp, dest));
    }
    if !data.receipts_file().is_file() {
        // A dataset needs its receipts table; without receipts nothing is in stock yet.
        let dest = data.receipts_file();
        let tmp = temp_name(&dest, batch_id);
        write_batch(
            &tmp,
            &arrow::array::RecordBatch::new_empty(schema::stock_receipts_schema()),
        )?;
        renames.push((tmp, dest));
    }
    let rejects_file = if stager.rejected > 0 {
        let dest = data
            .root
            .join("ingest")
            .join("rejects")
            .join(format!("{batch_id}.csv"));
        std::fs::create_dir_all(dest.parent().expect("has a parent"))
            .map_err(|e| io_err(&dest, e))?;
        let tmp = temp_name(&dest, batch_id);
        let staged = stager.dir.join("rejects.csv");
        std::fs::copy(&staged, &tmp).map_err(|e| io_err(&staged, e))?;
        renames.push((tmp, dest.clone()));
        Some(dest)
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
    let dest = summary_path(data, batch_id);
    std::fs::create_dir_all(dest.parent().expect("has a parent")).map_err(|e| io_err(&dest, e))?;
    let tmp = temp_name(&dest, batch_id);
    let text = serde_json::to_string_pretty(&summary).expect("summary serialises");
    std::fs::write(&tmp, text).map_err(|e| io_err(&tmp, e))?;
    renames.push((tmp, dest));

    let journal = Journal {
        batch_id: batch_id.to_string(),
        renames,
    };
    let ingest_dir = data.root.join("ingest");
    let journal_path = ingest_dir.join(format!("journal-{batch_id}.json"));
    let journal_tmp = temp_name(&journal_path, batch_id);
    std::fs::write(
        &journal_tmp,
        serde_json::to_string(&journal).expect("serialises"),
    )
    .map_err(|e| io_err(&journal_tmp, e))?;
    sync(&journal_tmp)?;
    // The commit point.
    std::fs::rename(&journal_tmp, &journal_path).map_err(|e| io_err(&journal_path, e))?;
    apply(&journal)?;
    std::fs::remove_file(&journal_path).map_err(|e| io_err(&journal_path, e))?;
    Ok(summary)
}

fn write_batch(path: &Path, batch: &arrow::array::RecordBatch) -> Result<()> {
    let mut file = AtomicParquetFile::create(path, batch.schema())?;
    file.write(batch)?;
    file.publish()?;
    sync(path)
}
