#!/usr/bin/env bash
# Installs NVRTC, the CUDA run-time compiler library, from PyPI into target/nvrtc (or $1), so the
# CUDA kernels can be compiled to PTX on a machine without a GPU or a CUDA toolkit. Pinned to the
# CUDA 13.0 release the GPU machines run. Prints the folder holding libnvrtc.so.13.
set -euo pipefail
version=13.0.88
dest="${1:-target/nvrtc}"
lib="$dest/nvidia/cu13/lib"
if [ ! -f "$dest/.installed-$version" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "install-nvrtc: python3 with pip is needed to fetch nvidia-cuda-nvrtc from PyPI" >&2
        exit 1
    fi
    rm -rf "$dest"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$dest" "nvidia-cuda-nvrtc==$version" >&2
    touch "$dest/.installed-$version"
fi
test -f "$lib/libnvrtc.so.13" || { echo "install-nvrtc: $lib/libnvrtc.so.13 missing" >&2; exit 1; }
echo "$lib"
