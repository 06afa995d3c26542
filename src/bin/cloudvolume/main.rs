//! The `cloudvolume` command: print a layer's info, or cut a box out of it into a raw or .npy file.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudvolume::{Bbox, DataType, Error, Options, Volume};

mod hdf5;

/// A command: its name, synopsis, and what it does (its help text).
struct Command {
    name: &'static str,
    synopsis: &'static str,
    about: &'static str,
    /// What must be given: flags, or FILE for the positional argument after the URL.
    requires: &'static [&'static str],
}

const COMMANDS: &[Command] = &[
    Command {
        name: "info",
        synopsis: "cloudvolume info URL [--options JSON]",
        about: "Print the layer's info JSON.", requires: &[],
    },
    Command {
        name: "cutout",
        synopsis: "cloudvolume cutout URL (--bbox x0,y0,z0,x1,y1,z1 | --point X,Y,Z --size N|X,Y,Z [--coord-resolution X,Y,Z])\n\
                   \x20                  -o FILE [--mip N] [--fill-missing] [--unbounded] [--parallel N] [--max-inflight-bytes N] [--options JSON]\n\
                   \x20                  [--progress | --no-progress] [--renumber] [--supervoxels] [--timestamp T] [--stop-layer N]",
        about: "Read the box [x0,x1) x [y0,y1) x [z0,z1) (absolute voxels at the mip) into FILE: a .npy\n\
                file (Fortran order, shape x,y,z,channels) when FILE ends in .npy, else raw bytes in that\n\
                order. --point reads the box cloud-volume's download_point reads: SIZE voxels around the\n\
                point, given in mip 0 voxels (or in voxels of --coord-resolution, nm). --fill-missing reads\n\
                missing chunks as background, --unbounded lets the box leave the volume (the outside is\n\
                background). graphene:// layers read roots unless --supervoxels; --timestamp (unix seconds)\n\
                and --stop-layer choose the graph's state and layer. --renumber writes the labels as\n\
                1, 2, ... in ascending order (0 kept) in the smallest type that holds them, and\n\
                FILE.labels (\"value label\" per line). A bar shows progress on a terminal.", requires: &["--bbox|--point", "-o"],
    },
    Command {
        name: "unique",
        synopsis: "cloudvolume unique URL --bbox x0,y0,z0,x1,y1,z1 [--mip N] [--counts] [-o FILE] [--unbounded]\n\
                   \x20                  [--fill-missing] [--supervoxels] [--timestamp T] [--stop-layer N] [--options JSON]",
        about: "Print the labels of the box (uint32/uint64 layers), ascending, one per line; with --counts\n\
                \"label count\" (voxels). Counted chunk by chunk, without reading the box into memory.\n\
                -o FILE writes them there instead.", requires: &["--bbox"],
    },
    Command {
        name: "files",
        synopsis: "cloudvolume files URL --bbox x0,y0,z0,x1,y1,z1 -o DIR [--mip N] [--stored] [--options JSON]",
        about: "Save the stored chunk files meeting the box into DIR (cloud-volume's download_files):\n\
                DIR/<scale key>/<chunk>, or DIR/<scale key>/<morton code> in a sharded scale; gzip,\n\
                brotli and zstd removed unless --stored. Missing chunks are left out.", requires: &["--bbox", "-o"],
    },
    Command {
        name: "mask",
        synopsis: "cloudvolume mask URL --bbox x0,y0,z0,x1,y1,z1 --labels L[,L...] -o FILE [--mip N] [--options JSON]",
        about: "Write a uint8 mask of the box: 1 where a voxel holds one of the labels, else 0 (a .npy\n\
                file when FILE ends in .npy, else raw bytes, Fortran order).", requires: &["--bbox", "--labels", "-o"],
    },
    Command {
        name: "points",
        synopsis: "cloudvolume points URL FILE_OF_XYZ [--mip N] [-o FILE] [--fill-missing] [--unbounded] [--options JSON]",
        about: "Read one voxel per line of FILE_OF_XYZ (x y z or x,y,z; # comments) and print\n\
                \"x y z: value...\" per point, or write the values (point after point, channel after\n\
                channel) to -o FILE.", requires: &["FILE"],
    },
    Command {
        name: "overlay",
        synopsis: "cloudvolume overlay IMAGE_URL SEG_URL (--center X,Y,Z --size W,H[,D] | --bbox x0,y0,z0,x1,y1,z1) -o OUT.png\n\
                   \x20                  [--resolution X,Y,Z] [--image-mip N] [--seg-mip N] [--root-ids ID[,ID...]] [--scale-to-bounds]\n\
                   \x20                  [--alpha A] [--outline PX] [--seg-out FILE.npy] [--supervoxels] [--timestamp T] [--stop-layer N]\n\
                   \x20                  [--options JSON]",
        about: "Read an image layer and a segmentation layer (Precomputed or graphene) over one box on one\n\
                grid (ImageryClient's image_and_segmentation_cutout) and write a picture: the segments in\n\
                colours of a stable palette over the greyscale image. The box is in voxels of --resolution\n\
                (nm; default the image's at its mip); --center/--size give it as W,H[,D] voxels around X,Y,Z.\n\
                The grid is the finer layer's (or --resolution's, with --scale-to-bounds); the other layer is\n\
                resampled by nearest neighbour. Mips default to the lowest not labelled placeholder.\n\
                --root-ids keeps only those segments; --outline PX draws PX-wide inner outlines instead of\n\
                fills; --alpha (default 0.5) is the colour's opacity. A box D > 1 deep writes one picture per\n\
                slice (OUT_z0000.png, ...). --seg-out also saves the aligned segmentation (uint64, .npy).\n\
                Both layers are opened unbounded with fill_missing, as ImageryClient opens them.", requires: &["FILE", "--center|--bbox", "-o"],
    },
    Command {
        name: "exists",
        synopsis: "cloudvolume exists URL --bbox x0,y0,z0,x1,y1,z1 [--mip N] [--unbounded] [--options JSON]",
        about: "Print, per chunk of the box, \"present\" or \"missing\" and its box, then a count.\n\
                A box leaving the volume is refused unless --unbounded (then only its inside counts).", requires: &["--bbox"],
    },
    Command {
        name: "has-data",
        synopsis: "cloudvolume has-data URL [--mip N] [--options JSON]",
        about: "Print \"mip N: data\" when the scale holds any stored object, else \"mip N: no data\"\n\
                (cloud-volume's has_data: whether any key starts with the scale's key, which is a bare\n\
                prefix as there: \"8_8_40\" also finds a scale \"8_8_400\"). Needs a store that lists:\n\
                file://, gs:// or s3:// (a web server cannot).", requires: &[],
    },
    Command {
        name: "create",
        synopsis: "cloudvolume create URL --dtype T --size X,Y,Z [--type image|segmentation] [--encoding E]\n\
                   \x20                  [--channels N] [--resolution X,Y,Z] [--offset X,Y,Z] [--chunk X,Y,Z] [--overwrite]",
        about: "Write a new one-scale layer's info (and print it). Encodings: raw, jpeg, png,\n\
                compressed_segmentation. --type defaults to segmentation for uint32/uint64, else image.", requires: &["--dtype", "--size"],
    },
    Command {
        name: "upload",
        synopsis: "cloudvolume upload URL FILE --bbox x0,y0,z0,x1,y1,z1 [--mip N] [--non-aligned] [--options JSON]",
        about: "Write the box from FILE: raw bytes in Fortran order, or a .npy file (C or Fortran order).\n\
                The box must lie on the chunk grid (or reach the volume edge) unless --non-aligned.", requires: &["FILE", "--bbox"],
    },
    Command {
        name: "add-scale",
        synopsis: "cloudvolume add-scale URL --factor X,Y,Z [--chunk X,Y,Z]",
        about: "Add a scale downsampled from mip 0 by the factor to the info (no voxels are written) and\n\
                print its mip.", requires: &["--factor"],
    },
    Command {
        name: "delete",
        synopsis: "cloudvolume delete URL --bbox x0,y0,z0,x1,y1,z1 [--mip N]",
        about: "Delete the chunks of a chunk-aligned box.", requires: &["--bbox"],
    },
    Command {
        name: "dvid-repo",
        synopsis: "cloudvolume dvid-repo HOST:PORT [--alias NAME] [--description TEXT] [--options JSON]",
        about: "Create a repo on a DVID server and print its root UUID; then create data instances in it\n\
                with \"cloudvolume create dvid://HOST:PORT/UUID/NAME --dtype T --size X,Y,Z ...\".", requires: &[],
    },
    Command {
        name: "mesh",
        synopsis: "cloudvolume mesh URL ID [ID...] -o FILE.obj|.ply|.stl [--lod N] [--weld | --no-weld] [--allow-missing]\n\
                   \x20                  [--options JSON]",
        about: "Save the meshes of the segments as one file (cloud-volume's save_mesh([a, b, c])): OBJ, PLY\n\
                (binary) or STL (binary), by the extension. Legacy meshes and multi-resolution (Draco) ones,\n\
                sharded or not; --lod picks a level of detail (0 the finest, -1 the coarsest). Vertices are\n\
                welded as cloud-volume welds them for legacy meshes (--no-weld keeps every fragment's own),\n\
                not for multi-resolution ones (--weld welds them). --allow-missing skips ids without a mesh.", requires: &["FILE", "-o"],
    },
    Command {
        name: "skeleton",
        synopsis: "cloudvolume skeleton URL ID -o FILE.swc [--options JSON]",
        about: "Save the segment's skeleton as SWC (osteoid's rendering: physical coordinates, radius and\n\
                vertex types from the attributes of those names).", requires: &["FILE", "-o"],
    },
    Command { name: "version", synopsis: "cloudvolume version", about: "Print the version.", requires: &[] },
    Command { name: "help", synopsis: "cloudvolume help [COMMAND]", about: "Print this help, or a command's.", requires: &[] },
];

const URLS: &str = "URL: file:///path, /path, http(s)://host/path, gs://bucket/path, s3://bucket/path, optionally\n\
behind precomputed://, graphene://https://host/segmentation/table/TABLE (a chunkedgraph table),\n\
dvid://HOST:PORT/UUID/DATA (a DVID data instance), boss://COLLECTION/EXPERIMENT/CHANNEL (a BOSS\n\
channel), or ocp://HOST/TOKEN/CHANNEL (an ndstore project). Boxes are half-open [lo, hi) in absolute voxels at the mip. --options\n\
takes the JSON options of cv_open (README, \"Options\").\n\
Exit status: 0 done, 1 the library refused or failed (one line on stderr), 2 a usage error.";

fn usage() -> String {
    let mut s = String::from("usage:\n");
    for c in COMMANDS {
        s.push_str("  ");
        s.push_str(c.synopsis);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(URLS);
    s.push_str("\n\nRun \"cloudvolume COMMAND --help\" for a command's help.");
    s
}

fn help_for(name: &str) -> Option<String> {
    COMMANDS.iter().find(|c| c.name == name).map(|c| format!("usage: {}\n\n{}\n\n{URLS}", c.synopsis, c.about))
}

/// A usage error: its message, and the command it concerns (for the hint).
struct Usage {
    message: String,
    command: Option<String>,
}

impl Usage {
    fn new(message: impl Into<String>, command: Option<&str>) -> Usage {
        Usage { message: message.into(), command: command.map(str::to_string) }
    }
}

/// What the command line asks for.
enum Invocation {
    Run(Box<Args>),
    /// Print this to stdout and exit 0.
    Print(String),
}

struct Args {
    cmd: String,
    url: Option<String>,
    extra: Vec<String>,
    mip: u32,
    bbox: Option<Bbox>,
    output: Option<String>,
    options: serde_json::Map<String, serde_json::Value>,
    progress: Option<bool>,
    /// Flags of create/add-scale: name → value.
    named: std::collections::HashMap<String, String>,
}

fn parse_args() -> Result<Invocation, Usage> {
    let mut it = std::env::args().skip(1);
    let cmd = match it.next() {
        None => return Err(Usage::new("missing command", None)),
        Some(c) => c,
    };
    match cmd.as_str() {
        "-h" | "--help" => return Ok(Invocation::Print(usage())),
        "-V" | "--version" => return Ok(Invocation::Print(format!("cloudvolume {}", cloudvolume::VERSION))),
        "help" => {
            return match it.next() {
                None => Ok(Invocation::Print(usage())),
                Some(c) => help_for(&c)
                    .map(Invocation::Print)
                    .ok_or_else(|| Usage::new(format!("unknown command \"{c}\""), None)),
            }
        }
        c if COMMANDS.iter().all(|k| k.name != c) => return Err(Usage::new(format!("unknown command \"{c}\""), None)),
        _ => {}
    }
    let here = Some(cmd.as_str());
    let mut a = Args {
        cmd: cmd.clone(),
        url: None,
        extra: Vec::new(),
        mip: 0,
        bbox: None,
        output: None,
        options: Default::default(),
        progress: None,
        named: Default::default(),
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| Usage::new(format!("{name} needs a value"), here));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Print(help_for(&cmd).unwrap_or_else(usage))),
            "--mip" => a.mip = value("--mip")?.parse().map_err(|_| Usage::new("--mip needs an integer >= 0", here))?,
            "--bbox" => {
                let v = value("--bbox")?;
                let bad = || Usage::new(format!("--bbox wants six integers x0,y0,z0,x1,y1,z1, got \"{v}\""), here);
                let n: Vec<i64> =
                    v.split(',').map(|s| s.trim().parse::<i64>()).collect::<Result<_, _>>().map_err(|_| bad())?;
                if n.len() != 6 {
                    return Err(bad());
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
                let n: u64 =
                    value("--parallel")?.parse().map_err(|_| Usage::new("--parallel needs an integer", here))?;
                a.options.insert("parallel".into(), n.into());
            }
            "--max-inflight-bytes" => {
                let n: u64 = value("--max-inflight-bytes")?
                    .parse()
                    .map_err(|_| Usage::new("--max-inflight-bytes needs an integer", here))?;
                a.options.insert("max_inflight_bytes".into(), n.into());
            }
            "--options" => {
                let v = value("--options")?;
                let extra: serde_json::Value =
                    serde_json::from_str(&v).map_err(|e| Usage::new(format!("--options is not JSON: {e}"), here))?;
                let obj = extra.as_object().ok_or_else(|| Usage::new("--options must be a JSON object", here))?;
                a.options.extend(obj.clone());
            }
            "--supervoxels" => {
                a.options.insert("agglomerate".into(), false.into());
            }
            "--timestamp" => {
                let v = value("--timestamp")?;
                let t: f64 =
                    v.parse().map_err(|_| Usage::new(format!("--timestamp wants unix seconds, got \"{v}\""), here))?;
                a.options.insert("timestamp".into(), t.into());
            }
            "--stop-layer" => {
                let v = value("--stop-layer")?;
                let l: u64 = v
                    .parse()
                    .map_err(|_| Usage::new(format!("--stop-layer wants a layer number, got \"{v}\""), here))?;
                a.options.insert("stop_layer".into(), l.into());
            }
            "--counts" | "--renumber" | "--stored" | "--scale-to-bounds" | "--weld" | "--no-weld"
            | "--allow-missing" => {
                a.named.insert(arg.trim_start_matches('-').to_string(), String::new());
            }
            "--dtype" | "--size" | "--type" | "--encoding" | "--channels" | "--resolution" | "--offset" | "--chunk"
            | "--factor" | "--point" | "--coord-resolution" | "--labels" | "--center" | "--image-mip" | "--seg-mip"
            | "--root-ids" | "--alpha" | "--outline" | "--seg-out" | "--alias" | "--description" | "--lod" => {
                let v = value(&arg)?;
                a.named.insert(arg.trim_start_matches('-').to_string(), v);
            }
            "--overwrite" => {
                a.options.insert("overwrite".into(), true.into());
            }
            "--non-aligned" => {
                a.options.insert("non_aligned_writes".into(), true.into());
            }
            "--progress" => a.progress = Some(true),
            "--no-progress" => a.progress = Some(false),
            s if s.starts_with('-') && s.len() > 1 && s.parse::<f64>().is_err() => {
                return Err(Usage::new(format!("unknown flag {s}"), here))
            }
            s if a.url.is_none() => a.url = Some(s.to_string()),
            s if a.extra.is_empty() || cmd == "mesh" => a.extra.push(s.to_string()),
            s => return Err(Usage::new(format!("unexpected argument \"{s}\""), here)),
        }
    }
    if a.url.is_none() && cmd != "version" {
        return Err(Usage::new(format!("{cmd} needs a URL"), here));
    }
    let given = |r: &str| match r {
        "FILE" => !a.extra.is_empty(),
        "--bbox|--point" => a.bbox.is_some() || a.named.contains_key("point"),
        "--center|--bbox" => a.bbox.is_some() || a.named.contains_key("center"),
        "--bbox" => a.bbox.is_some(),
        "-o" => a.output.is_some(),
        flag => a.named.contains_key(flag.trim_start_matches('-')),
    };
    if let Some(c) = COMMANDS.iter().find(|c| c.name == cmd) {
        if let Some(r) = c.requires.iter().find(|r| !given(r)) {
            let what = match *r {
                "FILE" if cmd == "overlay" => "a SEG_URL argument".to_string(),
                "FILE" if cmd == "mesh" || cmd == "skeleton" => "a segment ID".to_string(),
                "FILE" => "a FILE argument".to_string(),
                "--bbox" => "--bbox x0,y0,z0,x1,y1,z1".to_string(),
                "--bbox|--point" => "--bbox x0,y0,z0,x1,y1,z1 or --point X,Y,Z --size N".to_string(),
                "--labels" => "--labels L[,L...]".to_string(),
                "--center|--bbox" => "--center X,Y,Z --size W,H[,D] or --bbox x0,y0,z0,x1,y1,z1".to_string(),
                "-o" => "-o FILE".to_string(),
                f => format!("{f} X,Y,Z"),
            };
            return Err(Usage::new(format!("{cmd} needs {what}"), here));
        }
    }
    Ok(Invocation::Run(Box::new(a)))
}

/// The library's hints name its options; on the command line they are flags.
fn cli_hints(message: &str) -> String {
    message
        .replace("open with fill_missing=true", "pass --fill-missing")
        .replace("open with bounded=false", "pass --unbounded")
        .replace("open with non_aligned_writes=true", "pass --non-aligned")
        .replace("open with {\"overwrite\": true}", "pass --overwrite")
}

fn npy_header(dtype: DataType, shape: [usize; 4]) -> Vec<u8> {
    let descr = dtype.numpy_descr();
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
    h.extend(std::iter::repeat_n(b' ', total - unpadded));
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

/// A comma-separated list of numbers after `flag`: one value (repeated thrice when `triple`)
/// or three.
fn numbers<T: std::str::FromStr + Copy>(a: &Args, flag: &str, triple: bool) -> Result<Option<Vec<T>>, Error> {
    let Some(v) = a.named.get(flag) else { return Ok(None) };
    let n: Vec<T> = v
        .split(',')
        .map(|s| s.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| Error::invalid(format!("--{flag} wants numbers separated by commas, got \"{v}\"")))?;
    match n.len() {
        1 if triple => Ok(Some(vec![n[0]; 3])),
        3 => Ok(Some(n)),
        _ if !triple => Ok(Some(n)),
        _ => Err(Error::invalid(format!("--{flag} wants one or three numbers, got \"{v}\""))),
    }
}

/// The box of the command: --bbox, or the download_point box of --point and --size.
fn command_box(a: &Args, vol: &Volume) -> Result<Bbox, Error> {
    if let Some(b) = a.bbox {
        return Ok(b);
    }
    let pt = numbers::<f64>(a, "point", true)?.ok_or_else(|| Error::invalid("needs --bbox or --point"))?;
    let size = numbers::<i64>(a, "size", true)?.unwrap_or_else(|| vec![256; 3]);
    let cr = numbers::<f64>(a, "coord-resolution", true)?.map(|v| [v[0], v[1], v[2]]);
    vol.point_box(a.mip, [pt[0], pt[1], pt[2]], [size[0], size[1], size[2]], cr)
}

/// What `-o OUTPUT` names: an HDF5 file (`.h5`, `.hdf5`), a directory of TIFF slices (ends in
/// `/`, or an existing directory), a `.npy` file, or raw bytes.
fn output_kind(output: &str) -> &'static str {
    let lower = output.to_ascii_lowercase();
    if lower.ends_with(".h5") || lower.ends_with(".hdf5") {
        "HDF5"
    } else if output.ends_with('/') || std::path::Path::new(output).is_dir() {
        "TIFF slices"
    } else if lower.ends_with(".npy") {
        ".npy"
    } else {
        "raw"
    }
}

fn write_array(output: &str, vol: &Volume, mip: u32, dtype: DataType, bbox: &Bbox, buf: &[u8]) -> Result<(), Error> {
    let s = bbox.shape();
    let shape = [s[0] as usize, s[1] as usize, s[2] as usize];
    let channels = vol.info().num_channels as usize;
    match output_kind(output) {
        "HDF5" => {
            let res = vol.scale(mip)?.resolution;
            return hdf5::write_hdf5(std::path::Path::new(output), buf, dtype, channels, shape, res, bbox.lo, "main");
        }
        "TIFF slices" => {
            return cloudvolume::export::write_tiff_slices(
                std::path::Path::new(output),
                buf,
                dtype,
                channels,
                shape,
                bbox.lo[2],
            )
            .map(|_| ());
        }
        _ => {}
    }
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(output).map_err(|e| Error::io(format!("cannot create {output}: {e}")))?,
    );
    let write_err = |e: std::io::Error| Error::io(format!("writing {output}: {e}"));
    if output.ends_with(".npy") {
        let s = bbox.shape();
        let shape = [s[0] as usize, s[1] as usize, s[2] as usize, vol.info().num_channels as usize];
        f.write_all(&npy_header(dtype, shape)).map_err(write_err)?;
    }
    f.write_all(buf).map_err(write_err)?;
    f.flush().map_err(write_err)
}

fn unique(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("unique needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let vol = open(a)?;
    let found = vol.unique(a.mip, &bbox)?;
    let counts = a.named.contains_key("counts");
    let mut text = String::with_capacity(found.labels.len() * 12);
    for (l, n) in found.labels.iter().zip(&found.counts) {
        if counts {
            text.push_str(&format!("{l} {n}\n"));
        } else {
            text.push_str(&format!("{l}\n"));
        }
    }
    match &a.output {
        Some(o) => {
            std::fs::write(o, text).map_err(|e| Error::io(format!("writing {o}: {e}")))?;
            println!("wrote {o}: {} label(s) of box {bbox}", found.labels.len());
            Ok(())
        }
        None => std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| Error::io(e.to_string())),
    }
}

fn segment_ids(a: &Args) -> Result<Vec<u64>, Error> {
    a.extra
        .iter()
        .map(|s| s.parse::<u64>().map_err(|_| Error::invalid(format!("\"{s}\" is not a segment id (an integer >= 0)"))))
        .collect()
}

fn mesh(a: &Args) -> Result<(), Error> {
    use cloudvolume::volume::objects::{Lod, MeshRequest};
    let ids = segment_ids(a)?;
    let out = a.output.clone().ok_or_else(|| Error::invalid("mesh needs -o FILE.obj|.ply|.stl"))?;
    let path = std::path::Path::new(&out);
    cloudvolume::export::objects::MeshFormat::of_path(path)?;
    let lod = match a.named.get("lod").map(String::as_str) {
        None => Lod::Index(0),
        Some("-1") => Lod::Coarsest,
        Some(l) => {
            Lod::Index(l.parse().map_err(|_| Error::invalid(format!("--lod wants a level >= 0 or -1, got \"{l}\"")))?)
        }
    };
    let weld = match (a.named.contains_key("weld"), a.named.contains_key("no-weld")) {
        (true, true) => return Err(Error::invalid("--weld and --no-weld together")),
        (true, false) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    let vol = open(a)?;
    let m = vol.mesh(
        &ids,
        &MeshRequest { lod, weld, allow_missing: a.named.contains_key("allow-missing"), chunk_size: None },
    )?;
    cloudvolume::export::objects::save_mesh(&m, path)?;
    println!(
        "wrote {out}: {} vertices, {} triangles of segment(s) {}",
        m.vertices.len(),
        m.faces.len(),
        a.extra.join(", ")
    );
    Ok(())
}

fn skeleton(a: &Args) -> Result<(), Error> {
    let ids = segment_ids(a)?;
    let out = a.output.clone().ok_or_else(|| Error::invalid("skeleton needs -o FILE.swc"))?;
    let vol = open(a)?;
    let info = vol.skeleton_info()?;
    let s = vol.skeletons(&ids[..1], false)?.pop().flatten().ok_or_else(|| Error::not_found("no skeleton"))?;
    let scale = info.transform.map_or([1.0; 3], |t| [t[0], t[5], t[10]]);
    cloudvolume::export::objects::save_swc(&s, scale, std::path::Path::new(&out))?;
    println!("wrote {out}: {} vertices, {} edges of segment {}", s.vertices.len(), s.edges.len(), ids[0]);
    Ok(())
}

fn files(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("files needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let dir = std::path::PathBuf::from(a.output.clone().ok_or_else(|| Error::invalid("files needs -o DIR"))?);
    let vol = open(a)?;
    let files = vol.download_files(a.mip, &bbox, !a.named.contains_key("stored"))?;
    let key = &vol.scale(a.mip)?.key;
    let mut bytes = 0usize;
    for (name, data) in &files {
        // Chunk keys already start with the scale key; Morton codes do not.
        let rel = if name.contains('/') { name.clone() } else { format!("{key}/{name}") };
        if rel.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(Error::invalid(format!("refusing to write the chunk file name \"{rel}\"")));
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, data).map_err(|e| Error::io(format!("writing {}: {e}", path.display())))?;
        bytes += data.len();
    }
    println!("wrote {} file(s), {bytes} bytes, of box {bbox} into {}", files.len(), dir.display());
    Ok(())
}

fn mask(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("mask needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let output = a.output.clone().ok_or_else(|| Error::invalid("mask needs -o FILE"))?;
    let labels = numbers::<u64>(a, "labels", false)?.unwrap_or_default();
    let vol = open(a)?;
    let n = vol.cutout_len(&bbox)? / vol.info().data_type.size();
    let mut buf = vec![0u8; n];
    vol.label_mask_into(a.mip, &bbox, &labels, &mut buf)?;
    write_array(&output, &vol, a.mip, DataType::U8, &bbox, &buf)?;
    let on = buf.iter().filter(|&&b| b == 1).count();
    println!("wrote {output}: mask of box {bbox}, {on} of {n} voxel(s) set");
    Ok(())
}

fn cutout(a: &Args) -> Result<(), Error> {
    let output = a.output.clone().ok_or_else(|| Error::invalid("cutout needs -o FILE"))?;
    let vol = open(a)?;
    let bbox = command_box(a, &vol)?;
    if a.named.contains_key("renumber") {
        let r = vol.renumber(a.mip, &bbox)?;
        write_array(&output, &vol, a.mip, r.dtype, &bbox, &r.data)?;
        let list = format!("{output}.labels");
        let text: String = r.labels.iter().enumerate().map(|(v, l)| format!("{v} {l}\n")).collect();
        std::fs::write(&list, text).map_err(|e| Error::io(format!("writing {list}: {e}")))?;
        println!(
            "wrote {output}: box {bbox} renumbered to {} label(s) as {}; {list}: \"value label\" per line",
            r.labels.len() - 1,
            r.dtype.name()
        );
        return Ok(());
    }
    let total = vol.chunk_count(a.mip, &bbox)?;
    let done = AtomicUsize::new(0);
    let finished = AtomicBool::new(false);
    let show = a.progress.unwrap_or_else(|| is_tty(2)) && total > 1;
    let start = Instant::now();
    let result = std::thread::scope(|s| {
        if show {
            s.spawn(|| {
                let mut shown: Option<usize> = None;
                while !finished.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    // Only long cutouts get a bar.
                    if start.elapsed() < Duration::from_millis(300) {
                        continue;
                    }
                    let n = done.load(Ordering::Relaxed);
                    if shown == Some(n) {
                        continue;
                    }
                    let width = 40;
                    let filled = n * width / total.max(1);
                    eprint!(
                        "\r[{}{}] {n}/{total} chunks, {:.1}s",
                        "#".repeat(filled),
                        ".".repeat(width - filled),
                        start.elapsed().as_secs_f64()
                    );
                    shown = Some(n);
                }
                // The final line once: the last one shown, completed.
                match shown {
                    Some(n) if n == total => eprintln!(),
                    Some(_) => eprintln!(
                        "\r[{}] {total}/{total} chunks, {:.1}s",
                        "#".repeat(40),
                        start.elapsed().as_secs_f64()
                    ),
                    None => {}
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
    write_array(&output, &vol, a.mip, vol.info().data_type, &bbox, &buf)?;
    let s = bbox.shape();
    println!(
        "wrote {output}: box {bbox}, {}x{}x{} voxels x {} channel(s) of {} ({} bytes, {}) in {:.2} s",
        s[0],
        s[1],
        s[2],
        vol.info().num_channels,
        vol.info().data_type.name(),
        buf.len(),
        output_kind(&output),
        start.elapsed().as_secs_f64()
    );
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
    let bounds = vol.scale(a.mip)?.bounds();
    if vol.options().read.bounded && !bounds.contains(&bbox) {
        return Err(Error::out_of_bounds(format!(
            "{}: box {bbox} is outside the bounds {bounds} of mip {} (pass --unbounded to count only its inside)",
            vol.cloudpath(),
            a.mip
        )));
    }
    let found = vol.chunks_exist(a.mip, &bbox)?;
    let present = found.iter().filter(|f| f.1).count();
    for (b, p) in &found {
        println!("{} {b}", if *p { "present" } else { "missing" });
    }
    println!("{present} of {} chunk(s) present", found.len());
    Ok(())
}

fn has_data(a: &Args) -> Result<(), Error> {
    let found = open(a)?.has_data(a.mip)?;
    println!("mip {}: {}", a.mip, if found { "data" } else { "no data" });
    Ok(())
}

/// The aligned pair of `overlay`'s two layers, and its pictures.
fn overlay(a: &Args) -> Result<(), Error> {
    use cloudvolume::render::{grey8, overlay_png, OverlayOptions};
    use cloudvolume::volume::aligned::{aligned_cutout, bounds_from_center, AlignedRequest};
    let output = a.output.clone().ok_or_else(|| Error::invalid("overlay needs -o OUT.png"))?;
    let seg_url = a.extra.first().ok_or_else(|| Error::invalid("overlay needs SEG_URL"))?;
    let mut opts = a.options.clone();
    opts.entry("bounded").or_insert(false.into());
    opts.entry("fill_missing").or_insert(true.into());
    let text = serde_json::Value::Object(opts).to_string();
    let image = Volume::open(a.url.as_deref().unwrap_or_default(), Options::parse(Some(&text))?)?;
    let seg = Volume::open(seg_url, Options::parse(Some(&text))?)?;
    let bounds = match a.bbox {
        Some(b) => b,
        None => {
            let c = numbers::<i64>(a, "center", false)?.unwrap_or_default();
            let s = numbers::<i64>(a, "size", false)?.ok_or_else(|| Error::invalid("--center needs --size W,H[,D]"))?;
            if c.len() != 3 || !(2..=3).contains(&s.len()) {
                return Err(Error::invalid("--center wants X,Y,Z and --size W,H or W,H,D"));
            }
            bounds_from_center([c[0], c[1], c[2]], [s[0], s[1], s.get(2).copied().unwrap_or(1)])
        }
    };
    let mip = |flag: &str| -> Result<Option<u32>, Error> {
        Ok(match numbers::<u32>(a, flag, false)? {
            None => None,
            Some(v) if v.len() == 1 => Some(v[0]),
            Some(_) => return Err(Error::invalid(format!("--{flag} wants one mip"))),
        })
    };
    let one = |flag: &str, default: f64| -> Result<f64, Error> {
        match a.named.get(flag) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| Error::invalid(format!("--{flag} wants a number, got \"{v}\""))),
        }
    };
    let req = AlignedRequest {
        bounds,
        resolution: numbers::<f64>(a, "resolution", true)?.map(|v| [v[0], v[1], v[2]]),
        image_mip: mip("image-mip")?,
        segmentation_mip: mip("seg-mip")?,
        root_ids: numbers::<u64>(a, "root-ids", false)?,
        scale_to_bounds: a.named.contains_key("scale-to-bounds"),
    };
    let style = OverlayOptions { alpha: one("alpha", 0.5)? as f32, outline: one("outline", 0.0)? as u32 };
    let cut = aligned_cutout(&image, &seg, &req)?;
    let [w, h, d] = cut.grid.shape();
    let plane = w * h;
    let dtype = image.info().data_type;
    let item = dtype.size();
    let mut written = Vec::new();
    for z in 0..d {
        let grey = grey8(&cut.image[z * plane * item..(z + 1) * plane * item], dtype, plane);
        let png = overlay_png(&grey, &cut.segmentation[z * plane..(z + 1) * plane], w, h, &style)?;
        let path = if d == 1 {
            output.clone()
        } else {
            let stem = output.strip_suffix(".png").unwrap_or(&output);
            format!("{stem}_z{:04}.png", cut.grid.bbox.lo[2] + z as i64)
        };
        std::fs::write(&path, png).map_err(|e| Error::io(format!("writing {path}: {e}")))?;
        written.push(path);
    }
    if let Some(f) = a.named.get("seg-out") {
        let bytes: Vec<u8> = cut.segmentation.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = npy_header(DataType::U64, [w, h, d, 1]);
        out.extend_from_slice(&bytes);
        std::fs::write(f, out).map_err(|e| Error::io(format!("writing {f}: {e}")))?;
    }
    let ids = cloudvolume::volume::aligned::segment_ids(&cut.segmentation, false);
    println!(
        "wrote {} ({w}x{h} px, {} slice(s)): box {} at {:?} nm, image mip {}, segmentation mip {}, {} segment(s)",
        written.join(", "),
        d,
        cut.grid.bbox,
        cut.grid.resolution,
        cut.grid.image_mip,
        cut.grid.segmentation_mip,
        ids.len()
    );
    Ok(())
}

fn dvid_repo(a: &Args) -> Result<(), Error> {
    let server = a.url.as_deref().unwrap_or_default();
    let text = serde_json::Value::Object(a.options.clone()).to_string();
    let alias = a.named.get("alias").map_or("", String::as_str);
    let description = a.named.get("description").map_or("", String::as_str);
    let uuid = cloudvolume::volume::create_dvid_repo(server, alias, description, &Options::parse(Some(&text))?)?;
    println!("{uuid}");
    Ok(())
}

fn triple<T: std::str::FromStr>(a: &Args, name: &str, default: Option<[T; 3]>) -> Result<[T; 3], Error> {
    let Some(v) = a.named.get(name) else {
        return default.ok_or_else(|| Error::invalid(format!("missing --{name} X,Y,Z")));
    };
    let parts: Vec<T> = v
        .split(',')
        .map(|p| p.trim().parse::<T>())
        .collect::<Result<_, _>>()
        .map_err(|_| Error::invalid(format!("--{name} wants three numbers X,Y,Z, got \"{v}\"")))?;
    <[T; 3]>::try_from(parts).map_err(|_| Error::invalid(format!("--{name} wants three numbers X,Y,Z, got \"{v}\"")))
}

fn create(a: &Args) -> Result<(), Error> {
    use cloudvolume::format::{Encoding, LayerType};
    let url = a.url.as_deref().ok_or_else(|| Error::invalid("missing URL"))?;
    let dt_name = a.named.get("dtype").ok_or_else(|| Error::invalid("create needs --dtype"))?;
    let data_type = DataType::parse(dt_name).ok_or_else(|| Error::invalid(format!("unknown --dtype \"{dt_name}\"")))?;
    let layer_type = match a.named.get("type").map(String::as_str) {
        None => {
            if matches!(data_type, DataType::U32 | DataType::U64) {
                LayerType::Segmentation
            } else {
                LayerType::Image
            }
        }
        Some("image") => LayerType::Image,
        Some("segmentation") => LayerType::Segmentation,
        Some(t) => return Err(Error::invalid(format!("--type \"{t}\" is neither image nor segmentation"))),
    };
    let enc_name = a.named.get("encoding").map_or("raw", String::as_str);
    let encoding =
        Encoding::parse(enc_name).ok_or_else(|| Error::invalid(format!("unknown --encoding \"{enc_name}\"")))?;
    if cloudvolume::codec::codec_for(encoding).is_none() {
        return Err(Error::unsupported(format!(
            "--encoding {enc_name}: this library cannot write (or read) {enc_name} chunks yet; use raw, jpeg, png or compressed_segmentation"
        )));
    }
    let num_channels: u32 = a
        .named
        .get("channels")
        .map_or(Ok(1), |c| c.parse())
        .map_err(|_| Error::invalid("--channels wants an integer"))?;
    let p = cloudvolume::volume::NewInfo {
        layer_type,
        data_type,
        encoding,
        num_channels,
        resolution: triple(a, "resolution", Some([1.0, 1.0, 1.0]))?,
        voxel_offset: triple(a, "offset", Some([0, 0, 0]))?,
        size: triple(a, "size", None)?,
        chunk_size: triple(a, "chunk", Some([64, 64, 64]))?,
        cseg_block_size: None,
    };
    let info = cloudvolume::volume::new_info(&p)?;
    let text = serde_json::Value::Object(a.options.clone()).to_string();
    Volume::create(url, &info.to_string(), Options::parse(Some(&text))?)?;
    println!("{}", serde_json::to_string_pretty(&info).unwrap_or_default());
    Ok(())
}

/// Read a raw file, or a .npy (Fortran or C order, transposed to Fortran order here).
fn read_input(path: &str, vol: &Volume, bbox: &Bbox) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {path}: {e}")))?;
    if !path.ends_with(".npy") {
        return Ok(bytes);
    }
    let bad = |m: &str| Error::invalid(format!("{path}: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    let descr = header.split("'descr':").nth(1).and_then(|r| r.split('\'').nth(1)).ok_or_else(|| bad("no descr"))?;
    let dt = vol.info().data_type;
    let want_kind = match dt {
        DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => 'u',
        DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64 => 'i',
        DataType::F32 | DataType::F64 => 'f',
    };
    let size: usize = descr[2..].parse().map_err(|_| bad("unknown dtype"))?;
    if descr.as_bytes()[1] as char != want_kind || size != dt.size() || descr.starts_with('>') {
        return Err(bad(&format!("dtype {descr} does not match the layer's {} (little-endian)", dt.name())));
    }
    let fortran = header.contains("'fortran_order': True");
    let shape_txt = header
        .split("'shape':")
        .nth(1)
        .and_then(|r| r.split('(').nth(1))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("bad shape"))?;
    let data = bytes[start + hlen..].to_vec();
    let s = bbox.shape().map(|v| v as usize);
    let nc = vol.info().num_channels as usize;
    let mut dims = shape.clone();
    if dims.len() == 3 {
        dims.push(1);
    }
    if dims != [s[0], s[1], s[2], nc] {
        return Err(bad(&format!("shape {shape:?} does not match the box {bbox} with {nc} channel(s)")));
    }
    if fortran || dims.iter().filter(|&&d| d > 1).count() <= 1 {
        return Ok(data);
    }
    // C order: the last axis (channel) is fastest. Transpose to Fortran order.
    let item = dt.size();
    let mut out = vec![0u8; data.len()];
    for x in 0..s[0] {
        for y in 0..s[1] {
            for z in 0..s[2] {
                for c in 0..nc {
                    let ci = (((x * s[1] + y) * s[2] + z) * nc + c) * item;
                    let fi = (((c * s[2] + z) * s[1] + y) * s[0] + x) * item;
                    out[fi..fi + item].copy_from_slice(&data[ci..ci + item]);
                }
            }
        }
    }
    Ok(out)
}

fn upload(a: &Args) -> Result<(), Error> {
    let file = a.extra.first().ok_or_else(|| Error::invalid("upload needs a FILE (raw or .npy)"))?;
    let bbox = a.bbox.ok_or_else(|| Error::invalid("upload needs --bbox x0,y0,z0,x1,y1,z1"))?;
    let vol = open(a)?;
    let data = read_input(file, &vol, &bbox)?;
    vol.write_from(a.mip, &bbox, &data)
}

fn add_scale(a: &Args) -> Result<(), Error> {
    let vol = open(a)?;
    let factor = triple(a, "factor", None)?;
    let chunk = if a.named.contains_key("chunk") { Some(triple(a, "chunk", None)?) } else { None };
    let (_, mip) = vol.add_scale(factor, chunk)?;
    println!("mip {mip}");
    Ok(())
}

fn delete(a: &Args) -> Result<(), Error> {
    let bbox = a.bbox.ok_or_else(|| Error::invalid("delete needs --bbox x0,y0,z0,x1,y1,z1"))?;
    open(a)?.delete_box(a.mip, &bbox)
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cloudvolume info URL | head`), as Unix tools do.
    // SAFETY: restoring the default disposition of a signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let a = match parse_args() {
        Ok(Invocation::Run(a)) => *a,
        Ok(Invocation::Print(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(u) => {
            let hint = match &u.command {
                Some(c) => format!("see \"cloudvolume {c} --help\""),
                None => "see \"cloudvolume --help\"".to_string(),
            };
            eprintln!("cloudvolume: {} ({hint})", u.message);
            return ExitCode::from(2);
        }
    };
    let r = match a.cmd.as_str() {
        "info" => open(&a).map(|v| {
            println!("{}", serde_json::to_string_pretty(&v.info().json).unwrap_or_default());
        }),
        "cutout" => cutout(&a),
        "points" => points(&a),
        "unique" => unique(&a),
        "mask" => mask(&a),
        "files" => files(&a),
        "exists" => exists(&a),
        "has-data" => has_data(&a),
        "overlay" => overlay(&a),
        "dvid-repo" => dvid_repo(&a),
        "mesh" => mesh(&a),
        "skeleton" => skeleton(&a),
        "create" => create(&a),
        "upload" => upload(&a),
        "add-scale" => add_scale(&a),
        "delete" => delete(&a),
        _ => {
            println!("cloudvolume {}", cloudvolume::VERSION);
            Ok(())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudvolume: error: {}", cli_hints(e.message()));
            ExitCode::FAILURE
        }
    }
}
