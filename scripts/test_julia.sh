#!/usr/bin/env bash
# Checks of the Julia binding (bindings/julia/CloudVolume) that run without Julia:
#   1. tests/julia_checks.py: every .jl file parses under tree-sitter's Julia grammar, every
#      ccall matches a prototype of include/cloudvolume.h, CloudVolume.jl's API is exported
#      and defined, the constructor and the label operations declare cloud-volume's keywords
#      and test/runtests.jl passes every one of them;
#   2. the checker fails on a deliberately broken copy (so a passing run means something).
# When a `julia` (1.10 or later) is on PATH, the package's own tests run too, against
# target/release/libcloudvolume.so.
#
# Python: $CV_PYTHON, else target/venv/bin/python (scripts/setup.sh), with tree-sitter and
# tree-sitter-julia installed (`target/venv/bin/pip install tree-sitter tree-sitter-julia`).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${CV_PYTHON:-target/venv/bin/python}"
if ! "$PY" -c 'import tree_sitter, tree_sitter_julia' 2>/dev/null; then
  echo "test_julia.sh: $PY lacks tree-sitter / tree-sitter-julia;" \
       "run: $PY -m pip install tree-sitter tree-sitter-julia" >&2
  exit 1
fi

echo "== julia_checks: bindings/julia"
"$PY" tests/julia_checks.py

echo "== julia_checks must fail on a broken copy"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp -r bindings/julia "$tmp/julia"
api="$tmp/julia/CloudVolume/src/api.jl"
# A wrong C type, a wrong argument count, an unknown function, a syntax error, a lost definition.
sed -i -e 's/(Ptr{Cvoid}, UInt32, Ptr{Int64}), vol, mip, out)/(Ptr{Cvoid}, Int32, Ptr{Int64}), vol, mip, out)/' \
       -e 's/(Ptr{Cvoid}, Cstring), st, key)/(Ptr{Cvoid}, Cstring, Cint), st, key)/' \
       -e 's/fptr(:cv_version)/fptr(:cv_no_such_function)/' "$api"
printf '\nfunction broken(x\n    x + \nend\n' >> "$api"
sed -i -e 's/^scale(x::CloudVolumeWrapper) = x.mip$//' "$tmp/julia/CloudVolume/src/wrapper.jl"
# A keyword renamed away from cloud-volume's, and one the tests no longer pass.
sed -i -e 's/mip::Integer = x.mip, counts::Bool = false)/mip::Integer = x.mip, return_counts::Bool = false)/' \
    "$tmp/julia/CloudVolume/src/wrapper.jl"
sed -i -e 's/, coord_resolution = (8, 8, 40))/)/' "$tmp/julia/CloudVolume/test/runtests.jl"
# A struct field of the wrong type (the layout of cv_aligned_request would differ).
sed -i -e 's/^    n_root_ids::Csize_t$/    n_root_ids::Cint/' "$api"
if out="$("$PY" tests/julia_checks.py --root "$tmp/julia" 2>&1)"; then
  echo "$out"
  echo "test_julia.sh: the checker passed a broken copy" >&2
  exit 1
fi
for want in "argument 2: Julia Int32 does not match C u32" "cv_storage_delete takes 2 argument(s)" \
            "cv_no_such_function" "api.jl:" "scale is exported but not defined" \
            "no method of unique declares the keyword(s) counts" "no call of download_point passes coord_resolution" \
            "struct cv_aligned_request field n_root_ids: Julia Cint does not match C usize"; do
  if ! grep -qF -- "$want" <<<"$out"; then
    echo "$out"
    echo "test_julia.sh: the checker did not report: $want" >&2
    exit 1
  fi
done
echo "ok: $(grep -c '^FAIL' <<<"$out") failures reported on the broken copy"

if command -v julia >/dev/null 2>&1; then
  echo "== julia: Pkg.test() of bindings/julia/CloudVolume"
  cargo build --release
  CLOUDVOLUME_LIB="${CLOUDVOLUME_LIB:-$PWD/target/release/libcloudvolume.so}" \
    julia --project=bindings/julia/CloudVolume -e 'using Pkg; Pkg.test()'
else
  echo "== julia not on PATH: bindings/julia/CloudVolume/test/runtests.jl not run"
fi
echo "test_julia.sh: ok"
