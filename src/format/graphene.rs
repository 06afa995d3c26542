//! What the graphene (PyChunkedGraph) format says without any I/O: its URLs and the bit layout
//! of its labels.
//!
//! - `graphene://https://HOST/<modality>/table/<table>` (current), `.../<modality>/api/v1/<table>`
//!   and `.../<modality>/1.0/<table>` (older), optionally `middleauth+https://...`;
//! - a label packs `layer | x | y | z | segid` from the top bit down: `n_bits_for_layer_id` bits
//!   of layer, then `spatial_bit_masks[layer]` bits for each chunk coordinate, the rest segid.

use serde_json::Value;

use crate::error::{Error, Result};

/// The API a graphene URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// The legacy `/1.0/` API (one request per root).
    Legacy,
    /// `/api/v1/` (binary root look-ups).
    V1,
    /// `/table/`: the newest the server supports.
    Latest,
}

/// A parsed `graphene://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphenePath {
    /// `http` or `https`.
    pub scheme: String,
    /// Host and port, as in the URL (`minnie.microns-daf.com`): names the CAVE secret file.
    pub host: String,
    /// The service's path segment, normally `segmentation`.
    pub modality: String,
    pub version: ApiVersion,
    pub table: String,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl GraphenePath {
    /// Parse `graphene://[middleauth+]http(s)://HOST/...`.
    ///
    /// # Errors
    /// Any other shape (`InvalidArgument`, quoting the URL).
    pub fn parse(url: &str) -> Result<GraphenePath> {
        let bad = |why: &str| Error::invalid(format!("graphene path \"{url}\": {why}"));
        let rest = url.trim().strip_prefix("graphene://").ok_or_else(|| bad("does not start with graphene://"))?;
        let rest = rest.strip_prefix("middleauth+").unwrap_or(rest);
        let (scheme, rest) = rest.split_once("://").ok_or_else(|| bad("names no http(s):// server"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the server must be http:// or https://"));
        }
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (modality, version, table) = match parts.as_slice() {
            [m, "table", t] => (*m, ApiVersion::Latest, *t),
            [m, "api", v, t] if v.starts_with('v') && v.len() > 1 => (*m, ApiVersion::V1, *t),
            [m, v, t] if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                (*m, ApiVersion::Legacy, *t)
            }
            _ => return Err(bad(
                "expected .../<modality>/table/<table>, .../<modality>/api/v1/<table> or .../<modality>/1.0/<table>",
            )),
        };
        if !name_ok(modality) || !name_ok(table) {
            return Err(bad("the modality and table may hold letters, digits, '_', '.' and '-' only"));
        }
        Ok(GraphenePath {
            scheme: scheme.to_string(),
            host: host.to_string(),
            modality: modality.to_string(),
            version,
            table: table.to_string(),
        })
    }

    /// `scheme://host`.
    pub fn server(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// The info URL: `.../<modality>/table/<table>/info` whatever the version.
    pub fn info_url(&self) -> String {
        format!("{}/{}/table/{}/info", self.server(), self.modality, self.table)
    }

    /// The base of the v1 API: `.../<modality>/api/v1/table/<table>`.
    pub fn v1_base(&self) -> String {
        format!("{}/{}/api/v1/table/{}", self.server(), self.modality, self.table)
    }

    /// The meshing service's manifest URL of `node` (cloud-volume's `manifest_endpoint`: the
    /// `meshing` modality on the same server, `.../meshing/api/v1/table/<table>/manifest/<node>:0`,
    /// or `.../meshing/1.0/<table>/manifest/<node>:0` for the legacy API).
    pub fn manifest_url(&self, api: ApiVersion, node: u64) -> String {
        match api {
            ApiVersion::Legacy => format!("{}/meshing/1.0/{}/manifest/{node}:0", self.server(), self.table),
            _ => format!("{}/meshing/api/v1/table/{}/manifest/{node}:0", self.server(), self.table),
        }
    }

    /// The base of the legacy API: `.../<modality>/1.0/<table>`.
    pub fn legacy_base(&self) -> String {
        format!("{}/{}/1.0/{}", self.server(), self.modality, self.table)
    }
}

/// The `graph` member of a graphene info: how labels are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphMeta {
    pub n_layers: u32,
    pub n_bits_for_layer_id: u32,
    /// Bits per chunk coordinate, by layer (index 0 unused).
    pub spatial_bits: Vec<u32>,
    /// The graph's chunk size in voxels of its watershed mip.
    pub chunk_size: [i64; 3],
    /// Chunk coordinates count from the watershed layer's voxel_offset.
    pub chunks_start_at_voxel_offset: bool,
    /// The API versions the server supports (`app.supported_api_versions`, indices into
    /// `["1.0", "v1"]`); empty when the info does not say.
    pub api_versions: Vec<ApiVersion>,
}

/// A label taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrapheneLabel {
    pub layer: u32,
    pub chunk: [u64; 3],
    pub segid: u64,
}

impl GraphMeta {
    /// Read the `graph` member (and `app`, `chunks_start_at_voxel_offset`) of an info.
    ///
    /// # Errors
    /// A missing or malformed member (`Decode`, naming `url` and the member).
    pub fn from_info(info: &Value, url: &str) -> Result<GraphMeta> {
        let bad = |what: &str| Error::decode(format!("{url}: graphene info: {what}"));
        let g = info.get("graph").filter(|g| g.is_object()).ok_or_else(|| bad("no \"graph\" object"))?;
        let n_layers = g
            .get("n_layers")
            .and_then(Value::as_u64)
            .filter(|n| (1..=255).contains(n))
            .ok_or_else(|| bad("graph.n_layers must be an integer in 1..=255"))? as u32;
        let n_bits = match g.get("n_bits_for_layer_id") {
            None | Some(Value::Null) => 8,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| bad("graph.n_bits_for_layer_id must be 1..=16"))? as u32,
        };
        let masks = g.get("spatial_bit_masks").and_then(Value::as_object);
        let mut spatial_bits = vec![0u32; n_layers as usize + 1];
        for (layer, slot) in spatial_bits.iter_mut().enumerate().skip(1) {
            let v = masks
                .and_then(|m| m.get(&layer.to_string()))
                .ok_or_else(|| bad(&format!("graph.spatial_bit_masks has no entry for layer {layer} of {n_layers}")))?;
            let bits = v.as_u64().filter(|&b| n_bits as u64 + 3 * b < 64).ok_or_else(|| {
                bad(&format!("graph.spatial_bit_masks[\"{layer}\"] = {v} leaves no bits for segment ids"))
            })?;
            *slot = bits as u32;
        }
        let mut chunk_size = [0i64; 3];
        let cs = g.get("chunk_size").and_then(Value::as_array).filter(|a| a.len() == 3);
        for (d, slot) in chunk_size.iter_mut().enumerate() {
            *slot = cs
                .and_then(|a| a[d].as_i64())
                .filter(|&v| v > 0)
                .ok_or_else(|| bad("graph.chunk_size must be three positive integers"))?;
        }
        let api_versions = info
            .get("app")
            .and_then(|a| a.get("supported_api_versions"))
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| match v.as_u64() {
                        Some(0) => Some(ApiVersion::Legacy),
                        Some(1) => Some(ApiVersion::V1),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(GraphMeta {
            n_layers,
            n_bits_for_layer_id: n_bits,
            spatial_bits,
            chunk_size,
            chunks_start_at_voxel_offset: info
                .get("chunks_start_at_voxel_offset")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            api_versions,
        })
    }

    /// The layer of `label` (its top `n_bits_for_layer_id` bits).
    pub fn layer(&self, label: u64) -> u32 {
        (label >> (64 - self.n_bits_for_layer_id)) as u32
    }

    /// Bits of chunk coordinate per axis at `layer` (0 past the known layers).
    fn bits(&self, layer: u32) -> u32 {
        self.spatial_bits.get(layer as usize).copied().unwrap_or(0)
    }

    /// Bits of segment id at `layer`.
    pub fn segid_bits(&self, layer: u32) -> u32 {
        64 - self.n_bits_for_layer_id - 3 * self.bits(layer)
    }

    /// Take `label` apart (cloud-volume's `decode_label`).
    pub fn decode(&self, label: u64) -> GrapheneLabel {
        let layer = self.layer(label);
        let ct = self.bits(layer);
        let sb = self.segid_bits(layer);
        let coord = |k: u32| if ct == 0 { 0 } else { (label >> (sb + k * ct)) & ((1u64 << ct) - 1) };
        let segid = if sb >= 64 { label } else { label & ((1u64 << sb) - 1) };
        GrapheneLabel { layer, chunk: [coord(2), coord(1), coord(0)], segid }
    }

    /// Put a label together (cloud-volume's `encode_label`).
    ///
    /// # Errors
    /// A layer, coordinate or segment id that does not fit (`InvalidArgument`).
    pub fn encode(&self, l: &GrapheneLabel) -> Result<u64> {
        if l.layer == 0 || l.layer > self.n_layers {
            return Err(Error::invalid(format!("layer {} is not in 1..={}", l.layer, self.n_layers)));
        }
        let ct = self.bits(l.layer);
        let sb = self.segid_bits(l.layer);
        if l.chunk.iter().any(|&c| ct < 64 && c >= 1u64 << ct) {
            return Err(Error::invalid(format!(
                "chunk {:?} does not fit {ct} bits per axis at layer {}",
                l.chunk, l.layer
            )));
        }
        if sb < 64 && l.segid >= 1u64 << sb {
            return Err(Error::invalid(format!("segment id {} does not fit {sb} bits", l.segid)));
        }
        let mut v = u64::from(l.layer) << (64 - self.n_bits_for_layer_id);
        v |= l.chunk[0] << (sb + 2 * ct);
        v |= l.chunk[1] << (sb + ct);
        v |= l.chunk[2] << sb;
        Ok(v | l.segid)
    }

    /// The chunk id of `label`: the label with its segment id zeroed.
    pub fn chunk_id(&self, label: u64) -> u64 {
        let sb = self.segid_bits(self.layer(label));
        if sb >= 64 {
            0
        } else {
            label & !((1u64 << sb) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_every_form() {
        let p = GraphenePath::parse("graphene://https://minnie.microns-daf.com/segmentation/table/minnie65_public")
            .unwrap();
        assert_eq!(p.host, "minnie.microns-daf.com");
        assert_eq!(p.version, ApiVersion::Latest);
        assert_eq!(p.info_url(), "https://minnie.microns-daf.com/segmentation/table/minnie65_public/info");
        assert_eq!(p.v1_base(), "https://minnie.microns-daf.com/segmentation/api/v1/table/minnie65_public");
        let p = GraphenePath::parse("graphene://middleauth+http://127.0.0.1:8080/segmentation/api/v1/t_1/").unwrap();
        assert_eq!((p.scheme.as_str(), p.host.as_str(), p.version), ("http", "127.0.0.1:8080", ApiVersion::V1));
        let p = GraphenePath::parse("graphene://https://h/segmentation/1.0/fly.v2").unwrap();
        assert_eq!((p.version, p.table.as_str()), (ApiVersion::Legacy, "fly.v2"));
        assert_eq!(p.legacy_base(), "https://h/segmentation/1.0/fly.v2");
        for bad in [
            "graphene://ftp://h/segmentation/table/t",
            "graphene://https:///segmentation/table/t",
            "graphene://https://h/segmentation/t",
            "graphene://https://h/segmentation/table/t?x=1",
            "https://h/segmentation/table/t",
        ] {
            let e = GraphenePath::parse(bad).unwrap_err();
            assert!(e.message().contains(bad), "{e}");
        }
    }

    fn meta() -> GraphMeta {
        let info = serde_json::json!({
            "graph": {"n_layers": 4, "n_bits_for_layer_id": 8, "chunk_size": [64, 64, 16],
                      "spatial_bit_masks": {"1": 10, "2": 10, "3": 9, "4": 8}},
            "app": {"supported_api_versions": [0, 1]},
            "chunks_start_at_voxel_offset": true
        });
        GraphMeta::from_info(&info, "u").unwrap()
    }

    #[test]
    fn labels_round_trip_as_cloud_volume_packs_them() {
        let m = meta();
        assert_eq!(m.api_versions, vec![ApiVersion::Legacy, ApiVersion::V1]);
        // layer 1, chunk (1, 2, 3), segid 777: 1<<56 | 1<<(26+20) | 2<<(26+10) | 3<<26 | 777
        let l = GrapheneLabel { layer: 1, chunk: [1, 2, 3], segid: 777 };
        let v = m.encode(&l).unwrap();
        assert_eq!(v, (1u64 << 56) | (1u64 << 46) | (2u64 << 36) | (3u64 << 26) | 777);
        assert_eq!(m.decode(v), l);
        assert_eq!(m.layer(v), 1);
        assert_eq!(m.chunk_id(v), v - 777);
        let root = m.encode(&GrapheneLabel { layer: 4, chunk: [0, 0, 0], segid: 5 }).unwrap();
        assert_eq!(m.layer(root), 4);
        assert!(m.encode(&GrapheneLabel { layer: 1, chunk: [1024, 0, 0], segid: 1 }).is_err());
        assert!(m.encode(&GrapheneLabel { layer: 5, chunk: [0, 0, 0], segid: 1 }).is_err());
        assert!(m.encode(&GrapheneLabel { layer: 1, chunk: [0, 0, 0], segid: 1 << 26 }).is_err());
    }

    #[test]
    fn malformed_graph_members_are_named() {
        for (graph, what) in [
            (serde_json::json!({}), "no \"graph\""),
            (serde_json::json!({"graph": {"n_layers": 0}}), "n_layers"),
            (
                serde_json::json!({"graph": {"n_layers": 2, "chunk_size": [1, 1, 1], "spatial_bit_masks": {"1": 10}}}),
                "layer 2",
            ),
            (
                serde_json::json!({"graph": {"n_layers": 1, "chunk_size": [1, 1, 1], "spatial_bit_masks": {"1": 30}}}),
                "leaves no bits",
            ),
            (serde_json::json!({"graph": {"n_layers": 1, "spatial_bit_masks": {"1": 3}}}), "chunk_size"),
        ] {
            let e = GraphMeta::from_info(&graph, "http://x/info").unwrap_err();
            assert!(e.message().contains(what) && e.message().contains("http://x/info"), "{e}");
        }
    }
}
