#!/usr/bin/env bash
# Push a tiny busybox image to the local registry as a base for integration
# tests, so tests can build and push images in seconds without Python.
#
# Usage: scripts/fixture-base.sh [<local-ref>]
#   <local-ref> defaults to localhost:5000/fixtures/busybox:1
#
# The image is a rootfs with Debian's statically linked /bin/busybox (package
# busybox-static), a symlink for each applet (/bin/sh among them), /tmp, /root
# and a minimal /etc/passwd and /etc/group. It has no package manager. If the
# registry already has <local-ref>, the script reports it and exits 0.
#
# Needs the engine and registry from scripts/services.sh.
set -euo pipefail

DOCKER=/usr/bin/docker
BUSYBOX=/bin/busybox
DEFAULT_REF=localhost:5000/fixtures/busybox:1

MANIFEST_ACCEPT='application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json'

log() { printf 'fixture-base: %s\n' "$*"; }
die() { printf 'fixture-base: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Split HOST[:PORT]/REPO[:TAG] into REF_REPO, REF_TAG and REF_API (the base
# URL of the registry's HTTP API). scripts/mirror.sh parses refs the same way.
parse_local_ref() {
    local ref="$1" host rest
    [[ "$ref" == */* && "$ref" != *@* ]] || die "invalid local ref '$ref': expected HOST:PORT/REPO:TAG, for example $DEFAULT_REF"
    host="${ref%%/*}"
    rest="${ref#*/}"
    if [[ "${rest##*/}" == *:* ]]; then
        REF_TAG="${rest##*:}"
        REF_REPO="${rest%:*}"
    else
        REF_TAG=latest
        REF_REPO="$rest"
    fi
    [[ "$REF_REPO" =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "invalid repository name '$REF_REPO' in '$ref'"
    [[ "$REF_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "invalid tag '$REF_TAG' in '$ref'"
    # The registry listens on 127.0.0.1 only, and "localhost" may resolve to
    # ::1 first.
    REF_API="http://${host/#localhost/127.0.0.1}/v2"
}

install_busybox() {
    [[ -x "$BUSYBOX" ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' && return 0
    log "installing Debian package busybox-static"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends busybox-static
}

# Lay out the busybox rootfs in ROOT.
build_rootfs() {
    local root="$1" applet
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/tmp,dev,proc,sys}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    cp "$BUSYBOX" "$root/bin/busybox"

    # --list-full prints each applet with its install path, such as bin/sh.
    while read -r applet; do
        [[ "$applet" == */* ]] || continue  # skips linuxrc, which belongs at /
        [[ -e "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
    done < <("$BUSYBOX" --list-full)
    [[ -L "$root/bin/sh" ]] || die "busybox at $BUSYBOX provides no sh applet"

    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

main() {
    [[ $# -le 1 ]] || usage
    case "${1:-}" in -h|--help) usage ;; esac
    local local_ref="${1:-$DEFAULT_REF}" status
    parse_local_ref "$local_ref"

    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -I \
        -H "Accept: $MANIFEST_ACCEPT" "$REF_API/$REF_REPO/manifests/$REF_TAG" || true)"
    case "$status" in
        200) log "$local_ref already exists in the registry, nothing to do"; exit 0 ;;
        404) ;;
        000) die "no registry responds at $REF_API/. Start it with scripts/services.sh start" ;;
        *) die "registry at $REF_API/ returned HTTP $status for $REF_REPO:$REF_TAG" ;;
    esac
    "$DOCKER" info >/dev/null 2>&1 || die "no docker engine responds. Start it with scripts/services.sh start"

    install_busybox
    local version
    version="$(dpkg-query -W -f='${Version}' busybox-static)"
    # Global, because the EXIT trap runs after main's locals are gone.
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/base-images-fixture.XXXXXX")"
    trap 'rm -rf "$WORK_DIR"' EXIT

    build_rootfs "$WORK_DIR/rootfs"
    # Fixed owner, order and mtime keep the layer digest the same across runs
    # with the same busybox package.
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -C "$WORK_DIR/rootfs" -cf "$WORK_DIR/rootfs.tar" .

    log "importing busybox $version rootfs as $local_ref"
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL org.opencontainers.image.description=\"Test fixture for base-images: Debian busybox-static $version with applet symlinks, made by scripts/fixture-base.sh\"" \
        --change 'LABEL io.base-images.fixture=true' \
        --change 'CMD ["sh"]' \
        --message "base-images test fixture (busybox-static $version)" \
        "$WORK_DIR/rootfs.tar" "$local_ref" >/dev/null

    "$DOCKER" run --rm --network none "$local_ref" sh -c 'echo ok >/tmp/check && test "$(cat /tmp/check)" = ok' ||
        die "smoke test of $local_ref failed: /bin/sh does not run in the fixture image"

    log "pushing $local_ref"
    "$DOCKER" push "$local_ref"
    log "pushed $local_ref"
}

main "$@"
