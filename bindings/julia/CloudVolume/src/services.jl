# What services need beyond a volume handle (src/ffi/services.rs): DVID repos. Data instances
# and BOSS channels are volumes: `CloudVolumeWrapper("dvid://...")`, `CloudVolumeWrapper("boss://...")`.

"""
    dvid_create_repo(server; alias="", description="", options...) -> String

Create a repo on a DVID server (`POST /api/repos`, as pydvid's `create_new` does before adding
a data instance) and return its root UUID (32 hex digits). `server` is `"host:port"`,
`"http(s)://host:port"` or `"dvid://host:port"`; `alias` and `description` may be empty. Other
keywords are the library's options, passed by name (`secrets` = a Bearer token, else
dvid-secret.json is read; `timeout`, `max_attempts`, ...); unknown ones are refused by the
library. Then make a data instance in it:

    uuid = dvid_create_repo("127.0.0.1:8000"; alias = "em", description = "tests")
    vol = CloudVolumeWrapper("dvid://127.0.0.1:8000/\$(uuid)/grey"; info = info, bounded = false)
"""
function dvid_create_repo(server::AbstractString; alias::AbstractString = "", description::AbstractString = "",
                          options...)
    opts = isempty(options) ? nothing : write_json(Dict{String,Any}(String(k) => v for (k, v) in options))
    out = Ref{Ptr{UInt8}}(C_NULL)
    check(cv_dvid_create_repo(String(server), String(alias), String(description), cstr_or_null(opts), out))
    try
        return unsafe_string(out[])
    finally
        cv_string_free(out[])
    end
end
