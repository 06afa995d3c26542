//! OCP / ndstore projects (`ocp://HOST[/PREFIX]/TOKEN[/CHANNEL]`, legacy): a service that answers
//! boxes. The project's `info/` becomes the info (a mip per resolution level); reads are
//! `GET .../TOKEN/CHANNEL/FORMAT/RES/x0,x1/y0,y1/z0,z1/` of cube-aligned tiles of about 16 MiB in
//! parallel (the loop ocpAccess ran by hand), FORMAT being option `ocp_format`'s `npz` (the
//! default), `raw` or `hdf5`; each tile's array is checked for type and shape. Writes POST `npz`
//! bodies (ndstore keeps only their non-zero voxels). 5xx and
//! connection errors are retried. `Authorization: Token` when the `secrets` option gives one (a
//! token, or `{"token": ...}`); public projects need none.

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
use crate::codec::{compression, OutView};
use crate::error::{Error, Result};
use crate::format::ocp::{hdf5_data, info_from_ocp, npy, npy_data, raw_data, OcpMeta, OcpPath};
use crate::format::Bbox;
use crate::options::{OcpFormat, Options};
use crate::store::retry::{Attempt, Retry};

const TILE_BYTES: usize = 16 << 20;
const MAX_JSON: usize = 4 << 20;

struct Client {
    path: OcpPath,
    agent: ureq::Agent,
    retry: Retry,
    token: Option<String>,
}

impl Client {
    fn once(&self, method: &str, url: &str, body: Option<&[u8]>, limit: usize) -> Attempt<Vec<u8>> {
        let mut req = self.agent.request(method, url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Token {t}"));
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
                // ndstore's messages come wrapped in Python reprs: strip the quotes.
                let said: String =
                    text.trim().trim_matches(['\'', '"']).chars().filter(|c| !c.is_control()).take(300).collect();
                let said = if said.is_empty() { String::new() } else { format!(": {said}") };
                let host = &self.path.base;
                return Err(match code {
                    401 | 403 => (
                        false,
                        Error::auth(format!(
                            "{method} {url}: HTTP {code}: {host} refused {}{said}",
                            if self.token.is_some() {
                                "the token from option \"secrets\""
                            } else {
                                "an anonymous request"
                            }
                        )),
                    ),
                    404 if text.contains("Illegal range") || text.contains("Illegal scaling") => {
                        (false, Error::out_of_bounds(format!("{method} {url}: HTTP 404{said}")))
                    }
                    404 if text.contains("Illegal") || text.contains("Incorrect") || text.contains("rollback") => {
                        (false, Error::invalid(format!("{method} {url}: HTTP 404{said}")))
                    }
                    404 => (false, Error::not_found(format!("{method} {url}: HTTP 404{said}"))),
                    400 => (false, Error::invalid(format!("{method} {url}: HTTP 400{said}"))),
                    408 | 429 | 500..=599 => (true, Error::io(format!("{method} {url}: HTTP {code}{said}"))),
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
}

struct OcpScale {
    client: Arc<Client>,
    meta: Arc<OcpMeta>,
    engine: Arc<Engine>,
    mip: usize,
    cube: [i64; 3],
    format: OcpFormat,
}

impl OcpScale {
    fn item(&self) -> usize {
        self.meta.dtype.size()
    }

    fn url(&self, b: &Bbox, format: OcpFormat) -> String {
        let p = &self.client.path;
        let service = match format {
            OcpFormat::Npz => "npz",
            OcpFormat::Raw => "raw",
            OcpFormat::Hdf5 => "hdf5",
        };
        format!(
            "{}/{}/{}/{service}/{}/{},{}/{},{}/{},{}/",
            p.base,
            p.token,
            self.meta.channel,
            self.meta.resolutions[self.mip],
            b.lo[0],
            b.hi[0],
            b.lo[1],
            b.hi[1],
            b.lo[2],
            b.hi[2]
        )
    }

    fn tiles(&self, region: &Bbox) -> Vec<Bbox> {
        grid_tiles(region, self.cube, self.item(), TILE_BYTES, [2, 0, 1], false)
    }

    fn shape_czyx(b: &Bbox) -> [usize; 4] {
        let s = b.shape();
        [1, s[2] as usize, s[1] as usize, s[0] as usize]
    }
}

impl ScaleIo for OcpScale {
    fn read_box(&self, region: &Bbox, out: &OutView<'_>, progress: Option<&AtomicUsize>) -> Result<()> {
        let item = self.item();
        let tiles = self.tiles(region);
        self.engine.run(&tiles, |_, tile| {
            let url = self.url(tile, self.format);
            let want = tile.voxels().unwrap_or(0) as usize * item;
            let czyx = Self::shape_czyx(tile);
            let limit = match self.format {
                OcpFormat::Raw => want,
                // HDF5 adds its superblock, object headers and chunk index to the stored data.
                OcpFormat::Npz | OcpFormat::Hdf5 => compression::stored_bound(want + 4096) + (1 << 20),
            };
            let body = self.client.call("GET", &url, None, limit)?;
            let owned;
            let data: &[u8] = match self.format {
                OcpFormat::Npz => {
                    let mut file = Vec::new();
                    flate2::read::ZlibDecoder::new(&body[..])
                        .take((want + (1 << 16)) as u64)
                        .read_to_end(&mut file)
                        .map_err(|e| Error::decode(format!("GET {url}: corrupt or truncated npz (zlib) body: {e}")))?;
                    owned = file;
                    npy_data(&owned, self.meta.dtype, &czyx, &url)?
                }
                OcpFormat::Raw => raw_data(&body, self.meta.dtype, &czyx, &url)?,
                OcpFormat::Hdf5 => {
                    owned = hdf5_data(&body, self.meta.dtype, [czyx[1], czyx[2], czyx[3]], &self.meta.channel, &url)?;
                    &owned
                }
            };
            place_rows(tile, data, item, out);
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
            "{}: ndstore does not list its cubes; box {region} has no chunk list",
            self.client.path.display()
        )))
    }

    fn work_units(&self, region: &Bbox) -> usize {
        self.tiles(region).len()
    }

    fn write_box(&self, region: &Bbox, buf: &[u8]) -> Result<()> {
        let item = self.item();
        let tiles = self.tiles(region);
        self.engine.run(&tiles, |_, tile| {
            let mut part = vec![0u8; tile.voxels().unwrap_or(0) as usize * item];
            copy_box(buf, region, &mut part, tile, tile, 1, item);
            let body = compression::zlib(&npy(&part, self.meta.dtype, &Self::shape_czyx(tile)), 6);
            drop(part);
            self.client.call("POST", &self.url(tile, OcpFormat::Npz), Some(&body), 1 << 20).map(|_| ())
        })
    }
}

/// Open an OCP / ndstore project's channel.
///
/// # Errors
/// A bad URL (`InvalidArgument`), an unknown project or channel (`NotFound`), a refused token
/// (`Auth`), malformed info (`Decode`), an unsupported datatype (`Unsupported`).
pub(super) fn open(url: &str, opts: Options) -> Result<Volume> {
    let path = OcpPath::parse(url)?;
    let token = match opts.store.secrets.as_ref().map(|s| &s.0) {
        None => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        Some(Value::Object(m)) => Some(
            m.get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::auth("option \"secrets\": no \"token\" member"))?
                .to_string(),
        ),
        Some(_) => return Err(Error::invalid("option \"secrets\" must be a token or {\"token\": ...}")),
    };
    let http = crate::store::http_config(&opts.store);
    let client = Client { path: path.clone(), agent: crate::store::http::agent(&http), retry: http.retry, token };
    let info_url = format!("{}/{}/info/", path.base, path.token);
    let bytes = client.call("GET", &info_url, None, MAX_JSON)?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::decode(format!("GET {info_url}: the answer is not JSON: {e}")))?;
    let (info, meta) = info_from_ocp(&json, path.channel.as_deref(), &info_url)?;
    let threads = opts.store.parallel.unwrap_or(crate::options::DEFAULT_NETWORK_PARALLEL);
    let engine = Arc::new(Engine::new(threads, threads, opts.store.max_inflight_bytes)?);
    let client = Arc::new(client);
    let meta = Arc::new(meta);
    let scales = (0..info.scales.len())
        .map(|mip| -> Box<dyn ScaleIo> {
            Box::new(OcpScale {
                client: client.clone(),
                meta: meta.clone(),
                engine: engine.clone(),
                mip,
                cube: info.scales[mip].chunk_size,
                format: opts.service.ocp_format,
            })
        })
        .collect();
    let cpath = CloudPath {
        protocol: Protocol::Http,
        base: format!("{}/{}", path.base, path.token),
        path: path.display(),
        bucket: None,
        alias: None,
    };
    Ok(Volume { path: cpath, source: Source::Service("ndstore"), info, opts, scales, objects: None })
}
