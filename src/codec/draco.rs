//! Draco meshes (the fragments of `neuroglancer_multilod_draco` meshes), decoded by the pure-Rust
//! `draco-core` (bit-compatible with Google's C++ decoder, which DracoPy and so cloud-volume
//! use): the POSITION value of every point, in point order, and the faces.

use crate::error::{Error, Result};

/// A decoded Draco mesh: one position per point (as DracoPy's `points`) and the faces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DracoMesh {
    pub points: Vec<[f32; 3]>,
    pub faces: Vec<[u32; 3]>,
}

/// Most points (and faces) one fragment may decode to: far past any mesh fragment, small enough
/// that a hostile header cannot claim gigabytes.
pub const MAX_POINTS: u64 = 1 << 26;

/// Decode a Draco triangle mesh with a 3-component POSITION attribute.
///
/// # Errors
/// Not a Draco mesh, a damaged one, no 3-component POSITION, a face naming a point that does
/// not exist, or more than [`MAX_POINTS`] points (`Decode`, naming `url`).
pub fn decode(bytes: &[u8], url: &str) -> Result<DracoMesh> {
    use draco_core::{DecodeLimits, DecoderBuffer, GeometryAttributeType, Mesh, MeshDecoder, PointIndex};
    let bad = |m: String| Error::decode(format!("{url}: Draco mesh {m}"));
    let limits = DecodeLimits::default()
        .with_max_points(MAX_POINTS)
        .with_max_faces(MAX_POINTS)
        .with_max_decoded_bytes(MAX_POINTS * 48);
    let mut buffer = DecoderBuffer::new(bytes).with_limits(limits);
    let mut mesh = Mesh::new();
    MeshDecoder::new()
        .decode(&mut buffer, &mut mesh)
        .map_err(|e| bad(format!("of {} bytes does not decode: {e}", bytes.len())))?;
    let n = mesh.num_points();
    let pos =
        mesh.named_attribute(GeometryAttributeType::Position).ok_or_else(|| bad("has no POSITION attribute".into()))?;
    if pos.num_components() != 3 {
        return Err(bad(format!("POSITION has {} components, not 3", pos.num_components())));
    }
    // Every point must map to a stored value (read_f32s would give zeros otherwise).
    if let Some(p) = (0..n).find(|&p| pos.mapped_index(PointIndex(p as u32)).0 as usize >= pos.size()) {
        return Err(bad(format!("point {p} has no POSITION value ({} values)", pos.size())));
    }
    let flat = pos.read_f32s(n, 3);
    let points = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let mut faces = Vec::with_capacity(mesh.num_faces());
    for (k, f) in mesh.faces().iter().enumerate() {
        let f = [f[0].0, f[1].0, f[2].0];
        if let Some(&v) = f.iter().find(|&&v| v as usize >= n) {
            return Err(bad(format!("face {k} names point {v} of {n}")));
        }
        faces.push(f);
    }
    Ok(DracoMesh { points, faces })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// DracoPy 2.2.0's `encode` of 4 integer points and 2 faces (quantization 10 bits over
    /// [0, 1023]); DracoPy's `decode` gives these 6 points (one per corner) and faces.
    const DRACOPY: &str = "445241434f02020101000000060200020000013fff012201ff000001000903000002000101000703ad0a07012003551503bb696910ea50f913c19050900400000000ff03000000000000000000000000000000c07f440a";

    #[test]
    fn decodes_what_dracopy_writes_as_dracopy_reads_it() {
        let m = decode(&hex(DRACOPY), "u").unwrap();
        let want: Vec<[f32; 3]> = vec![
            [1023.0, 0.0, 0.0],
            [0.0, 1023.0, 5.0],
            [7.0, 9.0, 1000.0],
            [0.0, 0.0, 0.0],
            [1023.0, 0.0, 0.0],
            [0.0, 1023.0, 5.0],
        ];
        assert_eq!(m.points, want);
        assert_eq!(m.faces, vec![[0, 1, 2], [3, 4, 5]]);
        let b = hex(DRACOPY);
        for cut in 0..b.len() {
            assert!(decode(&b[..cut], "u").is_err(), "cut at {cut}");
        }
        for i in 0..b.len() {
            let mut f = b.clone();
            f[i] ^= 0xFF;
            let _ = decode(&f, "u"); // never a panic
        }
        assert!(decode(b"DRACO garbage", "u").unwrap_err().message().contains("u: Draco mesh"));
    }
}
