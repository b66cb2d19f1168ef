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
if ! command -v cc >/dev/null 2>&1; then
    echo "setup: installing a C compiler (blst and blake3 build C code)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q build-essential
fi
