//! The `cloudvolume` command line: info, cutout to .npy and raw, errors as one line and a
//! non-zero exit.

mod support;

use std::path::{Path, PathBuf};

use cloudvolume::{Bbox, Options, Volume};
use support::env::{cli, crate_dir};
use support::files::file_url;

fn sample() -> String {
    file_url(&crate_dir().join("data/sample_layer"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cv-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Parse a version 1.0 .npy file: (descr, fortran_order, shape, data).
fn read_npy(path: &Path) -> (String, bool, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "npy magic");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "npy header is padded to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(header.ends_with('\n'));
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_string();
    let fortran = header.contains("'fortran_order': True");
    let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_txt.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    (descr, fortran, shape, bytes[10 + hlen..].to_vec())
}

#[test]
fn info_prints_the_layer_json() {
    let out = cli().args(["info", &sample()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_type"], "uint8");
    assert_eq!(v["scales"].as_array().unwrap().len(), 2);
}

#[test]
fn cutout_writes_npy_and_raw_equal_to_the_library_read() {
    let vol = Volume::open(&sample(), Options::default()).unwrap();
    let bbox = Bbox::new([-10, 20, 3], [50, 70, 21]);
    let want = vol.cutout(0, &bbox).unwrap();

    let npy = tmp("a.npy");
    let out = cli()
        .args(["cutout", &sample(), "--mip", "0", "--bbox", "-10,20,3,50,70,21", "-o"])
        .arg(&npy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (descr, fortran, shape, data) = read_npy(&npy);
    assert_eq!(descr, "|u1");
    assert!(fortran);
    assert_eq!(shape, vec![60, 50, 18, 1]);
    assert_eq!(data, want);
    // Not all one value: the sample layer has structure.
    assert!(data.iter().any(|&v| v != data[0]));

    let raw = tmp("a.raw");
    let out = cli()
        .args(["cutout", &sample(), "--bbox", "-10,20,3,50,70,21", "--no-progress", "-o"])
        .arg(&raw)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read(&raw).unwrap(), want);
}

#[test]
fn cutout_at_mip_1_and_unbounded() {
    let path = tmp("b.npy");
    let out = cli()
        .args(["cutout", &sample(), "--mip", "1", "--bbox", "-12,0,0,4,8,2", "--unbounded", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, _, shape, data) = read_npy(&path);
    assert_eq!(shape, vec![16, 8, 2, 1]);
    // x < -8 or y < 4 lies outside mip 1's bounds: background 0.
    for z in 0..2 {
        for y in 0..8 {
            for x in 0..16 {
                let v = data[x + 16 * (y + 8 * z)];
                if x < 4 || y < 4 {
                    assert_eq!(v, 0, "outside voxel ({x},{y},{z}) is background");
                }
            }
        }
    }
    assert!(data.iter().any(|&v| v != 0));
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let cases: [&[&str]; 5] = [
        &["cutout", "SAMPLE", "--bbox", "-17,8,0,80,88,24", "-o", "/dev/null"],
        &["cutout", "SAMPLE", "--bbox", "1,2,3", "-o", "/dev/null"],
        &["cutout", "file:///nonexistent/layer", "--bbox", "0,0,0,1,1,1", "-o", "/dev/null"],
        &["info", "SAMPLE", "--options", "{\"nope\":1}"],
        &["cutout", "SAMPLE", "--mip", "5", "--bbox", "0,0,0,1,1,1", "-o", "/dev/null"],
    ];
    let expect = ["outside the bounds", "six integers", "no info file", "nope", "mip 5"];
    for (args, want) in cases.iter().zip(expect) {
        let args: Vec<String> = args.iter().map(|a| if *a == "SAMPLE" { sample() } else { a.to_string() }).collect();
        let out = cli().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: stderr {err:?} lacks {want:?}");
        if out.status.code() == Some(1) {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
        }
    }
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<String> = args.iter().map(|a| if *a == "SAMPLE" { sample() } else { a.to_string() }).collect();
    let out = cli().args(&args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version_exit_zero_and_every_command_has_its_own_help() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, _) = run(args);
        assert_eq!(code, Some(0), "{args:?}");
        for c in [
            "info URL",
            "cutout URL",
            "points URL",
            "exists URL",
            "has-data URL",
            "create URL",
            "upload URL",
            "add-scale URL",
            "delete URL",
        ] {
            assert!(out.contains(c), "{args:?}: usage lacks {c}: {out}");
        }
        assert!(out.contains("Exit status"), "{out}");
    }
    for args in [&["--version"][..], &["-V"], &["version"]] {
        let (code, out, _) = run(args);
        assert_eq!(code, Some(0), "{args:?}");
        assert_eq!(out.trim(), format!("cloudvolume {}", env!("CARGO_PKG_VERSION")));
    }
    for c in ["info", "cutout", "points", "exists", "has-data", "create", "upload", "add-scale", "delete"] {
        for args in [vec![c, "--help"], vec!["help", c], vec![c, "SAMPLE", "-h"]] {
            let (code, out, _) = run(&args);
            assert_eq!(code, Some(0), "{args:?}");
            assert!(out.starts_with(&format!("usage: cloudvolume {c}")), "{args:?}: {out}");
            assert!(
                !out.contains("cloudvolume delete URL") || c == "delete",
                "{args:?}: the global usage instead: {out}"
            );
        }
    }
}

#[test]
fn usage_errors_exit_two_with_one_line_pointing_at_the_help() {
    let cases: [(&[&str], &str, &str); 7] = [
        (&["bogus"], "unknown command \"bogus\"", "cloudvolume --help"),
        (&[], "missing command", "cloudvolume --help"),
        (&["cutout", "SAMPLE", "-o", "/dev/null"], "cutout needs --bbox", "cloudvolume cutout --help"),
        (&["cutout", "SAMPLE", "--bbox", "0,0,0,1,1,1"], "cutout needs -o FILE", "cloudvolume cutout --help"),
        (&["exists", "SAMPLE", "--bbox", "1,2"], "six integers", "cloudvolume exists --help"),
        (&["info", "SAMPLE", "--frobnicate"], "unknown flag --frobnicate", "cloudvolume info --help"),
        (&["create", "/tmp/x", "--size", "8,8,8"], "create needs --dtype", "cloudvolume create --help"),
    ];
    for (args, what, hint) in cases {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.contains(what) && err.contains(hint), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
}

#[test]
fn library_errors_name_the_cli_flags_and_commands_report_what_they_did() {
    // The hints say --unbounded and --fill-missing, not the library's option names.
    let (code, _, err) = run(&["cutout", "SAMPLE", "--bbox", "-17,8,0,80,88,24", "-o", "/dev/null"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--unbounded") && !err.contains("bounded=false"), "{err}");
    let dir = tmp("holey");
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("file://{}", dir.display());
    let (code, _, err) = run(&["create", &url, "--dtype", "uint8", "--size", "16,16,16", "--chunk", "8,8,8"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["cutout", &url, "--bbox", "0,0,0,8,8,8", "-o", "/dev/null"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--fill-missing") && !err.contains("fill_missing=true"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    let (code, _, err) = run(&["create", &url, "--dtype", "uint8", "--size", "16,16,16"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--overwrite"), "{err}");
    // exists refuses a box leaving the volume, as cutout does; --unbounded counts its inside.
    let (code, out, err) = run(&["exists", "SAMPLE", "--bbox", "0,0,0,1000,1000,1000"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("outside the bounds") && err.contains("--unbounded"), "{err}");
    let (code, out, _) = run(&["exists", "SAMPLE", "--bbox", "0,0,0,1000,1000,1000", "--unbounded"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("chunk(s) present") && !out.contains(" of 0 chunk"), "{out}");
    // An encoding this library cannot write is refused at create, and nothing is written.
    let jxl = tmp("jxl-layer");
    let _ = std::fs::remove_dir_all(&jxl);
    let (code, _, err) = run(&[
        "create",
        &format!("file://{}", jxl.display()),
        "--dtype",
        "uint8",
        "--size",
        "8,8,8",
        "--encoding",
        "jxl",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("jxl"), "{err}");
    assert!(!jxl.join("info").exists());
    // A cutout says what it wrote; a forced progress bar ends with one final line.
    let npy = tmp("said.npy");
    let (code, out, err) = run(&[
        "cutout",
        "SAMPLE",
        "--bbox",
        "-16,8,0,80,88,24",
        "--progress",
        "--parallel",
        "1",
        "--max-inflight-bytes",
        "65536",
        "-o",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("wrote {}", npy.display())) && out.contains("96x80x24") && out.contains("uint8"),
        "{out}"
    );
    let finals = err
        .split(['\r', '\n'])
        .filter(|l| l.contains("chunks") && l.contains("[########################################]"))
        .count();
    assert!(finals <= 1, "the final progress line shows {finals} times: {err:?}");
    // A byte budget under the minimum is refused, naming the option.
    let (code, _, err) =
        run(&["cutout", "SAMPLE", "--bbox", "0,0,0,8,8,8", "--max-inflight-bytes", "10", "-o", npy.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("max_inflight_bytes") && err.contains("10"), "{err}");
    let (code, _, err) = run(&[
        "cutout",
        "SAMPLE",
        "--bbox",
        "0,0,0,8,8,8",
        "--max-inflight-bytes",
        "lots",
        "-o",
        npy.to_str().unwrap(),
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("--max-inflight-bytes needs an integer"), "{err}");
}

#[test]
fn unique_mask_point_and_renumber_agree_with_the_library() {
    let seg = support::layers::Layer::write(
        support::layers::Spec::new("uint64", [40, 36, 12], [16, 16, 8])
            .offset([-8, 4, 0])
            .chunks(support::layers::Chunks::Cseg)
            .pattern(support::layers::Pattern::Labels),
    );
    let url = seg.dir.url();
    let vol = Volume::open(&url, Options::default()).unwrap();
    let bbox = Bbox::new([-5, 6, 1], [30, 40, 11]);
    let lib = vol.unique(0, &bbox).unwrap();
    assert!(lib.labels.len() > 3);

    // unique: one label per line; with --counts "label count".
    let (code, out, err) = run(&["unique", &url, "--bbox", "-5,6,1,30,40,11"]);
    assert_eq!(code, Some(0), "{err}");
    let printed: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(printed, lib.labels);
    let (code, out, err) = run(&["unique", &url, "--bbox", "-5,6,1,30,40,11", "--counts"]);
    assert_eq!(code, Some(0), "{err}");
    let pairs: Vec<(u64, u64)> = out
        .lines()
        .map(|l| {
            let mut it = l.split(' ').map(|v| v.parse::<u64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    assert_eq!(pairs, lib.labels.iter().copied().zip(lib.counts.iter().copied()).collect::<Vec<_>>());
    assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), 35 * 34 * 10);

    // mask: a .npy of uint8, 1 exactly where the cutout holds the label.
    let label = lib.labels[lib.counts.iter().enumerate().max_by_key(|(_, &n)| n).unwrap().0];
    let npy = tmp("mask.npy");
    let (code, out, err) =
        run(&["mask", &url, "--bbox", "-5,6,1,30,40,11", "--labels", &label.to_string(), "-o", npy.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("voxel(s) set"), "{out}");
    let (descr, fortran, shape, data) = read_npy(&npy);
    assert_eq!((descr.as_str(), fortran, shape), ("|u1", true, vec![35, 34, 10, 1]));
    let cut = vol.cutout(0, &bbox).unwrap();
    let model: Vec<u8> =
        cut.chunks_exact(8).map(|e| u8::from(u64::from_le_bytes(e.try_into().unwrap()) == label)).collect();
    assert!(data == model, "mask differs from cutout == {label}");

    // cutout --point: the download_point box.
    let raw = tmp("point.raw");
    let (code, out, err) = run(&["cutout", &url, "--point", "10,20,5", "--size", "8,8,1", "-o", raw.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let pb = vol.point_box(0, [10.0, 20.0, 5.0], [8, 8, 1], None).unwrap();
    assert_eq!((pb.lo, pb.hi), ([6, 16, 5], [14, 24, 6]));
    assert!(out.contains(&pb.to_string()), "the report names the box: {out}");
    assert_eq!(std::fs::read(&raw).unwrap(), vol.cutout(0, &pb).unwrap());

    // cutout --renumber: the smallest type, and FILE.labels maps it back.
    let rn = tmp("renum.npy");
    let (code, _, err) = run(&["cutout", &url, "--bbox", "-5,6,1,30,40,11", "--renumber", "-o", rn.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let (descr, _, _, data) = read_npy(&rn);
    assert_eq!(descr, "|u1", "{} labels fit uint8", lib.labels.len());
    let list = std::fs::read_to_string(format!("{}.labels", rn.display())).unwrap();
    let back: Vec<u64> = list.lines().map(|l| l.split(' ').nth(1).unwrap().parse().unwrap()).collect();
    let restored: Vec<u8> = data.iter().flat_map(|&v| back[v as usize].to_le_bytes()).collect();
    assert!(restored == cut, "renumbered cutout maps back to the cutout");

    // Bad input: a float layer, no --labels, a bad --point.
    let (code, _, err) = run(&["unique", &sample(), "--bbox", "0,8,0,4,12,4"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("uint32 or uint64") && err.contains("uint8"), "{err}");
    let (code, _, err) = run(&["mask", &url, "--bbox", "0,8,0,4,12,4", "-o", "x.npy"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--labels"), "{err}");
    let (code, _, err) = run(&["cutout", &url, "--point", "1,2", "-o", "x.raw"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--point"), "{err}");
}

#[test]
fn files_saves_the_chunk_files_of_a_box() {
    let layer = support::layers::Layer::write(
        support::layers::Spec::new("uint16", [20, 16, 8], [8, 8, 8]).chunks(support::layers::Chunks::RawGz),
    );
    let dir = tmp("files-out");
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = run(&["files", &layer.dir.url(), "--bbox", "0,0,0,12,8,8", "-o", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("wrote 2 file(s)"), "{out}");
    let vol = Volume::open(&layer.dir.url(), Options::default()).unwrap();
    let a = std::fs::read(dir.join("s0/0-8_0-8_0-8")).unwrap();
    assert_eq!(a, vol.cutout(0, &Bbox::new([0, 0, 0], [8, 8, 8])).unwrap(), "decompressed chunk = its voxels");
    let (code, _, err) = run(&[
        "files",
        &layer.dir.url(),
        "--bbox",
        "0,0,0,12,8,8",
        "--stored",
        "-o",
        dir.join("raw").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let stored = std::fs::read(dir.join("raw/s0/8-16_0-8_0-8")).unwrap();
    assert_eq!(&stored[..2], &[0x1f, 0x8b], "--stored keeps the gzip bytes");
}

#[test]
fn has_data_says_whether_each_scale_holds_data() {
    for mip in ["0", "1"] {
        let (code, out, err) = run(&["has-data", "SAMPLE", "--mip", mip]);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(out, format!("mip {mip}: data\n"));
    }
    let (code, out, _) = run(&["has-data", "SAMPLE"]);
    assert_eq!((code, out.as_str()), (Some(0), "mip 0: data\n"), "--mip defaults to 0");
    // A new layer: nothing until written; an added scale has nothing.
    let dir = tmp("has-data");
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("file://{}", dir.display());
    let (code, _, err) = run(&["create", &url, "--dtype", "uint8", "--size", "16,16,16", "--chunk", "8,8,8"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["has-data", &url]);
    assert_eq!((code, out.as_str()), (Some(0), "mip 0: no data\n"), "{err}");
    let raw = tmp("has-data.raw");
    std::fs::write(&raw, [3u8; 8 * 8 * 8]).unwrap();
    let (code, _, err) = run(&["upload", &url, raw.to_str().unwrap(), "--bbox", "0,0,0,8,8,8"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["add-scale", &url, "--factor", "2,2,2"]);
    assert_eq!((code, out.as_str()), (Some(0), "mip 1\n"), "{err}");
    let (code, out, _) = run(&["has-data", &url]);
    assert_eq!((code, out.as_str()), (Some(0), "mip 0: data\n"));
    let (code, out, _) = run(&["has-data", &url, "--mip", "1"]);
    assert_eq!((code, out.as_str()), (Some(0), "mip 1: no data\n"));
    // Errors: a mip the layer lacks; a web server, which cannot list.
    let (code, _, err) = run(&["has-data", &url, "--mip", "2"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("mip 2") && err.trim_end().lines().count() == 1, "{err}");
    let server = support::httpd::FileServer::start(&crate_dir().join("data")).unwrap();
    let web = format!("{}/sample_layer", server.url());
    let (code, out, err) = run(&["has-data", &web]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("listing is not possible over plain HTTP") && err.contains(&web), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
}
