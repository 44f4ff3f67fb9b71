//! S3-compatible object stores: one way to configure them, for the dataset's own reads
//! and writes and for DataFusion's (and Ballista's) table scans.
//!
//! Endpoint, region and credentials come from the usual `AWS_*` variables
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`, …), overridden by [`set_options`] (the `[s3]` table of `serve`'s
//! config file).

use std::str::FromStr;
use std::sync::{Arc, OnceLock, RwLock};

use datafusion::error::DataFusionError;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use url::Url;

use crate::error::{EngineError, Result};

fn options() -> &'static RwLock<Vec<(AmazonS3ConfigKey, String)>> {
    static OPTIONS: OnceLock<RwLock<Vec<(AmazonS3ConfigKey, String)>>> = OnceLock::new();
    OPTIONS.get_or_init(RwLock::default)
}

/// Settings for every S3 store this process builds from now on, by `object_store`'s
/// names (`endpoint`, `region`, `access_key_id`, `allow_http`, …, with or without
/// `aws_`), over the environment's.
///
/// # Errors
/// A name `object_store` does not know, named.
pub fn set_options<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<()> {
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
    *options().write().unwrap_or_else(|p| p.into_inner()) = parsed;
    Ok(())
}

/// A client for `bucket`.
///
/// # Errors
/// Settings `object_store` refuses (a bad endpoint URL, say).
pub fn build(bucket: &str) -> Result<AmazonS3> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in options().read().unwrap_or_else(|p| p.into_inner()).iter() {
        builder = builder.with_config(*key, value);
    }
    builder.build().map_err(|source| EngineError::ObjectStore {
        path: format!("s3://{bucket}"),
        source,
    })
}

/// DataFusion's registry of object stores, which also builds an S3 store the first time
/// a table names a bucket: sessions, Ballista's scheduler and its executors all read
/// `s3://` tables with no registration of their own.
#[derive(Debug, Default)]
pub struct Registry {
    known: DefaultObjectStoreRegistry,
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
                let store: Arc<dyn ObjectStore> =
                    Arc::new(build(bucket).map_err(|e| DataFusionError::External(Box::new(e)))?);
                self.known.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            _ => self.known.get_store(url),
        }
    }
}
