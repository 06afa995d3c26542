//! Content compression of stored objects: gzip, brotli and zstd.

use std::cell::RefCell;
use std::io::Read;

use crate::error::{Error, Result};
use crate::store::{ContentEncoding, Object};

/// Largest object we agree to inflate (guards against decompression bombs and absurd trailers).
const MAX_DECODED: usize = 4 << 30;

thread_local! {
    static INFLATER: RefCell<libdeflater::Decompressor> = RefCell::new(libdeflater::Decompressor::new());
}

/// Remove the content encoding of `obj`. `url` names the object in messages.
pub fn decompress(obj: Object, url: &str) -> Result<Vec<u8>> {
    match obj.encoding {
        ContentEncoding::Identity => Ok(obj.bytes),
        ContentEncoding::Gzip => gunzip(&obj.bytes, url),
        ContentEncoding::Brotli => {
            let mut out = Vec::with_capacity(obj.bytes.len() * 4);
            brotli_decompressor::Decompressor::new(&obj.bytes[..], 1 << 16)
                .take(MAX_DECODED as u64)
                .read_to_end(&mut out)
                .map_err(|e| Error::decode(format!("{url}: corrupt brotli stream: {e}")))?;
            Ok(out)
        }
        ContentEncoding::Zstd => {
            let mut out = Vec::with_capacity(obj.bytes.len() * 4);
            zstd::stream::read::Decoder::new(&obj.bytes[..])
                .and_then(|d| d.take(MAX_DECODED as u64).read_to_end(&mut out))
                .map_err(|e| Error::decode(format!("{url}: corrupt zstd stream: {e}")))?;
            Ok(out)
        }
    }
}

/// Remove `encoding` from `data` into `out` (cleared first; its capacity is reused).
/// Identity data is not copied: the caller uses `data` itself (returns false).
pub fn decompress_into(data: &[u8], encoding: ContentEncoding, out: &mut Vec<u8>, url: &str) -> Result<bool> {
    match encoding {
        ContentEncoding::Identity => Ok(false),
        ContentEncoding::Gzip => {
            gunzip_into(data, out, url)?;
            Ok(true)
        }
        other => {
            *out = decompress(Object { bytes: data.to_vec(), encoding: other }, url)?;
            Ok(true)
        }
    }
}

/// Inflate a gzip stream into `out` (cleared first; its capacity is reused).
pub fn gunzip_into(data: &[u8], out: &mut Vec<u8>, url: &str) -> Result<()> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(Error::decode(format!("{url}: not a gzip stream ({} bytes)", data.len())));
    }
    let n = data.len();
    let isize = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    if isize <= MAX_DECODED && isize <= data.len().saturating_mul(1032) {
        out.clear();
        out.resize(isize, 0);
        let done = INFLATER.with(|d| d.borrow_mut().gzip_decompress(data, out));
        match done {
            Ok(m) if m == isize => return Ok(()),
            Ok(_) | Err(libdeflater::DecompressionError::InsufficientSpace) => {}
            Err(libdeflater::DecompressionError::BadData) => {
                return Err(Error::decode(format!("{url}: corrupt gzip stream")));
            }
        }
    }
    out.clear();
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_DECODED as u64)
        .read_to_end(out)
        .map_err(|e| Error::decode(format!("{url}: corrupt gzip stream: {e}")))?;
    Ok(())
}

/// Inflate a gzip stream. A single-member stream (the usual case) is inflated in one call into a
/// buffer sized from its trailer; anything else goes through a streaming decoder.
pub fn gunzip(data: &[u8], url: &str) -> Result<Vec<u8>> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(Error::decode(format!("{url}: not a gzip stream ({} bytes)", data.len())));
    }
    let n = data.len();
    let isize = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    // Deflate expands at most 1032:1, so a larger trailer is corrupt (or a multi-member stream).
    if isize <= MAX_DECODED && isize <= data.len().saturating_mul(1032) {
        let mut out = vec![0u8; isize];
        let done = INFLATER.with(|d| d.borrow_mut().gzip_decompress(data, &mut out));
        match done {
            Ok(m) if m == isize => return Ok(out),
            Ok(_) | Err(libdeflater::DecompressionError::InsufficientSpace) => {}
            Err(libdeflater::DecompressionError::BadData) => {
                return Err(Error::decode(format!("{url}: corrupt gzip stream")));
            }
        }
    }
    // Multi-member streams, or a trailer that does not state the size.
    let mut out = Vec::with_capacity(isize.min(data.len().saturating_mul(8)));
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_DECODED as u64)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode(format!("{url}: corrupt gzip stream: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_single_and_multi_member() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let one = gz(&data);
        assert_eq!(gunzip(&one, "k").unwrap(), data);
        let mut two = gz(&data[..500]);
        two.extend(gz(&data[500..]));
        assert_eq!(gunzip(&two, "k").unwrap(), data);
    }

    #[test]
    fn corrupt_gzip_is_a_decode_error_naming_the_url() {
        let data = vec![7u8; 10_000];
        let mut g = gz(&data);
        let mid = g.len() / 2;
        g[mid] ^= 0xff;
        g[12] ^= 0x55;
        let e = gunzip(&g, "file:///x/1-2_3-4_5-6.gz").unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Decode);
        assert!(e.message().contains("1-2_3-4_5-6.gz"));
        let e = gunzip(&g[..10], "u").unwrap_err();
        assert!(e.message().contains("not a gzip"));
        let trunc = gz(&data);
        assert!(gunzip(&trunc[..trunc.len() - 9], "u").is_err());
    }

    #[test]
    fn brotli_and_zstd() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i / 7) as u8).collect();
        let z = zstd::bulk::compress(&data, 3).unwrap();
        let o = Object { bytes: z, encoding: ContentEncoding::Zstd };
        assert_eq!(decompress(o, "u").unwrap(), data);
        let o = Object { bytes: vec![1, 2, 3], encoding: ContentEncoding::Zstd };
        assert!(decompress(o, "u").is_err());
        let o = Object { bytes: vec![0xff; 20], encoding: ContentEncoding::Brotli };
        assert!(decompress(o, "u").is_err());
    }
}
