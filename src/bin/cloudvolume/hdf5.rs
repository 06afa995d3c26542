//! HDF5 output of the CLI (`cloudvolume cutout ... -o FILE.h5`). It lives in the binary, not the
//! library, so that only the command links the system libhdf5 (crate feature `hdf5`, on by
//! default; pkg-config finds it, Debian `libhdf5-dev`); tests/export.rs includes this file too.
//!
//! One dataset whose bytes are the cutout's own: read in C order (h5py, numpy) its shape is
//! `(z, y, x)` for one channel and `(c, z, y, x)` for more, in the HDF5 type of the layer's
//! (`H5T_STD_U8LE` ... `H5T_IEEE_F64LE`). It is chunked (at most 64 voxels per axis and 1 MiB a
//! chunk, one channel a chunk) with the shuffle and gzip (level 4) filters, which every HDF5
//! reader has built in. Attributes on the dataset: `resolution` (3 x float64, x, y, z in nm),
//! `voxel_offset` (3 x int64, x, y, z), `axes` (`"zyx"` or `"czyx"`) and `dtype` (the
//! Precomputed name, e.g. `"uint16"`), the strings variable-length UTF-8. An existing file is
//! replaced.

use std::path::Path;

use cloudvolume::export::check_cutout;
use cloudvolume::{DataType, Error, Result};

/// Writes a cutout (Fortran `[x, y, z, c]`, little-endian, `channels` of `dtype` over `shape`)
/// to the HDF5 file `path` as the dataset `dataset`, laid out and described as the module says.
///
/// # Errors
/// A buffer that does not match `dtype`, `channels` and `shape`, an empty cutout or dataset
/// name (`InvalidArgument`); what HDF5 refuses (`Io`, naming `path`); a build without the
/// `hdf5` feature (`Unsupported`).
#[allow(clippy::too_many_arguments, dead_code)]
pub fn write_hdf5(
    path: &Path,
    data: &[u8],
    dtype: DataType,
    channels: usize,
    shape: [usize; 3],
    resolution: [f64; 3],
    offset: [i64; 3],
    dataset: &str,
) -> Result<()> {
    check_cutout(path, data, dtype, channels, shape)?;
    if dataset.is_empty() {
        return Err(Error::invalid(format!("{}: the HDF5 dataset needs a name", path.display())));
    }
    #[cfg(feature = "hdf5")]
    {
        let meta = h5::Meta { dtype, channels, shape, resolution, offset, dataset };
        let r = match dtype {
            DataType::U8 => h5::write::<u8>(path, data, &meta),
            DataType::I8 => h5::write::<i8>(path, data, &meta),
            DataType::U16 => h5::write::<u16>(path, data, &meta),
            DataType::I16 => h5::write::<i16>(path, data, &meta),
            DataType::U32 => h5::write::<u32>(path, data, &meta),
            DataType::I32 => h5::write::<i32>(path, data, &meta),
            DataType::U64 => h5::write::<u64>(path, data, &meta),
            DataType::I64 => h5::write::<i64>(path, data, &meta),
            DataType::F32 => h5::write::<f32>(path, data, &meta),
            DataType::F64 => h5::write::<f64>(path, data, &meta),
        };
        r.map_err(|e| Error::io(format!("{}: writing HDF5 dataset {dataset:?}: {e}", path.display())))
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (resolution, offset);
        Err(Error::unsupported(format!(
            "{}: this build of cloudvolume has no HDF5 output (build it with the default feature \"hdf5\")",
            path.display()
        )))
    }
}

#[cfg(feature = "hdf5")]
mod h5 {
    use std::path::Path;

    use cloudvolume::export::{typed, Sample};
    use cloudvolume::DataType;
    use hdf5::H5Type;
    use hdf5_metno as hdf5;

    pub(super) struct Meta<'a> {
        pub dtype: DataType,
        pub channels: usize,
        pub shape: [usize; 3],
        pub resolution: [f64; 3],
        pub offset: [i64; 3],
        pub dataset: &'a str,
    }

    /// Chunk extents `[z, y, x]`: at most 64 per axis and 1 MiB of `size`-byte elements.
    fn chunk_zyx(shape: [usize; 3], size: usize) -> [usize; 3] {
        let cx = shape[0].min(64);
        let cy = shape[1].min(64);
        let cz = shape[2].min(64).min((1 << 20) / (cx * cy * size)).max(1);
        [cz, cy, cx]
    }

    pub(super) fn write<T: Sample + H5Type>(path: &Path, data: &[u8], m: &Meta) -> hdf5::Result<()> {
        let [x, y, z] = m.shape;
        let multi = m.channels > 1;
        let [cz, cy, cx] = chunk_zyx(m.shape, m.dtype.size());
        let (dims, chunk) =
            if multi { (vec![m.channels, z, y, x], vec![1, cz, cy, cx]) } else { (vec![z, y, x], vec![cz, cy, cx]) };
        let file = hdf5::File::create(path)?;
        let ds = file.new_dataset::<T>().chunk(chunk).shuffle().deflate(4).shape(dims).create(m.dataset)?;
        // The buffer's element order is the dataset's C order: one write; HDF5 chunks and
        // compresses it (no copy of the buffer on little-endian hosts).
        ds.write_raw(&*typed::<T>(data))?;
        ds.new_attr::<f64>().shape([3]).create("resolution")?.write_raw(&m.resolution)?;
        ds.new_attr::<i64>().shape([3]).create("voxel_offset")?.write_raw(&m.offset)?;
        let text = |s: &str| s.parse::<hdf5::types::VarLenUnicode>().map_err(|e| hdf5::Error::from(e.to_string()));
        let axes = if multi { "czyx" } else { "zyx" };
        ds.new_attr::<hdf5::types::VarLenUnicode>().create("axes")?.write_scalar(&text(axes)?)?;
        ds.new_attr::<hdf5::types::VarLenUnicode>().create("dtype")?.write_scalar(&text(m.dtype.name())?)?;
        drop(ds);
        file.flush()?;
        file.close()
    }
}
