//! Cutouts saved to files for other tools: one TIFF per z slice ([`write_tiff_slices`]), and
//! what the CLI's HDF5 writer shares with it.
//!
//! Both take a cutout as this library returns it: `data` holds `shape[0] * shape[1] * shape[2] *
//! channels` elements of `dtype`, little-endian, in Fortran order `[x, y, z, c]` (x fastest).
//! Every [`DataType`] is stored as itself, bit for bit: no scaling, no conversion to 8 bits.
//!
//! ## HDF5
//!
//! One dataset, named by the caller, whose bytes are the cutout's own: read in C order (h5py,
//! numpy) its shape is `(z, y, x)` for one channel and `(c, z, y, x)` for more, in the HDF5 type
//! of `dtype` (`H5T_STD_U8LE` ... `H5T_IEEE_F64LE`). It is chunked (at most 64 voxels per axis
//! and 1 MiB a chunk, one channel a chunk) with the shuffle and gzip (level 4) filters, which
//! every HDF5 reader has built in. Attributes on the dataset: `resolution` (3 × float64, x, y,
//! z in nm), `voxel_offset` (3 × int64, x, y, z), `axes` (`"zyx"` or `"czyx"`, the order of the
//! dataset's dimensions) and `dtype` (the Precomputed name, e.g. `"uint16"`), the strings
//! variable-length UTF-8. An existing file at `path` is replaced.
//!
//! The HDF5 writer is the CLI's (`src/bin/cloudvolume/hdf5.rs`, crate feature `hdf5`, on by
//! default): it links the system libhdf5 (pkg-config; Debian `libhdf5-dev`), which the library
//! itself (rlib, static and shared) never does, so C, C++, Julia and MATLAB users link nothing
//! new. This module gives it the checks and element views it shares with the TIFF writer.
//! libhdf5 opens the file without close-on-exec and locks it: a process that another thread
//! starts while the file is being written inherits the descriptor, and readers that lock
//! (h5py) cannot open the file until that process exits.
//!
//! ## TIFF
//!
//! One uncompressed baseline TIFF (BigTIFF past 4 GB) per z slice, `dir/<z:05>.tif` with `z`
//! the absolute slice number (`offset_z + k`; negative slices are `-0001.tif` ...), rows top to
//! bottom in y, columns in x. The samples keep their type: `BitsPerSample` 8/16/32/64 with
//! `SampleFormat` unsigned, signed or IEEE float, little-endian.
//! - 1 channel: one greyscale page (`BlackIsZero`).
//! - 3 or 4 channels of uint8 or uint16: one RGB page (4: RGBA, the fourth sample an
//!   unassociated alpha), samples interleaved; tifffile reads `(y, x, c)`.
//! - any other channel count or type (2 channels, 5+, 3 float32 channels, ...): one greyscale
//!   page per channel in channel order; tifffile reads `(c, y, x)`.
//!
//! `dir` is created when missing; existing files of the same names are replaced.

pub mod objects;

use std::fs;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use std::borrow::Cow;

use tiff::encoder::{colortype, TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard};
use tiff::tags::Tag;

use crate::error::{Error, Result};
use crate::format::DataType;

/// An element type as it sits in a cutout buffer: little-endian bytes. Implemented only for the
/// primitive integers and floats, for which every bit pattern is a value.
pub trait Sample: Copy + Default {
    fn from_le(bytes: &[u8]) -> Self;
}

macro_rules! sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            fn from_le(bytes: &[u8]) -> Self {
                // `bytes` always holds size_of::<$t>() bytes (chunks_exact); no panic either way.
                bytes.try_into().map(<$t>::from_le_bytes).unwrap_or_default()
            }
        }
    )*};
}
sample!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// The elements of `bytes` (a whole number of them) in native order.
fn decode<T: Sample>(bytes: &[u8]) -> Vec<T> {
    bytes.chunks_exact(std::mem::size_of::<T>()).map(T::from_le).collect()
}

/// The elements of `bytes` without a copy where the host is little-endian and the buffer
/// aligned for `T`; else [`decode`]d.
pub fn typed<T: Sample>(bytes: &[u8]) -> Cow<'_, [T]> {
    if cfg!(target_endian = "little") {
        // SAFETY: `T` is a primitive integer or float (the `Sample` impls): every bit pattern
        // of its size is a valid value, and `align_to` only yields aligned, in-bounds elements.
        let (head, body, tail) = unsafe { bytes.align_to::<T>() };
        if head.is_empty() && tail.is_empty() {
            return Cow::Borrowed(body);
        }
    }
    Cow::Owned(decode(bytes))
}

/// Runs `$body` with `$t` the Rust type of the DataType `$dtype`.
macro_rules! with_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DataType::U8 => {
                type $t = u8;
                $body
            }
            DataType::I8 => {
                type $t = i8;
                $body
            }
            DataType::U16 => {
                type $t = u16;
                $body
            }
            DataType::I16 => {
                type $t = i16;
                $body
            }
            DataType::U32 => {
                type $t = u32;
                $body
            }
            DataType::I32 => {
                type $t = i32;
                $body
            }
            DataType::U64 => {
                type $t = u64;
                $body
            }
            DataType::I64 => {
                type $t = i64;
                $body
            }
            DataType::F32 => {
                type $t = f32;
                $body
            }
            DataType::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// Checks a cutout's description against its buffer; returns the voxels of one channel.
///
/// # Errors
/// No channels, an empty shape, or a buffer of another length (`InvalidArgument`, naming `what`).
pub fn check_cutout(what: &Path, data: &[u8], dtype: DataType, channels: usize, shape: [usize; 3]) -> Result<usize> {
    if channels == 0 {
        return Err(Error::invalid(format!("{}: a cutout needs at least one channel", what.display())));
    }
    if shape.contains(&0) {
        return Err(Error::invalid(format!("{}: empty cutout of shape {shape:?}: nothing to save", what.display())));
    }
    let voxels = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let expected = voxels.and_then(|v| v.checked_mul(channels)).and_then(|v| v.checked_mul(dtype.size()));
    match (voxels, expected) {
        (Some(voxels), Some(len)) if len == data.len() => Ok(voxels),
        _ => Err(Error::invalid(format!(
            "{}: a {}x{}x{} cutout of {channels} {} channel(s) takes {} bytes, the buffer has {}",
            what.display(),
            shape[0],
            shape[1],
            shape[2],
            dtype.name(),
            expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
            data.len()
        ))),
    }
}

/// Writes one TIFF per z slice of a cutout into `dir` (created when missing), named
/// `<z:05>.tif` with `z = offset_z + k`, and returns their paths in z order. Types and channels
/// are stored as the module documentation says: 1 channel greyscale, 3/4 uint8/uint16 channels
/// RGB/RGBA, anything else one greyscale page per channel; every sample type exact.
///
/// Errors: `InvalidArgument` for a buffer that does not match `dtype`, `channels` and `shape`
/// (or an empty cutout), `Unsupported` for a slice wider or taller than TIFF can say (2^32 - 1),
/// `Io` naming the directory or file for what the file system or the encoder refuses.
pub fn write_tiff_slices(
    dir: &Path,
    data: &[u8],
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    offset_z: i64,
) -> Result<Vec<PathBuf>> {
    check_cutout(dir, data, dtype, channels, shape)?;
    let [x, y, z] = shape;
    let (Ok(width), Ok(height)) = (u32::try_from(x), u32::try_from(y)) else {
        return Err(Error::unsupported(format!(
            "{}: a {x}x{y} slice is larger than a TIFF image can be (4294967295 per side)",
            dir.display()
        )));
    };
    if i64::try_from(z).ok().and_then(|n| offset_z.checked_add(n - 1)).is_none() {
        return Err(Error::invalid(format!("{}: slices from z = {offset_z} on overflow", dir.display())));
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("{}: creating the directory: {e}", dir.display())))?;

    let plane = x * y * dtype.size();
    // Past 4 GB per file (with room for the directory) a classic TIFF's 32-bit offsets fail.
    let big = plane.saturating_mul(channels) > 0xFFF0_0000;
    let mut out = Vec::with_capacity(z);
    for k in 0..z {
        let path = dir.join(format!("{:05}.tif", offset_z + k as i64));
        // Slice k of channel ch: contiguous rows of x, top row y = 0.
        let slices: Vec<&[u8]> =
            (0..channels).map(|ch| &data[(ch * z + k) * plane..(ch * z + k + 1) * plane]).collect();
        let written = if big {
            write_tiff::<TiffKindBig>(&path, &slices, dtype, width, height)
        } else {
            write_tiff::<TiffKindStandard>(&path, &slices, dtype, width, height)
        };
        written.map_err(|e| Error::io(format!("{}: writing TIFF slice {k} of {z}: {e}", path.display())))?;
        out.push(path);
    }
    Ok(out)
}

/// One file: `channels` planes of one slice, RGB(A) when they fit, else one page each.
fn write_tiff<K: TiffKind>(
    path: &Path,
    channels: &[&[u8]],
    dtype: DataType,
    width: u32,
    height: u32,
) -> std::result::Result<(), String> {
    let file = fs::File::create(path).map_err(|e| e.to_string())?;
    let mut w = BufWriter::new(file);
    {
        let mut enc = TiffEncoder::<_, K>::new_generic(&mut w).map_err(|e| e.to_string())?;
        let rgb = matches!(channels.len(), 3 | 4) && matches!(dtype, DataType::U8 | DataType::U16);
        if rgb {
            match (dtype, channels.len()) {
                (DataType::U8, 3) => rgb_page::<colortype::RGB8, _, K>(&mut enc, channels, width, height, false),
                (DataType::U8, _) => rgb_page::<colortype::RGBA8, _, K>(&mut enc, channels, width, height, true),
                (_, 3) => rgb_page::<colortype::RGB16, _, K>(&mut enc, channels, width, height, false),
                _ => rgb_page::<colortype::RGBA16, _, K>(&mut enc, channels, width, height, true),
            }
            .map_err(|e| e.to_string())?;
        } else {
            for plane in channels {
                let page = with_type!(dtype, T => grey_page::<T, _, K>(&mut enc, plane, width, height));
                page.map_err(|e| e.to_string())?;
            }
        }
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(())
}

/// The greyscale colour type of each sample type.
trait Grey: Sample {
    type Colour: colortype::ColorType<Inner = Self>;
}
macro_rules! grey {
    ($($t:ty => $c:ident),*) => {$( impl Grey for $t { type Colour = colortype::$c; } )*};
}
grey!(u8 => Gray8, i8 => GrayI8, u16 => Gray16, i16 => GrayI16, u32 => Gray32, i32 => GrayI32, u64 => Gray64,
      i64 => GrayI64, f32 => Gray32Float, f64 => Gray64Float);

fn grey_page<T: Grey, W: Write + Seek, K: TiffKind>(
    enc: &mut TiffEncoder<W, K>,
    plane: &[u8],
    width: u32,
    height: u32,
) -> tiff::TiffResult<()>
where
    [T]: tiff::encoder::TiffValue,
{
    enc.write_image::<T::Colour>(width, height, &typed::<T>(plane))
}

fn rgb_page<C, W: Write + Seek, K: TiffKind>(
    enc: &mut TiffEncoder<W, K>,
    channels: &[&[u8]],
    width: u32,
    height: u32,
    alpha: bool,
) -> tiff::TiffResult<()>
where
    C: colortype::ColorType,
    C::Inner: Sample,
    [C::Inner]: tiff::encoder::TiffValue,
{
    let planes: Vec<Vec<C::Inner>> = channels.iter().map(|p| decode::<C::Inner>(p)).collect();
    let n = planes.first().map_or(0, Vec::len);
    let mut pixels = Vec::with_capacity(n * planes.len());
    for i in 0..n {
        pixels.extend(planes.iter().map(|p| p[i]));
    }
    let mut image = enc.new_image::<C>(width, height)?;
    if alpha {
        // tiff's RGBA colour types write no ExtraSamples tag; readers need it for the 4th sample.
        image.encoder().write_tag(Tag::ExtraSamples, &[2u16][..])?;
    }
    image.write_data(&pixels)
}
