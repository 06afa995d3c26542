#!/usr/bin/env bash
# Run every test: rustfmt and clippy (-D warnings), unit tests, the C ABI test program, conformance against cloud-volume and
# tensorstore over file:// and a loopback nginx, bad-input and thread tests, S3 (moto) and GCS
# (fake-gcs-server) tests, fault and cache tests, then the Julia checks, the C++/CMake tests
# (ctest, sanitizers, valgrind) and the MATLAB binding under Octave.
# Needs scripts/setup.sh to have run once (bash .ci/run does both).
set -euo pipefail
cd "$(dirname "$0")/.."

export CV_REFERENCE_DIR="${CV_REFERENCE_DIR:-$PWD/target/reference}"
export CV_REQUIRE_REFERENCE=1
PY=target/venv/bin/python

# Reference layers, written by cloud-volume and tensorstore (regenerated when the script changes).
stamp="$CV_REFERENCE_DIR/.stamp"
want=$(cat tests/reference/make_layers.py tests/reference/requirements.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  rm -rf "$CV_REFERENCE_DIR"
  "$PY" tests/reference/make_layers.py "$CV_REFERENCE_DIR"
  echo "$want" > "$stamp"
fi

# The graphene fixture and cloud-volume's reads of it through the chunkedgraph double.
gstamp="$CV_REFERENCE_DIR/graphene/.stamp"
gwant=$(cat tests/reference/graphene_check.py tests/servers/chunkedgraph.py tests/reference/requirements.txt | sha256sum | cut -c1-16)
if [ ! -f "$gstamp" ] || [ "$(cat "$gstamp")" != "$gwant" ]; then
  "$PY" tests/reference/graphene_check.py "$CV_REFERENCE_DIR/graphene"
  echo "$gwant" > "$gstamp"
fi

# The graphene fixture past one roots_binary batch (> 300,000 supervoxels in one cutout).
bstamp="$CV_REFERENCE_DIR/graphene_big/.stamp"
bwant=$(cat tests/reference/graphene_big.py tests/reference/graphene_check.py tests/reference/make_layers.py tests/servers/chunkedgraph.py tests/reference/requirements.txt | sha256sum | cut -c1-16)
if [ ! -f "$bstamp" ] || [ "$(cat "$bstamp")" != "$bwant" ]; then
  "$PY" tests/reference/graphene_big.py "$CV_REFERENCE_DIR/graphene_big"
  echo "$bwant" > "$bstamp"
fi

# ImageryClient's aligned image + segmentation cutouts over the graphene fixture (and a model
# from plain cloud-volume cutouts where ImageryClient's zoom and physical alignment part).
istamp="$CV_REFERENCE_DIR/imagery/.stamp"
iwant=$( (cat tests/reference/imagery_check.py tests/reference/imagery-requirements.txt; echo "$gwant") | sha256sum | cut -c1-16)
if [ ! -f "$istamp" ] || [ "$(cat "$istamp")" != "$iwant" ]; then
  "$PY" tests/reference/imagery_check.py "$CV_REFERENCE_DIR/imagery" "$CV_REFERENCE_DIR/graphene" 2>&1 | (grep -v "marked as a placeholder" || true)
  echo "$iwant" > "$istamp"
fi

# Meshes and skeletons written by cloud-volume (legacy, skeletons) and a DracoPy-based writer
# (multi-resolution), with cloud-volume's reads of every object.
mstamp="$CV_REFERENCE_DIR/meshes/.stamp"
mwant=$(cat tests/reference/make_meshes.py tests/reference/requirements.txt | sha256sum | cut -c1-16)
if [ ! -f "$mstamp" ] || [ "$(cat "$mstamp")" != "$mwant" ]; then
  rm -rf "$CV_REFERENCE_DIR/meshes"
  "$PY" tests/reference/make_meshes.py "$CV_REFERENCE_DIR/meshes"
  echo "$mwant" > "$mstamp"
fi

# Graphene meshes: a sharded initial + dynamic mesh fixture, with cloud-volume's reads of it
# through the chunkedgraph double's meshing manifest route.
gmstamp="$CV_REFERENCE_DIR/graphene_meshes/.stamp"
gmwant=$(cat tests/reference/graphene_meshes.py tests/servers/chunkedgraph.py tests/reference/requirements.txt | sha256sum | cut -c1-16)
if [ ! -f "$gmstamp" ] || [ "$(cat "$gmstamp")" != "$gmwant" ]; then
  "$PY" tests/reference/graphene_meshes.py "$CV_REFERENCE_DIR/graphene_meshes"
  echo "$gmwant" > "$gmstamp"
fi

mkdir -p target
# Formatting and lints first: a drift or a warning fails the run (rustfmt.toml sets the style).
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets 2>&1 | tee target/test.log

# The Julia binding: syntax, ccalls against the header, the CloudVolume.jl API (no Julia here).
bash scripts/test_julia.sh

# The C++ binding and the CMake package (ctest; ASan/UBSan and valgrind runs included).
bash scripts/test_cpp.sh 2>&1 | tee target/cpp.log

# The MATLAB binding under GNU Octave (MEX built by build_cloudvolume.m and by CMake).
bash scripts/test_octave.sh 2>&1 | tee target/octave-run.log

# One closing line for the whole run: cargo's tests (one line per binary), ctest's, Octave's.
passed=$(grep -E '^test result:' target/test.log | awk '{s += $4} END {print s + 0}')
failed=$(grep -E '^test result:' target/test.log | awk '{s += $6} END {print s + 0}')
ctest_total=$(grep -E 'tests passed, [0-9]+ tests failed out of' target/cpp.log | awk '{s += $(NF)} END {print s + 0}')
ctest_failed=$(grep -E 'tests passed, [0-9]+ tests failed out of' target/cpp.log | awk '{s += $(NF-5)} END {print s + 0}')
oct_passed=$(grep -E '^octave: [0-9]+ passed' target/octave-run.log | awk '{print $2}')
oct_failed=$(grep -E '^octave: [0-9]+ passed' target/octave-run.log | awk '{print $4}')
echo "total: $passed Rust tests passed, $failed failed; ctest $((ctest_total - ctest_failed)) passed, $ctest_failed failed; octave ${oct_passed:-0} passed, ${oct_failed:-0} failed"
