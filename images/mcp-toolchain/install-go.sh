#!/bin/sh
# Install Go $GO_VERSION into /usr/local/go from $GO_SOURCE:
#   go-dist          the release tarball from $GO_DIST_URL;
#   go-module-proxy  the golang.org/toolchain module zip from $GO_MODULE_PROXY_URL,
#                    the same archive that `go` itself fetches to switch toolchains.
# Archives stay in a cache mount, so a rebuild with the same version downloads nothing.
set -eu

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) echo "install-go.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
cache=/root/.cache/mcp-toolchain
mkdir -p "${cache}"

# Download $1 to the cache as $2 unless an earlier build already did.
fetch_cached() {
    if [ ! -s "${cache}/$2" ]; then
        curl -fsSL --retry 3 -o "${cache}/$2.part" "$1"
        mv "${cache}/$2.part" "${cache}/$2"
    fi
}

rm -rf /usr/local/go
case "${GO_SOURCE}" in
    go-dist)
        name="go${GO_VERSION}.linux-${arch}.tar.gz"
        fetch_cached "${GO_DIST_URL}/${name}" "${name}"
        tar -xzf "${cache}/${name}" -C /usr/local --no-same-owner
        ;;
    go-module-proxy)
        # NOTE: the zip is not checked against the Go checksum database here;
        # the proxy serves it over TLS, as for the go-dist tarball.
        module_version="v0.0.1-go${GO_VERSION}.linux-${arch}"
        name="golang-toolchain-${module_version}.zip"
        fetch_cached "${GO_MODULE_PROXY_URL}/golang.org/toolchain/@v/${module_version}.zip" "${name}"
        work="$(mktemp -d)"
        unzip -q "${cache}/${name}" -d "${work}"
        mv "${work}/golang.org/toolchain@${module_version}" /usr/local/go
        rm -rf "${work}"
        # Module zips do not keep file modes.
        chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/*
        ;;
    *)
        echo "install-go.sh: GO_SOURCE must be go-dist or go-module-proxy, not ${GO_SOURCE}" >&2
        exit 1
        ;;
esac
