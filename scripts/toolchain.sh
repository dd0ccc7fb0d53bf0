#!/usr/bin/env bash
# Installs the Pulumi toolchain that base-images needs: the Pulumi CLI, its
# Python language host (with the Python helper scripts that go next to it) and
# the docker-build resource provider, at the versions pinned in
# scripts/versions.env.
#
# Usage:
#   scripts/toolchain.sh install [--force]
#       Make sure everything is installed, then print the CLI's bin directory
#       on standard output (one line, nothing else; all logging goes to
#       standard error). --force throws away the cached copies first.
#   scripts/toolchain.sh bin-dir
#       Print the bin directory without checking or installing anything.
#   scripts/toolchain.sh check
#       Exit 0 when the cached toolchain and the plugin installation are
#       complete and at the pinned versions, 1 otherwise. No downloads, no
#       builds.
#
# In a Makefile:
#   export PATH := $(shell scripts/toolchain.sh bin-dir):$(PATH)
#   toolchain: ; scripts/toolchain.sh install >/dev/null
#
# Where things go:
#   $CACHE = ${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}
#   $CACHE/toolchain/pulumi-v<PULUMI_VERSION>/bin/
#       pulumi, pulumi-language-python, pulumi-language-python-exec,
#       pulumi-resource-pulumi-python and, from the official tarball only,
#       the other files that tarball carries.
#   $CACHE/toolchain/docker-build-v<DOCKER_BUILD_VERSION>/pulumi-resource-docker-build
#   ${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-docker-build-v<version>/
#       the provider installed with `pulumi plugin install --file`, which is
#       where the engine looks for it. Run this script and pulumi with the
#       same PULUMI_HOME.
#   Each cached directory contains a toolchain.stamp that records the version,
#   where the files came from and, for the provider, the binary's sha256.
#
# How each part is obtained, first that works wins:
#   1. The official release downloads from get.pulumi.com (connect timeout
#      10 s, so an offline machine moves on at once).
#   2. A build from the Go module proxy with the local Go toolchain:
#      - CLI: github.com/pulumi/pulumi/pkg/v3/cmd/pulumi at PULUMI_VERSION,
#        from a throwaway main module that requires pkg/v3 and sdk/v3 at that
#        version and repeats pkg/v3's non-local replace directives.
#      - Language host: scripts/python-langhost, compiled in the same module.
#        The proxy does not serve Pulumi's own host module; see that file.
#        The two helper scripts come from sdk/v3's python folder.
#      - Provider: github.com/pulumi/pulumi-docker-build at
#        DOCKER_BUILD_VERSION, with the two code-generation modules it
#        imports for schema metadata (not served by the proxy) replaced by
#        scripts/docker-build-stubs.
#      With empty Go module and build caches this took 6.5 minutes on a
#      2-core, 24 GiB Linux machine (2.4 GB of modules, 2.7 GB of build cache).
#
# Environment:
#   BASE_IMAGES_CACHE              cache root (see above)
#   BASE_IMAGES_TOOLCHAIN_SOURCE   auto (default), official or go: limit
#                                  install to one of the two ways
#   BASE_IMAGES_PULUMI_DOWNLOAD_URL
#                                  base URL of the release downloads
#                                  (default https://get.pulumi.com/releases;
#                                  a mirror must use the same file layout)
#   PULUMI_HOME                    Pulumi's own home, holds the plugin cache
#
# A cached copy is reused only after it passes its check (`pulumi version`
# prints the pinned version, the stamp matches, the provider's sha256 matches
# its stamp); anything else is rebuilt. Running install again with everything
# in place took 0.7 s on that machine. The offline build also needs python3,
# which reads go.mod and `pulumi plugin ls` JSON.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"

CACHE_ROOT=${BASE_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/base-images}
TOOLCHAIN_DIR=$CACHE_ROOT/toolchain
PULUMI_DIR=$TOOLCHAIN_DIR/pulumi-v$PULUMI_VERSION
BIN_DIR=$PULUMI_DIR/bin
PROVIDER_DIR=$TOOLCHAIN_DIR/docker-build-v$DOCKER_BUILD_VERSION
PROVIDER_BIN=$PROVIDER_DIR/pulumi-resource-docker-build
PLUGIN_DIR=${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-docker-build-v$DOCKER_BUILD_VERSION
STAMP=toolchain.stamp

DOWNLOAD_URL=${BASE_IMAGES_PULUMI_DOWNLOAD_URL:-https://get.pulumi.com/releases}
SOURCE_MODE=${BASE_IMAGES_TOOLCHAIN_SOURCE:-auto}

LANGHOST_SRC=$SCRIPT_DIR/python-langhost/main.go
STUBS_DIR=$SCRIPT_DIR/docker-build-stubs

# The CLI must not phone home while this script probes it.
export PULUMI_SKIP_UPDATE_CHECK=true

log() { printf '[toolchain] %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	else
		shasum -a 256 "$1" | cut -d' ' -f1
	fi
}

# stamp_get FILE KEY prints the value of KEY=... in FILE, or nothing.
stamp_get() {
	[[ -f $1 ]] || return 0
	sed -n "s/^$2=//p" "$1" | head -n 1
}

# A fingerprint of the files in this repository that go into the offline
# builds, so that editing them causes a rebuild of what they produced. Reads
# the file names from standard input.
recipe_of() {
	local f
	while IFS= read -r f; do
		printf '%s %s\n' "$(sha256_of "$f")" "${f#"$SCRIPT_DIR"/}"
	done | sha256_of /dev/stdin
}
langhost_recipe() { printf '%s\n' "$LANGHOST_SRC" | recipe_of; }
stubs_recipe() { find "$STUBS_DIR" -type f | LC_ALL=C sort | recipe_of; }

# Sets the OS and CPU names used in release file names. The CLI tarball uses
# x64 where plugin tarballs use amd64.
platform() {
	local os arch
	case "$(uname -s)" in
	Linux) os=linux ;;
	Darwin) os=darwin ;;
	*) die "unsupported operating system: $(uname -s)" ;;
	esac
	case "$(uname -m)" in
	x86_64 | amd64) arch=amd64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) die "unsupported CPU: $(uname -m)" ;;
	esac
	OS=$os
	PLUGIN_ARCH=$arch
	if [[ $arch == amd64 ]]; then CLI_ARCH=x64; else CLI_ARCH=$arch; fi
}

# download URL FILE fails fast when the host cannot be reached and gives up
# on a transfer that stalls, instead of hanging for minutes.
download() {
	curl --fail --silent --show-error --location \
		--connect-timeout 10 --speed-limit 1024 --speed-time 30 --max-time 1200 \
		--output "$2" "$1"
}

# ---------------------------------------------------------------- checks

pulumi_ok() {
	local f source out
	for f in pulumi pulumi-language-python pulumi-language-python-exec; do
		[[ -x $BIN_DIR/$f ]] || return 1
	done
	[[ $(stamp_get "$PULUMI_DIR/$STAMP" version) == "$PULUMI_VERSION" ]] || return 1
	source=$(stamp_get "$PULUMI_DIR/$STAMP" source)
	case "$source" in
	official) ;;
	go-proxy) [[ $(stamp_get "$PULUMI_DIR/$STAMP" recipe) == "$(langhost_recipe)" ]] || return 1 ;;
	*) return 1 ;;
	esac
	out=$("$BIN_DIR/pulumi" version 2>/dev/null) || return 1
	[[ $out == "v$PULUMI_VERSION" ]]
}

provider_ok() {
	local source
	[[ -x $PROVIDER_BIN ]] || return 1
	[[ $(stamp_get "$PROVIDER_DIR/$STAMP" version) == "$DOCKER_BUILD_VERSION" ]] || return 1
	source=$(stamp_get "$PROVIDER_DIR/$STAMP" source)
	case "$source" in
	official) ;;
	go-proxy) [[ $(stamp_get "$PROVIDER_DIR/$STAMP" recipe) == "$(stubs_recipe)" ]] || return 1 ;;
	*) return 1 ;;
	esac
	[[ $(stamp_get "$PROVIDER_DIR/$STAMP" sha256) == "$(sha256_of "$PROVIDER_BIN")" ]]
}

# The plugin cache contains its own copy of the provider. That copy is current
# when it is byte-identical to the cached binary and no install is half done.
# Pulumi leaves a .partial marker next to an unfinished plugin directory.
plugin_ok() {
	[[ -f $PLUGIN_DIR/pulumi-resource-docker-build ]] || return 1
	[[ ! -e $PLUGIN_DIR.partial ]] || return 1
	[[ $(sha256_of "$PLUGIN_DIR/pulumi-resource-docker-build") == "$(stamp_get "$PROVIDER_DIR/$STAMP" sha256)" ]]
}

# ---------------------------------------------------------------- official downloads

pulumi_official() {
	local stage=$1 url=$DOWNLOAD_URL/sdk/pulumi-v$PULUMI_VERSION-$OS-$CLI_ARCH.tar.gz
	log "Pulumi CLI: trying the official download $url"
	if ! download "$url" "$stage/pulumi.tar.gz"; then
		log "Pulumi CLI: official download not available"
		return 1
	fi
	mkdir -p "$stage/unpacked" || return 1
	tar -xzf "$stage/pulumi.tar.gz" -C "$stage/unpacked" || return 1
	# The tarball contains a single pulumi/ folder with the CLI, the language
	# hosts and their helper scripts.
	if [[ ! -x $stage/unpacked/pulumi/pulumi ]]; then
		log "Pulumi CLI: the tarball has no pulumi/pulumi"
		return 1
	fi
	mv "$stage/unpacked/pulumi" "$stage/bin" || return 1
	rm -rf "$stage/unpacked" "$stage/pulumi.tar.gz" || return 1
	printf 'version=%s\nsource=official\nurl=%s\n' "$PULUMI_VERSION" "$url" >"$stage/$STAMP" || return 1
}

provider_official() {
	local stage=$1
	local url=$DOWNLOAD_URL/plugins/pulumi-resource-docker-build-v$DOCKER_BUILD_VERSION-$OS-$PLUGIN_ARCH.tar.gz
	local bin=pulumi-resource-docker-build
	log "docker-build provider: trying the official download $url"
	if ! download "$url" "$stage/provider.tar.gz"; then
		log "docker-build provider: official download not available"
		return 1
	fi
	mkdir -p "$stage/unpacked" || return 1
	tar -xzf "$stage/provider.tar.gz" -C "$stage/unpacked" || return 1
	if [[ ! -x $stage/unpacked/$bin ]]; then
		log "docker-build provider: the tarball has no $bin"
		return 1
	fi
	mv "$stage/unpacked/$bin" "$stage/$bin" || return 1
	rm -rf "$stage/unpacked" "$stage/provider.tar.gz" || return 1
	printf 'version=%s\nsource=official\nurl=%s\nsha256=%s\n' "$DOCKER_BUILD_VERSION" "$url" \
		"$(sha256_of "$stage/$bin")" >"$stage/$STAMP" || return 1
}

# ---------------------------------------------------------------- builds from the Go module proxy

require_go() {
	command -v go >/dev/null 2>&1 || die "no official download and no Go toolchain to build from the module proxy"
}

# go_module_field MODULE@VERSION FIELD downloads the module (or finds it in
# the module cache) and prints one field of `go mod download -json`, such as
# Dir (the unpacked source) or GoMod (its go.mod).
go_module_field() {
	local json value
	# Run outside any module so that a go.mod or go.work around the caller's
	# directory plays no part.
	if ! json=$(cd "$TOOLCHAIN_DIR" && GOFLAGS='' GOWORK=off go mod download -json "$1"); then
		printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/go: \1/p' >&2
		return 1
	fi
	value=$(printf '%s\n' "$json" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p" | head -n 1)
	[[ -n $value ]] || return 1
	printf '%s\n' "$value"
}

# new_build_module DIR GOMOD writes a throwaway main module in DIR whose go
# directive and non-local replace directives are those of the go.mod file
# GOMOD. Local replaces (../sdk and the like) point into the upstream
# repository and mean nothing here.
new_build_module() {
	local dir=$1 upstream=$2 gover
	rm -rf "$dir"
	mkdir -p "$dir"
	gover=$(go mod edit -json "$upstream" | sed -n 's/^[[:space:]]*"Go": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
	printf 'module example.invalid/base-images-toolchain-build\n\ngo %s\n' "${gover:-1.22}" >"$dir/go.mod"
	# Pull each non-local replacement out of the upstream go.mod as
	# "old[@version] new@version" and repeat it.
	local old new
	while read -r old new; do
		[[ -n $old ]] || continue
		(cd "$dir" && go mod edit -replace "$old=$new")
	done < <(go mod edit -json "$upstream" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version"):
        continue
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    print(lhs, new["Path"] + "@" + new["Version"])
')
}

# go_build DIR OUTPUT PACKAGE LDFLAGS builds inside the throwaway module DIR.
# -mod=mod lets go fill in go.sum and the indirect requirements; CGO is off
# so the binaries do not depend on the C library of the machine they were
# built on.
go_build() {
	(cd "$1" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
		go build -trimpath -ldflags "-s -w $4" -o "$2" "$3")
}

pulumi_from_go() {
	local stage=$1 v=v$PULUMI_VERSION
	local work=$TOOLCHAIN_DIR/build/pulumi-$v
	require_go
	log "Pulumi CLI: building $v from the Go module proxy with $(go version | cut -d' ' -f3) (minutes when the Go caches are empty)"
	local pkg_mod sdk_dir
	pkg_mod=$(go_module_field "github.com/pulumi/pulumi/pkg/v3@$v" GoMod) ||
		die "the module proxy did not serve github.com/pulumi/pulumi/pkg/v3@$v"
	sdk_dir=$(go_module_field "github.com/pulumi/pulumi/sdk/v3@$v" Dir) ||
		die "the module proxy did not serve github.com/pulumi/pulumi/sdk/v3@$v"

	new_build_module "$work" "$pkg_mod"
	(cd "$work" && go mod edit \
		-require "github.com/pulumi/pulumi/pkg/v3@$v" \
		-require "github.com/pulumi/pulumi/sdk/v3@$v")
	mkdir -p "$work/langhost" "$stage/bin"
	cp "$LANGHOST_SRC" "$work/langhost/main.go"

	local ldflags="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v"
	go_build "$work" "$stage/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "$ldflags"
	go_build "$work" "$stage/bin/pulumi-language-python" ./langhost "$ldflags"

	# Minimal version selection could lift sdk/v3 above the pin if some
	# dependency required a newer one. The CLI would then not be the pinned
	# release.
	local picked
	picked=$(cd "$work" && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3)
	[[ $picked == "$v" ]] || die "the build selected github.com/pulumi/pulumi/sdk/v3 $picked instead of $v"

	# Module zips do not keep file modes, hence install -m 755.
	install -m 755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$stage/bin/"
	install -m 755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" "$stage/bin/"
	if [[ -f $sdk_dir/python/dist/pulumi-analyzer-policy-python ]]; then
		install -m 755 "$sdk_dir/python/dist/pulumi-analyzer-policy-python" "$stage/bin/"
	fi
	printf 'version=%s\nsource=go-proxy\nrecipe=%s\n' "$PULUMI_VERSION" "$(langhost_recipe)" >"$stage/$STAMP"
}

provider_from_go() {
	local stage=$1 v=v$DOCKER_BUILD_VERSION
	local module=github.com/pulumi/pulumi-docker-build
	local work=$TOOLCHAIN_DIR/build/docker-build-$v
	require_go
	log "docker-build provider: building $v from the Go module proxy (minutes when the Go caches are empty)"
	local upstream
	upstream=$(go_module_field "$module@$v" GoMod) ||
		die "the module proxy did not serve $module@$v"

	new_build_module "$work" "$upstream"
	(cd "$work" && go mod edit -require "$module@$v")
	# Replace a code-generation module by its stand-in only when this
	# provider version requires it.
	local stub path
	for stub in "$STUBS_DIR"/*/; do
		path=$(sed -n 's/^module //p' "$stub/go.mod")
		if go mod edit -json "$upstream" | grep -q "\"Path\": \"$path\""; then
			cp -R "$stub" "$work/stub-$(basename "$stub")"
			(cd "$work" && go mod edit -replace "$path=./stub-$(basename "$stub")")
		fi
	done

	go_build "$work" "$stage/pulumi-resource-docker-build" "$module/provider/cmd/pulumi-resource-docker-build" \
		"-X $module/provider.Version=$DOCKER_BUILD_VERSION"
	printf 'version=%s\nsource=go-proxy\nrecipe=%s\nsha256=%s\n' "$DOCKER_BUILD_VERSION" "$(stubs_recipe)" \
		"$(sha256_of "$stage/pulumi-resource-docker-build")" >"$stage/$STAMP"
}

# ---------------------------------------------------------------- install steps

# obtain NAME DEST OFFICIAL_FN GO_FN fills a fresh staging directory by the
# first way that works and then swaps it in for DEST, so an interrupted run
# never leaves a half-filled DEST behind. The official functions run inside
# "if", where set -e is off, so they report failure by their return status.
# The Go functions run outside any condition, so set -e stops the script at
# their first failed step and the EXIT trap removes the staging directory.
STAGING=()
cleanup() {
	local d
	for d in ${STAGING[@]+"${STAGING[@]}"}; do rm -rf "$d"; done
}
trap cleanup EXIT

obtain() {
	local name=$1 dest=$2 official=$3 from_go=$4
	local stage="$dest.tmp.$$"
	STAGING+=("$stage")
	rm -rf "$stage"
	mkdir -p "$stage"
	if [[ $SOURCE_MODE != go ]] && "$official" "$stage"; then
		log "$name: installed from the official download"
	else
		[[ $SOURCE_MODE != official ]] || die "$name: BASE_IMAGES_TOOLCHAIN_SOURCE=official and the download failed"
		rm -rf "$stage"
		mkdir -p "$stage"
		"$from_go" "$stage"
		log "$name: built from the Go module proxy"
	fi
	rm -rf "$dest"
	mv "$stage" "$dest"
}

ensure_pulumi() {
	if pulumi_ok; then
		log "Pulumi CLI v$PULUMI_VERSION: cached ($(stamp_get "$PULUMI_DIR/$STAMP" source)) in $BIN_DIR"
		return
	fi
	obtain "Pulumi CLI v$PULUMI_VERSION" "$PULUMI_DIR" pulumi_official pulumi_from_go
	pulumi_ok || die "Pulumi CLI: the new install in $BIN_DIR failed its check (pulumi version printed: $("$BIN_DIR/pulumi" version 2>&1 || true))"
}

ensure_provider() {
	if provider_ok; then
		log "docker-build provider v$DOCKER_BUILD_VERSION: cached ($(stamp_get "$PROVIDER_DIR/$STAMP" source)) in $PROVIDER_DIR"
		return
	fi
	obtain "docker-build provider v$DOCKER_BUILD_VERSION" "$PROVIDER_DIR" provider_official provider_from_go
	provider_ok || die "docker-build provider: the new install in $PROVIDER_DIR failed its check (see its $STAMP)"
}

ensure_plugin() {
	if plugin_ok; then
		log "docker-build plugin v$DOCKER_BUILD_VERSION: already in the plugin cache ($PLUGIN_DIR)"
		return
	fi
	log "docker-build plugin v$DOCKER_BUILD_VERSION: installing into the plugin cache"
	PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true "$BIN_DIR/pulumi" plugin install \
		resource docker-build "$DOCKER_BUILD_VERSION" --file "$PROVIDER_BIN" --reinstall >&2
	plugin_ok || die "docker-build plugin: after pulumi plugin install, $PLUGIN_DIR does not contain a copy of $PROVIDER_BIN"
	# Confirm through Pulumi itself that the engine will see this exact version.
	"$BIN_DIR/pulumi" plugin ls --json | python3 -c '
import json, sys
want = sys.argv[1]
found = [p for p in json.load(sys.stdin) if p.get("name") == "docker-build" and p.get("kind") == "resource"]
if not any(p.get("version") == want for p in found):
    sys.exit("pulumi plugin ls does not list docker-build " + want + ": " + repr(found))
' "$DOCKER_BUILD_VERSION" || die "docker-build plugin: not listed by pulumi plugin ls"
}

# ---------------------------------------------------------------- commands

cmd_install() {
	local force=0
	while (($#)); do
		case "$1" in
		--force) force=1 ;;
		*) die "unknown option for install: $1" ;;
		esac
		shift
	done
	case "$SOURCE_MODE" in
	auto | official | go) ;;
	*) die "BASE_IMAGES_TOOLCHAIN_SOURCE must be auto, official or go (got $SOURCE_MODE)" ;;
	esac
	platform
	mkdir -p "$TOOLCHAIN_DIR"
	# Two installs at once (parallel make, two CI jobs on one machine)
	# would fight over the same directories.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$TOOLCHAIN_DIR/.lock"
		flock 9
	fi
	if ((force)); then
		log "--force: removing the cached toolchain"
		rm -rf "$PULUMI_DIR" "$PROVIDER_DIR"
	fi
	ensure_pulumi
	ensure_provider
	ensure_plugin
	log "PATH entry: $BIN_DIR"
	printf '%s\n' "$BIN_DIR"
}

cmd_check() {
	local status=0
	if pulumi_ok; then log "Pulumi CLI v$PULUMI_VERSION: ok"; else
		log "Pulumi CLI v$PULUMI_VERSION: missing or stale in $BIN_DIR"
		status=1
	fi
	if provider_ok; then log "docker-build provider v$DOCKER_BUILD_VERSION: ok"; else
		log "docker-build provider v$DOCKER_BUILD_VERSION: missing or stale in $PROVIDER_DIR"
		status=1
	fi
	if plugin_ok; then log "docker-build plugin v$DOCKER_BUILD_VERSION: ok"; else
		log "docker-build plugin v$DOCKER_BUILD_VERSION: missing or different in $PLUGIN_DIR"
		status=1
	fi
	return "$status"
}

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
}

main() {
	local cmd=${1:-}
	(($#)) && shift
	case "$cmd" in
	install) cmd_install "$@" ;;
	bin-dir) printf '%s\n' "$BIN_DIR" ;;
	check) cmd_check ;;
	-h | --help | help) usage ;;
	*)
		usage
		exit 2
		;;
	esac
}

main "$@"
