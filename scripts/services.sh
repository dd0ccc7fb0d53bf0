#!/usr/bin/env bash
# Start, stop or inspect the local services that the image builds need:
# a Docker engine (Debian's docker.io, with its embedded BuildKit) and a
# plain-HTTP image registry on loopback.
#
# Usage: scripts/services.sh start|stop|status
#
#   start   Install docker.io and docker-registry with apt when missing, then
#           start dockerd and the registry unless they already respond.
#           A second `start` with both running returns in about a second.
#   stop    Stop only the processes that `start` launched (found through the
#           pid files under .local/run/) and wait for them to exit.
#   status  Print what runs and who started it. Exits 0 when both services
#           respond, 1 otherwise.
#
# Environment:
#   REGISTRY_ADDR   host:port the registry listens on (default 127.0.0.1:5000).
#                   The host must be a loopback address.
#   DOCKERD_WAIT    seconds to wait for dockerd to respond (default 60).
#   REGISTRY_WAIT   seconds to wait for the registry to respond (default 20).
#   STOP_WAIT       seconds to wait for a process to exit on `stop` before it
#                   is killed (default 60).
#
# Files (all under the project's .local/, which git ignores):
#   run/dockerd.pid, run/dockerd.log      engine started by this script
#   run/registry.pid, run/registry.log    registry started by this script
#   registry/config.yml, registry/data/   registry configuration and storage
#
# The engine listens only on /var/run/docker.sock, the default socket of
# /usr/bin/docker, so no TCP port is opened. Its data stays in /var/lib/docker.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
RUN_DIR="$PROJECT_DIR/.local/run"
REGISTRY_DIR="$PROJECT_DIR/.local/registry"

REGISTRY_ADDR="${REGISTRY_ADDR:-127.0.0.1:5000}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
REGISTRY_WAIT="${REGISTRY_WAIT:-20}"
STOP_WAIT="${STOP_WAIT:-60}"

# Debian's client, because the docker CLI that may come first on PATH can
# lack the buildx plugin and then refuses BuildKit builds.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
REGISTRY_BIN=/usr/bin/docker-registry
DOCKER_SOCKET=/var/run/docker.sock

DOCKERD_PIDFILE="$RUN_DIR/dockerd.pid"
DOCKERD_LOG="$RUN_DIR/dockerd.log"
REGISTRY_PIDFILE="$RUN_DIR/registry.pid"
REGISTRY_LOG="$RUN_DIR/registry.log"
REGISTRY_CONFIG="$REGISTRY_DIR/config.yml"

log() { printf 'services: %s\n' "$*"; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Reject a REGISTRY_ADDR that would expose the registry beyond this machine.
check_registry_addr() {
    local host="${REGISTRY_ADDR%:*}" port="${REGISTRY_ADDR##*:}"
    [[ "$REGISTRY_ADDR" == *:* && "$port" =~ ^[0-9]+$ ]] ||
        die "invalid REGISTRY_ADDR '$REGISTRY_ADDR': expected host:port, for example 127.0.0.1:5000"
    case "$host" in
        127.*|localhost) ;;
        *) die "REGISTRY_ADDR '$REGISTRY_ADDR' is not a loopback address. Use 127.0.0.1:PORT" ;;
    esac
}

registry_url() { printf 'http://%s/v2/' "$REGISTRY_ADDR"; }

# The timeout covers an engine that accepts connections but hangs.
engine_responds() { timeout 5 "$DOCKER" info >/dev/null 2>&1; }

registry_responds() { curl -fsS -o /dev/null --max-time 2 "$(registry_url)" 2>/dev/null; }

# Print the pid stored in PIDFILE when that process is alive and its
# executable is EXPECTED_EXE, so a recycled pid is never mistaken for ours.
live_pid() {
    local pidfile="$1" expected_exe="$2" pid exe
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -cd '0-9' <"$pidfile")"
    [[ -n "$pid" ]] || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    [[ "$exe" == "$expected_exe" ]] || return 1
    printf '%s\n' "$pid"
}

# Install the Debian packages this script runs, calling `apt-get update` at
# most once and only when something is missing.
install_missing_packages() {
    local missing=() package
    for package in docker.io docker-registry; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    [[ ${#missing[@]} -eq 0 ]] && return 0

    log "installing missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

start_engine() {
    if engine_responds; then
        local pid
        if pid="$(live_pid "$DOCKERD_PIDFILE" "$DOCKERD")"; then
            log "docker engine already running (pid $pid, started by this script)"
        else
            log "docker engine already running (not started by this script, so 'stop' leaves it alone)"
        fi
        return 0
    fi

    # An engine of ours that does not respond yet may still be starting, as when
    # two `start` calls overlap, so it gets the same wait as a new one.
    local old_pid
    if old_pid="$(live_pid "$DOCKERD_PIDFILE" "$DOCKERD")"; then
        log "dockerd pid $old_pid, started by this script, does not respond yet, waiting"
        wait_for_engine "$old_pid"
        log "docker engine responds (pid $old_pid)"
        return 0
    fi

    # A socket left behind by a dead engine would make dockerd fail to bind.
    if [[ -S "$DOCKER_SOCKET" ]]; then
        log "removing stale socket $DOCKER_SOCKET (no engine responds on it)"
        rm -f "$DOCKER_SOCKET"
    fi
    rm -f "$DOCKERD_PIDFILE"

    log "starting dockerd (log: $DOCKERD_LOG)"
    printf '\n=== %s services.sh start ===\n' "$(date -u +%FT%TZ)" >>"$DOCKERD_LOG"
    # setsid puts the engine in its own session, so Ctrl-C in the calling
    # terminal or make does not reach it. dockerd writes its own pid file.
    setsid "$DOCKERD" --host "unix://$DOCKER_SOCKET" --pidfile "$DOCKERD_PIDFILE" \
        </dev/null >>"$DOCKERD_LOG" 2>&1 &
    local launched_pid=$!
    wait_for_engine "$launched_pid"
    log "started docker engine (pid $launched_pid, socket $DOCKER_SOCKET)"
}

# Wait up to DOCKERD_WAIT seconds for the engine with PID to respond. Fails
# with the tail of its log when it exits or the time runs out.
wait_for_engine() {
    local pid="$1" deadline=$((SECONDS + DOCKERD_WAIT))
    until engine_responds; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd (pid $pid) exited during startup. The last lines of $DOCKERD_LOG are above"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not respond within ${DOCKERD_WAIT}s (pid $pid still runs). The last lines of $DOCKERD_LOG are above"
        fi
        sleep 0.5
    done
}

write_registry_config() {
    mkdir -p "$REGISTRY_DIR/data"
    cat >"$REGISTRY_CONFIG" <<EOF
# Written by scripts/services.sh on each start, which overwrites any edits.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
}

start_registry() {
    if registry_responds; then
        local pid
        if pid="$(live_pid "$REGISTRY_PIDFILE" "$REGISTRY_BIN")"; then
            log "registry already running at $(registry_url) (pid $pid, started by this script)"
        else
            log "registry already responding at $(registry_url) (not started by this script, so 'stop' leaves it alone)"
        fi
        return 0
    fi

    # A registry of ours that does not respond here is either hung or listens on
    # another REGISTRY_ADDR. Starting a second one would lose track of it.
    local old_pid
    if old_pid="$(live_pid "$REGISTRY_PIDFILE" "$REGISTRY_BIN")"; then
        die "registry pid $old_pid, started by this script, runs but does not respond at $(registry_url). See $REGISTRY_LOG, or run 'scripts/services.sh stop' and start again"
    fi

    write_registry_config
    rm -f "$REGISTRY_PIDFILE"
    log "starting registry on $REGISTRY_ADDR (data: $REGISTRY_DIR/data, log: $REGISTRY_LOG)"
    printf '\n=== %s services.sh start ===\n' "$(date -u +%FT%TZ)" >>"$REGISTRY_LOG"
    # The registry reads REGISTRY_* variables as configuration overrides, so
    # this script's own settings are kept out of its environment.
    env -u REGISTRY_ADDR -u REGISTRY_WAIT setsid "$REGISTRY_BIN" serve "$REGISTRY_CONFIG" \
        </dev/null >>"$REGISTRY_LOG" 2>&1 &
    local pid=$!
    printf '%s\n' "$pid" >"$REGISTRY_PIDFILE"

    local deadline=$((SECONDS + REGISTRY_WAIT))
    until registry_responds; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$REGISTRY_PIDFILE"
            tail -n 30 "$REGISTRY_LOG" >&2 || true
            die "registry exited during startup. The last lines of $REGISTRY_LOG are above"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$REGISTRY_LOG" >&2 || true
            die "registry did not respond at $(registry_url) within ${REGISTRY_WAIT}s (pid $pid still runs). The last lines of $REGISTRY_LOG are above"
        fi
        sleep 0.2
    done
    log "started registry at $(registry_url) (pid $pid)"
}

cmd_start() {
    mkdir -p "$RUN_DIR" "$REGISTRY_DIR"
    install_missing_packages
    start_engine
    start_registry
    log "ready: engine at unix://$DOCKER_SOCKET, registry at $(registry_url)"
    log "'make down' (scripts/services.sh stop) stops what this script started"
}

# Send SIGTERM to the process named by PIDFILE and wait up to STOP_WAIT
# seconds, then SIGKILL it. Skips quietly when the pid file names no live
# process of the expected executable.
stop_process() {
    local name="$1" pidfile="$2" expected_exe="$3" pid
    if ! pid="$(live_pid "$pidfile" "$expected_exe")"; then
        log "$name: not started by this script (no live pid in $pidfile), nothing to stop"
        rm -f "$pidfile"
        return 0
    fi

    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_WAIT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "$name: pid $pid still running after ${STOP_WAIT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            break
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
    log "$name: stopped"
}

cmd_stop() {
    stop_process registry "$REGISTRY_PIDFILE" "$REGISTRY_BIN"
    stop_process "docker engine" "$DOCKERD_PIDFILE" "$DOCKERD"
}

cmd_status() {
    local pid all_up=0

    if engine_responds; then
        if pid="$(live_pid "$DOCKERD_PIDFILE" "$DOCKERD")"; then
            log "docker engine: running (pid $pid, started by this script)"
        else
            log "docker engine: running (not started by this script)"
        fi
    else
        all_up=1
        if pid="$(live_pid "$DOCKERD_PIDFILE" "$DOCKERD")"; then
            log "docker engine: not responding, but pid $pid from $DOCKERD_PIDFILE is alive (see $DOCKERD_LOG)"
        else
            log "docker engine: not running"
        fi
    fi

    if registry_responds; then
        if pid="$(live_pid "$REGISTRY_PIDFILE" "$REGISTRY_BIN")"; then
            log "registry: running at $(registry_url) (pid $pid, started by this script)"
        else
            log "registry: responding at $(registry_url) (not started by this script)"
        fi
    else
        all_up=1
        if pid="$(live_pid "$REGISTRY_PIDFILE" "$REGISTRY_BIN")"; then
            log "registry: not responding at $(registry_url), but pid $pid is alive (see $REGISTRY_LOG)"
        else
            log "registry: not running at $(registry_url)"
        fi
    fi
    return "$all_up"
}

main() {
    [[ $# -eq 1 ]] || usage
    check_registry_addr
    case "$1" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        -h|--help|help) usage ;;
        *) usage ;;
    esac
}

main "$@"
