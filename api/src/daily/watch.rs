//! `--watch LOCATION`: a landing folder or object-store prefix whose new files are taken
//! in, one batch each.
//!
//! A file is taken when two looks in a row find it the same size and write time (its
//! writer is done; writers that can should still write under a temporary name, which is
//! never taken, and rename). What was taken moves to `processed/`, what could not be
//! ingested to `failed/` with a `.error.txt` beside it saying why; neither is looked at
//! again. A server that dies between ingesting a file and moving it takes the file again
//! on restart, and the ingest, which knows every batch by its content, adds nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use assay_engine::storage::s3::S3Settings;
use assay_engine::storage::{Entry, Storage, join};

/// Where taken files go.
pub const PROCESSED: &str = "processed";
/// Where files that could not be ingested go.
pub const FAILED: &str = "failed";

/// Endings of files still being written by common tools.
const PARTIAL: [&str; 6] = [
    ".tmp",
    ".part",
    ".partial",
    ".crdownload",
    ".filepart",
    ".inprogress",
];

pub struct Landing {
    storage: Storage,
    /// Size and write time of each file at the last look.
    seen: HashMap<String, (u64, i128)>,
}

/// A file to ingest from, on this machine; a downloaded copy lives as long as this.
pub struct LocalCopy {
    pub path: PathBuf,
    _download: Option<tempfile::TempDir>,
}

impl Landing {
    /// The landing place at `location` (a folder, created if missing, or
    /// `s3://bucket/prefix`).
    ///
    /// # Errors
    /// A location that does not parse, or a folder that cannot be created.
    pub fn open(location: &str, s3: &S3Settings) -> anyhow::Result<Self> {
        let storage =
            Storage::parse(location, s3).with_context(|| format!("watched location {location}"))?;
        if let Some(root) = storage.local_root() {
            std::fs::create_dir_all(root)
                .with_context(|| format!("creating the watched folder {}", root.display()))?;
        }
        Ok(Self {
            storage,
            seen: HashMap::new(),
        })
    }

    /// A file as users name it.
    pub fn display(&self, key: &str) -> String {
        self.storage.display(key)
    }

    /// Files at the top level that have not changed since the last look, oldest name
    /// first.
    ///
    /// # Errors
    /// The location cannot be listed.
    pub fn ready(&mut self) -> anyhow::Result<Vec<Entry>> {
        let listed: Vec<Entry> = self
            .storage
            .list("")
            .with_context(|| format!("listing {}", self.storage.location()))?
            .into_iter()
            .filter(|e| is_candidate(&e.key))
            .collect();
        let mut ready = Vec::new();
        let mut seen = HashMap::new();
        for entry in listed {
            let state = (entry.size, entry.modified_ns);
            if self.seen.get(&entry.key) == Some(&state) {
                ready.push(entry);
            } else {
                seen.insert(entry.key, state);
            }
        }
        self.seen = seen;
        Ok(ready)
    }

    /// The file on this machine: itself in a folder, a downloaded copy (same name) from
    /// an object store.
    ///
    /// # Errors
    /// The file cannot be read or the copy written.
    pub fn local_copy(&self, entry: &Entry) -> anyhow::Result<LocalCopy> {
        if let Some(root) = self.storage.local_root() {
            return Ok(LocalCopy {
                path: root.join(&entry.key),
                _download: None,
            });
        }
        let dir = tempfile::tempdir().context("creating a folder for a downloaded file")?;
        let path = dir.path().join(entry.name());
        let body = self.storage.read(&entry.key)?;
        std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))?;
        Ok(LocalCopy {
            path,
            _download: Some(dir),
        })
    }

    /// Moves a taken file to `processed/`; returns where it went.
    ///
    /// # Errors
    /// The move fails (the file stays, and is taken again next time: adding nothing).
    pub fn mark_taken(&self, entry: &Entry) -> anyhow::Result<String> {
        self.move_to(PROCESSED, entry)
    }

    /// Moves a file that could not be ingested to `failed/`, with `error` beside it;
    /// returns where it went.
    ///
    /// # Errors
    /// The move fails.
    pub fn set_aside(&self, entry: &Entry, error: &str) -> anyhow::Result<String> {
        let to = self.free_key(FAILED, entry.name())?;
        self.storage
            .write(&format!("{to}.error.txt"), format!("{error}\n").into())?;
        self.storage.rename(&entry.key, &to)?;
        Ok(self.storage.display(&to))
    }

    fn move_to(&self, dir: &str, entry: &Entry) -> anyhow::Result<String> {
        let to = self.free_key(dir, entry.name())?;
        self.storage.rename(&entry.key, &to)?;
        Ok(self.storage.display(&to))
    }

    /// `dir/name`, or with a time stamp before the name when a file of that name is
    /// already there (the same name dropped again another day).
    fn free_key(&self, dir: &str, name: &str) -> anyhow::Result<String> {
        let plain = join(dir, name);
        if !self.storage.exists(&plain)? {
            return Ok(plain);
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        Ok(join(dir, &format!("{stamp}-{name}")))
    }
}

/// A file at the top level that is not hidden, a marker or still being written.
fn is_candidate(key: &str) -> bool {
    !key.contains('/')
        && !key.starts_with('.')
        && !key.starts_with('_')
        && !PARTIAL.iter().any(|end| key.ends_with(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_taken_once_it_stops_changing_and_never_from_the_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let mut landing =
            Landing::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        std::fs::write(dir.path().join("day1.csv"), "a").unwrap();
        std::fs::write(dir.path().join("day2.csv.part"), "a").unwrap();
        std::fs::write(dir.path().join(".hidden"), "a").unwrap();
        assert!(
            landing.ready().unwrap().is_empty(),
            "first look: not yet stable"
        );
        let ready = landing.ready().unwrap();
        assert_eq!(
            ready.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["day1.csv"]
        );

        let moved = landing.mark_taken(&ready[0]).unwrap();
        assert!(moved.ends_with("processed/day1.csv"), "{moved}");
        assert!(landing.ready().unwrap().is_empty());
        assert!(
            landing.ready().unwrap().is_empty(),
            "processed/ is not looked at"
        );

        // The same name again is kept apart from the first.
        std::fs::write(dir.path().join("day1.csv"), "b").unwrap();
        landing.ready().unwrap();
        let again = landing.ready().unwrap();
        let second = landing.mark_taken(&again[0]).unwrap();
        assert_ne!(second, moved);
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "a");
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "b");
    }

    #[test]
    fn a_growing_file_waits() {
        let dir = tempfile::tempdir().unwrap();
        let mut landing =
            Landing::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        let file = dir.path().join("day.csv");
        std::fs::write(&file, "a").unwrap();
        landing.ready().unwrap();
        std::fs::write(&file, "ab").unwrap();
        assert!(
            landing.ready().unwrap().is_empty(),
            "grew since the last look"
        );
        assert_eq!(landing.ready().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_file_is_set_aside_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut landing =
            Landing::open(dir.path().to_str().unwrap(), &S3Settings::default()).unwrap();
        std::fs::write(dir.path().join("bad.parquet"), "not parquet").unwrap();
        landing.ready().unwrap();
        let entry = landing.ready().unwrap().remove(0);
        let to = landing.set_aside(&entry, "not a Parquet file").unwrap();
        assert!(to.ends_with("failed/bad.parquet"), "{to}");
        let why = std::fs::read_to_string(format!("{to}.error.txt")).unwrap();
        assert!(why.contains("not a Parquet file"));
        assert!(landing.ready().unwrap().is_empty());
    }
}
