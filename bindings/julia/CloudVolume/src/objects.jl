# Meshes and skeletons of a segmentation layer (src/ffi/objects.rs), as cloud-volume's
# `vol.mesh` and `vol.skeleton`: legacy and multi-resolution (Draco, sharded or not) meshes,
# skeletons sharded or not, with their vertex attributes.
#
# Conventions, the same for every function here:
#
# - `vertices` is a `Matrix{Float32}` of size N×3, one vertex per row (x, y, z), as cloud-volume's
#   (N, 3) arrays: `vertices[i, :]` is vertex i. Read vertices are physical (nm): the mesh or
#   skeleton info's `transform` is applied, as cloud-volume applies it.
# - `faces` (M×3) and `edges` (E×2) are `Matrix{UInt32}` of **1-based** row indices into
#   `vertices` (Julia's indexing, and OBJ's and SWC's numbering): `vertices[faces[k, :], :]` are
#   the corners of triangle k. cloud-volume and the C ABI count from 0: subtract 1 when handing
#   them to Python. `put_mesh` and `put_skeleton` take 1-based indices too.
# - a skeleton's `attributes` is a `NamedTuple`, in the skeleton info's order, of
#   `Vector{T}` (one component per vertex) or N×k `Matrix{T}` (k components, a row per
#   vertex), `T` the attribute's `data_type` (`radius` Float32, `vertex_types` UInt8, ...),
#   the shapes cloud-volume gives them.
#
# Every read asks the library for the sizes first, copies into buffers of exactly that size,
# and frees the library's mesh / skeleton in a `finally`, whatever happens.

# `data_type` names of infos (cloud-volume's) and their Julia types.
const DTYPE_NAMES = Dict{String,DataType}(
    "uint8" => UInt8, "int8" => Int8, "uint16" => UInt16, "int16" => Int16,
    "uint32" => UInt32, "int32" => Int32, "uint64" => UInt64, "int64" => Int64,
    "float32" => Float32, "float64" => Float64,
)

# The library hands out little-endian values; nothing to do on little-endian hosts.
const LITTLE_ENDIAN_HOST = ENDIAN_BOM == 0x04030201
from_le!(a::AbstractArray) = LITTLE_ENDIAN_HOST ? a : map!(ltoh, a, a)
to_le!(a::AbstractArray) = LITTLE_ENDIAN_HOST ? a : map!(htol, a, a)

# Segment ids as the library takes them (UInt64; a negative id is an InexactError).
segids(id::Integer) = UInt64[UInt64(id)]
segids(ids::AbstractString) = throw(ArgumentError("segment ids must be integers, got the string $(repr(ids))"))
function segids(ids)
    out = UInt64[]
    for i in ids
        i isa Integer || throw(ArgumentError("segment ids must be integers, got $(repr(i))"))
        push!(out, UInt64(i))
    end
    return out
end

# (lod, weld, chunk_size) as cv_mesh_get takes them.
function mesh_args(lod, weld, chunk_size)
    l = if lod === :coarsest
        Int32(-1)
    elseif lod isa Integer && typemin(Int32) <= lod <= typemax(Int32)
        Int32(lod)   # < -1 is refused by the library (CV_ERR_INVALID_ARGUMENT)
    else
        throw(ArgumentError("lod must be a level (0 the finest), -1 or :coarsest, got $(repr(lod))"))
    end
    w = weld === nothing ? Int32(-1) : Int32(weld::Bool)
    cs = chunk_size === nothing ? Ptr{Int64}(C_NULL) : collect(int3(chunk_size, "chunk_size"))
    return l, w, cs
end

# 0-based UInt32 indices from the library, made 1-based in place.
function one_based!(a::AbstractArray{UInt32})
    @inbounds for i in eachindex(a)
        x = a[i]
        x == typemax(UInt32) &&
            throw(CloudVolumeError(CV_ERR_DECODE, "vertex index $(x) has no 1-based UInt32 (the data is damaged)"))
        a[i] = x + one(UInt32)
    end
    return a
end

# An N×3 matrix of coordinates as the library's buffer: x y z float32 per vertex (3×N).
function vertex_buffer(v::AbstractMatrix{<:Real})
    size(v, 2) == 3 ||
        throw(DimensionMismatch("vertices must be N×3 (a vertex per row), got $(size(v)); permutedims a 3×N matrix"))
    buf = Matrix{Float32}(undef, 3, size(v, 1))
    for (r, i) in enumerate(axes(v, 1)), (c, j) in enumerate(axes(v, 2))
        buf[c, r] = Float32(v[i, j])
    end
    return buf
end

# An M×k matrix of 1-based indices as the library's buffer: k uint32 from 0 per row (k×M).
function index_buffer(a::AbstractMatrix{<:Integer}, k::Int, what::String)
    size(a, 2) == k ||
        throw(DimensionMismatch("$(what) must be M×$(k) (one per row), got $(size(a)); permutedims a $(k)×M matrix"))
    buf = Matrix{UInt32}(undef, k, size(a, 1))
    for (r, i) in enumerate(axes(a, 1)), (c, j) in enumerate(axes(a, 2))
        x = a[i, j]
        1 <= x <= Int64(typemax(UInt32)) + 1 ||
            throw(ArgumentError("$(what)[$(i), $(j)] is $(x): indices are 1-based vertex rows (add 1 to cloud-volume's)"))
        buf[c, r] = UInt32(x - 1)
    end
    return buf
end

# One attribute's values (a Vector of n, or an n×k Matrix) as the library's buffer: k values of
# type T per vertex, vertex after vertex, little-endian.
function attribute_buffer(x, ::Type{T}, k::Int, n::Int, name) where {T}
    x isa AbstractArray ||
        throw(ArgumentError("attribute $(name) must be a Vector (one component) or an N×$(k) Matrix, got $(typeof(x))"))
    ok = (k == 1 && x isa AbstractVector && length(x) == n) || (ndims(x) == 2 && size(x) == (n, k))
    ok || throw(DimensionMismatch("attribute $(name) is $(size(x)); the skeleton info declares $(k) " *
                                  "component(s) per vertex for $(n) vertices: " *
                                  (k == 1 ? "a Vector of $(n)" : "a $(n)×$(k) Matrix")))
    m = x isa AbstractVector ? reshape(x, :, 1) : x
    buf = Matrix{T}(undef, k, n)
    for (r, i) in enumerate(axes(m, 1)), (c, j) in enumerate(axes(m, 2))
        buf[c, r] = convert(T, m[i, j])   # an InexactError for a value the type cannot hold
    end
    return to_le!(buf)
end

# A JSON string the library hands out, parsed, and freed.
function owned_json(s::Ref{Ptr{UInt8}})
    text = try
        unsafe_string(s[])
    finally
        cv_string_free(s[])
    end
    return parse_json(text)
end

# ---------------------------------------------------------------------------------------------
# Meshes.

# What `meshes` returns per id.
const MeshTuple = NamedTuple{(:segid, :vertices, :faces),Tuple{UInt64,Matrix{Float32},Matrix{UInt32}}}

# The arrays of a live cv_mesh (the caller frees it).
function mesh_tuple(p::Ptr{Cvoid}, segid::Union{UInt64,Nothing})
    nv, nf = Ref{Csize_t}(0), Ref{Csize_t}(0)
    check(cv_mesh_counts(p, nv, nf))
    v = Matrix{Float32}(undef, 3, Int(nv[]))
    f = Matrix{UInt32}(undef, 3, Int(nf[]))
    check(cv_mesh_vertices_into(p, v, Csize_t(sizeof(v))))   # 12 * n_vertices bytes
    check(cv_mesh_faces_into(p, f, Csize_t(sizeof(f))))      # 12 * n_faces bytes
    return (segid = segid, vertices = permutedims(from_le!(v)), faces = permutedims(one_based!(from_le!(f))))
end

# Call `f(p)` with the one mesh of `ids`, freeing it afterwards.
function with_mesh(f, vol::CloudVolumeWrapper, want::Vector{UInt64}, lod, weld, allow_missing::Bool, chunk_size)
    l, w, cs = mesh_args(lod, weld, chunk_size)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(cv_mesh_get(vol, want, Csize_t(length(want)), l, w, cs, Int32(allow_missing), out))
    try
        return f(out[])
    finally
        cv_mesh_free(out[])
    end
end

"""
    mesh(vol, id_or_ids; lod=0, weld=nothing, allow_missing=false, chunk_size=nothing)
        -> (segid, vertices, faces)

cloud-volume's `vol.mesh.get(ids)` as one mesh: the meshes of the ids (each once) concatenated
in ascending id order, then welded as one when welding. Returns a named
tuple: `vertices`, N×3 `Matrix{Float32}` (physical nm, a vertex per row); `faces`, M×3
`Matrix{UInt32}` of **1-based** vertex rows; `segid`, the id (`UInt64`) or `nothing` for several
ids.

- `lod`: the level of detail of multi-resolution meshes, 0 the finest, `-1` (or `:coarsest`)
  the coarsest; legacy meshes have lod 0 only. A level the mesh lacks is
  `CV_ERR_INVALID_ARGUMENT`.
- `weld`: `true` merges equal vertices (cloud-volume's `remove_duplicate_vertices=True`),
  `false` keeps them, `nothing` is cloud-volume's default (legacy meshes welded,
  multi-resolution ones not).
- `chunk_size`: 3 voxel sizes: weld legacy meshes only on the planes of that chunk grid, as
  cloud-volume's `chunk_size=` does.
- `allow_missing`: leave out ids without a mesh instead of failing with `CV_ERR_NOT_FOUND`.
"""
function mesh(vol::CloudVolumeWrapper, ids; lod::Union{Integer,Symbol} = 0, weld::Union{Bool,Nothing} = nothing,
              allow_missing::Bool = false, chunk_size = nothing)
    want = segids(ids)
    return with_mesh(vol, want, lod, weld, allow_missing, chunk_size) do p
        mesh_tuple(p, length(want) == 1 ? want[1] : nothing)
    end
end

"""
    meshes(vol, ids; lod=0, weld=nothing, allow_missing=false, chunk_size=nothing)
        -> Vector{Union{Nothing,(segid, vertices, faces)}}

One mesh per id, in the order of `ids`, fetched and decoded in parallel: cloud-volume's
`vol.mesh.get(ids, fuse=False)` for legacy meshes and `vol.mesh.get(ids)` for multi-resolution
ones (whose dict this is, as a vector). With `allow_missing=true` an id without a mesh gives
`nothing`; without, it fails the whole call (`CV_ERR_NOT_FOUND`). Keywords and arrays as in
[`mesh`](@ref) (`weld = nothing` welds legacy meshes, as `mesh` does; `weld = false` gives
cloud-volume's unwelded `fuse=False` meshes); `segid` is each mesh's id.
"""
function meshes(vol::CloudVolumeWrapper, ids; lod::Union{Integer,Symbol} = 0, weld::Union{Bool,Nothing} = nothing,
                allow_missing::Bool = false, chunk_size = nothing)
    want = segids(ids)
    l, w, cs = mesh_args(lod, weld, chunk_size)
    isempty(want) && return Union{Nothing,MeshTuple}[]
    out = fill(Ptr{Cvoid}(C_NULL), length(want))
    check(cv_mesh_get_each(vol, want, Csize_t(length(want)), l, w, cs, Int32(allow_missing), out))
    try
        return Union{Nothing,MeshTuple}[p == C_NULL ? nothing : mesh_tuple(p, want[i]) for (i, p) in enumerate(out)]
    finally
        foreach(cv_mesh_free, out)   # NULL is a no-op
    end
end

"""
    mesh_lods(vol, id) -> Int

The number of levels of detail of segment `id`'s mesh (1 for a legacy mesh); a missing mesh is
`CV_ERR_NOT_FOUND` (so this is also cloud-volume's `vol.mesh.exists`).
"""
function mesh_lods(vol::CloudVolumeWrapper, id::Integer)
    n = Ref{UInt32}(0)
    check(cv_mesh_lods(vol, UInt64(id), n))
    return Int(n[])
end

"""
    save_mesh(vol, id_or_ids, path; lod=0, weld=nothing, allow_missing=false, chunk_size=nothing) -> path

Save the mesh [`mesh`](@ref) would return to `path` as OBJ, PLY or STL, named by the extension
(`.obj`, `.ply`, `.stl`; cloud-volume's `to_obj()` / `to_ply()` bytes, binary STL). Another
extension is `CV_ERR_INVALID_ARGUMENT`.
"""
function save_mesh(vol::CloudVolumeWrapper, ids, path::AbstractString; lod::Union{Integer,Symbol} = 0,
                   weld::Union{Bool,Nothing} = nothing, allow_missing::Bool = false, chunk_size = nothing)
    p = String(path)
    with_mesh(vol, segids(ids), lod, weld, allow_missing, chunk_size) do m
        check(cv_mesh_save(m, p))
    end
    return p
end

"""
    put_mesh(vol, id, vertices, faces)
    put_mesh(vol, id, m)   # m: what `mesh` returned

Write segment `id`'s legacy mesh, as cloud-volume's `vol.mesh.put`: `vertices` N×3 (physical
nm, stored as Float32), `faces` M×3 of **1-based** vertex rows (an index outside `1:N` is
refused). It replaces the mesh `id` had; the fragment is gzipped unless the handle was opened
with `compress = false`. A multi-resolution mesh directory is `CV_ERR_UNSUPPORTED`.
"""
function put_mesh(vol::CloudVolumeWrapper, id::Integer, vertices::AbstractMatrix{<:Real}, faces::AbstractMatrix{<:Integer})
    vb = vertex_buffer(vertices)
    fb = index_buffer(faces, 3, "faces")
    check(cv_mesh_put(vol, UInt64(id), vb, Csize_t(size(vb, 2)), fb, Csize_t(size(fb, 2))))
    return nothing
end
put_mesh(vol::CloudVolumeWrapper, id::Integer, m::NamedTuple) = put_mesh(vol, id, m.vertices, m.faces)

"""
    mesh_info(vol) -> Dict{String,Any}

The mesh directory's info as the library reads it: `"@type"` (`"neuroglancer_legacy_mesh"`,
also when there is no info, or `"neuroglancer_multilod_draco"` with
`vertex_quantization_bits`, `lod_scale_multiplier`, `sharded`), and `transform` when there is
one (12 numbers, a 3×4 matrix row by row).
"""
function mesh_info(vol::CloudVolumeWrapper)
    s = Ref{Ptr{UInt8}}(C_NULL)
    check(cv_mesh_info_json(vol, s))
    return owned_json(s)
end

# ---------------------------------------------------------------------------------------------
# Skeletons.

# The arrays of a live cv_skeleton (the caller frees it).
function skeleton_tuple(p::Ptr{Cvoid}, segid::UInt64)
    nv, ne, na = Ref{Csize_t}(0), Ref{Csize_t}(0), Ref{Csize_t}(0)
    check(cv_skeleton_counts(p, nv, ne, na))
    n = Int(nv[])
    v = Matrix{Float32}(undef, 3, n)
    e = Matrix{UInt32}(undef, 2, Int(ne[]))
    check(cv_skeleton_vertices_into(p, v, Csize_t(sizeof(v))))   # 12 * n_vertices bytes
    check(cv_skeleton_edges_into(p, e, Csize_t(sizeof(e))))      # 8 * n_edges bytes
    names = Symbol[]
    values = Any[]
    for i in 0:Int(na[])-1
        name, dt, nc = Ref{Ptr{UInt8}}(C_NULL), Ref{Int32}(0), Ref{UInt32}(0)
        check(cv_skeleton_attribute(p, Csize_t(i), name, dt, nc))
        label = unsafe_string(name[])   # valid until cv_skeleton_free: copied now
        T = get(CV_DTYPES, dt[], Nothing)
        T === Nothing && throw(CloudVolumeError(CV_ERR_UNSUPPORTED, "attribute $(label): data type code $(dt[])"))
        k = Int(nc[])
        buf = Matrix{T}(undef, k, n)   # n_vertices * num_components * cv_dtype_size bytes
        check(cv_skeleton_attribute_into(p, Csize_t(i), buf, Csize_t(sizeof(buf))))
        from_le!(buf)
        push!(names, Symbol(label))
        push!(values, k == 1 ? vec(buf) : permutedims(buf))
    end
    return (segid = segid, vertices = permutedims(from_le!(v)), edges = permutedims(one_based!(from_le!(e))),
            attributes = NamedTuple{Tuple(names)}(Tuple(values)))
end

"""
    skeleton(vol, id) -> (segid, vertices, edges, attributes)

cloud-volume's `vol.skeleton.get(id)`: `vertices` N×3 `Matrix{Float32}`, physical (the skeleton
info's `transform` applied); `edges` E×2 `Matrix{UInt32}` of **1-based** vertex rows;
`attributes` a `NamedTuple` of the info's vertex attributes, in its order (cloud-volume's
defaults `radius` and `vertex_types` when the layer has no skeleton info): a `Vector{T}` per
one-component attribute, an N×k `Matrix{T}` otherwise, `T` its data type (e.g.
`s.attributes.radius::Vector{Float32}`, `s.attributes.direction::Matrix{Float32}` N×3). A
missing skeleton is `CV_ERR_NOT_FOUND`.
"""
function skeleton(vol::CloudVolumeWrapper, id::Integer)
    sid = UInt64(id)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(cv_skeleton_get(vol, sid, out))
    try
        return skeleton_tuple(out[], sid)
    finally
        cv_skeleton_free(out[])
    end
end

"""
    skeletons(vol, ids; allow_missing=false) -> Vector{Union{Nothing,NamedTuple}}

cloud-volume's `vol.skeleton.get(ids)`: one skeleton per id (as [`skeleton`](@ref) gives it),
in the order of `ids`, fetched and decoded in parallel. With `allow_missing=true` an id without
a skeleton gives `nothing`; without, it fails the whole call (`CV_ERR_NOT_FOUND`).
"""
function skeletons(vol::CloudVolumeWrapper, ids; allow_missing::Bool = false)
    want = segids(ids)
    result = Union{Nothing,NamedTuple}[]
    isempty(want) && return result
    out = fill(Ptr{Cvoid}(C_NULL), length(want))
    check(cv_skeleton_get_each(vol, want, Csize_t(length(want)), Int32(allow_missing), out))
    try
        for (i, p) in enumerate(out)
            push!(result, p == C_NULL ? nothing : skeleton_tuple(p, want[i]))
        end
    finally
        foreach(cv_skeleton_free, out)   # NULL is a no-op
    end
    return result
end

"""
    save_skeleton(vol, id, path) -> path

Save segment `id`'s skeleton to `path` as SWC (osteoid's `to_swc()` rendering: a row per vertex
of each tree, depth first, radius from the `radius` attribute, `# SCALE` from the transform).
"""
function save_skeleton(vol::CloudVolumeWrapper, id::Integer, path::AbstractString)
    p = String(path)
    out = Ref{Ptr{Cvoid}}(C_NULL)
    check(cv_skeleton_get(vol, UInt64(id), out))
    try
        check(cv_skeleton_save_swc(out[], p))
    finally
        cv_skeleton_free(out[])
    end
    return p
end

"""
    put_skeleton(vol, id, vertices, edges; attributes...)

Write segment `id`'s skeleton, as cloud-volume's `vol.skeleton.upload`: `vertices` N×3, written
**as given** (in the skeleton info's stored space: [`skeleton`](@ref) applies the info's
`transform` when reading, so undo it before writing back what it returned), `edges` E×2 of
**1-based** vertex rows, and either no attributes or every one the skeleton info declares, by
name (`radius = r, vertex_types = t, ...`, or `put_skeleton(vol, id, v, e; s.attributes...)`):
a Vector of N (one component) or an N×k Matrix, converted to the info's data type. Gzipped
unless the handle was opened with `compress = false`. A sharded skeleton directory is
`CV_ERR_UNSUPPORTED`.
"""
function put_skeleton(vol::CloudVolumeWrapper, id::Integer, vertices::AbstractMatrix{<:Real},
                      edges::AbstractMatrix{<:Integer}; attributes...)
    vb = vertex_buffer(vertices)
    eb = index_buffer(edges, 2, "edges")
    n = size(vb, 2)
    bufs = Matrix[]
    if !isempty(attributes)
        declared = skeleton_info(vol)["vertex_attributes"]
        names = String[String(a["id"]) for a in declared]
        given = Dict{String,Any}(String(k) => v for (k, v) in attributes)
        extra = sort!(collect(setdiff(keys(given), names)))
        isempty(extra) || throw(ArgumentError("attribute(s) $(join(extra, ", ")) are not in the skeleton info " *
                                              "(it declares $(isempty(names) ? "none" : join(names, ", ")))"))
        lacking = [x for x in names if !haskey(given, x)]
        isempty(lacking) || throw(ArgumentError("give every attribute of the skeleton info or none; missing: " *
                                                join(lacking, ", ")))
        for a in declared
            dt = String(a["data_type"])
            T = get(DTYPE_NAMES, dt, Nothing)
            T === Nothing && throw(CloudVolumeError(CV_ERR_UNSUPPORTED, "attribute $(a["id"]): data type $(dt)"))
            push!(bufs, attribute_buffer(given[String(a["id"])], T, Int(a["num_components"]), n, a["id"]))
        end
    end
    GC.@preserve bufs begin
        ptrs = Ptr{Cvoid}[Ptr{Cvoid}(pointer(b)) for b in bufs]
        check(cv_skeleton_put(vol, UInt64(id), vb, Csize_t(n), eb, Csize_t(size(eb, 2)),
                              isempty(ptrs) ? Ptr{Ptr{Cvoid}}(C_NULL) : ptrs, Csize_t(length(ptrs))))
    end
    return nothing
end

"""
    skeleton_info(vol) -> Dict{String,Any}

The skeleton directory's info as the library reads it (cloud-volume's default when the layer
names none): `transform` (12 numbers, a 3×4 matrix row by row; the identity when the info has
none), `vertex_attributes` (`[Dict("id", "data_type", "num_components")]`, the order
`put_skeleton` and `attributes` follow) and `sharded`.
"""
function skeleton_info(vol::CloudVolumeWrapper)
    s = Ref{Ptr{UInt8}}(C_NULL)
    check(cv_skeleton_info_json(vol, s))
    return owned_json(s)
end
