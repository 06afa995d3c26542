//! Content compression of stored objects: gzip, brotli and zstd, both ways (brotli is read
//! only), plus zlib for PNG's image data.
//!
//! Every decompression takes a limit: the most bytes the caller can use (a raw chunk's exact
//! size, the most a compressed_segmentation chunk of its shape can take, the index sizes a
//! sharding spec allows). Output stops there: a stream that would pass it is refused as
//! `Decode` naming the object and the limit, having cost at most the limit in memory, however
//! far it would have expanded (a 3 MB gzip file can hold 3 GiB of zeros).

use std::cell::RefCell;
use std::io::Read;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::format::ContentEncoding;

/// An object as stored: its bytes and their content encoding.
#[derive(Debug)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub encoding: ContentEncoding,
}

/// Outputs up to this size are inflated in one call into a buffer of the limit's capacity (its
/// untouched pages cost nothing); past it, through a streaming decoder that grows its buffer.
const ONE_SHOT_MAX: usize = 256 << 20;

/// A libdeflate decompressor (through `libdeflate-sys`: the `_ex` calls, which say how much
/// input a gzip member took, are not in the `libdeflater` wrapper).
struct Inflater(NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: allocating a decompressor has no preconditions; NULL means out of memory.
        NonNull::new(unsafe { libdeflate_sys::libdeflate_alloc_decompressor() }).map(Inflater)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor and is freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
}

/// The error for a stream that expands past `limit`.
fn too_big(url: &str, what: &str, limit: usize) -> Error {
    Error::decode(format!(
        "{url}: {what} data expands past {limit} bytes, the most this object can decode to; refused as corrupt \
         (or a decompression bomb)"
    ))
}

/// The most bytes any compressor's output for `n` bytes of input takes (incompressible input
/// stored in blocks: a few bytes per block, a header and a trailer; zlib's `deflateBound` is
/// under a third of this slack): what a stored object of `n` decoded bytes may take.
pub fn stored_bound(n: usize) -> usize {
    n.saturating_add(n / 1024).saturating_add(1024)
}

/// Remove the content encoding of `obj`, refusing output past `limit` bytes. `url` names the
/// object in messages.
///
/// # Errors
/// A corrupt stream, or one that expands past `limit` (`Decode`).
pub fn decompress(obj: Object, limit: usize, url: &str) -> Result<Vec<u8>> {
    if obj.encoding == ContentEncoding::Identity {
        return Ok(obj.bytes);
    }
    let mut out = Vec::new();
    decompress_into(&obj.bytes, obj.encoding, &mut out, limit, url)?;
    Ok(out)
}

/// Remove `encoding` from `data` into `out` (cleared first; its capacity is reused), refusing
/// output past `limit` bytes. Identity data is not copied: the caller uses `data` itself
/// (returns false).
///
/// # Errors
/// As [`decompress`].
pub fn decompress_into(
    data: &[u8],
    encoding: ContentEncoding,
    out: &mut Vec<u8>,
    limit: usize,
    url: &str,
) -> Result<bool> {
    match encoding {
        ContentEncoding::Identity => return Ok(false),
        ContentEncoding::Gzip => gunzip_into(data, out, limit, url)?,
        ContentEncoding::Zstd => unzstd_into(data, out, limit, url)?,
        ContentEncoding::Brotli => {
            out.clear();
            out.reserve(data.len().saturating_mul(4).min(limit));
            let stream = brotli_decompressor::Decompressor::new(data, 1 << 16);
            read_bounded(stream, out, limit, url, "brotli")?;
        }
    }
    Ok(true)
}

/// Read `stream` to its end, appending to `out`, refusing to let `out` pass `limit` bytes.
fn read_bounded(stream: impl Read, out: &mut Vec<u8>, limit: usize, url: &str, what: &str) -> Result<()> {
    let budget = limit.saturating_sub(out.len()) as u64;
    stream
        .take(budget + 1)
        .read_to_end(out)
        .map_err(|e| Error::decode(format!("{url}: corrupt {what} stream: {e}")))?;
    if out.len() > limit {
        out.clear();
        out.shrink_to(limit);
        return Err(too_big(url, what, limit));
    }
    Ok(())
}

/// zstd: frames decoded in one call into a buffer of capacity `limit` (no window buffer is
/// allocated; concatenated frames are decoded too), or, for big limits, streamed with the
/// window bounded.
fn unzstd_into(data: &[u8], out: &mut Vec<u8>, limit: usize, url: &str) -> Result<()> {
    out.clear();
    if let Ok(Some(n)) = zstd::zstd_safe::get_frame_content_size(data) {
        if n > limit as u64 {
            return Err(too_big(url, "zstd", limit));
        }
    }
    if limit <= ONE_SHOT_MAX {
        out.reserve(limit);
        let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| Error::internal(format!("zstd: {e}")))?;
        return match dctx.decompress_to_buffer(data, out) {
            Ok(_) if out.len() <= limit => Ok(()),
            Ok(_) => {
                out.clear();
                Err(too_big(url, "zstd", limit))
            }
            Err(_) if out.capacity() >= limit && zstd_needs_more(data, limit) => {
                out.clear();
                Err(too_big(url, "zstd", limit))
            }
            Err(e) => {
                out.clear();
                Err(Error::decode(format!("{url}: corrupt zstd stream: {e}")))
            }
        };
    }
    let mut dec = zstd::stream::read::Decoder::new(data)
        .map_err(|e| Error::decode(format!("{url}: corrupt zstd stream: {e}")))?;
    // A window past the output is never needed, and a hostile header may ask for 2 GiB.
    let window = (usize::BITS - limit.leading_zeros()).clamp(23, 31);
    dec.window_log_max(window).map_err(|e| Error::internal(format!("zstd: {e}")))?;
    out.reserve(data.len().saturating_mul(4).min(limit));
    read_bounded(dec, out, limit, url, "zstd")
}

/// Whether a failed one-shot zstd decode failed for want of room: streaming it shows more
/// than `limit` bytes (the decoder's error alone does not say). Costs at most `limit` of
/// scratch, in 1 MiB pieces.
fn zstd_needs_more(data: &[u8], limit: usize) -> bool {
    let Ok(dec) = zstd::stream::read::Decoder::new(data) else { return false };
    let mut sink = [0u8; 1 << 16];
    let mut total = 0usize;
    let mut r = dec.take(limit as u64 + 1);
    loop {
        match r.read(&mut sink) {
            Ok(0) | Err(_) => return total > limit,
            Ok(n) => total += n,
        }
    }
}

/// Inflate a gzip stream (one member or several, trailing zero padding allowed) into `out`
/// (cleared first; its capacity is reused), refusing output past `limit` bytes.
///
/// # Errors
/// Not gzip, corrupt, or expanding past `limit` (`Decode`).
pub fn gunzip_into(data: &[u8], out: &mut Vec<u8>, limit: usize, url: &str) -> Result<()> {
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b {
        return Err(Error::decode(format!("{url}: not a gzip stream ({} bytes)", data.len())));
    }
    out.clear();
    let stream = |out: &mut Vec<u8>| stream_members(data, out, limit, url);
    let n = data.len();
    // The last member's trailer states its size (mod 2^32): for the usual single member, the
    // exact output size. Deflate expands at most 1032:1, so a trailer claiming more is a lie.
    let isize = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    let want = if isize <= limit && isize <= n.saturating_mul(1032) { isize } else { limit };
    if want > ONE_SHOT_MAX {
        return stream(out);
    }
    out.reserve(want);
    let mut pos = 0;
    loop {
        let room = limit.min(out.capacity()) - out.len();
        match inflate_member(&data[pos..], out, room) {
            Member::Done { consumed, produced } => {
                // SAFETY: libdeflate initialised `produced` bytes after the first `len`.
                unsafe { out.set_len(out.len() + produced) };
                pos += consumed;
            }
            Member::Full if out.capacity() >= limit => {
                out.clear();
                return Err(too_big(url, "gzip", limit));
            }
            Member::Full if limit > ONE_SHOT_MAX => {
                out.clear();
                return stream(out);
            }
            Member::Full => {
                // A short trailer (another member's, or one wrapped past 4 GiB): this member
                // again, with all the room the limit allows.
                out.reserve(limit - out.len());
                continue;
            }
            Member::Bad => {
                out.clear();
                return Err(Error::decode(format!("{url}: corrupt gzip stream")));
            }
        }
        let rest = &data[pos..];
        if rest.iter().all(|&b| b == 0) {
            return Ok(());
        }
        if rest.len() < 18 || rest[0] != 0x1f || rest[1] != 0x8b {
            out.clear();
            return Err(Error::decode(format!(
                "{url}: corrupt gzip stream: {} bytes of garbage after the end of a member",
                rest.len()
            )));
        }
    }
}

/// Inflate gzip members one after another through a streaming decoder (outputs too big to
/// reserve up front), refusing output past `limit`; as [`gunzip_into`] otherwise.
fn stream_members(data: &[u8], out: &mut Vec<u8>, limit: usize, url: &str) -> Result<()> {
    out.clear();
    let mut rest = data;
    while !rest.iter().all(|&b| b == 0) {
        if rest.len() < 18 || rest[0] != 0x1f || rest[1] != 0x8b {
            out.clear();
            return Err(Error::decode(format!(
                "{url}: corrupt gzip stream: {} bytes of garbage after the end of a member",
                rest.len()
            )));
        }
        let mut member = flate2::bufread::GzDecoder::new(rest);
        read_bounded(&mut member, out, limit, url, "gzip")?;
        rest = member.into_inner();
    }
    Ok(())
}

/// What inflating one gzip member brought.
enum Member {
    Done {
        consumed: usize,
        produced: usize,
    },
    /// The member needs more than the room given.
    Full,
    Bad,
}

/// Inflate the gzip member at the start of `data` into the spare capacity of `out` (at most
/// `room` bytes; nothing in `out` changes, its length included).
fn inflate_member(data: &[u8], out: &mut Vec<u8>, room: usize) -> Member {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Inflater::new();
        }
        let Some(inflater) = slot.as_ref() else { return Member::Bad };
        let spare = out.spare_capacity_mut();
        let room = room.min(spare.len());
        let (mut consumed, mut produced) = (0usize, 0usize);
        // SAFETY: the input is `data`; the output is `room` bytes of `out`'s spare capacity,
        // which libdeflate only writes; both outlive the call.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                inflater.0.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                spare.as_mut_ptr().cast(),
                room,
                &mut consumed,
                &mut produced,
            )
        };
        match r {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => Member::Done { consumed, produced },
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Member::Full,
            _ => Member::Bad,
        }
    })
}

/// Inflate a gzip stream, refusing output past `limit` bytes.
///
/// # Errors
/// As [`gunzip_into`].
pub fn gunzip(data: &[u8], limit: usize, url: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    gunzip_into(data, &mut out, limit, url)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Compression (the write path).

thread_local! {
    /// One libdeflate compressor per level, per thread (allocating one costs more than
    /// compressing a small chunk at low levels).
    static DEFLATERS: RefCell<[Option<libdeflater::Compressor>; 13]> = const { RefCell::new([const { None }; 13]) };
}

/// Run `f` with this thread's libdeflate compressor at `level` (clamped to 0..=12).
fn with_compressor<T>(level: i32, f: impl FnOnce(&mut libdeflater::Compressor) -> T) -> T {
    let level = level.clamp(0, 12);
    DEFLATERS.with(|c| {
        let mut c = c.borrow_mut();
        let slot = &mut c[level as usize];
        let comp = slot.get_or_insert_with(|| {
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level in 0..=12"))
        });
        f(comp)
    })
}

/// gzip (RFC 1952) at `level` 1..=12 (libdeflate levels; 6 default, 9 like cloud-volume and
/// tensorstore's shards). Levels outside the range are clamped to it.
pub fn gzip(data: &[u8], level: i32) -> Vec<u8> {
    with_compressor(level.clamp(1, 12), |c| {
        let mut out = vec![0u8; c.gzip_compress_bound(data.len())];
        let n = c.gzip_compress(data, &mut out).expect("gzip_compress_bound is enough");
        out.truncate(n);
        out
    })
}

/// zlib (RFC 1950) at `level` 0..=12, for PNG's IDAT.
pub fn zlib(data: &[u8], level: i32) -> Vec<u8> {
    with_compressor(level, |c| {
        let mut out = vec![0u8; c.zlib_compress_bound(data.len())];
        let n = c.zlib_compress(data, &mut out).expect("zlib_compress_bound is enough");
        out.truncate(n);
        out
    })
}

/// Compress `data` with `encoding` at `level` (None: 6 for gzip, 3 for zstd); identity returns
/// the data. `url` names the object in messages.
///
/// # Errors
/// brotli (not written by this library: `Unsupported`); a zstd failure (`Internal`).
pub fn compress(data: Vec<u8>, encoding: ContentEncoding, level: Option<i32>, url: &str) -> Result<Vec<u8>> {
    match encoding {
        ContentEncoding::Identity => Ok(data),
        ContentEncoding::Gzip => Ok(gzip(&data, level.unwrap_or(6).clamp(1, 12))),
        ContentEncoding::Zstd => zstd::bulk::compress(&data, level.unwrap_or(3))
            .map_err(|e| Error::internal(format!("{url}: zstd compression failed: {e}"))),
        ContentEncoding::Brotli => Err(Error::unsupported(format!("{url}: writing brotli is not supported"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const BIG: usize = 1 << 30;

    #[test]
    fn gzip_single_and_multi_member() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let one = gz(&data);
        assert_eq!(gunzip(&one, BIG, "k").unwrap(), data);
        assert_eq!(gunzip(&one, data.len(), "k").unwrap(), data);
        let mut two = gz(&data[..500]);
        two.extend(gz(&data[500..]));
        assert_eq!(gunzip(&two, BIG, "k").unwrap(), data);
        // Members of equal size: the last trailer states the first member's size too.
        let mut halves = gz(&data[..50_000]);
        halves.extend(gz(&data[50_000..]));
        assert_eq!(gunzip(&halves, BIG, "k").unwrap(), data);
        assert_eq!(gunzip(&halves, data.len(), "k").unwrap(), data);
        // Zero padding after the last member is allowed (as gzip and Python allow it).
        let mut padded = one.clone();
        padded.extend([0u8; 7]);
        assert_eq!(gunzip(&padded, BIG, "k").unwrap(), data);
        let mut garbage = one.clone();
        garbage.extend([1u8, 2, 3]);
        assert_eq!(gunzip(&garbage, BIG, "k").unwrap_err().kind(), ErrorKind::Decode);
    }

    #[test]
    fn outputs_past_the_limit_are_refused_by_name() {
        let data = vec![0u8; 1 << 20];
        let g = gz(&data);
        let e = gunzip(&g, 1000, "file:///l/1_1_1/0-8_0-8_0-8.gz").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.message().contains("0-8_0-8_0-8.gz") && e.message().contains("1000 bytes"), "{}", e.message());
        assert!(gunzip(&g, data.len() - 1, "u").is_err());
        assert_eq!(gunzip(&g, data.len(), "u").unwrap().len(), data.len());
        // A lying trailer (claims 10 bytes) does not get past the limit either.
        let mut liar = g.clone();
        let n = liar.len();
        liar[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        assert!(gunzip(&liar, 5000, "u").unwrap_err().message().contains("5000 bytes"));
        // Many members, each under the limit, adding up past it.
        let small = gz(&data[..4096]);
        let many: Vec<u8> = std::iter::repeat_n(small, 10).flatten().collect();
        assert!(gunzip(&many, 40_000, "u").unwrap_err().message().contains("expands past"));
        assert_eq!(gunzip(&many, 40_960, "u").unwrap().len(), 40_960);
        for enc in [ContentEncoding::Zstd, ContentEncoding::Brotli] {
            let bytes = match enc {
                ContentEncoding::Zstd => zstd::bulk::compress(&data, 3).unwrap(),
                _ => brotli_bytes(&data),
            };
            let e = decompress(Object { bytes: bytes.clone(), encoding: enc }, 1000, "key").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Decode, "{enc:?}");
            assert!(e.message().contains("key") && e.message().contains("1000 bytes"), "{enc:?}: {}", e.message());
            assert_eq!(decompress(Object { bytes, encoding: enc }, data.len(), "key").unwrap(), data);
        }
        // zstd frames without a content size, concatenated.
        let mut framed = Vec::new();
        for _ in 0..3 {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.include_contentsize(false).unwrap();
            e.write_all(&data[..5000]).unwrap();
            framed.extend(e.finish().unwrap());
        }
        assert_eq!(
            decompress(Object { bytes: framed.clone(), encoding: ContentEncoding::Zstd }, 15_000, "u").unwrap().len(),
            15_000
        );
        let e = decompress(Object { bytes: framed, encoding: ContentEncoding::Zstd }, 14_999, "u").unwrap_err();
        assert!(e.message().contains("expands past"), "{}", e.message());
    }

    /// A brotli stream of `data`: one metablock of uncompressed bytes (the format allows them;
    /// no encoder is needed).
    fn brotli_bytes(data: &[u8]) -> Vec<u8> {
        assert!(!data.is_empty() && data.len() <= 1 << 24);
        // WBITS 16 (one bit, 0); then MLEN-1 in nibbles, ISUNCOMPRESSED; a final empty metablock.
        let mut bits: Vec<bool> = vec![false];
        let push = |v: u64, n: u32, bits: &mut Vec<bool>| (0..n).for_each(|i| bits.push((v >> i) & 1 == 1));
        push(0, 1, &mut bits); // ISLAST = 0
        let m = (data.len() - 1) as u64;
        let nibbles = ((64 - m.leading_zeros()).div_ceil(4)).max(4);
        push(u64::from(nibbles - 4), 2, &mut bits);
        push(m, 4 * nibbles, &mut bits);
        push(1, 1, &mut bits); // ISUNCOMPRESSED
        while bits.len() % 8 != 0 {
            bits.push(false);
        }
        let mut out: Vec<u8> =
            bits.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |a, (i, &b)| a | (u8::from(b) << i))).collect();
        out.extend_from_slice(data);
        out.push(0b11); // ISLAST = 1, ISLASTEMPTY = 1
        out
    }

    #[test]
    fn corrupt_gzip_is_a_decode_error_naming_the_url() {
        let data = vec![7u8; 10_000];
        let mut g = gz(&data);
        let mid = g.len() / 2;
        g[mid] ^= 0xff;
        g[12] ^= 0x55;
        let e = gunzip(&g, BIG, "file:///x/1-2_3-4_5-6.gz").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(e.message().contains("1-2_3-4_5-6.gz"));
        let e = gunzip(&g[..10], BIG, "u").unwrap_err();
        assert!(e.message().contains("not a gzip"));
        let trunc = gz(&data);
        assert!(gunzip(&trunc[..trunc.len() - 9], BIG, "u").is_err());
    }

    #[test]
    fn brotli_and_zstd() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i / 7) as u8).collect();
        let z = zstd::bulk::compress(&data, 3).unwrap();
        let o = Object { bytes: z, encoding: ContentEncoding::Zstd };
        assert_eq!(decompress(o, BIG, "u").unwrap(), data);
        let o = Object { bytes: brotli_bytes(&data), encoding: ContentEncoding::Brotli };
        assert_eq!(decompress(o, BIG, "u").unwrap(), data);
        let o = Object { bytes: vec![1, 2, 3], encoding: ContentEncoding::Zstd };
        assert!(decompress(o, BIG, "u").is_err());
        let o = Object { bytes: vec![0xff; 20], encoding: ContentEncoding::Brotli };
        assert!(decompress(o, BIG, "u").is_err());
    }
}
