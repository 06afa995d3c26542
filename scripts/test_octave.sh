#!/usr/bin/env bash
# The MATLAB binding (bindings/matlab), tested under GNU Octave:
#   1. cargo build --lib (the debug profile, whose artifacts `cargo test` shares;
#      CV_OCTAVE_PROFILE=release for the release one);
#   2. the service doubles: tests/servers/dvid.py (DVID) and tests/servers/boss.py (the BOSS,
#      set up and written by intern through tests/reference/boss_intern.py setup), on loopback
#      ports, handed to the tests as CV_DVID_SERVER=127.0.0.1:PORT,
#      CV_BOSS_URL_BASE=boss://http://127.0.0.1:PORT/col/exp, CV_BOSS_TOKEN and
#      CV_BOSS_INTERN_DIR (intern's cutouts and manifest.json), and tests/servers/ocp.py (ndstore,
#      written and read back by h5py through tests/reference/ocp_h5py.py setup) as
#      CV_OCP_SERVER=127.0.0.1:PORT and CV_OCP_H5PY_DIR; and tests/servers/chunkedgraph.py (with
#      the fixture's token) on $CV_REFERENCE_DIR/graphene_meshes (tests/reference/graphene_meshes.py
#      writes it: cloud-volume's graphene mesh reads through the same double) as
#      CV_GRAPHENE_MESH_URL=graphene://http://127.0.0.1:PORT/segmentation/table and
#      CV_GRAPHENE_MESH_DIR (a missing fixture fails under CV_REQUIRE_REFERENCE=1, else its
#      cases are skipped); all stopped on exit (by PID).
#      Without the venv's python ($CV_PYTHON, else target/venv/bin/python) the service cases
#      are skipped with a notice, or fail when CV_REQUIRE_REFERENCE=1 (the default here for
#      the services; the reference layers below keep CV_REQUIRE_REFERENCE as given);
#   3. in one Octave process: the binding's build script (what a user runs) links the static
#      library into the MEX file, then bindings/matlab/tests/run_tests.m runs every case
#      (reference layers read byte for byte, writes of every data type, multi-channel, edge
#      boxes, error identifiers, bad arguments, handle registry and leaks; meshes and skeletons
#      against cloud-volume's recorded reads bit for bit; DVID instances and BOSS channels
#      through the doubles);
#   4. when cmake is installed: the top-level CMake option CLOUDVOLUME_BUILD_MEX builds the MEX
#      file into the build tree, and the sample-layer cases run against that copy.
# Needs octave and liboctave-dev (scripts/setup.sh installs them) and the reference layers in
# $CV_REFERENCE_DIR (default target/reference; scripts/test.sh writes them, the mesh fixture
# $CV_REFERENCE_DIR/meshes with tests/reference/make_meshes.py). Exits non-zero on
# any failure; the last line is "octave: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in octave mkoctfile; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_octave.sh: $tool not found; install octave and liboctave-dev (scripts/setup.sh)" >&2
    echo "octave: 0 passed, 1 failed"
    exit 1
  fi
done

export CV_REFERENCE_DIR="${CV_REFERENCE_DIR:-$PWD/target/reference}"
profile="${CV_OCTAVE_PROFILE:-debug}"
case "$profile" in
  debug) cargo_flags=() ;;
  release) cargo_flags=(--release) ;;
  *) cargo_flags=(--profile "$profile") ;;
esac
lib="$PWD/target/$profile/libcloudvolume.a"
if ! cargo build --lib "${cargo_flags[@]}" --quiet; then
  echo "FAIL cargo build --lib ${cargo_flags[*]}"
  echo "octave: 0 passed, 1 failed"
  exit 1
fi

# The service doubles. Each prints "PORT n" once listening; it is a child of this shell (it
# exits by itself when this shell goes away) and is killed by its PID on exit.
PY="${CV_PYTHON:-target/venv/bin/python}"
require_services="${CV_REQUIRE_REFERENCE:-1}"
svc_failed=0
svc_dir="$(mktemp -d)"
svc_pids=()
stop_services() {
  local p
  for p in "${svc_pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  rm -rf "$svc_dir"
}
trap stop_services EXIT

# start_double NAME SCRIPT ARGS...: starts it, sets $port (empty when it did not start).
start_double() {
  local name=$1 i
  shift
  "$PY" "$@" --port 0 >"$svc_dir/$name.out" 2>"$svc_dir/$name.err" &
  svc_pids+=("$!")
  port=""
  for i in $(seq 1 300); do
    port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$svc_dir/$name.out")
    [ -n "$port" ] && return 0
    kill -0 "$!" 2>/dev/null || break
    sleep 0.05
  done
  tail -n 20 "$svc_dir/$name.err" >&2 || true
  return 1
}

if [ -x "$PY" ]; then
  echo "== services: the DVID, BOSS and ndstore doubles"
  if start_double dvid tests/servers/dvid.py; then
    export CV_DVID_SERVER="127.0.0.1:$port"
    echo "dvid double: $CV_DVID_SERVER (pid ${svc_pids[-1]})"
  else
    echo "FAIL the DVID double (tests/servers/dvid.py) did not start"
    svc_failed=$((svc_failed + 1))
  fi
  boss_token="octave-b0ss-t0ken"
  if start_double boss tests/servers/boss.py --token "$boss_token"; then
    if "$PY" tests/reference/boss_intern.py setup "$port" "$boss_token" "$svc_dir/boss-intern" \
         >"$svc_dir/boss-intern.log" 2>&1; then
      export CV_BOSS_URL_BASE="boss://http://127.0.0.1:$port/col/exp"
      export CV_BOSS_TOKEN="$boss_token"
      export CV_BOSS_INTERN_DIR="$svc_dir/boss-intern"
      echo "boss double: $CV_BOSS_URL_BASE (pid ${svc_pids[-1]}); $(tail -n 1 "$svc_dir/boss-intern.log")"
    else
      tail -n 20 "$svc_dir/boss-intern.log"
      echo "FAIL tests/reference/boss_intern.py setup against the BOSS double"
      svc_failed=$((svc_failed + 1))
    fi
  else
    echo "FAIL the BOSS double (tests/servers/boss.py) did not start"
    svc_failed=$((svc_failed + 1))
  fi
  if start_double ocp tests/servers/ocp.py; then
    if "$PY" tests/reference/ocp_h5py.py setup "$port" "$svc_dir/ocp-h5py" >"$svc_dir/ocp-h5py.log" 2>&1; then
      export CV_OCP_SERVER="127.0.0.1:$port"
      export CV_OCP_H5PY_DIR="$svc_dir/ocp-h5py"
      echo "ocp double: $CV_OCP_SERVER (pid ${svc_pids[-1]}); $(tail -n 1 "$svc_dir/ocp-h5py.log")"
    else
      tail -n 20 "$svc_dir/ocp-h5py.log"
      echo "FAIL tests/reference/ocp_h5py.py setup against the ndstore double"
      svc_failed=$((svc_failed + 1))
    fi
  else
    echo "FAIL the ndstore double (tests/servers/ocp.py) did not start"
    svc_failed=$((svc_failed + 1))
  fi
  gm_dir="$CV_REFERENCE_DIR/graphene_meshes"
  if [ -f "$gm_dir/manifest.json" ]; then
    if gm_token=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$gm_dir/manifest.json") \
       && start_double chunkedgraph tests/servers/chunkedgraph.py --fixture "$gm_dir" --token "$gm_token"; then
      export CV_GRAPHENE_MESH_URL="graphene://http://127.0.0.1:$port/segmentation/table"
      export CV_GRAPHENE_MESH_DIR="$gm_dir"
      echo "chunkedgraph double: $CV_GRAPHENE_MESH_URL (pid ${svc_pids[-1]}); fixture $gm_dir"
    else
      echo "FAIL the chunkedgraph double (tests/servers/chunkedgraph.py) did not start on $gm_dir"
      svc_failed=$((svc_failed + 1))
    fi
  elif [ "$require_services" = "1" ]; then
    echo "FAIL no $gm_dir/manifest.json for the chunkedgraph double (scripts/test.sh runs tests/reference/graphene_meshes.py; CV_REQUIRE_REFERENCE=0 skips it)"
    svc_failed=$((svc_failed + 1))
  else
    unset CV_GRAPHENE_MESH_URL CV_GRAPHENE_MESH_DIR
    echo "skip graphene meshes: no $gm_dir/manifest.json"
  fi
elif [ "$require_services" = "1" ]; then
  echo "FAIL services: no $PY (scripts/setup.sh makes the venv; CV_REQUIRE_REFERENCE=0 skips the services)"
  svc_failed=1
else
  echo "skip services: no $PY (the DVID, BOSS, OCP and graphene mesh cases of run_tests.m are skipped)"
fi

octave_run() {
  # Octave 7.3 prints "error: ignoring const execution_exception& while preparing to exit" at
  # every exit (its own, with any script; the exit status is unaffected): drop that line.
  octave --no-gui --no-window-system --norc --eval "$1" 2>&1 | { grep -v 'while preparing to exit' || true; }
  return "${PIPESTATUS[0]}"
}

mkdir -p target
log=target/octave.log
echo "== octave: build_cloudvolume + bindings/matlab/tests/run_tests.m"
status=0
# (run_tests.m's own closing line is renamed on the console: the script's line comes last.)
octave_run "cd bindings/matlab; build_cloudvolume('lib', '$lib'); cd tests; exit(run_tests() > 0)" | tee "$log" \
  | sed -u 's/^octave: \([0-9]* passed\)/run_tests.m: \1/' || status=$?
passed=$(sed -n 's/^octave: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^octave: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$log" | tail -1)
if [ -z "$passed" ]; then
  passed=0
  failed=1
  echo "FAIL the Octave run ended before its summary (exit status $status)"
elif [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "FAIL Octave exited with status $status"
fi

# The CMake route: -DCLOUDVOLUME_BUILD_MEX=ON, reusing cargo's target directory.
if command -v cmake >/dev/null 2>&1 && grep -q CLOUDVOLUME_BUILD_MEX CMakeLists.txt; then
  echo "== cmake: CLOUDVOLUME_BUILD_MEX=ON, then the sample-layer cases against the built copy"
  build=target/cmake-mex
  if cmake -S . -B "$build" -DCLOUDVOLUME_BUILD_MEX=ON -DCLOUDVOLUME_CARGO_TARGET_DIR="$PWD/target" \
        -DCLOUDVOLUME_CARGO_PROFILE="$profile" -DCLOUDVOLUME_BUILD_EXAMPLES=OFF \
        -DCLOUDVOLUME_INSTALL=OFF >"$build.log" 2>&1 \
     && cmake --build "$build" --target cloudvolume_mex_octave >>"$build.log" 2>&1 \
     && CLOUDVOLUME_MATLAB_BINDING="$PWD/$build/bindings/matlab/matlab" \
        octave_run "cd bindings/matlab/tests; exit(run_tests('sample layer') > 0)" >>"$build.log" \
     && grep -q "^binding: $PWD/$build/bindings/matlab/matlab$" "$build.log"; then
    passed=$((passed + 1))
    echo "ok   cmake: the MEX file built by CLOUDVOLUME_BUILD_MEX works"
  else
    failed=$((failed + 1))
    tail -n 30 "$build.log"
    echo "FAIL cmake: CLOUDVOLUME_BUILD_MEX (log: $build.log)"
  fi
else
  echo "skip cmake: no cmake, or no CLOUDVOLUME_BUILD_MEX option in CMakeLists.txt"
fi

failed=$((failed + svc_failed))
echo "octave: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
