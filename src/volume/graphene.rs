//! `graphene://` layers (PyChunkedGraph, CAVE): the info comes from the chunkedgraph server;
//! supervoxels are read from its `data_dir` by the Precomputed readers (any protocol, sharded
//! or not); with `agglomerate` (the default) the distinct supervoxels of each read are mapped
//! to their roots (or to their ancestors at `stop_layer`, at `timestamp`) by the server's
//! `roots_binary` and the read rewritten in place. Writes are refused.
//!
//! The token is found where cloud-volume and caveclient look (the `secrets` option, then
//! `<host>-cave-secret.json`, `cave-secret.json`, `chunkedgraph-secret.json` in the secret
//! folders) and sent as `Authorization: Bearer`; messages name its file, never its value.

use std::io::Read;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde_json::Value;

use super::engine::Engine;
use super::io::ScaleIo;
use super::labels::{Counts, IdMap};
use super::{precomputed, Volume};
use crate::cloudpath::{CloudPath, Protocol};
use crate::codec::{compression, OutView};
use crate::error::{Error, Result};
use crate::format::graphene::{ApiVersion, GraphMeta, GraphenePath};
use crate::format::{Bbox, ContentEncoding, DataType, Info};
use crate::options::{GrapheneOptions, Options};
use crate::store::retry::{Attempt, Retry};

/// Ids per `roots_binary` request (cloud-volume's batch).
pub const ROOTS_BATCH: usize = 250_000;
/// Request bodies past this many bytes are gzipped, and gzipped answers asked for (as
/// cloud-volume does).
const GZIP_OVER: usize = 1_000_000;

/// Where the CAVE token came from, for messages (never the token itself).
#[derive(Debug, Clone)]
struct Token {
    value: String,
    from: String,
}

fn token_shape_ok(t: &str) -> bool {
    let hex = t.bytes().all(|b| b.is_ascii_hexdigit());
    let body = t.trim_end_matches('=');
    let b64 = t.len() - body.len() <= 2 && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    !t.is_empty() && (hex || b64)
}

fn token_of(obj: &serde_json::Map<String, Value>, from: &str) -> Result<Token> {
    match obj.get("token").and_then(Value::as_str) {
        Some(t) if token_shape_ok(t) => Ok(Token { value: t.to_string(), from: from.to_string() }),
        Some(_) => Err(Error::auth(format!("{from}: the CAVE token is not a hexadecimal or base64 string"))),
        None => Err(Error::auth(format!("{from}: no \"token\" member"))),
    }
}

/// The CAVE token for `host`: the `secrets` option (an object with `token`, a JSON text, the
/// path of a JSON file, or the token itself), else the first secret file that exists.
fn find_token(host: &str, secrets: Option<&Value>) -> Result<Option<Token>> {
    if let Some(v) = secrets {
        return match v {
            Value::Object(m) => token_of(m, "option \"secrets\"").map(Some),
            Value::String(s) => {
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(s) {
                    token_of(&m, "option \"secrets\"").map(Some)
                } else if std::path::Path::new(s).is_file() {
                    let m = crate::secrets::read_secret_file(std::path::Path::new(s))?;
                    token_of(&m, &format!("secret file {s}")).map(Some)
                } else if token_shape_ok(s) {
                    Ok(Some(Token { value: s.clone(), from: "option \"secrets\"".into() }))
                } else {
                    Err(Error::auth(
                        "option \"secrets\": not a CAVE token (hexadecimal or base64), a JSON object or a file",
                    ))
                }
            }
            _ => Err(Error::invalid("option \"secrets\" must be an object, a token or the path of a JSON file")),
        };
    }
    let names = [format!("{host}-cave-secret.json"), "cave-secret.json".into(), "chunkedgraph-secret.json".into()];
    match crate::secrets::find_secret(&names)? {
        Some((path, m)) => token_of(&m, &format!("secret file {}", path.display())).map(Some),
        None => Ok(None),
    }
}

/// The chunkedgraph server of one table.
struct Client {
    path: GraphenePath,
    agent: ureq::Agent,
    retry: Retry,
    token: Option<Token>,
    /// The API roots are asked through.
    api: ApiVersion,
}

impl Client {
    /// Send one request; the answer's body (gzip removed, at most `limit` bytes) on 2xx.
    fn once(&self, method: &str, url: &str, body: Option<(&[u8], bool)>, limit: usize) -> Attempt<Vec<u8>> {
        let mut req = self.agent.request(method, url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {}", t.value));
        }
        let accept_gzip = body.is_some_and(|(_, gz)| gz) || method == "GET";
        req = req.set("Accept-Encoding", if accept_gzip { "gzip" } else { "identity" });
        let r = match body {
            Some((b, gz)) => {
                req = req.set("Content-Type", "application/octet-stream");
                if gz {
                    req = req.set("Content-Encoding", "gzip");
                }
                req.send_bytes(b)
            }
            None => req.call(),
        };
        let resp = match r {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, resp)) => {
                let mut text = String::new();
                let _ = resp.into_reader().take(4096).read_to_string(&mut text);
                let said: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
                let said = if said.is_empty() { String::new() } else { format!(": {said}") };
                return Err(match code {
                    401 | 403 => {
                        let which = match &self.token {
                            Some(t) => format!("the CAVE token from {}", t.from),
                            None => "no CAVE token (none given in \"secrets\" nor found in cave-secret.json)".into(),
                        };
                        (false, Error::auth(format!("{method} {url}: HTTP {code}: {} refused {which}", self.path.host)))
                    }
                    404 => (false, Error::not_found(format!("{method} {url}: HTTP 404{said}"))),
                    // middle_auth_client's answer for a table it does not know.
                    400 if text.contains("invalid_table_id") => (
                        false,
                        Error::not_found(format!(
                            "{method} {url}: HTTP 400: no table {} on {}{said}",
                            self.path.table, self.path.host
                        )),
                    ),
                    408 | 429 | 500..=599 => (true, Error::io(format!("{method} {url}: HTTP {code}{said}"))),
                    _ => (false, Error::io(format!("{method} {url}: HTTP {code}{said}"))),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err((true, Error::io(format!("{method} {url}: {}", crate::store::http::transport_text(&t)))))
            }
        };
        if (300..400).contains(&resp.status()) {
            // middle_auth_client sends requests it cannot authenticate to its sign-in page.
            let to = resp.header("Location").unwrap_or("").split('?').next().unwrap_or("").to_string();
            let which = match &self.token {
                Some(t) => format!("the CAVE token from {}", t.from),
                None => "no CAVE token (none given in \"secrets\" nor found in cave-secret.json)".into(),
            };
            return Err((
                false,
                Error::auth(format!(
                    "{method} {url}: HTTP {} to the sign-in page {to}: {} did not accept {which}",
                    resp.status(),
                    self.path.host
                )),
            ));
        }
        let encoding = ContentEncoding::from_header(resp.header("Content-Encoding"), url).map_err(|e| (false, e))?;
        let mut bytes = Vec::new();
        let cap = compression::stored_bound(limit) as u64;
        resp.into_reader()
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| (true, Error::io(format!("{method} {url}: reading the answer failed: {e}"))))?;
        if bytes.len() as u64 > cap {
            return Err((false, Error::decode(format!("{method} {url}: the answer is larger than {limit} bytes"))));
        }
        compression::decompress(compression::Object { bytes, encoding }, limit, url).map_err(|e| (false, e))
    }

    fn call(&self, method: &str, url: &str, body: Option<(&[u8], bool)>, limit: usize) -> Result<Vec<u8>> {
        self.retry.run(|| self.once(method, url, body, limit))
    }

    /// The table's info.
    fn info(&self) -> Result<Value> {
        let url = self.path.info_url();
        let bytes = self.call("GET", &url, None, crate::format::info::MAX_INFO_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::decode(format!("{url}: the info is not valid JSON ({e})")))
    }

    /// The ancestors of `ids` (distinct, none 0) at `stop_layer` (None: the roots) at
    /// `timestamp`, in order.
    fn roots(&self, ids: &[u64], timestamp: Option<f64>, stop_layer: Option<u32>) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(ids.len());
        match self.api {
            ApiVersion::Legacy => {
                for &id in ids {
                    let mut url = format!("{}/graph/{id}/root", self.path.legacy_base());
                    if let Some(t) = timestamp {
                        url.push_str(&format!("?timestamp={}", unix(t)));
                    }
                    let b = self.call("GET", &url, None, 1 << 16)?;
                    if b.len() < 8 {
                        return Err(Error::decode(format!("GET {url}: answered {} bytes, not a uint64 root", b.len())));
                    }
                    out.push(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])));
                }
            }
            _ => {
                let mut query = Vec::new();
                if let Some(l) = stop_layer {
                    query.push(format!("stop_layer={l}"));
                }
                if let Some(t) = timestamp {
                    query.push(format!("timestamp={}", unix(t)));
                }
                let mut url = format!("{}/roots_binary", self.path.v1_base());
                if !query.is_empty() {
                    url = format!("{url}?{}", query.join("&"));
                }
                for batch in ids.chunks(ROOTS_BATCH) {
                    let raw: Vec<u8> = batch.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let gz = raw.len() > GZIP_OVER;
                    let body = if gz { compression::compress(raw, ContentEncoding::Gzip, Some(1), &url)? } else { raw };
                    let b = self.call("POST", &url, Some((&body, gz)), batch.len() * 8)?;
                    if b.len() != batch.len() * 8 {
                        return Err(Error::decode(format!(
                            "POST {url}: answered {} bytes for {} ids (expected {} uint64 roots)",
                            b.len(),
                            batch.len(),
                            batch.len()
                        )));
                    }
                    out.extend(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))));
                }
            }
        }
        Ok(out)
    }
}

/// cloud-volume sends timestamps as integer seconds, rounded up.
fn unix(t: f64) -> i64 {
    t.ceil() as i64
}

/// The graph of one open table: its server, label layout and the handle's graphene options.
struct Graph {
    client: Client,
    meta: GraphMeta,
    opts: GrapheneOptions,
}

impl Graph {
    /// Whether reads are mapped at all (`agglomerate`, and a stop layer above 1).
    fn maps(&self) -> bool {
        self.opts.agglomerate && self.opts.stop_layer != Some(1)
    }

    /// The map of `ids` (distinct) to what reads show: 0 to 0, ids at the stop layer or the
    /// root layer to themselves, the rest through the server.
    fn map_of(&self, ids: impl IntoIterator<Item = u64>) -> Result<IdMap<u64>> {
        let mut map = IdMap::default();
        let mut ask = Vec::new();
        for id in ids {
            let layer = self.meta.layer(id);
            if id == 0 || layer == self.meta.n_layers || Some(layer) == self.opts.stop_layer {
                map.insert(id, id);
            } else {
                ask.push(id);
            }
        }
        ask.sort_unstable();
        let roots = self.client.roots(&ask, self.opts.timestamp, self.opts.stop_layer)?;
        map.extend(ask.into_iter().zip(roots));
        Ok(map)
    }
}

impl crate::volume::objects::graphene::ManifestSource for Graph {
    /// cloud-volume's `fetch_manifest_remote(verify=True, return_segids=True)`: a GET with the
    /// JSON body `{"start_layer": L}`.
    fn manifest(&self, id: u64, start_layer: u32) -> Result<(String, Value)> {
        let url = format!("{}?verify=True&return_seg_ids=1", self.client.path.manifest_url(self.client.api, id));
        let body = format!("{{\"start_layer\": {start_layer}}}");
        let bytes = self.client.call(
            "GET",
            &url,
            Some((body.as_bytes(), false)),
            crate::volume::objects::graphene::MAX_MANIFEST,
        )?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| Error::decode(format!("GET {url}: the mesh manifest is not valid JSON ({e})")))?;
        Ok((url, v))
    }
}

/// One scale of a graphene layer: the Precomputed reader of its supervoxels, with reads
/// mapped through the graph.
struct GrapheneScale {
    inner: Box<dyn ScaleIo>,
    graph: Arc<Graph>,
    engine: Arc<Engine>,
    channels: usize,
}

/// The rows of `region`: (y, z, c) triples.
fn rows_of(region: &Bbox, channels: usize) -> Vec<(i64, i64, usize)> {
    let mut rows = Vec::new();
    for c in 0..channels {
        for z in region.lo[2]..region.hi[2] {
            for y in region.lo[1]..region.hi[1] {
                rows.push((y, z, c));
            }
        }
    }
    rows
}

impl GrapheneScale {
    /// Rewrite `region` of `out` (supervoxels) through the graph.
    fn agglomerate(&self, region: &Bbox, out: &OutView<'_>) -> Result<()> {
        let rows = rows_of(region, self.channels);
        let (x0, x1) = (region.lo[0], region.hi[0]);
        // Distinct ids, by slabs of rows in parallel.
        let slabs: Vec<&[(i64, i64, usize)]> = rows.chunks(rows.len().div_ceil(64).max(1)).collect();
        let sets = self.engine.map(&slabs, |_, slab| {
            let mut seen = IdMap::<()>::default();
            let mut last = None;
            for &(y, z, c) in slab.iter() {
                // SAFETY: read only; no other thread writes the view during this pass.
                unsafe {
                    out.update_row(x0, x1, y, z, c, |row| {
                        for e in row.chunks_exact(8) {
                            let v = u64::from_le_bytes(e.try_into().unwrap_or([0; 8]));
                            if last != Some(v) {
                                last = Some(v);
                                seen.insert(v, ());
                            }
                        }
                    })
                }
            }
            Ok(seen)
        })?;
        let mut all = IdMap::<()>::default();
        for s in sets {
            all.extend(s);
        }
        let map = self.graph.map_of(all.into_keys())?;
        self.engine.run(&slabs, |_, slab| {
            let (mut last, mut to) = (None, 0u64);
            for &(y, z, c) in slab.iter() {
                // SAFETY: the slabs are disjoint rows.
                unsafe {
                    out.update_row(x0, x1, y, z, c, |row| {
                        for e in row.chunks_exact_mut(8) {
                            let v = u64::from_le_bytes((&*e).try_into().unwrap_or([0; 8]));
                            if last != Some(v) {
                                last = Some(v);
                                to = map.get(&v).copied().unwrap_or(v);
                            }
                            e.copy_from_slice(&to.to_le_bytes());
                        }
                    })
                }
            }
            Ok(())
        })
    }
}

impl ScaleIo for GrapheneScale {
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        self.inner.read_box(region, out, progress)?;
        if self.graph.maps() {
            self.agglomerate(region, out)?;
        }
        Ok(())
    }

    fn read_points(&self, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        self.inner.read_points(points, out)?;
        if self.graph.maps() {
            let ids: IdMap<()> =
                out.chunks_exact(8).map(|e| (u64::from_le_bytes(e.try_into().unwrap_or([0; 8])), ())).collect();
            let map = self.graph.map_of(ids.into_keys())?;
            for e in out.chunks_exact_mut(8) {
                let v = u64::from_le_bytes((&*e).try_into().unwrap_or([0; 8]));
                e.copy_from_slice(&map.get(&v).copied().unwrap_or(v).to_le_bytes());
            }
        }
        Ok(())
    }

    fn chunks_exist(&self, region: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        self.inner.chunks_exist(region)
    }

    fn work_units(&self, region: &Bbox) -> usize {
        self.inner.work_units(region)
    }

    /// The supervoxel chunk files of `data_dir`, unmapped.
    fn chunk_files(&self, region: &Bbox, decompress: bool) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.chunk_files(region, decompress)
    }

    /// Supervoxels counted by the Precomputed reader, then summed per root.
    fn label_counts(&self, region: &Bbox, channels: usize, item: usize) -> Result<Counts> {
        let svs = self.inner.label_counts(region, channels, item)?;
        if !self.graph.maps() {
            return Ok(svs);
        }
        let map = self.graph.map_of(svs.keys().copied())?;
        let mut out = Counts::default();
        for (sv, n) in svs {
            *out.entry(map.get(&sv).copied().unwrap_or(sv)).or_insert(0) += n;
        }
        Ok(out)
    }

    fn write_box(&self, region: &Bbox, _buf: &[u8]) -> Result<()> {
        Err(Error::unsupported(format!(
            "box {region}: graphene layers cannot be written (their segmentation changes through the chunkedgraph's edit API)"
        )))
    }

    fn delete_box(&self, region: &Bbox) -> Result<()> {
        Err(Error::unsupported(format!("box {region}: graphene layers cannot be written or deleted")))
    }

    fn clear_cache(&self) {
        self.inner.clear_cache();
    }
}

/// Open a `graphene://` layer.
///
/// # Errors
/// A bad URL or option (`InvalidArgument`), a refused token (`Auth`, naming the host), an
/// unknown table (`NotFound`), a server answering garbage (`Decode`), a `data_dir` that does
/// not exist (`NotFound`), a layer that is not uint64 (`Decode`).
pub(super) fn open(url: &str, opts: Options) -> Result<Volume> {
    let gpath = GraphenePath::parse(url)?;
    let token = find_token(&gpath.host, opts.store.secrets.as_ref().map(|s| &s.0))?;
    let http = crate::store::http_config(&opts.store);
    let mut client = Client {
        path: gpath.clone(),
        // Redirects are not followed: a 302 is middle_auth_client's way of refusing.
        agent: ureq::AgentBuilder::new()
            .timeout_connect(std::time::Duration::from_secs_f64(http.connect_timeout_secs.min(http.timeout_secs)))
            .timeout(std::time::Duration::from_secs_f64(http.timeout_secs))
            .redirects(0)
            .user_agent(concat!("cloudvolume-rs/", env!("CARGO_PKG_VERSION")))
            .build(),
        retry: http.retry,
        token,
        api: ApiVersion::V1,
    };
    let json = client.info()?;
    let info_url = gpath.info_url();
    let meta = GraphMeta::from_info(&json, &info_url)?;
    client.api = match gpath.version {
        ApiVersion::Latest if !meta.api_versions.is_empty() && !meta.api_versions.contains(&ApiVersion::V1) => {
            ApiVersion::Legacy
        }
        ApiVersion::Latest => ApiVersion::V1,
        v => v,
    };
    if client.api == ApiVersion::Legacy && opts.graphene.stop_layer.is_some() {
        return Err(Error::unsupported(format!("{url}: the legacy 1.0 API has no stop_layer")));
    }
    if let Some(l) = opts.graphene.stop_layer {
        if l > meta.n_layers {
            return Err(Error::invalid(format!(
                "option \"stop_layer\" {l} is past the {} layers of {url}",
                meta.n_layers
            )));
        }
    }
    let data_dir = json
        .get("data_dir")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::decode(format!("{info_url}: the graphene info has no \"data_dir\"")))?
        .to_string();
    let info = Info::from_json(json, &info_url)?;
    if info.data_type != DataType::U64 {
        return Err(Error::decode(format!(
            "{info_url}: a graphene layer is uint64, this info says {}",
            info.data_type.name()
        )));
    }
    let dpath = CloudPath::parse(&data_dir, &opts.store)
        .map_err(|e| e.context(format!("{info_url}: data_dir \"{data_dir}\"")))?;
    if dpath.protocol == Protocol::File && !std::path::Path::new(&dpath.base).is_dir() {
        return Err(Error::not_found(format!("{url}: its data_dir {data_dir} does not exist")));
    }
    let store = crate::store::open(&dpath, &opts.store)?;
    let threads = opts.store.parallel.unwrap_or_else(|| store.default_parallel());
    let engine = Arc::new(Engine::new(
        threads,
        opts.store.parallel.unwrap_or_else(|| store.default_fetches()),
        opts.store.max_inflight_bytes,
    )?);
    let mesh_meta = crate::volume::objects::graphene::GrapheneMeshMeta::from_info(&info, meta.clone(), &info_url)?;
    let graph = Arc::new(Graph { client, meta, opts: opts.graphene.clone() });
    let scales = precomputed::scales(&info, &store, &engine, &opts, &dpath)?
        .into_iter()
        .map(|inner| -> Box<dyn ScaleIo> {
            Box::new(GrapheneScale {
                inner,
                graph: graph.clone(),
                engine: engine.clone(),
                channels: info.num_channels as usize,
            })
        })
        .collect();
    let path = CloudPath { path: url.trim().trim_end_matches('/').to_string(), ..dpath };
    let link = super::objects::graphene::GrapheneLink { source: graph.clone(), meta: mesh_meta, mip: opts.mip };
    let objects = super::objects::Objects::new(store.clone(), engine.clone(), &info).with_graphene(link);
    Ok(Volume { path, source: super::Source::Graphene(store), info, opts, scales, objects: Some(objects) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn token_shapes_and_sources() {
        assert!(token_shape_ok("deadbeef0123"));
        assert!(token_shape_ok("QUJD+/ef=="));
        assert!(!token_shape_ok("not a token!"));
        assert!(!token_shape_ok(""));
        let t = find_token("h", Some(&serde_json::json!({"token": "abc123"}))).unwrap().unwrap();
        assert_eq!(t.value, "abc123");
        let t = find_token("h", Some(&Value::String("{\"token\": \"ff00\"}".into()))).unwrap().unwrap();
        assert_eq!(t.value, "ff00");
        let t = find_token("h", Some(&Value::String("c0ffee".into()))).unwrap().unwrap();
        assert_eq!(t.value, "c0ffee");
        let e = find_token("h", Some(&serde_json::json!({"token": "bad token!"}))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(!e.message().contains("bad token"), "{e}");
    }

    #[test]
    fn timestamps_round_up_as_cloud_volume_sends_them() {
        assert_eq!(unix(1_700_000_000.0), 1_700_000_000);
        assert_eq!(unix(1_700_000_000.2), 1_700_000_001);
    }
}
