//! blosc1 (c-blosc 1.21, built by `blosc-src`): the bodies of the BOSS's `application/blosc`
//! cutouts. Decoding checks the header against the size the box needs before anything is
//! written, so a lying or truncated body is a clear error, never an overrun.

use std::ffi::c_void;

use crate::error::{Error, Result};

/// The blosc header's length.
const HEADER: usize = 16;

/// Decompress `data`, which must hold exactly `want` bytes.
///
/// # Errors
/// A body that is not blosc, is truncated, or holds another size (`Decode`, naming `url`).
pub fn decompress(data: &[u8], want: usize, url: &str) -> Result<Vec<u8>> {
    if data.len() < HEADER {
        return Err(Error::decode(format!("{url}: a {}-byte body is not a blosc buffer", data.len())));
    }
    let (mut nbytes, mut cbytes, mut blocksize) = (0usize, 0usize, 0usize);
    // SAFETY: the header is 16 readable bytes; the outputs are locals.
    unsafe { blosc_src::blosc_cbuffer_sizes(data.as_ptr().cast::<c_void>(), &mut nbytes, &mut cbytes, &mut blocksize) };
    if cbytes != data.len() {
        return Err(Error::decode(format!(
            "{url}: blosc header says {cbytes} compressed bytes, the body has {} (truncated or not blosc)",
            data.len()
        )));
    }
    if nbytes != want {
        return Err(Error::decode(format!("{url}: blosc body holds {nbytes} bytes, the box needs {want}")));
    }
    let mut checked = 0usize;
    // SAFETY: `data` is readable for its length.
    let ok = unsafe { blosc_src::blosc_cbuffer_validate(data.as_ptr().cast::<c_void>(), data.len(), &mut checked) };
    if ok != 0 || checked != want {
        return Err(Error::decode(format!("{url}: corrupt blosc header")));
    }
    let mut out = vec![0u8; want];
    // SAFETY: `out` has `want` writable bytes; blosc writes at most `destsize`.
    let n = unsafe {
        blosc_src::blosc_decompress_ctx(data.as_ptr().cast::<c_void>(), out.as_mut_ptr().cast::<c_void>(), want, 1)
    };
    if n < 0 || n as usize != want {
        return Err(Error::decode(format!("{url}: corrupt blosc body (blosc said {n})")));
    }
    Ok(out)
}

/// Compress `data` of `typesize`-byte elements (byte shuffle, blosclz, level 5).
pub fn compress(data: &[u8], typesize: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len() + HEADER + 64];
    // SAFETY: `data` readable, `out` writable for the lengths passed; the name is NUL-terminated.
    let n = unsafe {
        blosc_src::blosc_compress_ctx(
            5,
            1,
            typesize.clamp(1, 255),
            data.len(),
            data.as_ptr().cast::<c_void>(),
            out.as_mut_ptr().cast::<c_void>(),
            out.len(),
            c"blosclz".as_ptr(),
            0,
            1,
        )
    };
    // With destsize >= nbytes + 16 blosc always succeeds.
    out.truncate(n.max(0) as usize);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| ((i / 7) as u16).to_le_bytes()).collect();
        let c = compress(&data, 2);
        assert!(c.len() < data.len() / 4, "{}", c.len());
        assert_eq!(decompress(&c, data.len(), "u").unwrap(), data);
        let e = decompress(&c, data.len() - 2, "u").unwrap_err();
        assert!(e.message().contains("needs"), "{e}");
        let e = decompress(&c[..c.len() - 10], data.len(), "u").unwrap_err();
        assert!(e.message().contains("truncated"), "{e}");
        assert!(decompress(b"not blosc", 4, "u").is_err());
        let mut bad = c.clone();
        for b in bad[HEADER..].iter_mut() {
            *b ^= 0x5a;
        }
        // Garbage after a valid header: an error or (blosclz being lenient) other bytes, never a
        // crash or an overrun; the header check above is what guards the size.
        let _ = decompress(&bad, data.len(), "u");
    }
}
