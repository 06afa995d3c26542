//! The BOSS (bossdb) addressing and metadata, without I/O: `boss://` URLs, and a channel's
//! metadata (channel, experiment, coordinate frame, downsample) mapped onto an [`Info`].
//!
//! - `boss://COLLECTION/EXPERIMENT/CHANNEL` (the server from the credentials, else
//!   `https://api.bossdb.io`), or `boss://http(s)://HOST[:PORT]/COLLECTION/EXPERIMENT/CHANNEL`.
//! - Resolution levels are mips: level `r` (from the channel's `base_resolution`) has the
//!   downsample view's voxel size (nm) and extent; its bounds run from the frame's start scaled
//!   down to the extent (the server itself checks every level's boxes against the frame of level
//!   0, so reads are clipped to that too).
//! - Cutouts are C-order `(z, y, x)`: the Fortran `[x, y, z]` order of a cutout.

use serde_json::{json, Value};

use super::info::{DataType, Info};
use crate::error::{Error, Result};

/// The public server.
pub const DEFAULT_HOST: &str = "api.bossdb.io";

/// A parsed `boss://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BossPath {
    /// `protocol://host[:port]` when the URL names it.
    pub server: Option<String>,
    pub collection: String,
    pub experiment: String,
    pub channel: String,
}

impl BossPath {
    /// Parse `boss://[http(s)://HOST/]COLLECTION/EXPERIMENT/CHANNEL`.
    ///
    /// # Errors
    /// Anything else (`InvalidArgument`, naming the URL and the expected form).
    pub fn parse(url: &str) -> Result<BossPath> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "\"{url}\": {why}; a BOSS path is boss://COLLECTION/EXPERIMENT/CHANNEL \
                 (or boss://https://HOST/COLLECTION/EXPERIMENT/CHANNEL)"
            ))
        };
        let rest = url.trim().strip_prefix("boss://").ok_or_else(|| bad("not a boss:// URL"))?;
        let (server, rest) = match ["https://", "http://"].iter().find(|p| rest.starts_with(*p)) {
            Some(p) => {
                let r = &rest[p.len()..];
                let (host, tail) = r.split_once('/').ok_or_else(|| bad("no collection after the host"))?;
                if host.is_empty() {
                    return Err(bad("an empty host"));
                }
                (Some(format!("{p}{host}")), tail)
            }
            None => (None, rest),
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("expected a collection, an experiment and a channel"));
        }
        // The BOSS's resource names: ^[a-zA-Z0-9_-]*$.
        if let Some(p) = parts.iter().find(|p| !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
            return Err(bad(&format!("\"{p}\" is not a BOSS resource name (letters, digits, _ and -)")));
        }
        Ok(BossPath {
            server,
            collection: parts[0].to_string(),
            experiment: parts[1].to_string(),
            channel: parts[2].to_string(),
        })
    }

    /// `boss://COLLECTION/EXPERIMENT/CHANNEL` (as messages name it).
    pub fn display(&self) -> String {
        format!("boss://{}/{}/{}", self.collection, self.experiment, self.channel)
    }
}

/// What a channel is, beyond the mapped info.
#[derive(Debug, Clone, PartialEq)]
pub struct BossMeta {
    pub dtype: DataType,
    /// The resolution level of mip 0.
    pub base_resolution: u32,
    /// Level-0 frame, half-open, x/y/z (what the server checks every box against).
    pub frame: [[i64; 2]; 3],
    /// Per mip: the cuboid size the server stores.
    pub cuboids: Vec<[i64; 3]>,
    /// `storage_type` "cloudvol": the Precomputed layer `s3://{bucket}{cv_path}`.
    pub cloudvol: Option<String>,
}

fn unit_nm(unit: &str) -> Option<f64> {
    Some(match unit {
        "nanometers" => 1.0,
        "micrometers" => 1e3,
        "millimeters" => 1e6,
        "centimeters" => 1e7,
        _ => return None,
    })
}

fn triple_at(v: &Value, key: &str, level: u32) -> Option<[f64; 3]> {
    let a = v.get(key)?.get(level.to_string())?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([a[0].as_f64()?, a[1].as_f64()?, a[2].as_f64()?])
}

/// Map a channel's metadata onto an [`Info`] (raw, chunks = the server's cuboids, one mip per
/// resolution level from `base_resolution`, the BOSS metadata kept under `"boss"`).
///
/// # Errors
/// Missing or malformed members (`Decode`, naming `url` and the member); a datatype this
/// library cannot hold (`Unsupported`).
pub fn info_from_boss(channel: &Value, coord: &Value, downsample: &Value, url: &str) -> Result<(Info, BossMeta)> {
    let bad = |what: &str| Error::decode(format!("{url}: BOSS metadata: {what}"));
    let dt_name = channel.get("datatype").and_then(Value::as_str).ok_or_else(|| bad("channel has no \"datatype\""))?;
    let dtype = match dt_name {
        "uint8" => DataType::U8,
        "uint16" => DataType::U16,
        "uint64" => DataType::U64,
        "uint32" => {
            return Err(Error::unsupported(format!(
                "{url}: a uint32 BOSS channel cannot be cut out (the BOSS answers 500: spdb has no bit depth for it)"
            )))
        }
        t => return Err(bad(&format!("datatype \"{t}\" is not uint8, uint16 or uint64"))),
    };
    let seg = channel.get("type").and_then(Value::as_str) == Some("annotation");
    let base = channel.get("base_resolution").and_then(Value::as_u64).unwrap_or(0) as u32;
    let mut frame = [[0i64; 2]; 3];
    for (d, a) in ["x", "y", "z"].iter().enumerate() {
        let start = coord.get(format!("{a}_start")).and_then(Value::as_i64);
        let stop = coord.get(format!("{a}_stop")).and_then(Value::as_i64);
        match (start, stop) {
            (Some(s), Some(e)) if e > s => frame[d] = [s, e],
            _ => return Err(bad(&format!("coordinate frame {a}_start/{a}_stop missing or empty"))),
        }
    }
    let unit = coord.get("voxel_unit").and_then(Value::as_str).unwrap_or("nanometers");
    let nm = unit_nm(unit).ok_or_else(|| bad(&format!("voxel_unit \"{unit}\" is not known")))?;
    let levels = downsample.get("num_hierarchy_levels").and_then(Value::as_u64).unwrap_or(1).max(1) as u32;
    let mut scales = Vec::new();
    let mut cuboids = Vec::new();
    for level in base..levels {
        let vs = triple_at(downsample, "voxel_size", level)
            .ok_or_else(|| bad(&format!("downsample has no voxel_size for resolution {level}")))?;
        let ext = triple_at(downsample, "extent", level)
            .ok_or_else(|| bad(&format!("downsample has no extent for resolution {level}")))?;
        let cub = triple_at(downsample, "cuboid_size", level).unwrap_or([512.0, 512.0, 16.0]);
        let res = vs.map(|v| v * nm);
        // The level's scale factor from level 0's voxel size.
        let v0 = triple_at(downsample, "voxel_size", 0).unwrap_or(vs);
        let f = [0, 1, 2].map(|d| (vs[d] / v0[d]).round().max(1.0) as i64);
        let lo = [0, 1, 2].map(|d| frame[d][0].div_euclid(f[d]));
        let hi = [0, 1, 2].map(|d| (ext[d] as i64).max(lo[d]));
        let chunk = cub.map(|c| (c as i64).max(1));
        cuboids.push(chunk);
        scales.push(json!({
            "key": format!("{level}"),
            "size": [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]],
            "voxel_offset": lo,
            "resolution": res,
            "chunk_sizes": [chunk],
            "encoding": "raw",
        }));
    }
    if scales.is_empty() {
        return Err(bad(&format!("base_resolution {base} leaves none of the {levels} resolution levels")));
    }
    let cloudvol = if channel.get("storage_type").and_then(Value::as_str) == Some("cloudvol") {
        let bucket = channel.get("bucket").and_then(Value::as_str).unwrap_or("");
        let path = channel.get("cv_path").and_then(Value::as_str).unwrap_or("");
        if bucket.is_empty() || path.is_empty() {
            return Err(bad("a cloudvol channel without bucket and cv_path"));
        }
        Some(format!("s3://{bucket}{}", if path.starts_with('/') { path.to_string() } else { format!("/{path}") }))
    } else {
        None
    };
    let pinfo = json!({
        "type": if seg { "segmentation" } else { "image" },
        "data_type": dtype.name(),
        "num_channels": 1,
        "scales": scales,
        "boss": {"channel": channel, "coord": coord, "downsample": downsample},
    });
    let info = Info::from_json(pinfo, url)?;
    Ok((info, BossMeta { dtype, base_resolution: base, frame, cuboids, cloudvol }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = BossPath::parse("boss://col1/exp1/img8").unwrap();
        assert_eq!((p.server.as_deref(), p.channel.as_str()), (None, "img8"));
        let p = BossPath::parse("boss://http://127.0.0.1:9000/col1/exp1/img8/").unwrap();
        assert_eq!(p.server.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(p.display(), "boss://col1/exp1/img8");
        for bad in ["boss://a/b", "boss://a/b/c/d", "boss://a/b c/d", "boss://https:///a/b/c", "s3://a/b/c"] {
            assert!(BossPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_maps_onto_scales() {
        let ch = json!({"name": "img8", "type": "image", "base_resolution": 0, "datatype": "uint8",
                        "storage_type": "spdb"});
        let coord = json!({"x_start": 100, "x_stop": 1124, "y_start": 0, "y_stop": 1024, "z_start": 0,
                           "z_stop": 64, "voxel_unit": "nanometers"});
        let ds = json!({"num_hierarchy_levels": 3,
                        "voxel_size": {"0": [4.0, 4.0, 40.0], "1": [8.0, 8.0, 40.0], "2": [16.0, 16.0, 40.0]},
                        "extent": {"0": [1124, 1024, 64], "1": [562, 512, 64], "2": [281, 256, 64]},
                        "cuboid_size": {"0": [512, 512, 16], "1": [512, 512, 16], "2": [512, 512, 16]}});
        let (info, meta) = info_from_boss(&ch, &coord, &ds, "u").unwrap();
        assert_eq!(info.scales.len(), 3);
        assert_eq!(info.scales[0].voxel_offset, [100, 0, 0]);
        assert_eq!(info.scales[0].size, [1024, 1024, 64]);
        assert_eq!(info.scales[1].voxel_offset, [50, 0, 0]);
        assert_eq!(info.scales[1].size, [512, 512, 64]);
        assert_eq!(info.scales[2].resolution, [16.0, 16.0, 40.0]);
        assert_eq!(meta.frame[0], [100, 1124]);
        let e = info_from_boss(&json!({"datatype": "uint32"}), &coord, &ds, "u").unwrap_err();
        assert!(e.message().contains("uint32"), "{e}");
    }
}
