#!/bin/sh
# Install Go $GO_VERSION from $GO_DIST_URL into /usr/local/go. The archive is
# kept in a cache mount, so a rebuild with the same version downloads nothing.
set -eu

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) echo "install-go.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

name="go${GO_VERSION}.linux-${arch}.tar.gz"
cache=/root/.cache/mcp-toolchain
mkdir -p "${cache}"
if [ ! -s "${cache}/${name}" ]; then
    curl -fsSL --retry 3 -o "${cache}/${name}.part" "${GO_DIST_URL}/${name}"
    mv "${cache}/${name}.part" "${cache}/${name}"
fi

rm -rf /usr/local/go
tar -xzf "${cache}/${name}" -C /usr/local --no-same-owner
