//! The `cloudvolume` command: print a layer's info, or cut a box out of it into a raw or .npy file.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudvolume::{Bbox, DataType, Error, Options, Volume};

const USAGE: &str = "usage:
  cloudvolume info URL [--options JSON]
  cloudvolume cutout URL --bbox x0,y0,z0,x1,y1,z1 -o FILE [--mip N] [--fill-missing] [--unbounded]
                     [--parallel N] [--options JSON] [--progress | --no-progress]
  cloudvolume points URL FILE_OF_XYZ [--mip N] [-o FILE] [--fill-missing] [--unbounded] [--options JSON]
  cloudvolume exists URL --bbox x0,y0,z0,x1,y1,z1 [--mip N] [--options JSON]
  cloudvolume version

URL: file:///path, /path, http(s)://host/path, gs://bucket/path, s3://bucket/path (optionally
behind precomputed://). The box is half-open [lo, hi) in absolute voxels at the mip. FILE ending
in .npy gets a NumPy header (Fortran order, shape x,y,z,channels); anything else is raw bytes in
that order. points reads one voxel per line of FILE_OF_XYZ (x y z or x,y,z) and prints
x y z: value... per point, or writes the values (point after point, channel after channel) to
-o FILE. exists prints, per chunk of the box, present or missing and its box, then a count.";

struct Args {
    cmd: String,
    url: Option<String>,
    extra: Vec<String>,
    mip: u32,
    bbox: Option<Bbox>,
    output: Option<String>,
    options: serde_json::Map<String, serde_json::Value>,
    progress: Option<bool>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or_else(|| "missing command".to_string())?;
    let mut a = Args { cmd, url: None, extra: Vec::new(), mip: 0, bbox: None, output: None, options: Default::default(), progress: None };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--mip" => a.mip = value("--mip")?.parse().map_err(|_| "--mip needs an integer >= 0".to_string())?,
            "--bbox" => {
                let v = value("--bbox")?;
                let n: Vec<i64> = v
                    .split(',')
                    .map(|s| s.trim().parse::<i64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--bbox wants six integers x0,y0,z0,x1,y1,z1, got \"{v}\""))?;
                if n.len() != 6 {
                    return Err(format!("--bbox wants six integers x0,y0,z0,x1,y1,z1, got \"{v}\""));
                }
                a.bbox = Some(Bbox::new([n[0], n[1], n[2]], [n[3], n[4], n[5]]));
            }
            "-o" | "--output" => a.output = Some(value("-o")?),
            "--fill-missing" => {
                a.options.insert("fill_missing".into(), true.into());
            }
            "--unbounded" => {
                a.options.insert("bounded".into(), false.into());
            }
            "--parallel" => {
                let n: u64 = value("--parallel")?.parse().map_err(|_| "--parallel needs an integer".to_string())?;
                a.options.insert("parallel".into(), n.into());
            }
            "--options" => {
                let v = value("--options")?;
                let extra: serde_json::Value =
                    serde_json::from_str(&v).map_err(|e| format!("--options is not JSON: {e}"))?;
                let obj = extra.as_object().ok_or("--options must be a JSON object")?;
                a.options.extend(obj.clone());
            }
            "--progress" => a.progress = Some(true),
            "--no-progress" => a.progress = Some(false),
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}")),
            s if a.url.is_none() => a.url = Some(s.to_string()),
            s if a.extra.is_empty() => a.extra.push(s.to_string()),
            s => return Err(format!("unexpected argument \"{s}\"")),
        }
    }
    Ok(a)
}

fn npy_header(dtype: DataType, shape: [usize; 4]) -> Vec<u8> {
    let descr = match dtype {
        DataType::U8 => "|u1",
        DataType::I8 => "|i1",
        DataType::U16 => "<u2",
        DataType::I16 => "<i2",
        DataType::U32 => "<u4",
        DataType::I32 => "<i4",
        DataType::U64 => "<u8",
        DataType::I64 => "<i8",
        DataType::F32 => "<f4",
        DataType::F64 => "<f8",
    };
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': True, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    // Magic (6) + version (2) + length (2) + dict + padding + '\n', a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend(((total - 10) as u16).to_le_bytes());
    h.extend(dict.as_bytes());
    h.extend(std::iter::repeat(b' ').take(total - unpadded));
    h.push(b'\n');
    h
}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn open(a: &Args) -> Result<Volume, Error> {
    let url = a.url.as_deref().ok_or_else(|| Error::invalid("missing URL"))?;
    let text = serde_json::Value::Object(a.options.clone()).to_string();
    Volume::open(url, Options::parse(Some(&text))?)
}

fn cutout(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("cutout needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let output = a.output.clone().ok_or_else(|| Error::invalid("cutout needs -o FILE"))?;
    let vol = open(a)?;
    let total = vol.chunk_count(a.mip, &bbox)?;
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let show = a.progress.unwrap_or_else(|| is_tty(2)) && total > 1;
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        if show {
            s.spawn(|| {
                let mut shown = false;
                while !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    // Only long cutouts get a bar.
                    if start.elapsed() < Duration::from_millis(300) {
                        continue;
                    }
                    let n = done.load(Ordering::Relaxed);
                    let width = 40;
                    let filled = n * width / total.max(1);
                    eprint!(
                        "\r[{}{}] {n}/{total} chunks, {:.1}s",
                        "#".repeat(filled),
                        ".".repeat(width - filled),
                        start.elapsed().as_secs_f64()
                    );
                    shown = true;
                }
                if shown {
                    eprintln!("\r[{}] {total}/{total} chunks, {:.1}s", "#".repeat(40), start.elapsed().as_secs_f64());
                }
            });
        }
        let r = (|| {
            let mut buf = vec![0u8; vol.cutout_len(&bbox)?];
            vol.cutout_into(a.mip, &bbox, &mut buf, Some(&done))?;
            Ok::<_, Error>(buf)
        })();
        finished.store(true, Ordering::Relaxed);
        r
    });
    let buf = result?;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&output).map_err(|e| Error::io(format!("cannot create {output}: {e}")))?,
    );
    let write_err = |e: std::io::Error| Error::io(format!("writing {output}: {e}"));
    if output.ends_with(".npy") {
        let s = bbox.shape();
        let shape = [s[0] as usize, s[1] as usize, s[2] as usize, vol.info().num_channels as usize];
        f.write_all(&npy_header(vol.info().data_type, shape)).map_err(write_err)?;
    }
    f.write_all(&buf).map_err(write_err)?;
    f.flush().map_err(write_err)?;
    Ok(())
}

fn points(a: &Args) -> Result<(), Error> {
    let file = a.extra.first().ok_or_else(|| Error::invalid("points needs a FILE_OF_XYZ"))?;
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(format!("cannot read {file}: {e}")))?;
    let mut pts: Vec<[i64; 3]> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let v: Vec<i64> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| Error::invalid(format!("{file}:{}: expected three integers, got \"{line}\"", n + 1)))?;
        if v.len() != 3 {
            return Err(Error::invalid(format!("{file}:{}: expected three integers, got \"{line}\"", n + 1)));
        }
        pts.push([v[0], v[1], v[2]]);
    }
    let vol = open(a)?;
    let dt = vol.info().data_type;
    let nc = vol.info().num_channels as usize;
    let mut buf = vec![0u8; pts.len() * nc * dt.size()];
    vol.scattered_points(a.mip, &pts, &mut buf)?;
    if let Some(output) = &a.output {
        return std::fs::write(output, &buf).map_err(|e| Error::io(format!("writing {output}: {e}")));
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let item = dt.size();
    for (i, p) in pts.iter().enumerate() {
        let vals: Vec<String> =
            (0..nc).map(|c| format_value(dt, &buf[(i * nc + c) * item..(i * nc + c + 1) * item])).collect();
        writeln!(w, "{} {} {}: {}", p[0], p[1], p[2], vals.join(" ")).map_err(|e| Error::io(e.to_string()))?;
    }
    Ok(())
}

fn format_value(dt: DataType, b: &[u8]) -> String {
    let mut a8 = [0u8; 8];
    a8[..b.len()].copy_from_slice(b);
    match dt {
        DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => u64::from_le_bytes(a8).to_string(),
        DataType::I8 => (b[0] as i8).to_string(),
        DataType::I16 => i16::from_le_bytes([b[0], b[1]]).to_string(),
        DataType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
        DataType::I64 => i64::from_le_bytes(a8).to_string(),
        DataType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
        DataType::F64 => f64::from_le_bytes(a8).to_string(),
    }
}

fn exists(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("exists needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let vol = open(a)?;
    let found = vol.chunks_exist(a.mip, &bbox)?;
    let present = found.iter().filter(|f| f.1).count();
    for (b, p) in &found {
        println!("{} {b}", if *p { "present" } else { "missing" });
    }
    println!("{present} of {} chunk(s) present", found.len());
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("cloudvolume: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match a.cmd.as_str() {
        "info" => open(&a).map(|v| {
            println!("{}", serde_json::to_string_pretty(&v.info().json).unwrap_or_default());
        }),
        "cutout" => cutout(&a),
        "points" => points(&a),
        "exists" => exists(&a),
        "version" => {
            println!("cloudvolume {}", cloudvolume::VERSION);
            Ok(())
        }
        other => {
            eprintln!("cloudvolume: unknown command \"{other}\"\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudvolume: error: {e}");
            ExitCode::FAILURE
        }
    }
}
