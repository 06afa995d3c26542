//! DVID data instances (`dvid://HOST:PORT/UUID/DATA`): a service that answers boxes. Each
//! scale reads through `GET .../raw/0_1_2/<size>/<offset>` in block-aligned tiles of about
//! 8 MiB fetched in parallel (label types as a bare LZ4 block, `supervoxels` unless
//! `agglomerate`, `scale=N` past mip 0), and writes block-aligned boxes by `POST` of the same
//! (read, painted and re-posted around the edges with `non_aligned_writes`). DVID's busy 503 is
//! retried with backoff, as pydvid did; other statuses are not. An optional Bearer token comes
//! from the `secrets` option (the token, `{"token": ...}` or a file) or `dvid-secret.json`.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::engine::Engine;
use super::io::ScaleIo;
use super::precomputed::copy_box;
use super::service::{grid_tiles, points_as_boxes, read_answer};
use super::{Source, Volume};
use crate::cloudpath::{CloudPath, Protocol};
use crate::codec::OutView;
use crate::error::{Error, Result};
use crate::format::dvid::{info_from_dvid, typename_for, DvidMeta, DvidPath};
use crate::format::{Bbox, Info, LayerType};
use crate::options::Options;
use crate::store::retry::{Attempt, Retry};

/// Bytes one request asks for, about.
const TILE_BYTES: usize = 8 << 20;
/// The largest `/info` answer read.
const MAX_INFO: usize = 16 << 20;

/// A token and where it came from (for messages; the token is never printed).
#[derive(Clone)]
struct Token {
    value: String,
    from: String,
}

fn find_token(secrets: Option<&Value>) -> Result<Option<Token>> {
    let of = |m: &serde_json::Map<String, Value>, from: &str| -> Result<Token> {
        m.get("token")
            .and_then(Value::as_str)
            .map(|t| Token { value: t.to_string(), from: from.to_string() })
            .ok_or_else(|| Error::auth(format!("{from}: no \"token\" member")))
    };
    if let Some(v) = secrets {
        return match v {
            Value::Object(m) => of(m, "option \"secrets\"").map(Some),
            Value::String(s) if std::path::Path::new(s).is_file() => {
                let m = crate::secrets::read_secret_file(std::path::Path::new(s))?;
                of(&m, &format!("secret file {s}")).map(Some)
            }
            Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => {
                Ok(Some(Token { value: s.clone(), from: "option \"secrets\"".into() }))
            }
            _ => Err(Error::invalid("option \"secrets\" must be a token, an object with \"token\" or a file")),
        };
    }
    match crate::secrets::find_secret(&["dvid-secret.json".to_string()])? {
        Some((path, m)) => of(&m, &format!("secret file {}", path.display())).map(Some),
        None => Ok(None),
    }
}

/// One DVID server and data instance.
struct Client {
    path: DvidPath,
    agent: ureq::Agent,
    retry: Retry,
    token: Option<Token>,
}

impl Client {
    fn once(&self, method: &str, url: &str, body: Option<&[u8]>, limit: usize) -> Attempt<Vec<u8>> {
        let mut req = self.agent.request(method, url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {}", t.value));
        }
        let r = match body {
            Some(b) => req.set("Content-Type", "application/octet-stream").send_bytes(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, resp)) => {
                let mut text = String::new();
                let _ = resp.into_reader().take(4096).read_to_string(&mut text);
                let said: String = text.trim().chars().filter(|c| !c.is_control()).take(300).collect();
                let said = if said.is_empty() { String::new() } else { format!(": {said}") };
                let host = &self.path.server;
                return Err(match code {
                    401 | 403 => {
                        let which = match &self.token {
                            Some(t) => format!("the token from {}", t.from),
                            None => "no token (none in \"secrets\" nor in dvid-secret.json)".into(),
                        };
                        (false, Error::auth(format!("{method} {url}: HTTP {code}: {host} refused {which}{said}")))
                    }
                    404 => (false, Error::not_found(format!("{method} {url}: HTTP 404{said}"))),
                    // DVID answers 400 for an unknown node or instance.
                    400 if ["could not find UUID", "invalid data instance name", "not found in repo"]
                        .iter()
                        .any(|t| text.contains(t)) =>
                    {
                        (false, Error::not_found(format!("{method} {url}: HTTP 400{said}")))
                    }
                    400 => (false, Error::invalid(format!("{method} {url}: HTTP 400{said}"))),
                    // DVID's busy (throttled) or unavailable answer.
                    503 => (true, Error::io(format!("{method} {url}: HTTP 503 (DVID busy){said}"))),
                    _ => (false, Error::io(format!("{method} {url}: HTTP {code}{said}"))),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                return Err((true, Error::io(format!("{method} {url}: {}", crate::store::http::transport_text(&t)))))
            }
        };
        read_answer(resp, limit, method, url)
    }

    fn call(&self, method: &str, url: &str, body: Option<&[u8]>, limit: usize) -> Result<Vec<u8>> {
        self.retry.run(|| self.once(method, url, body, limit))
    }

    fn json(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value> {
        let text = body.map(|b| b.to_string().into_bytes());
        let bytes = self.call(method, url, text.as_deref(), MAX_INFO)?;
        if bytes.is_empty() && method == "POST" {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::decode(format!("{method} {url}: the answer is not JSON: {e}")))
    }
}

/// One scale of a DVID instance.
struct DvidScale {
    client: Arc<Client>,
    meta: DvidMeta,
    engine: Arc<Engine>,
    /// Downres level (labelmap `scale=N`).
    level: u32,
    /// Labels: supervoxels rather than mapped labels.
    supervoxels: bool,
    non_aligned_writes: bool,
}

/// `a_b_c` of a triple.
fn joined(v: [i64; 3]) -> String {
    format!("{}_{}_{}", v[0], v[1], v[2])
}

impl DvidScale {
    fn item(&self) -> usize {
        self.meta.dtype.size()
    }

    /// The raw URL of `b` with the query this scale reads or writes with.
    fn raw_url(&self, b: &Bbox, write: bool) -> String {
        let mut q = Vec::new();
        if self.meta.labels {
            q.push("compression=lz4".to_string());
            if !write && self.supervoxels {
                q.push("supervoxels=true".into());
            }
            if self.level > 0 {
                q.push(format!("scale={}", self.level));
            }
        }
        let query = if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) };
        format!("{}/raw/0_1_2/{}/{}{query}", self.client.path.node_url(), joined(b.shape()), joined(b.lo))
    }

    /// Block-aligned tiles of about [`TILE_BYTES`] covering `region`, clipped to it, for reads.
    fn tiles(&self, region: &Bbox) -> Vec<Bbox> {
        self.tiles_for(region, true)
    }

    /// As [`DvidScale::tiles`]; `read` splits a label tile of exactly one aligned block (see
    /// below), which a write must not do (DVID takes only aligned label writes).
    fn tiles_for(&self, region: &Bbox, read: bool) -> Vec<Bbox> {
        let bs = self.meta.block_size;
        let per_voxel = self.item() * self.meta.channels;
        let mut out = Vec::new();
        for c in grid_tiles(region, bs, per_voxel, TILE_BYTES, [0, 1, 2], true) {
            // DVID answers a label GET of exactly one aligned block from the stored block, and a
            // 400 when it was never written; two halves take the general path (unwritten voxels
            // read 0).
            let one_block = c.shape() == bs && (0..3).all(|d| c.lo[d].rem_euclid(bs[d]) == 0);
            if read && self.meta.labels && one_block && bs[2] > 1 {
                let mid = c.lo[2] + bs[2] / 2;
                out.push(Bbox::new(c.lo, [c.hi[0], c.hi[1], mid]));
                out.push(Bbox::new([c.lo[0], c.lo[1], mid], c.hi));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Fetch `tile` as packed voxels (ZYX, x fastest; channels interleaved per voxel).
    fn fetch(&self, tile: &Bbox) -> Result<Vec<u8>> {
        let url = self.raw_url(tile, false);
        let want = tile.voxels().unwrap_or(0) as usize * self.item() * self.meta.channels;
        if self.meta.labels {
            let limit = want + want / 255 + 64;
            let body = self.client.call("GET", &url, None, limit)?;
            let mut out = vec![0u8; want];
            let n = lz4_flex::block::decompress_into(&body, &mut out)
                .map_err(|e| Error::decode(format!("GET {url}: corrupt LZ4 block ({} bytes): {e}", body.len())))?;
            if n != want {
                return Err(Error::decode(format!(
                    "GET {url}: the LZ4 block holds {n} bytes, the box {tile} needs {want}"
                )));
            }
            Ok(out)
        } else {
            let body = self.client.call("GET", &url, None, want)?;
            if body.len() != want {
                return Err(Error::decode(format!(
                    "GET {url}: {} bytes for box {tile}, expected {want} ({} x {})",
                    body.len(),
                    tile.voxels().unwrap_or(0),
                    self.meta.dtype.name()
                )));
            }
            Ok(body)
        }
    }

    /// Place packed `data` of `tile` into `out`.
    fn place(&self, tile: &Bbox, data: &[u8], out: &OutView<'_>) {
        let (item, ch) = (self.item(), self.meta.channels);
        let w = (tile.hi[0] - tile.lo[0]) as usize;
        let mut row = vec![0u8; w * item];
        let mut i = 0;
        for z in tile.lo[2]..tile.hi[2] {
            for y in tile.lo[1]..tile.hi[1] {
                let src = &data[i..i + w * item * ch];
                i += w * item * ch;
                if ch == 1 {
                    // SAFETY: tiles are disjoint; each row is written by one task.
                    unsafe { out.put_row(tile.lo[0], y, z, 0, src) };
                } else {
                    for c in 0..ch {
                        for (x, e) in row.chunks_exact_mut(item).enumerate() {
                            e.copy_from_slice(&src[(x * ch + c) * item..][..item]);
                        }
                        // SAFETY: as above.
                        unsafe { out.put_row(tile.lo[0], y, z, c, &row) };
                    }
                }
            }
        }
    }

    /// Post `data` (planar `[x, y, z, c]` of `region`) as block-aligned tiles.
    fn post(&self, region: &Bbox, data: &[u8]) -> Result<()> {
        let (item, ch) = (self.item(), self.meta.channels);
        let tiles = self.tiles_for(region, false);
        self.engine.run(&tiles, |_, tile| {
            let n = tile.voxels().unwrap_or(0) as usize;
            let mut planar = vec![0u8; n * item * ch];
            copy_box(data, region, &mut planar, tile, tile, ch, item);
            let packed = if ch == 1 {
                planar
            } else {
                let mut p = vec![0u8; planar.len()];
                for c in 0..ch {
                    for v in 0..n {
                        p[(v * ch + c) * item..][..item].copy_from_slice(&planar[(c * n + v) * item..][..item]);
                    }
                }
                p
            };
            let body = if self.meta.labels { lz4_flex::block::compress(&packed) } else { packed };
            self.client.call("POST", &self.raw_url(tile, true), Some(&body), 1 << 20).map(|_| ())
        })
    }
}

impl ScaleIo for DvidScale {
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let tiles = self.tiles(region);
        self.engine.run(&tiles, |_, tile| {
            let data = self.fetch(tile)?;
            self.place(tile, &data, out);
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    }

    fn read_points(&self, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        points_as_boxes(self, points, out, self.meta.channels, self.item())
    }

    fn chunks_exist(&self, region: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        Err(Error::unsupported(format!(
            "{}: DVID stores blocks, not chunk files; box {region} has no chunk list",
            self.client.path.display()
        )))
    }

    fn work_units(&self, region: &Bbox) -> usize {
        self.tiles(region).len()
    }

    fn write_box(&self, region: &Bbox, buf: &[u8]) -> Result<()> {
        if self.level > 0 {
            return Err(Error::unsupported(format!(
                "{}: DVID writes scale 0 only and computes downres level {} itself; write mip 0",
                self.client.path.display(),
                self.level
            )));
        }
        let bs = self.meta.block_size;
        let aligned = (0..3).all(|d| region.lo[d].rem_euclid(bs[d]) == 0 && region.hi[d].rem_euclid(bs[d]) == 0);
        if aligned {
            return self.post(region, buf);
        }
        if !self.non_aligned_writes {
            return Err(Error::invalid(format!(
                "{}: box {region} is not aligned to DVID's {}x{}x{} blocks (open with non_aligned_writes=true to \
                 write it: the blocks around it are read and written back)",
                self.client.path.display(),
                bs[0],
                bs[1],
                bs[2]
            )));
        }
        let outer = Bbox::new(
            [0, 1, 2].map(|d| region.lo[d].div_euclid(bs[d]) * bs[d]),
            [0, 1, 2].map(|d| (region.hi[d] + bs[d] - 1).div_euclid(bs[d]) * bs[d]),
        );
        let (item, ch) = (self.item(), self.meta.channels);
        let mut whole = vec![0u8; outer.voxels().unwrap_or(0) as usize * item * ch];
        {
            let view = OutView::new(&mut whole, outer, ch, item);
            self.read_box(&outer, &view, None)?;
        }
        copy_box(buf, region, &mut whole, &outer, region, ch, item);
        self.post(&outer, &whole)
    }

    fn delete_box(&self, region: &Bbox) -> Result<()> {
        Err(Error::unsupported(format!(
            "{}: deleting box {region} is not supported on DVID (write zeros instead)",
            self.client.path.display()
        )))
    }

    fn has_data(&self) -> Result<bool> {
        // The instance's extents, asked afresh.
        let url = format!("{}/info", self.client.path.node_url());
        let json = self.client.json("GET", &url, None)?;
        let (info, _) = info_from_dvid(&json, &url)?;
        Ok(info.scales.first().is_some_and(|s| s.size.iter().all(|&v| v > 0)))
    }
}

fn client_for(path: DvidPath, opts: &Options) -> Result<Client> {
    let token = find_token(opts.store.secrets.as_ref().map(|s| &s.0))?;
    let http = crate::store::http_config(&opts.store);
    Ok(Client { path, agent: crate::store::http::agent(&http), retry: http.retry, token })
}

fn volume(path: DvidPath, client: Client, json: Value, opts: Options) -> Result<Volume> {
    let url = format!("{}/info", path.node_url());
    let (info, meta) = info_from_dvid(&json, &url)?;
    let threads = opts.store.parallel.unwrap_or(crate::options::DEFAULT_NETWORK_PARALLEL);
    let engine = Arc::new(Engine::new(threads, threads, opts.store.max_inflight_bytes)?);
    let client = Arc::new(client);
    let scales = (0..info.scales.len() as u32)
        .map(|level| -> Box<dyn ScaleIo> {
            Box::new(DvidScale {
                client: client.clone(),
                meta: meta.clone(),
                engine: engine.clone(),
                level,
                supervoxels: !opts.graphene.agglomerate,
                non_aligned_writes: opts.write.non_aligned_writes,
            })
        })
        .collect();
    let cpath =
        CloudPath { protocol: Protocol::Http, base: path.node_url(), path: path.display(), bucket: None, alias: None };
    Ok(Volume { path: cpath, source: Source::Service("DVID"), info, opts, scales, objects: None })
}

/// Open a DVID data instance.
///
/// # Errors
/// A bad URL (`InvalidArgument`), an unknown node or instance (`NotFound`), a refused token
/// (`Auth`), an instance that is not a volume (`Unsupported`), a malformed info (`Decode`).
pub(super) fn open(url: &str, opts: Options) -> Result<Volume> {
    let path = DvidPath::parse(url)?;
    let client = client_for(path.clone(), &opts)?;
    let json = client.json("GET", &format!("{}/info", path.node_url()), None)?;
    volume(path, client, json, opts)
}

/// Create a data instance in an existing repo (pydvid's `create_new`): its type from the info's
/// type, data type and channels (`labelmap` for uint64 segmentation, `uint8blk` ... `rgba8blk`
/// for images), block size from the first scale's chunk size (cubic blocks; 64 when absent),
/// voxel size from its resolution; then open it.
///
/// # Errors
/// A combination DVID has no type for, or several scales (`Unsupported`); a bad info
/// (`Decode`); the server's refusal (an existing name: `InvalidArgument`).
pub(super) fn create(url: &str, info_json: &str, opts: Options) -> Result<Volume> {
    let path = DvidPath::parse(url)?;
    let info = Info::parse(info_json.as_bytes(), url)?;
    let seg = info.layer_type == LayerType::Segmentation;
    let typename = typename_for(info.data_type, info.num_channels, seg)?;
    let sc = &info.scales[0];
    // Further scales: labelmap's downres levels, each twice the previous on every axis.
    let halvings = info.scales.windows(2).all(|w| (0..3).all(|d| w[1].resolution[d] == 2.0 * w[0].resolution[d]));
    if info.scales.len() > 1 && !(typename == "labelmap" && halvings) {
        return Err(Error::unsupported(format!(
            "{url}: a new DVID {typename} instance has one scale (a labelmap also has downres levels, each twice \
             the previous resolution on every axis); the info has {} scales",
            info.scales.len()
        )));
    }
    let client = client_for(path.clone(), &opts)?;
    let b = sc.chunk_size;
    let body = json!({
        "typename": typename,
        "dataname": path.data,
        "BlockSize": format!("{},{},{}", b[0], b[1], b[2]),
        "VoxelSize": format!("{},{},{}", sc.resolution[0], sc.resolution[1], sc.resolution[2]),
        "VoxelUnits": "nanometers,nanometers,nanometers",
    });
    let mut body = body;
    if typename == "labelmap" && info.scales.len() > 1 {
        body["MaxDownresLevel"] = json!((info.scales.len() - 1).to_string());
    }
    let repo = format!("{}/api/repo/{}/instance", path.server, path.uuid);
    client.json("POST", &repo, Some(&body))?;
    let json = client.json("GET", &format!("{}/info", path.node_url()), None)?;
    volume(path, client, json, opts)
}

/// Create a repo on a DVID server (`POST /api/repos`); returns its root UUID.
///
/// # Errors
/// A bad server URL (`InvalidArgument`), the server's refusal or I/O errors.
pub fn create_repo(server: &str, alias: &str, description: &str, opts: &Options) -> Result<String> {
    let s = server.trim().trim_start_matches("dvid://").trim_end_matches('/');
    let s = if s.starts_with("http://") || s.starts_with("https://") { s.to_string() } else { format!("http://{s}") };
    let path = DvidPath { server: s.clone(), uuid: String::new(), data: String::new() };
    let client = client_for(path, opts)?;
    let url = format!("{s}/api/repos");
    let answer = client.json("POST", &url, Some(&json!({"alias": alias, "description": description})))?;
    answer
        .get("root")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::decode(format!("POST {url}: the answer has no \"root\" UUID: {answer}")))
}
