#!/usr/bin/env python3
"""Static checks of the Julia binding (bindings/julia), for machines without a Julia runtime.

1. Syntax: every .jl file parses under tree-sitter's Julia grammar (PyPI `tree-sitter`,
   `tree-sitter-julia`) without ERROR or MISSING nodes; each is reported as file:line:col.
2. ccalls: every `ccall(...)` and `@ccall ...` names a function declared in
   include/cloudvolume.h, with the same number of arguments, argument and return types that
   match the C prototype (table below), and as many actual arguments as declared types.
3. API: every name CloudVolume.jl exported (plus `provenance`, `info`, cloud-volume's label
   operations, meshes and skeletons) is exported by the
   package and defined in it (a struct, a function, or a method of the Base function of that
   name), every exported name is defined, and the Base functions CloudVolume.jl extended have
   methods.
4. Keywords: the constructor declares CloudVolume.jl's keywords and cloud-volume's graphene
   ones, and the label operations cloud-volume's (`unique(vol, bbox; mip, counts)`,
   `download(vol, bbox; mip, label, renumber)`, `download_point(vol, pt; size, mip,
   coord_resolution)`, `mesh(vol, ids; lod, weld, allow_missing, chunk_size)`, ...), each
   explicitly in some method (not only through `kwargs...`); and test/runtests.jl calls each
   of these functions with each of these keywords, so the tests (run where Julia is installed)
   exercise every one.

Usage: julia_checks.py [--root bindings/julia] [--header include/cloudvolume.h]
Exit status 0 when every check passes, 1 otherwise (each failure printed), 2 on bad usage.

C <-> Julia type table (`const` is ignored; a pointer's depth must match exactly):

    C                     Julia
    int8_t                Int8
    uint8_t               UInt8, Cuchar
    int16_t / uint16_t    Int16, Cshort / UInt16, Cushort
    int32_t, cv_status    Int32, Cint
    uint32_t              UInt32, Cuint
    int64_t / uint64_t    Int64, Clonglong / UInt64, Culonglong
    size_t                Csize_t
    double / float        Float64, Cdouble / Float32, Cfloat
    void (return)         Cvoid, Nothing
    T *                   Ptr{T'} or, for arguments, Ref{T'} (T' matching T)
    char *                Cstring, or Ptr{UInt8} / Ptr{Cchar} / Ptr{Int8} / Ref{...}
    char **               Ptr{Ptr{UInt8}}, Ptr{Cstring}, Ref{Ptr{UInt8}}, Ref{Cstring}, ...
    void *                Ptr{Cvoid}
    struct handle *       Ptr{Cvoid} (cv_volume, cv_storage: opaque)
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import tree_sitter_julia
    from tree_sitter import Language, Parser
except ImportError as e:  # pragma: no cover
    print(f"julia_checks: {e}; install with `pip install tree-sitter tree-sitter-julia`", file=sys.stderr)
    sys.exit(2)

REPO = Path(__file__).resolve().parent.parent

# The public API of seung-lab/CloudVolume.jl (its `export` line), plus `provenance` (defined,
# not exported there) and `info` (Base.info there; gone from Julia 1.x, so exported here).
REQUIRED_EXPORTS = [
    "CloudVolumeWrapper", "StorageWrapper", "offset", "scale", "chunks", "resolution", "exists",
    "flush", "upload_from_shared_memory", "provenance", "info",
    # cloud-volume's label operations and chunk files (CloudVolume.jl has none).
    "label_mask", "download_point", "renumber", "download_files",
    # ImageryClient's aligned image + segmentation cutouts and overlays.
    "image_and_segmentation_cutout", "aligned_grid", "segment_color", "overlay_rgb", "overlay_png",
    # DVID repos.
    "dvid_create_repo",
    # cloud-volume's meshes and skeletons (vol.mesh.*, vol.skeleton.*).
    "mesh", "meshes", "mesh_lods", "save_mesh", "put_mesh", "mesh_info",
    "skeleton", "skeletons", "save_skeleton", "put_skeleton", "skeleton_info",
]
# Base functions CloudVolume.jl extended (Base.info is replaced by the exported `info`), plus
# cloud-volume's `unique(bbox)` and `download(bbox; label, renumber)` as methods of Base's.
REQUIRED_BASE_METHODS = ["getindex", "setindex!", "size", "flush", "delete!", "close", "unique", "download"]

# Keywords some method of each function must declare by name (CloudVolume.jl's for the
# constructor, cloud-volume's elsewhere), and test/runtests.jl must pass to it.
REQUIRED_KEYWORDS = {
    "CloudVolumeWrapper": [
        "mip", "bounded", "autocrop", "fill_missing", "cache", "cdn_cache", "progress", "info",
        "provenance", "compress", "non_aligned_writes", "parallel", "output_to_shared_memory",
        # cloud-volume's graphene:// keywords and use_https (CloudVolume.jl has none).
        "agglomerate", "timestamp", "stop_layer", "use_https",
    ],
    "unique": ["mip", "counts"],
    "download": ["mip", "label", "renumber", "channel_first"],
    "label_mask": ["mip"],
    "renumber": ["mip"],
    "download_point": ["size", "mip", "coord_resolution"],
    "download_files": ["mip", "decompress"],
    "image_and_segmentation_cutout": [
        "bbox_size", "resolution", "image_mip", "segmentation_mip", "root_ids", "split_segmentations",
        "include_null_root", "scale_to_bounds",
    ],
    "aligned_grid": ["bbox_size", "resolution", "image_mip", "segmentation_mip", "root_ids", "scale_to_bounds"],
    "overlay_rgb": ["alpha", "outline"],
    "overlay_png": ["alpha", "outline"],
    "dvid_create_repo": ["alias", "description"],
    # cloud-volume's mesh.get(ids, lod=, remove_duplicate_vertices=, allow_missing=, chunk_size=)
    # (weld = remove_duplicate_vertices) and skeleton.get(ids, allow_missing=).
    "mesh": ["lod", "weld", "allow_missing", "chunk_size"],
    "meshes": ["lod", "weld", "allow_missing", "chunk_size"],
    "save_mesh": ["lod", "weld", "allow_missing", "chunk_size"],
    "skeletons": ["allow_missing"],
}

# C scalar type -> canonical name.
C_SCALARS = {
    "int8_t": "i8", "uint8_t": "u8", "int16_t": "i16", "uint16_t": "u16",
    "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
    "size_t": "usize", "double": "f64", "float": "f32", "void": "void", "char": "char",
    "cv_status": "i32",
}
# Julia scalar type -> canonical name.
JL_SCALARS = {
    "Int8": "i8", "UInt8": "u8", "Cuchar": "u8", "Cchar": "char",
    "Int16": "i16", "Cshort": "i16", "UInt16": "u16", "Cushort": "u16",
    "Int32": "i32", "Cint": "i32", "UInt32": "u32", "Cuint": "u32",
    "Int64": "i64", "Clonglong": "i64", "UInt64": "u64", "Culonglong": "u64",
    "Csize_t": "usize", "Float64": "f64", "Cdouble": "f64", "Float32": "f32", "Cfloat": "f32",
    "Cvoid": "void", "Nothing": "void",
}


@dataclass(frozen=True)
class CType:
    base: str  # canonical scalar name, or "struct:<name>"
    depth: int  # pointer depth

    def __str__(self) -> str:
        return self.base + "*" * self.depth


@dataclass
class Proto:
    name: str
    ret: CType
    args: list[CType]
    text: str


def parse_ctype(text: str, where: str) -> CType:
    t = text.replace("const", " ")
    depth = t.count("*")
    words = t.replace("*", " ").split()
    if len(words) != 1:
        raise ValueError(f"{where}: cannot read the C type {text!r}")
    w = words[0]
    if w in C_SCALARS:
        return CType(C_SCALARS[w], depth)
    if depth == 0:
        raise ValueError(f"{where}: unknown C type {text!r} (add it to C_SCALARS)")
    return CType("struct:" + w, depth)


def parse_header_structs(path: Path) -> dict[str, list[tuple[str, CType, int]]]:
    """`typedef struct { fields } NAME;`: NAME -> [(field, type, array length or 0)]."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out: dict[str, list[tuple[str, CType, int]]] = {}
    for m in re.finditer(r"typedef\s+struct\s*\{([^{}]*)\}\s*(\w+)\s*;", text):
        fields = []
        for decl in m.group(1).split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            mm = re.match(r"^(.*?)([A-Za-z_]\w*)\s*(?:\[(\d+)\])?$", decl)
            if not mm:
                raise ValueError(f"{path}: {m.group(2)}: cannot read the field {decl!r}")
            fields.append((mm.group(2), parse_ctype(mm.group(1), f"{path}: {m.group(2)}"), int(mm.group(3) or 0)))
        out[m.group(2)] = fields
    return out


def julia_structs(src: str) -> dict[str, list[tuple[str, str]]]:
    """`struct NAME ... end` (immutable, top level): NAME -> [(field, Julia type)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for m in re.finditer(r"^struct\s+(\w+)\s*\n(.*?)^end\b", src, flags=re.S | re.M):
        fields = []
        for line in m.group(2).splitlines():
            line = line.split("#")[0].strip()
            fm = re.match(r"^(\w+)::(.+)$", line)
            if fm:
                fields.append((fm.group(1), fm.group(2).strip()))
        out[m.group(1)] = fields
    return out


def check_structs(cstructs, jstructs, where: str) -> list[str]:
    """Each Julia struct named as a header struct has its fields: same names, order and types."""
    fails = []
    for name, jfields in jstructs.items():
        if name not in cstructs:
            continue
        cfields = cstructs[name]
        if [f for f, _ in jfields] != [f for f, _, _ in cfields]:
            fails.append(f"{where}: struct {name} fields {[f for f, _ in jfields]} differ from the header's "
                         f"{[f for f, _, _ in cfields]}")
            continue
        for (fname, jt), (_, ct, n) in zip(jfields, cfields):
            jt = "".join(jt.split())
            if n:
                mm = re.match(r"^NTuple\{(\d+),(.+)\}$", jt)
                ok = bool(mm) and int(mm.group(1)) == n and compatible(ct, parse_jtype(mm.group(2)), False)
            else:
                ok = compatible(ct, parse_jtype(jt), False)
            if not ok:
                fails.append(f"{where}: struct {name} field {fname}: Julia {jt} does not match C "
                             f"{ct}{f'[{n}]' if n else ''}")
    return fails


def parse_header(path: Path) -> dict[str, Proto]:
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"#[^\n]*", " ", text)
    protos: dict[str, Proto] = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(cv_\w+)\s*\(([^()]*)\)\s*;", text):
        ret_text, name, args_text = m.group(1), m.group(2), m.group(3)
        if "typedef" in ret_text:
            continue
        where = f"{path}: {name}"
        args: list[CType] = []
        a = " ".join(args_text.split())
        if a and a != "void":
            for part in a.split(","):
                part = part.strip()
                mm = re.match(r"^(.*?)([A-Za-z_]\w*)$", part)
                if not mm or not mm.group(1).strip():
                    raise ValueError(f"{where}: cannot read the parameter {part!r}")
                args.append(parse_ctype(mm.group(1), where))
        protos[name] = Proto(name, parse_ctype(ret_text, where), args, " ".join(m.group(0).split()))
    return protos


# ------------------------------------------------------------------------------------------
# Julia types.


def split_top(s: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [x.strip() for x in out]


@dataclass(frozen=True)
class JType:
    base: str  # canonical scalar, "cstring" (Cstring), or "?<name>" (unknown)
    depth: int
    has_ref: bool  # some level is Ref{...}

    def __str__(self) -> str:
        return self.base + "*" * self.depth


def parse_jtype(s: str) -> JType:
    s = "".join(s.split())
    s = re.sub(r"^(Base\.|Core\.)", "", s)
    m = re.match(r"^(Ptr|Ref)\{(.*)\}$", s)
    if m:
        inner = parse_jtype(m.group(2))
        return JType(inner.base, inner.depth + 1, inner.has_ref or m.group(1) == "Ref")
    if s == "Cstring":
        return JType("char", 1, False)
    if s in JL_SCALARS:
        return JType(JL_SCALARS[s], 0, False)
    return JType("?" + s, 0, False)


def compatible(c: CType, j: JType, is_return: bool) -> bool:
    if c.base.startswith("struct:") and j.base == "?" + c.base[len("struct:"):]:
        # A struct the header defines, mirrored by a Julia struct of the same name (its fields
        # are checked by check_structs), passed by Ref or Ptr.
        return c.depth == j.depth and c.depth >= 1 and not is_return
    if j.base.startswith("?") or c.depth != j.depth:
        return False
    if is_return and j.has_ref:
        return False
    if c.base == j.base:
        return True
    if c.depth == 0:
        return False
    if c.base == "char":  # pointee bytes of a string
        return j.base in ("u8", "i8", "char")
    if c.base.startswith("struct:"):
        return j.base == "void"  # an opaque handle
    return False


# ------------------------------------------------------------------------------------------
# Tree walking.


def text_of(src: bytes, n) -> str:
    return src[n.start_byte:n.end_byte].decode("utf-8", "replace")


def walk(n):
    yield n
    for c in n.children:
        yield from walk(c)


def line_of(n) -> int:
    return n.start_point[0] + 1


@dataclass
class CcallSite:
    file: Path
    line: int
    name: str | None
    ret: str | None
    argtypes: list[str] | None
    nargs: int | None  # actual arguments passed
    problem: str | None = None


def quoted_name(src: bytes, n) -> str | None:
    for d in walk(n):
        if d.type == "quote_expression":
            ids = [c for c in d.named_children if c.type == "identifier"]
            if ids:
                return text_of(src, ids[0])
    return None


def ccall_sites(path: Path, src: bytes, root) -> list[CcallSite]:
    sites = []
    for n in walk(root):
        if n.type == "call_expression" and n.named_children and text_of(src, n.named_children[0]) == "ccall":
            args = [c for c in n.named_children[1].named_children] if len(n.named_children) > 1 else []
            site = CcallSite(path, line_of(n), None, None, None, None)
            if len(args) < 3:
                site.problem = "ccall needs a function, a return type and an argument-type tuple"
            else:
                site.name = quoted_name(src, args[0])
                site.ret = text_of(src, args[1])
                if args[2].type != "tuple_expression":
                    site.problem = f"the argument types {text_of(src, args[2])!r} are not a tuple literal"
                else:
                    site.argtypes = [text_of(src, c) for c in args[2].named_children]
                site.nargs = len(args) - 3
            sites.append(site)
        elif n.type == "macrocall_expression" and n.named_children:
            mac = n.named_children[0]
            if mac.type != "macro_identifier" or text_of(src, mac).lstrip("@") != "ccall":
                continue
            site = CcallSite(path, line_of(n), None, None, None, None)
            margs = n.named_children[1].named_children if len(n.named_children) > 1 else []
            body = margs[-1] if margs else None
            if body is None or body.type != "typed_expression" or body.named_children[0].type != "call_expression":
                site.problem = "@ccall needs the form f(args::T...)::R"
            else:
                call, rtype = body.named_children[0], body.named_children[-1]
                callee = call.named_children[0]
                site.name = quoted_name(src, callee)
                if site.name is None:
                    ids = [d for d in walk(callee) if d.type == "identifier"]
                    site.name = text_of(src, ids[-1]) if ids else None
                site.ret = text_of(src, rtype)
                types = []
                for a in call.named_children[1].named_children if len(call.named_children) > 1 else []:
                    if a.type != "typed_expression":
                        site.problem = f"@ccall argument {text_of(src, a)!r} has no ::Type"
                        break
                    types.append(text_of(src, a.named_children[-1]))
                site.argtypes = types
                site.nargs = len(types)
            sites.append(site)
    return sites


def check_ccall(site: CcallSite, protos: dict[str, Proto]) -> list[str]:
    at = f"{site.file}:{site.line}"
    if site.problem:
        return [f"{at}: {site.problem}"]
    if site.name is None:
        return [f"{at}: cannot tell which C function this ccall names (use :name, (:name, lib) or fptr(:name))"]
    p = protos.get(site.name)
    if p is None:
        return [f"{at}: ccall of {site.name}, which include/cloudvolume.h does not declare"]
    errs = []
    if len(site.argtypes) != len(p.args):
        errs.append(f"{at}: {site.name} takes {len(p.args)} argument(s) in the header, the ccall declares "
                    f"{len(site.argtypes)} ({p.text})")
    else:
        for i, (c, jt) in enumerate(zip(p.args, site.argtypes)):
            if not compatible(c, parse_jtype(jt), False):
                errs.append(f"{at}: {site.name} argument {i + 1}: Julia {jt} does not match C {c} ({p.text})")
    if site.nargs is not None and site.nargs != len(site.argtypes):
        errs.append(f"{at}: {site.name}: {len(site.argtypes)} argument type(s) but {site.nargs} argument(s) passed")
    if not compatible(p.ret, parse_jtype(site.ret), True):
        errs.append(f"{at}: {site.name} returns C {p.ret}, the ccall says {site.ret} ({p.text})")
    return errs


# ------------------------------------------------------------------------------------------
# Definitions and exports.


def defined_name(src: bytes, sig) -> tuple[str | None, bool]:
    """(name, is_Base_method) of the first call in a signature or short-form definition."""
    call = next((d for d in walk(sig) if d.type == "call_expression"), None)
    if call is None:
        return None, False
    callee = call.named_children[0]
    if callee.type == "identifier":
        return text_of(src, callee), False
    if callee.type == "field_expression":
        parts = text_of(src, callee).split(".")
        return parts[-1], parts[0] == "Base"
    return None, False


def definitions(src: bytes, root) -> tuple[set[str], set[str], list[tuple[str, int]]]:
    defs: set[str] = set()
    base_methods: set[str] = set()
    exports: list[tuple[str, int]] = []
    for n in walk(root):
        if n.type == "export_statement":
            for c in n.named_children:
                if c.type == "identifier":
                    exports.append((text_of(src, c), line_of(c)))
        elif n.type == "struct_definition":
            head = next((c for c in n.named_children if c.type == "type_head"), None)
            if head is not None:
                ids = [d for d in walk(head) if d.type == "identifier"]
                if ids:
                    defs.add(text_of(src, ids[0]))
        elif n.type == "function_definition":
            sig = next((c for c in n.named_children if c.type == "signature"), None)
            if sig is not None:
                name, is_base = defined_name(src, sig)
                if name:
                    (base_methods if is_base else defs).add(name)
        elif n.type == "assignment" and n.named_children and n.named_children[0].type in (
                "call_expression", "where_expression", "typed_expression"):
            lhs = n.named_children[0]
            name, is_base = defined_name(src, lhs)
            if name:
                (base_methods if is_base else defs).add(name)
        elif n.type == "const_statement":
            for d in walk(n):
                if d.type == "assignment" and d.named_children[0].type == "identifier":
                    defs.add(text_of(src, d.named_children[0]))
    return defs, base_methods, exports


def first_call(src: bytes, node):
    return next((d for d in walk(node) if d.type == "call_expression"), None)


def callee_name(src: bytes, call) -> str | None:
    callee = call.named_children[0] if call.named_children else None
    if callee is None:
        return None
    if callee.type == "identifier":
        return text_of(src, callee)
    if callee.type == "field_expression":
        return text_of(src, callee).split(".")[-1]
    return None


def argument_list(call):
    return next((c for c in call.named_children if c.type == "argument_list"), None)


def declared_keywords(src: bytes, root) -> dict[str, list[set[str]]]:
    """Per function name, the keyword parameters (after `;`) each of its methods declares by
    name (`kwargs...` declares none)."""
    out: dict[str, list[set[str]]] = {}
    for n in walk(root):
        if n.type == "function_definition":
            sig = next((c for c in n.named_children if c.type == "signature"), None)
        elif n.type == "assignment" and n.named_children and n.named_children[0].type in (
                "call_expression", "where_expression", "typed_expression"):
            sig = n.named_children[0]
        else:
            continue
        call = first_call(src, sig) if sig is not None else None
        args = argument_list(call) if call is not None else None
        name = callee_name(src, call) if call is not None else None
        if args is None or name is None:
            continue
        kws: set[str] = set()
        after = False
        for c in args.children:
            if c.type == ";":
                after = True
            elif after and c.type == "identifier":
                kws.add(text_of(src, c))
            elif after and c.type == "named_argument" and c.named_children:
                first = c.named_children[0]
                ident = first if first.type == "identifier" else next(
                    (d for d in walk(first) if d.type == "identifier"), None)
                if ident is not None:
                    kws.add(text_of(src, ident))
        out.setdefault(name, []).append(kws)
    return out


def passed_keywords(src: bytes, root) -> dict[str, set[str]]:
    """Per called function name, every keyword any call to it passes (`f(x; k = v)`, `f(x, k = v)`)."""
    out: dict[str, set[str]] = {}
    for n in walk(root):
        if n.type != "call_expression":
            continue
        name = callee_name(src, n)
        args = argument_list(n)
        if name is None or args is None:
            continue
        got = out.setdefault(name, set())
        for c in args.named_children:
            if c.type == "named_argument" and c.named_children and c.named_children[0].type == "identifier":
                got.add(text_of(src, c.named_children[0]))
    return out


# ------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO / "bindings" / "julia")
    ap.add_argument("--header", type=Path, default=REPO / "include" / "cloudvolume.h")
    ap.add_argument("--package", default="CloudVolume", help="package directory under --root")
    args = ap.parse_args(argv)

    parser = Parser(Language(tree_sitter_julia.language()))
    failures: list[str] = []
    files = sorted(args.root.rglob("*.jl"))
    if not files:
        print(f"julia_checks: no .jl files under {args.root}", file=sys.stderr)
        return 1
    try:
        protos = parse_header(args.header)
    except (OSError, ValueError) as e:
        print(f"julia_checks: {e}", file=sys.stderr)
        return 1
    if len(protos) < 10:
        failures.append(f"{args.header}: only {len(protos)} cv_* prototypes found")
    cstructs = parse_header_structs(args.header)
    n_structs = 0

    pkg_src = args.root / args.package / "src"
    all_defs: set[str] = set()
    all_base: set[str] = set()
    exports: list[tuple[str, int]] = []
    n_sites = 0
    called: set[str] = set()
    declared: dict[str, list[set[str]]] = {}
    passed: dict[str, set[str]] | None = None
    tests_file = args.root / args.package / "test" / "runtests.jl"
    for f in files:
        src = f.read_bytes()
        tree = parser.parse(src)
        rel = f.relative_to(REPO) if f.is_relative_to(REPO) else f
        bad = [n for n in walk(tree.root_node) if n.type == "ERROR" or n.is_missing]
        for n in bad:
            what = f"missing {n.type!r}" if n.is_missing else "syntax error"
            snippet = text_of(src, n).splitlines()[0][:60] if text_of(src, n) else ""
            failures.append(f"{rel}:{line_of(n)}:{n.start_point[1] + 1}: {what} {snippet!r}")
        if tree.root_node.has_error and not bad:
            failures.append(f"{rel}: the parser reports an error")
        for site in ccall_sites(rel, src, tree.root_node):
            n_sites += 1
            if site.name:
                called.add(site.name)
            failures.extend(check_ccall(site, protos))
        jstructs = julia_structs(src.decode("utf-8", "replace"))
        n_structs += sum(1 for k in jstructs if k in cstructs)
        failures.extend(check_structs(cstructs, jstructs, str(rel)))
        if f.is_relative_to(pkg_src):
            d, b, e = definitions(src, tree.root_node)
            all_defs |= d
            all_base |= b
            exports += [(name, line) for name, line in e]
            for name, sets in declared_keywords(src, tree.root_node).items():
                declared.setdefault(name, []).extend(sets)
        if f.resolve() == tests_file.resolve():
            passed = passed_keywords(src, tree.root_node)

    if n_sites == 0:
        failures.append(f"no ccall found under {args.root}")
    exported = {name for name, _ in exports}
    for name in REQUIRED_EXPORTS:
        if name not in exported:
            failures.append(f"{pkg_src}: CloudVolume.jl's {name} is not exported")
    for name in sorted(exported):
        if name not in all_defs and name not in all_base:
            failures.append(f"{pkg_src}: {name} is exported but not defined (no struct, function or Base method)")
    for name in REQUIRED_BASE_METHODS:
        if name not in all_base:
            failures.append(f"{pkg_src}: no method of Base.{name} (CloudVolume.jl extends it)")

    n_keywords = 0
    for name, want in REQUIRED_KEYWORDS.items():
        sets = declared.get(name, [])
        if not sets:
            failures.append(f"{pkg_src}: no method of {name} is defined")
            continue
        best = max(sets, key=lambda k: len(set(want) & k))
        missing = [k for k in want if k not in best]
        if missing:
            failures.append(f"{pkg_src}: no method of {name} declares the keyword(s) {', '.join(missing)} "
                            f"(cloud-volume's; the closest declares {', '.join(sorted(best)) or 'none'})")
        n_keywords += len(want)
        if passed is None:
            continue
        untested = [k for k in want if k not in passed.get(name, set())]
        if untested:
            failures.append(f"{tests_file}: no call of {name} passes {', '.join(untested)}")
    if passed is None:
        failures.append(f"{tests_file}: not found (the package's tests)")

    uncalled = sorted(set(protos) - called)
    print(f"julia_checks: {len(files)} Julia file(s) parsed, {n_sites} ccall(s) checked against "
          f"{len(protos)} prototypes, {n_structs} struct(s) checked field by field against the header, "
          f"{len(exported)} export(s), {n_keywords} keyword(s) declared and tested")
    if cstructs and n_structs == 0:
        failures.append(f"{args.header}: defines structs {sorted(cstructs)} but no Julia struct mirrors them")
    if uncalled:
        print(f"julia_checks: note: header functions without a ccall: {', '.join(uncalled)}")
    for msg in failures:
        print(f"FAIL {msg}")
    print(f"julia_checks: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
