#!/bin/sh
# Install Rust $RUST_VERSION with rustup's minimal profile (rustc, cargo and
# the standard library only), fetching rustup-init and the toolchain from
# $RUSTUP_DIST_SERVER.
set -eu

triple="$(uname -m)-unknown-linux-gnu"
cache=/root/.cache/mcp-toolchain
mkdir -p "${cache}"
curl -fsSL --retry 3 -o "${cache}/rustup-init" \
    "${RUSTUP_DIST_SERVER}/rustup/dist/${triple}/rustup-init"
chmod +x "${cache}/rustup-init"

RUSTUP_DIST_SERVER="${RUSTUP_DIST_SERVER}" "${cache}/rustup-init" -y --no-modify-path \
    --profile minimal --default-toolchain "${RUST_VERSION}"
chmod -R a+w "${RUSTUP_HOME}" "${CARGO_HOME}"
