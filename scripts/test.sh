#!/usr/bin/env bash
# Run every test: unit tests, the C ABI test program, conformance against cloud-volume and
# tensorstore over file:// and a loopback nginx, bad-input and thread tests.
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

mkdir -p target
cargo test --all-targets 2>&1 | tee target/test.log

# The Julia binding: syntax, ccalls against the header, the CloudVolume.jl API (no Julia here).
bash scripts/test_julia.sh

# One closing line for the whole run (cargo prints one per test binary).
passed=$(grep -E '^test result:' target/test.log | awk '{s += $4} END {print s + 0}')
failed=$(grep -E '^test result:' target/test.log | awk '{s += $6} END {print s + 0}')
echo "total: $passed passed, $failed failed"
