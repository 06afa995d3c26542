//! The Open Connectome Project's ndstore (legacy) addressing and formats, without I/O:
//! `ocp://` URLs, a project's `info/` mapped onto an [`Info`], and the cutout bodies: `npz` (zlib
//! over a `.npy` file of shape `(channels, z, y, x)`, C order: the Fortran `[x, y, z, c]` order of
//! a cutout), `raw` (the same array's bytes) and `hdf5` (a `(z, y, x)` dataset `CUTOUT`, read by
//! the pure-Rust `hdf5-reader`: the library never links libhdf5).
//!
//! - `ocp://[http(s)://]HOST[:PORT][/PREFIX]/TOKEN[/CHANNEL]`: requests go to
//!   `http(s)://HOST[:PORT]/PREFIX/TOKEN/...`, PREFIX ending in ndstore's `sd` or its legacy alias
//!   `ca` (`/nd/sd`, `/ocp/ca`, ...; default `/sd`). Without a channel: the project's only one,
//!   or ndstore's `default`.
//! - Resolution levels are mips (`dataset.resolutions`), each with its `imagesize`, `offset`,
//!   `voxelres` (nm) and `cube_dimension` (the chunk size).

use serde_json::{json, Value};

use super::info::{DataType, Info};
use crate::error::{Error, Result};

/// A parsed `ocp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcpPath {
    /// `http(s)://HOST[:PORT]/PREFIX` (no trailing slash).
    pub base: String,
    pub token: String,
    pub channel: Option<String>,
}

impl OcpPath {
    /// Parse `ocp://[http(s)://]HOST[:PORT][/PREFIX]/TOKEN[/CHANNEL]`.
    ///
    /// # Errors
    /// Anything else (`InvalidArgument`).
    pub fn parse(url: &str) -> Result<OcpPath> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "\"{url}\": {why}; an OCP path is ocp://HOST[:PORT][/PREFIX/sd]/TOKEN[/CHANNEL] \
                 (or ocp://https://HOST/...)"
            ))
        };
        let rest = url.trim().strip_prefix("ocp://").ok_or_else(|| bad("not an ocp:// URL"))?;
        let (scheme, rest) = if let Some(r) = rest.strip_prefix("https://") {
            ("https", r)
        } else if let Some(r) = rest.strip_prefix("http://") {
            ("http", r)
        } else {
            ("http", rest)
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad("expected a host and a token"));
        }
        let host = parts[0];
        let path = &parts[1..];
        let (prefix, tail) = match path.iter().rposition(|p| *p == "sd" || *p == "ca") {
            Some(i) => (path[..=i].join("/"), &path[i + 1..]),
            None => ("sd".to_string(), path),
        };
        let (token, channel) = match tail {
            [t] => (*t, None),
            [t, c] => (*t, Some(c.to_string())),
            _ => return Err(bad("expected TOKEN or TOKEN/CHANNEL after the prefix")),
        };
        let name_ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        if !name_ok(token) || channel.as_deref().is_some_and(|c| !name_ok(c)) {
            return Err(bad("the token and channel are names (letters, digits, _ - .)"));
        }
        Ok(OcpPath { base: format!("{scheme}://{host}/{prefix}"), token: token.to_string(), channel })
    }

    /// The URL as messages name it.
    pub fn display(&self) -> String {
        let b = self.base.trim_start_matches("http://");
        match &self.channel {
            Some(c) => format!("ocp://{b}/{}/{c}", self.token),
            None => format!("ocp://{b}/{}", self.token),
        }
    }
}

/// What a project's channel is, beyond the mapped info.
#[derive(Debug, Clone, PartialEq)]
pub struct OcpMeta {
    /// The channel as it goes in cutout URLs.
    pub channel: String,
    pub dtype: DataType,
    /// ndstore's resolution number of each mip.
    pub resolutions: Vec<u32>,
}

fn triple_at(v: &Value, key: &str, res: u32) -> Option<[f64; 3]> {
    let a = v.get(key)?.get(res.to_string())?.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([a[0].as_f64()?, a[1].as_f64()?, a[2].as_f64()?])
}

/// Map a project's `info/` onto an [`Info`] for `channel` (None: the only one, or `default`).
///
/// # Errors
/// An unknown or ambiguous channel (`NotFound`/`InvalidArgument`), a datatype this library
/// cannot hold (`Unsupported`), malformed members (`Decode`, naming `url`).
pub fn info_from_ocp(json: &Value, channel: Option<&str>, url: &str) -> Result<(Info, OcpMeta)> {
    let bad = |what: &str| Error::decode(format!("{url}: OCP info: {what}"));
    let chans = json.get("channels").and_then(Value::as_object).ok_or_else(|| bad("no \"channels\""))?;
    let names: Vec<&String> = chans.keys().collect();
    let name = match channel {
        Some(c) => {
            if !chans.contains_key(c) {
                return Err(Error::not_found(format!("{url}: no channel \"{c}\" (the project has {names:?})")));
            }
            c.to_string()
        }
        None if chans.len() == 1 => names[0].clone(),
        None if chans.contains_key("default") => "default".to_string(),
        None => {
            return Err(Error::invalid(format!(
                "{url}: the project has channels {names:?}; name one (ocp://HOST/TOKEN/CHANNEL)"
            )))
        }
    };
    let ch = &chans[&name];
    let dt_name = ch.get("datatype").and_then(Value::as_str).ok_or_else(|| bad("channel has no \"datatype\""))?;
    let dtype = DataType::parse(dt_name)
        .ok_or_else(|| Error::unsupported(format!("{url}: channel datatype \"{dt_name}\" is not supported")))?;
    let seg = ch.get("channel_type").and_then(Value::as_str) == Some("annotation");
    let ds = json.get("dataset").ok_or_else(|| bad("no \"dataset\""))?;
    let mut resolutions: Vec<u32> = ds
        .get("resolutions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).map(|r| r as u32).collect())
        .unwrap_or_default();
    if resolutions.is_empty() {
        resolutions.push(0);
    }
    resolutions.sort_unstable();
    let mut scales = Vec::new();
    for &r in &resolutions {
        let size = triple_at(ds, "imagesize", r).ok_or_else(|| bad(&format!("no imagesize for resolution {r}")))?;
        let off = triple_at(ds, "offset", r).unwrap_or([0.0; 3]);
        let vres = triple_at(ds, "voxelres", r).ok_or_else(|| bad(&format!("no voxelres for resolution {r}")))?;
        let cube = triple_at(ds, "cube_dimension", r).unwrap_or([128.0, 128.0, 16.0]);
        scales.push(json!({
            "key": format!("{r}"),
            "size": size.map(|v| v as i64),
            "voxel_offset": off.map(|v| v as i64),
            "resolution": vres,
            "chunk_sizes": [cube.map(|v| (v as i64).max(1))],
            "encoding": "raw",
        }));
    }
    let pinfo = json!({
        "type": if seg { "segmentation" } else { "image" },
        "data_type": dtype.name(),
        "num_channels": 1,
        "scales": scales,
        "ocp": json,
    });
    let info = Info::from_json(pinfo, url)?;
    Ok((info, OcpMeta { channel: name, dtype, resolutions }))
}

/// A `.npy` file (format 1.0) of `data`, C order, `shape`.
pub fn npy(data: &[u8], dtype: DataType, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {tuple}, }}", dtype.numpy_descr());
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The data of a `.npy` file that must hold `dtype` in C order with `shape`.
///
/// # Errors
/// Another format, type, order or shape (`Decode`, naming `url`).
pub fn npy_data<'a>(file: &'a [u8], dtype: DataType, shape: &[usize], url: &str) -> Result<&'a [u8]> {
    let bad = |what: String| Error::decode(format!("{url}: the npz body's array {what}"));
    if file.len() < 10 || &file[..6] != b"\x93NUMPY" {
        return Err(bad("is not a .npy file".into()));
    }
    let (hlen, start) = match file[6] {
        1 => (u16::from_le_bytes([file[8], file[9]]) as usize, 10),
        2 | 3 if file.len() >= 12 => (u32::from_le_bytes([file[8], file[9], file[10], file[11]]) as usize, 12),
        v => return Err(bad(format!("has .npy version {v}"))),
    };
    let header = file.get(start..start + hlen).ok_or_else(|| bad("has a truncated header".into()))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let i = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[i..].trim_start().strip_prefix(':')?.trim_start();
        let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
        Some(rest[..end].trim().trim_matches('\'').to_string())
    };
    let d = field("descr").ok_or_else(|| bad(format!("header has no descr: {header}")))?;
    let want = dtype.numpy_descr();
    // Single-byte types may be spelled '|u1', '<u1' or 'u1'.
    let same = d == want || (dtype.size() == 1 && d.trim_start_matches(['|', '<', '=']) == &want[1..]);
    if !same {
        return Err(bad(format!("is {d}, the channel is {} ({want})", dtype.name())));
    }
    if field("fortran_order").as_deref() != Some("False") {
        return Err(bad("is not in C order".into()));
    }
    let s = field("shape").ok_or_else(|| bad("header has no shape".into()))?;
    let dims: Vec<usize> = s
        .trim_matches(['(', ')'])
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    if dims != shape {
        return Err(bad(format!("has shape {s}, the box needs {shape:?}")));
    }
    let n: usize = shape.iter().product::<usize>() * dtype.size();
    let data = &file[start + hlen..];
    if data.len() != n {
        return Err(bad(format!("holds {} bytes, the box needs {n}", data.len())));
    }
    Ok(data)
}

/// The array of a `raw` body: exactly the box's bytes, little-endian.
///
/// # Errors
/// Another length (`Decode`, naming `url`).
pub fn raw_data<'a>(body: &'a [u8], dtype: DataType, shape: &[usize], url: &str) -> Result<&'a [u8]> {
    let n: usize = shape.iter().product::<usize>() * dtype.size();
    if body.len() != n {
        return Err(Error::decode(format!(
            "{url}: the raw body holds {} bytes, a {shape:?} box of {} needs {n}",
            body.len(),
            dtype.name()
        )));
    }
    Ok(body)
}

/// The `(z, y, x)` array of an `hdf5` body as little-endian bytes: ndstore's `CHANNEL/CUTOUT`,
/// or the older OCP layouts (a root `CUTOUT` dataset, or `CUTOUT/CHANNEL`). The dataset's type
/// must be `dtype` (either byte order) and its shape `shape_zyx`.
///
/// # Errors
/// Not an HDF5 file, no such dataset, another type or shape, damaged chunks (`Decode`, naming
/// `url`).
pub fn hdf5_data(file: &[u8], dtype: DataType, shape_zyx: [usize; 3], channel: &str, url: &str) -> Result<Vec<u8>> {
    use hdf5_reader::{ByteOrder, Datatype, Hdf5File, OpenOptions};
    let bad = |what: String| Error::decode(format!("{url}: the hdf5 body {what}"));
    let want = shape_zyx.iter().product::<usize>() * dtype.size();
    // Nothing may be allocated past the box the body should hold.
    let limits = OpenOptions::default().with_max_read_bytes(want.max(1)).with_max_chunk_bytes(want.max(1 << 16));
    let f = Hdf5File::from_bytes_with_options(file, limits)
        .map_err(|e| bad(format!("is not a readable HDF5 file ({} bytes): {e}", file.len())))?;
    let ds = [format!("/{channel}/CUTOUT"), "/CUTOUT".to_string(), format!("/CUTOUT/{channel}")]
        .iter()
        .find_map(|p| f.dataset(p).ok())
        .ok_or_else(|| bad(format!("has no dataset {channel}/CUTOUT (nor CUTOUT, nor CUTOUT/{channel})")))?;
    let (kind, size, order) = match ds.dtype() {
        Datatype::FixedPoint { size, signed, byte_order } => (if *signed { 'i' } else { 'u' }, *size, *byte_order),
        Datatype::FloatingPoint { size, byte_order } => ('f', *size, *byte_order),
        other => return Err(bad(format!("holds {other:?} values, the channel is {}", dtype.name()))),
    };
    let descr = dtype.numpy_descr();
    if descr.as_bytes()[1] != kind as u8 || usize::from(size) != dtype.size() {
        return Err(bad(format!("holds {kind}{size} values, the channel is {} ({descr})", dtype.name())));
    }
    let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
    if shape != shape_zyx {
        return Err(bad(format!("holds a {shape:?} array, the box needs {shape_zyx:?} (z, y, x)")));
    }
    let mut out = vec![0u8; want];
    ds.read_raw_bytes_into(&mut out).map_err(|e| bad(format!("could not be read: {e}")))?;
    if order == ByteOrder::BigEndian && dtype.size() > 1 {
        out.chunks_exact_mut(dtype.size()).for_each(<[u8]>::reverse);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = OcpPath::parse("ocp://127.0.0.1:9000/kasthuri11/image").unwrap();
        assert_eq!(p.base, "http://127.0.0.1:9000/sd");
        assert_eq!((p.token.as_str(), p.channel.as_deref()), ("kasthuri11", Some("image")));
        let p = OcpPath::parse("ocp://https://openconnecto.me/ocp/ca/kasthuri11").unwrap();
        assert_eq!(p.base, "https://openconnecto.me/ocp/ca");
        assert_eq!(p.channel, None);
        let p = OcpPath::parse("ocp://h/nd/sd/tok/ch/").unwrap();
        assert_eq!(p.base, "http://h/nd/sd");
        for bad in ["ocp://h", "ocp://h/a/b/c", "ocp://h//t", "s3://x/y", "ocp://h/t o k"] {
            assert!(OcpPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn npy_round_trip_and_refusals() {
        let data: Vec<u8> = (0..2 * 3 * 4 * 2).map(|i| i as u8).collect();
        let f = npy(&data, DataType::U16, &[1, 2, 3, 4]);
        assert_eq!((f.len() - data.len()) % 64, 0);
        assert_eq!(npy_data(&f, DataType::U16, &[1, 2, 3, 4], "u").unwrap(), &data[..]);
        assert!(npy_data(&f, DataType::U8, &[1, 2, 3, 4], "u").unwrap_err().message().contains("<u2"));
        assert!(npy_data(&f, DataType::U16, &[1, 2, 3, 5], "u").unwrap_err().message().contains("shape"));
        assert!(npy_data(&f[..f.len() - 1], DataType::U16, &[1, 2, 3, 4], "u").is_err());
        assert!(npy_data(b"garbage", DataType::U16, &[1], "u").is_err());
        // A Python 2 era header padded to 16 and '|u1'.
        let mut old = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 2, 2), }     \n";
        old.extend_from_slice(&(h.len() as u16).to_le_bytes());
        old.extend_from_slice(h.as_bytes());
        old.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(npy_data(&old, DataType::U8, &[1, 1, 2, 2], "u").unwrap(), &[1, 2, 3, 4]);
    }

    #[test]
    fn infos() {
        let j = json!({"channels": {"image": {"channel_type": "image", "datatype": "uint8"},
                                    "anno": {"channel_type": "annotation", "datatype": "uint32"}},
                       "dataset": {"resolutions": [0, 1], "imagesize": {"0": [300, 200, 48], "1": [150, 100, 48]},
                                   "offset": {"0": [100, 50, 10], "1": [50, 25, 10]},
                                   "voxelres": {"0": [4.0, 4.0, 40.0], "1": [8.0, 8.0, 40.0]},
                                   "cube_dimension": {"0": [128, 128, 16], "1": [128, 128, 16]}}});
        let (info, meta) = info_from_ocp(&j, Some("anno"), "u").unwrap();
        assert_eq!((meta.dtype, info.scales.len()), (DataType::U32, 2));
        assert_eq!(info.scales[1].voxel_offset, [50, 25, 10]);
        assert!(info_from_ocp(&j, None, "u").unwrap_err().message().contains("name one"));
        assert_eq!(info_from_ocp(&j, Some("x"), "u").unwrap_err().kind(), crate::error::ErrorKind::NotFound);
    }
}
