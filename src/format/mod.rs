//! The Neuroglancer Precomputed format without I/O: the info file, the chunk grid and keys.

pub mod grid;
pub mod info;
pub mod sharding;

pub use grid::{Bbox, ChunkGrid};
pub use info::{DataType, Encoding, Info, LayerType, Scale};
