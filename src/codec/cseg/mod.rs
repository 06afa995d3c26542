//! The compressed_segmentation encoding (uint32 and uint64, any block size, any channel count):
//! [`decode`] writes straight into the output, [`encode`] writes the canonical encoding.

pub mod decode;
pub mod encode;

use super::{ChunkSpec, Codec, EncodeOptions, OutView, Planar};
use crate::error::{Error, Result};
use crate::format::Bbox;

pub use decode::{count_labels, decode_into};
pub use encode::encode_cseg;

/// The compressed_segmentation codec.
pub struct CompressedSegmentation;

impl Codec for CompressedSegmentation {
    fn decode_into(&self, spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
        decode::decode_into(spec, data, region, out)
    }

    fn encode(&self, chunk: &Planar<'_>, opts: &EncodeOptions) -> Result<Vec<u8>> {
        let block = opts.cseg_block.ok_or_else(|| {
            Error::invalid(format!("{}: compressed_segmentation needs a block size, none given", chunk.url))
        })?;
        encode_cseg(chunk.dtype, chunk.channels, chunk.shape, block, chunk.data, chunk.url)
    }

    /// The largest valid encoding of the cell: every block with 32-bit indices and a full table
    /// of its own, plus the headers.
    fn payload_limit(&self, spec: &ChunkSpec<'_>) -> usize {
        let block = spec.cseg_block.unwrap_or([8, 8, 8]);
        let shape = spec.cell.shape();
        let blocks: u128 = (0..3).map(|d| (shape[d].max(0) as u128).div_ceil(block[d].max(1) as u128)).product();
        let block_voxels: u128 = block.iter().map(|&b| b.max(1) as u128).product();
        let table_words = if spec.dtype.size() == 8 { 2 } else { 1 };
        let per_channel = 1 + blocks * (2 + block_voxels * (1 + table_words));
        usize::try_from(4 * (spec.channels as u128) * per_channel).unwrap_or(usize::MAX)
    }

    fn random_access(&self) -> bool {
        true
    }

    fn content_type(&self) -> &'static str {
        "image/x.compressed_segmentation"
    }

    fn count_labels(
        &self,
        spec: &ChunkSpec<'_>,
        data: &[u8],
        region: &Bbox,
        add: &mut dyn FnMut(u64, u64),
    ) -> Option<Result<()>> {
        Some(decode::count_labels(spec, data, region, add))
    }
}
