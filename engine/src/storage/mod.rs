//! Where a dataset lives: a local folder, or a prefix on S3-compatible object storage
//! (`s3://bucket/prefix`).
//!
//! Every module that reads or writes a dataset does it through [`Storage`], by key
//! (`events/event_date=2026-09-01/part-1.parquet`), so the ingest journal, the rollup's
//! generations, decision runs and the override log keep one protocol on both. A write
//! is atomic: a key holds a whole object or none. Object stores cannot rename a folder
//! or append to a file, so the protocols use only what both can do: whole-object puts,
//! create-if-absent, copy and delete, with a small object written last as the commit.
//!
//! The methods block, like the `std::fs` calls they stand for. Called from async code
//! on a multi-threaded runtime, they first hand the worker's other tasks to another
//! thread, and object-store calls run on a runtime of the store's own (`bridge`): sync
//! code anywhere can make them, and none of them stalls a runtime's workers.

mod blob;
mod bridge;
mod local;
mod object;
pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use blob::Blob;

use crate::error::{EngineError, Result};

/// One stored file: its key under the dataset's root, its size and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified_ns: i128,
}

impl Entry {
    /// The key relative to the folder `dir` it was listed under.
    pub fn under(&self, dir: &str) -> &str {
        self.key
            .strip_prefix(dir)
            .map_or(self.key.as_str(), |k| k.trim_start_matches('/'))
    }

    /// The last segment of the key.
    pub fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }
}

/// A dataset's root: a folder or an object-store prefix. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Local(local::LocalDir),
    Object(object::ObjectPrefix),
}

/// A lock held until dropped (see [`Storage::lock`]).
#[derive(Debug)]
pub enum Lock {
    File(std::fs::File),
    Object(object::ObjectLock),
}

impl Storage {
    /// A local folder.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        Self::from(Backend::Local(local::LocalDir::new(root.into())))
    }

    /// `s3://bucket/prefix` (endpoint, region and credentials from `AWS_*` variables
    /// and `s3`), or else a local folder.
    ///
    /// # Errors
    /// A malformed URL, an unsupported scheme, or an S3 client that cannot be built.
    pub fn parse(location: &str, s3: &s3::S3Settings) -> Result<Self> {
        match location.split_once("://") {
            Some(("s3", _)) => Ok(Self::from(Backend::Object(object::ObjectPrefix::s3(
                location, s3,
            )?))),
            Some((scheme, _)) if scheme.len() > 1 => Err(EngineError::BadLocation {
                given: location.into(),
                message: format!("`{scheme}://` is not supported: use s3:// or a folder"),
            }),
            _ => Ok(Self::local(location)),
        }
    }

    fn from(backend: Backend) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    /// The folder, for a local dataset.
    pub fn local_root(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::Local(l) => Some(l.root()),
            Backend::Object(_) => None,
        }
    }

    /// The S3 settings this dataset's stores are built with (for its sessions' scans).
    pub fn s3_settings(&self) -> s3::S3Settings {
        match &*self.backend {
            Backend::Local(_) => s3::S3Settings::default(),
            Backend::Object(o) => o.settings().clone(),
        }
    }

    /// The root as users name it: a path or a URL.
    pub fn location(&self) -> String {
        match &*self.backend {
            Backend::Local(l) => l.root().display().to_string(),
            Backend::Object(o) => o.url(""),
        }
    }

    /// A key as users name it, for messages.
    pub fn display(&self, key: &str) -> String {
        match &*self.backend {
            Backend::Local(l) => l.path(key).display().to_string(),
            Backend::Object(o) => o.url(key),
        }
    }

    /// The URL a DataFusion listing table reads the folder `dir` at (ends with `/`).
    ///
    /// # Errors
    /// A local root that does not exist.
    pub fn table_url(&self, dir: &str) -> Result<String> {
        Ok(format!("{}/", self.file_url(dir)?.trim_end_matches('/')))
    }

    /// The URL DataFusion reads the one file `key` at.
    ///
    /// # Errors
    /// A local root that does not exist.
    pub fn file_url(&self, key: &str) -> Result<String> {
        match &*self.backend {
            Backend::Local(l) => l.absolute(key).map(|p| p.display().to_string()),
            Backend::Object(o) => Ok(o.url(key)),
        }
    }

    /// Whether the root exists (an object-store prefix exists when it holds anything).
    pub fn root_exists(&self) -> Result<bool> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => Ok(l.root().is_dir()),
            Backend::Object(o) => o.any_under(""),
        })
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => Ok(l.path(key).is_file()),
            Backend::Object(o) => o.exists(key),
        })
    }

    /// Every file under the folder `dir`, at any depth, sorted by key. A missing folder
    /// has none.
    pub fn list(&self, dir: &str) -> Result<Vec<Entry>> {
        bridge::blocking(|| {
            let mut entries = match &*self.backend {
                Backend::Local(l) => l.list(dir)?,
                Backend::Object(o) => o.list(dir)?,
            };
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(entries)
        })
    }

    pub fn read(&self, key: &str) -> Result<Bytes> {
        self.read_opt(key)?.ok_or_else(|| EngineError::Io {
            path: self.display(key),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }

    /// The whole file, or `None` when there is none.
    pub fn read_opt(&self, key: &str) -> Result<Option<Bytes>> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.read_opt(key),
            Backend::Object(o) => o.read_opt(key),
        })
    }

    /// A file to read parts of (a Parquet footer, some column chunks) without fetching
    /// the rest.
    pub fn open(&self, key: &str) -> Result<Blob> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.open(key),
            Backend::Object(o) => o.open(key),
        })
    }

    /// Writes `key` whole, replacing what was there; readers see the old or the new.
    pub fn write(&self, key: &str, body: Bytes) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.write(key, &body),
            Backend::Object(o) => o.write(key, body),
        })
    }

    /// Writes `key` only if nothing is there: `false` when it was taken. Two writers
    /// racing for one key cannot both win.
    pub fn create(&self, key: &str, body: Bytes) -> Result<bool> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.create(key, &body),
            Backend::Object(o) => o.create(key, body),
        })
    }

    /// A local path to build the file `key` at before [`Storage::put_file`]: the file's
    /// own place in a local dataset, a scratch folder for an object store.
    pub fn work_path(&self, key: &str) -> Result<PathBuf> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.work_path(key),
            Backend::Object(o) => o.work_path(key),
        })
    }

    /// Stores the finished local file `path` (from [`Storage::work_path`]) as `key`,
    /// durably; the local file is gone afterwards.
    pub fn put_file(&self, path: &Path, key: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.put_file(path, key),
            Backend::Object(o) => o.put_file(path, key),
        })
    }

    /// Moves `from` to `to` (on an object store: a copy, then a delete).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.rename(from, to),
            Backend::Object(o) => o.rename(from, to),
        })
    }

    /// Makes `to` a copy of `from`, which may change later.
    pub fn copy(&self, from: &str, to: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.copy(from, to),
            Backend::Object(o) => o.copy(from, to),
        })
    }

    /// Makes `to` a copy of `from`, when neither will ever change: a local dataset
    /// hard-links.
    pub fn link(&self, from: &str, to: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.link(from, to),
            Backend::Object(o) => o.copy(from, to),
        })
    }

    /// Removes `key`; a missing one is not an error.
    pub fn delete(&self, key: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.delete(key),
            Backend::Object(o) => o.delete(key),
        })
    }

    /// Removes everything under the folder `dir`.
    pub fn delete_all(&self, dir: &str) -> Result<()> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => l.delete_all(dir),
            Backend::Object(o) => {
                for entry in o.list(dir)? {
                    o.delete(&entry.key)?;
                }
                Ok(())
            }
        })
    }

    /// Takes the lock named `key`, across processes (and machines, on an object store),
    /// waiting for it when `wait`; `None` when it is held and not `wait`.
    ///
    /// On an object store the lock is an object created only if absent, naming its
    /// holder; a holder that died leaves it behind, and the error after waiting says
    /// which object to remove.
    pub fn lock(&self, key: &str, wait: bool) -> Result<Option<Lock>> {
        bridge::blocking(|| match &*self.backend {
            Backend::Local(l) => Ok(l.lock(key, wait)?.map(Lock::File)),
            Backend::Object(o) => Ok(o.lock(key, wait)?.map(Lock::Object)),
        })
    }

    /// Takes the lock named `key` for async code: tries, and sleeps without holding a
    /// runtime thread between tries, for at most `patience`; then a [`EngineError::Locked`]
    /// naming the holder (a conflict, not a failure: retry when it is done).
    ///
    /// # Errors
    /// The lock is still held after `patience`, or the storage fails.
    pub async fn lock_within(&self, key: &str, patience: Duration) -> Result<Lock> {
        let started = Instant::now();
        loop {
            if let Some(lock) = self.lock(key, false)? {
                return Ok(lock);
            }
            if started.elapsed() >= patience {
                let holder = match &*self.backend {
                    Backend::Object(o) => o.holder(key)?,
                    Backend::Local(_) => {
                        "another process on this dataset (an `assay ingest`, `decide` or server)"
                            .into()
                    }
                };
                return Err(EngineError::Locked {
                    path: self.display(key),
                    holder,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_keeps_whole_files_by_key_and_refuses_a_second_create() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path());
        storage
            .write("runs/a/1.json", Bytes::from_static(b"one"))
            .unwrap();
        storage
            .write("runs/a/1.json", Bytes::from_static(b"uno"))
            .unwrap();
        assert_eq!(storage.read("runs/a/1.json").unwrap(), "uno");
        assert_eq!(storage.read_opt("runs/missing").unwrap(), None);

        assert!(
            storage
                .create("log/7.json", Bytes::from_static(b"first"))
                .unwrap()
        );
        assert!(
            !storage
                .create("log/7.json", Bytes::from_static(b"second"))
                .unwrap()
        );
        assert_eq!(storage.read("log/7.json").unwrap(), "first");

        storage.rename("runs/a/1.json", "runs/b/1.json").unwrap();
        storage.link("log/7.json", "log/copy/7.json").unwrap();
        let keys: Vec<String> = storage
            .list("")
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        // No temporary file is left beside what was written.
        assert_eq!(keys, ["log/7.json", "log/copy/7.json", "runs/b/1.json"]);
        assert_eq!(storage.list("log/copy").unwrap()[0].name(), "7.json");

        storage.delete_all("log").unwrap();
        storage.delete("runs/b/1.json").unwrap();
        storage.delete("runs/b/1.json").unwrap();
        assert!(storage.list("").unwrap().is_empty());
    }

    #[test]
    fn a_held_lock_is_refused_without_waiting_and_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path());
        let held = storage.lock("ingest/.lock", false).unwrap();
        assert!(held.is_some());
        assert!(storage.lock("ingest/.lock", false).unwrap().is_none());
        drop(held);
        assert!(storage.lock("ingest/.lock", false).unwrap().is_some());
    }

    /// One runtime thread: the holder's release can only happen if waiting for the lock
    /// does not hold that thread.
    #[tokio::test(flavor = "current_thread")]
    async fn an_async_wait_for_a_lock_frees_the_runtime_and_gives_up_with_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path());
        let held = storage.lock("rollup/.lock", false).unwrap().unwrap();
        let err = storage
            .lock_within("rollup/.lock", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Conflict);
        assert!(err.to_string().contains("rollup/.lock"), "{err}");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
        });
        storage
            .lock_within("rollup/.lock", Duration::from_secs(30))
            .await
            .unwrap();
        release.await.unwrap();
    }

    #[test]
    fn locations_are_folders_or_s3_urls() {
        assert!(
            Storage::parse("/srv/data", &s3::S3Settings::default())
                .unwrap()
                .local_root()
                .is_some()
        );
        let err = Storage::parse("gs://bucket/x", &s3::S3Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gs://") && err.contains("s3://"), "{err}");
        let err = Storage::parse("s3:///prefix", &s3::S3Settings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3://BUCKET/PREFIX"), "{err}");
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("dir/", "a"), "dir/a");
    }
}
