# A small JSON reader and writer, enough for info files, provenance and options, so that the
# package depends on nothing outside Julia's standard library.
#
# Reading: objects become Dict{String,Any}, arrays Vector{Any}, integers Int64 (Int128, then
# Float64, when they do not fit), other numbers Float64, null `nothing`.

module JSON

export parse_json, write_json

struct ParseError <: Exception
    msg::String
end
Base.showerror(io::IO, e::ParseError) = print(io, "JSON parse error: ", e.msg)

mutable struct Reader
    s::Vector{UInt8}
    i::Int
end

@inline peekbyte(r::Reader) = r.i <= length(r.s) ? r.s[r.i] : 0x00

function skipws!(r::Reader)
    while r.i <= length(r.s) && r.s[r.i] in (0x20, 0x09, 0x0a, 0x0d)
        r.i += 1
    end
end

fail(r::Reader, what) = throw(ParseError("$(what) at byte $(r.i)"))

function expect!(r::Reader, lit::String)
    for b in codeunits(lit)
        peekbyte(r) == b || fail(r, "expected \"$(lit)\"")
        r.i += 1
    end
end

"""
    parse_json(text) -> Any

Parse one JSON value (surrounding whitespace allowed, nothing else).
"""
function parse_json(text::AbstractString)
    r = Reader(Vector{UInt8}(codeunits(String(text))), 1)
    v = read_value(r)
    skipws!(r)
    r.i <= length(r.s) && fail(r, "unexpected trailing text")
    return v
end

function read_value(r::Reader)
    skipws!(r)
    b = peekbyte(r)
    if b == UInt8('{')
        return read_object(r)
    elseif b == UInt8('[')
        return read_array(r)
    elseif b == UInt8('"')
        return read_string(r)
    elseif b == UInt8('t')
        expect!(r, "true")
        return true
    elseif b == UInt8('f')
        expect!(r, "false")
        return false
    elseif b == UInt8('n')
        expect!(r, "null")
        return nothing
    elseif b == UInt8('-') || UInt8('0') <= b <= UInt8('9')
        return read_number(r)
    end
    fail(r, b == 0x00 ? "unexpected end of input" : "unexpected character '$(Char(b))'")
end

function read_object(r::Reader)
    d = Dict{String,Any}()
    r.i += 1
    skipws!(r)
    if peekbyte(r) == UInt8('}')
        r.i += 1
        return d
    end
    while true
        skipws!(r)
        peekbyte(r) == UInt8('"') || fail(r, "expected a member name")
        k = read_string(r)
        skipws!(r)
        expect!(r, ":")
        d[k] = read_value(r)
        skipws!(r)
        b = peekbyte(r)
        r.i += 1
        b == UInt8('}') && return d
        b == UInt8(',') || fail(r, "expected ',' or '}'")
    end
end

function read_array(r::Reader)
    a = Any[]
    r.i += 1
    skipws!(r)
    if peekbyte(r) == UInt8(']')
        r.i += 1
        return a
    end
    while true
        push!(a, read_value(r))
        skipws!(r)
        b = peekbyte(r)
        r.i += 1
        b == UInt8(']') && return a
        b == UInt8(',') || fail(r, "expected ',' or ']'")
    end
end

function read_hex4(r::Reader)
    r.i + 3 <= length(r.s) || fail(r, "truncated \\u escape")
    v = tryparse(UInt16, String(r.s[r.i:r.i+3]); base = 16)
    v === nothing && fail(r, "bad \\u escape")
    r.i += 4
    return v
end

function read_string(r::Reader)
    r.i += 1
    io = IOBuffer()
    while true
        r.i <= length(r.s) || fail(r, "unterminated string")
        b = r.s[r.i]
        r.i += 1
        if b == UInt8('"')
            return String(take!(io))
        elseif b == UInt8('\\')
            e = peekbyte(r)
            r.i += 1
            if e == UInt8('"') || e == UInt8('\\') || e == UInt8('/')
                write(io, e)
            elseif e == UInt8('b')
                write(io, '\b')
            elseif e == UInt8('f')
                write(io, '\f')
            elseif e == UInt8('n')
                write(io, '\n')
            elseif e == UInt8('r')
                write(io, '\r')
            elseif e == UInt8('t')
                write(io, '\t')
            elseif e == UInt8('u')
                u = read_hex4(r)
                if 0xd800 <= u <= 0xdbff && peekbyte(r) == UInt8('\\')
                    save = r.i
                    r.i += 1
                    if peekbyte(r) == UInt8('u')
                        r.i += 1
                        lo = read_hex4(r)
                        if 0xdc00 <= lo <= 0xdfff
                            write(io, Char(0x10000 + ((UInt32(u) - 0xd800) << 10) + (UInt32(lo) - 0xdc00)))
                            continue
                        end
                    end
                    r.i = save
                end
                write(io, (0xd800 <= u <= 0xdfff) ? '\ufffd' : Char(u))
            else
                fail(r, "bad escape")
            end
        elseif b < 0x20
            fail(r, "control character in string")
        else
            write(io, b)
        end
    end
end

function read_number(r::Reader)
    start = r.i
    isfloat = false
    while r.i <= length(r.s)
        b = r.s[r.i]
        if UInt8('0') <= b <= UInt8('9') || b == UInt8('-') || b == UInt8('+')
            r.i += 1
        elseif b == UInt8('.') || b == UInt8('e') || b == UInt8('E')
            isfloat = true
            r.i += 1
        else
            break
        end
    end
    t = String(r.s[start:r.i-1])
    if !isfloat
        v = tryparse(Int64, t)
        v === nothing || return v
        w = tryparse(Int128, t)
        w === nothing || return w
    end
    f = tryparse(Float64, t)
    f === nothing && fail(r, "bad number \"$(t)\"")
    return f
end

"""
    write_json(x) -> String

JSON text of dictionaries (keys as strings), vectors and tuples, strings, symbols, numbers,
booleans and `nothing` (null).
"""
write_json(x) = (io = IOBuffer(); write_json(io, x); String(take!(io)))

write_json(io::IO, ::Nothing) = print(io, "null")
write_json(io::IO, b::Bool) = print(io, b ? "true" : "false")
write_json(io::IO, n::Integer) = print(io, n)
function write_json(io::IO, f::AbstractFloat)
    isfinite(f) || throw(ArgumentError("JSON has no $(f)"))
    isinteger(f) && abs(f) < 1e15 ? print(io, Int64(f), ".0") : print(io, Float64(f))
end
write_json(io::IO, s::Symbol) = write_json(io, String(s))
function write_json(io::IO, s::AbstractString)
    print(io, '"')
    for c in s
        if c == '"'
            print(io, "\\\"")
        elseif c == '\\'
            print(io, "\\\\")
        elseif c == '\n'
            print(io, "\\n")
        elseif c == '\r'
            print(io, "\\r")
        elseif c == '\t'
            print(io, "\\t")
        elseif c < ' '
            print(io, "\\u", string(UInt16(c); base = 16, pad = 4))
        else
            print(io, c)
        end
    end
    print(io, '"')
end
function write_json(io::IO, d::AbstractDict)
    print(io, '{')
    first = true
    for (k, v) in d
        first || print(io, ',')
        first = false
        write_json(io, string(k))
        print(io, ':')
        write_json(io, v)
    end
    print(io, '}')
end
function write_json(io::IO, a::Union{AbstractVector,Tuple})
    print(io, '[')
    for (i, v) in enumerate(a)
        i > 1 && print(io, ',')
        write_json(io, v)
    end
    print(io, ']')
end

end # module JSON
