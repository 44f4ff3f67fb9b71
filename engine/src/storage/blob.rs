//! A stored file that the Parquet reader fetches parts of.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use super::bridge::IoRuntime;

/// A local file, or an object: a footer check fetches the footer alone; reading rows
/// fetches the object once.
#[derive(Debug)]
pub enum Blob {
    File(std::fs::File),
    Remote(RemoteFile),
}

#[derive(Debug)]
pub struct RemoteFile {
    pub(super) io: Arc<IoRuntime>,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) path: Path,
    pub(super) size: u64,
    /// The whole object, once rows are read. The Parquet reader asks for a reader "from
    /// here on" for every page, without an end, so fetching from there to the end each
    /// time read the object once per page.
    pub(super) whole: OnceLock<Bytes>,
}

impl RemoteFile {
    fn whole(&self) -> parquet::errors::Result<&Bytes> {
        if let Some(body) = self.whole.get() {
            return Ok(body);
        }
        let body = self.range(0, self.size)?;
        Ok(self.whole.get_or_init(|| body))
    }

    fn range(&self, start: u64, end: u64) -> parquet::errors::Result<Bytes> {
        let (store, path) = (Arc::clone(&self.store), self.path.clone());
        self.io
            .block_on(async move { store.get_range(&path, start..end).await })
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

impl Length for Blob {
    fn len(&self) -> u64 {
        match self {
            Blob::File(f) => f.len(),
            Blob::Remote(r) => r.size,
        }
    }
}

impl ChunkReader for Blob {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            Blob::File(f) => Ok(Box::new(f.get_read(start)?)),
            Blob::Remote(r) => Ok(Box::new(std::io::Cursor::new(
                r.whole()?.slice(start as usize..),
            ))),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Blob::File(f) => f.get_bytes(start, length),
            Blob::Remote(r) => match r.whole.get() {
                Some(body) => Ok(body.slice(start as usize..start as usize + length)),
                None => r.range(start, start + length as u64),
            },
        }
    }
}
