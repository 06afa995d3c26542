//! Chunk codecs, one module each, behind the [`Codec`] trait and found through one table
//! ([`codec_for`]), looked up once per scale. A codec decodes one chunk and writes the part of
//! it inside the cutout straight into that part of the caller's buffer (an [`OutView`]), and
//! encodes a chunk for the write path. Content compression (gzip, brotli, zstd) is
//! [`compression`]; it is removed before a codec sees the bytes.
//!
//! Adding a codec for an encoding the format names ([`Encoding`]) is one module implementing
//! [`Codec`] and one line in `CODECS`.

pub mod blosc;
pub mod compression;
pub mod cseg;
pub mod draco;
pub mod image;
pub mod jpeg;
pub mod out;
pub mod png;
pub mod raw;

pub use out::{fence_streaming_stores, fill_pattern, stream_row, OutView};

use crate::error::{Error, Result};
use crate::format::{Bbox, DataType, Encoding, Info};

/// Everything a codec needs to know about the chunk it decodes.
pub struct ChunkSpec<'a> {
    pub encoding: Encoding,
    pub dtype: DataType,
    pub channels: usize,
    /// The cell's voxels (clipped at the volume edge): the decoded chunk's shape.
    pub cell: Bbox,
    pub cseg_block: Option<[i64; 3]>,
    /// The chunk's URL, for messages.
    pub url: &'a str,
}

/// Slack allowed over an image chunk's decoded size (headers, tables, ancillary data).
const IMAGE_SLACK: usize = 1 << 20;

impl ChunkSpec<'_> {
    /// Bytes of the decoded chunk: voxels x channels x element size (saturating).
    pub fn decoded_len(&self) -> usize {
        usize::try_from(self.cell.voxels().unwrap_or(0))
            .unwrap_or(usize::MAX)
            .saturating_mul(self.channels)
            .saturating_mul(self.dtype.size())
    }

    /// The most bytes this chunk's payload (its content encoding removed, before the codec)
    /// can take: the codec's bound (for images by default four times the decoded size plus
    /// headers). Decompression stops there.
    pub fn payload_limit(&self) -> usize {
        match codec_for(self.encoding) {
            Some(c) => c.payload_limit(self),
            None => default_payload_limit(self),
        }
    }
}

fn default_payload_limit(spec: &ChunkSpec<'_>) -> usize {
    spec.decoded_len().saturating_mul(4).saturating_add(IMAGE_SLACK)
}

/// A chunk to encode: planar Fortran order `[x, y, z, c]` (x fastest, channel slowest,
/// little-endian elements) of the clipped cell shape, its length already checked.
pub struct Planar<'a> {
    pub dtype: DataType,
    pub channels: usize,
    pub shape: [usize; 3],
    pub data: &'a [u8],
    /// The chunk's URL, for messages.
    pub url: &'a str,
}

/// Parameters of the encoders that have any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// JPEG quality, 0-100 (cloud-volume's default 85; tensorstore's is 75).
    pub jpeg_quality: u8,
    /// PNG deflate level, 0-9 (0: stored).
    pub png_level: u8,
    /// The scale's `compressed_segmentation_block_size`; required for that encoding.
    pub cseg_block: Option<[i64; 3]>,
}

impl EncodeOptions {
    /// The options of scale `mip` of `info`: its `jpeg_quality` and `png_level` members when
    /// present and in range (else the defaults), and its compressed_segmentation block size.
    pub fn for_scale(info: &Info, mip: usize) -> EncodeOptions {
        let mut o = EncodeOptions::default();
        let member =
            |name: &str, max: u64| info.json["scales"][mip][name].as_u64().filter(|&v| v <= max).map(|v| v as u8);
        if let Some(q) = member("jpeg_quality", 100) {
            o.jpeg_quality = q;
        }
        if let Some(l) = member("png_level", 9) {
            o.png_level = l;
        }
        o.cseg_block = info.scales.get(mip).and_then(|s| s.cseg_block_size);
        o
    }
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { jpeg_quality: 85, png_level: 6, cseg_block: None }
    }
}

/// One chunk encoding: decoding into a view of the caller's buffer, and encoding.
pub trait Codec: Sync {
    /// Decode `data` (content encoding removed) and write its part `region` (inside
    /// `spec.cell`) into `out`.
    ///
    /// # Errors
    /// Corrupt data, or data that does not fit the chunk (`Decode`), naming `spec.url`.
    fn decode_into(&self, spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()>;

    /// Encode one chunk into the bytes stored for this encoding.
    ///
    /// # Errors
    /// A data type, channel count, shape or option the encoding cannot hold (`InvalidArgument`);
    /// an encoding that cannot be written (`Unsupported`).
    fn encode(&self, chunk: &Planar<'_>, opts: &EncodeOptions) -> Result<Vec<u8>>;

    /// The most bytes a payload of this chunk can take (decompression stops there).
    fn payload_limit(&self, spec: &ChunkSpec<'_>) -> usize {
        default_payload_limit(spec)
    }

    /// Whether single voxels decode without decoding the whole chunk (scattered points then
    /// decode only the voxels asked for).
    fn random_access(&self) -> bool {
        false
    }

    /// The `Content-Type` of stored chunks.
    fn content_type(&self) -> &'static str {
        "application/octet-stream"
    }

    /// Count the labels of `region` of the chunk straight from its encoding, handing each
    /// label with a number of its voxels to `add` (a label may come several times). None: the
    /// encoding cannot; the chunk is decoded and its voxels counted instead.
    fn count_labels(
        &self,
        spec: &ChunkSpec<'_>,
        data: &[u8],
        region: &Bbox,
        add: &mut dyn FnMut(u64, u64),
    ) -> Option<Result<()>> {
        let _ = (spec, data, region, add);
        None
    }
}

/// The codec of each encoding this library reads and writes.
static CODECS: [(Encoding, &dyn Codec); 4] = [
    (Encoding::Raw, &raw::Raw),
    (Encoding::CompressedSegmentation, &cseg::CompressedSegmentation),
    (Encoding::Jpeg, &jpeg::Jpeg),
    (Encoding::Png, &png::Png),
];

/// The codec of `encoding`, or None when this library has none for it.
pub fn codec_for(encoding: Encoding) -> Option<&'static dyn Codec> {
    CODECS.iter().find(|(e, _)| *e == encoding).map(|(_, c)| *c)
}

/// The codec of `encoding`, or `Unsupported` naming it and `what` (a chunk, a scale).
///
/// # Errors
/// No codec for the encoding.
pub fn require(encoding: Encoding, what: &str) -> Result<&'static dyn Codec> {
    codec_for(encoding)
        .ok_or_else(|| Error::unsupported(format!("{what}: the {} encoding is not supported yet", encoding.name())))
}

/// Decode `data` (content encoding already removed) and write `region` into `out`.
///
/// # Errors
/// As [`Codec::decode_into`]; no codec for the encoding (`Unsupported`).
pub fn decode_into(spec: &ChunkSpec<'_>, data: &[u8], region: &Bbox, out: &OutView<'_>) -> Result<()> {
    require(spec.encoding, spec.url)?.decode_into(spec, data, region, out)
}

/// Encode one chunk given in planar Fortran order `[x, y, z, c]` (x fastest, channel slowest,
/// little-endian elements) with clipped cell shape `shape`, into the stored bytes of `encoding`.
/// `url` names the chunk in messages.
///
/// # Errors
/// An empty shape or a wrong data length (`InvalidArgument`); as [`Codec::encode`].
pub fn encode_chunk(
    encoding: Encoding,
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    data: &[u8],
    opts: &EncodeOptions,
    url: &str,
) -> Result<Vec<u8>> {
    let [sx, sy, sz] = shape;
    let voxels = sx.checked_mul(sy).and_then(|v| v.checked_mul(sz));
    let want = voxels.and_then(|v| v.checked_mul(channels)).and_then(|v| v.checked_mul(dtype.size()));
    let Some(want) = want.filter(|&w| w > 0) else {
        return Err(Error::invalid(format!(
            "{url}: cannot encode a {} chunk of shape {sx}x{sy}x{sz} with {channels} channel(s)",
            encoding.name()
        )));
    };
    if data.len() != want {
        return Err(Error::invalid(format!(
            "{url}: {} chunk {sx}x{sy}x{sz} with {channels} channel(s) of {} needs {want} bytes, got {}",
            encoding.name(),
            dtype.name(),
            data.len()
        )));
    }
    let codec = codec_for(encoding).ok_or_else(|| {
        Error::unsupported(format!("{url}: writing the {} encoding is not supported", encoding.name()))
    })?;
    codec.encode(&Planar { dtype, channels, shape, data, url }, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_the_scale() {
        let info = Info::parse(
            br#"{"type":"image","data_type":"uint8","num_channels":1,"scales":[
              {"key":"a","size":[8,8,8],"resolution":[1,1,1],"chunk_sizes":[[8,8,8]],"encoding":"jpeg","jpeg_quality":92},
              {"key":"b","size":[4,4,4],"resolution":[2,2,2],"chunk_sizes":[[4,4,4]],"encoding":"png","png_level":300}]}"#,
            "mem://info",
        )
        .unwrap();
        let o = EncodeOptions::for_scale(&info, 0);
        assert_eq!((o.jpeg_quality, o.png_level, o.cseg_block), (92, 6, None));
        let o = EncodeOptions::for_scale(&info, 1);
        assert_eq!((o.jpeg_quality, o.png_level), (85, 6));
        assert_eq!(EncodeOptions::for_scale(&info, 7), EncodeOptions::default());
    }

    #[test]
    fn every_registered_codec_is_found_and_the_others_are_refused_by_name() {
        for (e, _) in &CODECS {
            assert!(codec_for(*e).is_some(), "{}", e.name());
        }
        let e = require(Encoding::Compresso, "mem://x").err().expect("no compresso codec yet");
        assert_eq!(e.kind(), crate::error::ErrorKind::Unsupported);
        assert!(e.message().contains("compresso"));
    }
}
