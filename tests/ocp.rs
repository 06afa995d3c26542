//! OCP / ndstore projects through the loopback ndstore double (tests/servers/ocp.py, built from
//! ndstore's source): what h5py and numpy post (ndstore's hdf5 bodies) we read, what we write
//! (npz) h5py reads back from ndstore's hdf5 answers; every type ndstore stores, two resolution
//! levels, the dataset offset, the `ca/` and `nd/sd/` prefixes, bad boxes, truncated bodies,
//! failing servers and tokens.

mod support;

use std::io::Read;
use std::process::Command;

use cloudvolume::format::ocp::hdf5_data;
use cloudvolume::{Bbox, DataType, ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::env::python;
use support::files::TempDir;
use support::service_double::ServiceDouble;

fn opts(v: Value) -> Options {
    Options::parse(Some(&v.to_string())).expect("options")
}

const TYPES: [(&str, &str); 5] =
    [("img8", "uint8"), ("img16", "uint16"), ("anno32", "uint32"), ("anno64", "uint64"), ("f32", "float32")];

fn seed(d: &ServiceDouble, token: &str, public: bool) {
    let chans: serde_json::Map<String, Value> = TYPES
        .iter()
        .map(|(n, t)| {
            let kind = if n.starts_with("anno") { "annotation" } else { "image" };
            (n.to_string(), json!({"channel_type": kind, "datatype": t}))
        })
        .collect();
    let body = json!({"token": token, "public": public,
                      "dataset": {"imagesize": [300, 200, 48], "offset": [100, 50, 10], "voxelres": [4.0, 4.0, 40.0],
                                  "scalinglevels": 1, "scaling": "zslices"},
                      "channels": chans});
    ureq::post(&format!("{}/__seed", d.base())).send_string(&body.to_string()).expect("seed");
}

/// Python (h5py, numpy): post `hdf5` bodies of random data, or read our writes back as hdf5.
const PY: &str = r#"
import io, json, sys, urllib.request, h5py, numpy as np
base, token, mode, out = sys.argv[1:5]
boxes = json.loads(sys.argv[5])
res = []
for i, b in enumerate(boxes):
    (x0, y0, z0), (x1, y1, z1) = b["lo"], b["hi"]
    url = f"{base}/sd/{token}/{b['channel']}/hdf5/{b['res']}/{x0},{x1}/{y0},{y1}/{z0},{z1}/"
    if mode == "post":
        rng = np.random.default_rng(i + 7)
        dt = np.dtype(b["dtype"])
        shape = (z1 - z0, y1 - y0, x1 - x0)
        a = (rng.random(shape, dtype=np.float32) + 0.5).astype(dt) if dt.kind == "f" else \
            rng.integers(1, min(np.iinfo(dt).max, 2**40), size=shape, dtype=dt)
        f = io.BytesIO()
        with h5py.File(f, "w") as h:
            g = h.create_group(b["channel"])
            g.create_dataset("CUTOUT", data=a, compression="gzip")
            g.create_dataset("DATATYPE", data=[b["dtype"].encode()])
            g.create_dataset("CHANNELTYPE", data=[b"image"])
        req = urllib.request.Request(url, data=f.getvalue(), method="POST")
        urllib.request.urlopen(req).read()
        open(f"{out}/{i}.bin", "wb").write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
    else:
        with urllib.request.urlopen(url) as r:
            body = r.read()
        with h5py.File(io.BytesIO(body), "r") as h:
            a = h[b["channel"]]["CUTOUT"][...]
        open(f"{out}/{i}.bin", "wb").write(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
    res.append(i)
print(json.dumps(res))
"#;

fn py(d: &ServiceDouble, token: &str, mode: &str, out: &std::path::Path, boxes: &Value) {
    let o = Command::new(python("h5py").unwrap())
        .args(["-c", PY, &d.base(), token, mode, out.to_str().unwrap(), &boxes.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn boxes() -> Value {
    let mut v = Vec::new();
    for (n, t) in TYPES {
        v.push(json!({"channel": n, "dtype": t, "res": 0, "lo": [100, 50, 10], "hi": [400, 250, 40]}));
        v.push(json!({"channel": n, "dtype": t, "res": 1, "lo": [60, 30, 12], "hi": [190, 120, 30]}));
    }
    Value::Array(v)
}

#[test]
fn h5py_posts_we_read_we_write_h5py_reads() {
    let Some(_) = python("the ndstore double") else { return };
    let Some(d) = ServiceDouble::start("ocp.py", &[]) else { return };
    seed(&d, "proj", true);
    let dir = TempDir::new("ocp");
    let bx = boxes();
    py(&d, "proj", "post", dir.path(), &bx);
    let mut n = 0;
    for (i, b) in bx.as_array().unwrap().iter().enumerate() {
        let ch = b["channel"].as_str().unwrap();
        let url = format!("ocp://127.0.0.1:{}/proj/{ch}", d.port);
        let vol = Volume::open(&url, opts(json!({}))).unwrap_or_else(|e| panic!("{url}: {e}"));
        let t = |k: &str| -> [i64; 3] { [0, 1, 2].map(|j| b[k][j].as_i64().unwrap()) };
        let (lo, hi) = (t("lo"), t("hi"));
        let mip = b["res"].as_u64().unwrap() as u32;
        let got = vol.cutout(mip, &Bbox::new(lo, hi)).unwrap_or_else(|e| panic!("{url} {lo:?}: {e}"));
        let want = std::fs::read(dir.path().join(format!("{i}.bin"))).unwrap();
        assert!(got == want, "{url} res {mip}: differs from what h5py posted");
        // An inner box, off the cube grid.
        let inner = Bbox::new([lo[0] + 3, lo[1] + 5, lo[2] + 1], [hi[0] - 7, hi[1] - 2, hi[2] - 1]);
        let part = vol.cutout(mip, &inner).unwrap();
        assert_eq!(part.len(), inner.voxels().unwrap() as usize * vol.info().data_type.size());
        n += 1;
    }
    assert_eq!(n, 10);
    let v = Volume::open(&format!("ocp://127.0.0.1:{}/proj/img8", d.port), opts(json!({}))).unwrap();
    assert_eq!(v.scale(0).unwrap().bounds(), Bbox::new([100, 50, 10], [400, 250, 58]));
    assert_eq!(v.scale(1).unwrap().resolution, [8.0, 8.0, 40.0]);
    // Our writes (npz), read by h5py from ndstore's hdf5 answers.
    let mine = json!([
        {"channel": "img16", "dtype": "uint16", "res": 0, "lo": [200, 100, 20], "hi": [333, 177, 44]},
        {"channel": "anno64", "dtype": "uint64", "res": 1, "lo": [50, 25, 10], "hi": [120, 90, 20]}
    ]);
    let mut written = Vec::new();
    for b in mine.as_array().unwrap() {
        let ch = b["channel"].as_str().unwrap();
        let vol = Volume::open(&format!("ocp://127.0.0.1:{}/nd/sd/proj/{ch}", d.port), opts(json!({}))).unwrap();
        let t = |k: &str| -> [i64; 3] { [0, 1, 2].map(|j| b[k][j].as_i64().unwrap()) };
        let bb = Bbox::new(t("lo"), t("hi"));
        let item = vol.info().data_type.size();
        let data: Vec<u8> = (0..bb.voxels().unwrap() as usize * item).map(|i| (i * 13 % 251) as u8 | 1).collect();
        vol.write_from(b["res"].as_u64().unwrap() as u32, &bb, &data).unwrap();
        written.push(data);
    }
    let back = dir.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    py(&d, "proj", "read", &back, &mine);
    for (i, data) in written.iter().enumerate() {
        assert!(std::fs::read(back.join(format!("{i}.bin"))).unwrap() == *data, "h5py reads {i} differently");
    }
    // The legacy ca/ prefix names the same project.
    let ca = Volume::open(&format!("ocp://127.0.0.1:{}/ca/proj/img8", d.port), opts(json!({}))).unwrap();
    let b0 = Bbox::new([100, 50, 10], [400, 250, 40]);
    assert!(ca.cutout(0, &b0).unwrap() == std::fs::read(dir.path().join("0.bin")).unwrap());
}

#[test]
fn bad_boxes_bodies_servers_and_tokens() {
    let Some(_) = python("the ndstore double") else { return };
    let Some(d) = ServiceDouble::start("ocp.py", &["--token-required", "ocp-t0ken"]) else { return };
    seed(&d, "priv", false);
    let url = format!("ocp://127.0.0.1:{}/priv/img8", d.port);
    let e = Volume::open(&url, opts(json!({}))).err().expect("a private project without a token");
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let e = Volume::open(&url, opts(json!({"secrets": "wrong"}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.message().contains("wrong\""), "{e}");
    let good = json!({"secrets": {"token": "ocp-t0ken"}, "bounded": false});
    let vol = Volume::open(&url, opts(good.clone())).unwrap();
    let b = Bbox::new([100, 50, 10], [228, 178, 26]);
    let data: Vec<u8> = (0..b.voxels().unwrap() as usize).map(|i| (i % 200) as u8 + 1).collect();
    vol.write_from(0, &b, &data).unwrap();
    assert!(vol.cutout(0, &b).unwrap() == data);
    // Outside the image: with bounded=false the library asks, and ndstore's refusal says why.
    let e = vol.cutout(0, &Bbox::new([0, 0, 0], [20, 20, 2])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfBounds, "{e}");
    assert!(e.message().contains("Illegal range"), "{e}");
    // Truncated bodies and 5xx are retried; a dropped connection too.
    d.control(json!({"truncate": 1}));
    assert!(vol.cutout(0, &b).unwrap() == data);
    d.control(json!({"fail": 2, "status": 503}));
    assert!(vol.cutout(0, &b).unwrap() == data);
    d.control(json!({"drop": 1}));
    assert!(vol.cutout(0, &b).unwrap() == data);
    // Unknown channel and project; an ambiguous project without a channel; bad URLs.
    let e = Volume::open(&format!("ocp://127.0.0.1:{}/priv/nope", d.port), opts(good.clone())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("nope"), "{e}");
    let e = Volume::open(&format!("ocp://127.0.0.1:{}/priv", d.port), opts(good.clone())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("img16"), "{e}");
    let e = Volume::open("ocp://h/a/b/c", opts(json!({}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = Volume::create("ocp://h/t/c", "{}", opts(json!({}))).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[test]
fn npz_raw_and_hdf5_bodies_in_both_hdf5_layouts_and_damaged_ones() {
    let Some(_) = python("the ndstore double") else { return };
    let Some(d) = ServiceDouble::start("ocp.py", &[]) else { return };
    seed(&d, "fmt", true);
    let dir = TempDir::new("ocp-formats");
    let bx = boxes();
    py(&d, "fmt", "post", dir.path(), &bx);
    let mut compared = 0;
    for (format, layout) in [("npz", "ndstore"), ("raw", "ndstore"), ("hdf5", "ndstore"), ("hdf5", "ocp2014")] {
        d.control(json!({"hdf5_layout": layout, "clear_log": true}));
        for (i, b) in bx.as_array().unwrap().iter().enumerate() {
            let ch = b["channel"].as_str().unwrap();
            let url = format!("ocp://127.0.0.1:{}/fmt/{ch}", d.port);
            let vol = Volume::open(&url, opts(json!({"ocp_format": format}))).unwrap();
            let t = |k: &str| -> [i64; 3] { [0, 1, 2].map(|j| b[k][j].as_i64().unwrap()) };
            let mip = b["res"].as_u64().unwrap() as u32;
            let got = vol.cutout(mip, &Bbox::new(t("lo"), t("hi"))).unwrap_or_else(|e| panic!("{format}: {e}"));
            let want = std::fs::read(dir.path().join(format!("{i}.bin"))).unwrap();
            assert!(got == want, "{url} res {mip} as {format} ({layout}): differs from what h5py posted");
            compared += 1;
        }
        // Every cutout asked for that body.
        let log = d.requests();
        let cutouts: Vec<&Value> = log.iter().filter(|r| r["view"] == "cutout").collect();
        assert!(!cutouts.is_empty());
        for r in cutouts {
            assert!(r["path"].as_str().unwrap().contains(&format!("/{format}/")), "{r}");
        }
    }
    assert_eq!(compared, 40);
    // Damaged bodies: a clear CV_ERR_DECODE naming the URL, never data.
    let b = Bbox::new([100, 50, 10], [300, 250, 30]);
    for (format, how) in [("npz", "xor"), ("npz", "short"), ("raw", "short"), ("hdf5", "xor"), ("hdf5", "short")] {
        let vol = Volume::open(&format!("ocp://127.0.0.1:{}/fmt/img16", d.port), opts(json!({"ocp_format": format})))
            .unwrap();
        d.control(json!({"hdf5_layout": "ndstore", "corrupt": 1, "how": how}));
        let e = vol.cutout(0, &b).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{format} {how}: {e}");
        assert!(e.message().contains(&format!("/fmt/img16/{format}/0/")), "{format} {how}: {e}");
        // The next read is whole again.
        assert_eq!(vol.cutout(0, &b).unwrap().len(), b.voxels().unwrap() as usize * 2);
    }
    let vol16 = Volume::open(&format!("ocp://127.0.0.1:{}/fmt/img16", d.port), opts(json!({}))).unwrap();
    // ndstore's own hdf5 answer, parsed as another type or shape, or cut anywhere: refused by name.
    let url = format!("{}/sd/fmt/img16/hdf5/0/100,300/50,250/10,30/", d.base());
    let mut body = Vec::new();
    ureq::get(&url).call().unwrap().into_reader().read_to_end(&mut body).unwrap();
    let good = hdf5_data(&body, DataType::U16, [20, 200, 200], "img16", &url).unwrap();
    assert!(good == vol16.cutout(0, &b).unwrap());
    for (dt, shape, what) in [
        (DataType::U8, [20, 200, 200], "u2"),
        (DataType::I16, [20, 200, 200], "u2"),
        (DataType::U16, [20, 200, 100], "[20, 200, 200]"),
    ] {
        let e = hdf5_data(&body, dt, shape, "img16", &url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert!(e.message().contains(&url) && e.message().contains(what), "{e}");
    }
    let e = hdf5_data(&body, DataType::U16, [20, 200, 200], "other", &url).unwrap_err();
    assert!(e.message().contains("other/CUTOUT"), "{e}");
    for cut in (0..body.len()).step_by(body.len() / 97 + 1) {
        // Never a panic or a wrong array: an error, or (a cut past the data) the same array.
        if let Ok(a) = hdf5_data(&body[..cut], DataType::U16, [20, 200, 200], "img16", &url) {
            assert!(a == good, "cut at {cut}");
        }
    }
    let mut flipped = body.clone();
    for i in (0..flipped.len()).step_by(251) {
        flipped[i] ^= 0x5A;
        let _ = hdf5_data(&flipped, DataType::U16, [20, 200, 200], "img16", &url);
    }
    let e = Options::parse(Some(r#"{"ocp_format":"blosc"}"#)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

/// The CLI on ndstore: `info`, ocpAccess's job (`cutout --bbox ... -o out.h5`, read back with
/// h5py, and `-o slices/`), `upload` of a raw file read back as hdf5; `create` is refused.
#[test]
fn cli_info_cutout_to_hdf5_and_tiff_upload() {
    let Some(py) = python("h5py") else { return };
    let Some(d) = ServiceDouble::start("ocp.py", &[]) else { return };
    seed(&d, "cli", true);
    let dir = TempDir::new("ocp-cli");
    let bx = boxes();
    py_post(&d, "cli", dir.path(), &bx);
    let cv = env!("CARGO_BIN_EXE_cloudvolume");
    let url = format!("ocp://127.0.0.1:{}/cli/img16", d.port);
    let run = |args: &[&str]| {
        let o = Command::new(cv).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let info: Value = serde_json::from_str(&run(&["info", &url])).unwrap();
    assert_eq!(info["data_type"], "uint16");
    assert_eq!(info["scales"].as_array().unwrap().len(), 2);
    // ocpAccess's job: a large box saved locally, as HDF5 (asking ndstore for hdf5) and slices.
    let h5 = dir.path().join("out.h5");
    run(&[
        "cutout",
        &url,
        "--bbox",
        "100,50,10,400,250,40",
        "--options",
        r#"{"ocp_format":"hdf5"}"#,
        "-o",
        h5.to_str().unwrap(),
    ]);
    let check = r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f[list(f.keys())[0]][...]
b = np.fromfile(sys.argv[2], "<u2").reshape(a.shape)
assert a.dtype == np.uint16 and (a == b).all(), (a.dtype, a.shape)
print(a.shape)
"#;
    let o = Command::new(&py)
        .args(["-c", check, h5.to_str().unwrap(), dir.path().join("2.bin").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(30, 200, 300)"));
    let slices = dir.path().join("slices");
    run(&["cutout", &url, "--bbox", "100,50,10,400,250,40", "-o", &format!("{}/", slices.display())]);
    assert_eq!(std::fs::read_dir(&slices).unwrap().count(), 30);
    // upload: a raw file (Fortran order) posted as npz, read back through ndstore's hdf5.
    let b = Bbox::new([120, 60, 20], [250, 170, 31]);
    let data: Vec<u8> = (0..b.voxels().unwrap() as usize * 2).map(|i| (i * 7 % 253) as u8 | 1).collect();
    let file = dir.path().join("up.raw");
    std::fs::write(&file, &data).unwrap();
    run(&["upload", &url, file.to_str().unwrap(), "--bbox", "120,60,20,250,170,31"]);
    let back = Volume::open(&url, opts(json!({"ocp_format": "hdf5"}))).unwrap();
    assert!(back.cutout(0, &b).unwrap() == data);
    let o = Command::new(cv).args(["create", &url, "--dtype", "uint8", "--size", "64,64,64"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not supported"), "{}", String::from_utf8_lossy(&o.stderr));
}

fn py_post(d: &ServiceDouble, token: &str, out: &std::path::Path, boxes: &Value) {
    py(d, token, "post", out, boxes);
}
