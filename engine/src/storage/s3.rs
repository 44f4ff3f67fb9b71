//! S3-compatible object stores: one way to configure them, for the dataset's own reads
//! and writes and for DataFusion's (and Ballista's) table scans.
//!
//! Endpoint, region and credentials come from the usual `AWS_*` variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`, …), overridden by [`S3Settings`] (the `[s3]` table of `serve`'s
//! config file).

use std::str::FromStr;
use std::sync::Arc;

use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use url::Url;

use crate::error::{EngineError, Result};

/// Settings for the S3 stores one dataset (and its sessions) builds, by
/// `object_store`'s names (`endpoint`, `region`, `access_key_id`, `allow_http`, …,
/// with or without `aws_`), over the environment's. Passed to what builds a store,
/// never kept process-wide: two datasets in one process may use two endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    pairs: Vec<(AmazonS3ConfigKey, String)>,
}

impl S3Settings {
    /// Settings from `(name, value)` pairs (the `[s3]` table of `serve`'s config file).
    ///
    /// # Errors
    /// A name `object_store` does not know, named.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut parsed = Vec::new();
        for (name, value) in pairs {
            let key = AmazonS3ConfigKey::from_str(name).map_err(|_| EngineError::BadLocation {
                given: format!("s3 setting `{name}`"),
                message: "not an S3 setting (e.g. endpoint, region, access_key_id, \
                          secret_access_key, allow_http)"
                    .into(),
            })?;
            parsed.push((key, value.to_string()));
        }
        Ok(Self { pairs: parsed })
    }

    /// A client for `bucket`: the environment's `AWS_*` settings, then these.
    ///
    /// # Errors
    /// Settings `object_store` refuses (a bad endpoint URL, say).
    pub fn client(&self, bucket: &str) -> Result<AmazonS3> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in &self.pairs {
            builder = builder.with_config(*key, value);
        }
        builder.build().map_err(|source| EngineError::ObjectStore {
            path: format!("s3://{bucket}"),
            source,
        })
    }
}

/// DataFusion's registry of object stores, which also builds an S3 store the first time
/// a table names a bucket: sessions, Ballista's scheduler and its executors all read
/// `s3://` tables with no registration of their own.
#[derive(Debug, Default)]
pub struct Registry {
    known: DefaultObjectStoreRegistry,
    settings: S3Settings,
}

impl Registry {
    /// A registry whose S3 stores are built with `settings`.
    pub fn new(settings: S3Settings) -> Self {
        Self {
            known: DefaultObjectStoreRegistry::default(),
            settings,
        }
    }
}

impl ObjectStoreRegistry for Registry {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => {
                let store: Arc<dyn ObjectStore> = Arc::new(
                    self.settings
                        .client(bucket)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                );
                self.known.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            _ => self.known.get_store(url),
        }
    }
}
