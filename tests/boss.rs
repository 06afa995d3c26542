//! BOSS channels through the loopback BOSS double (tests/servers/boss.py, built from the BOSS's
//! own source), checked against unmodified intern (tests/reference/boss_intern.py) driving the
//! same double: intern's writes read by us equal intern's reads, at two resolution levels, for
//! uint8, uint16 and uint64 annotation channels; our writes read back by intern; tiles past the
//! cuboid grid; throttling and failing servers; tokens from each place intern looks; bad URLs
//! and unknown resources.

mod support;

use std::path::Path;
use std::process::Command;

use cloudvolume::{Bbox, ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::env::{cli, python};
use support::files::TempDir;
use support::service_double::ServiceDouble;

const TOKEN: &str = "b0ss-t0ken";

fn opts(v: Value) -> Options {
    Options::parse(Some(&v.to_string())).expect("options")
}

fn intern(args: &[&str]) {
    let py = python("intern").expect("the venv");
    let out = Command::new(py)
        .arg(support::env::crate_dir().join("tests/reference/boss_intern.py"))
        .args(args)
        .output()
        .expect("run boss_intern.py");
    assert!(out.status.success(), "boss_intern.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn triple(v: &Value) -> [i64; 3] {
    let a = v.as_array().unwrap();
    [0, 1, 2].map(|d| a[d].as_i64().unwrap())
}

/// The double, set up and written by intern; its creds as cloud-volume's boss-secret.json has them.
fn start(dir: &Path) -> Option<(ServiceDouble, Value, Value)> {
    python("the BOSS double")?;
    let d = ServiceDouble::start("boss.py", &["--token", TOKEN])?;
    let port = d.port.to_string();
    intern(&["setup", &port, TOKEN, dir.to_str().unwrap()]);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let secrets = json!({"protocol": "http", "host": format!("127.0.0.1:{port}"), "token": TOKEN});
    Some((d, m, secrets))
}

#[test]
fn intern_and_we_read_and_write_the_same_voxels() {
    let dir = TempDir::new("boss");
    let Some((d, m, secrets)) = start(dir.path()) else { return };
    let mut n = 0;
    for c in m["cases"].as_array().unwrap() {
        let url = format!("boss://col/exp/{}", c["channel"].as_str().unwrap());
        let vol = Volume::open(&url, opts(json!({"secrets": secrets, "bounded": false}))).unwrap();
        let (res, lo, hi) = (c["res"].as_u64().unwrap() as u32, triple(&c["lo"]), triple(&c["hi"]));
        let got = vol.cutout(res, &Bbox::new(lo, hi)).unwrap_or_else(|e| panic!("{url} {lo:?}-{hi:?}: {e}"));
        let want = std::fs::read(dir.path().join(c["file"].as_str().unwrap())).unwrap();
        assert!(got == want, "{url} res {res} {lo:?}-{hi:?}: differs from intern's get_cutout");
        assert!(got.iter().any(|&b| b != 0));
        n += 1;
    }
    assert_eq!(n, 12);
    // The info: levels as mips, the frame as bounds, the annotation channel a segmentation.
    let v = Volume::open("boss://col/exp/ann64", opts(json!({"secrets": secrets}))).unwrap();
    assert_eq!(v.info().scales.len(), 3);
    assert_eq!(v.scale(0).unwrap().bounds(), Bbox::new([100, 0, 0], [1124, 1024, 64]));
    assert_eq!(v.scale(1).unwrap().resolution, [8.0, 8.0, 40.0]);
    assert_eq!(v.info().layer_type, cloudvolume::format::LayerType::Segmentation);
    // Our writes (across cuboid borders), read back by intern.
    let mut boxes = Vec::new();
    let mut written = Vec::new();
    for (ch, item, res, lo, hi) in [
        ("img16", 2usize, 0u32, [500i64, 500, 14], [620i64, 540, 34]),
        ("ann64", 8, 0, [1000, 900, 40], [1124, 1024, 64]),
        ("img8", 1, 1, [300, 300, 5], [333, 340, 9]),
    ] {
        let vol = Volume::open(&format!("boss://col/exp/{ch}"), opts(json!({"secrets": secrets}))).unwrap();
        let b = Bbox::new(lo, hi);
        let data: Vec<u8> = (0..b.voxels().unwrap() as usize * item).map(|i| (i * 31 % 251) as u8 | 1).collect();
        vol.write_from(res, &b, &data).unwrap_or_else(|e| panic!("{ch}: write {b}: {e}"));
        boxes.push(json!({"channel": ch, "res": res, "lo": lo, "hi": hi}));
        written.push(data);
    }
    let bx = dir.path().join("boxes.json");
    std::fs::write(&bx, serde_json::to_string(&boxes).unwrap()).unwrap();
    let back = dir.path().join("back");
    intern(&["read", &d.port.to_string(), TOKEN, back.to_str().unwrap(), bx.to_str().unwrap()]);
    for (i, data) in written.iter().enumerate() {
        let got = std::fs::read(back.join(format!("{i}.bin"))).unwrap();
        assert!(got == *data, "intern reads {} differently from what we wrote", boxes[i]);
    }
    // Bodies went as blosc, under the size limit, tiles in parallel.
    let reqs = d.requests();
    let cutouts = |m: &str| -> Vec<&Value> {
        reqs.iter().filter(|r| r["method"] == m && r["path"].as_str().unwrap_or("").contains("/cutout/")).collect()
    };
    assert!(cutouts("POST").len() >= 3 + 6);
    assert!(cutouts("POST").iter().all(|r| r["content_type"] == "application/blosc"), "{reqs:?}");
    assert!(cutouts("GET").iter().all(|r| r["accept"] == "application/blosc"), "{reqs:?}");
}

#[test]
fn boxes_over_the_servers_limit_are_split() {
    let dir = TempDir::new("boss-limit");
    let Some(_) = python("the BOSS double") else { return };
    let Some(d) = ServiceDouble::start("boss.py", &["--token", TOKEN]) else { return };
    intern(&["setup", &d.port.to_string(), TOKEN, dir.path().to_str().unwrap()]);
    // Now a cutout limit (1 MiB) far under our 16 MiB tiles.
    d.control(json!({"max_cutout_bytes": 1 << 20}));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap()).unwrap();
    let secrets = json!({"protocol": "http", "host": format!("127.0.0.1:{}", d.port), "token": TOKEN});
    let c = m["cases"].as_array().unwrap().iter().find(|c| c["channel"] == "img16" && c["res"] == 0).unwrap();
    let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
    let want = std::fs::read(dir.path().join(c["file"].as_str().unwrap())).unwrap();
    assert!(want.len() > 2 << 20, "the box must be over the limit");
    let vol = Volume::open("boss://col/exp/img16", opts(json!({"secrets": secrets}))).unwrap();
    d.control(json!({"clear_log": true}));
    assert!(want.len() <= 64 << 20);
    assert!(vol.cutout(0, &Bbox::new(lo, hi)).unwrap() == want, "split reads differ from intern's");
    let st: Vec<i64> = d.requests().iter().map(|r| r["status"].as_i64().unwrap_or(0)).collect();
    assert!(st.contains(&413) && st.iter().filter(|&&s| s == 200).count() >= 3, "{st:?}");
    // Writes split too.
    let b = Bbox::new([400, 450, 8], [700, 650, 40]);
    let data: Vec<u8> = (0..b.voxels().unwrap() as usize * 2).map(|i| (i % 253) as u8 | 1).collect();
    vol.write_from(0, &b, &data).unwrap();
    assert!(vol.cutout(0, &b).unwrap() == data);
}

#[test]
fn throttles_failures_tokens_and_bad_names() {
    let dir = TempDir::new("boss-faults");
    let Some((d, m, secrets)) = start(dir.path()) else { return };
    let c = &m["cases"][0];
    let (lo, hi) = (triple(&c["lo"]), triple(&c["hi"]));
    let want = std::fs::read(dir.path().join(c["file"].as_str().unwrap())).unwrap();
    let url = format!("boss://col/exp/{}", c["channel"].as_str().unwrap());
    let vol = Volume::open(&url, opts(json!({"secrets": secrets}))).unwrap();
    // 429 (intern would raise) and 503 are retried.
    d.control(json!({"clear_log": true, "throttle": 2}));
    assert!(vol.cutout(0, &Bbox::new(lo, hi)).unwrap() == want);
    d.control(json!({"fail": 2, "status": 503}));
    assert!(vol.cutout(0, &Bbox::new(lo, hi)).unwrap() == want);
    let st: Vec<i64> = d.requests().iter().map(|r| r["status"].as_i64().unwrap_or(0)).collect();
    assert!(st.contains(&429) && st.contains(&503), "{st:?}");
    // A body cut short: a clear error naming the URL.
    d.control(json!({"corrupt": 1}));
    let e = vol.cutout(0, &Bbox::new(lo, hi)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert!(e.message().contains("blosc") && e.message().contains("/v1/cutout/"), "{e}");
    // A 400 is not retried and says the BOSS's message.
    let e = vol.write_from(2, &Bbox::new([100, 0, 0], [110, 10, 1]), &[1u8; 100]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("Resolution Mismatch") || e.message().contains("write_cuboid"), "{e}");
    // Writes outside the frame are refused before any request.
    let e = vol.write_from(0, &Bbox::new([0, 0, 0], [10, 10, 1]), &[1u8; 100]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfBounds, "{e}");
    // Outside the frame reads as 0 with bounded=false, and is refused with bounded.
    let ub = Volume::open(&url, opts(json!({"secrets": secrets, "bounded": false}))).unwrap();
    let z = ub.cutout(0, &Bbox::new([0, 0, 0], [100, 20, 2])).unwrap();
    assert!(z.iter().all(|&b| b == 0));
    assert_eq!(vol.cutout(0, &Bbox::new([0, 0, 0], [100, 20, 2])).unwrap_err().kind(), ErrorKind::OutOfBounds);
    // Tokens: a wrong one, none (the public token), and from boss-secret.json.
    let mut wrong = secrets.clone();
    wrong["token"] = json!("not-the-token");
    let e = Volume::open(&url, opts(json!({"secrets": wrong}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.message().contains("127.0.0.1") && !e.message().contains("not-the-token"), "{e}");
    let e = Volume::open(&format!("boss://http://127.0.0.1:{}/col/exp/img8", d.port), opts(json!({})));
    let cvdir = TempDir::new("boss-cvdir");
    // (Without credentials anywhere: the public token, refused here.)
    if std::env::var_os("CLOUD_VOLUME_DIR").is_none() {
        let e = e.err().expect("the public token is refused");
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    }
    std::fs::create_dir_all(cvdir.path().join("secrets")).unwrap();
    std::fs::write(cvdir.path().join("secrets/boss-secret.json"), secrets.to_string()).unwrap();
    let run = cli()
        .env("CLOUD_VOLUME_DIR", cvdir.path())
        .args(["cutout", &url, "--bbox", &format!("{},{},{},{},{},{}", lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]), "-o"])
        .arg(dir.path().join("cli.raw"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(std::fs::read(dir.path().join("cli.raw")).unwrap() == want, "the CLI's cutout differs from intern's");
    // Unknown resources and bad URLs.
    let e = Volume::open("boss://col/exp/nope", opts(json!({"secrets": secrets}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("nope"), "{e}");
    let e = Volume::open("boss://col/exp", opts(json!({"secrets": secrets}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = Volume::create("boss://col/exp/new", "{}", opts(json!({}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}
