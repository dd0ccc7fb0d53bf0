#!/usr/bin/env bash
# Install the docker buildx CLI plugin that the docker-build provider runs
# when a stack sets base-images:builder.exec to true.
#
# Exec mode is the provider's only way to build on Docker Engine's built-in
# builder (driver docker). The provider looks for the plugin where the Docker
# CLI does: $DOCKER_CONFIG/cli-plugins (default ~/.docker/cli-plugins), the
# config file's cliPluginsExtraDirs, then /usr/local/lib, /usr/local/libexec,
# /usr/lib and /usr/libexec under docker/cli-plugins. Debian's docker.io
# package ships no buildx plugin.
#
# Usage: scripts/buildx-plugin.sh install|check
#   install  Build github.com/docker/buildx/cmd/buildx at BUILDX_VERSION from
#            the Go module proxy into the toolchain cache (once per version),
#            then link it as docker-buildx into the user's cli-plugins folder.
#            A docker-buildx there that this script did not link is left as it
#            is, and exec mode uses that one.
#   check    Exit 0 when the linked plugin reports BUILDX_VERSION, 1 otherwise.
#
# Environment:
#   BASE_IMAGES_CACHE  cache root for the binary (default ~/.cache/base-images)
#   DOCKER_CONFIG      Docker's config folder (default ~/.docker)
#
# With a warm Go module cache (the provider build fills it) the build took
# about a minute on a 2-core Linux machine.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"

CACHE="${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}"
BIN_DIR="$CACHE/toolchain/buildx-v$BUILDX_VERSION"
PLUGIN="$BIN_DIR/docker-buildx"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
LINK="$PLUGIN_DIR/docker-buildx"

log() { printf 'buildx-plugin: %s\n' "$*" >&2; }
die() { printf 'buildx-plugin: error: %s\n' "$*" >&2; exit 1; }

binary_current() {
    [[ -x "$PLUGIN" ]] && "$PLUGIN" version 2>/dev/null | grep -q " v$BUILDX_VERSION\b"
}

# Build in a throwaway main module, as scripts/builder.sh does for BuildKit.
build_binary() {
    command -v go > /dev/null || die "go not found; install Go to build buildx v$BUILDX_VERSION"
    log "building docker-buildx v$BUILDX_VERSION from the Go module proxy"
    local work="$CACHE/toolchain/build/buildx-v$BUILDX_VERSION"
    rm -rf "$work" "$BIN_DIR.tmp"
    mkdir -p "$work" "$BIN_DIR.tmp"
    (
        cd "$work"
        go mod init base-images/buildx-build > /dev/null 2>&1
        go get "github.com/docker/buildx/cmd/buildx@v$BUILDX_VERSION" 2> "$work/get.log" ||
            { tail -n 20 "$work/get.log" >&2; die "go get of buildx v$BUILDX_VERSION failed"; }
        CGO_ENABLED=0 go build -ldflags "-X github.com/docker/buildx/version.Version=v$BUILDX_VERSION" \
            -o "$BIN_DIR.tmp/docker-buildx" github.com/docker/buildx/cmd/buildx
    )
    rm -rf "$BIN_DIR"
    mv "$BIN_DIR.tmp" "$BIN_DIR"
    binary_current || die "built docker-buildx does not report v$BUILDX_VERSION"
}

cmd_install() {
    binary_current || build_binary
    mkdir -p "$PLUGIN_DIR"
    if [[ -e "$LINK" && ! -L "$LINK" ]]; then
        log "leaving $LINK, which this script did not link; exec mode runs it. Remove it to use buildx v$BUILDX_VERSION"
        return
    fi
    ln -sfn "$PLUGIN" "$LINK"
    log "linked $LINK to docker-buildx v$BUILDX_VERSION"
}

cmd_check() {
    [[ -x "$LINK" ]] && "$LINK" version 2>/dev/null | grep -q " v$BUILDX_VERSION\b"
}

case "${1:-}" in
    install) cmd_install ;;
    check) cmd_check ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
