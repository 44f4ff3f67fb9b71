//! What a rollup generation was built from, so the next refresh knows which days
//! changed: the event files of every partition, and the window it was built for.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::source;

/// One event file as the rollup saw it. A file rewritten in place changes its length
/// or modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub name: String,
    pub len: u64,
    pub modified_ns: i128,
}

/// The event files of `events/`, per partition day.
pub type EventListing = BTreeMap<NaiveDate, Vec<FileStamp>>;

/// The published state of the rollup (`rollup/CURRENT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupState {
    pub generation: u64,
    /// The window the `window_` columns were cut with.
    pub window_seconds: i64,
    pub early_seconds: i64,
    /// The last day with events: rows exist for days up to and including it.
    pub through: NaiveDate,
    pub events: EventListing,
}

/// Lists the event files under `events_dir`.
///
/// # Errors
/// The directory cannot be read, or a partition folder is not a date.
pub fn list_events(events_dir: &Path) -> Result<EventListing> {
    let mut listing = EventListing::new();
    for file in source::event_files(events_dir)? {
        let Some(day) = partition_day(&file) else {
            continue;
        };
        let meta = std::fs::metadata(&file).map_err(|source| EngineError::Io {
            path: file.display().to_string(),
            source,
        })?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        listing.entry(day).or_default().push(FileStamp {
            name: file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            len: meta.len(),
            modified_ns,
        });
    }
    Ok(listing)
}

/// The day of an event file's partition folder.
fn partition_day(file: &Path) -> Option<NaiveDate> {
    file.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("event_date="))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// Whether `file` (under `events/`) is in the listing, by partition and name.
pub fn is_listed(listing: &EventListing, file: &Path) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy());
    partition_day(file)
        .and_then(|day| listing.get(&day))
        .is_some_and(|files| {
            files
                .iter()
                .any(|f| Some(f.name.as_str()) == name.as_deref())
        })
}

/// The earliest partition day whose files differ between two listings.
pub fn first_changed_day(before: &EventListing, now: &EventListing) -> Option<NaiveDate> {
    let days = before.keys().chain(now.keys());
    days.filter(|day| before.get(day) != now.get(day))
        .min()
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(name: &str, len: u64) -> FileStamp {
        FileStamp {
            name: name.into(),
            len,
            modified_ns: 1,
        }
    }

    #[test]
    fn the_first_changed_day_covers_added_removed_and_rewritten_files() {
        let d = |n: u32| NaiveDate::from_ymd_opt(2026, 9, n).unwrap();
        let before: EventListing = [(d(1), vec![stamp("a", 1)]), (d(2), vec![stamp("b", 1)])]
            .into_iter()
            .collect();
        assert_eq!(first_changed_day(&before, &before), None);
        let mut added = before.clone();
        added.insert(d(3), vec![stamp("c", 1)]);
        assert_eq!(first_changed_day(&before, &added), Some(d(3)));
        let mut late = added.clone();
        late.get_mut(&d(1)).unwrap().push(stamp("late", 1));
        assert_eq!(first_changed_day(&added, &late), Some(d(1)));
        let mut rewritten = before.clone();
        rewritten.insert(d(2), vec![stamp("b", 2)]);
        assert_eq!(first_changed_day(&before, &rewritten), Some(d(2)));
        let mut removed = before.clone();
        removed.remove(&d(2));
        assert_eq!(first_changed_day(&before, &removed), Some(d(2)));
    }
}
