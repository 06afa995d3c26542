//! DVID (janelia-flyem/dvid) addressing and metadata, without I/O: `dvid://` URLs, and a data
//! instance's `/info` mapped onto a Precomputed-style [`Info`] (one scale per downres level).
//!
//! - `dvid://HOST[:PORT]/UUID/DATA` (http), `dvid://https://HOST[:PORT]/UUID/DATA`; UUID is any
//!   unique hex prefix or `uuid:branch` (DVID resolves both itself).
//! - imageblk types (`uint8blk`, `uint16blk`, `uint32blk`, `uint64blk`, `float32blk`, `rgba8blk`:
//!   4 uint8 channels) and labels (`labelblk`, `labelarray`, `labelmap`: uint64 segmentation).
//! - Bounds are the instance's extents (`MinPoint`..`MaxPoint`, inclusive); an instance nothing
//!   was written to has empty bounds. Voxels are packed ZYX, x fastest, little-endian on the wire:
//!   the Fortran `[x, y, z]` order of a cutout (rgba8 interleaves its 4 channels per voxel).

use serde_json::{json, Value};

use super::info::{DataType, Info};
use crate::error::{Error, Result};

/// A parsed `dvid://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvidPath {
    /// `http://host:port` or `https://host:port`.
    pub server: String,
    /// The node: a UUID, a unique prefix of one, or `uuid:branch`.
    pub uuid: String,
    /// The data instance.
    pub data: String,
}

impl DvidPath {
    /// Parse `dvid://[http(s)://]HOST[:PORT]/UUID/DATA`.
    ///
    /// # Errors
    /// Anything else (`InvalidArgument`, naming the URL and the expected form).
    pub fn parse(url: &str) -> Result<DvidPath> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "\"{url}\": {why}; a DVID path is dvid://HOST:PORT/UUID/DATA (or dvid://https://HOST/UUID/DATA)"
            ))
        };
        let rest = url.trim().strip_prefix("dvid://").ok_or_else(|| bad("not a dvid:// URL"))?;
        let (scheme, rest) = if let Some(r) = rest.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = rest.strip_prefix("http://") {
            ("http", r)
        } else {
            ("http", rest)
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("expected a host, a UUID and a data instance"));
        }
        let uuid = parts[1];
        let (node, branch) = match uuid.split_once(':') {
            Some((n, b)) => (n, Some(b)),
            None => (uuid, None),
        };
        if node.is_empty() || !node.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(&format!("UUID \"{uuid}\" is not hexadecimal")));
        }
        if branch.is_some_and(|b| b.is_empty() || b.contains(['?', '#'])) {
            return Err(bad(&format!("branch of \"{uuid}\" is empty or not a name")));
        }
        let data = parts[2];
        if data.contains(['?', '#', ' ']) {
            return Err(bad(&format!("data instance \"{data}\" is not a name")));
        }
        Ok(DvidPath { server: format!("{scheme}://{}", parts[0]), uuid: uuid.to_string(), data: data.to_string() })
    }

    /// `SERVER/api/node/UUID/DATA`.
    pub fn node_url(&self) -> String {
        format!("{}/api/node/{}/{}", self.server, self.uuid, self.data)
    }

    /// The URL this path stands for, as messages name it.
    pub fn display(&self) -> String {
        format!("dvid://{}/{}/{}", self.server.trim_start_matches("http://"), self.uuid, self.data)
    }
}

/// What a data instance is, beyond the mapped info.
#[derive(Debug, Clone, PartialEq)]
pub struct DvidMeta {
    /// The DVID type name (lower case), e.g. `uint8blk`, `labelmap`.
    pub typename: String,
    /// A label type (uint64 voxels; `supervoxels`, `scale` and wire compression apply).
    pub labels: bool,
    pub dtype: DataType,
    pub channels: usize,
    pub block_size: [i64; 3],
    /// Downres levels beyond scale 0 (labelmap's `MaxDownresLevel`).
    pub levels: u32,
}

/// The DVID type names of a new instance of `dtype` x `channels` (image) or a segmentation.
///
/// # Errors
/// A combination DVID has no type for (`Unsupported`).
pub fn typename_for(dtype: DataType, channels: u32, segmentation: bool) -> Result<&'static str> {
    Ok(match (segmentation, dtype, channels) {
        (true, DataType::U64, 1) => "labelmap",
        (false, DataType::U8, 1) => "uint8blk",
        (false, DataType::U16, 1) => "uint16blk",
        (false, DataType::U32, 1) => "uint32blk",
        (false, DataType::U64, 1) => "uint64blk",
        (false, DataType::F32, 1) => "float32blk",
        (false, DataType::U8, 4) => "rgba8blk",
        _ => {
            return Err(Error::unsupported(format!(
                "DVID has no {} type of {} {} channel(s) (imageblk: uint8/16/32/64, float32, 4 x uint8 rgba8; labels: uint64)",
                if segmentation { "label" } else { "image" },
                channels,
                dtype.name()
            )))
        }
    })
}

fn triple_f(v: Option<&Value>) -> Option<[f64; 3]> {
    let a = v?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([a[0].as_f64()?, a[1].as_f64()?, a[2].as_f64()?])
}

fn triple_i(v: Option<&Value>) -> Option<[i64; 3]> {
    let a = v?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([a[0].as_i64()?, a[1].as_i64()?, a[2].as_i64()?])
}

/// Map a data instance's `/info` onto an [`Info`] (raw encoding, chunks = DVID blocks, one
/// scale per downres level, the DVID info kept under `"dvid"`).
///
/// # Errors
/// A type that is not a volume (`Unsupported`), missing or malformed members (`Decode`, naming
/// `url` and the member).
pub fn info_from_dvid(json: &Value, url: &str) -> Result<(Info, DvidMeta)> {
    let bad = |what: &str| Error::decode(format!("{url}: DVID info: {what}"));
    let base = json.get("Base").ok_or_else(|| bad("no \"Base\""))?;
    let ext = json.get("Extended").ok_or_else(|| bad("no \"Extended\""))?;
    let typename =
        base.get("TypeName").and_then(Value::as_str).ok_or_else(|| bad("no \"Base.TypeName\""))?.to_ascii_lowercase();
    let labels = matches!(typename.as_str(), "labelblk" | "labelarray" | "labelmap");
    let image = typename.ends_with("blk") && !labels;
    if !labels && !image {
        return Err(Error::unsupported(format!(
            "{url}: DVID data type \"{typename}\" is not a volume (imageblk or label types)"
        )));
    }
    let values = ext.get("Values").and_then(Value::as_array).filter(|v| !v.is_empty());
    let (dtype, channels) = match values {
        Some(vs) => {
            let names: Vec<&str> = vs.iter().map(|v| v.get("DataType").and_then(Value::as_str).unwrap_or("")).collect();
            let dt =
                DataType::parse(names[0]).ok_or_else(|| bad(&format!("value type \"{}\" is not known", names[0])))?;
            if names.iter().any(|n| *n != names[0]) {
                return Err(bad(&format!("mixed value types {names:?}")));
            }
            (dt, vs.len())
        }
        None if labels => (DataType::U64, 1),
        None => return Err(bad("no \"Extended.Values\"")),
    };
    if labels && (dtype != DataType::U64 || channels != 1) {
        return Err(bad(&format!("a {typename} instance holds {channels} x {}, not uint64", dtype.name())));
    }
    let block_size = triple_i(ext.get("BlockSize")).ok_or_else(|| bad("no \"Extended.BlockSize\" [x, y, z]"))?;
    if block_size.iter().any(|b| !(1..=4096).contains(b)) {
        return Err(bad(&format!("BlockSize {block_size:?} is not in 1..=4096")));
    }
    let voxel = triple_f(ext.get("VoxelSize")).unwrap_or([1.0; 3]);
    let voxel = if voxel.iter().all(|v| v.is_finite() && *v > 0.0) { voxel } else { [1.0; 3] };
    let extents = json.get("Extents");
    let min = triple_i(extents.and_then(|e| e.get("MinPoint"))).or_else(|| triple_i(ext.get("MinPoint")));
    let max = triple_i(extents.and_then(|e| e.get("MaxPoint"))).or_else(|| triple_i(ext.get("MaxPoint")));
    let levels = if typename == "labelmap" {
        ext.get("MaxDownresLevel").and_then(Value::as_u64).unwrap_or(0).min(16) as u32
    } else {
        0
    };
    let mut scales = Vec::new();
    for n in 0..=levels {
        let f = 1i64 << n;
        let (lo, hi) = match (min, max) {
            (Some(a), Some(b)) if (0..3).all(|d| b[d] >= a[d]) => {
                ([0, 1, 2].map(|d| a[d].div_euclid(f)), [0, 1, 2].map(|d| b[d].div_euclid(f) + 1))
            }
            _ => ([0; 3], [0; 3]),
        };
        let res = voxel.map(|v| v * f as f64);
        scales.push(json!({
            "key": format!("{}_{}_{}", res[0], res[1], res[2]),
            "size": [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]],
            "voxel_offset": lo,
            "resolution": res,
            "chunk_sizes": [block_size],
            "encoding": "raw",
        }));
    }
    let pinfo = json!({
        "type": if labels { "segmentation" } else { "image" },
        "data_type": dtype.name(),
        "num_channels": channels,
        "scales": scales,
        "dvid": json,
    });
    let info = Info::from_json(pinfo, url)?;
    Ok((info, DvidMeta { typename, labels, dtype, channels, block_size, levels }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = DvidPath::parse("dvid://localhost:8000/a1b2/grayscale").unwrap();
        assert_eq!(p.server, "http://localhost:8000");
        assert_eq!(p.node_url(), "http://localhost:8000/api/node/a1b2/grayscale");
        let p = DvidPath::parse("dvid://https://emdata.janelia.org/3f8c:master/segmentation/").unwrap();
        assert_eq!((p.server.as_str(), p.uuid.as_str()), ("https://emdata.janelia.org", "3f8c:master"));
        for bad in ["dvid://host/xyz/data", "dvid://host/abc", "dvid://host//data", "gs://b/x", "dvid://h/ab:/d"] {
            let e = DvidPath::parse(bad).unwrap_err();
            assert!(e.message().contains("dvid://HOST:PORT/UUID/DATA"), "{bad}: {e}");
        }
    }

    #[test]
    fn infos_map_onto_scales() {
        let j = json!({"Base": {"TypeName": "labelmap", "Name": "seg"},
                       "Extended": {"Values": [{"DataType": "uint64", "Label": "labelmap"}], "BlockSize": [64, 64, 64],
                                    "VoxelSize": [8.0, 8.0, 8.0], "MaxDownresLevel": 2},
                       "Extents": {"MinPoint": [10, 0, -5], "MaxPoint": [129, 63, 70]}});
        let (info, meta) = info_from_dvid(&j, "u").unwrap();
        assert!(meta.labels && meta.levels == 2);
        assert_eq!(info.scales.len(), 3);
        assert_eq!(info.scales[0].voxel_offset, [10, 0, -5]);
        assert_eq!(info.scales[0].size, [120, 64, 76]);
        assert_eq!(info.scales[2].voxel_offset, [2, 0, -2]);
        assert_eq!(info.scales[2].size, [31, 16, 20]);
        assert_eq!(info.scales[2].resolution, [32.0, 32.0, 32.0]);
        let j = json!({"Base": {"TypeName": "rgba8blk"},
                       "Extended": {"Values": [{"DataType": "uint8"}, {"DataType": "uint8"}, {"DataType": "uint8"},
                                               {"DataType": "uint8"}], "BlockSize": [32, 32, 32]},
                       "Extents": {"MinPoint": null, "MaxPoint": null}});
        let (info, meta) = info_from_dvid(&j, "u").unwrap();
        assert_eq!((info.num_channels, meta.dtype), (4, DataType::U8));
        assert_eq!(info.scales[0].size, [0, 0, 0]);
        let e = info_from_dvid(&json!({"Base": {"TypeName": "keyvalue"}, "Extended": {}}), "u").unwrap_err();
        assert!(e.message().contains("not a volume"), "{e}");
        assert_eq!(typename_for(DataType::U64, 1, true).unwrap(), "labelmap");
        assert!(typename_for(DataType::F64, 1, false).is_err());
    }
}
