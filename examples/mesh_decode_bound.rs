//! How fast the Draco decoder alone takes the lod-0 fragments of a layer's meshes, against the
//! whole read (`Volume::meshes`) from file://: the bound a mesh benchmark can reach.
//!
//!     cargo run --release --example mesh_decode_bound -- LAYER_DIR IDS_FILE(u64 LE) [ROUNDS] [FRAGMENTS_FILE]
//!
//! FRAGMENTS_FILE: the same fragments' Draco bytes, each after its u32 LE length; they are
//! decoded one after the other on one thread.
use std::time::Instant;

use cloudvolume::volume::objects::MeshRequest;
use cloudvolume::{Options, Volume};

fn cpu_s() -> f64 {
    let t = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = t.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let tick = 100.0;
    (f.get(11).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0))
        / tick
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dir = &a[1];
    let ids: Vec<u64> =
        std::fs::read(&a[2]).unwrap().chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    let rounds: usize = a.get(3).and_then(|r| r.parse().ok()).unwrap_or(5);
    let url = if dir.contains("://") { dir.to_string() } else { format!("file://{dir}") };
    let opts = Options::parse(std::env::var("CV_OPTS").ok().as_deref()).unwrap();
    let v = Volume::open(&url, opts).unwrap();
    let req = MeshRequest::default();
    v.meshes(&ids, &req).unwrap();
    for _ in 0..rounds {
        let (c0, t0) = (cpu_s(), Instant::now());
        let m = v.meshes(&ids, &req).unwrap();
        let n: usize = m.iter().flatten().map(|m| m.vertices.len()).sum();
        println!("whole read: {:.3} s wall, {:.3} CPU-s, {n} vertices", t0.elapsed().as_secs_f64(), cpu_s() - c0);
    }
    if let Some(f) = a.get(4) {
        let b = std::fs::read(f).unwrap();
        let mut frags = Vec::new();
        let mut at = 0;
        while at + 4 <= b.len() {
            let n = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            frags.push(&b[at + 4..at + 4 + n]);
            at += 4 + n;
        }
        for _ in 0..rounds {
            let c0 = cpu_s();
            let n: usize = frags.iter().map(|f| cloudvolume::codec::draco::decode(f, "f").unwrap().points.len()).sum();
            println!("draco-core alone: {} fragments, {n} points, {:.3} CPU-s", frags.len(), cpu_s() - c0);
        }
    }
}
