#!/usr/bin/env bash
# The C++ binding and the CMake package: configure, build and ctest twice.
#   target/cmake/main  Debug; the C++ wrapper tests (static and shared), every reference box
#                      through the wrapper, tests/c/test_capi.c natively and under valgrind, the
#                      install + find_package, add_subdirectory and pkg-config consumers
#   target/cmake/asan  the same C and C++ tests built with -fsanitize=address,undefined
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
    grep -E "^$n: ((test_wrapper|test_reference): )?[0-9]+ checks|^$n: layers [0-9]+|^$n: ==[0-9]+== +(definitely|indirectly|possibly) lost|^$n: ==[0-9]+== ERROR SUMMARY|^$n: .*(LeakSanitizer|runtime error)|^$n: -- .* loads |^$n: -- consumer" \
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
