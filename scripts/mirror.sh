#!/usr/bin/env bash
# Put an upstream base image into the local registry, or build a stand-in for
# it from Debian packages when the upstream registry cannot be reached.
#
# Usage: scripts/mirror.sh <upstream-ref> <local-ref>
#   e.g. scripts/mirror.sh docker.io/library/python:3.11-slim \
#            localhost:5000/mirror/python:3.11-slim
#
# Steps, stopping at the first that succeeds:
#   1. <local-ref> already exists in the local registry: report it, exit 0.
#   2. The engine already has <upstream-ref>, or `docker pull` fetches it within
#      MIRROR_PULL_TIMEOUT seconds: tag it as <local-ref> and push.
#   3. Build a stand-in with `debootstrap --variant=minbase bookworm` and the
#      Debian python3 packages, import it with `docker import`, and push it.
#      The image carries the label io.base-images.stand-in=true and a
#      description naming <upstream-ref>.
#
# The stand-in is built to satisfy Dockerfiles written for python:3.11-slim
# that run `pip install`, `python -c` and `apt-get install`. It is not
# byte-compatible: Python is Debian's python3 (3.11.2 in bookworm) in /usr/bin,
# not a source build in /usr/local/bin.
#
# Environment:
#   MIRROR_PULL_TIMEOUT     seconds allowed for `docker pull` (default 20)
#   BASE_IMAGES_CACHE       cache root, by default
#                           ${XDG_CACHE_HOME:-~/.cache}/base-images. Its mirror/
#                           folder keeps the stand-in rootfs tarball, so a
#                           rebuild after the registry data is wiped only
#                           imports and pushes.
#   DEBIAN_MIRROR           Debian archive URL. The default is the bookworm
#                           entry of this machine's apt sources, else
#                           http://deb.debian.org/debian.
#   DEBIAN_SECURITY_MIRROR  security archive URL. The default is the
#                           bookworm-security entry of the apt sources. Set it
#                           empty to leave security updates out.
#
# Needs the engine and registry from scripts/services.sh, and root for
# debootstrap.
set -euo pipefail

# Debian's client, because the docker CLI that may come first on PATH can
# lack the buildx plugin.
DOCKER=/usr/bin/docker

MIRROR_PULL_TIMEOUT="${MIRROR_PULL_TIMEOUT:-20}"
CACHE_ROOT="${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}"
CACHE_DIR="$CACHE_ROOT/mirror"

SUITE=bookworm
STANDIN_PACKAGES=(python3 python3-pip python3-venv python-is-python3 ca-certificates netbase tzdata)
# Bump when the rootfs recipe below changes, so cached tarballs are rebuilt.
STANDIN_RECIPE_VERSION=4

# Media types a tag may point to, sent as Accept when reading a manifest.
MANIFEST_ACCEPT='application/vnd.docker.distribution.manifest.v2+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json'

log() { printf 'mirror: %s\n' "$*"; }
die() { printf 'mirror: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# Split a registry reference HOST[:PORT]/REPO[:TAG] into the globals
# REF_HOST, REF_REPO, REF_TAG and REF_API (the base URL of its HTTP API).
# Digest references are rejected because a tag is pushed.
parse_local_ref() {
    local ref="$1" rest
    [[ "$ref" == */* ]] || die "invalid local ref '$ref': expected HOST:PORT/REPO:TAG, for example localhost:5000/mirror/python:3.11-slim"
    [[ "$ref" != *@* ]] || die "invalid local ref '$ref': a digest reference cannot be pushed, use a tag"
    REF_HOST="${ref%%/*}"
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
    # The registry from services.sh listens on 127.0.0.1 only, and "localhost"
    # may resolve to ::1 first, so the API is reached through 127.0.0.1.
    REF_API="http://${REF_HOST/#localhost/127.0.0.1}/v2"
}

# Print the HTTP status of a HEAD request for the manifest of REF_REPO:REF_TAG
# (000 when the registry does not respond).
manifest_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 -I \
        -H "Accept: $MANIFEST_ACCEPT" "$REF_API/$REF_REPO/manifests/$REF_TAG" || true
}

# Print the media type and platform of the pushed manifest, and fail unless it
# is a single-platform image manifest, which BuildKit accepts as a FROM base.
check_pushed_manifest() {
    local manifest_file content_type config_digest platform
    manifest_file="$(mktemp)"
    content_type="$(curl -fsS --max-time 10 -H "Accept: $MANIFEST_ACCEPT" \
        -o "$manifest_file" -w '%{content_type}' "$REF_API/$REF_REPO/manifests/$REF_TAG")"
    case "$content_type" in
        application/vnd.docker.distribution.manifest.v2+json|application/vnd.oci.image.manifest.v1+json) ;;
        *) rm -f "$manifest_file"; die "registry returned media type '$content_type' for $LOCAL_REF, expected a single-platform image manifest" ;;
    esac
    config_digest="$(jq -r '.config.digest' "$manifest_file")"
    rm -f "$manifest_file"
    platform="$(curl -fsS --max-time 10 "$REF_API/$REF_REPO/blobs/$config_digest" | jq -r '"\(.os)/\(.architecture)"')"
    [[ "$platform" == "linux/$(dpkg --print-architecture)" ]] ||
        die "$LOCAL_REF was pushed for platform $platform, not linux/$(dpkg --print-architecture) of this machine"
    log "registry stores $LOCAL_REF as $content_type, platform $platform"
}

install_missing_packages() {
    local missing=() package
    local -A command_package=([debootstrap]=debootstrap [curl]=curl [jq]=jq [flock]=util-linux)
    for package in "${!command_package[@]}"; do
        command -v "$package" >/dev/null 2>&1 || missing+=("${command_package[$package]}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

# Print the first http(s) URI that this machine's apt sources use for SUITE,
# reading both one-line (.list) and deb822 (.sources) files.
apt_source_uri() {
    local suite="$1" file uri
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        # One-line form: deb [options] URI SUITE COMPONENT...
        uri="$(awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite && $i ~ /^https?:\/\//) { print $i; exit }
            }' "$file")"
        [[ -n "$uri" ]] && { printf '%s\n' "${uri%/}"; return 0; }
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        # deb822 form: blank-line separated stanzas of "Field: value" lines.
        uri="$(awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (n = 1; n <= NF; n++) {
                    if ($n ~ /^#/) continue
                    split($n, kv, ":[ \t]*")
                    key = tolower(kv[1]); value = substr($n, index($n, ":") + 1)
                    if (key == "types") types = value
                    else if (key == "uris") uris = value
                    else if (key == "suites") suites = value
                    else if (key == "enabled") enabled = value
                }
                if (enabled ~ /no/ || (" " types " ") !~ /[ \t]deb[ \t]/) next
                if ((" " suites " ") !~ ("[ \t]" suite "[ \t]")) next
                split(uris, list, /[ \t]+/)
                for (m in list) if (list[m] ~ /^https?:\/\//) { print list[m]; exit }
            }' "$file")"
        [[ -n "$uri" ]] && { printf '%s\n' "${uri%/}"; return 0; }
    done
    return 1
}

try_pull() {
    if "$DOCKER" image inspect "$UPSTREAM_REF" >/dev/null 2>&1; then
        log "engine already has $UPSTREAM_REF, using it"
        return 0
    fi
    log "trying 'docker pull $UPSTREAM_REF' (timeout ${MIRROR_PULL_TIMEOUT}s)"
    local status=0
    timeout "$MIRROR_PULL_TIMEOUT" "$DOCKER" pull "$UPSTREAM_REF" || status=$?
    if ((status == 0)); then
        return 0
    elif ((status == 124)); then
        log "pull of $UPSTREAM_REF timed out after ${MIRROR_PULL_TIMEOUT}s"
    else
        log "pull of $UPSTREAM_REF failed (exit $status)"
    fi
    return 1
}

# Unmount anything debootstrap left mounted under DIR, then delete DIR without
# crossing into other filesystems, so a failed build never deletes /proc or
# /dev contents of the host.
remove_build_dir() {
    local dir="$1" mount_point
    [[ -d "$dir" ]] || return 0
    while read -r mount_point; do
        umount -l "$mount_point" 2>/dev/null || true
    done < <(awk -v prefix="$dir/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$dir"
}

# Write the apt, dpkg and Python settings that make the debootstrap rootfs
# behave like python:3.11-slim for Dockerfile RUN steps.
configure_rootfs() {
    local root="$1"

    # apt sources: the same archives this machine uses, in deb822 form.
    rm -f "$root/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' \
            "$DEBIAN_MIRROR" "$SUITE" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [[ -n "$DEBIAN_SECURITY_MIRROR" ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' \
                "$DEBIAN_SECURITY_MIRROR" "$SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$root/etc/apt/sources.list.d/debian.sources"

    # Keep image layers small the way Debian's slim images do: no downloaded
    # .deb files, translations or binary caches after apt runs, and no docs,
    # man pages or locales from packages installed later.
    cat >"$root/etc/apt/apt.conf.d/90base-images-slim" <<'EOF'
// Written by base-images scripts/mirror.sh for the python stand-in image.
// Delete downloaded .deb files once they are installed.
APT::Keep-Downloaded-Packages "false";
// Skip translated package descriptions.
Acquire::Languages "none";
// Do not write the binary package caches (about 70 MB together), which a
// Dockerfile that only deletes /var/lib/apt/lists would leave in its layer.
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/90base-images-slim" <<'EOF'
# Written by base-images scripts/mirror.sh: leave documentation and locale
# files out of the image, but keep licence files.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
# Debian marks its Python as externally managed (PEP 668), which makes
# `pip install` fail outside a venv. python:3.11-slim lets pip install
# system-wide, so dpkg must not restore the marker when python3.11 is upgraded.
path-exclude /usr/lib/python3*/EXTERNALLY-MANAGED
EOF

    # Containers have no init system, so package scripts must not try to start
    # services. invoke-rc.d treats exit code 101 as "action forbidden".
    printf '#!/bin/sh\n# Containers run no init system, so no service is started.\nexit 101\n' \
        >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
}

# Apply the bookworm-updates and security updates inside the rootfs, because
# debootstrap installs from the bookworm release only and the official image
# ships with those updates applied.
upgrade_rootfs() {
    local root="$1" status=0
    log "applying Debian updates inside the rootfs"
    mount -t proc proc "$root/proc"
    DEBIAN_FRONTEND=noninteractive chroot "$root" /bin/sh -c \
        'apt-get update -qq && apt-get upgrade -y -qq' >>"$BUILD_DIR/upgrade.log" 2>&1 || status=$?
    umount "$root/proc"
    if ((status != 0)); then
        tail -n 30 "$BUILD_DIR/upgrade.log" >&2
        die "apt-get upgrade inside the stand-in rootfs failed (exit $status). The last lines of its log are above"
    fi
}

# Delete caches, host-specific files and documentation from the rootfs, and
# check that the commands the stand-in promises exist.
prune_rootfs() {
    local root="$1"
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{man,info,groff,lintian,locale}/*
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED

    # Remove host-specific and cache files. Docker provides /dev,
    # /etc/resolv.conf and /etc/hostname when a container starts.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/archives/partial/* \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old \
        "$root"/var/log/bootstrap.log "$root"/dev/* "$root"/etc/resolv.conf
    : >"$root/etc/hostname"
    [[ -e "$root/etc/machine-id" ]] && : >"$root/etc/machine-id"
    chmod 1777 "$root/tmp"

    local required
    for required in usr/bin/python usr/bin/python3 usr/bin/pip usr/bin/pip3; do
        [[ -e "$root/$required" ]] || die "stand-in rootfs is missing /$required. Check STANDIN_PACKAGES"
    done
}

# Build the stand-in rootfs tarball at TARBALL, with Python's version in
# TARBALL.python-version, timing the debootstrap run.
build_standin_tarball() {
    local tarball="$1" work root started elapsed
    work="$(mktemp -d "${TMPDIR:-/var/tmp}/base-images-standin.XXXXXX")"
    BUILD_DIR="$work"
    root="$work/rootfs"
    started=$SECONDS

    log "running debootstrap --variant=minbase $SUITE from $DEBIAN_MIRROR (log: $work/debootstrap.log)"
    local include
    include="$(IFS=,; printf '%s' "${STANDIN_PACKAGES[*]}")"
    mkdir -p "$CACHE_DIR/debs"
    if ! debootstrap --variant=minbase --arch="$ARCH" --components=main \
        --include="$include" --cache-dir="$CACHE_DIR/debs" \
        "$SUITE" "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
        die "debootstrap failed. The last lines of its logs are above"
    fi
    log "debootstrap finished in $((SECONDS - started))s"

    configure_rootfs "$root"
    upgrade_rootfs "$root"
    prune_rootfs "$root"
    dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' python3.11 |
        sed 's/-.*//' >"$work/python-version"

    # --numeric-owner keeps the rootfs uids instead of mapping by host names.
    TARBALL_TMP="$tarball.tmp"
    tar --numeric-owner --xattrs -C "$root" -c . | gzip -1 >"$TARBALL_TMP"
    mv "$work/python-version" "$tarball.python-version"
    mv "$TARBALL_TMP" "$tarball"
    TARBALL_TMP=""

    # Tarballs from an older recipe or another mirror are never read again.
    local stale
    for stale in "$CACHE_DIR"/python-standin-"$SUITE"-"$ARCH"-*.tar.gz; do
        [[ "$stale" == "$tarball" || ! -e "$stale" ]] && continue
        log "removing outdated cached rootfs $stale"
        rm -f "$stale" "$stale.python-version"
    done
    remove_build_dir "$work"
    BUILD_DIR=""
    elapsed=$((SECONDS - started))
    log "stand-in rootfs built in ${elapsed}s: $tarball ($(du -h "$tarball" | cut -f1))"
}

# Print the cache file name for the stand-in rootfs. The name carries a hash
# of everything that shapes the rootfs, so a changed recipe or mirror gets a
# new tarball instead of a stale one.
standin_tarball_path() {
    local key
    key="$(printf '%s\n' "$STANDIN_RECIPE_VERSION" "$SUITE" "$ARCH" "$DEBIAN_MIRROR" \
        "$DEBIAN_SECURITY_MIRROR" "${STANDIN_PACKAGES[@]}" | sha256sum | cut -c1-12)"
    printf '%s/python-standin-%s-%s-%s.tar.gz\n' "$CACHE_DIR" "$SUITE" "$ARCH" "$key"
}

import_standin() {
    local tarball="$1" python_version description
    python_version="$(cat "$tarball.python-version")"
    description="Stand-in for $UPSTREAM_REF built from Debian $SUITE packages (Debian python3 $python_version) by base-images scripts/mirror.sh, because the upstream image could not be pulled"
    log "importing $tarball as $LOCAL_REF"
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "ENV PYTHON_VERSION=$python_version" \
        --change "LABEL org.opencontainers.image.description=\"$description\"" \
        --change 'LABEL io.base-images.stand-in=true' \
        --change "LABEL io.base-images.stand-in.upstream=\"$UPSTREAM_REF\"" \
        --change 'CMD ["python3"]' \
        --message "base-images stand-in for $UPSTREAM_REF" \
        "$tarball" "$LOCAL_REF" >/dev/null

    # A quick run catches a broken rootfs before it is pushed.
    "$DOCKER" run --rm --network none "$LOCAL_REF" \
        python -c 'import os, sqlite3, ssl, sysconfig, venv
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
assert not os.path.exists(marker), marker + " would make pip install fail"
import pip' ||
        die "smoke test of $LOCAL_REF failed: python or pip is broken in the stand-in (see the output above)"
}

# Fail unless UPSTREAM is a Python 3.11 image, the only upstream the Debian
# bookworm recipe can stand in for (bookworm ships Python 3.11 only).
check_standin_fits() {
    local upstream="$1" name tag
    name="${upstream##*/}"
    tag="${name#*:}"
    name="${name%%:*}"
    [[ "$name" == python && "$upstream" == *:* && "$tag" == 3.11* ]] ||
        die "cannot pull $upstream, and the Debian $SUITE stand-in only replaces python:3.11* images"
}

build_standin() {
    local tarball
    ARCH="$(dpkg --print-architecture)"
    [[ "$ARCH" == amd64 ]] || log "NOTE: building the stand-in for $ARCH, the architecture of this machine"
    DEBIAN_MIRROR="${DEBIAN_MIRROR:-$(apt_source_uri "$SUITE" || echo http://deb.debian.org/debian)}"
    DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR-$(apt_source_uri "$SUITE-security" || true)}"
    tarball="$(standin_tarball_path)"

    mkdir -p "$CACHE_DIR"
    # Concurrent runs would build the same tarball twice, so they take turns.
    exec 9>"$CACHE_DIR/.lock"
    if ! flock -n 9; then
        log "waiting for another mirror.sh run to release $CACHE_DIR/.lock"
        flock 9
    fi

    if [[ -s "$tarball" && -s "$tarball.python-version" ]]; then
        log "using cached stand-in rootfs $tarball"
    else
        build_standin_tarball "$tarball"
    fi
    import_standin "$tarball"
}

cleanup() {
    if [[ -n "${BUILD_DIR:-}" ]]; then
        remove_build_dir "$BUILD_DIR"
    fi
    rm -f "${TARBALL_TMP:-}"
}

main() {
    [[ $# -eq 2 ]] || usage
    UPSTREAM_REF="$1"
    LOCAL_REF="$2"
    [[ "$UPSTREAM_REF" =~ ^[A-Za-z0-9._:/@-]+$ ]] || die "invalid upstream ref '$UPSTREAM_REF'"
    parse_local_ref "$LOCAL_REF"
    local started=$SECONDS

    install_missing_packages

    local status
    status="$(manifest_status)"
    case "$status" in
        200)
            log "$LOCAL_REF already exists in the registry, nothing to do"
            exit 0 ;;
        404) ;;
        000) die "no registry responds at $REF_API/. Start it with scripts/services.sh start" ;;
        *) die "registry at $REF_API/ returned HTTP $status for $REF_REPO:$REF_TAG" ;;
    esac
    "$DOCKER" info >/dev/null 2>&1 || die "no docker engine responds. Start it with scripts/services.sh start"

    BUILD_DIR=""
    trap cleanup EXIT
    if try_pull; then
        "$DOCKER" tag "$UPSTREAM_REF" "$LOCAL_REF"
    else
        check_standin_fits "$UPSTREAM_REF"
        log "building a stand-in for $UPSTREAM_REF from Debian $SUITE"
        build_standin
    fi

    log "pushing $LOCAL_REF"
    "$DOCKER" push "$LOCAL_REF"
    check_pushed_manifest
    log "done in $((SECONDS - started))s"
}

main "$@"
