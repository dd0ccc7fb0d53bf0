#!/usr/bin/env bash
# Push a two-platform (linux/amd64 and linux/arm64) busybox image to the local
# registry, the base of the multi-platform integration test.
#
# Usage: scripts/fixture-multiarch.sh [<local-ref>]
#   <local-ref> defaults to localhost:5000/fixtures/busybox-multiarch:1
#
# Each platform's image contains Debian's statically linked busybox for that
# architecture, its applet links, /tmp and /root. The amd64 binary comes from
# the installed busybox-static package; the arm64 one from `apt-get download`
# with a private apt state folder for the arm64 package lists, so the
# machine's own apt configuration and architectures stay as they are. The
# applet links are made by a RUN step, which for arm64 runs under QEMU, so
# the push fails early where emulation does not work.
#
# Needs the registry and the builder (make services) and emulation
# (scripts/emulation.sh start). If the registry already has <local-ref> with
# both platforms, the script reports it and exits 0.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"

DEFAULT_REF=localhost:5000/fixtures/busybox-multiarch:1
CACHE="${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}"
APT_DIR="$CACHE/fixtures/apt-arm64"
BUILDCTL="$CACHE/toolchain/buildkit-v$BUILDKIT_VERSION/buildctl"
SOCKET="$PROJECT_DIR/.local/run/buildkitd.sock"
INDEX_TYPES='application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json'

log() { printf 'fixture-multiarch: %s\n' "$*" >&2; }
die() { printf 'fixture-multiarch: error: %s\n' "$*" >&2; exit 1; }

# Print the platforms of the index at REF, "os/arch" one a line.
index_platforms() {
    local ref="$1" repository tag
    repository="${ref#*/}"
    tag="${repository##*:}"
    repository="${repository%:*}"
    curl -fsS --max-time 5 -H "Accept: $INDEX_TYPES" "http://127.0.0.1:5000/v2/$repository/manifests/$tag" 2>/dev/null |
        python3 -c 'import json, sys
for entry in json.load(sys.stdin).get("manifests", []):
    platform = entry.get("platform", {})
    print(platform.get("os", "") + "/" + platform.get("architecture", ""))' 2>/dev/null || true
}

# Copy the arm64 busybox binary to $1, downloading its package once.
fetch_arm64_busybox() {
    local target="$1" version deb
    version="$(dpkg-query -W -f='${Version}' busybox-static)"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/debs"
    local apt_options=(
        -q
        -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::Cache=$APT_DIR/cache"
        -o APT::Architecture=arm64
        -o APT::Architectures::=arm64
    )
    deb="$(find "$APT_DIR/debs" -name "busybox-static_*_arm64.deb" | head -n 1)"
    if [[ -z "$deb" ]]; then
        log "downloading busybox-static $version for arm64 with a private apt state in $APT_DIR"
        apt-get "${apt_options[@]}" update > "$APT_DIR/update.log" 2>&1 ||
            { tail -n 20 "$APT_DIR/update.log" >&2; die "apt-get update for arm64 failed"; }
        (cd "$APT_DIR/debs" && apt-get "${apt_options[@]}" download "busybox-static:arm64=$version" > "$APT_DIR/download.log" 2>&1) ||
            { tail -n 20 "$APT_DIR/download.log" >&2; die "apt-get download busybox-static:arm64=$version failed"; }
        deb="$(find "$APT_DIR/debs" -name "busybox-static_*_arm64.deb" | head -n 1)"
    fi
    local unpacked="$APT_DIR/unpacked"
    rm -rf "$unpacked"
    dpkg-deb -x "$deb" "$unpacked"
    cp "$unpacked/bin/busybox" "$target"
}

main() {
    [[ $# -le 1 ]] || die "usage: scripts/fixture-multiarch.sh [<local-ref>]"
    local ref="${1:-$DEFAULT_REF}"

    if [[ "$(index_platforms "$ref" | sort | tr '\n' ' ')" == "linux/amd64 linux/arm64 " ]]; then
        log "$ref already exists in the registry with linux/amd64 and linux/arm64, nothing to do"
        return
    fi
    "$SCRIPT_DIR/emulation.sh" status 2> /dev/null || die "linux/arm64 emulation is not registered; run scripts/emulation.sh start"
    [[ -x "$BUILDCTL" ]] || die "$BUILDCTL not found; run make services, which builds BuildKit"
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' ||
        die "busybox-static is not installed; run make fixture-base, which installs it"

    # Global, because the EXIT trap runs after main's locals are gone.
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/base-images-multiarch.XXXXXX")"
    trap 'rm -rf "$WORK_DIR"' EXIT
    local work="$WORK_DIR"
    cp /bin/busybox "$work/busybox-amd64"
    fetch_arm64_busybox "$work/busybox-arm64"

    cat > "$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
ARG TARGETARCH
COPY busybox-${TARGETARCH} /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin /tmp /root /etc && /bin/busybox --install -s && chmod 1777 /tmp && echo root:x:0:0:root:/root:/bin/sh > /etc/passwd && echo root:x:0: > /etc/group"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL io.base-images.fixture=true
CMD ["sh"]
DOCKERFILE

    log "building $ref for linux/amd64 and linux/arm64 on unix://$SOCKET"
    "$BUILDCTL" --addr "unix://$SOCKET" build --progress plain \
        --frontend dockerfile.v0 --local context="$work" --local dockerfile="$work" \
        --opt platform=linux/amd64,linux/arm64 \
        --output "type=image,name=$ref,push=true" >&2
    log "pushed $ref"
}

main "$@"
