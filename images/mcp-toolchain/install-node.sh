#!/bin/sh
# Install Node.js $NODE_VERSION from $NODE_DIST_URL into /usr/local, checking
# the tarball against the SHASUMS256.txt that the same server publishes.
set -eu

case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "install-node.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac

name="node-v${NODE_VERSION}-linux-${arch}.tar.xz"
work="$(mktemp -d)"
curl -fsSL --retry 3 -o "${work}/${name}" "${NODE_DIST_URL}/v${NODE_VERSION}/${name}"
curl -fsSL --retry 3 -o "${work}/SHASUMS256.txt" "${NODE_DIST_URL}/v${NODE_VERSION}/SHASUMS256.txt"
(cd "${work}" && grep " ${name}\$" SHASUMS256.txt | sha256sum -c -)

tar -xJf "${work}/${name}" -C /usr/local --strip-components=1 --no-same-owner
rm -rf "${work}"
