//! Faults on the wire (issue #5): a loopback fault-injecting proxy (tests/support/fault_proxy.rs)
//! in front of a static file server answers, on a script, 503, 429, connection resets, stalls
//! past the read timeout and truncated bodies. Every cutout must still return the right bytes
//! within the retry budget; past the budget a clear `CV_ERR_IO`; never a wrong byte. 4xx other
//! than 408/429 are not retried.

mod support;

use std::time::{Duration, Instant};

use cloudvolume::{Bbox, ErrorKind, Options, Volume};
use support::env::{reference_dir, required};
use support::fault_proxy::{Fault, FaultProxy};
use support::httpd;
use support::layers::Chunks;
use support::proxied_layer::ProxiedLayer;

/// The gzip-encoded test layer behind the fault proxy; reads time out after 1 s.
fn rig(tag: &str) -> ProxiedLayer {
    ProxiedLayer::start(tag, Chunks::RawGz)
}

/// Open with 1 s timeouts plus `extra` (`, "key": value` pairs).
fn open(r: &ProxiedLayer, extra: &str) -> Volume {
    r.open(&format!(r#"{{"timeout": 1.0, "connect_timeout": 1.0 {extra}}}"#))
}

const WHOLE: ([i64; 3], [i64; 3]) = ([0, 0, 0], [64, 64, 16]);

fn whole() -> Bbox {
    Bbox::new(WHOLE.0, WHOLE.1)
}

#[test]
fn every_fault_kind_is_retried_to_the_right_bytes() {
    let r = rig("faults-each");
    let want = r.layer.expected(0, WHOLE.0, WHOLE.1, 0.0);
    let vol = open(&r, "");
    r.proxy.only_paths_containing(Some("-")); // chunk keys, not the info
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::Status(500),
        Fault::Status(502),
        Fault::Reset,
        Fault::Truncate,
        Fault::Stall(Duration::from_millis(2500)),
    ] {
        r.proxy.take_log();
        // Three of the same in a row: the same chunk may meet it on every retry.
        r.proxy.script(&[fault, fault, fault]);
        let t = Instant::now();
        let got = vol.cutout(0, &whole()).unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(got == want, "{fault:?}: wrong bytes");
        assert_eq!(r.proxy.pending(), 0, "{fault:?}: the script was not consumed");
        let log = r.proxy.take_log();
        assert!(log.len() >= 32 + 3, "{fault:?}: {} requests for 32 chunks and 3 faults", log.len());
        assert!(t.elapsed() < Duration::from_secs(30), "{fault:?}: took {:?}", t.elapsed());
    }
}

#[test]
fn random_503s_at_five_percent_cost_retries_not_bytes() {
    let r = rig("faults-rate");
    let want = r.layer.expected(0, WHOLE.0, WHOLE.1, 0.0);
    let vol = open(&r, "");
    r.proxy.set_503_rate(0.05, 7);
    let before = r.proxy.injected();
    for _ in 0..10 {
        assert!(vol.cutout(0, &whole()).unwrap() == want);
    }
    let injected = r.proxy.injected() - before;
    assert!(injected >= 3, "only {injected} faults injected in 320 requests at 5%");
}

#[test]
fn past_the_attempts_a_clear_io_error_naming_the_url() {
    let r = rig("faults-budget");
    let vol = open(&r, r#", "max_attempts": 3"#);
    r.proxy.only_paths_containing(Some("0-16_0-16_0-8"));
    r.proxy.script(&[Fault::Status(503); 10]);
    let e = vol.cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let m = e.message();
    assert!(m.contains("0-16_0-16_0-8") && m.contains(&r.proxy.url()), "{m}");
    assert!(m.contains("503") && m.contains("3 attempts"), "{m}");
    assert_eq!(r.proxy.pending(), 7, "exactly 3 attempts: {m}");
}

#[test]
fn past_the_time_budget_a_clear_io_error() {
    let r = rig("faults-time");
    let vol = open(&r, r#", "max_attempts": 100, "retry_budget": 1.5"#);
    r.proxy.only_paths_containing(Some("0-16_0-16_0-8"));
    r.proxy.script(&[Fault::Status(503); 100]);
    let t = Instant::now();
    let e = vol.cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8])).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("retry_budget"), "{e}");
}

#[test]
fn stalls_past_the_timeout_fail_as_io_when_they_never_end() {
    let r = rig("faults-stall");
    let vol = open(&r, r#", "max_attempts": 2"#);
    r.proxy.only_paths_containing(Some("0-16_0-16_0-8"));
    r.proxy.script(&[Fault::Stall(Duration::from_secs(3)); 2]);
    let t = Instant::now();
    let e = vol.cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.message().contains("0-16_0-16_0-8"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "the 1 s read timeout did not fire: {:?}", t.elapsed());
}

#[test]
fn client_errors_are_not_retried() {
    let r = rig("faults-4xx");
    let vol = open(&r, "");
    r.proxy.only_paths_containing(Some("0-16_0-16_0-8"));
    for (code, kind) in [(403, ErrorKind::Auth), (400, ErrorKind::Io)] {
        r.proxy.take_log();
        r.proxy.script(&[Fault::Status(code), Fault::Status(code)]);
        let e = vol.cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8])).unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        assert!(e.message().contains(&code.to_string()), "{e}");
        assert_eq!(r.proxy.pending(), 1, "HTTP {code} was retried");
        r.proxy.take_log();
        r.proxy.script(&[]);
        // Drain the leftover fault so the next case starts clean.
        let _ = vol.cutout(0, &Bbox::new([0, 0, 0], [16, 16, 8]));
    }
}

#[test]
fn sharded_reads_survive_faults_on_ranges() {
    let dir = reference_dir();
    if !dir.join("ts/sharded_raw_uint8_c1/info").is_file() {
        assert!(!required(), "reference layers missing");
        return;
    }
    let server = httpd::FileServer::start(&dir).expect("file server");
    let proxy = FaultProxy::start(&server.host_port()).expect("fault proxy");
    let layer = "ts/sharded_raw_uint8_c1";
    let clean = Volume::open(&format!("file://{}/{layer}", dir.display()), Options::default()).unwrap();
    let scale = clean.scale(0).unwrap();
    let bbox = Bbox::new(scale.voxel_offset, std::array::from_fn(|d| scale.voxel_offset[d] + scale.size[d]));
    let want = clean.cutout(0, &bbox).unwrap();
    let opts = Options::parse(Some(r#"{"timeout": 1.0}"#)).unwrap();
    let vol = Volume::open(&format!("{}/{layer}", proxy.url()), opts).unwrap();
    proxy.only_paths_containing(Some(".shard"));
    proxy.script(&[Fault::Truncate, Fault::Status(503), Fault::Reset, Fault::Status(429), Fault::Truncate]);
    let got = vol.cutout(0, &bbox).expect("sharded cutout through faults");
    assert!(got == want, "wrong bytes from a sharded layer under faults");
    assert_eq!(proxy.pending(), 0);
}
