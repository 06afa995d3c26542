//! New infos: a one-scale layer from its parameters (cloud-volume's `create_new_info`), and an
//! info with a downsampled scale added. No I/O.

use serde_json::{json, Value};

use super::info::{DataType, Encoding, Info, LayerType};
use crate::error::{Error, Result};

/// Format a resolution component for a scale key: integers without a decimal point.
fn res_str(r: f64) -> String {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// The key cloud-volume gives a scale of resolution `res`: `"4_4_40"`.
pub fn scale_key(res: [f64; 3]) -> String {
    res.iter().map(|&r| res_str(r)).collect::<Vec<_>>().join("_")
}

/// The parameters of a new layer, for [`new_info`].
#[derive(Debug, Clone)]
pub struct NewInfo {
    pub layer_type: LayerType,
    pub data_type: DataType,
    pub encoding: Encoding,
    pub num_channels: u32,
    pub resolution: [f64; 3],
    pub voxel_offset: [i64; 3],
    pub size: [i64; 3],
    pub chunk_size: [i64; 3],
    /// compressed_segmentation block size (default 8x8x8).
    pub cseg_block_size: Option<[i64; 3]>,
}

/// A valid info JSON for a one-scale layer, like cloud-volume's `create_new_info`.
///
/// # Errors
/// The combination is invalid (the info would not parse).
pub fn new_info(p: &NewInfo) -> Result<Value> {
    let mut scale = json!({
        "key": scale_key(p.resolution),
        "size": p.size,
        "voxel_offset": p.voxel_offset,
        "resolution": p.resolution,
        "chunk_sizes": [p.chunk_size],
        "encoding": p.encoding.name(),
    });
    if p.encoding == Encoding::CompressedSegmentation {
        scale["compressed_segmentation_block_size"] = json!(p.cseg_block_size.unwrap_or([8, 8, 8]));
    }
    let info = json!({
        "type": match p.layer_type { LayerType::Image => "image", LayerType::Segmentation => "segmentation" },
        "data_type": p.data_type.name(),
        "num_channels": p.num_channels,
        "scales": [scale],
    });
    Info::from_json(info.clone(), "new info")?;
    Ok(info)
}

/// What adding a scale to an info comes to.
#[derive(Debug)]
pub enum AddedScale {
    /// A scale of that resolution exists already: its mip.
    Existing(u32),
    /// The new info (scales ordered finest to coarsest) and the new scale's mip in it.
    New(Info, u32),
}

/// `info` with a scale downsampled from mip 0 by `factor` (resolution times factor,
/// voxel_offset floored, size rounded up), chunked by `chunk_size` (default mip 0's), with mip
/// 0's encoding and no sharding. `url` names the info in messages.
///
/// # Errors
/// A factor below 1, a chunk size out of range, a scale that would not validate.
pub fn add_scale(info: &Info, factor: [i64; 3], chunk_size: Option<[i64; 3]>, url: &str) -> Result<AddedScale> {
    if factor.iter().any(|&f| f < 1) {
        return Err(Error::invalid(format!("scale factor {factor:?} must be >= 1 on every axis")));
    }
    if let Some(c) = chunk_size {
        if c.iter().any(|&v| !(1..=1 << 32).contains(&v)) {
            return Err(Error::invalid(format!("chunk size {c:?} must be in 1..=2^32 on every axis")));
        }
    }
    let base = &info.scales[0];
    let mut res = [0.0; 3];
    let mut off = [0i64; 3];
    let mut size = [0i64; 3];
    for d in 0..3 {
        res[d] = base.resolution[d] * factor[d] as f64;
        off[d] = base.voxel_offset[d].div_euclid(factor[d]);
        let hi = (base.voxel_offset[d] + base.size[d] + factor[d] - 1).div_euclid(factor[d]);
        size[d] = hi - off[d];
    }
    if let Some(i) = info.scales.iter().position(|s| s.resolution == res) {
        return Ok(AddedScale::Existing(i as u32));
    }
    let mut json = info.json.clone();
    let mut scale = json["scales"][0].clone();
    scale["key"] = json!(scale_key(res));
    scale["resolution"] = json!(res);
    scale["voxel_offset"] = json!(off);
    scale["size"] = json!(size);
    scale["chunk_sizes"] = json!([chunk_size.unwrap_or(base.chunk_size)]);
    if let Some(sh) = scale.as_object_mut() {
        sh.remove("sharding");
    }
    let scales = json["scales"].as_array_mut().ok_or_else(|| Error::internal("info without scales"))?;
    scales.push(scale);
    // Finest to coarsest.
    scales.sort_by(|a, b| {
        let v =
            |s: &Value| s["resolution"].as_array().map_or(0.0, |r| r.iter().filter_map(Value::as_f64).product::<f64>());
        v(a).partial_cmp(&v(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    let info = Info::from_json(json, url)?;
    let mip = info.scales.iter().position(|s| s.resolution == res).unwrap_or(0) as u32;
    Ok(AddedScale::New(info, mip))
}
