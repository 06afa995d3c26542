//! The Neuroglancer Precomputed format without I/O: the info file, the chunk grid and keys,
//! sharding, content encodings, new infos, graphene's URLs and label layout, DVID's, the
//! BOSS's and ndstore's URLs and metadata.

pub mod boss;
pub mod create;
pub mod dvid;
pub mod encoding;
pub mod graphene;
pub mod grid;
pub mod info;
pub mod mesh;
pub mod ocp;
pub mod sharding;
pub mod skeleton;

pub use encoding::ContentEncoding;
pub use grid::{Bbox, ChunkGrid};
pub use info::{DataType, Encoding, Info, LayerType, Scale};
