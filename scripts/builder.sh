#!/usr/bin/env bash
# Start, stop or inspect the local BuildKit builder: a standalone buildkitd on
# a unix socket, registered as the buildx `remote` builder base-images-local.
#
# The docker-build provider supports only the docker-container, kubernetes
# and remote buildx drivers, not Docker Engine's built-in builder, and a
# docker-container builder needs a BuildKit image from Docker Hub. A
# standalone buildkitd needs neither, and it can export every cache type.
#
# Usage: scripts/builder.sh start|stop|status|prune
#   start   Build buildkitd and buildctl from the Go module proxy at
#           BUILDKIT_VERSION (cached per version) unless present, start
#           buildkitd unless it responds, and register the buildx builder.
#   stop    Stop the buildkitd that `start` launched.
#   status  Exit 0 when buildkitd responds, 1 otherwise.
#   prune   Delete every build cache record of the builder, as a cold
#           builder has none.
#
# Environment:
#   BUILDKIT_ROOT      buildkitd state folder (default /var/lib/base-images-buildkit)
#   BASE_IMAGES_CACHE  cache root for the binaries (default ~/.cache/base-images)
#   BUILDER_NAME       buildx builder name (default base-images-local)
#
# buildkitd listens only on .local/run/buildkitd.sock. RUN steps use the host
# network, and the builder allows the network.host entitlement. Registries on
# localhost and 127.0.0.1 are reached over plain HTTP.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"

RUN_DIR="$PROJECT_DIR/.local/run"
SOCKET="$RUN_DIR/buildkitd.sock"
PIDFILE="$RUN_DIR/buildkitd.pid"
LOGFILE="$RUN_DIR/buildkitd.log"
CONFIG="$RUN_DIR/buildkitd.toml"
BUILDKIT_ROOT="${BUILDKIT_ROOT:-/var/lib/base-images-buildkit}"
BUILDER_NAME="${BUILDER_NAME:-base-images-local}"
CACHE="${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}"
BIN_DIR="$CACHE/toolchain/buildkit-v$BUILDKIT_VERSION"
BUILDKITD="$BIN_DIR/buildkitd"
BUILDCTL="$BIN_DIR/buildctl"
BUILDX_STORE="${BUILDX_CONFIG:-${DOCKER_CONFIG:-$HOME/.docker}/buildx}"

log() { printf 'builder: %s\n' "$*" >&2; }
die() { printf 'builder: error: %s\n' "$*" >&2; exit 1; }

# True when a buildkitd responds on the unix socket $1 (default: this project's).
responds() {
    local socket="${1:-$SOCKET}"
    [[ -S "$socket" ]] && timeout 5 "$BUILDCTL" --addr "unix://$socket" debug workers > /dev/null 2>&1
}

# Print the socket of the builder already registered under $BUILDER_NAME, if any.
registered_socket() {
    local instance="$BUILDX_STORE/instances/$BUILDER_NAME"
    [[ -f "$instance" ]] || return 0
    grep -o '"Endpoint":"unix://[^"]*"' "$instance" | sed 's/^"Endpoint":"unix:\/\///; s/"$//' || true
}

binaries_current() {
    [[ -x "$BUILDKITD" && -x "$BUILDCTL" ]] &&
        "$BUILDKITD" --version 2>/dev/null | grep -q " v$BUILDKIT_VERSION "
}

# Build buildkitd and buildctl in a throwaway main module. `go install
# module@version` rejects BuildKit because its go.mod has exclude directives.
build_binaries() {
    command -v go > /dev/null || die "go not found; install Go to build buildkitd $BUILDKIT_VERSION"
    log "building buildkitd and buildctl v$BUILDKIT_VERSION from the Go module proxy"
    local work="$CACHE/toolchain/build/buildkit-v$BUILDKIT_VERSION"
    rm -rf "$work" "$BIN_DIR.tmp"
    mkdir -p "$work" "$BIN_DIR.tmp"
    (
        cd "$work"
        go mod init base-images/buildkit-build > /dev/null 2>&1
        go get "github.com/moby/buildkit/cmd/buildkitd@v$BUILDKIT_VERSION" \
            "github.com/moby/buildkit/cmd/buildctl@v$BUILDKIT_VERSION" 2> "$work/get.log" ||
            { tail -n 20 "$work/get.log" >&2; die "go get of BuildKit v$BUILDKIT_VERSION failed"; }
        local ldflags="-X github.com/moby/buildkit/version.Version=v$BUILDKIT_VERSION"
        CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$BIN_DIR.tmp/buildkitd" github.com/moby/buildkit/cmd/buildkitd
        CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$BIN_DIR.tmp/buildctl" github.com/moby/buildkit/cmd/buildctl
    )
    rm -rf "$BIN_DIR"
    mv "$BIN_DIR.tmp" "$BIN_DIR"
    binaries_current || die "built buildkitd does not report v$BUILDKIT_VERSION"
}

write_config() {
    mkdir -p "$RUN_DIR"
    cat > "$CONFIG" <<TOML
# Written by scripts/builder.sh; changes are overwritten on the next start.
root = "$BUILDKIT_ROOT"
insecure-entitlements = ["network.host"]

[grpc]
  address = ["unix://$SOCKET"]

[worker.oci]
  enabled = true
  # No CNI configuration is installed, so RUN steps share the host network.
  gc = true

[worker.containerd]
  enabled = false

[registry."localhost:5000"]
  http = true

[registry."127.0.0.1:5000"]
  http = true
TOML
}

# Record the builder where buildx, and the docker-build provider's embedded
# buildx, look for named builders.
register_builder() {
    mkdir -p "$BUILDX_STORE/instances"
    cat > "$BUILDX_STORE/instances/$BUILDER_NAME" <<JSON
{"Name":"$BUILDER_NAME","Driver":"remote","Nodes":[{"Name":"${BUILDER_NAME}0","Endpoint":"unix://$SOCKET","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}
JSON
}

cmd_start() {
    binaries_current || build_binaries
    command -v runc > /dev/null || die "runc not found; install Debian's runc package (make setup does)"

    # Another checkout's buildkitd may already serve the builder; it shares
    # the state folder, so a second daemon could not start anyway.
    local existing
    existing="$(registered_socket)"
    if [[ -n "$existing" && "$existing" != "$SOCKET" ]] && responds "$existing"; then
        log "builder $BUILDER_NAME already served by buildkitd on unix://$existing (not started here, so 'stop' leaves it alone)"
        return
    fi

    write_config
    if responds; then
        register_builder
        log "buildkitd already running on unix://$SOCKET"
        return
    fi

    rm -f "$SOCKET"
    nohup "$BUILDKITD" --config "$CONFIG" >> "$LOGFILE" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 60); do
        if responds; then
            register_builder
            log "started buildkitd v$BUILDKIT_VERSION (pid $(cat "$PIDFILE")) on unix://$SOCKET as buildx builder $BUILDER_NAME"
            log "'make down' stops it"
            return
        fi
        if ! kill -0 "$(cat "$PIDFILE")" 2> /dev/null; then
            tail -n 30 "$LOGFILE" >&2
            die "buildkitd exited during startup; the log is $LOGFILE"
        fi
        sleep 0.5
    done
    tail -n 30 "$LOGFILE" >&2
    die "buildkitd did not respond within 30 s; the log is $LOGFILE"
}

cmd_stop() {
    [[ -f "$PIDFILE" ]] || { log "no buildkitd started by this script"; return; }
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2> /dev/null && [[ "$(readlink "/proc/$pid/exe")" == "$BUILDKITD" ]]; then
        kill "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.5
        done
        kill -0 "$pid" 2> /dev/null && kill -9 "$pid"
        log "stopped buildkitd (pid $pid)"
    fi
    rm -f "$PIDFILE" "$SOCKET"
}

cmd_status() {
    if responds; then
        log "buildkitd responds on unix://$SOCKET (builder $BUILDER_NAME)"
    else
        log "buildkitd is not running"
        return 1
    fi
}

cmd_prune() {
    responds || die "buildkitd is not running; run scripts/builder.sh start"
    "$BUILDCTL" --addr "unix://$SOCKET" prune --all > /dev/null
    log "pruned every build cache record of $BUILDER_NAME"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    prune) cmd_prune ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
