//! The C ABI of writing: creating layers and infos, writing and deleting boxes, adding scales.

use std::ffi::{c_char, c_void, CString};

use super::*;
use crate::error::Error;
use crate::format::{Bbox, DataType, Encoding};
use crate::options::Options;
use crate::volume::Volume;

/// Create a layer at `cloudpath` from `info_json` (validated as on read) and open it. An
/// existing info is refused unless `options_json` has `"overwrite": true`. Options as for
/// `cv_open`, plus the write options `non_aligned_writes`, `compress` (null, false, true,
/// "gzip", "zstd"), `compress_level`, `delete_black_uploads`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn cv_create(
    cloudpath: *const c_char,
    info_json: *const c_char,
    options_json: *const c_char,
    out: *mut *mut cv_volume,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let path = str_arg(cloudpath, "cloudpath")?;
        let info = str_arg(info_json, "info_json")?;
        let opts = if options_json.is_null() { None } else { Some(str_arg(options_json, "options_json")?) };
        let vol = Volume::create(path, info, Options::parse(opts)?)?;
        *out = Box::into_raw(Box::new(cv_volume { magic: MAGIC_LIVE, vol }));
        Ok(())
    })
}

/// Write the box `[lo, hi)` at `mip` from `buf`: same layout and exact length as
/// `cv_cutout_into`. The box must lie inside the volume and on the chunk grid (or reach the
/// volume edge) unless the handle has `non_aligned_writes`; sharded scales take whole shards.
/// Each chunk is replaced whole: a failed write leaves every chunk old or new.
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t; `buf` holds `buf_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cv_write_from(
    vol: *const cv_volume,
    mip: u32,
    lo: *const i64,
    hi: *const i64,
    buf: *const c_void,
    buf_len: usize,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = box_buffer_args(v, mip, lo, hi, buf, buf_len)?;
        let data = std::slice::from_raw_parts(buf.cast::<u8>(), buf_len);
        v.write_from(mip, &bbox, data)
    })
}

/// Delete the chunks of the chunk-aligned box `[lo, hi)` at `mip` (unsharded scales).
///
/// # Safety
/// `vol` is a live handle; `lo` and `hi` point to 3 int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_delete(vol: *const cv_volume, mip: u32, lo: *const i64, hi: *const i64) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let bbox = Bbox::new(triple_arg(lo, "lo")?, triple_arg(hi, "hi")?);
        v.delete_box(mip, &bbox)
    })
}

/// Add a scale to the info for data downsampled from mip 0 by `factor` (3 values >= 1), with
/// `chunk_size` (3 values, or NULL for mip 0's): its resolution, offset and size follow from
/// mip 0 (cloud-volume's `add_scale`); the info is written and the handle sees the new mip,
/// which holds no data until it is written (`cv_write_from`): no voxels are downsampled here.
/// `*new_mip` (may be NULL) receives the scale's mip. Takes the handle mutably: no other call
/// may use it meanwhile.
///
/// # Safety
/// `vol` is a live handle used by no other thread during the call; `factor` points to 3
/// int64_t; `chunk_size` is NULL or points to 3 int64_t.
#[no_mangle]
pub unsafe extern "C" fn cv_add_scale(
    vol: *mut cv_volume,
    factor: *const i64,
    chunk_size: *const i64,
    new_mip: *mut u32,
) -> cv_status {
    boundary(|| {
        let v = vol_arg(vol)?;
        let factor = triple_arg(factor, "factor")?;
        let chunk = if chunk_size.is_null() { None } else { Some(triple_arg(chunk_size, "chunk_size")?) };
        let (fresh, mip) = v.add_scale(factor, chunk)?;
        (*vol).vol = fresh;
        if !new_mip.is_null() {
            *new_mip = mip;
        }
        Ok(())
    })
}

/// Build a valid info JSON for a new one-scale layer, like cloud-volume's `create_new_info`:
/// `layer_type` "image" or "segmentation", `data_type` ("uint8", ...), `encoding` ("raw",
/// "jpeg", "png", "compressed_segmentation"), resolution in nm, voxel offset, size and chunk
/// size (3 values each). `*out` receives a string to release with `cv_string_free`.
///
/// # Safety
/// Strings are NUL-terminated; arrays point to 3 values; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn cv_new_info(
    layer_type: *const c_char,
    data_type: *const c_char,
    encoding: *const c_char,
    num_channels: u32,
    resolution: *const f64,
    voxel_offset: *const i64,
    size: *const i64,
    chunk_size: *const i64,
    out: *mut *mut c_char,
) -> cv_status {
    boundary(|| {
        let out = out_arg(out, "out")?;
        let lt = match str_arg(layer_type, "layer_type")? {
            "image" => crate::format::LayerType::Image,
            "segmentation" => crate::format::LayerType::Segmentation,
            other => {
                return Err(Error::invalid(format!("layer_type \"{other}\" is neither \"image\" nor \"segmentation\"")))
            }
        };
        let dt_name = str_arg(data_type, "data_type")?;
        let dt = DataType::parse(dt_name).ok_or_else(|| Error::invalid(format!("unknown data_type \"{dt_name}\"")))?;
        let enc_name = str_arg(encoding, "encoding")?;
        let enc =
            Encoding::parse(enc_name).ok_or_else(|| Error::invalid(format!("unknown encoding \"{enc_name}\"")))?;
        if resolution.is_null() {
            return Err(Error::invalid("resolution is NULL"));
        }
        let res = [*resolution, *resolution.add(1), *resolution.add(2)];
        let p = crate::volume::NewInfo {
            layer_type: lt,
            data_type: dt,
            encoding: enc,
            num_channels,
            resolution: res,
            voxel_offset: triple_arg(voxel_offset, "voxel_offset")?,
            size: triple_arg(size, "size")?,
            chunk_size: triple_arg(chunk_size, "chunk_size")?,
            cseg_block_size: None,
        };
        let info = crate::volume::new_info(&p).map_err(|e| Error::invalid(e.message().to_string()))?;
        *out = CString::new(info.to_string()).map_err(|e| Error::internal(e.to_string()))?.into_raw();
        Ok(())
    })
}
