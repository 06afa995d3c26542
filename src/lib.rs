//! cloudvolume: read Neuroglancer Precomputed volumes from file, http(s), gs and s3, natively,
//! and serve them to C, C++, Julia and MATLAB through one C ABI (`include/cloudvolume.h`).
//!
//! Layers, bottom up:
//! - [`store`]: where bytes live (file, http; gs and s3 over their HTTPS endpoints);
//! - [`mod@format`]: the info file, the chunk grid and keys (no I/O);
//! - [`codec`]: content compression and chunk encodings, decoding into the caller's buffer;
//! - [`volume`]: the engine that turns a box into parallel chunk reads;
//! - [`ffi`]: the C ABI over all of it.

pub mod cache;
pub mod cloudpath;
pub mod codec;
pub mod error;
pub mod ffi;
pub mod format;
pub mod options;
pub mod secrets;
pub mod store;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
pub use format::{Bbox, DataType, Encoding, Info};
pub use options::Options;
pub use volume::Volume;

/// The library version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
