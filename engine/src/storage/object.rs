//! A dataset under an object-store prefix: whole-object puts, create-if-absent, and
//! copies where a folder would rename.

use std::io::Read;
use std::path::{Path as LocalPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use super::blob::RemoteFile;
use super::bridge::IoRuntime;
use super::{Blob, Entry, join, s3};
use crate::error::{EngineError, Result};

/// Files above this go up in parts.
const PART_BYTES: usize = 16 << 20;
/// How long [`ObjectPrefix::lock`] waits for a holder before naming it.
const LOCK_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub(super) struct ObjectPrefix {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket`
    base: String,
    /// The dataset's prefix in the bucket, without slashes at either end.
    prefix: String,
    /// Local room for files built before they are uploaded.
    scratch: tempfile::TempDir,
    settings: s3::S3Settings,
    /// Where this store's calls run; shared with the files and locks it hands out.
    io: Arc<IoRuntime>,
}

impl ObjectPrefix {
    pub(super) fn s3(location: &str, settings: &s3::S3Settings) -> Result<Self> {
        let bad = |message: &str| EngineError::BadLocation {
            given: location.into(),
            message: message.into(),
        };
        let url = url::Url::parse(location).map_err(|e| bad(&e.to_string()))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("expected s3://BUCKET/PREFIX"))?;
        let scratch = tempfile::Builder::new()
            .prefix("assay-scratch-")
            .tempdir()
            .map_err(|e| EngineError::Io {
                path: std::env::temp_dir().display().to_string(),
                source: e,
            })?;
        let io = IoRuntime::start().map_err(|e| EngineError::Io {
            path: location.into(),
            source: e,
        })?;
        Ok(Self {
            io: Arc::new(io),
            store: Arc::new(settings.client(bucket)?),
            base: format!("s3://{bucket}"),
            prefix: url.path().trim_matches('/').to_string(),
            scratch,
            settings: settings.clone(),
        })
    }

    pub(super) fn settings(&self) -> &s3::S3Settings {
        &self.settings
    }

    pub(super) fn url(&self, key: &str) -> String {
        let full = join(&self.prefix, key);
        format!("{}/{}", self.base, full.trim_end_matches('/'))
    }

    fn path(&self, key: &str) -> Result<Path> {
        Path::parse(join(&self.prefix, key)).map_err(|e| EngineError::BadLocation {
            given: self.url(key),
            message: e.to_string(),
        })
    }

    fn err(&self, key: &str) -> impl Fn(object_store::Error) -> EngineError + '_ {
        let path = self.url(key);
        move |source| EngineError::ObjectStore {
            path: path.clone(),
            source,
        }
    }

    pub(super) fn any_under(&self, dir: &str) -> Result<bool> {
        let (store, path) = (Arc::clone(&self.store), self.path(dir)?);
        self.io
            .block_on(async move { store.list(Some(&path)).try_next().await })
            .map(|first| first.is_some())
            .map_err(self.err(dir))
    }

    pub(super) fn exists(&self, key: &str) -> Result<bool> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        match self.io.block_on(async move { store.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    pub(super) fn list(&self, dir: &str) -> Result<Vec<Entry>> {
        let (store, path) = (Arc::clone(&self.store), self.path(dir)?);
        let metas = self
            .io
            .block_on(async move { store.list(Some(&path)).try_collect::<Vec<_>>().await })
            .map_err(self.err(dir))?;
        let root = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = m.location.as_ref().strip_prefix(&root)?.to_string();
                Some(Entry {
                    key,
                    size: m.size,
                    modified_ns: m.last_modified.timestamp_nanos_opt().map_or(0, i128::from),
                })
            })
            .collect())
    }

    pub(super) fn read_opt(&self, key: &str) -> Result<Option<Bytes>> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        match self
            .io
            .block_on(async move { store.get(&path).await?.bytes().await })
        {
            Ok(body) => Ok(Some(body)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    pub(super) fn open(&self, key: &str) -> Result<Blob> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        let meta = self
            .io
            .block_on(async move { store.head(&path).await })
            .map_err(self.err(key))?;
        Ok(Blob::Remote(RemoteFile {
            io: Arc::clone(&self.io),
            store: Arc::clone(&self.store),
            path: meta.location,
            size: meta.size,
            whole: std::sync::OnceLock::new(),
        }))
    }

    pub(super) fn write(&self, key: &str, body: Bytes) -> Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        self.io
            .block_on(async move { store.put(&path, PutPayload::from(body)).await })
            .map(|_| ())
            .map_err(self.err(key))
    }

    /// S3's `If-None-Match: *`: the store refuses the second of two racing creates.
    pub(super) fn create(&self, key: &str, body: Bytes) -> Result<bool> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .io
            .block_on(async move { store.put_opts(&path, body.into(), options).await })
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    pub(super) fn work_path(&self, key: &str) -> Result<PathBuf> {
        let path = self.scratch.path().join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::Io {
                path: parent.display().to_string(),
                source: e,
            })?;
        }
        Ok(path)
    }

    /// Uploads the file (in parts when large) and removes the local copy.
    pub(super) fn put_file(&self, file: &LocalPath, key: &str) -> Result<()> {
        let local_err = |e: std::io::Error| EngineError::Io {
            path: file.display().to_string(),
            source: e,
        };
        let size = std::fs::metadata(file).map_err(local_err)?.len();
        if size <= PART_BYTES as u64 {
            let body = std::fs::read(file).map_err(local_err)?;
            self.write(key, Bytes::from(body))?;
        } else {
            let (store, path) = (Arc::clone(&self.store), self.path(key)?);
            let mut reader = std::fs::File::open(file).map_err(local_err)?;
            let uploaded = self.io.block_on(async move {
                let mut upload = WriteMultipart::new_with_chunk_size(
                    store.put_multipart(&path).await?,
                    PART_BYTES,
                );
                let mut buf = vec![0u8; PART_BYTES];
                loop {
                    let n = reader
                        .read(&mut buf)
                        .map_err(|e| object_store::Error::Generic {
                            store: "local file",
                            source: Box::new(e),
                        })?;
                    if n == 0 {
                        break;
                    }
                    upload.wait_for_capacity(4).await?;
                    upload.write(&buf[..n]);
                }
                upload.finish().await
            });
            uploaded.map_err(self.err(key))?;
        }
        std::fs::remove_file(file).map_err(local_err)
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> Result<()> {
        let store = Arc::clone(&self.store);
        let (a, b) = (self.path(from)?, self.path(to)?);
        self.io
            .block_on(async move { store.rename(&a, &b).await })
            .map_err(self.err(from))
    }

    pub(super) fn copy(&self, from: &str, to: &str) -> Result<()> {
        let store = Arc::clone(&self.store);
        let (a, b) = (self.path(from)?, self.path(to)?);
        self.io
            .block_on(async move { store.copy(&a, &b).await })
            .map_err(self.err(from))
    }

    pub(super) fn delete(&self, key: &str) -> Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        match self.io.block_on(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key)(e)),
        }
    }

    pub(super) fn lock(&self, key: &str, wait: bool) -> Result<Option<ObjectLock>> {
        let holder = serde_json::json!({
            "pid": std::process::id(),
            "host": std::env::var("HOSTNAME").unwrap_or_default(),
            "since": chrono::Utc::now().to_rfc3339(),
        })
        .to_string();
        let started = Instant::now();
        loop {
            if self.create(key, Bytes::from(holder.clone()))? {
                return Ok(Some(ObjectLock {
                    io: Arc::clone(&self.io),
                    store: Arc::clone(&self.store),
                    path: self.path(key)?,
                }));
            }
            if !wait {
                return Ok(None);
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(EngineError::Locked {
                    path: self.url(key),
                    holder: self.holder(key)?,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Who holds the lock `key`, as its object says.
    pub(super) fn holder(&self, key: &str) -> Result<String> {
        Ok(self
            .read_opt(key)?
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default())
    }
}

/// Deletes its object when dropped.
#[derive(Debug)]
pub struct ObjectLock {
    io: Arc<IoRuntime>,
    store: Arc<dyn ObjectStore>,
    path: Path,
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        let (store, path) = (Arc::clone(&self.store), self.path.clone());
        if let Err(e) = self.io.block_on(async move { store.delete(&path).await }) {
            tracing::warn!(lock = %self.path, error = %e, "could not release a lock");
        }
    }
}
