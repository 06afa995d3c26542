# The low level: finding libcloudvolume, and one raw `ccall` per function of
# include/cloudvolume.h, with the same name, argument order and C types (checked by
# tests/julia_checks.py against the header). Nothing here allocates Julia objects beyond the
# call itself; the Julian layer (wrapper.jl, storage.jl) checks statuses and owns handles.

# Status codes (`cv_status`, int32_t).
const CV_OK = Cint(0)
const CV_ERR_INVALID_ARGUMENT = Cint(1)
const CV_ERR_OUT_OF_BOUNDS = Cint(2)
const CV_ERR_NOT_FOUND = Cint(3)
const CV_ERR_IO = Cint(4)
const CV_ERR_AUTH = Cint(5)
const CV_ERR_DECODE = Cint(6)
const CV_ERR_UNSUPPORTED = Cint(7)
const CV_ERR_INTERNAL = Cint(8)

const STATUS_NAMES = Dict{Cint,String}(
    CV_OK => "CV_OK",
    CV_ERR_INVALID_ARGUMENT => "CV_ERR_INVALID_ARGUMENT",
    CV_ERR_OUT_OF_BOUNDS => "CV_ERR_OUT_OF_BOUNDS",
    CV_ERR_NOT_FOUND => "CV_ERR_NOT_FOUND",
    CV_ERR_IO => "CV_ERR_IO",
    CV_ERR_AUTH => "CV_ERR_AUTH",
    CV_ERR_DECODE => "CV_ERR_DECODE",
    CV_ERR_UNSUPPORTED => "CV_ERR_UNSUPPORTED",
    CV_ERR_INTERNAL => "CV_ERR_INTERNAL",
)

# Element types (`CV_DTYPE_*`) and the Julia types they read into.
const CV_DTYPES = Dict{Cint,DataType}(
    Cint(1) => UInt8,
    Cint(2) => Int8,
    Cint(3) => UInt16,
    Cint(4) => Int16,
    Cint(5) => UInt32,
    Cint(6) => Int32,
    Cint(7) => UInt64,
    Cint(8) => Int64,
    Cint(9) => Float32,
    Cint(10) => Float64,
)

"""
    CloudVolumeError(code, message)

A failed call into libcloudvolume: `code` is the library's `cv_status` (`CV_ERR_NOT_FOUND`,
...), `message` what `cv_last_error()` said (it names the URL, chunk key or box).
"""
struct CloudVolumeError <: Exception
    code::Cint
    message::String
end

function Base.showerror(io::IO, e::CloudVolumeError)
    print(io, "CloudVolumeError(", get(STATUS_NAMES, e.code, string(e.code)), "): ", e.message)
end

# ---------------------------------------------------------------------------------------------
# Finding the library.
#
# 1. ENV["CLOUDVOLUME_LIB"]: the full path of libcloudvolume.so (.dylib, .dll);
# 2. the build output of the repository this package sits in: <repo>/target/release, then
#    <repo>/target/debug (bindings/julia/CloudVolume is four levels below <repo>);
# 3. the system's library search path ("libcloudvolume").
# The first that opens wins; if none does, the error lists every place searched.

const REPO_ROOT = normpath(joinpath(@__DIR__, "..", "..", "..", ".."))
const LIBNAME = "libcloudvolume." * Libdl.dlext

"""
    library_candidates() -> Vector{String}

Where `CloudVolume` looks for libcloudvolume, in order.
"""
function library_candidates()
    env = get(ENV, "CLOUDVOLUME_LIB", "")
    # An explicit choice is never silently replaced by another library.
    isempty(env) || return [env]
    return [joinpath(REPO_ROOT, "target", "release", LIBNAME),
            joinpath(REPO_ROOT, "target", "debug", LIBNAME),
            "libcloudvolume"]
end

const LIB_LOCK = ReentrantLock()
const LIB_HANDLE = Ref{Ptr{Cvoid}}(C_NULL)
const LIB_PATH = Ref{String}("")
const FPTRS = Ref{Dict{Symbol,Ptr{Cvoid}}}(Dict{Symbol,Ptr{Cvoid}}())

"""
    libcloudvolume() -> String

The path of the libcloudvolume in use, loading it on first use (see `library_candidates`).
"""
function libcloudvolume()
    LIB_HANDLE[] == C_NULL && load_library()
    return LIB_PATH[]
end

function load_library()
    lock(LIB_LOCK) do
        LIB_HANDLE[] == C_NULL || return
        tried = String[]
        for cand in library_candidates()
            h = try
                Libdl.dlopen(cand, Libdl.RTLD_LAZY | Libdl.RTLD_LOCAL)
            catch e
                why = (isabspath(cand) && !isfile(cand)) ? "no such file" : sprint(showerror, e)
                push!(tried, "$(cand): $(why)")
                nothing
            end
            h === nothing && continue
            LIB_PATH[] = try
                Libdl.dlpath(h)
            catch
                cand
            end
            LIB_HANDLE[] = h
            return
        end
        error("CloudVolume: cannot load libcloudvolume. Searched, in order:\n  " *
              join(tried, "\n  ") *
              "\nBuild it with `cargo build --release` in the repository, or set " *
              "ENV[\"CLOUDVOLUME_LIB\"] to the full path of $(LIBNAME) before the first call " *
              "(when it is set, only that path is tried).")
    end
end

# The address of a library function, looked up once.
function fptr(name::Symbol)
    p = get(FPTRS[], name, C_NULL)
    p == C_NULL || return p
    LIB_HANDLE[] == C_NULL && load_library()
    lock(LIB_LOCK) do
        p = get(FPTRS[], name, C_NULL)
        if p == C_NULL
            p = Libdl.dlsym(LIB_HANDLE[], name; throw_error = false)
            (p === nothing || p == C_NULL) &&
                error("CloudVolume: $(LIB_PATH[]) has no function $(name): the library is older than this package; rebuild it")
            d = copy(FPTRS[])
            d[name] = p
            FPTRS[] = d   # published whole: readers never see a Dict being modified
        end
        return p
    end
end

# ---------------------------------------------------------------------------------------------
# Raw calls, in the order of include/cloudvolume.h. Handles are `Ptr{Cvoid}`.

cv_open(cloudpath, options_json, out) =
    ccall(fptr(:cv_open), Cint, (Cstring, Ptr{UInt8}, Ptr{Ptr{Cvoid}}), cloudpath, options_json, out)

cv_cutout_into(vol, mip, lo, hi, buf, buf_len) =
    ccall(fptr(:cv_cutout_into), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{Cvoid}, Csize_t),
          vol, mip, lo, hi, buf, buf_len)

cv_free(vol) = ccall(fptr(:cv_free), Cvoid, (Ptr{Cvoid},), vol)

cv_last_error() = ccall(fptr(:cv_last_error), Ptr{UInt8}, ())

cv_version() = ccall(fptr(:cv_version), Ptr{UInt8}, ())

cv_data_type(vol, out) = ccall(fptr(:cv_data_type), Cint, (Ptr{Cvoid}, Ptr{Int32}), vol, out)

cv_cache_clear(vol) = ccall(fptr(:cv_cache_clear), Cint, (Ptr{Cvoid},), vol)

cv_dtype_size(dtype) = ccall(fptr(:cv_dtype_size), Csize_t, (Int32,), dtype)

cv_dtype_name(dtype) = ccall(fptr(:cv_dtype_name), Ptr{UInt8}, (Int32,), dtype)

cv_num_channels(vol, out) = ccall(fptr(:cv_num_channels), Cint, (Ptr{Cvoid}, Ptr{UInt32}), vol, out)

cv_num_mips(vol, out) = ccall(fptr(:cv_num_mips), Cint, (Ptr{Cvoid}, Ptr{UInt32}), vol, out)

cv_default_mip(vol, out) = ccall(fptr(:cv_default_mip), Cint, (Ptr{Cvoid}, Ptr{UInt32}), vol, out)

cv_bounds(vol, mip, lo, hi) =
    ccall(fptr(:cv_bounds), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}), vol, mip, lo, hi)

cv_chunk_size(vol, mip, out) = ccall(fptr(:cv_chunk_size), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}), vol, mip, out)

cv_resolution(vol, mip, out) = ccall(fptr(:cv_resolution), Cint, (Ptr{Cvoid}, UInt32, Ptr{Cdouble}), vol, mip, out)

cv_encoding(vol, mip, out) = ccall(fptr(:cv_encoding), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int32}), vol, mip, out)

cv_cutout_len(vol, lo, hi, out) =
    ccall(fptr(:cv_cutout_len), Cint, (Ptr{Cvoid}, Ptr{Int64}, Ptr{Int64}, Ptr{Csize_t}), vol, lo, hi, out)

cv_info_json(vol, out) = ccall(fptr(:cv_info_json), Cint, (Ptr{Cvoid}, Ptr{Ptr{UInt8}}), vol, out)

cv_string_free(s) = ccall(fptr(:cv_string_free), Cvoid, (Ptr{UInt8},), s)

cv_scattered_points(vol, mip, n, xyz, out, out_len) =
    ccall(fptr(:cv_scattered_points), Cint, (Ptr{Cvoid}, UInt32, Csize_t, Ptr{Int64}, Ptr{Cvoid}, Csize_t),
          vol, mip, n, xyz, out, out_len)

cv_chunk_count(vol, mip, lo, hi, out) =
    ccall(fptr(:cv_chunk_count), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{Csize_t}),
          vol, mip, lo, hi, out)

cv_chunks_exist(vol, mip, lo, hi, out, out_len, n_present) =
    ccall(fptr(:cv_chunks_exist), Cint,
          (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{UInt8}, Csize_t, Ptr{Csize_t}),
          vol, mip, lo, hi, out, out_len, n_present)

cv_create(cloudpath, info_json, options_json, out) =
    ccall(fptr(:cv_create), Cint, (Cstring, Cstring, Ptr{UInt8}, Ptr{Ptr{Cvoid}}),
          cloudpath, info_json, options_json, out)

cv_write_from(vol, mip, lo, hi, buf, buf_len) =
    ccall(fptr(:cv_write_from), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{Cvoid}, Csize_t),
          vol, mip, lo, hi, buf, buf_len)

cv_delete(vol, mip, lo, hi) =
    ccall(fptr(:cv_delete), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}), vol, mip, lo, hi)

cv_add_scale(vol, factor, chunk_size, new_mip) =
    ccall(fptr(:cv_add_scale), Cint, (Ptr{Cvoid}, Ptr{Int64}, Ptr{Int64}, Ptr{UInt32}),
          vol, factor, chunk_size, new_mip)

cv_new_info(layer_type, data_type, encoding, num_channels, resolution, voxel_offset, size, chunk_size, out) =
    ccall(fptr(:cv_new_info), Cint,
          (Cstring, Cstring, Cstring, UInt32, Ptr{Cdouble}, Ptr{Int64}, Ptr{Int64}, Ptr{Int64}, Ptr{Ptr{UInt8}}),
          layer_type, data_type, encoding, num_channels, resolution, voxel_offset, size, chunk_size, out)

cv_storage_open(cloudpath, options_json, out) =
    ccall(fptr(:cv_storage_open), Cint, (Cstring, Ptr{UInt8}, Ptr{Ptr{Cvoid}}), cloudpath, options_json, out)

cv_storage_free(st) = ccall(fptr(:cv_storage_free), Cvoid, (Ptr{Cvoid},), st)

cv_storage_get(st, key, data, len) =
    ccall(fptr(:cv_storage_get), Cint, (Ptr{Cvoid}, Cstring, Ptr{Ptr{UInt8}}, Ptr{Csize_t}), st, key, data, len)

cv_bytes_free(data, len) = ccall(fptr(:cv_bytes_free), Cvoid, (Ptr{UInt8}, Csize_t), data, len)

cv_storage_put(st, key, data, len) =
    ccall(fptr(:cv_storage_put), Cint, (Ptr{Cvoid}, Cstring, Ptr{UInt8}, Csize_t), st, key, data, len)

cv_storage_delete(st, key) = ccall(fptr(:cv_storage_delete), Cint, (Ptr{Cvoid}, Cstring), st, key)

cv_storage_exists(st, key, out) =
    ccall(fptr(:cv_storage_exists), Cint, (Ptr{Cvoid}, Cstring, Ptr{Int32}), st, key, out)

# Label operations (uint32/uint64 layers) and chunk files.

cv_unique(vol, mip, lo, hi, labels, counts, n) =
    ccall(fptr(:cv_unique), Cint,
          (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{Ptr{UInt64}}, Ptr{Ptr{UInt64}}, Ptr{Csize_t}),
          vol, mip, lo, hi, labels, counts, n)

cv_labels_free(p, n) = ccall(fptr(:cv_labels_free), Cvoid, (Ptr{UInt64}, Csize_t), p, n)

cv_label_mask_into(vol, mip, lo, hi, labels, n_labels, out, out_len) =
    ccall(fptr(:cv_label_mask_into), Cint,
          (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{UInt64}, Csize_t, Ptr{UInt8}, Csize_t),
          vol, mip, lo, hi, labels, n_labels, out, out_len)

cv_point_box(vol, mip, pt, size, coord_resolution, lo_out, hi_out) =
    ccall(fptr(:cv_point_box), Cint,
          (Ptr{Cvoid}, UInt32, Ptr{Float64}, Ptr{Int64}, Ptr{Float64}, Ptr{Int64}, Ptr{Int64}),
          vol, mip, pt, size, coord_resolution, lo_out, hi_out)

cv_renumber(vol, mip, lo, hi, out, out_len, out_dtype, labels, n) =
    ccall(fptr(:cv_renumber), Cint,
          (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Ptr{Ptr{UInt8}}, Ptr{Csize_t}, Ptr{Int32},
           Ptr{Ptr{UInt64}}, Ptr{Csize_t}),
          vol, mip, lo, hi, out, out_len, out_dtype, labels, n)

cv_download_files(vol, mip, lo, hi, decompress, out) =
    ccall(fptr(:cv_download_files), Cint, (Ptr{Cvoid}, UInt32, Ptr{Int64}, Ptr{Int64}, Int32, Ptr{Ptr{Cvoid}}),
          vol, mip, lo, hi, decompress, out)

cv_files_count(files) = ccall(fptr(:cv_files_count), Csize_t, (Ptr{Cvoid},), files)

cv_files_get(files, i, name, data, len) =
    ccall(fptr(:cv_files_get), Cint, (Ptr{Cvoid}, Csize_t, Ptr{Ptr{UInt8}}, Ptr{Ptr{UInt8}}, Ptr{Csize_t}),
          files, i, name, data, len)

cv_files_free(files) = ccall(fptr(:cv_files_free), Cvoid, (Ptr{Cvoid},), files)

# Aligned image + segmentation cutouts, split masks and overlay pictures (src/ffi/imagery.rs).
#
# `cv_aligned_request` and `cv_aligned_grid` mirror the C structs field by field (same order,
# same C types, so the same layout: 104 and 80 bytes on 64-bit platforms; tests/julia_checks.py
# checks them field by field against the header). They are passed by `Ref`.

"""
    cv_aligned_request

The C ABI's `cv_aligned_request`: the box `[lo, hi)` in voxels of `resolution` (all 0: the
image layer's at its mip), the mips (< 0: the lowest not labelled "placeholder"), the kept
`root_ids` (`C_NULL`: every label) and `scale_to_bounds` (non-zero: exactly `[lo, hi)` at
`resolution`). `root_ids` must stay rooted (`GC.@preserve`) while the request is in use.
"""
struct cv_aligned_request
    lo::NTuple{3,Int64}
    hi::NTuple{3,Int64}
    resolution::NTuple{3,Cdouble}
    image_mip::Int32
    segmentation_mip::Int32
    root_ids::Ptr{UInt64}
    n_root_ids::Csize_t
    scale_to_bounds::Int32
end

"""
    cv_aligned_grid

The C ABI's `cv_aligned_grid`: the output box `[lo, hi)` in voxels of `resolution` (nm) and
the mip each layer is read at.
"""
struct cv_aligned_grid
    lo::NTuple{3,Int64}
    hi::NTuple{3,Int64}
    resolution::NTuple{3,Cdouble}
    image_mip::UInt32
    segmentation_mip::UInt32
end

cv_aligned_grid() = cv_aligned_grid((0, 0, 0), (0, 0, 0), (0.0, 0.0, 0.0), 0, 0)

cv_aligned_grid_of(image, seg, req::Ref{cv_aligned_request}, out::Ref{cv_aligned_grid}) =
    ccall(fptr(:cv_aligned_grid_of), Cint, (Ptr{Cvoid}, Ptr{Cvoid}, Ref{cv_aligned_request}, Ref{cv_aligned_grid}),
          image, seg, req, out)

cv_aligned_cutout_into(image, seg, req::Ref{cv_aligned_request}, image_out, image_len, seg_out, seg_len) =
    ccall(fptr(:cv_aligned_cutout_into), Cint,
          (Ptr{Cvoid}, Ptr{Cvoid}, Ref{cv_aligned_request}, Ptr{Cvoid}, Csize_t, Ptr{UInt64}, Csize_t),
          image, seg, req, image_out, image_len, seg_out, seg_len)

cv_split_masks_into(seg, n, ids, n_ids, out, out_len) =
    ccall(fptr(:cv_split_masks_into), Cint, (Ptr{UInt64}, Csize_t, Ptr{UInt64}, Csize_t, Ptr{UInt8}, Csize_t),
          seg, n, ids, n_ids, out, out_len)

cv_segment_color(id, rgb) = ccall(fptr(:cv_segment_color), Cint, (UInt64, Ptr{UInt8}), id, rgb)

cv_overlay_rgb_into(grey, seg, width, height, alpha, outline, out, out_len) =
    ccall(fptr(:cv_overlay_rgb_into), Cint,
          (Ptr{UInt8}, Ptr{UInt64}, Csize_t, Csize_t, Cfloat, UInt32, Ptr{UInt8}, Csize_t),
          grey, seg, width, height, alpha, outline, out, out_len)

cv_overlay_png(grey, seg, width, height, alpha, outline, png, png_len) =
    ccall(fptr(:cv_overlay_png), Cint,
          (Ptr{UInt8}, Ptr{UInt64}, Csize_t, Csize_t, Cfloat, UInt32, Ptr{Ptr{UInt8}}, Ptr{Csize_t}),
          grey, seg, width, height, alpha, outline, png, png_len)

# Services (src/ffi/services.rs).

cv_dvid_create_repo(server, alias, description, options_json, uuid) =
    ccall(fptr(:cv_dvid_create_repo), Cint, (Cstring, Cstring, Cstring, Ptr{UInt8}, Ptr{Ptr{UInt8}}),
          server, alias, description, options_json, uuid)

# Meshes and skeletons (src/ffi/objects.rs). `cv_mesh *` and `cv_skeleton *` are opaque
# handles (`Ptr{Cvoid}`), owned by objects.jl.

cv_mesh_get(vol, ids, n_ids, lod, weld, chunk_size, allow_missing, out) =
    ccall(fptr(:cv_mesh_get), Cint,
          (Ptr{Cvoid}, Ptr{UInt64}, Csize_t, Int32, Int32, Ptr{Int64}, Int32, Ptr{Ptr{Cvoid}}),
          vol, ids, n_ids, lod, weld, chunk_size, allow_missing, out)

# `out` points to `n_ids` writable `cv_mesh *` (a Vector{Ptr{Cvoid}} of that length).
cv_mesh_get_each(vol, ids, n_ids, lod, weld, chunk_size, allow_missing, out) =
    ccall(fptr(:cv_mesh_get_each), Cint,
          (Ptr{Cvoid}, Ptr{UInt64}, Csize_t, Int32, Int32, Ptr{Int64}, Int32, Ptr{Ptr{Cvoid}}),
          vol, ids, n_ids, lod, weld, chunk_size, allow_missing, out)

cv_mesh_lods(vol, id, out) = ccall(fptr(:cv_mesh_lods), Cint, (Ptr{Cvoid}, UInt64, Ptr{UInt32}), vol, id, out)

cv_mesh_counts(mesh, n_vertices, n_faces) =
    ccall(fptr(:cv_mesh_counts), Cint, (Ptr{Cvoid}, Ptr{Csize_t}, Ptr{Csize_t}), mesh, n_vertices, n_faces)

cv_mesh_vertices_into(mesh, buf, buf_len) =
    ccall(fptr(:cv_mesh_vertices_into), Cint, (Ptr{Cvoid}, Ptr{Float32}, Csize_t), mesh, buf, buf_len)

cv_mesh_faces_into(mesh, buf, buf_len) =
    ccall(fptr(:cv_mesh_faces_into), Cint, (Ptr{Cvoid}, Ptr{UInt32}, Csize_t), mesh, buf, buf_len)

cv_mesh_save(mesh, path) = ccall(fptr(:cv_mesh_save), Cint, (Ptr{Cvoid}, Cstring), mesh, path)

cv_mesh_free(mesh) = ccall(fptr(:cv_mesh_free), Cvoid, (Ptr{Cvoid},), mesh)

cv_mesh_put(vol, id, vertices, n_vertices, faces, n_faces) =
    ccall(fptr(:cv_mesh_put), Cint, (Ptr{Cvoid}, UInt64, Ptr{Float32}, Csize_t, Ptr{UInt32}, Csize_t),
          vol, id, vertices, n_vertices, faces, n_faces)

cv_mesh_info_json(vol, out) = ccall(fptr(:cv_mesh_info_json), Cint, (Ptr{Cvoid}, Ptr{Ptr{UInt8}}), vol, out)

# `out` points to `n_ids` writable `cv_skeleton *` (a Vector{Ptr{Cvoid}} of that length).
cv_skeleton_get_each(vol, ids, n_ids, allow_missing, out) =
    ccall(fptr(:cv_skeleton_get_each), Cint, (Ptr{Cvoid}, Ptr{UInt64}, Csize_t, Int32, Ptr{Ptr{Cvoid}}),
          vol, ids, n_ids, allow_missing, out)

cv_skeleton_get(vol, id, out) =
    ccall(fptr(:cv_skeleton_get), Cint, (Ptr{Cvoid}, UInt64, Ptr{Ptr{Cvoid}}), vol, id, out)

cv_skeleton_counts(skeleton, n_vertices, n_edges, n_attributes) =
    ccall(fptr(:cv_skeleton_counts), Cint, (Ptr{Cvoid}, Ptr{Csize_t}, Ptr{Csize_t}, Ptr{Csize_t}),
          skeleton, n_vertices, n_edges, n_attributes)

cv_skeleton_vertices_into(skeleton, buf, buf_len) =
    ccall(fptr(:cv_skeleton_vertices_into), Cint, (Ptr{Cvoid}, Ptr{Float32}, Csize_t), skeleton, buf, buf_len)

cv_skeleton_edges_into(skeleton, buf, buf_len) =
    ccall(fptr(:cv_skeleton_edges_into), Cint, (Ptr{Cvoid}, Ptr{UInt32}, Csize_t), skeleton, buf, buf_len)

cv_skeleton_attribute(skeleton, i, name, data_type, num_components) =
    ccall(fptr(:cv_skeleton_attribute), Cint, (Ptr{Cvoid}, Csize_t, Ptr{Ptr{UInt8}}, Ptr{Int32}, Ptr{UInt32}),
          skeleton, i, name, data_type, num_components)

cv_skeleton_attribute_into(skeleton, i, buf, buf_len) =
    ccall(fptr(:cv_skeleton_attribute_into), Cint, (Ptr{Cvoid}, Csize_t, Ptr{Cvoid}, Csize_t),
          skeleton, i, buf, buf_len)

cv_skeleton_save_swc(skeleton, path) =
    ccall(fptr(:cv_skeleton_save_swc), Cint, (Ptr{Cvoid}, Cstring), skeleton, path)

cv_skeleton_free(skeleton) = ccall(fptr(:cv_skeleton_free), Cvoid, (Ptr{Cvoid},), skeleton)

cv_skeleton_info_json(vol, out) =
    ccall(fptr(:cv_skeleton_info_json), Cint, (Ptr{Cvoid}, Ptr{Ptr{UInt8}}), vol, out)

cv_skeleton_put(vol, id, vertices, n_vertices, edges, n_edges, attributes, n_attributes) =
    ccall(fptr(:cv_skeleton_put), Cint,
          (Ptr{Cvoid}, UInt64, Ptr{Float32}, Csize_t, Ptr{UInt32}, Csize_t, Ptr{Ptr{Cvoid}}, Csize_t),
          vol, id, vertices, n_vertices, edges, n_edges, attributes, n_attributes)

# ---------------------------------------------------------------------------------------------
# Status checking (LibGit2's `@check`): the message is taken at once, on the same thread, before
# any other call can replace it.

"""
    check(status)

Throw a `CloudVolumeError` with `cv_last_error()` unless `status == CV_OK`.
"""
@inline function check(status::Cint)
    status == CV_OK && return nothing
    throw(CloudVolumeError(status, unsafe_string(cv_last_error())))
end

"""
    version() -> VersionNumber

The version of the loaded libcloudvolume.
"""
version() = VersionNumber(unsafe_string(cv_version()))

# An optional C string: `nothing` is NULL.
cstr_or_null(s::Nothing) = Ptr{UInt8}(C_NULL)
cstr_or_null(s::AbstractString) = String(s)
