#!/usr/bin/env bash
# Register QEMU user emulation with the kernel, so BuildKit can run the RUN
# steps of linux/arm64 (and other foreign) images on this machine.
#
# Usage: scripts/emulation.sh start|status
#   start   Install Debian's qemu-user-static and binfmt-support when
#           missing, mount binfmt_misc when it is not mounted, and enable the
#           qemu-aarch64 handler. A second run returns in about a second.
#   status  Exit 0 when the kernel runs linux/arm64 binaries through QEMU,
#           1 otherwise.
#
# The handlers are registered with the F (fix binary) flag by Debian's
# package, so the kernel opens the interpreter once and build containers need
# no copy of it. Registration is kernel-wide: every process on the machine,
# and every container, then runs foreign binaries through QEMU. A container
# or VM that may not mount binfmt_misc cannot use emulation; `start` then
# fails with the kernel's error.
#
# BuildKit checks the registered handlers when it lists its platforms, so a
# running buildkitd picks up the new platforms without a restart.
set -euo pipefail

BINFMT_DIR=/proc/sys/fs/binfmt_misc
HANDLER="$BINFMT_DIR/qemu-aarch64"

log() { printf 'emulation: %s\n' "$*" >&2; }
die() { printf 'emulation: error: %s\n' "$*" >&2; exit 1; }

handler_enabled() { [[ -f "$HANDLER" ]] && head -n 1 "$HANDLER" | grep -qx enabled; }

install_packages() {
    local missing=() package
    for package in qemu-user-static binfmt-support; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$package")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

cmd_start() {
    if handler_enabled; then
        log "linux/arm64 emulation already registered ($(sed -n 's/^interpreter //p' "$HANDLER"))"
        return
    fi
    command -v dpkg-query > /dev/null || die "dpkg-query not found; on a non-Debian system install qemu-user-static and register its binfmt handlers by hand"
    grep -qw binfmt_misc /proc/filesystems || die "the kernel has no binfmt_misc support (CONFIG_BINFMT_MISC), so it cannot run foreign binaries through QEMU"
    if [[ ! -f "$BINFMT_DIR/status" ]]; then
        log "mounting binfmt_misc on $BINFMT_DIR"
        mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" ||
            die "mounting binfmt_misc failed; a container needs the host to register QEMU (or --privileged)"
    fi
    install_packages
    update-binfmts --enable qemu-aarch64 2> /dev/null || true
    handler_enabled || die "qemu-aarch64 is not registered in $BINFMT_DIR after installing qemu-user-static; run 'update-binfmts --display qemu-aarch64' for the reason"
    log "registered linux/arm64 emulation ($(sed -n 's/^interpreter //p' "$HANDLER"))"
}

cmd_status() {
    if handler_enabled; then
        log "linux/arm64 emulation registered"
    else
        log "linux/arm64 emulation not registered; run scripts/emulation.sh start"
        return 1
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    status) cmd_status ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
