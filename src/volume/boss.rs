//! BOSS channels (`boss://COLLECTION/EXPERIMENT/CHANNEL`): a service that answers boxes. The
//! channel, experiment, coordinate frame and downsample metadata become the info (a mip per
//! resolution level); reads are `GET /v1/cutout/...` of cuboid-aligned tiles of about 16 MiB in
//! parallel (far under the server's 500 MiB limit; a server answering 413 gets halves until
//! they pass), `Accept: application/blosc`; writes POST
//! blosc bodies the same way (the BOSS keeps only their non-zero voxels, and takes writes at
//! its base resolution and the next). 429 and 5xx are retried with backoff (intern retries
//! nothing). A channel stored as `cloudvol` is read as the Precomputed layer it names.
//!
//! Credentials, as intern and cloud-volume find them: the `secrets` option (an object with
//! `protocol`, `host`, `token`; a file holding one; or the token itself), `boss-secret.json` in
//! the secret folders, `~/.intern/intern.cfg` (`[Default]`), then `INTERN_PROTOCOL`,
//! `INTERN_HOST`, `INTERN_TOKEN`; else `https://api.bossdb.io` with the token `public`. A host
//! in the URL wins over the credentials' host. Requests send `Authorization: Token <token>`.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::engine::Engine;
use super::io::ScaleIo;
use super::precomputed::copy_box;
use super::service::{grid_tiles, place_rows, points_as_boxes, read_answer};
use super::{Source, Volume};
use crate::cloudpath::{CloudPath, Protocol};
use crate::codec::{blosc, OutView};
use crate::error::{Error, Result};
use crate::format::boss::{info_from_boss, BossMeta, BossPath, DEFAULT_HOST};
use crate::format::Bbox;
use crate::options::Options;
use crate::store::retry::{Attempt, Retry};

/// Bytes one request asks for, about.
const TILE_BYTES: usize = 16 << 20;
const MAX_JSON: usize = 4 << 20;

/// Where requests go and with what token (never printed; `from` says where it came from).
#[derive(Clone)]
struct Creds {
    server: String,
    token: String,
    from: String,
}

fn creds_of(m: &serde_json::Map<String, Value>, from: &str) -> Result<Creds> {
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let protocol = s("protocol").unwrap_or_else(|| "https".into());
    let host = s("host").unwrap_or_else(|| DEFAULT_HOST.into());
    let token = s("token").ok_or_else(|| Error::auth(format!("{from}: no \"token\" member")))?;
    Ok(Creds { server: format!("{protocol}://{host}"), token, from: from.into() })
}

/// intern's `intern.cfg`: `[Default]` with `protocol`, `host`, `token` lines.
fn intern_cfg(path: &std::path::Path) -> Option<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut section = String::new();
    let mut m = serde_json::Map::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].trim().to_string();
        } else if section == "Default" {
            if let Some((k, v)) = line.split_once(['=', ':']) {
                m.insert(k.trim().to_ascii_lowercase(), Value::String(v.trim().to_string()));
            }
        }
    }
    (!m.is_empty()).then_some(m)
}

fn find_creds(secrets: Option<&Value>) -> Result<Creds> {
    if let Some(v) = secrets {
        return match v {
            Value::Object(m) => creds_of(m, "option \"secrets\""),
            Value::String(s) if std::path::Path::new(s).is_file() => {
                let m = crate::secrets::read_secret_file(std::path::Path::new(s))?;
                creds_of(&m, &format!("secret file {s}"))
            }
            Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => Ok(Creds {
                server: format!("https://{DEFAULT_HOST}"),
                token: s.clone(),
                from: "option \"secrets\"".into(),
            }),
            _ => Err(Error::invalid("option \"secrets\" must be a token, {protocol, host, token} or a file")),
        };
    }
    if let Some((path, m)) = crate::secrets::find_secret(&["boss-secret.json".to_string()])? {
        return creds_of(&m, &format!("secret file {}", path.display()));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cfg = std::path::Path::new(&home).join(".intern").join("intern.cfg");
        if let Some(m) = intern_cfg(&cfg) {
            return creds_of(&m, &cfg.display().to_string());
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(token) = env("INTERN_TOKEN") {
        let protocol = env("INTERN_PROTOCOL").unwrap_or_else(|| "https".into());
        let host = env("INTERN_HOST").unwrap_or_else(|| DEFAULT_HOST.into());
        return Ok(Creds { server: format!("{protocol}://{host}"), token, from: "$INTERN_TOKEN".into() });
    }
    Ok(Creds { server: format!("https://{DEFAULT_HOST}"), token: "public".into(), from: "the public token".into() })
}

struct Client {
    path: BossPath,
    agent: ureq::Agent,
    retry: Retry,
    creds: Creds,
}

impl Client {
    fn v1(&self, rest: &str) -> String {
        format!("{}/v1/{rest}", self.creds.server)
    }

    fn once(&self, method: &str, url: &str, body: Option<&[u8]>, limit: usize) -> Attempt<Vec<u8>> {
        let mut req = self.agent.request(method, url).set("Authorization", &format!("Token {}", self.creds.token));
        let r = match body {
            Some(b) => req.set("Content-Type", "application/blosc").send_bytes(b),
            None => {
                if url.contains("/cutout/") {
                    req = req.set("Accept", "application/blosc");
                }
                req.call()
            }
        };
        let resp = match r {
            Ok(resp) => resp,
            Err(ureq::Error::Status(code, resp)) => {
                let mut text = String::new();
                let _ = resp.into_reader().take(4096).read_to_string(&mut text);
                // The BOSS's errors: {"status", "code", "message"} or DRF's {"detail"}.
                let said = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.get("message").or_else(|| v.get("detail")).and_then(Value::as_str).map(str::to_string)
                    })
                    .unwrap_or_else(|| text.chars().filter(|c| !c.is_control()).take(200).collect());
                let said = if said.trim().is_empty() { String::new() } else { format!(": {}", said.trim()) };
                let host = &self.creds.server;
                return Err(match code {
                    401 | 403 => (
                        false,
                        Error::auth(format!(
                            "{method} {url}: HTTP {code}: {host} refused {}{said}",
                            match self.creds.from.as_str() {
                                "the public token" => "the public token (no BOSS credentials found)".to_string(),
                                f => format!("the token from {f}"),
                            }
                        )),
                    ),
                    404 => (false, Error::not_found(format!("{method} {url}: HTTP 404{said}"))),
                    413 => {
                        (false, Error::invalid(format!("{method} {url}: HTTP 413: over the BOSS's cutout limit{said}")))
                    }
                    400 => (false, Error::invalid(format!("{method} {url}: HTTP 400{said}"))),
                    429 | 500..=599 => (true, Error::io(format!("{method} {url}: HTTP {code}{said}"))),
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

    fn json(&self, rest: &str) -> Result<Value> {
        let url = self.v1(rest);
        let bytes = self.call("GET", &url, None, MAX_JSON)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::decode(format!("GET {url}: the answer is not JSON: {e}")))
    }
}

struct BossScale {
    client: Arc<Client>,
    meta: Arc<BossMeta>,
    engine: Arc<Engine>,
    /// The resolution level (base_resolution + mip).
    level: u32,
    mip: usize,
}

impl BossScale {
    fn item(&self) -> usize {
        self.meta.dtype.size()
    }

    fn cutout_url(&self, b: &Bbox) -> String {
        let p = &self.client.path;
        self.client.v1(&format!(
            "cutout/{}/{}/{}/{}/{}:{}/{}:{}/{}:{}/",
            p.collection, p.experiment, p.channel, self.level, b.lo[0], b.hi[0], b.lo[1], b.hi[1], b.lo[2], b.hi[2]
        ))
    }

    /// What the server accepts: the level-0 frame, at every level.
    fn frame(&self) -> Bbox {
        let f = self.meta.frame;
        Bbox::new([f[0][0], f[1][0], f[2][0]], [f[0][1], f[1][1], f[2][1]])
    }

    /// Cuboid-aligned tiles of about [`TILE_BYTES`] covering `region`, clipped to it.
    fn tiles(&self, region: &Bbox) -> Vec<Bbox> {
        grid_tiles(region, self.meta.cuboids[self.mip], self.item(), TILE_BYTES, [2, 0, 1], false)
    }
}

/// Whether `e` is the BOSS's 413 (a box over its cutout limit).
fn too_large(e: &Error) -> bool {
    e.message().contains("HTTP 413")
}

/// `b` halved across its longest axis, or None for a single voxel.
fn halves(b: &Bbox) -> Option<(Bbox, Bbox)> {
    let s = b.shape();
    let d = (0..3).max_by_key(|&d| s[d])?;
    if s[d] < 2 {
        return None;
    }
    let mid = b.lo[d] + s[d] / 2;
    let (mut a, mut c) = (*b, *b);
    a.hi[d] = mid;
    c.lo[d] = mid;
    Some((a, c))
}

impl BossScale {
    /// Read `tile` into `out`; a server whose limit is under the tile (413) gets halves.
    fn get_tile(&self, tile: &Bbox, out: &OutView<'_>) -> Result<()> {
        let item = self.item();
        let url = self.cutout_url(tile);
        let want = tile.voxels().unwrap_or(0) as usize * item;
        let body = match self.client.call("GET", &url, None, want + want / 8 + (1 << 16)) {
            Ok(b) => b,
            Err(e) if too_large(&e) => {
                let (a, b) = halves(tile).ok_or(e)?;
                self.get_tile(&a, out)?;
                return self.get_tile(&b, out);
            }
            Err(e) => return Err(e),
        };
        let data = blosc::decompress(&body, want, &url)?;
        place_rows(tile, &data, item, out);
        Ok(())
    }

    /// Post `part` (planar, over `tile`); halves on a 413.
    fn post_tile(&self, tile: &Bbox, region: &Bbox, buf: &[u8]) -> Result<()> {
        let item = self.item();
        let mut part = vec![0u8; tile.voxels().unwrap_or(0) as usize * item];
        copy_box(buf, region, &mut part, tile, tile, 1, item);
        let body = blosc::compress(&part, item);
        drop(part);
        match self.client.call("POST", &self.cutout_url(tile), Some(&body), 1 << 20) {
            Ok(_) => Ok(()),
            Err(e) if too_large(&e) => {
                let (a, b) = halves(tile).ok_or(e)?;
                self.post_tile(&a, region, buf)?;
                self.post_tile(&b, region, buf)
            }
            Err(e) => Err(e),
        }
    }
}

impl ScaleIo for BossScale {
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let item = self.item();
        let inside = self.frame().intersection(region);
        if inside != Some(*region) {
            // What the server will not serve reads as 0.
            // SAFETY: nothing else writes the buffer yet.
            unsafe { out.fill(region, &vec![0u8; item]) };
        }
        let Some(inside) = inside else { return Ok(()) };
        let tiles = self.tiles(&inside);
        self.engine.run(&tiles, |_, tile| {
            self.get_tile(tile, out)?;
            if let Some(p) = progress {
                p.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    }

    fn read_points(&self, points: &[[i64; 3]], out: &mut [u8]) -> Result<()> {
        points_as_boxes(self, points, out, 1, self.item())
    }

    fn chunks_exist(&self, region: &Bbox) -> Result<Vec<(Bbox, bool)>> {
        Err(Error::unsupported(format!(
            "{}: the BOSS stores cuboids it does not list; box {region} has no chunk list",
            self.client.path.display()
        )))
    }

    fn work_units(&self, region: &Bbox) -> usize {
        self.tiles(region).len()
    }

    fn write_box(&self, region: &Bbox, buf: &[u8]) -> Result<()> {
        let frame = self.frame();
        if !frame.contains(region) {
            return Err(Error::out_of_bounds(format!(
                "{}: box {region} leaves the coordinate frame {frame} the BOSS writes",
                self.client.path.display()
            )));
        }
        let tiles = self.tiles(region);
        self.engine.run(&tiles, |_, tile| self.post_tile(tile, region, buf))
    }
}

/// Open a BOSS channel.
///
/// # Errors
/// A bad URL (`InvalidArgument`), an unknown resource (`NotFound`), a refused token (`Auth`,
/// naming the host and where the token came from), malformed metadata (`Decode`), a uint32
/// channel (`Unsupported`).
pub(super) fn open(url: &str, opts: Options) -> Result<Volume> {
    let path = BossPath::parse(url)?;
    let mut creds = find_creds(opts.store.secrets.as_ref().map(|s| &s.0))?;
    if let Some(s) = &path.server {
        creds.server.clone_from(s);
    }
    let http = crate::store::http_config(&opts.store);
    let client = Client { path: path.clone(), agent: crate::store::http::agent(&http), retry: http.retry, creds };
    let (c, e, ch) = (&path.collection, &path.experiment, &path.channel);
    let channel = client.json(&format!("collection/{c}/experiment/{e}/channel/{ch}/"))?;
    let experiment = client.json(&format!("collection/{c}/experiment/{e}/"))?;
    let frame_name = experiment
        .get("coord_frame")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::decode(format!("{url}: the experiment names no \"coord_frame\"")))?
        .to_string();
    let coord = client.json(&format!("coord/{frame_name}/"))?;
    let downsample = client.json(&format!("downsample/{c}/{e}/{ch}/"))?;
    let (info, meta) = info_from_boss(&channel, &coord, &downsample, url)?;
    if let Some(cv) = &meta.cloudvol {
        // intern's shortcut: the channel's voxels are a Precomputed layer.
        return Volume::open(cv, opts).map_err(|err| err.context(format!("{url}: its cloudvol layer {cv}")));
    }
    let threads = opts.store.parallel.unwrap_or(crate::options::DEFAULT_NETWORK_PARALLEL);
    let engine = Arc::new(Engine::new(threads, threads, opts.store.max_inflight_bytes)?);
    let client = Arc::new(client);
    let meta = Arc::new(meta);
    let scales = (0..info.scales.len())
        .map(|mip| -> Box<dyn ScaleIo> {
            Box::new(BossScale {
                client: client.clone(),
                meta: meta.clone(),
                engine: engine.clone(),
                level: meta.base_resolution + mip as u32,
                mip,
            })
        })
        .collect();
    let cpath = CloudPath {
        protocol: Protocol::Http,
        base: client.v1(&format!("cutout/{c}/{e}/{ch}")),
        path: path.display(),
        bucket: None,
        alias: None,
    };
    Ok(Volume { path: cpath, source: Source::Service("the BOSS"), info, opts, scales, objects: None })
}
