# Tests of the Julia binding against layers it creates itself (through the library) in a
# temporary directory. Needs a built library: `cargo build --release` in the repository (or
# ENV["CLOUDVOLUME_LIB"]). Run with
#     julia --project=bindings/julia/CloudVolume -e 'using Pkg; Pkg.test()'

using CloudVolume
using Test

const CV = CloudVolume

# The layer: uint16, 2 channels, offset (-3, 5, 10), size (50, 40, 20), chunks (16, 16, 8),
# so edge chunks are clipped on every axis.
const OFFSET = [-3, 5, 10]
const SIZE = [50, 40, 20]
const CHUNK = [16, 16, 8]
const HI = OFFSET .+ SIZE .- 1          # inclusive last voxel: (46, 44, 29)
const ALL = (OFFSET[1]:HI[1], OFFSET[2]:HI[2], OFFSET[3]:HI[3])

new_info(; channels = 2, dtype = "uint16", encoding = "raw") =
    CV.create_new_info(channels, "image", dtype, encoding, [4.0, 4.0, 40.0], OFFSET, SIZE; chunk_size = CHUNK)

function expect_error(f, code)
    try
        f()
    catch e
        e isa CloudVolumeError || rethrow()
        @test e.code == code
        return e
    end
    @test false   # no error was thrown
    return nothing
end

root = mktempdir()
url(name) = "file://" * joinpath(root, name)

# Aligned image + segmentation cutouts against the imagery fixture (tests/reference/
# imagery_check.py: ImageryClient's outputs, and a model's where ImageryClient's scipy zoom
# parts from physical alignment), at $CV_REFERENCE_DIR/imagery (else <repo>/target/reference).
# Only the cases on the Precomputed watershed layer ("ws"); the graphene ones need a server.
const REFERENCE = let r = get(ENV, "CV_REFERENCE_DIR", "")
    isempty(r) ? joinpath(CV.REPO_ROOT, "target", "reference") : r
end
const IMAGERY = joinpath(REFERENCE, "imagery")

# The service doubles scripts/test_octave.sh starts (and a runner of these tests would start the
# same way): CV_DVID_SERVER = 127.0.0.1:PORT of tests/servers/dvid.py; CV_BOSS_URL_BASE =
# boss://http://127.0.0.1:PORT/col/exp of tests/servers/boss.py --token $CV_BOSS_TOKEN, set up by
# `tests/reference/boss_intern.py setup PORT TOKEN $CV_BOSS_INTERN_DIR` (intern's cutouts and
# manifest.json); CV_OCP_SERVER = 127.0.0.1:PORT of tests/servers/ocp.py, set up by
# `tests/reference/ocp_h5py.py setup PORT $CV_OCP_H5PY_DIR` (h5py's cutouts and manifest.json).
# Unset: skipped, unless CV_REQUIRE_SERVICES=1.
const DVID = get(ENV, "CV_DVID_SERVER", "")
const OCP = get(ENV, "CV_OCP_SERVER", "")
const OCP_DIR = get(ENV, "CV_OCP_H5PY_DIR", "")
const BOSS = get(ENV, "CV_BOSS_URL_BASE", "")
const BOSS_TOKEN = get(ENV, "CV_BOSS_TOKEN", "")
const BOSS_DIR = get(ENV, "CV_BOSS_INTERN_DIR", "")
# graphene:// meshes: CV_GRAPHENE_MESH_URL = graphene://http://127.0.0.1:PORT/segmentation/table of
# tests/servers/chunkedgraph.py --fixture $CV_GRAPHENE_MESH_DIR --token <the manifest's token>, the
# fixture tests/reference/graphene_meshes.py writes (cloud-volume's reads through the same double).
const GMESH_URL = get(ENV, "CV_GRAPHENE_MESH_URL", "")
const GMESH_DIR = get(ENV, "CV_GRAPHENE_MESH_DIR", "")
function skip_service(what, var)
    get(ENV, "CV_REQUIRE_SERVICES", "") == "1" &&
        error("CV_REQUIRE_SERVICES=1 but $(var) is not set: start the $(what) double (see scripts/test_octave.sh)")
    @info "SKIP: $(var) is not set (the $(what) double)"
end

# The box lo:hi (inclusive ranges) of `a` written at `wlo`: a's voxels where they meet, 0 elsewhere.
function expected_box(a::Array{T,4}, wlo, box) where {T}
    out = zeros(T, length.(box)..., size(a, 4))
    src = ntuple(d -> max(first(box[d]), wlo[d]):min(last(box[d]), wlo[d] + size(a, d) - 1), 3)
    any(isempty, src) && return out
    out[ntuple(d -> src[d] .- first(box[d]) .+ 1, 3)..., :] = a[ntuple(d -> src[d] .- wlo[d] .+ 1, 3)..., :]
    return out
end

# The library's blend (alpha as a Float32, widened; Rust's round: half away from zero).
blend(g, c, alpha) = map(v -> UInt8(round(Float64(g) * (1 - Float64(Float32(alpha))) +
                                          Float64(v) * Float64(Float32(alpha)), RoundNearestTiesAway)), c)

# The palette of src/render.rs, written out here: a hue and saturation hashed from the id.
function palette(id::UInt64)
    z = id + 0x9E3779B97F4A7C15
    z = (z ⊻ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ⊻ (z >> 27)) * 0x94D049BB133111EB
    h = z ⊻ (z >> 31)
    hue = Float64(h >> 11) / Float64(UInt64(1) << 53) * 6.0
    sat = 0.6 + 0.4 * Float64(h & 0xff) / 255.0
    sector = floor(hue)
    f = hue - sector
    p, q, t = 1.0 - sat, 1.0 - sat * f, 1.0 - sat * (1.0 - f)
    rgb = sector == 0 ? (1.0, t, p) : sector == 1 ? (q, 1.0, p) : sector == 2 ? (p, 1.0, t) :
          sector == 3 ? (p, q, 1.0) : sector == 4 ? (t, p, 1.0) : (1.0, p, q)
    return map(c -> UInt8(round(c * 255.0, RoundNearestTiesAway)), rgb)
end

# Meshes and skeletons against the fixture tests/meshes.rs reads: tests/reference/make_meshes.py
# writes legacy, multi-resolution (sharded and not) and skeleton layers, and records what
# cloud-volume 12.15.2 returns from them as .npy files, in $CV_REFERENCE_DIR/meshes/manifest.json
# (schema in its "schema" member; else <repo>/target/reference/meshes).
const MESHES = joinpath(REFERENCE, "meshes")

const NPY_TYPES = Dict("<f4" => Float32, "<f8" => Float64, "|u1" => UInt8, "<u1" => UInt8, "|i1" => Int8,
                       "<i1" => Int8, "<u2" => UInt16, "<i2" => Int16, "<u4" => UInt32, "<i4" => Int32,
                       "<u8" => UInt64, "<i8" => Int64)

# A .npy file as an Array of numpy's shape ((N,) a Vector, (N, k) an N×k Matrix), C or Fortran
# order.
function read_npy(path)
    b = read(path)
    b[1:6] == [0x93; Vector{UInt8}("NUMPY")] || error("$(path): not a .npy file")
    hlen, start = b[7] == 1 ? (Int(b[9]) | Int(b[10]) << 8, 11) :
                              (Int(ltoh(reinterpret(UInt32, b[9:12])[1])), 13)
    header = String(b[start:start+hlen-1])
    descr = match(r"'descr':\s*'([^']*)'", header)[1]
    fortran = occursin(r"'fortran_order':\s*True", header)
    dims = Tuple(parse(Int, s) for s in strip.(split(match(r"'shape':\s*\(([^)]*)\)", header)[1], ",")) if !isempty(s))
    data = ltoh.(collect(reinterpret(NPY_TYPES[descr], b[start+hlen:end])))
    length(data) == prod(dims) || error("$(path): $(length(data)) values for the shape $(dims)")
    length(dims) == 1 && return data
    length(dims) == 2 || error("$(path): shape $(dims)")
    return fortran ? reshape(data, dims) : permutedims(reshape(data, reverse(dims)))
end

# Arrays equal bit for bit (floats by their bits, so -0.0 != 0.0 and NaNs compare).
bits(a::AbstractArray{Float32}) = reinterpret(UInt32, a)
bits(a::AbstractArray{Float64}) = reinterpret(UInt64, a)
bits(a::AbstractArray) = a
same_bits(a, b) = eltype(a) == eltype(b) && size(a) == size(b) && bits(a) == bits(b)

# A call's result, or the CloudVolumeError it threw.
function attempt(f)
    try
        return f(), nothing
    catch e
        e isa CloudVolumeError || rethrow()
        return nothing, e
    end
end

bump!(counts, k) = (counts[k] = get(counts, k, 0) + 1; nothing)

# A mesh equals a recorded cloud-volume mesh: vertices bit for bit, faces in the same order
# (cloud-volume's from 0, ours from 1).
function same_mesh(item, got, what)
    v = read_npy(joinpath(MESHES, item["vertices"]))
    f = read_npy(joinpath(MESHES, item["faces"]))
    ok = same_bits(got.vertices, v) && size(got.faces) == size(f) && got.faces == f .+ UInt32(1)
    ok || @warn "differs from cloud-volume: $(what)" size(got.vertices) size(v) size(got.faces) size(f)
    return ok
end

# One recorded `vol.mesh.get(...)`, as tests/meshes.rs checks it.
function check_mesh_read(vol, r, ids, counts)
    kw = r["kwargs"]
    what = "$(r["layer"]): $(r["python"])"
    # concat=False: cloud-volume's lists of fragments, not meshes.
    haskey(kw, "concat") && return bump!(counts, "skipped: concat=False (fragment lists)")
    lod = Int(get(kw, "lod", 0))                      # -1: the coarsest
    weld = get(kw, "remove_duplicate_vertices", nothing)
    cs = get(kw, "chunk_size", nothing)
    fuse = get(kw, "fuse", true)
    bad = get(r, "bad", false) === true
    multilod = mesh_info(vol)["@type"] != "neuroglancer_legacy_mesh"
    read_one() = mesh(vol, ids; lod = lod, weld = weld, chunk_size = cs, allow_missing = false)
    read_each() = meshes(vol, ids; lod = lod, weld = weld, chunk_size = cs, allow_missing = false)
    if haskey(r, "error")
        ty = r["error"]["type"]
        _, err = attempt(multilod ? read_each : read_one)
        if ty == "AttributeError"
            # cloud-volume's unsharded lod=-1 crashes (exceptions.ValueError does not exist);
            # here it is the coarsest lod.
            @test err === nothing
            return bump!(counts, "cloud-volume crashed, ours reads")
        end
        if occursin("need at least one array", r["error"]["message"])
            # A manifest listing no fragments: numpy cannot concatenate nothing; here it is an
            # empty mesh.
            m = read_one()
            @test isempty(m.vertices) && isempty(m.faces)
            return bump!(counts, "cloud-volume crashed, ours reads")
        end
        @test err !== nothing
        err === nothing && return @warn "no error: $(what)"
        want = if ty in ("ValueError", "TypeError", "MeshMissingError") && !bad
            CV.CV_ERR_NOT_FOUND
        elseif ty == "MeshDecodeError" && !bad
            CV.CV_ERR_INVALID_ARGUMENT                    # a lod the mesh lacks
        else
            nothing
        end
        if want === nothing
            @test err.code in (CV.CV_ERR_DECODE, CV.CV_ERR_NOT_FOUND)
        else
            @test err.code == want
        end
        @test !isempty(err.message)
        return bump!(counts, "errors")
    end
    out = r["outputs"]
    items = out["items"]
    if bad && isempty(items)
        # The lod lies past the end of a short data file: cloud-volume returns nothing,
        # silently; here it is an error naming the file.
        _, err = attempt(read_each)
        @test err !== nothing && err.code == CV.CV_ERR_DECODE &&
              (occursin("past the end", err.message) || occursin("ends at", err.message))
        return bump!(counts, "cloud-volume silent, ours refuses")
    end
    if out["result_type"] == "Mesh"
        @test fuse
        m = read_one()
        @test m.segid == (length(ids) == 1 ? ids[1] : nothing)
        @test same_mesh(items[1], m, what)
    else
        # Per id: legacy fuse=False (never welded) or multi-resolution.
        got = meshes(vol, ids; lod = lod, weld = fuse ? weld : false, chunk_size = cs, allow_missing = false)
        @test length(got) == length(ids)
        recorded = UInt64[UInt64(k) for k in out["keys"]]
        for (id, m) in zip(ids, got)
            @test m !== nothing && m.segid == id
            m === nothing && continue
            k = findfirst(it -> it["segid"] !== nothing && UInt64(it["segid"]) == id, items)
            if k === nothing
                # cloud-volume leaves out an id whose lod has no fragment data.
                @test !(id in recorded)
                @test isempty(m.vertices) && isempty(m.faces)
            else
                @test same_mesh(items[k], m, "$(what) [$(id)]")
            end
        end
    end
    bump!(counts, multilod ? "multi-resolution reads" : "legacy reads")
end

# One recorded `vol.skeleton.get(...)`.
function check_skeleton_read(vol, r, ids, counts)
    what = "$(r["layer"]): $(r["python"])"
    if haskey(r, "error")
        _, err = attempt(() -> skeletons(vol, ids; allow_missing = false))
        if r["error"]["type"] == "KeyError"
            # cloud-volume requires a transform; an info without one reads here with the identity.
            @test err === nothing || occursin("ends inside", err.message)
            return bump!(counts, "cloud-volume KeyError, ours reads")
        end
        @test err !== nothing && err.code in (CV.CV_ERR_DECODE, CV.CV_ERR_NOT_FOUND)
        return bump!(counts, "errors")
    end
    items = r["outputs"]["items"]
    short = !isempty(items) && any(a -> a["shape"][1] != items[1]["vertex_count"], values(items[1]["attributes"]))
    if (r["layer"] == "bad/skeletons" && ids == [101]) || short
        # An edge past the vertices, or an attribute with fewer values than vertices:
        # cloud-volume hands them on; here they are refused.
        _, err = attempt(() -> skeletons(vol, ids))
        @test err !== nothing && err.code == CV.CV_ERR_DECODE &&
              (occursin("vertex 75 of 50", err.message) || occursin("ends inside", err.message))
        return bump!(counts, "cloud-volume silent, ours refuses")
    end
    got = skeletons(vol, ids)
    @test length(got) == length(ids)
    for it in items
        id = UInt64(it["segid"])
        s = got[findfirst(==(id), ids)]
        @test s !== nothing && s.segid == id
        s === nothing && continue
        ok = same_bits(s.vertices, read_npy(joinpath(MESHES, it["vertices"])))
        ok || @warn "vertices differ: $(what) [$(id)]"
        @test ok
        @test s.edges == read_npy(joinpath(MESHES, it["edges"])) .+ UInt32(1)
        attrs = it["attributes"]
        @test length(s.attributes) == length(attrs)
        for (name, a) in attrs
            ours = get(s.attributes, Symbol(name), nothing)
            ok = ours !== nothing && same_bits(ours, read_npy(joinpath(MESHES, a["file"])))
            ok || @warn "attribute $(name) differs: $(what) [$(id)]"
            @test ok
        end
    end
    bump!(counts, "skeleton reads")
end

# One recorded `vol.mesh.exists(...)`: our mesh_lods succeeds exactly for the ids it found.
function check_exists(vol, r, ids, counts)
    layer = r["layer"]
    value = r["outputs"]["value"]
    for (k, id) in enumerate(ids)
        # A dict {id: path or null}, or (sharded multi-resolution) a list of manifests or nulls.
        there = value isa AbstractVector ? value[k] !== nothing : get(value, string(id), nothing) !== nothing
        n, err = attempt(() -> mesh_lods(vol, id))
        # cloud-volume's unsharded multi-resolution exists() looks in the process's working
        # directory (a bug): it says false for every id.
        if there || !startswith(layer, "multilod") || layer == "multilod_sharded"
            @test (err === nothing) == there
            err === nothing || @test err.code == CV.CV_ERR_NOT_FOUND
        end
        err === nothing && @test n == (startswith(layer, "multilod") ? 3 : 1)
    end
    bump!(counts, "exists")
end

# OBJ: the "v x y z" and "f a b c" lines (1-based) as N×3 Float64 and M×3 UInt32.
function parse_obj(text)
    vs, fs = Vector{Float64}[], Vector{UInt32}[]
    for line in split(text, '\n')
        w = split(line)
        isempty(w) && continue
        w[1] == "v" && push!(vs, parse.(Float64, w[2:4]))
        w[1] == "f" && push!(fs, parse.(UInt32, first.(split.(w[2:4], "/"))))
    end
    return (isempty(vs) ? zeros(Float64, 0, 3) : permutedims(reduce(hcat, vs)),
            isempty(fs) ? zeros(UInt32, 0, 3) : permutedims(reduce(hcat, fs)))
end

# cloud-volume's binary little-endian PLY: float x y z per vertex, (3, int i j k) per face.
function parse_ply(b::Vector{UInt8})
    text = String(copy(b))
    stop = last(findfirst("end_header\n", text))
    header = text[1:stop]
    nv = parse(Int, match(r"element vertex (\d+)", header)[1])
    nf = parse(Int, match(r"element face (\d+)", header)[1])
    @test length(b) == stop + 12 * nv + 16 * nf
    v = permutedims(reshape(ltoh.(collect(reinterpret(Float32, b[stop+1:stop+12*nv]))), 3, nv))
    f = reshape(ltoh.(collect(reinterpret(Int32, b[stop+12*nv+1:end]))), 4, nf)
    @test all(==(3), f[1, :])
    return v, permutedims(UInt32.(f[2:4, :]) .+ UInt32(1))
end

# Binary STL: (normal, 3 corners) per triangle, as an M×3×3 array of corners (triangle, corner, xyz).
function parse_stl(b::Vector{UInt8})
    n = Int(ltoh(reinterpret(UInt32, b[81:84])[1]))
    @test length(b) == 84 + 50 * n
    out = Array{Float32,3}(undef, n, 3, 3)
    for k in 1:n, c in 1:3
        at = 84 + 50 * (k - 1) + 12 + 12 * (c - 1)
        out[k, c, :] = ltoh.(reinterpret(Float32, b[at+1:at+12]))
    end
    return out
end

# An SWC file as a forest, whatever its roots: the rows' (type, x, y, z, radius), and each
# parent link as an undirected pair of positions; both sorted (tests/meshes.rs's swc_tree).
swc_rows(text) = [split(l, ' ') for l in split(text, '\n') if !startswith(l, "#") && !isempty(strip(l))]
function swc_tree(text)
    rows = swc_rows(text)
    by_n = Dict(r[1] => r for r in rows)
    nodes = sort([join(r[2:6], " ") for r in rows])
    links = Tuple{String,String}[]
    for r in rows
        p = get(by_n, r[7], nothing)
        p === nothing && continue
        a, b = join(r[3:5], " "), join(p[3:5], " ")
        push!(links, a < b ? (a, b) : (b, a))
    end
    return nodes, sort(links)
end
function swc_scale(text)
    lines = filter(l -> startswith(l, "# SCALE"), split(text, '\n'))
    return isempty(lines) ? nothing : only(lines)
end

@testset "CloudVolume.jl binding" begin

@testset "library" begin
    @test isfile(CV.libcloudvolume()) || !isempty(CV.libcloudvolume())
    @test CV.version() isa VersionNumber
    @test all(x -> x isa String, CV.library_candidates())
end

@testset "create and metadata" begin
    info0 = new_info()
    @test info0["data_type"] == "uint16" && info0["num_channels"] == 2
    vol = CloudVolumeWrapper(url("a"); info = info0)
    @test isopen(vol)
    @test size(vol) == (50, 40, 20, 2)
    @test size(vol, 4) == 2
    @test offset(vol) == OFFSET
    @test chunks(vol) == CHUNK
    @test resolution(vol) == [4.0, 4.0, 40.0]
    @test scale(vol) == 0
    i = info(vol)
    @test i isa Dict && i["type"] == "image" && i["scales"][1]["size"] == SIZE
    @test flush(vol) === nothing
    @test provenance(vol)["sources"] == []
    @test isfile(joinpath(root, "a", "info"))
    # The same info again opens the layer; a different one is refused.
    close(CloudVolumeWrapper(url("a"); info = info0))
    @test_throws ArgumentError CloudVolumeWrapper(url("a"); info = new_info(channels = 1))
    p = Dict("description" => "test", "sources" => ["x"])
    @test provenance(CloudVolumeWrapper(url("a"); provenance = p)) === p
    close(vol)
    close(vol)   # idempotent
    @test !isopen(vol)
    @test_throws ArgumentError size(vol)
    @test occursin("closed", sprint(show, vol))
end

data = reshape(UInt16.(mod.(1:(50*40*20*2), 65521)), 50, 40, 20, 2)

@testset "writes and reads" begin
    vol = CloudVolumeWrapper(url("a"))
    vol[ALL..., :] = data                       # the whole volume: aligned
    @test vol[ALL...] == data[:, :, :, 1]       # 3 ranges: channel 0, as CloudVolume.jl
    @test vol[ALL...] isa Array{UInt16,3}
    @test vol[ALL..., :] == data                # every channel
    @test vol[ALL..., 1:1] == data[:, :, :, 2:2]
    @test vol[ALL..., 0:1] == data
    @test_throws ArgumentError vol[ALL..., 0:2]
    # Absolute coordinates, inclusive stops, no index shift.
    @test vol[0:9, 6:8, 12:12] == data[4:13, 2:4, 3:3, 1]
    @test vol[0:9, 6:8, 12] == data[4:13, 2:4, 3, 1]
    @test vol[0:9, 6:8, 12] isa Array{UInt16,2}
    @test vol[-3:-3, 5:5, 10:10] == data[1:1, 1:1, 1:1, 1]
    @test vol[46:46, 44:44, 29:29, :] == data[50:50, 40:40, 20:20, :]
    @test size(vol[0:-1, 5:6, 10:11]) == (0, 2, 2)
    # An aligned chunk, then a chunk at the far edge (clipped).
    blk = fill(UInt16(7), 16, 16, 8, 2)
    vol[13:28, 21:36, 18:25, :] = blk
    @test vol[13:28, 21:36, 18:25, :] == blk
    edge = fill(UInt16(9), 2, 8, 4, 2)
    vol[45:46, 37:44, 26:29, :] = edge
    @test vol[45:46, 37:44, 26:29, :] == edge
    # Off-grid writes need non_aligned_writes.
    e = expect_error(() -> (vol[0:3, 6:7, 11:12, :] = zeros(UInt16, 4, 2, 2, 2)), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("non_aligned_writes", e.message) || occursin("align", e.message)
    vna = CloudVolumeWrapper(url("a"); non_aligned_writes = true)
    before = vna[ALL..., :]
    vna[0:3, 6:7, 11:12, :] = ones(UInt16, 4, 2, 2, 2)
    after = vna[ALL..., :]
    @test after[4:7, 2:3, 2:3, :] == ones(UInt16, 4, 2, 2, 2)
    after[4:7, 2:3, 2:3, :] .= before[4:7, 2:3, 2:3, :]
    @test after == before
    # Element type and shape must match.
    @test_throws ArgumentError (vol[ALL..., :] = Float32.(data))
    @test_throws DimensionMismatch (vol[ALL..., :] = data[1:49, :, :, :])
    @test_throws DimensionMismatch (vol[ALL...] = data[:, :, :, 1])   # 2 channels need 4-D
    @test_throws ArgumentError (vol[ALL..., 1:1] = data[:, :, :, 2:2])
    vol[ALL..., :] = data
    close(vna)
    close(vol)
end

@testset "one channel, 3-D writes, 2-D slices" begin
    CloudVolumeWrapper(url("one"); info = new_info(channels = 1, dtype = "float32")) do vol
        a = rand(Float32, SIZE...)
        vol[ALL...] = a
        @test vol[ALL...] == a
        @test vol[ALL..., :] == reshape(a, SIZE..., 1)
        s = rand(Float32, 50, 40)
        vna = CloudVolumeWrapper(url("one"); non_aligned_writes = true)
        vna[ALL[1], ALL[2], 12] = s
        @test vol[ALL[1], ALL[2], 12] == s
        close(vna)
    end
end

@testset "every data type" begin
    for (name, T) in [("uint8", UInt8), ("int8", Int8), ("uint16", UInt16), ("int16", Int16),
                      ("uint32", UInt32), ("int32", Int32), ("uint64", UInt64), ("int64", Int64),
                      ("float32", Float32), ("float64", Float64)]
        CloudVolumeWrapper(url("t_" * name); info = new_info(channels = 1, dtype = name)) do vol
            a = rand(T, SIZE...)
            vol[ALL...] = a
            @test vol[ALL...] == a
            @test eltype(vol[0:1, 5:6, 10:11]) == T
        end
    end
end

@testset "edges: bounds, autocrop, missing chunks" begin
    vol = CloudVolumeWrapper(url("a"))
    e = expect_error(() -> vol[-4:0, 5:6, 10:11], CV.CV_ERR_OUT_OF_BOUNDS)
    @test !isempty(e.message)
    ub = CloudVolumeWrapper(url("a"); bounded = false)
    a = ub[-5:-2, 5:6, 10:10]
    @test size(a) == (4, 2, 1)
    @test all(a[1:2, :, :] .== 0)
    @test a[3:4, :, :] == data[1:2, 1:2, 1:1, 1]
    ac = CloudVolumeWrapper(url("a"); bounded = false, autocrop = true)
    @test ac[-10:0, 5:6, 10:10] == data[1:4, 1:2, 1:1, 1]
    @test size(ac[100:110, 5:6, 10:10]) == (0, 2, 1)
    # Delete the first chunk: it then reads as missing.
    c0 = (-3:12, 5:20, 10:17)
    ex = exists(vol, c0...)
    @test ex == Dict("4_4_40/-3-13_5-21_10-18" => true)
    @test length(exists(vol, ALL...)) == 4 * 3 * 3
    delete!(vol, c0...)
    @test exists(vol, c0...) == Dict("4_4_40/-3-13_5-21_10-18" => false)
    @test count(values(exists(vol, ALL...))) == 4 * 3 * 3 - 1
    e = expect_error(() -> vol[c0...], CV.CV_ERR_NOT_FOUND)
    @test occursin("-3-13_5-21_10-18", e.message)
    fm = CloudVolumeWrapper(url("a"); fill_missing = true)
    @test all(fm[c0...] .== 0)
    @test fm[13:28, 5:20, 10:17] == data[17:32, 1:16, 1:8, 1]
    vol[c0..., :] = data[1:16, 1:16, 1:8, :]
    @test vol[ALL..., :] == data
    foreach(close, (vol, ub, ac, fm))
end

@testset "upload_from_shared_memory" begin
    vol = CloudVolumeWrapper(url("a"))
    img = data .+ UInt16(1)
    upload_from_shared_memory(vol, img, ALL...)
    @test vol[ALL..., :] == img
    # Only the cutout (one aligned chunk) is written.
    upload_from_shared_memory(vol, data, ALL..., 13:28, 21:36, 18:25)
    got = vol[ALL..., :]
    @test got[17:32, 17:32, 9:16, :] == data[17:32, 17:32, 9:16, :]
    @test got[1:16, :, :, :] == img[1:16, :, :, :]
    @test_throws ArgumentError upload_from_shared_memory(vol, data, ALL..., 0:100, nothing, nothing)
    vol[ALL..., :] = data
    close(vol)
end

@testset "errors" begin
    e = expect_error(() -> CloudVolumeWrapper(url("absent")), CV.CV_ERR_NOT_FOUND)
    @test occursin("absent", e.message)
    @test occursin("CV_ERR_NOT_FOUND", sprint(showerror, e))
    # The disk cache: a directory of cloud-volume's layout; reads through it equal reads without.
    cachedir = mktempdir()
    cvol = CloudVolumeWrapper(url("a"); cache = cachedir)
    @test cvol[0:1, 5:6, 10:11] == data[4:5, 1:2, 1:2, 1]
    @test cvol[0:1, 5:6, 10:11] == data[4:5, 1:2, 1:2, 1]
    @test flush(cvol) === nothing
    close(cvol)
    expect_error(() -> CloudVolumeWrapper(url("a"); cache = ""), CV.CV_ERR_INVALID_ARGUMENT)
    expect_error(() -> CloudVolumeWrapper(url("a"); parallel = 0), CV.CV_ERR_INVALID_ARGUMENT)
    expect_error(() -> CloudVolumeWrapper(url("a"); max_inflight_bytes = 1000), CV.CV_ERR_INVALID_ARGUMENT)
    bvol = CloudVolumeWrapper(url("a"); max_inflight_bytes = 65536, parallel = 3)
    @test bvol[0:1, 5:6, 10:11] == data[4:5, 1:2, 1:2, 1]
    close(bvol)
    expect_error(() -> CloudVolumeWrapper(url("a"); mip = 3), CV.CV_ERR_INVALID_ARGUMENT)
    expect_error(() -> CloudVolumeWrapper(url("a"); compress = "lzma"), CV.CV_ERR_INVALID_ARGUMENT)
    expect_error(() -> CloudVolumeWrapper("n5://https://example.org/c/e/ch"), CV.CV_ERR_UNSUPPORTED)   # not read yet
    expect_error(() -> CloudVolumeWrapper("graphene://https://example.org/x"), CV.CV_ERR_INVALID_ARGUMENT)
    @test_throws ArgumentError CloudVolumeWrapper(url("a"); mip = -1)
    # Accepted and ignored keywords.
    vol = CloudVolumeWrapper(url("a"); parallel = 4, progress = true, cdn_cache = 60,
                             output_to_shared_memory = true, compress = false)
    @test vol[0:1, 5:6, 10:11] == data[4:5, 1:2, 1:2, 1]
    close(vol)
end

@testset "StorageWrapper" begin
    s = StorageWrapper(url("files"))
    @test !exists(s, "filename")
    s["filename"] = "content"
    @test String(s["filename"]) == "content"
    @test read(joinpath(root, "files", "filename"), String) == "content"   # raw bytes on disk
    bin = UInt8[0x00, 0xff, 0x10, 0x00]
    s["dir/bin"] = bin
    @test s["dir/bin"] == bin
    @test exists(s, "dir/bin")
    s["empty"] = UInt8[]
    @test s["empty"] == UInt8[]
    results, empties, errors = s[["filename", "missing", "dir/bin"]]
    @test [r["filename"] for r in results] == ["filename", "missing", "dir/bin"]
    @test results[1]["content"] == Vector{UInt8}("content")
    @test [r["filename"] for r in empties] == ["missing"]
    @test isempty(errors)
    _, _, errs = s[["../escape"]]
    @test length(errs) == 1 && errs[1]["error"].code == CV.CV_ERR_INVALID_ARGUMENT
    e = expect_error(() -> s["missing"], CV.CV_ERR_NOT_FOUND)
    @test occursin("missing", e.message)
    @test_throws ArgumentError (s["x"] = 1.5)
    delete!(s, "filename")
    @test !exists(s, "filename")
    delete!(s, "filename")   # missing: no error
    close(s)
    close(s)
    @test_throws ArgumentError s["dir/bin"]
    # Files of a layer, shared with the volume: the info, and a gzip-compressed chunk read back
    # decoded (raw encoding: the chunk's voxels, x fastest, channel slowest).
    CloudVolumeWrapper(url("gz"); info = new_info(), compress = "gzip") do vol
        vol[-3:12, 5:20, 10:17, :] = data[1:16, 1:16, 1:8, :]
    end
    @test isfile(joinpath(root, "gz", "4_4_40", "-3-13_5-21_10-18.gz"))
    StorageWrapper(url("gz")) do st
        @test CV.parse_json(String(st["info"]))["num_channels"] == 2
        @test st["4_4_40/-3-13_5-21_10-18"] == collect(reinterpret(UInt8, vec(data[1:16, 1:16, 1:8, :])))
    end
end

@testset "label operations" begin
    info = CV.create_new_info(1, "segmentation", "uint64", "compressed_segmentation", [8.0, 8.0, 40.0],
                              OFFSET, SIZE; chunk_size = CHUNK)
    CloudVolumeWrapper(url("seg"); info = info) do vol
        a = Array{UInt64,3}(undef, SIZE...)
        for z in 1:SIZE[3], y in 1:SIZE[2], x in 1:SIZE[1]
            k = (x ÷ 6) + 9 * (y ÷ 7) + 81 * (z ÷ 4)
            a[x, y, z] = k % 17 == 0 ? 0 : UInt64(10)^12 + UInt64(k)
        end
        vol[ALL...] = a
        r = (0:30, 8:40, 12:25)
        cut = vol[r...]
        labels = unique(vol, r...)
        @test labels == sort(unique(vec(cut)))
        l2, counts = unique(vol, r...; counts = true)
        @test l2 == labels
        @test counts == [count(==(l), cut) for l in labels]
        @test sum(counts) == length(cut)
        pick = labels[end]
        m = label_mask(vol, r..., [pick, 7])
        @test m[:, :, :, 1] == (cut .== pick)
        img, mapping = renumber(vol, r...)
        @test eltype(img) == UInt8
        @test mapping[0] == 0 && length(mapping) == count(!=(0), labels) + 1
        back = Dict(v => k for (k, v) in mapping)
        @test [back[v] for v in img[:, :, :, 1]] == cut
        p = download_point(vol, (10, 20, 15); size = (8, 8, 1))
        @test size(p) == (8, 8, 1, 1)
        @test p[:, :, 1, 1] == vol[6:13, 16:23, 15]
        files = download_files(vol, 0:13, 5:20, 10:17)
        @test sort(collect(keys(files))) == ["8_8_40/-3-13_5-21_10-18", "8_8_40/13-29_5-21_10-18"]
        expect_error(() -> unique(vol, -20:5, 5:8, 10:12), CV.CV_ERR_OUT_OF_BOUNDS)
    end
    CloudVolumeWrapper(url("img16"); info = new_info()) do img
        expect_error(() -> unique(img, 0:3, 5:8, 10:12), CV.CV_ERR_INVALID_ARGUMENT)
    end
end

@testset "label operations: uint32, two mips, bbox and keywords" begin
    # A raw, gzip-compressed uint32 layer with a second scale (every expectation is computed
    # from a cutout or the written array).
    info = CV.create_new_info(1, "segmentation", "uint32", "raw", [4.0, 4.0, 40.0], OFFSET, SIZE; chunk_size = CHUNK)
    s1 = copy(info["scales"][1])
    s1["key"] = "8_8_40"
    s1["resolution"] = [8, 8, 40]
    s1["voxel_offset"] = [fld(OFFSET[1], 2), fld(OFFSET[2], 2), OFFSET[3]]
    s1["size"] = [cld(SIZE[1], 2), cld(SIZE[2], 2), SIZE[3]]
    push!(info["scales"], s1)
    label(x, y, z) = (k = (x ÷ 2) + 25 * (y ÷ 2) + 500 * (z ÷ 4); k % 13 == 0 ? UInt32(0) : UInt32(70000 + k))
    vol = CloudVolumeWrapper(url("seg32"); info = info, compress = "gzip")
    vol1 = CloudVolumeWrapper(url("seg32"); mip = 1, compress = "gzip")
    try
        vol[ALL...] = UInt32[label(x, y, z) for x in 0:SIZE[1]-1, y in 0:SIZE[2]-1, z in 0:SIZE[3]-1]
        lo1, hi1 = s1["voxel_offset"], s1["voxel_offset"] .+ s1["size"] .- 1
        vol1[lo1[1]:hi1[1], lo1[2]:hi1[2], lo1[3]:hi1[3]] =
            UInt32[label(3x, 5y, z) for x in 1:s1["size"][1], y in 1:s1["size"][2], z in 1:s1["size"][3]]
        bbox = (0:30, 8:40, 12:25)
        cut = vol[bbox...]

        # unique: the bbox tuple, the element type of the layer, counts as Int.
        labels = unique(vol, bbox)
        @test eltype(labels) == UInt32
        @test labels == sort(unique(vec(cut)))
        @test issorted(labels) && length(labels) > 300
        l2, counts = unique(vol, bbox; counts = true)
        @test l2 == labels && eltype(counts) == Int
        @test counts == [count(==(l), cut) for l in labels]
        # mip=1 reads the second scale, not the handle's.
        b1 = (0:10, 6:19, 12:25)
        cut1 = vol1[b1...]
        @test unique(vol, b1; mip = 1) == sort(unique(vec(cut1)))
        @test unique(vol, b1; mip = 1) != unique(vol, b1)
        @test unique(vol1, b1...; mip = 0) == unique(vol, b1...)

        # label masks: download(...; label=L) with one label or several, label_mask with a bbox.
        pick = labels[div(length(labels), 2)]
        @test download(vol, bbox; label = pick) == reshape(cut .== pick, size(cut)..., 1)
        two = [labels[end], 0]
        @test download(vol, bbox...; label = two)[:, :, :, 1] == (cut .== labels[end]) .| (cut .== 0)
        @test label_mask(vol, b1, labels[1:0]; mip = 1) == falses(size(cut1)..., 1)
        @test download(vol, b1; mip = 1)[:, :, :, 1] == cut1
        @test download(vol, bbox)[:, :, :, 1] == cut

        # renumber: more than 255 labels need UInt16; the mapping is old => new, 0 => 0.
        img, mapping = download(vol, bbox; renumber = true)
        @test eltype(img) == UInt16 && size(img) == (size(cut)..., 1)
        @test keytype(mapping) == UInt32
        @test mapping[0] == 0
        @test sort(collect(values(mapping))) == collect(0:length(mapping)-1)
        @test [mapping[v] for v in cut] == img[:, :, :, 1]
        nz = filter(!=(0), labels)
        @test [mapping[l] for l in nz] == collect(1:length(nz))   # ascending order
        img1, map1 = renumber(vol, b1; mip = 1)
        @test [map1[v] for v in cut1] == img1[:, :, :, 1]
        @test_throws ArgumentError download(vol, bbox; label = 1, renumber = true)

        # download_point at mip 1: the point is in mip 0 voxels and halved in x and y.
        p = download_point(vol, (20, 30, 15); size = (4, 6, 1), mip = 1)
        @test size(p) == (4, 6, 1, 1) && p[:, :, 1, 1] == vol1[8:11, 12:17, 15]
        pc = download_point(vol, (10, 15, 15); size = 2, coord_resolution = (8, 8, 40))
        @test pc == vol[19:20, 29:30, 14:15, :]

        # download_files: gzip bytes unless decompressed; decompressed raw chunks equal the cutout.
        raw = download_files(vol, (-3:12, 5:20, 10:17))
        @test collect(keys(raw)) == ["4_4_40/-3-13_5-21_10-18"]
        @test raw["4_4_40/-3-13_5-21_10-18"] == collect(reinterpret(UInt8, vec(vol[-3:12, 5:20, 10:17])))
        gz = download_files(vol, (-3:12, 5:20, 10:17); decompress = false)
        @test gz["4_4_40/-3-13_5-21_10-18"][1:2] == [0x1f, 0x8b]
        f1 = download_files(vol, (lo1[1]:lo1[1], lo1[2]:lo1[2], 10:10); mip = 1)
        @test collect(keys(f1)) == ["8_8_40/-2-14_2-18_10-18"]
        @test f1["8_8_40/-2-14_2-18_10-18"] == collect(reinterpret(UInt8, vec(vol1[-2:13, 2:17, 10:17])))

        expect_error(() -> unique(vol, (0:3, 5:8, 10:12); mip = 5), CV.CV_ERR_INVALID_ARGUMENT)
        @test_throws ArgumentError unique(vol, bbox; mip = -1)
    finally
        close(vol1)
        close(vol)
    end
end

@testset "label operations: two channels, empty boxes, autocrop, graphene options" begin
    # A two-channel uint32 layer; channel 1 is channel 0 moved by 4 voxels in x, so the channels
    # share most labels. Every expectation comes from a cutout.
    info = CV.create_new_info(2, "segmentation", "uint32", "raw", [4.0, 4.0, 40.0], OFFSET, SIZE; chunk_size = CHUNK)
    lab(x, y, z) = (k = fld(x + 8, 3) + 20 * fld(y + 8, 4) + 400 * fld(z + 8, 3); k % 11 == 0 ? UInt32(0) : UInt32(1000 + k))
    a = Array{UInt32,4}(undef, SIZE..., 2)
    for c in 0:1, z in 1:SIZE[3], y in 1:SIZE[2], x in 1:SIZE[1]
        a[x, y, z, c+1] = lab(OFFSET[1] + x - 1 + 4c, OFFSET[2] + y - 1, OFFSET[3] + z - 1)
    end
    bbox = (0:19, 8:29, 12:21)
    CloudVolumeWrapper(url("seg_c2"); info = info) do vol
        vol[ALL..., :] = a
        cut = vol[bbox..., :]
        @test size(cut) == (20, 22, 10, 2)
        labels, counts = unique(vol, bbox; counts = true)
        @test labels == sort(unique(vec(cut)))
        @test counts == [count(==(l), cut) for l in labels]
        @test sum(counts) == length(cut)                               # every channel counted
        @test length(unique(vec(cut[:, :, :, 1]))) < length(labels)    # channel 1 has labels of its own
        two = [labels[div(end, 3)], labels[end]]
        m = download(vol, bbox; label = two)
        @test size(m) == size(cut) && m == ((cut .== two[1]) .| (cut .== two[2]))
        @test any(m[:, :, :, 2])
        img, mapping = download(vol, bbox; renumber = true)
        @test size(img) == size(cut) && [mapping[v] for v in cut] == img
        # Empty ranges give empty results, as indexing does, without asking the library.
        @test unique(vol, (0:-1, 8:9, 12:13)) == UInt32[]
        @test size(label_mask(vol, (0:-1, 8:9, 12:13), two)) == (0, 2, 2, 2)
        e = expect_error(() -> label_mask(vol, (-8:1, 8:11, 12:13), two), CV.CV_ERR_OUT_OF_BOUNDS)
        @test occursin("outside the bounds", e.message)
    end
    # autocrop: the box is cropped to the volume (x -3:4 here) first, download_point's box too.
    CloudVolumeWrapper(url("seg_c2"); autocrop = true) do ac
        part = ac[-3:4, 8:11, 12:13, :]
        @test unique(ac, (-10:4, 8:11, 12:13)) == sort(unique(vec(part)))
        l = part[1, 1, 1, 1]
        @test label_mask(ac, (-10:4, 8:11, 12:13), l) == (part .== l)
        img, mapping = renumber(ac, (-10:4, 8:11, 12:13))
        @test [mapping[v] for v in part] == img
        @test unique(ac, (-20:-10, 8:9, 12:13)) == UInt32[]
        @test download_point(ac, (-3, 10, 15); size = 8) == ac[-3:0, 6:13, 11:18, :]
    end
    # bounded=false: voxels outside the volume count as the background (0).
    CloudVolumeWrapper(url("seg_c2"); bounded = false) do ub
        cut = ub[-8:1, 8:11, 12:13, :]          # x -8:-4 is outside: 5 x 4 x 2 voxels, 2 channels
        labels, counts = unique(ub, (-8:1, 8:11, 12:13); counts = true)
        @test labels == sort(unique(vec(cut))) && counts == [count(==(l), cut) for l in labels]
        @test labels[1] == 0 && counts[1] >= 80
        @test all(label_mask(ub, (-8:1, 8:11, 12:13), 0)[1:5, :, :, :])
    end
    # The graphene keywords reach the library by their names (a Precomputed layer ignores
    # them); values it refuses name the option.
    CloudVolumeWrapper(url("seg_c2"); agglomerate = false, timestamp = 1700000000.5, stop_layer = 2,
                       use_https = true) do g
        @test unique(g, bbox) == sort(unique(vec(g[bbox..., :])))
    end
    e = expect_error(() -> CloudVolumeWrapper(url("seg_c2"); stop_layer = 0), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("stop_layer", e.message)
    e = expect_error(() -> CloudVolumeWrapper(url("seg_c2"); timestamp = -1), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("timestamp", e.message)
end

@testset "aligned image + segmentation cutouts (imagery fixture)" begin
    if !isfile(joinpath(IMAGERY, "manifest.json"))
        get(ENV, "CV_REQUIRE_REFERENCE", "") == "1" &&
            error("CV_REQUIRE_REFERENCE=1 but $(IMAGERY)/manifest.json is missing: run scripts/test.sh")
        @info "SKIP: no imagery fixture at $(IMAGERY)"
    else
    manifest = CV.parse_json(read(joinpath(IMAGERY, "manifest.json"), String))
    cases = [c for c in manifest["cases"] if c["seg"] == "ws"]
    @test length(cases) >= 8
    @test count(c -> c["source"] == "model", cases) >= 5
    @test count(c -> c["source"] == "imageryclient", cases) >= 2
    opts = (bounded = false, fill_missing = true)
    img = CloudVolumeWrapper("file://" * joinpath(IMAGERY, "img"); opts...)
    ws = CloudVolumeWrapper("file://" * joinpath(REFERENCE, "graphene", "ws"); opts...)
    squeeze(s) = filter(!=(1), collect(s))
    read_u64(f) = ltoh.(collect(reinterpret(UInt64, read(joinpath(IMAGERY, f)))))
    try
        for c in cases
            @testset "case $(c["id"]) ($(c["source"]))" begin
            r = c["request"]
            lo, hi = Int.(r["bounds"][1]), Int.(r["bounds"][2])
            res = r["resolution"] === nothing ? nothing : Float64.(r["resolution"])
            ids = r["root_ids"] isa AbstractVector ? parse.(UInt64, r["root_ids"]) : :all
            g = aligned_grid(img, ws, (lo, hi); resolution = res, image_mip = r["image_mip"],
                             segmentation_mip = r["segmentation_mip"], root_ids = ids,
                             scale_to_bounds = r["scale_to_bounds"])
            # ImageryClient squeezes axes of size 1: compare the shapes without them.
            @test squeeze(g.size) == squeeze(c["image"]["shape"])
            @test g.size == Tuple(g.hi .- g.lo)
            if c["grid"] !== nothing
                @test g.lo == c["grid"]["lo"] && g.hi == c["grid"]["hi"]
                @test g.resolution == Float64.(c["grid"]["resolution"])
            end
            d = get(r, "defaults", nothing)
            if d !== nothing
                r["image_mip"] === nothing && @test g.image_mip == d["image_mip"]
                r["segmentation_mip"] === nothing && @test g.segmentation_mip == d["segmentation_mip"]
                r["resolution"] === nothing && @test g.resolution == Float64.(d["resolution"])
            end
            r["image_mip"] === nothing || @test g.image_mip == r["image_mip"]
            r["segmentation_mip"] === nothing || @test g.segmentation_mip == r["segmentation_mip"]

            im, sg = image_and_segmentation_cutout(img, ws, (lo, hi); resolution = res, image_mip = r["image_mip"],
                                                   segmentation_mip = r["segmentation_mip"], root_ids = ids,
                                                   scale_to_bounds = r["scale_to_bounds"])
            @test im isa Array{UInt8,4} && size(im) == (g.size..., 1)
            @test sg isa Array{UInt64,3} && size(sg) == g.size
            @test vec(im) == read(joinpath(IMAGERY, c["image"]["file"]))
            want = read_u64(c["segmentation"]["file"])
            @test any(!=(0), want)   # an all-zero segmentation would prove little
            if get(c, "float64_ids", false) == true
                # ImageryClient's scipy zoom rounded the ids through Float64; so do we, here only.
                @test [UInt64(Float64(v)) for v in vec(sg)] == want
                @test vec(sg) != want
            else
                @test vec(sg) == want
            end
            end
        end

        # One ImageryClient case, every way of giving its box, and its masks.
        c = only(filter(c -> c["id"] == "same_res_precomputed", cases))
        lo, hi = Int.(c["request"]["bounds"][1]), Int.(c["request"]["bounds"][2])   # [100,80,20], [228,180,24]
        im, sg = image_and_segmentation_cutout(img, ws, [lo'; hi'])
        @test vec(im) == read(joinpath(IMAGERY, c["image"]["file"]))
        @test vec(sg) == read_u64(c["segmentation"]["file"])
        ranges = (lo[1]:hi[1]-1, lo[2]:hi[2]-1, lo[3]:hi[3]-1)
        @test image_and_segmentation_cutout(img, ws, ranges) == (im, sg)
        @test image_and_segmentation_cutout(img, ws, [lo, hi]; resolution = [8, 8, 40], image_mip = 1,
                                            segmentation_mip = 0) == (im, sg)
        # A centre and bbox_size: lo = centre - size ÷ 2, hi = lo + size (bounds_from_center).
        centre = lo .+ (hi .- lo) .÷ 2
        @test aligned_grid(img, ws, centre; bbox_size = hi .- lo).lo == lo
        @test image_and_segmentation_cutout(img, ws, centre; bbox_size = hi .- lo) == (im, sg)
        # Width and height only: one slice at the centre's z (22, the third of 20:23).
        i1, s1 = image_and_segmentation_cutout(img, ws, centre; bbox_size = (128, 100))
        @test size(i1) == (128, 100, 1, 1) && i1 == im[:, :, 3:3, :] && s1 == sg[:, :, 3:3]
        g1 = aligned_grid(img, ws, centre .+ [1, 1, 0]; bbox_size = (5, 4, 3))
        @test g1.lo == centre .+ [1, 1, 0] .- [2, 2, 1] && g1.hi == g1.lo .+ [5, 4, 3]

        # root_ids: only those labels are kept, every other voxel is 0; the image is unchanged.
        nz = filter(!=(0), sort(unique(vec(sg))))
        @test length(nz) > 100 && any(==(0), sg)
        keep = [nz[4], nz[11], nz[41]]
        ik, sk = image_and_segmentation_cutout(img, ws, (lo, hi); root_ids = keep)
        @test ik == im
        @test sk == map(v -> v in keep ? v : UInt64(0), sg)
        @test count(!=(0), sk) > 0 && count(!=(0), sk) < count(!=(0), sg)
        @test image_and_segmentation_cutout(img, ws, (lo, hi); root_ids = nz[4])[2] == map(v -> v == nz[4] ? v : UInt64(0), sg)
        @test all(==(0), image_and_segmentation_cutout(img, ws, (lo, hi); root_ids = UInt64[])[2])
        @test image_and_segmentation_cutout(img, ws, (lo, hi); root_ids = nothing)[2] == sg

        # split_segmentations: one mask per non-zero label, sorted; include_null_root adds 0.
        im2, masks = image_and_segmentation_cutout(img, ws, (lo, hi); split_segmentations = true)
        @test im2 == im
        @test masks isa Dict{UInt64,Array{Bool,3}}
        @test sort(collect(keys(masks))) == nz
        @test all(masks[l] == (sg .== l) for l in nz)
        @test sum(sum, values(masks)) == count(!=(0), sg)
        _, masks0 = image_and_segmentation_cutout(img, ws, (lo, hi); split_segmentations = true,
                                                  include_null_root = true)
        @test sort(collect(keys(masks0))) == [UInt64(0); nz]
        @test masks0[0] == (sg .== 0) && masks0[nz[1]] == masks[nz[1]]
        _, mk = image_and_segmentation_cutout(img, ws, (lo, hi); root_ids = keep, split_segmentations = true)
        @test sort(collect(keys(mk))) == sort(keep) && mk[keep[2]] == (sg .== keep[2])
        sm = CV.split_masks(sg[:, :, 1], [nz[2], nz[1], nz[2]])
        @test sort(collect(keys(sm))) == nz[1:2] && sm[nz[2]] == (sg[:, :, 1] .== nz[2])

        # Overlays of the first slice: every pixel is the blend (label 0 stays grey).
        grey, s = im[:, :, 1, 1], sg[:, :, 1]
        w, h = size(grey)
        rgb = overlay_rgb(grey, s; alpha = 0.6)
        @test rgb isa Array{UInt8,3} && size(rgb) == (w, h, 3)
        colours = Dict{UInt64,NTuple{3,UInt8}}()
        nbad = 0
        for y in 1:h, x in 1:w
            l = s[x, y]
            want = l == 0 ? (grey[x, y], grey[x, y], grey[x, y]) : blend(grey[x, y], segment_color(l), 0.6)
            l == 0 || (colours[l] = segment_color(l))
            nbad += (rgb[x, y, 1], rgb[x, y, 2], rgb[x, y, 3]) != want
        end
        @test nbad == 0
        @test length(colours) >= 100 && length(unique(values(colours))) == length(colours)
        @test count(==(0), s) > 0   # grey pixels were checked too
        # The default alpha is 0.5; other integer label types are taken.
        @test overlay_rgb(grey, s) == overlay_rgb(grey, s; alpha = 0.5)
        @test overlay_rgb(grey, s) != rgb
        @test overlay_rgb(Int.(grey), s; alpha = 0.6) == rgb
        # Outlines: only pixels with another label within 2 pixels (city block) are coloured.
        ol = overlay_rgb(grey, s; alpha = 1, outline = 2)
        nbad, edge, inner = 0, 0, 0
        for y in 1:h, x in 1:w
            l = s[x, y]
            near = any(s[xx, yy] != l for yy in max(1, y - 2):min(h, y + 2), xx in max(1, x - 2):min(w, x + 2)
                       if abs(xx - x) + abs(yy - y) <= 2)
            want = l != 0 && near ? segment_color(l) : (grey[x, y], grey[x, y], grey[x, y])
            edge += l != 0 && near
            inner += l != 0 && !near
            nbad += (ol[x, y, 1], ol[x, y, 2], ol[x, y, 3]) != want
        end
        @test nbad == 0
        @test edge > 1000 && inner > 1000
        # The PNG: its signature, then IHDR: width, height, 8-bit RGB.
        png = overlay_png(grey, s; alpha = 0.6, outline = 0)
        @test png isa Vector{UInt8}
        @test png[1:8] == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
        @test png[13:16] == Vector{UInt8}("IHDR")
        @test ntoh(reinterpret(UInt32, png[17:20])[1]) == w && ntoh(reinterpret(UInt32, png[21:24])[1]) == h
        @test png[25] == 8 && png[26] == 2
        @test overlay_png(grey, s) != png

        # The palette: stable, the library's formula, label 0 included (never drawn).
        @test segment_color(nz[1]) === segment_color(nz[1]) && segment_color(nz[1]) isa NTuple{3,UInt8}
        @test all(segment_color(l) == palette(UInt64(l)) for l in [nz; UInt64[0, 1, 2, 12345, typemax(UInt64)]])

        # Bad input: the library's refusal, as a CloudVolumeError with its message.
        e = expect_error(() -> image_and_segmentation_cutout(img, ws, (lo, [lo[1], hi[2], hi[3]])), CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("empty", e.message)
        e = expect_error(() -> image_and_segmentation_cutout(img, ws, (lo, hi); image_mip = 9), CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("mip 9", e.message)
        e = expect_error(() -> aligned_grid(img, ws, (lo, hi); segmentation_mip = 9), CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("mip 9", e.message) && occursin("graphene/ws", e.message)
        e = expect_error(() -> image_and_segmentation_cutout(img, ws, (lo, hi); resolution = [-4, 4, 40]),
                         CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("resolution", e.message)
        e = expect_error(() -> image_and_segmentation_cutout(ws, img, (lo, hi)), CV.CV_ERR_INVALID_ARGUMENT)   # uint8 as labels
        @test occursin("uint8", e.message) && occursin("img", e.message)
        e = expect_error(() -> overlay_rgb(grey, s; alpha = 2), CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("alpha", e.message)
        e = expect_error(() -> overlay_png(grey, s; outline = 65), CV.CV_ERR_INVALID_ARGUMENT)
        @test occursin("outline", e.message)
        CloudVolumeWrapper("file://" * joinpath(IMAGERY, "img"); fill_missing = true) do bounded
            e = expect_error(() -> image_and_segmentation_cutout(bounded, ws, ([0, 0, 0], [64, 64, 1])), CV.CV_ERR_OUT_OF_BOUNDS)
            @test occursin("outside the bounds", e.message)
        end
        # ... and the binding's own argument checks.
        @test_throws ArgumentError image_and_segmentation_cutout(img, ws, centre)           # a centre needs bbox_size
        @test_throws ArgumentError image_and_segmentation_cutout(img, ws, centre; bbox_size = (1, 2, 3, 4))
        @test_throws ArgumentError image_and_segmentation_cutout(img, ws, (lo, hi); image_mip = -1)
        @test_throws ArgumentError image_and_segmentation_cutout(img, ws, [lo hi])          # 3x2, not 2x3
        @test_throws ArgumentError aligned_grid(img, ws, ([100.5, 80, 20], hi))
        @test_throws DimensionMismatch overlay_rgb(grey, s[1:end-1, :])
        @test_throws ArgumentError overlay_png(grey, s; outline = -1)
    finally
        close(ws)
        close(img)
    end
    end
end

@testset "meshes and skeletons (meshes fixture)" begin
    if !isfile(joinpath(MESHES, "manifest.json"))
        get(ENV, "CV_REQUIRE_REFERENCE", "") == "1" &&
            error("CV_REQUIRE_REFERENCE=1 but $(MESHES)/manifest.json is missing: run scripts/test.sh")
        @info "SKIP: no mesh fixture at $(MESHES)"
    else
    manifest = CV.parse_json(read(joinpath(MESHES, "manifest.json"), String))
    vols = Dict{String,CloudVolumeWrapper}()
    layer(name) = get!(() -> CloudVolumeWrapper("file://" * joinpath(MESHES, name)), vols, name)
    tmp = mktempdir()
    try
        @testset "every recorded cloud-volume read" begin
            counts = Dict{String,Int}()
            for r in manifest["reads"]
                vol = layer(r["layer"])
                ids = r["segids"] isa AbstractVector ? UInt64[UInt64(i) for i in r["segids"]] : UInt64[UInt64(r["segids"])]
                call = r["call"]
                if call == "mesh.get"
                    check_mesh_read(vol, r, ids, counts)
                elseif call == "skeleton.get"
                    check_skeleton_read(vol, r, ids, counts)
                elseif call == "mesh.exists"
                    check_exists(vol, r, ids, counts)
                else
                    error("unknown call $(call)")
                end
            end
            @info "recorded reads" counts
            @test get(counts, "legacy reads", 0) >= 120 && get(counts, "multi-resolution reads", 0) >= 270
            @test get(counts, "skeleton reads", 0) >= 30 && get(counts, "errors", 0) >= 20
            @test get(counts, "exists", 0) == 5
        end

        @testset "saved OBJ, PLY, STL and SWC, parsed back" begin
            n = 0
            for t in manifest["texts"]
                name, id, fmt = t["layer"], UInt64(t["segid"]), t["format"]
                want = read(joinpath(MESHES, t["file"]))
                vol = layer(name)
                base = joinpath(tmp, "$(replace(name, "/" => "_")).$(id)")
                if fmt == "obj" || fmt == "ply"
                    m = mesh(vol, id)
                    path = save_mesh(vol, id, "$(base).$(fmt)")
                    @test path == "$(base).$(fmt)"
                    # cloud-volume's to_obj() / to_ply() bytes.
                    @test read(path) == want
                    if fmt == "obj"
                        pv, pf = parse_obj(read(path, String))
                        @test size(pv) == size(m.vertices) && maximum(abs.(pv .- Float64.(m.vertices)); init = 0.0) <= 1e-5
                        @test pf == m.faces   # OBJ counts from 1, as faces do here
                        # Binary STL of the same mesh: each triangle's corners, bit for bit.
                        tri = parse_stl(read(save_mesh(vol, id, "$(base).stl")))
                        @test size(tri, 1) == size(m.faces, 1)
                        @test all(same_bits(tri[k, c, :], m.vertices[m.faces[k, c], :]) for k in axes(tri, 1), c in 1:3)
                    else
                        pv, pf = parse_ply(read(path))
                        @test same_bits(pv, m.vertices) && pf == m.faces
                    end
                elseif fmt == "swc"
                    path = save_skeleton(vol, id, "$(base).swc")
                    ours, theirs = read(path, String), String(want)
                    # osteoid's to_swc() as a forest (its VERSION_DATE line is the time of writing).
                    @test swc_tree(ours) == swc_tree(theirs)
                    @test swc_scale(ours) == swc_scale(theirs) && swc_scale(ours) !== nothing
                    s = skeleton(vol, id)
                    rows = swc_rows(ours)
                    if size(s.edges, 1) == 0
                        @test isempty(rows)   # osteoid writes no row for a skeleton without edges
                    else
                        # A row per vertex, at the vertex's position; a parent link per edge.
                        @test length(rows) == size(s.vertices, 1)
                        @test count(r -> r[7] != "-1", rows) == size(s.edges, 1)
                        P = sortslices(Float64[parse(Float64, r[c]) for r in rows, c in 3:5]; dims = 1)
                        V = sortslices(Float64.(s.vertices); dims = 1)
                        @test size(P) == size(V) && maximum(abs.(P .- V)) <= 1e-4
                    end
                else
                    error("format $(fmt)")
                end
                n += 1
            end
            @test n == 9
            # Several ids and a coarser lod, every format (the CLI's `mesh ... --lod 1 -o`).
            ml = layer("multilod_sharded")
            m = mesh(ml, [3, 4]; lod = 1)
            @test m.segid === nothing && size(m.vertices, 2) == 3 && size(m.faces, 1) > 0
            for ext in ("obj", "ply", "stl")
                p = save_mesh(ml, [3, 4], joinpath(tmp, "m34.$(ext)"); lod = 1, weld = nothing,
                              allow_missing = false, chunk_size = nothing)
                if ext == "obj"
                    pv, pf = parse_obj(read(p, String))
                    @test pf == m.faces && size(pv) == size(m.vertices) &&
                          maximum(abs.(pv .- Float64.(m.vertices))) <= 1e-5
                elseif ext == "ply"
                    @test parse_ply(read(p)) == (m.vertices, m.faces)
                else
                    @test size(parse_stl(read(p)), 1) == size(m.faces, 1)
                end
            end
            e = expect_error(() -> save_mesh(ml, 3, joinpath(tmp, "m.dae")), CV.CV_ERR_INVALID_ARGUMENT)
            @test occursin(".obj", e.message)
            @test !isfile(joinpath(tmp, "m.dae"))
            e = expect_error(() -> save_mesh(ml, 999999, joinpath(tmp, "x.obj")), CV.CV_ERR_NOT_FOUND)
            @test occursin("999999", e.message) && !isfile(joinpath(tmp, "x.obj"))
            e = expect_error(() -> save_skeleton(layer("skeletons"), 999999, joinpath(tmp, "x.swc")), CV.CV_ERR_NOT_FOUND)
            @test !isfile(joinpath(tmp, "x.swc"))
        end

        @testset "writes read back (a temporary copy)" begin
            w = mktempdir()
            # Copies of the legacy layer's info (no image chunks needed) and the skeleton layer's.
            for name in ("legacy", "skeletons")
                mkpath(joinpath(w, name))
                cp(joinpath(MESHES, name, "info"), joinpath(w, name, "info"))
            end
            mkpath(joinpath(w, "skeletons", "skeletons"))
            cp(joinpath(MESHES, "skeletons", "skeletons", "info"), joinpath(w, "skeletons", "skeletons", "info"))
            src = layer("legacy")
            dst = CloudVolumeWrapper("file://" * joinpath(w, "legacy"))
            sdst = CloudVolumeWrapper("file://" * joinpath(w, "skeletons"))
            try
                @test mesh_info(dst)["@type"] == "neuroglancer_legacy_mesh"   # no mesh info yet
                for id in (1, 2, 4294967297)
                    m = mesh(src, id)
                    @test size(m.faces, 1) > 0
                    put_mesh(dst, id, m.vertices, m.faces)
                    back = mesh(dst, id)
                    @test same_bits(back.vertices, m.vertices) && back.faces == m.faces
                end
                # Rewriting replaces the old fragments; the named tuple `mesh` returns is taken too.
                tv = Float32[0 0 0; 1 0 0; 0 1 0]
                tf = UInt32[1 2 3]
                put_mesh(dst, 2, tv, tf)
                raw = mesh(dst, 2; weld = false)
                @test raw.vertices == tv && raw.faces == tf
                @test length(readdir(joinpath(w, "legacy", "mesh"))) == 6   # no old fragment left behind
                put_mesh(dst, 4294967297, (vertices = Float64.(tv), faces = Int[1 2 3; 3 2 1]))
                @test mesh(dst, 4294967297; weld = false).faces == UInt32[1 2 3; 3 2 1]
                # An index past the vertices: the library refuses it and the mesh stays.
                expect_error(() -> put_mesh(dst, 2, tv, [1 2 4]), CV.CV_ERR_INVALID_ARGUMENT)
                @test mesh(dst, 2; weld = false).faces == tf
                # The binding's own checks: 1-based indices, a row per vertex / triangle.
                @test_throws ArgumentError put_mesh(dst, 2, tv, [0 1 2])
                @test_throws DimensionMismatch put_mesh(dst, 2, permutedims(tv[1:2, :]), tf)
                @test_throws DimensionMismatch put_mesh(dst, 2, tv, UInt32[1, 2, 3][:, :])
                @test mesh(dst, 2; weld = false).faces == tf
                # Writing a multi-resolution directory is not supported.
                expect_error(() -> put_mesh(layer("multilod"), 5, tv, tf), CV.CV_ERR_UNSUPPORTED)

                # Skeletons with their four attributes, back in stored space (the transform is
                # diagonal with exact values here).
                ssrc = layer("skeletons")
                si = skeleton_info(ssrc)
                @test skeleton_info(sdst)["vertex_attributes"] == si["vertex_attributes"]
                @test [a["id"] for a in si["vertex_attributes"]] == ["radius", "vertex_types", "compartment", "direction"]
                @test si["sharded"] == false
                t = Float32.(si["transform"])
                scale3, shift = t[[1, 6, 11]], t[[4, 8, 12]]
                for id in (1, 2, 3)
                    s = skeleton(ssrc, id)
                    stored = (s.vertices .- shift') ./ scale3'
                    put_skeleton(sdst, id, stored, s.edges; s.attributes...)
                    b = skeleton(sdst, id)
                    @test isapprox(b.vertices, s.vertices; rtol = 1e-6) && b.edges == s.edges
                    @test keys(b.attributes) == keys(s.attributes)
                    @test all(same_bits(b.attributes[k], s.attributes[k]) for k in keys(s.attributes))
                end
                s = skeleton(ssrc, 1)
                nv = size(s.vertices, 1)
                stored = (s.vertices .- shift') ./ scale3'
                a = s.attributes
                # Attributes by name, any order, converted to the info's types.
                put_skeleton(sdst, 7, stored, s.edges; direction = Float64.(a.direction), compartment = Int.(a.compartment),
                             radius = a.radius, vertex_types = Int.(a.vertex_types))
                @test all(same_bits(skeleton(sdst, 7).attributes[k], a[k]) for k in keys(a))
                # No attributes: osteoid's defaults are read back (radius -1, vertex_types 0).
                put_skeleton(sdst, 8, stored, s.edges)
                b = skeleton(sdst, 8)
                @test b.edges == s.edges && isapprox(b.vertices, s.vertices; rtol = 1e-6)
                @test keys(b.attributes) == (:radius, :vertex_types)
                @test b.attributes.radius == fill(-1.0f0, nv) && b.attributes.vertex_types == zeros(UInt8, nv)
                # All of the info's attributes or none; each of its shape and type.
                @test_throws ArgumentError put_skeleton(sdst, 9, stored, s.edges; radius = a.radius)
                @test_throws ArgumentError put_skeleton(sdst, 9, stored, s.edges; merge(a, (colour = a.radius,))...)
                @test_throws DimensionMismatch put_skeleton(sdst, 9, stored, s.edges; merge(a, (direction = a.direction[:, 1:2],))...)
                @test_throws DimensionMismatch put_skeleton(sdst, 9, stored, s.edges; merge(a, (radius = a.radius[1:end-1],))...)
                @test_throws InexactError put_skeleton(sdst, 9, stored, s.edges; merge(a, (vertex_types = fill(300, nv),))...)
                @test_throws ArgumentError put_skeleton(sdst, 9, stored, s.edges .- UInt32(1))   # 0-based
                expect_error(() -> put_skeleton(sdst, 9, stored, UInt32[1 (nv + 1)]), CV.CV_ERR_INVALID_ARGUMENT)
                expect_error(() -> skeleton(sdst, 9), CV.CV_ERR_NOT_FOUND)   # nothing was written
                # Writing into shards is not supported.
                sh = layer("skeletons_sharded")
                s2 = skeleton(sh, 2)
                expect_error(() -> put_skeleton(sh, 5, s2.vertices, s2.edges), CV.CV_ERR_UNSUPPORTED)
            finally
                close(sdst)
                close(dst)
            end
        end

        @testset "missing ids, allow_missing, lods" begin
            vol = layer("multilod_sharded")
            info_ = mesh_info(vol)
            @test info_["@type"] == "neuroglancer_multilod_draco" && info_["sharded"] == true
            @test info_["vertex_quantization_bits"] == 16 && info_["lod_scale_multiplier"] == 0.5
            @test Float64.(info_["transform"]) == [8, 0, 0.5, 512, 0, 8, 0, 256, 0, 0.25, 40, 320]
            @test Float64.(mesh_info(layer("legacy_transform"))["transform"]) == [8, 0, 0, 512, 0, 8, 0, 256, 0, 0, 40, 320]
            @test mesh_lods(vol, 3) == 3 && mesh_lods(layer("legacy"), 1) == 1
            e = expect_error(() -> mesh_lods(vol, 999999), CV.CV_ERR_NOT_FOUND)
            # A missing id fails the whole call unless allowed.
            e = expect_error(() -> mesh(vol, 999999), CV.CV_ERR_NOT_FOUND)
            @test occursin("999999", e.message)
            expect_error(() -> meshes(vol, [3, 4, 999999]), CV.CV_ERR_NOT_FOUND)
            each = meshes(vol, [3, 4, 999999]; allow_missing = true)
            @test length(each) == 3 && each[3] === nothing
            @test each[1].segid == 3 && each[2].segid == 4
            m3 = mesh(vol, 3)
            @test m3.segid == 3 && same_bits(each[1].vertices, m3.vertices) && each[1].faces == m3.faces
            @test all(1 .<= m3.faces .<= size(m3.vertices, 1))
            m = mesh(vol, [3, 999999]; allow_missing = true)
            @test same_bits(m.vertices, m3.vertices) && m.faces == m3.faces
            @test isempty(mesh(vol, 999999; allow_missing = true).vertices)
            @test meshes(vol, Int[]) == [] && meshes(vol, [999999]; allow_missing = true) == [nothing]
            expect_error(() -> mesh(vol, Int[]), CV.CV_ERR_INVALID_ARGUMENT)   # no ids
            # Levels of detail: -1 and :coarsest are the last; past it, or below -1, is refused.
            coarse = mesh(vol, 3; lod = 2)
            @test same_bits(mesh(vol, 3; lod = -1).vertices, coarse.vertices)
            @test mesh(vol, 3; lod = :coarsest).faces == coarse.faces
            @test size(coarse.faces, 1) < size(m3.faces, 1)
            for bad in (3, 7, -2)
                e = expect_error(() -> mesh(vol, 3; lod = bad), CV.CV_ERR_INVALID_ARGUMENT)
                @test occursin("lod", e.message)
                expect_error(() -> meshes(vol, [3]; lod = bad), CV.CV_ERR_INVALID_ARGUMENT)
            end
            @test_throws ArgumentError mesh(vol, 3; lod = :finest)
            @test_throws ArgumentError mesh(vol, 3; lod = Int64(2)^40)
            @test_throws ArgumentError mesh(vol, "3")
            @test_throws InexactError mesh(vol, -3)
            @test_throws ArgumentError mesh(vol, 3; chunk_size = (32, 32))
            # Welding: multi-resolution meshes are not welded by default; welding merges.
            welded = mesh(vol, 3; weld = true)
            @test size(welded.vertices, 1) <= size(m3.vertices, 1) && size(welded.faces, 1) == size(m3.faces, 1)
            # Legacy: weld by default; chunk_size welds only on the planes of that grid.
            leg = layer("legacy")
            full, raw = mesh(leg, 1), mesh(leg, 1; weld = false)
            part = mesh(leg, 1; chunk_size = [32, 32, 16])
            @test size(full.vertices, 1) < size(raw.vertices, 1)
            @test size(full.vertices, 1) <= size(part.vertices, 1) <= size(raw.vertices, 1)
            # Skeletons: one per id, nothing where allowed.
            sv = layer("skeletons_sharded")
            @test skeleton_info(sv)["sharded"] == true
            e = expect_error(() -> skeleton(sv, 999999), CV.CV_ERR_NOT_FOUND)
            @test occursin("999999", e.message)
            expect_error(() -> skeletons(sv, [1, 999999]), CV.CV_ERR_NOT_FOUND)
            ss = skeletons(sv, [1, 999999, 2]; allow_missing = true)
            @test length(ss) == 3 && ss[2] === nothing && ss[1].segid == 1 && ss[3].segid == 2
            s2 = skeleton(sv, 2)
            @test same_bits(ss[3].vertices, s2.vertices) && ss[3].edges == s2.edges
            @test keys(s2.attributes) == (:radius, :vertex_types, :compartment, :direction)
            nv = size(s2.vertices, 1)
            @test s2.attributes.radius isa Vector{Float32} && length(s2.attributes.radius) == nv
            @test s2.attributes.vertex_types isa Vector{UInt8} && s2.attributes.compartment isa Vector{Int16}
            @test s2.attributes.direction isa Matrix{Float32} && size(s2.attributes.direction) == (nv, 3)
            @test s2.vertices isa Matrix{Float32} && size(s2.vertices, 2) == 3
            @test s2.edges isa Matrix{UInt32} && size(s2.edges, 2) == 2 && all(1 .<= s2.edges .<= nv)
            @test skeletons(sv, Int[]) == [] && skeletons(sv, [999999]; allow_missing = true) == [nothing]
        end
    finally
        foreach(close, values(vols))
    end
    end
end

@testset "services: DVID (tests/servers/dvid.py)" begin
    if isempty(DVID)
        skip_service("DVID", "CV_DVID_SERVER")
    else
    uuid = dvid_create_repo(DVID; alias = "julia", description = "Julia binding tests")
    @test length(uuid) == 32 && all(c -> c in "0123456789abcdef", uuid)
    other = dvid_create_repo("dvid://" * DVID; alias = "", description = "", timeout = 30)
    @test length(other) == 32 && other != uuid
    dvid(name) = "dvid://$(DVID)/$(uuid)/$(name)"

    # A uint16 image instance (uint16blk): block size = the chunk size.
    info16 = CV.create_new_info(1, "image", "uint16", "raw", [4, 4, 40], [0, 0, 0], [1, 1, 1]; chunk_size = (32, 32, 32))
    vol = CloudVolumeWrapper(dvid("grey16"); info = info16, bounded = false)
    @test vol.dtype == UInt16 && vol.channels == 1
    @test chunks(vol) == [32, 32, 32] && resolution(vol) == [4.0, 4.0, 40.0] && info(vol)["type"] == "image"
    a = rand(UInt16, 64, 64, 32, 1)
    vol[32:95, 64:127, 0:31] = a[:, :, :, 1]                 # aligned: 2 x 2 x 1 blocks
    fresh = CloudVolumeWrapper(dvid("grey16"); bounded = false)
    @test offset(fresh) == [32, 64, 0] && size(fresh) == (64, 64, 32, 1)   # the extents written
    for h in (vol, fresh)
        @test h[32:95, 64:127, 0:31] == a[:, :, :, 1]
        @test h[64:95, 96:127, 0:31] == a[33:64, 33:64, :, 1]
        # Unaligned: inside, across the edges (0 outside with bounded=false), outside.
        for b in ((33:94, 65:126, 1:30), (20:69, 60:99, 0:19), (90:139, 120:149, 28:59), (0:9, 0:9, 40:41))
            @test download(h, b) == expected_box(a, (32, 64, 0), b)
        end
    end
    @test all(==(0), fresh[200:263, 0:63, 0:31])             # unwritten voxels read 0
    CloudVolumeWrapper(dvid("grey16")) do bounded            # bounded: the extents are the bounds
        @test bounded[33:94, 65:126, 1:30] == a[2:63, 2:63, 2:31, 1]
        expect_error(() -> bounded[20:69, 60:99, 0:19], CV.CV_ERR_OUT_OF_BOUNDS)
    end
    # An unaligned write is refused, naming the block size; non_aligned_writes paints it.
    e = expect_error(() -> (vol[40:59, 70:89, 5:14] = ones(UInt16, 20, 20, 10)), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("32x32x32", e.message) && occursin("non_aligned_writes", e.message)
    @test fresh[32:95, 64:127, 0:31] == a[:, :, :, 1]
    p = rand(UInt16, 20, 20, 10)
    CloudVolumeWrapper(dvid("grey16"); non_aligned_writes = true, bounded = false) do na
        na[40:59, 70:89, 5:14] = p
        w = copy(a)
        w[9:28, 7:26, 6:15, 1] = p
        @test na[32:95, 64:127, 0:31, :] == w
    end

    # A uint64 labelmap (64^3 blocks: labelmap needs a multiple of 16), label operations over it.
    info64 = CV.create_new_info(1, "segmentation", "uint64", "raw", [8, 8, 8], [0, 0, 0], [1, 1, 1]; chunk_size = (64, 64, 64))
    seg = CloudVolumeWrapper(dvid("labels"); info = info64, bounded = false)
    @test seg.dtype == UInt64 && info(seg)["type"] == "segmentation"
    l = Array{UInt64,4}(undef, 128, 64, 64, 1)
    for z in 0:63, y in 0:63, x in 0:127
        k = (x ÷ 7 + 3 * (y ÷ 5) + 11 * (z ÷ 4)) % 9
        l[x+1, y+1, z+1, 1] = k == 0 ? UInt64(0) : (UInt64(1) << 40) + UInt64(k)
    end
    seg[0:127, 0:63, 0:63] = l[:, :, :, 1]
    segf = CloudVolumeWrapper(dvid("labels"); bounded = false)
    @test offset(segf) == [0, 0, 0] && size(segf) == (128, 64, 64, 1)
    @test segf[0:127, 0:63, 0:63, :] == l
    for b in ((3:60, 5:58, 7:49), (100:150, 40:80, 50:70), (-10:5, -10:5, 0:3))
        @test download(segf, b) == expected_box(l, (0, 0, 0), b)
    end
    bbox = (3:60, 5:58, 7:49)
    cut = segf[bbox...]
    labels, counts = unique(segf, bbox; counts = true)
    @test labels == sort(unique(vec(cut))) && counts == [count(==(v), cut) for v in labels] && length(labels) >= 5
    @test label_mask(segf, bbox, labels[end])[:, :, :, 1] == (cut .== labels[end])
    e = expect_error(() -> (seg[10:49, 20:59, 30:39] = l[1:40, 1:40, 1:10, 1]), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("64x64x64", e.message) && occursin("non_aligned_writes", e.message)

    # rgba8 (4-channel uint8) and pydvid's channel-first view: (c, x, y, z).
    info4 = CV.create_new_info(4, "image", "uint8", "raw", [4, 4, 40], [0, 0, 0], [1, 1, 1]; chunk_size = (32, 32, 32))
    rgba = CloudVolumeWrapper(dvid("rgba"); info = info4, bounded = false)
    @test rgba.channels == 4 && rgba.dtype == UInt8
    c4 = rand(UInt8, 64, 32, 32, 4)
    rgba[0:63, 32:63, 0:31, :] = c4
    rf = CloudVolumeWrapper(dvid("rgba"); bounded = false)
    @test size(rf) == (64, 32, 32, 4)
    cf = download(rf, (0:63, 32:63, 0:31); channel_first = true)
    @test cf isa Array{UInt8,4} && size(cf) == (4, 64, 32, 32)
    @test cf == permutedims(c4, (4, 1, 2, 3))
    @test all(cf[:, x, y, z] == c4[x, y, z, :] for (x, y, z) in ((1, 1, 1), (64, 32, 32), (17, 5, 30)))
    @test vec(cf)[1:8] == [c4[1, 1, 1, :]; c4[2, 1, 1, :]]   # a voxel's channels together in memory
    b = (50:79, 20:40, 10:35)
    @test download(rf, b; channel_first = true) == permutedims(expected_box(c4, (0, 32, 0), b), (4, 1, 2, 3))
    @test download(rf, b; channel_first = false) == download(rf, b)
    m1 = download(segf, bbox; label = labels[end], channel_first = true)
    @test m1 isa Array{Bool,4} && size(m1) == (1, length.(bbox)...) && m1[1, :, :, :] == (cut .== labels[end])
    r1, mapping = download(segf, bbox; renumber = true, channel_first = true)
    @test size(r1) == (1, length.(bbox)...) && [mapping[v] for v in cut] == r1[1, :, :, :]

    # Unknown instance and node: not found, named; a name taken; a type DVID has none of.
    e = expect_error(() -> CloudVolumeWrapper(dvid("nosuch")), CV.CV_ERR_NOT_FOUND)
    @test occursin("nosuch", e.message)
    e = expect_error(() -> CloudVolumeWrapper("dvid://$(DVID)/ffff/grey16"), CV.CV_ERR_NOT_FOUND)
    @test occursin("ffff", e.message)
    e = expect_error(() -> CloudVolumeWrapper(dvid("grey16"); info = info16), CV.CV_ERR_INVALID_ARGUMENT)
    @test occursin("already exists", e.message)
    f64 = CV.create_new_info(1, "image", "float64", "raw", [4, 4, 40], [0, 0, 0], [1, 1, 1]; chunk_size = (32, 32, 32))
    expect_error(() -> CloudVolumeWrapper(dvid("f64"); info = f64), CV.CV_ERR_UNSUPPORTED)
    expect_error(() -> dvid_create_repo(DVID; colour = "red"), CV.CV_ERR_INVALID_ARGUMENT)
    foreach(close, (vol, fresh, seg, segf, rgba, rf))
    end
end

@testset "services: BOSS (tests/servers/boss.py, intern's cutouts)" begin
    if isempty(BOSS) || isempty(BOSS_TOKEN) || isempty(BOSS_DIR)
        skip_service("BOSS", "CV_BOSS_URL_BASE, CV_BOSS_TOKEN or CV_BOSS_INTERN_DIR")
    else
    m = match(r"^boss://(https?)://([^/]+)/", BOSS)
    @test m !== nothing
    host = m[2]
    secrets = Dict{String,Any}("protocol" => m[1], "host" => host, "token" => BOSS_TOKEN)
    types = Dict("uint8" => UInt8, "uint16" => UInt16, "uint64" => UInt64)
    manifest = CV.parse_json(read(joinpath(BOSS_DIR, "manifest.json"), String))
    vols = Dict(ch => CloudVolumeWrapper("$(BOSS)/$(ch)"; secrets = secrets, bounded = false)
                for ch in ("img8", "img16", "ann64"))
    try
        n = 0
        for c in manifest["cases"]
            v = vols[c["channel"]]
            T = types[c["dtype"]]
            @test v.dtype == T
            lo, hi = Int.(c["lo"]), Int.(c["hi"])     # half-open, as intern's ranges
            got = download(v, (lo[1]:hi[1]-1, lo[2]:hi[2]-1, lo[3]:hi[3]-1); mip = c["res"])
            want = reshape(ltoh.(collect(reinterpret(T, read(joinpath(BOSS_DIR, c["file"]))))), (hi .- lo)...)
            @test got[:, :, :, 1] == want
            @test any(!=(0), got)
            n += 1
        end
        @test n == 12
        a = vols["ann64"]
        @test length(info(a)["scales"]) == 3 && info(a)["type"] == "segmentation"
        @test offset(a) == [100, 0, 0] && size(a) == (1024, 1024, 64, 1)
        c0 = first(filter(c -> c["channel"] == "ann64" && c["res"] == 0, manifest["cases"]))
        lo, hi = Int.(c0["lo"]), Int.(c0["hi"])
        b = (lo[1]:hi[1]-1, lo[2]:hi[2]-1, lo[3]:hi[3]-1)
        @test unique(a, b) == sort(unique(vec(a[b...])))
        @test all(>(UInt64(1) << 50), unique(a, b))         # intern's labels
        # The token alone (the URL names the server).
        CloudVolumeWrapper("$(BOSS)/ann64"; secrets = BOSS_TOKEN, bounded = false) do t
            @test t[b...] == a[b...]
        end
    finally
        foreach(close, values(vols))
    end
    # A wrong token: CV_ERR_AUTH naming the host, never the token; an unknown channel; bounds.
    bad = merge(secrets, Dict{String,Any}("token" => "not-the-token"))
    e = expect_error(() -> CloudVolumeWrapper("$(BOSS)/img8"; secrets = bad), CV.CV_ERR_AUTH)
    @test occursin(host, e.message) && !occursin("not-the-token", e.message)
    e = expect_error(() -> CloudVolumeWrapper("$(BOSS)/nope"; secrets = secrets), CV.CV_ERR_NOT_FOUND)
    @test occursin("nope", e.message)
    CloudVolumeWrapper("$(BOSS)/img8"; secrets = secrets) do v
        expect_error(() -> v[0:99, 0:19, 0:1], CV.CV_ERR_OUT_OF_BOUNDS)
    end
    end
end

@testset "services: OCP / ndstore (tests/servers/ocp.py, h5py's cutouts)" begin
    if isempty(OCP) || isempty(OCP_DIR)
        skip_service("ndstore", "CV_OCP_SERVER or CV_OCP_H5PY_DIR")
    else
    types = Dict("uint8" => UInt8, "uint16" => UInt16, "uint32" => UInt32, "uint64" => UInt64,
                 "float32" => Float32)
    manifest = CV.parse_json(read(joinpath(OCP_DIR, "manifest.json"), String))
    base = "ocp://$(OCP)/$(manifest["project"])/"
    n = 0
    for format in ("npz", "raw", "hdf5"), c in manifest["cases"]
        CloudVolumeWrapper(base * c["channel"]; ocp_format = format) do v
            T = types[c["dtype"]]
            @test v.dtype == T
            @test length(info(v)["scales"]) == 2
            lo, hi = Int.(c["lo"]), Int.(c["hi"])     # half-open, as in the manifest
            got = download(v, (lo[1]:hi[1]-1, lo[2]:hi[2]-1, lo[3]:hi[3]-1); mip = c["res"])
            want = reshape(ltoh.(collect(reinterpret(T, read(joinpath(OCP_DIR, c["file"]))))), (hi .- lo)...)
            @test got[:, :, :, 1] == want
            @test any(!=(0), got)
            n += 1
        end
    end
    @test n == 30
    # A write (npz; non-zero values: ndstore keeps only those), read back from the hdf5 answer;
    # past the manifest's boxes (z >= 40), which other runs against the same double read.
    data = UInt32.(reshape(1:(110 * 120 * 13), 110, 120, 13)) .| UInt32(1) << 20
    CloudVolumeWrapper(base * "anno32") do w
        w[150:259, 70:189, 40:52] = data
    end
    CloudVolumeWrapper(base * "anno32"; ocp_format = "hdf5") do r
        @test r[150:259, 70:189, 40:52] == data
        expect_error(() -> r[0:9, 0:9, 0:0], CV.CV_ERR_OUT_OF_BOUNDS)
    end
    e = expect_error(() -> CloudVolumeWrapper(base * "nope"), CV.CV_ERR_NOT_FOUND)
    @test occursin("nope", e.message)
    e = expect_error(() -> CloudVolumeWrapper(base * "img8"; ocp_format = "blosc"), CV.CV_ERR_UNSUPPORTED)
    @test occursin("ocp_format", e.message)
    # ndstore's info cannot be created from here.
    i8 = CloudVolumeWrapper(info, base * "img8")
    expect_error(() -> CloudVolumeWrapper(base * "new"; info = i8), CV.CV_ERR_UNSUPPORTED)
    end
end

# A graphene mesh equals cloud-volume's recorded one: vertices bit for bit, faces in the same
# order (cloud-volume's from 0, ours from 1).
function same_gmesh(item, got, what)
    v = read_npy(joinpath(GMESH_DIR, item["vertices"]))
    f = read_npy(joinpath(GMESH_DIR, item["faces"]))
    ok = v isa Matrix{Float32} && f isa Matrix{UInt32} && size(v, 1) > 0 && size(f, 1) > 0 &&
         same_bits(got.vertices, v) && size(got.faces) == size(f) && got.faces == f .+ UInt32(1)
    ok || @warn "differs from cloud-volume: $(what)" size(got.vertices) size(v) size(got.faces) size(f)
    return ok
end

@testset "graphene meshes (tests/servers/chunkedgraph.py, cloud-volume's reads)" begin
    if isempty(GMESH_URL) || !isfile(joinpath(GMESH_DIR, "manifest.json"))
        skip_service("chunkedgraph", "CV_GRAPHENE_MESH_URL or CV_GRAPHENE_MESH_DIR")
    else
    manifest = CV.parse_json(read(joinpath(GMESH_DIR, "manifest.json"), String))
    token = manifest["token"]
    gurl(table) = "$(GMESH_URL)/$(table)"
    counts = Dict{String,Int}()
    @testset "every recorded read" begin
        for c in manifest["cases"]
            o = c["options"]
            # Calls the library does not offer (a bounding box, bypassing the manifest, no byte
            # offsets), and the cases handed an info: not for this binding.
            if any(k -> haskey(o, k), ("bounding_box", "bypass", "use_byte_offsets", "info"))
                bump!(counts, "skipped")
                continue
            end
            what = c["id"]
            ids = UInt64[parse(UInt64, s) for s in c["ids"]]
            weld = get(o, "remove_duplicate_vertices", false) === true ? true :
                   get(o, "deduplicate_chunk_boundaries", true) === false ? false : nothing
            allow = get(o, "allow_missing", false) === true
            fused = get(o, "fuse", false) === true || get(c, "fused", false) === true
            CloudVolumeWrapper(gurl(c["table"]); secrets = Dict{String,Any}("token" => token),
                               mip = Int(get(o, "mip", 0)),
                               timestamp = haskey(o, "timestamp") ? o["timestamp"] : nothing) do vol
                if c["error"] !== nothing
                    # cloud-volume's IndexError "No meshes found.": a root without a mesh.
                    e = expect_error(() -> fused ? mesh(vol, ids; weld = weld, allow_missing = allow) :
                                                   meshes(vol, ids; weld = weld, allow_missing = allow),
                                     CV.CV_ERR_NOT_FOUND)
                    @test e !== nothing && occursin(string(ids[1]), e.message)
                    bump!(counts, "errors")
                elseif fused
                    items = c["expected"]
                    @test length(items) == 1
                    m = mesh(vol, ids; weld = weld, allow_missing = allow)
                    @test m.segid === nothing
                    @test same_gmesh(items[1], m, what)
                    bump!(counts, "fused")
                else
                    items = c["expected"]
                    want = Dict(parse(UInt64, it["id"]) => it for it in items)
                    each = meshes(vol, ids; weld = weld, allow_missing = allow)
                    @test length(each) == length(ids)
                    for (i, id) in enumerate(ids)
                        if haskey(want, id)
                            @test each[i] !== nothing && each[i].segid == id
                            each[i] === nothing || @test same_gmesh(want[id], each[i], "$(what) [$(id)]")
                        else
                            # cloud-volume left it out: allow_missing, and no mesh.
                            @test allow && each[i] === nothing
                            bump!(counts, "absent")
                        end
                    end
                    @test count(!isnothing, each) == length(items)
                    bump!(counts, allow ? "allow_missing" : "reads")
                end
            end
        end
        @info "graphene mesh reads" counts
        @test get(counts, "reads", 0) >= 60 && get(counts, "fused", 0) >= 2 && get(counts, "errors", 0) >= 2
        @test get(counts, "allow_missing", 0) >= 3 && get(counts, "absent", 0) >= 3
    end
    @testset "lods, a meshless root, tokens, an unknown table" begin
        plain = meshless = UInt64(0)
        for c in manifest["cases"]
            (c["table"] == "meshes" && isempty(c["options"])) || continue
            c["error"] === nothing && plain == 0 && (plain = parse(UInt64, c["ids"][1]))
            c["error"] !== nothing && meshless == 0 && (meshless = parse(UInt64, c["ids"][1]))
        end
        @test plain != 0 && meshless != 0
        secrets = Dict{String,Any}("token" => token)
        CloudVolumeWrapper(gurl("meshes"); secrets = secrets) do vol
            @test mesh_lods(vol, plain) == 1
            expect_error(() -> mesh(vol, plain; lod = 1), CV.CV_ERR_INVALID_ARGUMENT)
            e = expect_error(() -> mesh(vol, meshless), CV.CV_ERR_NOT_FOUND)
            @test occursin(string(meshless), e.message)
            expect_error(() -> meshes(vol, [plain, meshless]), CV.CV_ERR_NOT_FOUND)
            # (A fused read may order a mesh's faces otherwise than its read on its own, as
            # cloud-volume's fuse does: each is compared with the same call of the plain id alone.)
            each = meshes(vol, [meshless, plain]; allow_missing = true)
            alone = meshes(vol, [plain])[1]
            @test length(each) == 2 && each[1] === nothing && each[2].segid == plain
            @test same_bits(each[2].vertices, alone.vertices) && each[2].faces == alone.faces
            @test size(alone.vertices, 1) > 0 && all(1 .<= alone.faces .<= size(alone.vertices, 1))
            single = mesh(vol, plain)
            fused = mesh(vol, [meshless, plain]; allow_missing = true)
            @test same_bits(fused.vertices, single.vertices) && fused.faces == single.faces
        end
        # Tokens at open (the info request): wrong, valid without view permission.
        for t in (manifest["bad_token"], manifest["forbidden_token"])
            expect_error(() -> CloudVolumeWrapper(gurl("meshes"); secrets = Dict{String,Any}("token" => t)), CV.CV_ERR_AUTH)
        end
        expect_error(() -> CloudVolumeWrapper(gurl("nosuch"); secrets = secrets), CV.CV_ERR_NOT_FOUND)
    end
    end
end

@testset "JSON" begin
    v = CV.parse_json("""{"a": [1, -2.5e3, true, false, null], "b": "x\\"\\u00e9\\ud83d\\ude00", "c": {}}""")
    @test v["a"] == Any[1, -2500.0, true, false, nothing]
    @test v["b"] == "x\"é😀"
    @test v["c"] == Dict{String,Any}()
    @test CV.parse_json(CV.write_json(v)) == v
    @test_throws CV.JSON.ParseError CV.parse_json("{\"a\": }")
    @test_throws CV.JSON.ParseError CV.parse_json("[1, 2] x")
end

end # testset
