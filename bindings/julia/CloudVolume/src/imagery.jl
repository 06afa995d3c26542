# Aligned image + segmentation cutouts (ImageryClient's `image_and_segmentation_cutout`), one
# mask per segment (`split_segmentations`), the segment palette and overlay pictures, over
# src/ffi/imagery.rs.
#
# Boxes are absolute voxel coordinates of the request's `resolution` (no 1-based shift), as
# everywhere in this package: a tuple of inclusive ranges `(x0:x1, y0:y1, z0:z1)` as the label
# operations take, or ImageryClient's bounds `[lo, hi)` (a 2x3 matrix `[lo; hi]` or a pair of
# 3-vectors, `hi` exclusive), or a centre with `bbox_size` (ImageryClient's
# `bounds_from_center`: `lo = centre - size ÷ 2`, `hi = lo + size`).

# A 3-vector of integers (Int64), refusing fractions.
function int3(v, what)
    length(v) == 3 || throw(ArgumentError("$(what) needs 3 values, got $(v)"))
    return ntuple(3) do d
        x = v[d]
        (x isa Integer || (x isa Real && isinteger(x))) ||
            throw(ArgumentError("$(what) needs integers (voxels), got $(v)"))
        Int64(x)
    end
end

# The half-open box [lo, hi) of `bounds` (see the top of this file).
function aligned_bounds(bounds, bbox_size)
    if bbox_size !== nothing
        bounds isa BBox && throw(ArgumentError("with bbox_size, bounds is a centre (3 values), not ranges"))
        c = int3(bounds, "the centre (bounds with bbox_size)")
        n = length(bbox_size)
        (n == 2 || n == 3) || throw(ArgumentError("bbox_size needs 2 or 3 values (width, height[, depth]), got $(bbox_size)"))
        s = int3(n == 2 ? (bbox_size[1], bbox_size[2], 1) : bbox_size, "bbox_size")
        lo = ntuple(d -> c[d] - fld(s[d], 2), 3)
        return lo, ntuple(d -> lo[d] + s[d], 3)
    end
    if bounds isa BBox
        return ntuple(d -> Int64(first(bounds[d])), 3), ntuple(d -> Int64(last(bounds[d])) + 1, 3)
    elseif bounds isa AbstractMatrix
        size(bounds) == (2, 3) ||
            throw(ArgumentError("bounds as a matrix is 2x3 ([lo; hi], rows x, y, z), got $(size(bounds))"))
        return int3(bounds[1, :], "bounds lo"), int3(bounds[2, :], "bounds hi")
    elseif (bounds isa Tuple || bounds isa AbstractVector) && length(bounds) == 2 &&
           all(b -> b isa Union{Tuple,AbstractVector}, bounds)
        return int3(bounds[1], "bounds lo"), int3(bounds[2], "bounds hi")
    end
    throw(ArgumentError("bounds must be (x0:x1, y0:y1, z0:z1), [lo; hi] (2x3), (lo, hi), " *
                        "or a centre with bbox_size; got $(bounds)"))
end

function aligned_mip(m, what)
    m === nothing && return Int32(-1)
    m isa Integer || throw(ArgumentError("$(what) must be an integer or nothing, got $(m)"))
    m >= 0 || throw(ArgumentError("$(what) must be >= 0 (or nothing: the lowest mip not labelled \"placeholder\"), got $(m)"))
    return Int32(m)
end

keep_all(r) = r === nothing || r === :all || (r isa AbstractString && r == "all")

# Call `f(req::Ref{cv_aligned_request})` with the request of these arguments; its root ids stay
# rooted for the duration.
function with_request(f, bounds, bbox_size, resolution, image_mip, segmentation_mip, root_ids, scale_to_bounds::Bool)
    lo, hi = aligned_bounds(bounds, bbox_size)
    res = if resolution === nothing
        (0.0, 0.0, 0.0)
    else
        length(resolution) == 3 || throw(ArgumentError("resolution needs 3 values (nm), got $(resolution)"))
        ntuple(d -> Float64(resolution[d]), 3)
    end
    all_ids = keep_all(root_ids)
    !all_ids && root_ids isa Union{Symbol,AbstractString} &&
        throw(ArgumentError("root_ids must be :all, nothing, an id or a collection of ids, got $(repr(root_ids))"))
    want = all_ids ? UInt64[] : root_ids isa Integer ? UInt64[root_ids] : UInt64[UInt64(i) for i in root_ids]
    n = length(want)
    # Never hand the library a NULL for an empty list: NULL keeps every label, an empty list none.
    buf = n == 0 ? UInt64[0] : want
    im, sm = aligned_mip(image_mip, "image_mip"), aligned_mip(segmentation_mip, "segmentation_mip")
    result = GC.@preserve buf begin
        req = cv_aligned_request(lo, hi, res, im, sm, all_ids ? Ptr{UInt64}(C_NULL) : pointer(buf),
                                 Csize_t(all_ids ? 0 : n), Int32(scale_to_bounds))
        f(Ref(req))
    end
    return result
end

function grid_of(image::CloudVolumeWrapper, seg::CloudVolumeWrapper, req::Ref{cv_aligned_request})
    out = Ref(cv_aligned_grid())
    check(cv_aligned_grid_of(image, seg, req, out))
    return out[]
end

grid_tuple(g::cv_aligned_grid) = (
    lo = Int[g.lo...],
    hi = Int[g.hi...],
    resolution = Float64[g.resolution...],
    image_mip = Int(g.image_mip),
    segmentation_mip = Int(g.segmentation_mip),
    size = ntuple(d -> Int(g.hi[d] - g.lo[d]), 3),
)

"""
    aligned_grid(image, seg, bounds; bbox_size=nothing, resolution=nothing, image_mip=nothing,
                 segmentation_mip=nothing, root_ids=:all, scale_to_bounds=false)
        -> (lo, hi, resolution, image_mip, segmentation_mip, size)

The grid `image_and_segmentation_cutout` with the same arguments returns, without reading:
the box `[lo, hi)` (`Vector{Int}`, absolute voxels of `resolution`, in nm), the mip each layer
is read at, and `size = Tuple(hi .- lo)`, the shape of the arrays.
"""
function aligned_grid(image::CloudVolumeWrapper, seg::CloudVolumeWrapper, bounds;
                      bbox_size = nothing, resolution = nothing, image_mip = nothing,
                      segmentation_mip = nothing, root_ids = :all, scale_to_bounds::Bool = false)
    g = with_request(bounds, bbox_size, resolution, image_mip, segmentation_mip, root_ids, scale_to_bounds) do req
        grid_of(image, seg, req)
    end
    return grid_tuple(g)
end

"""
    image_and_segmentation_cutout(image, seg, bounds; bbox_size=nothing, resolution=nothing,
                                  image_mip=nothing, segmentation_mip=nothing, root_ids=:all,
                                  split_segmentations=false, include_null_root=false,
                                  scale_to_bounds=false) -> (img, seg)

ImageryClient's `image_and_segmentation_cutout`: the image layer `image` and the segmentation
layer `seg` (Precomputed or graphene) over one box, on one grid (`aligned_grid`): the finer of
the two mips' resolutions (the image's when neither is finer on every axis), or exactly
`bounds` at `resolution` with `scale_to_bounds=true`; a layer on another resolution is
resampled by nearest neighbour by physical position.

- `bounds`: `(x0:x1, y0:y1, z0:z1)` (inclusive stops, as the label operations), ImageryClient's
  `[lo; hi]` (a 2x3 matrix) or `(lo, hi)` (half-open), or with `bbox_size` (width, height[,
  depth]; depth 1 when left out) a centre: `lo = centre - bbox_size ÷ 2`, `hi = lo + bbox_size`.
  Absolute voxels of `resolution`.
- `resolution`: nm per voxel of `bounds`; `nothing`: the image layer's at `image_mip`.
- `image_mip`, `segmentation_mip`: `nothing` is the lowest mip not labelled "placeholder"
  (ImageryClient's default), not the handle's `mip`.
- `root_ids`: `:all` (or `nothing`) keeps every label; a collection (or one id) keeps only
  those, every other voxel becomes 0 (compared after agglomeration on graphene, which is the
  handle's `agglomerate` keyword: ImageryClient's `root_ids=None` for supervoxels is
  `agglomerate=false` here).
- `split_segmentations=true`: `seg` is instead a `Dict{UInt64,Array{Bool,3}}`, one mask per
  non-zero label present (`include_null_root=true` adds 0 when present), as ImageryClient's.

`img` is `Array{T,4}` (x, y, z, channel) in the image layer's type and channels, as `download`
returns; `seg` `Array{UInt64,3}` (x, y, z: the segmentation's first channel), of the same
shape (ImageryClient squeezes axes of size 1; these arrays keep them). Errors
(`CloudVolumeError`, the library's message): an empty box, an unknown mip, a segmentation that
is not uint32/uint64, a box outside a `bounded` handle, missing chunks without `fill_missing`.
"""
function image_and_segmentation_cutout(image::CloudVolumeWrapper, seg::CloudVolumeWrapper, bounds;
                                       bbox_size = nothing, resolution = nothing, image_mip = nothing,
                                       segmentation_mip = nothing, root_ids = :all,
                                       split_segmentations::Bool = false, include_null_root::Bool = false,
                                       scale_to_bounds::Bool = false)
    img, labels = with_request(bounds, bbox_size, resolution, image_mip, segmentation_mip, root_ids, scale_to_bounds) do req
        g = grid_of(image, seg, req)
        dims = ntuple(d -> Int(g.hi[d] - g.lo[d]), 3)
        a = Array{image.dtype,4}(undef, dims..., image.channels)
        s = Array{UInt64,3}(undef, dims...)
        check(cv_aligned_cutout_into(image, seg, req, a, Csize_t(sizeof(a)), s, Csize_t(length(s))))
        a, s
    end
    split_segmentations || return img, labels
    ids = sort!(unique(labels))
    include_null_root || filter!(!=(0), ids)
    return img, split_masks(labels, ids)
end

"""
    CloudVolume.split_masks(seg, ids) -> Dict{UInt64,Array{Bool,N}}

One mask (`seg .== id`) per label of `ids` over a segmentation array (any integer type), made
by the library's `cv_split_masks_into`.
"""
function split_masks(seg::AbstractArray{<:Integer}, ids)
    s = seg isa Array{UInt64} ? seg : Array{UInt64}(seg)
    want = sort!(unique(UInt64[UInt64(i) for i in ids]))
    n = length(s)
    out = Vector{UInt8}(undef, n * length(want))
    check(cv_split_masks_into(s, Csize_t(n), want, Csize_t(length(want)), out, Csize_t(length(out))))
    m = reshape(out, n, length(want))
    return Dict{UInt64,Array{Bool,ndims(s)}}(id => reshape(m[:, k] .!= 0x00, size(s)) for (k, id) in enumerate(want))
end

"""
    segment_color(id) -> NTuple{3,UInt8}

The overlay colour (r, g, b) of segment `id`: the same in every picture and every binding
(label 0 is never drawn).
"""
function segment_color(id::Integer)
    rgb = zeros(UInt8, 3)
    check(cv_segment_color(UInt64(id), rgb))
    return (rgb[1], rgb[2], rgb[3])
end

function overlay_args(grey::AbstractMatrix, seg::AbstractMatrix, alpha::Real, outline::Integer)
    size(grey) == size(seg) ||
        throw(DimensionMismatch("the image slice is $(size(grey)) but the segmentation slice $(size(seg))"))
    outline >= 0 || throw(ArgumentError("outline must be >= 0 (pixels), got $(outline)"))
    g = grey isa Matrix{UInt8} ? grey : Matrix{UInt8}(grey)
    s = seg isa Matrix{UInt64} ? seg : Matrix{UInt64}(seg)
    return g, s, Csize_t(size(g, 1)), Csize_t(size(g, 2)), Float32(alpha), UInt32(min(outline, typemax(UInt32)))
end

"""
    overlay_rgb(grey, seg; alpha=0.5, outline=0) -> Array{UInt8,3}   # (x, y, rgb)

The segmentation slice `seg` (integer labels) over the greyscale slice `grey` (UInt8 values),
both `(width, height)` matrices with x first (a z slice of `image_and_segmentation_cutout`'s
arrays, e.g. `img[:, :, k, 1]` and `seg[:, :, k]`): every pixel of a non-zero label (with
`outline > 0` only those within `outline` pixels, city block, of another label) is
`round(grey * (1 - alpha) + colour * alpha)` per channel with the segment's `segment_color`;
other pixels stay grey. The result is `(width, height, 3)`, channel last like this package's
other arrays.
"""
function overlay_rgb(grey::AbstractMatrix, seg::AbstractMatrix; alpha::Real = 0.5, outline::Integer = 0)
    g, s, w, h, a, o = overlay_args(grey, seg, alpha, outline)
    out = Vector{UInt8}(undef, 3 * length(g))
    check(cv_overlay_rgb_into(g, s, w, h, a, o, out, Csize_t(length(out))))
    return permutedims(reshape(out, 3, Int(w), Int(h)), (2, 3, 1))
end

"""
    overlay_png(grey, seg; alpha=0.5, outline=0) -> Vector{UInt8}

`overlay_rgb` encoded as an 8-bit RGB PNG file (`width` across, `height` down): write it with
`write("overlay.png", overlay_png(grey, seg))`.
"""
function overlay_png(grey::AbstractMatrix, seg::AbstractMatrix; alpha::Real = 0.5, outline::Integer = 0)
    g, s, w, h, a, o = overlay_args(grey, seg, alpha, outline)
    p, len = Ref{Ptr{UInt8}}(C_NULL), Ref{Csize_t}(0)
    check(cv_overlay_png(g, s, w, h, a, o, p, len))
    try
        return len[] == 0 ? UInt8[] : copy(unsafe_wrap(Vector{UInt8}, p[], Int(len[])))
    finally
        cv_bytes_free(p[], len[])
    end
end
