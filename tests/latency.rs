//! Latency hiding: a cutout of 256 small chunks over loopback HTTP with 20 ms added to every
//! request must overlap its requests (many in flight at once) and so take far less than
//! 256 x 20 ms, and still return the right bytes.
//!
//! The layer is written here (info + raw chunk files), served by a std-only file server
//! (`tests/support/httpd.rs`) behind a std-only latency proxy (`tests/support/proxy.rs`); both
//! helpers are checked here too.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudvolume::{Bbox, Options, Volume};
use support::files::TempDir;
use support::layers::chunk_name;
use support::{httpd, proxy};

const DELAY_MS: u64 = 20;

/// Voxel value of the test layer at absolute coordinates (runs of 8 along x, so that gzip'd
/// chunks are a fraction of their size).
fn value(x: i64, y: i64, z: i64) -> u16 {
    (x.div_euclid(8) * 7 + y * 131 + z * 1031).rem_euclid(65_536) as u16
}

const OFFSET: [i64; 3] = [3, -5, 7];
const SIZE: [i64; 3] = [256, 256, 8];
const CHUNK: [i64; 3] = [16, 16, 8];

/// Write a uint16 raw layer of 16 x 16 x 1 = 256 chunks of 16x16x8 voxels under `root/layer`.
fn write_layer(root: &Path) -> PathBuf {
    let layer = root.join("layer");
    let key = "8_8_40";
    std::fs::create_dir_all(layer.join(key)).unwrap();
    let info = format!(
        r#"{{"@type":"neuroglancer_multiscale_volume","type":"image","data_type":"uint16","num_channels":1,
  "scales":[{{"key":"{key}","size":[{},{},{}],"voxel_offset":[{},{},{}],"resolution":[8,8,40],
  "chunk_sizes":[[{},{},{}]],"encoding":"raw"}}]}}"#,
        SIZE[0], SIZE[1], SIZE[2], OFFSET[0], OFFSET[1], OFFSET[2], CHUNK[0], CHUNK[1], CHUNK[2]
    );
    std::fs::write(layer.join("info"), info).unwrap();
    let mut n = 0;
    for gz in 0..SIZE[2] / CHUNK[2] {
        for gy in 0..SIZE[1] / CHUNK[1] {
            for gx in 0..SIZE[0] / CHUNK[0] {
                let lo = [OFFSET[0] + gx * CHUNK[0], OFFSET[1] + gy * CHUNK[1], OFFSET[2] + gz * CHUNK[2]];
                let hi = [lo[0] + CHUNK[0], lo[1] + CHUNK[1], lo[2] + CHUNK[2]];
                let mut bytes = Vec::with_capacity((CHUNK[0] * CHUNK[1] * CHUNK[2] * 2) as usize);
                // Fortran order: x fastest.
                for z in lo[2]..hi[2] {
                    for y in lo[1]..hi[1] {
                        for x in lo[0]..hi[0] {
                            bytes.extend_from_slice(&value(x, y, z).to_le_bytes());
                        }
                    }
                }
                std::fs::write(layer.join(key).join(chunk_name(lo, hi)), bytes).unwrap();
                n += 1;
            }
        }
    }
    assert_eq!(n, 256);
    layer
}

#[test]
fn cutout_of_256_chunks_overlaps_requests_behind_20ms_latency() {
    let dir = TempDir::new("latency");
    write_layer(dir.path());
    let server = httpd::FileServer::start(dir.path()).expect("start file server");
    let proxy = proxy::LatencyProxy::start(&server.host_port(), Duration::from_millis(DELAY_MS)).expect("start proxy");

    let vol = Volume::open(&format!("{}/layer", proxy.url()), Options::default()).expect("open through the proxy");
    let bbox = Bbox::new(OFFSET, [OFFSET[0] + SIZE[0], OFFSET[1] + SIZE[1], OFFSET[2] + SIZE[2]]);
    assert_eq!(vol.chunk_count(0, &bbox).unwrap(), 256);

    proxy.reset();
    let t0 = Instant::now();
    let buf = vol.cutout(0, &bbox).expect("cutout through the proxy");
    let elapsed = t0.elapsed();
    let stats = proxy.snapshot();

    // (a) the right bytes, in Fortran order.
    assert_eq!(buf.len(), (SIZE[0] * SIZE[1] * SIZE[2] * 2) as usize);
    let mut i = 0;
    for z in bbox.lo[2]..bbox.hi[2] {
        for y in bbox.lo[1]..bbox.hi[1] {
            for x in bbox.lo[0]..bbox.hi[0] {
                let got = u16::from_le_bytes([buf[i], buf[i + 1]]);
                assert_eq!(got, value(x, y, z), "voxel ({x},{y},{z})");
                i += 2;
            }
        }
    }
    // One request per chunk (a few more would be retries on stale keep-alive connections).
    assert!((256..=264).contains(&stats.requests), "expected one request per chunk: {stats:?}");

    // (b) requests overlap: 256 chunks of 4 KiB fit the default byte budget many times over,
    // so nearly all of them are out at once (not the 24 a fixed pool once allowed).
    assert!(stats.peak_in_flight >= 64, "peak in-flight requests {} < 64: {stats:?}", stats.peak_in_flight);

    // (c) far less than serial: 256 x 20 ms = 5.12 s; allow 40% of it.
    let serial = Duration::from_millis(256 * DELAY_MS);
    assert!(
        elapsed < serial.mul_f64(0.4),
        "cutout took {elapsed:?}, not well under 256 x {DELAY_MS} ms = {serial:?} (peak in flight {}, {} connections)",
        stats.peak_in_flight,
        stats.connections
    );
    eprintln!(
        "256 chunks behind {DELAY_MS} ms: {elapsed:?} (serial would be {serial:?}); peak in flight {}, {} connections",
        stats.peak_in_flight, stats.connections
    );
}

/// Read the whole test layer `reads` times through a fresh proxy with `options` on one handle;
/// check its bytes and return the proxy's counts of the last read.
fn read_through_proxy(dir: &Path, options: &str, reads: usize) -> proxy::Snapshot {
    let server = httpd::FileServer::start(dir).expect("start file server");
    let proxy = proxy::LatencyProxy::start(&server.host_port(), Duration::from_millis(DELAY_MS)).expect("start proxy");
    let vol = Volume::open(&format!("{}/layer", proxy.url()), Options::parse(Some(options)).unwrap()).unwrap();
    let bbox = Bbox::new(OFFSET, [OFFSET[0] + SIZE[0], OFFSET[1] + SIZE[1], OFFSET[2] + SIZE[2]]);
    let mut buf = Vec::new();
    for _ in 0..reads {
        proxy.reset();
        buf = vol.cutout(0, &bbox).expect("cutout through the proxy");
    }
    let stats = proxy.snapshot();
    let mut i = 0;
    for z in bbox.lo[2]..bbox.hi[2] {
        for y in bbox.lo[1]..bbox.hi[1] {
            for x in bbox.lo[0]..bbox.hi[0] {
                assert_eq!(
                    u16::from_le_bytes([buf[i], buf[i + 1]]),
                    value(x, y, z),
                    "voxel ({x},{y},{z}) with {options}"
                );
                i += 2;
            }
        }
    }
    stats
}

/// `max_inflight_bytes` bounds the bytes of bodies held, and so the requests in flight: these
/// reserve twice 64 KiB, 32 of these 4 KiB chunks, before they are sent (a request waiting
/// for its answer holds no body yet); `parallel` still caps the count when it is lower.
#[test]
fn the_byte_budget_and_parallel_bound_requests_in_flight() {
    let dir = TempDir::new("budget");
    write_layer(dir.path());
    let s = read_through_proxy(dir.path(), r#"{"max_inflight_bytes":65536}"#, 1);
    assert!(
        (12..=32).contains(&s.peak_in_flight),
        "64 KiB of 4 KiB bodies: peak in flight {} not in 12..=32: {s:?}",
        s.peak_in_flight
    );
    let s = read_through_proxy(dir.path(), r#"{"parallel":4}"#, 1);
    assert!((2..=4).contains(&s.peak_in_flight), "parallel 4: peak in flight {}: {s:?}", s.peak_in_flight);
    // A budget smaller than one body still reads (one request at a time).
    let s = read_through_proxy(dir.path(), r#"{"max_inflight_bytes":65536,"parallel":2}"#, 1);
    assert!(s.peak_in_flight <= 2, "{s:?}");
}

/// Requests reserve what the bodies seen so far weighed, not the decoded chunk: once a handle
/// has seen gzip'd chunks of a fraction of that size, its next read has far more requests in
/// flight under the same budget than the 32 that 4 KiB bodies would get (its first read sizes
/// its threads before any body is seen).
#[test]
fn compressed_chunks_get_more_requests_in_flight_under_one_budget() {
    let dir = TempDir::new("budget-gz");
    let layer = write_layer(dir.path());
    // Replace every chunk by its gzip'd form (served with Content-Encoding: gzip).
    for e in std::fs::read_dir(layer.join("8_8_40")).unwrap() {
        let p = e.unwrap().path();
        let raw = std::fs::read(&p).unwrap();
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&raw).unwrap();
        let gz = z.finish().unwrap();
        assert!(gz.len() < raw.len() / 4, "test chunks should compress: {} of {}", gz.len(), raw.len());
        let mut name = p.clone().into_os_string();
        name.push(".gz");
        std::fs::write(&name, gz).unwrap();
        std::fs::remove_file(&p).unwrap();
    }
    let s = read_through_proxy(dir.path(), r#"{"max_inflight_bytes":65536}"#, 2);
    assert!(
        s.peak_in_flight > 48,
        "gzip'd bodies under a 64 KiB budget: peak in flight {} (32 if each reserved its 4 KiB decoded size): {s:?}",
        s.peak_in_flight
    );
}

/// Over the network each body is decoded on the decode pool while the fetching threads go
/// on: a corrupt chunk still fails the read as `Decode` naming that chunk, the lowest-numbered
/// of several corrupt ones (x fastest), whatever order they were decoded in.
#[test]
fn decoding_errors_handed_to_the_decode_pool_name_the_first_bad_chunk() {
    let dir = TempDir::new("handoff");
    let layer = write_layer(dir.path());
    let key = layer.join("8_8_40");
    let name = |gx: i64, gy: i64| {
        let lo = [OFFSET[0] + gx * CHUNK[0], OFFSET[1] + gy * CHUNK[1], OFFSET[2]];
        chunk_name(lo, [lo[0] + CHUNK[0], lo[1] + CHUNK[1], lo[2] + CHUNK[2]])
    };
    // A raw chunk of the wrong length cannot be decoded; the later one is corrupted first.
    std::fs::write(key.join(name(9, 14)), b"short").unwrap();
    std::fs::write(key.join(name(3, 2)), b"too short as well").unwrap();
    let server = httpd::FileServer::start(dir.path()).expect("start file server");
    let proxy = proxy::LatencyProxy::start(&server.host_port(), Duration::from_millis(DELAY_MS)).expect("start proxy");
    let vol = Volume::open(&format!("{}/layer", proxy.url()), Options::default()).unwrap();
    let bbox = Bbox::new(OFFSET, [OFFSET[0] + SIZE[0], OFFSET[1] + SIZE[1], OFFSET[2] + SIZE[2]]);
    for _ in 0..3 {
        let e = vol.cutout(0, &bbox).unwrap_err();
        assert_eq!(e.kind(), cloudvolume::ErrorKind::Decode, "{e}");
        assert!(e.message().contains(&name(3, 2)), "the first corrupt chunk: {e}");
    }
    // The chunks around them still read.
    let inner = Bbox::new(OFFSET, [OFFSET[0] + 3 * CHUNK[0], OFFSET[1] + 2 * CHUNK[1], OFFSET[2] + CHUNK[2]]);
    assert!(vol.cutout(0, &inner).is_ok());
}

/// Send a GET on `conn` and read the response (Content-Length bodies only).
fn get(conn: &mut BufReader<TcpStream>, path: &str) -> (u16, Vec<u8>, Vec<String>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).unwrap();
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length:") {
            len = v.trim().parse().unwrap();
        }
        headers.push(h);
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).unwrap();
    (code, body, headers)
}

#[test]
fn proxy_delays_every_request_on_a_keep_alive_connection() {
    let dir = TempDir::new("proxy");
    std::fs::write(dir.path().join("a"), b"hello").unwrap();
    std::fs::write(dir.path().join("b.gz"), b"\x1f\x8bnot really").unwrap();
    let server = httpd::FileServer::start(dir.path()).unwrap();
    let proxy = proxy::LatencyProxy::start(&server.host_port(), Duration::from_millis(DELAY_MS)).unwrap();

    let mut conn = BufReader::new(TcpStream::connect(proxy.addr()).unwrap());
    for i in 0..3 {
        let t0 = Instant::now();
        let (code, body, _) = get(&mut conn, "/a");
        let dt = t0.elapsed();
        assert_eq!((code, body.as_slice()), (200, &b"hello"[..]));
        assert!(dt >= Duration::from_millis(DELAY_MS), "request {i} on one connection took only {dt:?}");
    }
    let (code, _, _) = get(&mut conn, "/missing");
    assert_eq!(code, 404);
    let (code, body, headers) = get(&mut conn, "/b");
    assert_eq!(code, 200);
    assert_eq!(body, b"\x1f\x8bnot really");
    assert!(headers.iter().any(|h| h.eq_ignore_ascii_case("Content-Encoding: gzip")), "{headers:?}");
    let (code, _, _) = get(&mut conn, "/../etc/passwd");
    assert_eq!(code, 400);

    let s = proxy.snapshot();
    assert_eq!(s.requests, 6);
    assert_eq!(s.connections, 1);
    assert_eq!(s.peak_in_flight, 1);
    assert_eq!(s.in_flight, 0);
    assert_eq!(server.requests(), 6);

    // Several connections at once: requests overlap, and the peak sees it.
    proxy.reset();
    let addr = proxy.addr();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = BufReader::new(TcpStream::connect(addr).unwrap());
                for _ in 0..2 {
                    assert_eq!(get(&mut c, "/a").0, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let dt = t0.elapsed();
    let s = proxy.snapshot();
    assert_eq!(s.requests, 16);
    assert!(s.peak_in_flight >= 4, "{s:?}");
    assert!(dt >= Duration::from_millis(2 * DELAY_MS), "{dt:?}");
    assert!(dt < Duration::from_millis(16 * DELAY_MS), "8 connections did not overlap: {dt:?}");

    drop(conn);
    drop(proxy);
    // The port is closed after drop.
    assert!(TcpStream::connect(addr).is_err(), "proxy still listening after drop");
}

/// The file server: byte ranges of plain and of encoded (`name.gz`, `.br`, `.zstd`) files, 416
/// past the end, suffix and open ranges, several ranges as the whole file, HEAD, 405, 404,
/// percent-decoded targets, a server that ignores ranges, and its request log.
#[test]
fn file_server_serves_ranges_of_plain_and_encoded_files() {
    let dir = TempDir::new("httpd");
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("obj"), &body).unwrap();
    std::fs::write(dir.path().join("a b"), b"spaced").unwrap();
    for (suffix, bytes) in [(".gz", &b"gzip bytes"[..]), (".br", b"brotli bytes"), (".zstd", b"zstd bytes")] {
        std::fs::write(dir.path().join(format!("enc{suffix}")), bytes).unwrap();
    }
    std::fs::write(dir.path().join("both"), b"plain wins").unwrap();
    std::fs::write(dir.path().join("both.gz"), b"not this").unwrap();
    let server = httpd::FileServer::start(dir.path()).unwrap();
    let get = |path: &str, extra: &str| httpd::http_get(server.addr(), path, extra).unwrap();

    let (head, data) = get("/obj", "Range: bytes=100-199\r\n");
    assert!(head.starts_with("http/1.1 206") && head.contains("content-range: bytes 100-199/1000"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    assert_eq!(data, &body[100..200]);
    let (head, data) = get("/obj", "Range: bytes=990-2000\r\n");
    assert!(head.contains("content-range: bytes 990-999/1000"), "{head}");
    assert_eq!(data, &body[990..]);
    assert_eq!(get("/obj", "Range: bytes=-10\r\n").1, &body[990..]);
    assert_eq!(get("/obj", "Range: bytes=995-\r\n").1, &body[995..]);
    let (head, data) = get("/obj", "Range: bytes=1000-1001\r\n");
    assert!(head.starts_with("http/1.1 416") && head.contains("content-range: bytes */1000"), "{head}");
    assert!(data.is_empty());
    let (head, data) = get("/obj", "Range: bytes=0-1,5-6\r\n");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(data, body);
    // Encoded variants, whole and ranged (a range of the stored bytes).
    let (head, data) = get("/enc", "");
    assert!(head.starts_with("http/1.1 200") && head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(data, b"gzip bytes");
    let (head, data) = get("/enc", "Range: bytes=5-9\r\n");
    assert!(head.starts_with("http/1.1 206") && head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(data, b"bytes");
    std::fs::remove_file(dir.path().join("enc.gz")).unwrap();
    let (head, data) = get("/enc", "");
    assert!(head.contains("content-encoding: br") && data == b"brotli bytes", "{head}");
    std::fs::remove_file(dir.path().join("enc.br")).unwrap();
    let (head, data) = get("/enc", "");
    assert!(head.contains("content-encoding: zstd") && data == b"zstd bytes", "{head}");
    let (head, data) = get("/both", "");
    assert!(!head.contains("content-encoding") && data == b"plain wins", "{head}");
    // Names, refusals.
    assert_eq!(get("/a%20b", "").1, b"spaced");
    assert!(get("/nothing", "").0.starts_with("http/1.1 404"));
    assert!(get("/../obj", "").0.starts_with("http/1.1 400"));
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"DELETE /obj HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 405") && resp.contains("Allow: GET, HEAD"), "{resp}");
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"HEAD /obj HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains("Content-Length: 1000"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n"), "a body after HEAD: {resp}");
    // The log: every request, in order, with its range, status and body bytes.
    let log = server.take_log();
    assert_eq!(log.len() as u64, server.requests());
    assert_eq!(log.len(), 16, "{log:?}");
    assert_eq!((log[0].range.as_deref(), log[0].status, log[0].bytes), (Some("bytes=100-199"), 206, 100));
    assert_eq!((log[15].method.as_str(), log[15].status, log[15].bytes), ("HEAD", 200, 0));
    assert!(server.take_log().is_empty(), "take_log clears the log");

    // Without range support: the whole file, and no Accept-Ranges.
    let plain = httpd::FileServer::start_with(dir.path(), httpd::Config { honor_range: false }).unwrap();
    let (head, data) = httpd::http_get(plain.addr(), "/obj", "Range: bytes=100-199\r\n").unwrap();
    assert!(head.starts_with("http/1.1 200") && !head.contains("accept-ranges"), "{head}");
    assert_eq!(data, body);
}
