# StorageWrapper: files by key under a location (usually a layer), over the library's storage
# backends (the C calls cv_storage_*).
#
# Values are raw bytes, not Julia `Serialization` blobs as in CloudVolume.jl: files written here
# are the bytes every other tool (cloud-volume, cloud-files, gsutil, Neuroglancer) sees, and
# files written by them read back unchanged. A content encoding (gzip, brotli, zstd) is removed
# on read; writes are stored uncompressed.

"""
    StorageWrapper(storage_string)
    StorageWrapper(f, storage_string)     # do-block: closed when `f` returns

Files under `storage_string` (`file://...` or a path, `http(s)://...`, `gs://...`, `s3://...`),
by key (a `/`-separated path relative to it; keys may not leave it through `..`):

- `s[key]` -> `Vector{UInt8}` (a `CloudVolumeError` with code `CV_ERR_NOT_FOUND` if missing);
- `s[keys]` (a vector) -> `(results, empties, errors)`, each a `Vector{Dict{String,Any}}` with
  `"filename"`, `"content"` (bytes, or `nothing`) and `"error"` (`nothing` or the exception):
  `results` has every key in order, `empties` the missing ones, `errors` the failed ones;
- `s[key] = bytes` (a `String` is stored as its UTF-8 bytes): written whole, uncompressed;
- `delete!(s, key)` (a missing file is no error), `exists(s, key) -> Bool`;
- `close(s)` (idempotent; also run by the garbage collector).

The keyword `options_json` (a JSON object as for `cv_open`, e.g. `{"gs_endpoint": ...}`)
is an extension. Not memoized, unlike CloudVolume.jl.
"""
mutable struct StorageWrapper
    ptr::Ptr{Cvoid}
    cloudpath::String

    function StorageWrapper(storage_string::AbstractString; options_json::Union{AbstractString,Nothing} = nothing)
        fptr(:cv_storage_free)   # resolved now, so the finalizer never takes the loader's lock
        out = Ref{Ptr{Cvoid}}(C_NULL)
        path = String(storage_string)
        check(cv_storage_open(path, cstr_or_null(options_json), out))
        s = new(out[], path)
        finalizer(close, s)
        return s
    end
end

function StorageWrapper(f::Function, storage_string::AbstractString; kwargs...)
    s = StorageWrapper(storage_string; kwargs...)
    try
        return f(s)
    finally
        close(s)
    end
end

function Base.unsafe_convert(::Type{Ptr{Cvoid}}, s::StorageWrapper)
    s.ptr == C_NULL && throw(ArgumentError("StorageWrapper($(s.cloudpath)) is closed"))
    return s.ptr
end

function Base.close(s::StorageWrapper)
    p = s.ptr
    if p != C_NULL
        s.ptr = C_NULL
        cv_storage_free(p)
    end
    return nothing
end

Base.isopen(s::StorageWrapper) = s.ptr != C_NULL

Base.show(io::IO, s::StorageWrapper) =
    print(io, "StorageWrapper(\"", s.cloudpath, "\"", isopen(s) ? ")" : "; closed)")

function Base.getindex(s::StorageWrapper, filename::AbstractString)
    data = Ref{Ptr{UInt8}}(C_NULL)
    len = Ref{Csize_t}(0)
    check(cv_storage_get(s, String(filename), data, len))
    v = Vector{UInt8}(undef, Int(len[]))
    try
        len[] > 0 && unsafe_copyto!(pointer(v), data[], Int(len[]))
    finally
        cv_bytes_free(data[], len[])
    end
    return v
end

function get_one(s::StorageWrapper, filename::AbstractString)
    d = Dict{String,Any}("filename" => String(filename), "content" => nothing, "error" => nothing)
    try
        d["content"] = s[filename]
    catch e
        if !(e isa CloudVolumeError && e.code == CV_ERR_NOT_FOUND)
            d["error"] = e
        end
    end
    return d
end

function Base.getindex(s::StorageWrapper, filenames::AbstractVector{<:AbstractString})
    # One task per file: the calls block their thread, so threads give the concurrency.
    tasks = [Threads.@spawn get_one(s, f) for f in filenames]
    results = Dict{String,Any}[fetch(t) for t in tasks]
    empties = filter(d -> d["content"] === nothing && d["error"] === nothing, results)
    errors = filter(d -> d["error"] !== nothing, results)
    return results, empties, errors
end

function Base.setindex!(s::StorageWrapper, content::AbstractVector{UInt8}, filename::AbstractString)
    buf = content isa Vector{UInt8} ? content : Vector{UInt8}(content)
    check(cv_storage_put(s, String(filename), buf, Csize_t(length(buf))))
    return s
end

Base.setindex!(s::StorageWrapper, content::AbstractString, filename::AbstractString) =
    setindex!(s, Vector{UInt8}(codeunits(String(content))), filename)

Base.setindex!(s::StorageWrapper, content, filename::AbstractString) =
    throw(ArgumentError("StorageWrapper stores raw bytes (a Vector{UInt8} or a String), got a $(typeof(content)); " *
                        "serialize it first, e.g. `io = IOBuffer(); serialize(io, x); s[key] = take!(io)`"))

function Base.delete!(s::StorageWrapper, filename::AbstractString)
    check(cv_storage_delete(s, String(filename)))
    return s
end

"""
    exists(s::StorageWrapper, filename) -> Bool

Whether the file exists (in any stored variant: plain, `.gz`, `.br`, `.zstd`).
"""
function exists(s::StorageWrapper, filename::AbstractString)
    out = Ref{Int32}(0)
    check(cv_storage_exists(s, String(filename), out))
    return out[] != 0
end
