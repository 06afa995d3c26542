#!/usr/bin/env bash
# The C++ binding and the CMake package: configure, build and ctest twice.
#   target/cmake/main  Debug; the C++ wrapper tests (static and shared), every reference box
#                      through the wrapper, every recorded mesh and skeleton read of the mesh
#                      fixture ($CV_REFERENCE_DIR/meshes) through the wrapper (natively, and a
#                      sample under valgrind), tests/c/test_capi.c natively and under valgrind, the
#                      install + find_package, add_subdirectory and pkg-config consumers
#   target/cmake/asan  the same C and C++ tests built with -fsanitize=address,undefined
# Before both, the DVID, BOSS and ndstore doubles (tests/servers/dvid.py, boss.py, ocp.py;
# intern's setup by tests/reference/boss_intern.py, h5py's by tests/reference/ocp_h5py.py) are
# started on loopback for the services suite (bindings/cpp/tests/test_services.cpp), which finds
# them through CV_DVID_SERVER, CV_BOSS_URL_BASE, CV_BOSS_TOKEN, CV_BOSS_INTERN_DIR, CV_OCP_SERVER
# and CV_OCP_H5PY_DIR; and the chunkedgraph double (tests/servers/chunkedgraph.py, with the
# fixture's token) on $CV_REFERENCE_DIR/graphene_meshes (tests/reference/graphene_meshes.py
# writes it) for the graphene meshes suite (bindings/cpp/tests/test_graphene_meshes.cpp), found
# through CV_GRAPHENE_MESH_URL (graphene://http://127.0.0.1:PORT/segmentation/table) and
# CV_GRAPHENE_MESH_DIR; they are stopped (by PID) on exit. Without that fixture the script fails
# under CV_REQUIRE_REFERENCE=1, else cpp_graphene_meshes skips.
# Without target/venv/bin/python the suite skips with a notice, or fails under
# CV_REQUIRE_REFERENCE=1 (the default).
# Both point cargo at this checkout's target/ (debug profile), so the library `cargo test`
# built is reused rather than built again. Needs cmake, a C++17 compiler, valgrind and
# pkg-config (scripts/setup.sh), and the reference layers (scripts/test.sh writes them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export CV_REFERENCE_DIR="${CV_REFERENCE_DIR:-$root/target/reference}"
export CV_REQUIRE_REFERENCE="${CV_REQUIRE_REFERENCE:-1}"
for tool in cmake c++ valgrind pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test_cpp: $tool not found (run scripts/setup.sh)" >&2; exit 1; }
done
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

# ---- the service doubles ----------------------------------------------------------------
double_pids=()
stop_doubles() {
  local pid
  for pid in ${double_pids[@]+"${double_pids[@]}"}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  double_pids=()
}
trap stop_doubles EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

double_port=""
start_double() {  # name, script under tests/servers, arguments...: sets double_port
  local name=$1 script=$2; shift 2
  local out="$services/$name.out" err="$services/$name.log"
  : >"$out"
  "$venv_python" "tests/servers/$script" --port 0 "$@" >"$out" 2>"$err" &
  local pid=$!
  double_pids+=("$pid")
  local i
  for i in $(seq 1 300); do
    if grep -q '^PORT [0-9]' "$out"; then
      double_port=$(sed -n 's/^PORT \([0-9]*\).*/\1/p' "$out" | head -1)
      echo "== $name double: 127.0.0.1:$double_port (pid $pid, log $err)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "test_cpp: the $name double ($script) did not start:" >&2
  tail -20 "$err" >&2
  exit 1
}

venv_python="$root/target/venv/bin/python"
services="$root/target/cmake/services"
if [ -x "$venv_python" ]; then
  mkdir -p "$services"
  start_double dvid dvid.py
  export CV_DVID_SERVER="127.0.0.1:$double_port"
  boss_token="cpp-b0ss-t0ken"
  start_double boss boss.py --token "$boss_token"
  rm -rf "$services/boss-intern"
  if ! "$venv_python" tests/reference/boss_intern.py setup "$double_port" "$boss_token" "$services/boss-intern" \
      >"$services/boss-intern.log" 2>&1; then
    echo "test_cpp: boss_intern.py setup failed:" >&2
    tail -20 "$services/boss-intern.log" >&2
    exit 1
  fi
  echo "== $(tail -1 "$services/boss-intern.log") ($services/boss-intern)"
  export CV_BOSS_URL_BASE="boss://http://127.0.0.1:$double_port/col/exp"
  export CV_BOSS_TOKEN="$boss_token"
  export CV_BOSS_INTERN_DIR="$services/boss-intern"
  start_double ocp ocp.py
  rm -rf "$services/ocp-h5py"
  if ! "$venv_python" tests/reference/ocp_h5py.py setup "$double_port" "$services/ocp-h5py" \
      >"$services/ocp-h5py.log" 2>&1; then
    echo "test_cpp: ocp_h5py.py setup failed:" >&2
    tail -20 "$services/ocp-h5py.log" >&2
    exit 1
  fi
  echo "== $(tail -1 "$services/ocp-h5py.log") ($services/ocp-h5py)"
  export CV_OCP_SERVER="127.0.0.1:$double_port"
  export CV_OCP_H5PY_DIR="$services/ocp-h5py"
  graphene_meshes="$CV_REFERENCE_DIR/graphene_meshes"
  if [ -f "$graphene_meshes/manifest.json" ]; then
    gm_token=$("$venv_python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' \
      "$graphene_meshes/manifest.json")
    start_double chunkedgraph chunkedgraph.py --fixture "$graphene_meshes" --token "$gm_token"
    export CV_GRAPHENE_MESH_URL="graphene://http://127.0.0.1:$double_port/segmentation/table"
    export CV_GRAPHENE_MESH_DIR="$graphene_meshes"
  elif [ "$CV_REQUIRE_REFERENCE" = 1 ]; then
    echo "test_cpp: no $graphene_meshes/manifest.json for the chunkedgraph double (CV_REQUIRE_REFERENCE=1; scripts/test.sh runs tests/reference/graphene_meshes.py)" >&2
    exit 1
  else
    unset CV_GRAPHENE_MESH_URL CV_GRAPHENE_MESH_DIR
    echo "NOTICE: no $graphene_meshes/manifest.json: cpp_graphene_meshes skipped (set CV_REQUIRE_REFERENCE=1 to fail)" >&2
  fi
else
  unset CV_DVID_SERVER CV_BOSS_URL_BASE CV_BOSS_TOKEN CV_BOSS_INTERN_DIR CV_OCP_SERVER CV_OCP_H5PY_DIR
  unset CV_GRAPHENE_MESH_URL CV_GRAPHENE_MESH_DIR
  if [ "$CV_REQUIRE_REFERENCE" = 1 ]; then
    echo "NOTICE: $venv_python missing: no DVID, BOSS, ndstore or chunkedgraph double; cpp_services and cpp_graphene_meshes will fail (CV_REQUIRE_REFERENCE=1; run scripts/setup.sh)" >&2
  else
    echo "NOTICE: $venv_python missing: no DVID, BOSS, ndstore or chunkedgraph double; cpp_services and cpp_graphene_meshes skipped (set CV_REQUIRE_REFERENCE=1 to fail)" >&2
  fi
fi

run_build() {  # name, extra cmake arguments...
  local name=$1; shift
  local dir=target/cmake/$name
  echo "== cmake ($name)"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCLOUDVOLUME_BUILD_TESTS=ON \
    -DCLOUDVOLUME_CARGO_TARGET_DIR="$root/target" -DCLOUDVOLUME_REFERENCE_DIR="$CV_REFERENCE_DIR" "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "== ctest ($name)"
  # -V keeps every test's output in the log; the summary below is read from it.
  if ! (cd "$dir" && ctest -V -j 2 --timeout 900 >ctest.log 2>&1); then
    grep -E "^[0-9]+: (FAIL|.*failed)|Test +#|tests passed|The following tests FAILED|^\s+[0-9]+ - " "$dir/ctest.log" | tail -40 >&2
    echo "test_cpp: ctest ($name) failed; full log: $dir/ctest.log" >&2
    exit 1
  fi
  # One line per test, then what it reported: check counts, valgrind's verdict, the canaries'
  # sanitizer reports, the consumers' libraries. (A sanitizer report in any other test fails it:
  # halt_on_error, and LeakSanitizer's exit code.)
  grep -E "Test +#[0-9]+: " "$dir/ctest.log" | sed 's/^ *[0-9]*\/[0-9]* //' | sort -t'#' -k2 -n | while read -r line; do
    echo "$line"
    n=$(echo "$line" | sed -E 's/^Test +#([0-9]+):.*/\1/')
    # A canary's report is what it exists to produce: labelled, so a real one stands out.
    label="      "
    case "$line" in *canary*) label="      expected (canary proves the sanitizer fires): " ;; esac
    grep -E "^$n: ((test_wrapper|test_reference): )?[0-9]+ checks|^$n: DVID: .* boxes compared|^$n: layers [0-9]+|^$n: meshes: |^$n: graphene meshes: |^$n: ==[0-9]+== +(definitely|indirectly|possibly) lost|^$n: ==[0-9]+== ERROR SUMMARY|^$n: .*(LeakSanitizer|runtime error)|^$n: -- .* loads |^$n: -- consumer" \
      "$dir/ctest.log" | sed -E "s/^$n: (==[0-9]+== )?/$label/" || true
  done
  grep -E "tests passed" "$dir/ctest.log"
}

run_build main
# Nothing we ship may give its host an executable stack (an assembly object without a
# .note.GNU-stack section in the static library would give one to every program linking it).
echo "== executable stacks"
checked=0
while IFS= read -r f; do
  stack=$(readelf -lW "$f" 2>/dev/null | grep GNU_STACK || true)
  [ -n "$stack" ] || continue
  checked=$((checked + 1))
  if echo "$stack" | grep -q "RWE"; then
    echo "test_cpp: $f has an executable stack" >&2
    exit 1
  fi
done < <(find target/cmake/main -type f -perm -u+x; echo target/debug/libcloudvolume.so)
[ "$checked" -gt 0 ] || { echo "test_cpp: no ELF file found to check for an executable stack" >&2; exit 1; }
echo "ok   no executable stack in $checked programs and libraries"
run_build asan -DCLOUDVOLUME_SANITIZE=address,undefined -DCLOUDVOLUME_BUILD_EXAMPLES=OFF -DCLOUDVOLUME_INSTALL=OFF

echo "test_cpp: ok ($(( $(date +%s) - start ))s)"
