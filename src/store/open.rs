//! The factory: the store for a cloud path, each backend given its own small configuration
//! out of the store options, with the caches the options ask for in front.

use std::sync::Arc;

use super::cached::{layer_cache_dir, DiskCached, LruCached};
use super::file::FileStore;
use super::http::{HttpConfig, HttpStore};
use super::retry::Retry;
use super::{gcs, s3, Store};
use crate::cloudpath::{CloudPath, Protocol};
use crate::error::Result;
use crate::options::{StoreOptions, DEFAULT_NETWORK_FETCHES};

/// The HTTP client configuration of the store options.
pub fn http_config(opts: &StoreOptions) -> HttpConfig {
    HttpConfig {
        timeout_secs: opts.timeout_secs,
        connect_timeout_secs: opts.connect_timeout_secs,
        parallel: opts.parallel.unwrap_or(DEFAULT_NETWORK_FETCHES),
        retry: Retry::new(opts.max_attempts, opts.retry_budget_secs),
    }
}

/// Open the store for a cloud path, with the caches the options ask for in front: the disk
/// cache (`cache`, network protocols only) and then the in-memory LRU (`lru_bytes`).
///
/// # Errors
/// Unreadable credentials, a bad endpoint.
pub fn open(path: &CloudPath, opts: &StoreOptions) -> Result<Arc<dyn Store>> {
    let http = http_config(opts);
    let mut store: Arc<dyn Store> = match path.protocol {
        Protocol::File => Arc::new(FileStore::new(&path.base)),
        Protocol::Http => Arc::new(HttpStore::new(&path.base, &http)),
        // cloud-volume's `use_https`: a public bucket read over its HTTPS endpoint, unsigned.
        Protocol::Gs | Protocol::S3 if opts.use_https => Arc::new(HttpStore::new(&path.base, &http)),
        Protocol::Gs => {
            let agent = super::http::agent(&http);
            let auth = gcs::credentials(path.bucket.as_deref().unwrap_or(""), opts, &agent)?;
            let cfg = gcs::GcsConfig {
                endpoint: opts.gs_endpoint.clone().unwrap_or_else(|| gcs::GS_ENDPOINT.to_string()),
                checksum: opts.checksum,
                anonymous_option: opts.anonymous,
            };
            Arc::new(gcs::open(path, &cfg, auth, agent, &http)?)
        }
        Protocol::S3 => {
            let bucket = path.bucket.as_deref().unwrap_or("");
            let service = path.alias.as_deref().unwrap_or("aws");
            let found = s3::find_credentials(bucket, service, opts.secrets.as_ref().map(|s| &s.0), opts.anonymous)?;
            let cfg = s3::S3Config {
                region: opts.s3_region.clone(),
                custom_endpoint: opts.s3_endpoint.is_some(),
                checksum: opts.checksum,
            };
            Arc::new(s3::open(path, found, &cfg, &http))
        }
    };
    if let Some(root) = &opts.cache {
        if path.protocol != Protocol::File {
            store = Arc::new(DiskCached::new(store, layer_cache_dir(root, path)));
        }
    }
    if opts.lru_bytes > 0 {
        store = Arc::new(LruCached::new(store, opts.lru_bytes));
    }
    Ok(store)
}
