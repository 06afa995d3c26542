//! cloudvolume: read and write Neuroglancer Precomputed volumes on file, http(s), gs and s3,
//! natively, and serve them to C, C++, Julia and MATLAB through one C ABI
//! (`include/cloudvolume.h`).
//!
//! Layers, bottom up; each imports only the ones below it:
//! - [`mod@format`]: the info file, the chunk grid and keys, sharding, content encodings (no I/O);
//! - [`codec`]: chunk encodings and content compression, one module per codec behind one trait;
//! - [`store`]: where bytes live, by key (file, http; gs and s3 as signers on the HTTP client;
//!   caches), split into readable and writable capabilities;
//! - [`volume`]: a layer's read (and write) interface per scale, the Precomputed readers over
//!   chunk files and shards, and the handle's engine;
//! - [`ffi`]: the C ABI over all of it.
//!
//! Beside them: [`cloudpath`] (parsing paths), [`options`] (the options of a handle),
//! [`secrets`] (credential files), [`cache`] (a byte-bounded LRU), [`error`].

// Loops over the three axes index several arrays at once; iterators would hide that.
#![allow(clippy::needless_range_loop)]

pub mod cache;
pub mod cloudpath;
pub mod codec;
pub mod error;
pub mod export;
pub mod ffi;
pub mod format;
pub mod options;
pub mod render;
pub mod secrets;
pub mod store;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
pub use format::{Bbox, DataType, Encoding, Info};
pub use options::Options;
pub use volume::Volume;

/// The library version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
