//! What a rollup generation was built from, so the next refresh knows which days
//! changed: the event files of every partition, and the layout of its rows.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::source;
use crate::sql::ViewParams;
use crate::storage::Storage;

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
    /// The shape of the rows (see [`RollupState::LAYOUT`]); 0 for rollups written
    /// before it was recorded, whose rows were cut to one policy's window.
    #[serde(default)]
    pub layout: u32,
    /// The last day with events: rows exist for days up to and including it.
    pub through: NaiveDate,
    pub events: EventListing,
}

impl RollupState {
    /// The layout this build writes: rows cut at each style's launch and its time of
    /// day, for any policy's whole-day windows.
    pub const LAYOUT: u32 = 1;

    /// Whether the rows are of this build's layout: others are rebuilt, never read.
    pub fn is_current(&self) -> bool {
        self.layout == Self::LAYOUT
    }

    /// Whether a funnel for `params` can read this rollup: rows of this layout, and
    /// windows of whole days to cut them with.
    pub fn serves(&self, params: &ViewParams) -> bool {
        self.is_current() && params.whole_day_windows()
    }
}

/// Lists the dataset's event files.
///
/// # Errors
/// The folder cannot be listed, or a partition folder is not a date.
pub fn list_events(storage: &Storage) -> Result<EventListing> {
    let mut listing = EventListing::new();
    for file in source::event_files(storage)? {
        let Some(day) = partition_of(&file.key) else {
            continue;
        };
        listing.entry(day).or_default().push(FileStamp {
            name: file.name().to_string(),
            len: file.size,
            modified_ns: file.modified_ns,
        });
    }
    Ok(listing)
}

/// The day of an event file's partition folder, from its key.
fn partition_of(key: &str) -> Option<NaiveDate> {
    key.rsplit('/').nth(1).and_then(source::partition_day)
}

/// Whether the event file `key` is in the listing, by partition and name.
pub fn is_listed(listing: &EventListing, key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    partition_of(key)
        .and_then(|day| listing.get(&day))
        .is_some_and(|files| files.iter().any(|f| f.name == name))
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
