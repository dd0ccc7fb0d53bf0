#!/bin/sh
# Install Rust from $RUST_SOURCE:
#   rustup  rustup-init and Rust $RUST_VERSION with the minimal profile (rustc,
#           cargo and the standard library only) from $RUSTUP_DIST_SERVER;
#   debian  Debian's rustc and cargo packages, for sites without a rustup
#           mirror. Their version is Debian's, not $RUST_VERSION.
set -eu

case "${RUST_SOURCE}" in
    rustup)
        triple="$(uname -m)-unknown-linux-gnu"
        cache=/root/.cache/mcp-toolchain
        mkdir -p "${cache}"
        curl -fsSL --retry 3 -o "${cache}/rustup-init" \
            "${RUSTUP_DIST_SERVER}/rustup/dist/${triple}/rustup-init"
        chmod +x "${cache}/rustup-init"
        RUSTUP_DIST_SERVER="${RUSTUP_DIST_SERVER}" "${cache}/rustup-init" -y --no-modify-path \
            --profile minimal --default-toolchain "${RUST_VERSION}"
        chmod -R a+w "${RUSTUP_HOME}" "${CARGO_HOME}"
        ;;
    debian)
        apt-get update
        apt-get install -y --no-install-recommends rustc cargo
        ;;
    *)
        echo "install-rust.sh: RUST_SOURCE must be rustup or debian, not ${RUST_SOURCE}" >&2
        exit 1
        ;;
esac
