//! `s3://` buckets (AWS and S3-compatible stores). Placeholder: anonymous path-style HTTPS.

use super::http::HttpStore;
use super::Store;
use crate::cloudpath::CloudPath;
use crate::error::Result;
use crate::options::Options;

/// Open the store of an `s3://` path.
///
/// # Errors
/// Unreadable credentials.
pub fn open(path: &CloudPath, opts: &Options) -> Result<Box<dyn Store>> {
    Ok(Box::new(HttpStore::new(&path.base, opts)?))
}
