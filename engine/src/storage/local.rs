//! A dataset in a local folder: atomic writes by temporary file, `fsync` and rename.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::{Blob, Entry};
use crate::error::{EngineError, Result};

#[derive(Debug)]
pub(super) struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn path(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            self.root.clone()
        } else {
            self.root.join(key)
        }
    }

    /// The path with the root resolved, as DataFusion's listing tables want it.
    pub(super) fn absolute(&self, key: &str) -> Result<PathBuf> {
        let root = self.root.canonicalize().map_err(|e| io(&self.root, e))?;
        Ok(if key.is_empty() { root } else { root.join(key) })
    }

    pub(super) fn list(&self, dir: &str) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        let mut folders = vec![self.path(dir)];
        while let Some(folder) = folders.pop() {
            let items = match std::fs::read_dir(&folder) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&folder, e)),
            };
            for item in items {
                let item = item.map_err(|e| io(&folder, e))?;
                let path = item.path();
                let meta = item.metadata().map_err(|e| io(&path, e))?;
                if meta.is_dir() {
                    folders.push(path);
                    continue;
                }
                let Some(key) = path
                    .strip_prefix(&self.root)
                    .ok()
                    .and_then(|k| k.to_str())
                    .map(|k| k.replace(std::path::MAIN_SEPARATOR, "/"))
                else {
                    continue;
                };
                let modified_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128);
                entries.push(Entry {
                    key,
                    size: meta.len(),
                    modified_ns,
                });
            }
        }
        Ok(entries)
    }

    pub(super) fn read_opt(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(body) => Ok(Some(Bytes::from(body))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    pub(super) fn open(&self, key: &str) -> Result<Blob> {
        let path = self.path(key);
        std::fs::File::open(&path)
            .map(Blob::File)
            .map_err(|e| io(&path, e))
    }

    pub(super) fn write(&self, key: &str, body: &[u8]) -> Result<()> {
        let dest = self.path(key);
        let tmp = self.temp_file(&dest, body)?;
        std::fs::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(&dest, e)
        })?;
        sync_dir(&dest)
    }

    /// A hard link fails when the name is taken, so of two writers only one wins.
    pub(super) fn create(&self, key: &str, body: &[u8]) -> Result<bool> {
        let dest = self.path(key);
        let tmp = self.temp_file(&dest, body)?;
        let linked = std::fs::hard_link(&tmp, &dest);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => sync_dir(&dest).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(&dest, e)),
        }
    }

    /// Writes `body` to a durable temporary file beside `dest`, named so that no table
    /// listing picks it up.
    fn temp_file(&self, dest: &Path, body: &[u8]) -> Result<PathBuf> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        ensure_parent(dest)?;
        let mut name = dest.file_name().unwrap_or_default().to_os_string();
        name.push(format!(
            ".{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = dest.with_file_name(name);
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(body)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp, e));
        }
        Ok(tmp)
    }

    pub(super) fn work_path(&self, key: &str) -> Result<PathBuf> {
        let path = self.path(key);
        ensure_parent(&path)?;
        Ok(path)
    }

    pub(super) fn put_file(&self, path: &Path, key: &str) -> Result<()> {
        let dest = self.path(key);
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(path, e))?;
        if path != dest {
            ensure_parent(&dest)?;
            std::fs::rename(path, &dest).map_err(|e| io(&dest, e))?;
        }
        Ok(())
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        ensure_parent(&to)?;
        std::fs::rename(&from, &to).map_err(|e| io(&from, e))
    }

    pub(super) fn copy(&self, from: &str, to: &str) -> Result<()> {
        let body = std::fs::read(self.path(from)).map_err(|e| io(&self.path(from), e))?;
        self.write(to, &body)
    }

    pub(super) fn link(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.path(from), self.path(to));
        ensure_parent(&to)?;
        std::fs::hard_link(&from, &to).map_err(|e| io(&to, e))
    }

    pub(super) fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }

    pub(super) fn delete_all(&self, dir: &str) -> Result<()> {
        let path = self.path(dir);
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }

    /// An OS file lock: released by the kernel when its holder dies.
    pub(super) fn lock(&self, key: &str, wait: bool) -> Result<Option<std::fs::File>> {
        let path = self.path(key);
        ensure_parent(&path)?;
        let file = std::fs::File::create(&path).map_err(|e| io(&path, e))?;
        if wait {
            file.lock().map_err(|e| io(&path, e))?;
        } else if file.try_lock().is_err() {
            return Ok(None);
        }
        Ok(Some(file))
    }
}

fn ensure_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))
        }
        _ => Ok(()),
    }
}

/// Flushes the folder holding `path`, so the new name survives a crash.
fn sync_dir(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn io(path: &Path, source: std::io::Error) -> EngineError {
    EngineError::Io {
        path: path.display().to_string(),
        source,
    }
}
