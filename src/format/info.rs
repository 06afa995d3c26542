//! The `info` JSON: parsed, validated member by member, with unknown members kept.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The element type of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    pub const ALL: [DataType; 10] = [
        DataType::U8,
        DataType::I8,
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::F32,
        DataType::F64,
    ];

    /// Parse an info `data_type` (case-insensitive, as Neuroglancer does).
    pub fn parse(name: &str) -> Option<DataType> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// numpy's `descr` of the type, little-endian (`|u1`, `<u2`, ... `<f8`).
    pub fn numpy_descr(self) -> &'static str {
        match self {
            DataType::U8 => "|u1",
            DataType::I8 => "|i1",
            DataType::U16 => "<u2",
            DataType::I16 => "<i2",
            DataType::U32 => "<u4",
            DataType::I32 => "<i4",
            DataType::U64 => "<u8",
            DataType::I64 => "<i8",
            DataType::F32 => "<f4",
            DataType::F64 => "<f8",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::U8 => "uint8",
            DataType::I8 => "int8",
            DataType::U16 => "uint16",
            DataType::I16 => "int16",
            DataType::U32 => "uint32",
            DataType::I32 => "int32",
            DataType::U64 => "uint64",
            DataType::I64 => "int64",
            DataType::F32 => "float32",
            DataType::F64 => "float64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DataType::U8 | DataType::I8 => 1,
            DataType::U16 | DataType::I16 => 2,
            DataType::U32 | DataType::I32 | DataType::F32 => 4,
            DataType::U64 | DataType::I64 | DataType::F64 => 8,
        }
    }

    /// The C ABI code of this type (`CV_DTYPE_*`).
    pub fn code(self) -> i32 {
        Self::ALL.iter().position(|&t| t == self).map_or(0, |i| i as i32 + 1)
    }

    pub fn from_code(code: i32) -> Option<DataType> {
        usize::try_from(code - 1).ok().and_then(|i| Self::ALL.get(i).copied())
    }

    /// The little-endian bytes of `value` converted to this type, as numpy's cast would
    /// (saturating for integers, rounding toward zero).
    pub fn encode_scalar(self, value: f64) -> Vec<u8> {
        match self {
            DataType::U8 => vec![value as u8],
            DataType::I8 => (value as i8).to_le_bytes().to_vec(),
            DataType::U16 => (value as u16).to_le_bytes().to_vec(),
            DataType::I16 => (value as i16).to_le_bytes().to_vec(),
            DataType::U32 => (value as u32).to_le_bytes().to_vec(),
            DataType::I32 => (value as i32).to_le_bytes().to_vec(),
            DataType::U64 => (value as u64).to_le_bytes().to_vec(),
            DataType::I64 => (value as i64).to_le_bytes().to_vec(),
            DataType::F32 => (value as f32).to_le_bytes().to_vec(),
            DataType::F64 => value.to_le_bytes().to_vec(),
        }
    }
}

/// How chunks of a scale are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    Jpeg,
    Png,
    CompressedSegmentation,
    Compresso,
    Jxl,
    /// An encoding this library has no name for (crackle, fpzip, zfpc, ...): the scale opens, and
    /// fails when read or written, naming it (`Scale::encoding_name`).
    Other,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Encoding> {
        Some(match name.to_ascii_lowercase().as_str() {
            "raw" => Encoding::Raw,
            "jpeg" => Encoding::Jpeg,
            "png" => Encoding::Png,
            "compressed_segmentation" => Encoding::CompressedSegmentation,
            "compresso" => Encoding::Compresso,
            "jxl" => Encoding::Jxl,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Jpeg => "jpeg",
            Encoding::Png => "png",
            Encoding::CompressedSegmentation => "compressed_segmentation",
            Encoding::Compresso => "compresso",
            Encoding::Jxl => "jxl",
            Encoding::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerType {
    Image,
    Segmentation,
}

/// One scale (mip) of a layer.
#[derive(Debug, Clone)]
pub struct Scale {
    pub key: String,
    pub size: [i64; 3],
    pub voxel_offset: [i64; 3],
    pub resolution: [f64; 3],
    /// The first of `chunk_sizes`; the others are alternative copies and are not read.
    pub chunk_size: [i64; 3],
    pub encoding: Encoding,
    /// The info's name of the encoding, as written there.
    pub encoding_name: String,
    pub cseg_block_size: Option<[i64; 3]>,
    /// The sharding spec, when the scale is sharded.
    pub sharding: Option<Value>,
}

/// A parsed and validated `info` file; `json` keeps every member, known or not.
#[derive(Debug, Clone)]
pub struct Info {
    pub layer_type: LayerType,
    pub data_type: DataType,
    pub num_channels: u32,
    pub scales: Vec<Scale>,
    pub json: Value,
}

/// The largest info file read (decompressed); a bigger one is refused as corrupt.
pub const MAX_INFO_BYTES: usize = 64 << 20;

/// Largest |voxel_offset| and size accepted on an axis.
const MAX_EXTENT: i64 = 1 << 60;
/// Largest chunk size accepted on an axis.
const MAX_CHUNK_EXTENT: i64 = 1 << 32;

fn member<'a>(obj: &'a Map<String, Value>, name: &str, ctx: &str) -> Result<&'a Value> {
    obj.get(name).ok_or_else(|| Error::decode(format!("{ctx}: missing member \"{name}\"")))
}

fn int_triple(v: &Value, name: &str, ctx: &str, min: i64) -> Result<[i64; 3]> {
    let bad = || Error::decode(format!("{ctx}: \"{name}\" must be three integers >= {min}, got {v}"));
    let arr = v.as_array().filter(|a| a.len() == 3).ok_or_else(bad)?;
    let mut out = [0i64; 3];
    for (o, x) in out.iter_mut().zip(arr) {
        // Accept integral floats such as 64.0 (some writers emit them).
        let n = match x.as_i64() {
            Some(n) => n,
            None => match x.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                _ => return Err(bad()),
            },
        };
        if n < min {
            return Err(bad());
        }
        *o = n;
    }
    Ok(out)
}

impl Info {
    /// Parse and validate an info document. `url` names the file in messages.
    pub fn parse(text: &[u8], url: &str) -> Result<Info> {
        let json: Value =
            serde_json::from_slice(text).map_err(|e| Error::decode(format!("{url}: info is not valid JSON: {e}")))?;
        Self::from_json(json, url)
    }

    pub fn from_json(json: Value, url: &str) -> Result<Info> {
        let ctx = format!("{url} (info)");
        let obj = json.as_object().ok_or_else(|| Error::decode(format!("{ctx}: info must be a JSON object")))?;
        if let Some(t) = obj.get("@type") {
            if t.as_str() != Some("neuroglancer_multiscale_volume") {
                return Err(Error::unsupported(format!(
                    "{ctx}: \"@type\" is {t}, not \"neuroglancer_multiscale_volume\""
                )));
            }
        }
        let layer_type = match member(obj, "type", &ctx)?.as_str() {
            Some("image") => LayerType::Image,
            Some("segmentation") => LayerType::Segmentation,
            _ => {
                return Err(Error::decode(format!(
                    "{ctx}: \"type\" must be \"image\" or \"segmentation\", got {}",
                    obj["type"]
                )))
            }
        };
        let dt_value = member(obj, "data_type", &ctx)?;
        let data_type = dt_value
            .as_str()
            .and_then(DataType::parse)
            .ok_or_else(|| Error::unsupported(format!("{ctx}: unsupported \"data_type\" {dt_value}")))?;
        let nc_value = member(obj, "num_channels", &ctx)?;
        let num_channels =
            nc_value.as_u64().filter(|&n| (1..=u64::from(u32::MAX)).contains(&n)).ok_or_else(|| {
                Error::decode(format!("{ctx}: \"num_channels\" must be an integer >= 1, got {nc_value}"))
            })? as u32;
        let scales_value = member(obj, "scales", &ctx)?;
        let scales_arr = scales_value
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::decode(format!("{ctx}: \"scales\" must be a non-empty array")))?;
        let mut scales = Vec::with_capacity(scales_arr.len());
        for (i, s) in scales_arr.iter().enumerate() {
            scales.push(Scale::parse(s, &format!("{ctx} scales[{i}]"), data_type, num_channels)?);
        }
        Ok(Info { layer_type, data_type, num_channels, scales, json })
    }
}

impl Scale {
    fn parse(v: &Value, ctx: &str, dtype: DataType, channels: u32) -> Result<Scale> {
        let obj = v.as_object().ok_or_else(|| Error::decode(format!("{ctx}: a scale must be an object")))?;
        let key = member(obj, "key", ctx)?
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::decode(format!("{ctx}: \"key\" must be a non-empty string")))?
            .to_string();
        let ctx = &format!("{ctx} (key \"{key}\")");
        let size = int_triple(member(obj, "size", ctx)?, "size", ctx, 0)?;
        let voxel_offset = match obj.get("voxel_offset") {
            None | Some(Value::Null) => [0; 3],
            Some(v) => int_triple(v, "voxel_offset", ctx, i64::MIN)?,
        };
        // Far beyond any real volume, and small enough that no grid arithmetic can overflow.
        for d in 0..3 {
            if size[d] > MAX_EXTENT || voxel_offset[d].abs() > MAX_EXTENT {
                return Err(Error::decode(format!(
                    "{ctx}: size {:?} / voxel_offset {:?} exceed the supported extent 2^60 on axis {d}",
                    size, voxel_offset
                )));
            }
        }
        let res_value = member(obj, "resolution", ctx)?;
        let bad_res =
            || Error::decode(format!("{ctx}: \"resolution\" must be three finite positive numbers, got {res_value}"));
        let res_arr = res_value.as_array().filter(|a| a.len() == 3).ok_or_else(bad_res)?;
        let mut resolution = [0.0; 3];
        for (r, x) in resolution.iter_mut().zip(res_arr) {
            *r = x.as_f64().filter(|f| f.is_finite() && *f > 0.0).ok_or_else(bad_res)?;
        }
        let cs_value = member(obj, "chunk_sizes", ctx)?;
        let cs_arr = cs_value
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::decode(format!("{ctx}: \"chunk_sizes\" must be a non-empty array")))?;
        let chunk_size = int_triple(&cs_arr[0], "chunk_sizes[0]", ctx, 1)?;
        if chunk_size.iter().any(|&c| c > MAX_CHUNK_EXTENT) {
            return Err(Error::decode(format!("{ctx}: chunk_sizes[0] {chunk_size:?} exceeds 2^32 on some axis")));
        }
        let enc_value = member(obj, "encoding", ctx)?;
        let encoding_name = enc_value
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::decode(format!("{ctx}: \"encoding\" must be a name, got {enc_value}")))?
            .to_string();
        // An unknown name does not stop the layer from opening: only this scale's reads and
        // writes fail, naming it.
        let encoding = Encoding::parse(&encoding_name).unwrap_or(Encoding::Other);
        let cseg_block_size = match obj.get("compressed_segmentation_block_size") {
            Some(v) if encoding == Encoding::CompressedSegmentation => {
                let b = int_triple(v, "compressed_segmentation_block_size", ctx, 1)?;
                if b.iter().map(|&x| x as u128).product::<u128>() > 1 << 32 {
                    return Err(Error::decode(format!(
                        "{ctx}: compressed_segmentation_block_size {b:?} has more than 2^32 voxels"
                    )));
                }
                Some(b)
            }
            None if encoding == Encoding::CompressedSegmentation => {
                return Err(Error::decode(format!(
                    "{ctx}: encoding compressed_segmentation requires \"compressed_segmentation_block_size\""
                )))
            }
            _ => None,
        };
        let sharding = match obj.get("sharding") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(v) => return Err(Error::decode(format!("{ctx}: \"sharding\" must be an object, got {v}"))),
        };
        if sharding.is_some() && cs_arr.len() != 1 {
            return Err(Error::decode(format!("{ctx}: a sharded scale must have exactly one chunk size")));
        }
        // Encodings constrain the data type and channel count.
        let combination_ok = match encoding {
            Encoding::Raw => true,
            Encoding::Jpeg => dtype == DataType::U8 && (channels == 1 || channels == 3),
            Encoding::Png => matches!(dtype, DataType::U8 | DataType::U16) && (1..=4).contains(&channels),
            Encoding::CompressedSegmentation => matches!(dtype, DataType::U32 | DataType::U64),
            Encoding::Compresso => {
                matches!(dtype, DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64) && channels == 1
            }
            Encoding::Jxl => dtype == DataType::U8 && matches!(channels, 1 | 3 | 4),
            Encoding::Other => true,
        };
        if !combination_ok {
            return Err(Error::decode(format!(
                "{ctx}: encoding {} cannot hold data_type {} with {channels} channel(s)",
                encoding.name(),
                dtype.name()
            )));
        }
        Ok(Scale {
            key,
            size,
            voxel_offset,
            resolution,
            chunk_size,
            encoding,
            encoding_name,
            cseg_block_size,
            sharding,
        })
    }

    /// `[voxel_offset, voxel_offset + size)`.
    pub fn bounds(&self) -> crate::format::Bbox {
        let mut hi = [0; 3];
        for d in 0..3 {
            hi[d] = self.voxel_offset[d] + self.size[d];
        }
        crate::format::Bbox { lo: self.voxel_offset, hi }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(scale: &str) -> String {
        format!(
            r#"{{"type":"image","data_type":"uint8","num_channels":1,"extra":{{"k":1}},
               "scales":[{scale}]}}"#
        )
    }

    #[test]
    fn parses_a_minimal_info_and_keeps_unknown_members() {
        let s = r#"{"key":"4_4_40","size":[10,7,5],"voxel_offset":[-5,0,3],"resolution":[4.0,4,40],
                    "chunk_sizes":[[4,4,4]],"encoding":"RAW"}"#;
        let info = Info::parse(info(s).as_bytes(), "mem://x").unwrap();
        let sc = &info.scales[0];
        assert_eq!(sc.voxel_offset, [-5, 0, 3]);
        assert_eq!(sc.encoding, Encoding::Raw);
        assert_eq!(sc.bounds().hi, [5, 7, 8]);
        assert_eq!(info.json["extra"]["k"], 1);
    }

    #[test]
    fn names_the_bad_member() {
        let s = r#"{"key":"a","size":[10,7],"resolution":[4,4,40],"chunk_sizes":[[4,4,4]],"encoding":"raw"}"#;
        let e = Info::parse(info(s).as_bytes(), "mem://x").unwrap_err();
        assert!(e.message().contains("\"size\""), "{e}");
        let s = r#"{"key":"a","size":[10,7,5],"resolution":[4,4,40],"chunk_sizes":[[4,0,4]],"encoding":"raw"}"#;
        let e = Info::parse(info(s).as_bytes(), "mem://x").unwrap_err();
        assert!(e.message().contains("chunk_sizes"), "{e}");
        // An encoding without a name here opens (its reads fail later, naming it).
        let s = r#"{"key":"a","size":[10,7,5],"resolution":[4,4,40],"chunk_sizes":[[4,4,4]],"encoding":"webp"}"#;
        let i = Info::parse(info(s).as_bytes(), "mem://x").unwrap();
        assert_eq!((i.scales[0].encoding, i.scales[0].encoding_name.as_str()), (Encoding::Other, "webp"));
        let s = r#"{"key":"a","size":[10,7,5],"resolution":[4,4,40],"chunk_sizes":[[4,4,4]],"encoding":7}"#;
        let e = Info::parse(info(s).as_bytes(), "mem://x").unwrap_err();
        assert!(e.message().contains("\"encoding\" must be a name"), "{e}");
        let s = r#"{"key":"a","size":[10,7,5],"resolution":[4,-4,40],"chunk_sizes":[[4,4,4]],"encoding":"raw"}"#;
        let e = Info::parse(info(s).as_bytes(), "mem://x").unwrap_err();
        assert!(e.message().contains("resolution"), "{e}");
        let e = Info::parse(b"{\"type\":\"image\"", "mem://y").unwrap_err();
        assert!(e.message().contains("mem://y"), "{e}");
    }

    #[test]
    fn rejects_encodings_that_cannot_hold_the_type() {
        let s = r#"{"key":"a","size":[10,7,5],"resolution":[4,4,40],"chunk_sizes":[[4,4,4]],
                    "encoding":"compressed_segmentation","compressed_segmentation_block_size":[8,8,8]}"#;
        let e = Info::parse(info(s).as_bytes(), "mem://x").unwrap_err();
        assert!(e.message().contains("uint8"), "{e}");
    }

    #[test]
    fn dtype_codes_round_trip() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_code(t.code()), Some(t));
            assert_eq!(DataType::parse(t.name()), Some(t));
        }
        assert_eq!(DataType::from_code(0), None);
        assert_eq!(DataType::from_code(11), None);
    }
}
