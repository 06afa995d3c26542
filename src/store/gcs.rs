//! `gs://` buckets on Google Cloud Storage. Placeholder: anonymous reads of public objects.

use super::http::HttpStore;
use super::Store;
use crate::cloudpath::CloudPath;
use crate::error::Result;
use crate::options::Options;

/// Open the store of a `gs://` path.
///
/// # Errors
/// Unreadable credentials.
pub fn open(path: &CloudPath, opts: &Options) -> Result<Box<dyn Store>> {
    Ok(Box::new(HttpStore::new(&path.base, opts)?))
}
