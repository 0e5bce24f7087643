#!/usr/bin/env bash
# jaeger-build.sh — build (once) the Jaeger v2 collector the tracing tests export to.
# TEST TOOLING, not product.
#
# Why: Jaeger v2 (`github.com/jaegertracing/jaeger/cmd/jaeger`) accepts OTLP (HTTP 4318, gRPC 4317)
# and answers a query API (16686) from one binary with in-memory storage, and the Go module
# proxy serves its source. Its go.mod has a `replace` line, so `go install pkg@version` refuses
# it: the script downloads the pinned module and builds inside it, with the module's own go.sum.
# Jaeger's Go module keeps v1 tags: JAEGER_MODULE_VERSION v1.76.0 is the Jaeger v2.13 release.
#
# Cache: ${XDG_CACHE_HOME:-~/.cache}/erlmcp-tools/jaeger-<version>/jaeger (+ .ok), with GOMODCACHE
# and GOCACHE under ${XDG_CACHE_HOME:-~/.cache}/erlmcp-tools/go/, so a warm machine returns at once.
# Usage: e2e/scripts/jaeger-build.sh   (prints the binary's path as the last stdout line)
set -euo pipefail

# The one place that pins the collector's version.
JAEGER_MODULE_VERSION=v1.76.0
MODULE=github.com/jaegertracing/jaeger

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-tools"
DIR="$CACHE/jaeger-$JAEGER_MODULE_VERSION"
KEY="jaeger $JAEGER_MODULE_VERSION"

log() { printf '[jaeger-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOWORK=off GOFLAGS="-trimpath -buildvcs=false"

ok() { [[ "$(cat "$DIR/.ok" 2>/dev/null)" == "$KEY" && -x $DIR/jaeger ]]; }
if ok; then echo "$DIR/jaeger"; exit 0; fi

command -v go >/dev/null 2>&1 || die "Go not found on PATH: the Jaeger collector is built from its Go module"
mkdir -p "$CACHE"
# One build at a time: a second caller waits for the first and then takes its cache.
exec 9>"$DIR.lock"
flock 9
if ok; then echo "$DIR/jaeger"; exit 0; fi

start=$(date +%s)
log "downloading $MODULE@$JAEGER_MODULE_VERSION through $(go env GOPROXY | cut -d, -f1)"
src=$(cd "$CACHE" && go mod download -json "$MODULE@$JAEGER_MODULE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -n $src && -f $src/go.mod ]] || die "go mod download $MODULE@$JAEGER_MODULE_VERSION gave no source dir (is the Go module proxy reachable?)"
rm -rf "$DIR"
mkdir -p "$DIR"
log "building $MODULE/cmd/jaeger (a cold build takes many minutes on 2 cores)"
(cd "$src" && nice -n 10 go build -mod=mod -o "$DIR/jaeger.tmp" ./cmd/jaeger) || die "go build of $MODULE/cmd/jaeger failed"
mv "$DIR/jaeger.tmp" "$DIR/jaeger"
"$DIR/jaeger" version >/dev/null 2>&1 || die "the built jaeger does not run"
echo "$KEY" >"$DIR/.ok"
log "built in $(( $(date +%s) - start ))s: $DIR/jaeger"
echo "$DIR/jaeger"
