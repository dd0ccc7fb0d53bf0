#!/bin/sh
# Install Node.js $NODE_VERSION into /usr/local from $NODE_SOURCE:
#   nodejs-dist   the release tarball from $NODE_DIST_URL, checked against the
#                 SHASUMS256.txt published beside it (it bundles npm);
#   npm-registry  the node-linux-<arch> package plus npm $NPM_VERSION from
#                 $NPM_REGISTRY_URL, each checked against the registry's sha512.
set -eu

case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "install-node.sh: unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
work="$(mktemp -d)"

# Download an npm package tarball to $2 and check it against the registry's
# integrity field, which is "sha512-<base64 digest>".
fetch_npm_package() {
    package="$1"
    version="$2"
    target="$3"
    curl -fsSL --retry 3 -o "${work}/meta.json" "${NPM_REGISTRY_URL}/${package}/${version}"
    tarball="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dist"]["tarball"])' "${work}/meta.json")"
    expected="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dist"]["integrity"])' "${work}/meta.json")"
    curl -fsSL --retry 3 -o "${target}" "${tarball}"
    actual="sha512-$(openssl dgst -sha512 -binary "${target}" | base64 -w0)"
    if [ "${actual}" != "${expected}" ]; then
        echo "install-node.sh: ${package}@${version} integrity mismatch: expected ${expected}, got ${actual}" >&2
        exit 1
    fi
}

case "${NODE_SOURCE}" in
    nodejs-dist)
        name="node-v${NODE_VERSION}-linux-${arch}.tar.xz"
        curl -fsSL --retry 3 -o "${work}/${name}" "${NODE_DIST_URL}/v${NODE_VERSION}/${name}"
        curl -fsSL --retry 3 -o "${work}/SHASUMS256.txt" "${NODE_DIST_URL}/v${NODE_VERSION}/SHASUMS256.txt"
        (cd "${work}" && grep " ${name}\$" SHASUMS256.txt | sha256sum -c -)
        tar -xJf "${work}/${name}" -C /usr/local --strip-components=1 --no-same-owner \
            --exclude=CHANGELOG.md --exclude=LICENSE --exclude=README.md
        ;;
    npm-registry)
        fetch_npm_package "node-linux-${arch}" "${NODE_VERSION}" "${work}/node.tgz"
        tar -xzf "${work}/node.tgz" -C "${work}"
        cp "${work}/package/bin/node" /usr/local/bin/node
        cp -r "${work}/package/include/node" /usr/local/include/
        fetch_npm_package npm "${NPM_VERSION}" "${work}/npm.tgz"
        mkdir -p /usr/local/lib/node_modules/npm
        tar -xzf "${work}/npm.tgz" -C /usr/local/lib/node_modules/npm --strip-components=1 --no-same-owner
        ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
        ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
        ;;
    *)
        echo "install-node.sh: NODE_SOURCE must be nodejs-dist or npm-registry, not ${NODE_SOURCE}" >&2
        exit 1
        ;;
esac
rm -rf "${work}"
