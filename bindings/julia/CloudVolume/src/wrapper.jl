# CloudVolumeWrapper: an open layer, with CloudVolume.jl's constructor keywords, indexing and
# accessors.
#
# Coordinates are CloudVolume.jl's: absolute voxel coordinates at the handle's mip (including
# the layer's voxel_offset, which may be negative), with no shift from Julia's 1-based indexing;
# only the stop is inclusive. `vol[a:b, c:d, e:f]` reads the half-open box
# [a, b+1) x [c, d+1) x [e, f+1). Arrays are column-major with x fastest, as the chunks are, so
# the library decodes straight into the Julia array.

"""
    CloudVolumeWrapper(storage_string; mip=0, bounded=true, autocrop=false, fill_missing=false,
                       cache=false, cdn_cache=false, progress=false, info=nothing,
                       provenance=nothing, compress=nothing, non_aligned_writes=false,
                       parallel=false, output_to_shared_memory=false,
                       agglomerate=nothing, timestamp=nothing, stop_layer=nothing,
                       use_https=false, secrets=nothing, ocp_format=nothing)
    CloudVolumeWrapper(f, storage_string; kwargs...)   # do-block: closed when `f` returns

Open the Precomputed layer at `storage_string` (`file://...` or a path, `http(s)://...`,
`gs://bucket/...`, `s3://bucket/...`, optionally behind `precomputed://`), a graphene layer
(`graphene://https://...`), a DVID data instance (`dvid://host:port/uuid/name`), a BOSS
channel (`boss://collection/experiment/channel`, or `boss://http(s)://host/...`) or an OCP /
ndstore channel (`ocp://host[/prefix]/token[/channel]`). The keywords
and their defaults are CloudVolume.jl's. What each does here:

- `mip`: the scale that indexing, `size`, `offset`, `chunks` and `resolution` use.
- `bounded`: `true` refuses boxes leaving the volume (`CV_ERR_OUT_OF_BOUNDS`); `false` fills
  the outside with background (0).
- `autocrop`: crop boxes to the volume bounds before reading or writing (the result is then
  smaller than the request, as in cloud-volume).
- `fill_missing`: read missing chunks as background instead of failing.
- `compress`: compression of written chunks: `nothing` (cloud-volume's default: gzip over
  HTTP and object stores, plain files on `file://`), `false`, `true`/`"gzip"`, `"zstd"`.
- `non_aligned_writes`: allow writes off the chunk grid (edge chunks are read, merged and
  rewritten).
- `parallel`: `false`/`true` use the library's default number of requests in flight (cores
  for files; on the network 24 workers and up to 256 chunk reads); an integer `n` sets it
  (1 to 1024). The library uses threads, not processes.
- `max_inflight_bytes`: bytes of fetched bodies held at once (default 32 MiB, at least
  65536): how many chunk reads are out within `parallel` (an extension of this package).
- `info`: a Dict: create the layer with this info when it has none (the info file is written
  at once, since this package has no `commit_info`); when the layer exists, its stored info
  must equal `info`, else an error is thrown (silently using a different info than the stored
  one would read and write the wrong chunks). On `dvid://` (a service keeps no info file) it
  creates the data instance (`cv_create`: the DVID type from data type, channels and layer
  type, block size = chunk size, voxel size = resolution); an existing name is refused.
- `provenance`: a Dict returned by `provenance(vol)`; it is not written to storage.
- `use_https`: read `gs://` and `s3://` through their public HTTPS endpoints, unsigned.
- `agglomerate`, `timestamp` (unix seconds), `stop_layer`: cloud-volume's graphene://
  keywords (map supervoxels to roots, as of a time, or to ancestors at a layer); `secrets`: the
  CAVE token (else cave-secret.json is read), DVID's Bearer token, or the BOSS's credentials
  (the token, or `Dict("protocol" => ..., "host" => ..., "token" => ...)`). Passed to the
  library only when given.
- `ocp_format`: on `ocp://`, the cutout body to ask ndstore for: `"npz"` (the library's
  default), `"raw"` or `"hdf5"` (read without libhdf5); writes always post `npz`.
- Accepted and ignored: `cdn_cache` (no Cache-Control header is set), `progress` (no progress
  bar), `output_to_shared_memory` (reads return an ordinary `Array`: the library decodes into
  Julia memory directly, so there is no shared-memory segment to hand back).
- `cache`: cloud-volume's local disk cache: `false` (the default) off, `true` for
  `\$CLOUD_VOLUME_CACHE_DIR` (else `~/.cloudvolume/cache`), or a directory; the same tree
  cloud-volume keeps, so either tool's cache serves the other. `flush(vol)` empties it.

Unlike CloudVolume.jl, constructors are not memoized: each call opens its own handle, released
by `close(vol)` or by the garbage collector. Handles may be used from several threads at once
(but not while being closed).
"""
mutable struct CloudVolumeWrapper
    ptr::Ptr{Cvoid}
    cloudpath::String
    options_json::String
    mip::Int
    dtype::DataType
    channels::Int
    autocrop::Bool
    provenance::Union{AbstractDict,Nothing}

    function CloudVolumeWrapper(storage_string::AbstractString;
            mip::Integer = 0,
            bounded::Bool = true,
            autocrop::Bool = false,
            fill_missing::Bool = false,
            cache::Union{Bool,AbstractString} = false,
            cdn_cache::Union{Bool,Integer,AbstractString} = false,
            progress::Bool = false,
            info::Union{AbstractDict,Nothing} = nothing,
            provenance::Union{AbstractDict,Nothing} = nothing,
            compress::Union{Bool,AbstractString,Nothing} = nothing,
            non_aligned_writes::Bool = false,
            parallel::Union{Bool,Integer} = false,
            max_inflight_bytes::Union{Integer,Nothing} = nothing,
            output_to_shared_memory::Union{Bool,AbstractString} = false,
            agglomerate::Union{Bool,Nothing} = nothing,
            timestamp::Union{Real,Nothing} = nothing,
            stop_layer::Union{Integer,Nothing} = nothing,
            use_https::Bool = false,
            secrets::Union{AbstractString,AbstractDict,Nothing} = nothing,
            ocp_format::Union{AbstractString,Nothing} = nothing)
        mip >= 0 || throw(ArgumentError("mip must be >= 0, got $(mip)"))
        opts = Dict{String,Any}(
            "mip" => Int(mip),
            "bounded" => bounded,
            "fill_missing" => fill_missing,
            "non_aligned_writes" => non_aligned_writes,
            "compress" => compress,
            # Bool <: Integer in Julia: test Bool first.
            "parallel" => parallel isa Bool ? parallel : Int(parallel),
        )
        # cache=false is the library's default; true or a directory turns the disk cache on.
        cache === false || (opts["cache"] = cache)
        # graphene:// (cloud-volume's keywords): given only when set.
        agglomerate === nothing || (opts["agglomerate"] = agglomerate)
        timestamp === nothing || (opts["timestamp"] = Float64(timestamp))
        stop_layer === nothing || (opts["stop_layer"] = Int(stop_layer))
        use_https && (opts["use_https"] = true)
        secrets === nothing || (opts["secrets"] = secrets)
        ocp_format === nothing || (opts["ocp_format"] = String(ocp_format))
        max_inflight_bytes === nothing || (opts["max_inflight_bytes"] = Int(max_inflight_bytes))
        options_json = write_json(opts)
        path = String(storage_string)
        fptr(:cv_free)   # resolved now, so the finalizer never takes the loader's lock
        out = Ref{Ptr{Cvoid}}(C_NULL)
        if info === nothing
            check(cv_open(path, options_json, out))
        elseif is_service(path)
            # A service keeps no info file: the library creates the data instance from the info.
            check(cv_create(path, write_json(info), options_json, out))
        else
            open_or_create!(out, path, info, options_json)
        end
        x = new(out[], path, options_json, Int(mip), Nothing, 0, autocrop, provenance)
        finalizer(close, x)
        try
            dt = Ref{Int32}(0)
            check(cv_data_type(x, dt))
            haskey(CV_DTYPES, dt[]) || throw(CloudVolumeError(CV_ERR_UNSUPPORTED, "data type code $(dt[])"))
            x.dtype = CV_DTYPES[dt[]]
            nc = Ref{UInt32}(0)
            check(cv_num_channels(x, nc))
            x.channels = Int(nc[])
            bounds(x)   # an unknown mip fails here, naming it
        catch
            close(x)
            rethrow()
        end
        return x
    end
end

function CloudVolumeWrapper(f::Function, storage_string::AbstractString; kwargs...)
    vol = CloudVolumeWrapper(storage_string; kwargs...)
    try
        return f(vol)
    finally
        close(vol)
    end
end

# Services answer boxes and keep no info file (dvid://, boss://, ocp://).
is_service(path::AbstractString) = any(p -> startswith(lowercase(path), p), ("dvid://", "boss://", "ocp://"))

function open_or_create!(out, path, info_dict::AbstractDict, options_json)
    given = write_json(info_dict)
    st = StorageWrapper(path; options_json = options_json)
    has_info = try
        exists(st, "info")
    finally
        close(st)
    end
    if !has_info
        check(cv_create(path, given, options_json, out))
        return
    end
    check(cv_open(path, options_json, out))
    s = Ref{Ptr{UInt8}}(C_NULL)
    status = cv_info_json(out[], s)
    if status != CV_OK
        err = CloudVolumeError(status, unsafe_string(cv_last_error()))
        cv_free(out[])
        throw(err)
    end
    stored = unsafe_string(s[])
    cv_string_free(s[])
    if !json_equal(parse_json(stored), parse_json(given))
        cv_free(out[])
        throw(ArgumentError("$(path) already has an info that differs from the `info` keyword; " *
                            "open it without `info`, or write to a new location"))
    end
end

# JSON values equal as numbers (4 == 4.0), strings, arrays and objects.
json_equal(a, b) = a == b
json_equal(a::AbstractString, b::AbstractString) = a == b
json_equal(a::Number, b::Number) = a == b
json_equal(a::AbstractVector, b::AbstractVector) =
    length(a) == length(b) && all(json_equal(u, v) for (u, v) in zip(a, b))
json_equal(a::AbstractDict, b::AbstractDict) =
    Set(string.(keys(a))) == Set(string.(keys(b))) &&
    all(json_equal(a[k], b[k]) for k in keys(a))

# A live handle goes straight into `ccall` (HDF5.jl's pattern): the wrapper stays rooted for the
# duration of the call.
function Base.unsafe_convert(::Type{Ptr{Cvoid}}, x::CloudVolumeWrapper)
    x.ptr == C_NULL && throw(ArgumentError("CloudVolumeWrapper($(x.cloudpath)) is closed"))
    return x.ptr
end

"""
    close(vol::CloudVolumeWrapper)

Release the handle now (idempotent; also run by the garbage collector). The wrapper cannot be
used afterwards.
"""
function Base.close(x::CloudVolumeWrapper)
    p = x.ptr
    if p != C_NULL
        x.ptr = C_NULL
        cv_free(p)
    end
    return nothing
end

Base.isopen(x::CloudVolumeWrapper) = x.ptr != C_NULL

function Base.show(io::IO, x::CloudVolumeWrapper)
    print(io, "CloudVolumeWrapper(\"", x.cloudpath, "\"; mip=", x.mip)
    isopen(x) ? print(io, ", ", x.dtype, ", ", x.channels, " channel(s))") : print(io, ", closed)")
end

# ---------------------------------------------------------------------------------------------
# Accessors.

# (lo, hi) of the handle's mip: voxel_offset and voxel_offset + size.
function bounds(x::CloudVolumeWrapper, mip::Integer = x.mip)
    lo = zeros(Int64, 3)
    hi = zeros(Int64, 3)
    check(cv_bounds(x, UInt32(mip), lo, hi))
    return lo, hi
end

"""
    size(vol::CloudVolumeWrapper) -> (x, y, z, channels)

The size of the volume at the handle's mip and its number of channels (a 4-tuple, like
cloud-volume's `shape`).
"""
function Base.size(x::CloudVolumeWrapper)
    lo, hi = bounds(x)
    return (Int(hi[1] - lo[1]), Int(hi[2] - lo[2]), Int(hi[3] - lo[3]), x.channels)
end
Base.size(x::CloudVolumeWrapper, d::Integer) = size(x)[d]

"""
    offset(vol) -> Vector{Int}

The voxel offset (x, y, z) at the handle's mip: the first voxel's absolute coordinates.
"""
offset(x::CloudVolumeWrapper) = Int.(bounds(x)[1])

"""
    scale(vol) -> Int

The handle's mip (an integer, as in CloudVolume.jl; not the scale's info entry).
"""
scale(x::CloudVolumeWrapper) = x.mip

"""
    chunks(vol) -> Vector{Int}

The chunk size (x, y, z) at the handle's mip.
"""
function chunks(x::CloudVolumeWrapper)
    c = zeros(Int64, 3)
    check(cv_chunk_size(x, UInt32(x.mip), c))
    return Int.(c)
end

"""
    resolution(vol) -> Vector{Float64}

The voxel size (x, y, z) in nanometres at the handle's mip.
"""
function resolution(x::CloudVolumeWrapper)
    r = zeros(Cdouble, 3)
    check(cv_resolution(x, UInt32(x.mip), r))
    return r
end

"""
    info(vol) -> Dict{String,Any}

The layer's info file, every member (known to the library or not), as a Dict.
"""
function info(x::CloudVolumeWrapper)
    s = Ref{Ptr{UInt8}}(C_NULL)
    check(cv_info_json(x, s))
    text = try
        unsafe_string(s[])
    finally
        cv_string_free(s[])
    end
    return parse_json(text)
end

"""
    provenance(vol) -> Dict

The `provenance` keyword given to the constructor, else the layer's stored `provenance` file
(parsed), else cloud-volume's empty provenance (`sources`, `owners`, `processing`,
`description`).
"""
function provenance(x::CloudVolumeWrapper)
    x.provenance === nothing || return x.provenance
    st = StorageWrapper(x.cloudpath; options_json = x.options_json)
    try
        if exists(st, "provenance")
            return parse_json(String(st["provenance"]))
        end
    finally
        close(st)
    end
    return Dict{String,Any}("sources" => Any[], "owners" => Any[], "processing" => Any[], "description" => "")
end

"""
    flush(vol)

Empty the handle's caches (CloudVolume.jl's `flush`, cloud-volume's `flush_cache`): the disk
cache of `cache=...` under this layer, and chunks kept in memory. Writes need no flushing:
every write is stored before its call returns.
"""
Base.flush(x::CloudVolumeWrapper) = (check(cv_cache_clear(x)); nothing)

# ---------------------------------------------------------------------------------------------
# Boxes.

const AnyRange = AbstractUnitRange{<:Integer}

# Inclusive Julia ranges to the half-open box [lo, hi), cropped to the bounds with autocrop.
# Returns (lo, hi, crop) where crop holds, per axis, the indices of the request kept.
function box(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange, mip::Integer = x.mip)
    rs = (rx, ry, rz)
    lo = Int64[first(r) for r in rs]
    hi = Int64[last(r) + 1 for r in rs]
    keep = UnitRange{Int}[1:length(r) for r in rs]
    if x.autocrop
        blo, bhi = bounds(x, mip)
        for d in 1:3
            nlo = max(lo[d], blo[d])
            nhi = max(min(hi[d], bhi[d]), nlo)
            keep[d] = Int(nlo - lo[d] + 1):Int(nhi - lo[d])
            lo[d], hi[d] = nlo, nhi
        end
    end
    return lo, hi, keep
end

# Read [lo, hi) at the handle's mip, every channel: Array{T,4} (x, y, z, channel).
function read_box(x::CloudVolumeWrapper, ::Type{T}, lo::Vector{Int64}, hi::Vector{Int64}, mip::Integer = x.mip) where {T}
    a = Array{T,4}(undef, Int(hi[1] - lo[1]), Int(hi[2] - lo[2]), Int(hi[3] - lo[3]), x.channels)
    isempty(a) && return a
    check(cv_cutout_into(x, UInt32(mip), lo, hi, a, Csize_t(sizeof(a))))
    return a
end

function read4(x::CloudVolumeWrapper, rx, ry, rz)
    lo, hi, _ = box(x, rx, ry, rz)
    return read_box(x, x.dtype, lo, hi)
end

# Channel 0 of a 4-D read (no copy for one channel).
channel0(a::Array{T,4}) where {T} = size(a, 4) == 1 ? reshape(a, size(a, 1), size(a, 2), size(a, 3)) : a[:, :, :, 1]

# ---------------------------------------------------------------------------------------------
# Reads.

"""
    vol[x0:x1, y0:y1, z0:z1]          -> Array{T,3}   (channel 0, as CloudVolume.jl)
    vol[x0:x1, y0:y1, z]              -> Array{T,2}   (one z slice of channel 0)
    vol[x0:x1, y0:y1, z0:z1, c0:c1]   -> Array{T,4}   (channels c0..c1, numbered from 0)
    vol[x0:x1, y0:y1, z0:z1, :]       -> Array{T,4}   (every channel)

Absolute voxel coordinates at the handle's mip, stops inclusive. `T` is the layer's data type.
Errors (`CloudVolumeError`): out of bounds with `bounded`, missing chunks without
`fill_missing`, unreachable storage, corrupt chunks.
"""
Base.getindex(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange) = channel0(read4(x, rx, ry, rz))

function Base.getindex(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, z::Integer)
    a = channel0(read4(x, rx, ry, z:z))
    return reshape(a, size(a, 1), size(a, 2))
end

Base.getindex(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange, ::Colon) = read4(x, rx, ry, rz)

function Base.getindex(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange, rc::AnyRange)
    check_channels(x, rc)
    a = read4(x, rx, ry, rz)
    return rc == 0:x.channels-1 ? a : a[:, :, :, (first(rc)+1):(last(rc)+1)]
end

function check_channels(x::CloudVolumeWrapper, rc::AnyRange)
    (isempty(rc) || (first(rc) >= 0 && last(rc) < x.channels)) ||
        throw(ArgumentError("channels $(rc) are not in 0:$(x.channels - 1) (channels are numbered from 0)"))
end

# ---------------------------------------------------------------------------------------------
# Writes.

"""
    vol[x0:x1, y0:y1, z0:z1] = img            # img: (x, y, z) or (x, y, z, channels)
    vol[x0:x1, y0:y1, z] = img                # img: (x, y), one z slice
    vol[x0:x1, y0:y1, z0:z1, :] = img         # img: (x, y, z, channels)

Write a box. The element type must be the layer's data type exactly, and the array's size the
box's (a 3-D array for one-channel layers, or with every channel). The box must be on the
chunk grid (or reach the volume edge) unless `non_aligned_writes=true`. Each chunk is replaced
whole: a failed write leaves every chunk old or new.
"""
function Base.setindex!(x::CloudVolumeWrapper, img::AbstractArray, rx::AnyRange, ry::AnyRange, rz::AnyRange)
    write_box(x, img, rx, ry, rz)
    return x
end

function Base.setindex!(x::CloudVolumeWrapper, img::AbstractMatrix, rx::AnyRange, ry::AnyRange, z::Integer)
    write_box(x, reshape(img, size(img, 1), size(img, 2), 1), rx, ry, z:z)
    return x
end

function Base.setindex!(x::CloudVolumeWrapper, img::AbstractArray, rx::AnyRange, ry::AnyRange, rz::AnyRange, ::Colon)
    write_box(x, img, rx, ry, rz)
    return x
end

function Base.setindex!(x::CloudVolumeWrapper, img::AbstractArray, rx::AnyRange, ry::AnyRange, rz::AnyRange, rc::AnyRange)
    check_channels(x, rc)
    rc == 0:x.channels-1 ||
        throw(ArgumentError("writes take every channel (0:$(x.channels - 1)), got channels $(rc)"))
    write_box(x, img, rx, ry, rz)
    return x
end

function write_box(x::CloudVolumeWrapper, img::AbstractArray, rx::AnyRange, ry::AnyRange, rz::AnyRange)
    T = x.dtype
    eltype(img) === T ||
        throw(ArgumentError("the array's element type is $(eltype(img)) but the layer's data type is $(T); convert it first"))
    want = (length(rx), length(ry), length(rz))
    nd = ndims(img)
    ok = (nd == 3 && size(img) == want && x.channels == 1) ||
         (nd == 4 && size(img) == (want..., x.channels))
    ok || throw(DimensionMismatch("the array is $(size(img)) but the box is $(want) with $(x.channels) channel(s)" *
                                  (x.channels > 1 && nd == 3 ? ": give a 4-D array with every channel" : "")))
    lo, hi, keep = box(x, rx, ry, rz)
    any(hi .<= lo) && return nothing
    part = keep == [1:w for w in want] ? img :
           (nd == 3 ? view(img, keep[1], keep[2], keep[3]) : view(img, keep[1], keep[2], keep[3], :))
    buf = part isa Array ? part : Array{T}(part)
    check(cv_write_from(x, UInt32(x.mip), lo, hi, buf, Csize_t(sizeof(buf))))
    return nothing
end

"""
    upload_from_shared_memory(vol, img, x0:x1, y0:y1, z0:z1,
                              cutout_x=nothing, cutout_y=nothing, cutout_z=nothing)

CloudVolume.jl's upload of a large array: `img` covers the box `x0:x1, y0:y1, z0:z1`; only
the part inside the cutout ranges (each defaults to the whole box) is written. The library
reads Julia memory directly, so `img` is never copied into `/dev/shm`: this is a plain write.
"""
function upload_from_shared_memory(x::CloudVolumeWrapper, img::AbstractArray,
        slicex::AnyRange, slicey::AnyRange, slicez::AnyRange,
        cutout_slicex::Union{AnyRange,Nothing} = nothing,
        cutout_slicey::Union{AnyRange,Nothing} = nothing,
        cutout_slicez::Union{AnyRange,Nothing} = nothing)
    full = (slicex, slicey, slicez)
    cut = (something(cutout_slicex, slicex), something(cutout_slicey, slicey), something(cutout_slicez, slicez))
    for d in 1:3
        (isempty(cut[d]) || (first(cut[d]) >= first(full[d]) && last(cut[d]) <= last(full[d]))) ||
            throw(ArgumentError("cutout range $(cut[d]) is not inside $(full[d])"))
    end
    idx = ntuple(d -> (first(cut[d]) - first(full[d]) + 1):(last(cut[d]) - first(full[d]) + 1), 3)
    part = cut == full ? img : (ndims(img) == 3 ? view(img, idx...) : view(img, idx..., :))
    write_box(x, part, cut...)
    return nothing
end

"""
    delete!(vol, x0:x1, y0:y1, z0:z1)

Delete the chunks of a chunk-aligned box (unsharded scales); they then read as missing.
"""
function Base.delete!(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange)
    lo, hi, _ = box(x, rx, ry, rz)
    check(cv_delete(x, UInt32(x.mip), lo, hi))
    return x
end

"""
    exists(vol, x0:x1, y0:y1, z0:z1) -> Dict{String,Bool}

Which chunks of the box are stored, like cloud-volume's `vol.exists(bbox)`: chunk file names
(`<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`) to `true`/`false`, for the grid cells the box
meets inside the bounds.
"""
function exists(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange)
    lo, hi, _ = box(x, rx, ry, rz)
    n = Ref{Csize_t}(0)
    check(cv_chunk_count(x, UInt32(x.mip), lo, hi, n))
    flags = zeros(UInt8, Int(n[]))
    check(cv_chunks_exist(x, UInt32(x.mip), lo, hi, flags, Csize_t(length(flags)), Ptr{Csize_t}(C_NULL)))
    names = chunk_names(x, lo, hi)
    length(names) == length(flags) ||
        error("CloudVolume: the library counts $(length(flags)) chunk(s) in the box, this package $(length(names))")
    return Dict{String,Bool}(k => f != 0 for (k, f) in zip(names, flags))
end

# The grid cells [lo, hi) meets inside the bounds, x fastest (the library's order), named as
# cloud-volume names chunk files.
function chunk_names(x::CloudVolumeWrapper, lo, hi)
    blo, bhi = bounds(x)
    c = chunks(x)
    key = info(x)["scales"][x.mip+1]["key"]
    ranges = map(1:3) do d
        l, h = max(lo[d], blo[d]), min(hi[d], bhi[d])
        h <= l && return Int64[]
        first_cell = fld(l - blo[d], c[d])
        last_cell = cld(h - blo[d], c[d]) - 1
        return Int64[blo[d] + g * c[d] for g in first_cell:last_cell]
    end
    names = String[]
    for z0 in ranges[3], y0 in ranges[2], x0 in ranges[1]
        x1, y1, z1 = min(x0 + c[1], bhi[1]), min(y0 + c[2], bhi[2]), min(z0 + c[3], bhi[3])
        push!(names, "$(key)/$(x0)-$(x1)_$(y0)-$(y1)_$(z0)-$(z1)")
    end
    return names
end

"""
    CloudVolume.create_new_info(num_channels, layer_type, data_type, encoding, resolution,
                                voxel_offset, volume_size; chunk_size=(128, 128, 64)) -> Dict

A valid info for a new one-scale layer, like cloud-volume's `CloudVolume.create_new_info`
(built and validated by the library's `cv_new_info`). Pass it as the `info` keyword of
`CloudVolumeWrapper` to create the layer.
"""
function create_new_info(num_channels::Integer, layer_type::AbstractString, data_type::AbstractString,
        encoding::AbstractString, resolution, voxel_offset, volume_size; chunk_size = (128, 128, 64))
    three(v, T, what) = (length(v) == 3 || throw(ArgumentError("$(what) needs 3 values, got $(v)")); T[v...])
    out = Ref{Ptr{UInt8}}(C_NULL)
    check(cv_new_info(String(layer_type), String(data_type), String(encoding), UInt32(num_channels),
                      three(resolution, Cdouble, "resolution"), three(voxel_offset, Int64, "voxel_offset"),
                      three(volume_size, Int64, "volume_size"), three(chunk_size, Int64, "chunk_size"), out))
    text = try
        unsafe_string(out[])
    finally
        cv_string_free(out[])
    end
    return parse_json(text)
end

# ---------------------------------------------------------------------------------------------
# Label operations (uint32/uint64 layers, Precomputed and graphene), as cloud-volume names them.
#
# A box is given as three inclusive ranges, `x0:x1, y0:y1, z0:z1`, or as one tuple of them
# (cloud-volume's `bbox`); `mip` defaults to the handle's. With `autocrop` the box is cropped to
# the bounds first, and an empty box (an empty range, or one cropped away) gives an empty
# result, as indexing does. Every call checks its status and releases what the library handed
# out before returning or throwing.

const BBox = Tuple{AnyRange,AnyRange,AnyRange}

# [lo, hi) of the ranges at `mip`, cropped to the bounds with autocrop (as cloud-volume crops
# the bbox of unique and download).
function label_box(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange, mip::Integer)
    mip >= 0 || throw(ArgumentError("mip must be >= 0, got $(mip)"))
    lo, hi, _ = box(x, rx, ry, rz, mip)
    return lo, hi
end

# (x, y, z, channels) of a read of [lo, hi).
box_dims(x::CloudVolumeWrapper, lo, hi) =
    (Int(max(hi[1] - lo[1], 0)), Int(max(hi[2] - lo[2], 0)), Int(max(hi[3] - lo[3], 0)), x.channels)

# A copy of `n` UInt64 the library allocated (empty for NULL / 0).
copy_u64(p::Ptr{UInt64}, n) = (p == C_NULL || n == 0) ? UInt64[] : copy(unsafe_wrap(Vector{UInt64}, p, Int(n)))

"""
    unique(vol, bbox; mip=vol.mip, counts=false) -> Vector or (labels, counts)
    unique(vol, x0:x1, y0:y1, z0:z1; mip=vol.mip, counts=false)

The labels of the box, sorted ascending, in the layer's element type (cloud-volume's
`vol.unique(bbox)` gives them as a set), counted chunk by chunk without reading the box into
memory; with `counts=true` also each label's number of voxels (`Vector{Int}`, every channel).
On a graphene layer with `agglomerate` the labels are roots (or `stop_layer` ancestors).
uint32/uint64 layers only (`CV_ERR_INVALID_ARGUMENT` otherwise).
"""
function Base.unique(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange;
                     mip::Integer = x.mip, counts::Bool = false)
    lo, hi = label_box(x, rx, ry, rz, mip)
    T = x.dtype <: Unsigned ? x.dtype : UInt64
    any(hi .<= lo) && return counts ? (T[], Int[]) : T[]
    pl, pc, n = Ref{Ptr{UInt64}}(C_NULL), Ref{Ptr{UInt64}}(C_NULL), Ref{Csize_t}(0)
    check(cv_unique(x, UInt32(mip), lo, hi, pl, counts ? pc : Ptr{Ptr{UInt64}}(C_NULL), n))
    labels, cnts = try
        copy_u64(pl[], n[]), copy_u64(pc[], n[])
    finally
        cv_labels_free(pl[], n[])
        cv_labels_free(pc[], n[])
    end
    out = T.(labels)
    return counts ? (out, Int.(cnts)) : out
end
Base.unique(x::CloudVolumeWrapper, bbox::BBox; kwargs...) = unique(x, bbox...; kwargs...)

"""
    label_mask(vol, bbox, labels; mip=vol.mip) -> Array{Bool,4}
    label_mask(vol, x0:x1, y0:y1, z0:z1, labels; mip=vol.mip)

`true` where a voxel of the box (x, y, z, channel) holds one of `labels` (one label or a
collection): cloud-volume's `download(bbox, label=L)`, also reached as
`download(vol, bbox; label=L)`.
"""
function label_mask(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange, labels; mip::Integer = x.mip)
    lo, hi = label_box(x, rx, ry, rz, mip)
    want = labels isa Integer ? UInt64[UInt64(labels)] : UInt64[UInt64(l) for l in labels]
    out = Array{UInt8,4}(undef, box_dims(x, lo, hi))
    isempty(out) && return zeros(Bool, size(out))
    check(cv_label_mask_into(x, UInt32(mip), lo, hi, want, Csize_t(length(want)), out, Csize_t(length(out))))
    return map(!=(0x00), out)
end
label_mask(x::CloudVolumeWrapper, bbox::BBox, labels; kwargs...) = label_mask(x, bbox..., labels; kwargs...)

"""
    download_point(vol, pt; size=256, mip=vol.mip, coord_resolution=nothing) -> Array{T,4}

cloud-volume's `download_point`: `size` voxels (one number or three) around `pt`, given in mip 0
voxels, or in voxels of `coord_resolution` (nm) when given, read at `mip`:
`[p - size÷2, p + size÷2)` per axis (`[p, p+1)` where the size is 1), `p` being `pt` at `mip`;
with `autocrop` that box is cropped to the bounds (as cloud-volume does).
"""
function download_point(x::CloudVolumeWrapper, pt; size = 256, mip::Integer = x.mip, coord_resolution = nothing)
    mip >= 0 || throw(ArgumentError("mip must be >= 0, got $(mip)"))
    p = Float64[Float64(v) for v in pt]
    s = size isa Integer ? Int64[size, size, size] : Int64[Int64(v) for v in size]
    length(p) == 3 && length(s) == 3 || throw(ArgumentError("pt and size need three values"))
    cr = if coord_resolution === nothing
        Ptr{Float64}(C_NULL)
    else
        c = Float64[Float64(v) for v in coord_resolution]
        length(c) == 3 || throw(ArgumentError("coord_resolution needs three values"))
        c
    end
    lo, hi = zeros(Int64, 3), zeros(Int64, 3)
    check(cv_point_box(x, UInt32(mip), p, s, cr, lo, hi))
    if x.autocrop   # cloud-volume intersects the box with the bounds
        blo, bhi = bounds(x, mip)
        lo = max.(lo, blo)
        hi = max.(min.(hi, bhi), lo)
    end
    return read_box(x, x.dtype, lo, hi, mip)
end

"""
    renumber(vol, bbox; mip=vol.mip) -> (img, mapping)
    renumber(vol, x0:x1, y0:y1, z0:z1; mip=vol.mip)

cloud-volume's `download(bbox, renumber=True)` (also `download(vol, bbox; renumber=true)`):
the box (x, y, z, channel) with its labels renumbered 1, 2, ... in ascending order (0 stays 0)
in the smallest of UInt8, UInt16, UInt32, UInt64 that holds them, and the `Dict` from original
label to new value (0 => 0 included).
"""
function renumber(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange; mip::Integer = x.mip)
    lo, hi = label_box(x, rx, ry, rz, mip)
    K = x.dtype <: Unsigned ? x.dtype : UInt64
    any(hi .<= lo) && return Array{UInt8,4}(undef, box_dims(x, lo, hi)), Dict{K,UInt8}(K(0) => 0x00)
    pd, len, dt = Ref{Ptr{UInt8}}(C_NULL), Ref{Csize_t}(0), Ref{Int32}(0)
    pl, n = Ref{Ptr{UInt64}}(C_NULL), Ref{Csize_t}(0)
    check(cv_renumber(x, UInt32(mip), lo, hi, pd, len, dt, pl, n))
    img, labels = try
        T = get(CV_DTYPES, dt[], Nothing)
        T === Nothing && throw(CloudVolumeError(CV_ERR_INTERNAL, "cv_renumber: unknown data type code $(dt[])"))
        a = Array{T,4}(undef, box_dims(x, lo, hi))
        sizeof(a) == Int(len[]) ||
            throw(CloudVolumeError(CV_ERR_INTERNAL, "cv_renumber gave $(len[]) bytes for a box of $(sizeof(a))"))
        len[] > 0 && unsafe_copyto!(Ptr{UInt8}(pointer(a)), pd[], Int(len[]))
        a, copy_u64(pl[], n[])
    finally
        cv_bytes_free(pd[], len[])
        cv_labels_free(pl[], n[])
    end
    T = eltype(img)
    return img, Dict{K,T}(K(l) => T(v - 1) for (v, l) in enumerate(labels))
end
renumber(x::CloudVolumeWrapper, bbox::BBox; kwargs...) = renumber(x, bbox...; kwargs...)

"""
    download(vol, bbox; mip=vol.mip, label=nothing, renumber=false, channel_first=false)
    download(vol, x0:x1, y0:y1, z0:z1; ...)

cloud-volume's `vol.download(bbox, mip, label=, renumber=)`: the box as `Array{T,4}`
(x, y, z, channel) at `mip`; with `label=L` (one label or several) the `Array{Bool,4}` mask of
`label_mask`; with `renumber=true` the `(img, mapping)` of `renumber`. With
`channel_first=true` the array is `(channel, x, y, z)` instead (`permutedims(a, (4, 1, 2, 3))`,
a copy): pydvid's `cxyz` volumes (channel first, Fortran order: a voxel's channels together in
memory, as DVID packs rgba8 voxels), also for one channel (`(1, x, y, z)`).
"""
function Base.download(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange;
                       mip::Integer = x.mip, label = nothing, renumber::Bool = false,
                       channel_first::Bool = false)
    label === nothing || !renumber || throw(ArgumentError("download: give label or renumber=true, not both"))
    out = if label !== nothing
        label_mask(x, rx, ry, rz, label; mip = mip)
    elseif renumber
        CloudVolume.renumber(x, rx, ry, rz; mip = mip)
    else
        lo, hi = label_box(x, rx, ry, rz, mip)
        read_box(x, x.dtype, lo, hi, mip)
    end
    channel_first || return out
    return out isa Tuple ? (cxyz(out[1]), out[2]) : cxyz(out)
end

# (x, y, z, c) -> (c, x, y, z).
cxyz(a::AbstractArray{T,4}) where {T} = permutedims(a, (4, 1, 2, 3))
Base.download(x::CloudVolumeWrapper, bbox::BBox; kwargs...) = download(x, bbox...; kwargs...)

"""
    download_files(vol, bbox; mip=vol.mip, decompress=true) -> Dict{String,Vector{UInt8}}
    download_files(vol, x0:x1, y0:y1, z0:z1; mip=vol.mip, decompress=true)

cloud-volume's `download_files`: the stored chunk files the box meets, by name (the chunk key
`<scale key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`, or the compressed Morton code in decimal in a
sharded scale), decompressed unless `decompress=false`; missing chunks are left out.
"""
function download_files(x::CloudVolumeWrapper, rx::AnyRange, ry::AnyRange, rz::AnyRange;
                        mip::Integer = x.mip, decompress::Bool = true)
    lo, hi = label_box(x, rx, ry, rz, mip)
    f = Ref{Ptr{Cvoid}}(C_NULL)
    check(cv_download_files(x, UInt32(mip), lo, hi, Int32(decompress), f))
    out = Dict{String,Vector{UInt8}}()
    try
        for i in 0:Int(cv_files_count(f[]))-1
            name, data, len = Ref{Ptr{UInt8}}(C_NULL), Ref{Ptr{UInt8}}(C_NULL), Ref{Csize_t}(0)
            check(cv_files_get(f[], Csize_t(i), name, data, len))
            out[unsafe_string(name[])] = len[] == 0 ? UInt8[] : copy(unsafe_wrap(Vector{UInt8}, data[], Int(len[])))
        end
    finally
        cv_files_free(f[])
    end
    return out
end
download_files(x::CloudVolumeWrapper, bbox::BBox; kwargs...) = download_files(x, bbox...; kwargs...)
