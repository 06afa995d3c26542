//! Graphene meshes against unmodified cloud-volume 12.15.2: every read
//! tests/reference/graphene_meshes.py recorded through the loopback chunkedgraph double (its
//! meshing manifest route, faithful to PyChunkedGraph's verified manifest) is made through this
//! library and compared: vertices as a multiset bit for bit, faces as a multiset of their
//! corners' coordinates (cloud-volume's own order follows the order its downloads finish), the
//! manifest requests as cloud-volume sent them; then damaged manifests and fragments, the C ABI
//! and the CLI.

mod support;

use std::path::{Path, PathBuf};

use cloudvolume::format::mesh::Mesh;
use cloudvolume::volume::objects::{Lod, MeshRequest};
use cloudvolume::{ErrorKind, Options, Volume};
use serde_json::{json, Value};
use support::chunkedgraph::Double;
use support::env::{reference_dir, required};

fn fixture() -> Option<(PathBuf, Value)> {
    let d = reference_dir().join("graphene_meshes");
    match std::fs::read_to_string(d.join("manifest.json")) {
        Ok(t) => Some((d, serde_json::from_str(&t).expect("manifest.json is JSON"))),
        Err(e) => {
            assert!(
                !required(),
                "{}: no graphene mesh fixture ({e}; scripts/test.sh runs tests/reference/graphene_meshes.py)",
                d.display()
            );
            eprintln!("skipping: no {}", d.display());
            None
        }
    }
}

/// A 2-D .npy array's rows as little-endian 4-byte elements (float32 or uint32).
fn npy_rows(path: &Path) -> Vec<[u32; 3]> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}", path.display());
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        _ => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
    };
    let h = String::from_utf8_lossy(&b[start..start + hlen]).to_string();
    assert!(h.contains("'<f4'") || h.contains("'<u4'"), "{}: {h}", path.display());
    let data = &b[start + hlen..];
    let words: Vec<u32> = data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let rows: Vec<[u32; 3]> = words.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    if h.contains("'fortran_order': True") && rows.len() > 1 {
        let n = rows.len();
        return (0..n).map(|r| [words[r], words[n + r], words[2 * n + r]]).collect();
    }
    rows
}

/// A mesh as multisets: its vertices' bit patterns sorted, its faces as sorted corner
/// coordinates, sorted.
fn canonical(vertices: &[[u32; 3]], faces: &[[u32; 3]]) -> (Vec<[u32; 3]>, Vec<[[u32; 3]; 3]>) {
    let mut v = vertices.to_vec();
    v.sort_unstable();
    let mut f: Vec<[[u32; 3]; 3]> = faces
        .iter()
        .map(|t| {
            let mut c = t.map(|i| vertices[i as usize]);
            c.sort_unstable();
            c
        })
        .collect();
    f.sort_unstable();
    (v, f)
}

fn bits(m: &Mesh) -> Vec<[u32; 3]> {
    m.vertices.iter().map(|p| p.map(f32::to_bits)).collect()
}

fn request_of(options: &Value) -> MeshRequest {
    let weld = if options.get("remove_duplicate_vertices").and_then(Value::as_bool) == Some(true) {
        Some(true)
    } else if options.get("deduplicate_chunk_boundaries").and_then(Value::as_bool) == Some(false) {
        Some(false)
    } else {
        None
    };
    MeshRequest {
        lod: Lod::Index(0),
        weld,
        allow_missing: options.get("allow_missing").and_then(Value::as_bool).unwrap_or(false),
        chunk_size: None,
    }
}

fn ids_of(c: &Value) -> Vec<u64> {
    c["ids"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().parse().unwrap()).collect()
}

fn open(double: &Double, table: &str, token: &str) -> Volume {
    let o = Options::parse(Some(&json!({"secrets": {"token": token}}).to_string())).unwrap();
    Volume::open(&double.url(table), o).unwrap_or_else(|e| panic!("open {table}: {e}"))
}

/// The manifest calls of a request log: (method, path, query, body).
fn manifest_calls(reqs: &[Value]) -> Vec<(String, String, String, String)> {
    reqs.iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/manifest/")))
        .map(|r| (r["method"].to_string(), r["path"].to_string(), r["query"].to_string(), r["body"].to_string()))
        .collect()
}

#[test]
fn every_recorded_read_equals_cloud_volumes() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let (mut reads, mut errors, mut fused, mut verts) = (0, 0, 0, 0usize);
    let mut skipped = Vec::new();
    let mut exact = 0;
    for c in m["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let table = c["table"].as_str().unwrap();
        let ids = ids_of(c);
        let o = &c["options"];
        // Calls this library does not offer: a bounding box, bypassing the manifest,
        // re-fetching shard indices instead of the manifest's byte offsets.
        if ["bounding_box", "bypass", "use_byte_offsets"].iter().any(|k| o.get(*k).is_some()) {
            skipped.push(id.to_string());
            continue;
        }
        let req = request_of(o);
        if o.get("info").is_some() {
            // cloud-volume was handed the info (its info request would fail first); ours fails
            // at open, with the status the manifest request got there.
            let secret = match o.get("secrets").and_then(Value::as_str) {
                Some("<FORBIDDEN>") => m["forbidden_token"].as_str().unwrap(),
                Some(t) => t,
                None => token,
            };
            let opts = Options::parse(Some(&json!({"secrets": {"token": secret}}).to_string())).unwrap();
            let e = Volume::open(&double.url(table), opts).err().unwrap_or_else(|| panic!("{id}: opened"));
            let want = match c["error"]["status"].as_u64() {
                Some(401 | 403) => ErrorKind::Auth,
                _ => ErrorKind::NotFound,
            };
            assert_eq!(e.kind(), want, "{id}: {e}");
            errors += 1;
            continue;
        }
        let mut oj = json!({"secrets": {"token": token}});
        if let Some(mip) = o.get("mip") {
            oj["mip"] = mip.clone();
        }
        if let Some(t) = o.get("timestamp") {
            oj["timestamp"] = t.clone();
        }
        let vol = Volume::open(&double.url(table), Options::parse(Some(&oj.to_string())).unwrap())
            .unwrap_or_else(|e| panic!("{id}: open: {e}"));
        double.control(json!({"clear_log": true}));
        let is_fused = o.get("fuse").and_then(Value::as_bool).unwrap_or(false) || c["fused"].as_bool().unwrap_or(false);
        if !c["error"].is_null() {
            let e = if is_fused { vol.mesh(&ids, &req).err() } else { vol.meshes(&ids, &req).err() };
            let e = e.unwrap_or_else(|| panic!("{id}: cloud-volume raised {}, we read it", c["error"]));
            assert_eq!(e.kind(), ErrorKind::NotFound, "{id}: {e}");
            assert!(e.to_string().contains(&ids[0].to_string()), "{id}: {e} names no id");
            errors += 1;
            continue;
        }
        let expected = c["expected"].as_array().unwrap();
        let got: Vec<(u64, Mesh)> = if is_fused {
            vec![(0, vol.mesh(&ids, &req).unwrap_or_else(|e| panic!("{id}: {e}")))]
        } else {
            let all = vol.meshes(&ids, &req).unwrap_or_else(|e| panic!("{id}: {e}"));
            ids.iter().zip(all).filter_map(|(i, m)| m.map(|m| (*i, m))).collect()
        };
        assert_eq!(got.len(), expected.len(), "{id}: {} meshes, cloud-volume {}", got.len(), expected.len());
        for e in expected {
            let want_v = npy_rows(&dir.join(e["vertices"].as_str().unwrap()));
            let want_f = npy_rows(&dir.join(e["faces"].as_str().unwrap()));
            let mesh = if is_fused {
                &got[0].1
            } else {
                let eid: u64 = e["id"].as_str().unwrap().parse().unwrap();
                &got.iter().find(|(i, _)| *i == eid).unwrap_or_else(|| panic!("{id}: no mesh of {eid}")).1
            };
            let ours = bits(mesh);
            assert_eq!(ours.len(), want_v.len(), "{id}: {} vertices, cloud-volume {}", ours.len(), want_v.len());
            assert_eq!(mesh.faces.len(), want_f.len(), "{id}: face count");
            assert!(canonical(&ours, &mesh.faces) == canonical(&want_v, &want_f), "{id}: mesh differs");
            // consolidate() orders everything, and over file:// cloud-volume's fragment order is
            // reproducible (each kind popped from the end): equal in order too.
            assert!(ours == want_v && mesh.faces == want_f, "{id}: equal as sets, not in order");
            exact += 1;
            verts += ours.len();
        }
        if let Some(theirs) = c["manifest_requests"].as_array() {
            let ours = manifest_calls(&double.requests());
            let mut theirs = manifest_calls(theirs);
            let mut ours_sorted = ours.clone();
            ours_sorted.sort();
            theirs.sort();
            assert_eq!(ours_sorted, theirs, "{id}: manifest requests differ from cloud-volume's");
        }
        fused += usize::from(is_fused);
        reads += 1;
    }
    assert!(reads >= 60, "{reads} reads");
    assert!(errors >= 5 && fused >= 1, "{errors} errors, {fused} fused");
    assert!(skipped.len() <= 8, "skipped {skipped:?}");
    eprintln!(
        "graphene meshes: {reads} reads ({fused} fused, {exact} meshes, {verts} vertices) equal cloud-volume's \
         in order; {errors} errors alike; skipped (calls not offered): {skipped:?}"
    );
}

/// The first recorded single-id read of table `meshes` that succeeded.
fn plain_read(m: &Value) -> Value {
    m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["error"].is_null() && !c["fused"].as_bool().unwrap_or(false) && c["table"] == "meshes")
        .expect("a plain read")
        .clone()
}

#[test]
fn lods_writes_and_damaged_answers_get_clear_statuses() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let case = plain_read(&m);
    let id = ids_of(&case)[0];
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let vol = open(&double, "meshes", token);
    assert_eq!(vol.mesh_lods(id).unwrap(), 1);
    // A node whose manifest names nothing has no levels: NotFound, as its read.
    let meshless = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["error"]["type"] == "IndexError")
        .map(|c| ids_of(c)[0])
        .expect("a meshless root");
    let e = vol.mesh_lods(meshless).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&meshless.to_string()), "{e}");
    let e = vol.meshes(&[id], &MeshRequest { lod: Lod::Index(1), ..Default::default() }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let info = vol.mesh_info().unwrap();
    assert!(matches!(info.kind, cloudvolume::format::mesh::MeshKind::Graphene { .. }), "{info:?}");
    let e = vol.put_mesh(id, &Mesh::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // A supervoxel has no mesh of its own.
    let sv = id & ((1u64 << 56) - 1) | (1u64 << 56);
    let e = vol.meshes(&[sv], &MeshRequest::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // A refused token names the host.
    let o = Options::parse(Some(&json!({"secrets": {"token": "not-a-token-the-double-knows"}}).to_string())).unwrap();
    assert!(Volume::open(&double.url("meshes"), o).is_err());

    // Broken manifest answers (the double's test control): offsets past the shard's end, a
    // JSON text cut short, an initial name without its range.
    for (damage, kind, says) in [
        ("past_end", ErrorKind::Decode, "past the end"),
        ("garbage", ErrorKind::Decode, "not valid JSON"),
        ("bad_name", ErrorKind::Decode, "is not ~<layer>/"),
    ] {
        let fresh = open(&double, "meshes", token);
        double.control(json!({"manifest_damage": damage, "count": 1}));
        let e = fresh.meshes(&[id], &MeshRequest::default()).unwrap_err();
        assert_eq!(e.kind(), kind, "{damage}: {e}");
        assert!(e.to_string().contains(says), "{damage}: {e}");
        assert!(e.to_string().contains("manifest"), "{damage}: {e} names no manifest");
        // The next answer is whole again: the same handle reads the mesh.
        assert!(fresh.meshes(&[id], &MeshRequest::default()).unwrap()[0].is_some(), "{damage}: not recovered");
    }

    // Corrupt Draco: every initial fragment's bytes flipped in a copy of the fixture, as the
    // manifests recorded name them.
    let copy = support::files::TempDir::new("gmesh");
    copy_tree(&dir, copy.path());
    let graph: Value = serde_json::from_str(&std::fs::read_to_string(copy.path().join("graph.json")).unwrap()).unwrap();
    let t = &graph["tables"]["meshes"];
    let mesh_dir = copy.path().join(t["data_dir"].as_str().unwrap()).join(t["info"]["mesh"].as_str().unwrap());
    let mut flipped = std::collections::BTreeSet::new();
    for f in walk(&copy.path().join("manifests/meshes")) {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let answer: Value = serde_json::from_str(v[0]["answer"].as_str().unwrap()).unwrap();
        for frag in answer["fragments"].as_array().unwrap().iter().filter_map(Value::as_str) {
            let Some(rest) = frag.strip_prefix('~') else { continue };
            let mut parts = rest.rsplitn(3, ':');
            let (size, off, file): (usize, usize, &str) =
                (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap(), parts.next().unwrap());
            let shard = mesh_dir.join("initial").join(file);
            assert!(shard.is_file(), "no shard {}", shard.display());
            if !flipped.insert((shard.clone(), off)) {
                continue; // named by several manifests: flip once
            }
            let mut b = std::fs::read(&shard).unwrap();
            for x in &mut b[off..off + size] {
                *x ^= 0xa5;
            }
            std::fs::write(&shard, &b).unwrap();
        }
    }
    assert!(!flipped.is_empty());
    let Some(d2) = Double::start(copy.path(), Some(token)) else { return };
    let vol2 = open(&d2, "meshes", token);
    let e = vol2.meshes(&[id], &MeshRequest::default()).expect_err("flipped Draco bytes read without complaint");
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    assert!(e.to_string().contains(".shard") && e.to_string().contains("Draco"), "{e}");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            std::fs::create_dir_all(&t).unwrap();
            copy_tree(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

#[test]
fn the_cli_saves_a_graphene_mesh_as_obj() {
    let Some((dir, m)) = fixture() else { return };
    let token = m["token"].as_str().unwrap();
    let case = plain_read(&m);
    let id = ids_of(&case)[0];
    let Some(double) = Double::start(&dir, Some(token)) else { return };
    let tmp = support::files::TempDir::new("gmesh-cli");
    let out = tmp.path().join("m.obj");
    let secrets = tmp.path().join("cv");
    std::fs::create_dir_all(secrets.join("secrets")).unwrap();
    std::fs::write(secrets.join("secrets/cave-secret.json"), json!({"token": token}).to_string()).unwrap();
    let r = support::env::cli()
        .env("CLOUD_VOLUME_DIR", &secrets)
        .args(["mesh", &double.url("meshes"), &id.to_string(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let vol = open(&double, "meshes", token);
    let mesh = vol.mesh(&[id], &MeshRequest::default()).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("v ")).count(), mesh.vertices.len());
    assert_eq!(text.lines().filter(|l| l.starts_with("f ")).count(), mesh.faces.len());
}
