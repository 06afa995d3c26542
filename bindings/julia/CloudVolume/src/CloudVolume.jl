"""
    CloudVolume

Read and write Neuroglancer Precomputed volumes (file://, http(s)://, gs://, s3://) from
Julia through libcloudvolume's C ABI, with the API of seung-lab's CloudVolume.jl:
`CloudVolumeWrapper`, `StorageWrapper`, `offset`, `scale`, `chunks`, `resolution`, `exists`,
`flush`, `upload_from_shared_memory`, `info`, `provenance`; and cloud-volume's label operations
`unique`, `download(vol, bbox; label, renumber)`, `label_mask`, `download_point`, `renumber`,
`download_files` (graphene:// too); ImageryClient's aligned `image_and_segmentation_cutout`
(with `aligned_grid`), `segment_color`, and the overlay pictures `overlay_rgb`, `overlay_png`;
DVID data instances (`dvid://`, repos made by `dvid_create_repo`, pydvid's channel-first view
as `download(...; channel_first = true)`) and BOSS channels (`boss://`); cloud-volume's meshes
and skeletons (`mesh`, `meshes`, `mesh_lods`, `save_mesh`, `put_mesh`, `mesh_info`, `skeleton`,
`skeletons`, `save_skeleton`, `put_skeleton`, `skeleton_info`).

Layers (like HDF5.jl and CodecZstd.jl): `api.jl` finds the library and holds one raw `ccall`
per C function; `wrapper.jl` and `storage.jl` own handles (finalizer plus idempotent `close`)
and turn statuses into `CloudVolumeError`s; `imagery.jl` holds the aligned cutouts and
pictures; `services.jl` what services need beyond a volume (DVID repos); `objects.jl` meshes
and skeletons (vertices N×3, faces and edges 1-based); `json.jl` reads and writes info files.

The library is `ENV["CLOUDVOLUME_LIB"]` if set, else the repository's `target/release` (then
`target/debug`) build output, else `libcloudvolume` on the system search path; it is loaded on
the first call, and an error lists every place searched.
"""
module CloudVolume

using Libdl

export CloudVolumeWrapper, StorageWrapper, CloudVolumeError,
       offset, scale, chunks, resolution, exists, flush, upload_from_shared_memory,
       info, provenance, label_mask, download_point, renumber, download_files,
       image_and_segmentation_cutout, aligned_grid, segment_color, overlay_rgb, overlay_png,
       dvid_create_repo,
       mesh, meshes, mesh_lods, save_mesh, put_mesh, mesh_info,
       skeleton, skeletons, save_skeleton, put_skeleton, skeleton_info

include("json.jl")
using .JSON: parse_json, write_json

include("api.jl")
include("wrapper.jl")
include("storage.jl")
include("imagery.jl")
include("services.jl")
include("objects.jl")

end # module CloudVolume
