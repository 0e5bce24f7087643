#!/usr/bin/env bash
# cert-manager-build.sh — cert-manager's controllers and CRDs for the e2e cert-manager case,
# from the Go module proxy. TEST TOOLING, not product.
#
# e2e/cert-manager/ is a small module of ours: it requires github.com/cert-manager/cert-manager
# at CERT_MANAGER_VERSION (e2e/scripts/versions.env) and links the controllers a CA chain needs
# (see its main.go). The binary and the CRDs of the same module version are cached under
#   ${XDG_CACHE_HOME:-~/.cache}/erlmcp-k8s/cert-manager-<version>/{bin/cert-manager-controller,crds/}
# with GOMODCACHE and GOCACHE shared with the plane build (erlmcp-k8s/go/). A warm cache returns
# at once; concurrent callers (scripts/test.sh's background build and a test) wait for one build.
#
# Usage: e2e/scripts/cert-manager-build.sh     (prints the cache dir on stdout, last line)
#        e2e/scripts/cert-manager-build.sh --update-modules  (rewrite go.mod/go.sum from versions.env)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
MOD_DIR="$(cd "$HERE/../cert-manager" && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-k8s"
ROOT="$CACHE/cert-manager-$CERT_MANAGER_VERSION"
MODULE=github.com/cert-manager/cert-manager

log() { printf '[cert-manager-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export CGO_ENABLED=0 GOWORK=off

command -v go >/dev/null 2>&1 ||
  die "Go not found on PATH: cert-manager $CERT_MANAGER_VERSION is built from its Go module (needs go >= $(awk '$1 == "go" {print $2}' "$MOD_DIR/go.mod"))"

if [[ ${1:-} == --update-modules ]]; then
  (cd "$MOD_DIR" && GOFLAGS='' go mod edit -require="$MODULE@$CERT_MANAGER_VERSION" && GOFLAGS='' go mod tidy) ||
    die "go mod edit/tidy in $MOD_DIR failed"
  log "updated; commit e2e/cert-manager/{go.mod,go.sum}"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--update-modules]"
grep -Eq "^(require)?[[:space:]]*$MODULE $CERT_MANAGER_VERSION( |\$)" "$MOD_DIR/go.mod" ||
  die "e2e/cert-manager/go.mod does not require $MODULE $CERT_MANAGER_VERSION (versions.env): run $0 --update-modules"

# Valid for exactly these sources: editing main.go, go.mod or go.sum rebuilds.
stamp() { cat "$MOD_DIR"/*.go "$MOD_DIR/go.mod" "$MOD_DIR/go.sum" | sha256sum | cut -c1-16; }
have() { [[ -x $ROOT/bin/cert-manager-controller && -f $ROOT/.stamp && "$(cat "$ROOT/.stamp")" == "$(stamp)" ]]; }

if have; then log "cached: $ROOT"; echo "$ROOT"; exit 0; fi
mkdir -p "$CACHE" "$GOMODCACHE" "$GOCACHE"
exec 9>"$CACHE/cert-manager-$CERT_MANAGER_VERSION.lock"
if ! flock -n 9; then log "another build holds the lock; waiting for it"; flock 9; fi
if have; then log "cached (built by a concurrent run): $ROOT"; echo "$ROOT"; exit 0; fi

log "go: $(go version), GOPROXY=$(go env GOPROXY)"
tmp="$ROOT.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin" "$tmp/crds"
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
(cd "$MOD_DIR" && go mod download "$MODULE") >"$tmp/modules.log" 2>&1 || {
  tail -n 20 "$tmp/modules.log" >&2
  die "downloading $MODULE@$CERT_MANAGER_VERSION failed: is the Go module proxy $(go env GOPROXY) reachable?"
}
LOG="$CACHE/cert-manager-$CERT_MANAGER_VERSION.build.log"
log "building the controllers of cert-manager $CERT_MANAGER_VERSION (cold: ~25 min on 2 shared busy cores; log: $LOG)"
(cd "$MOD_DIR" && go build -o "$tmp/bin/cert-manager-controller" -ldflags "-s -w" .) >"$LOG" 2>&1 || {
  tail -n 40 "$LOG" >&2
  die "go build of cert-manager $CERT_MANAGER_VERSION failed with $(go version) (log: $LOG)"
}
log "built in $(( $(date +%s) - t0 ))s"
"$tmp/bin/cert-manager-controller" --list-controllers | grep certificates-issuing >/dev/null ||
  die "the built controller does not link cert-manager's certificate controllers"
src="$(cd "$MOD_DIR" && go list -m -f '{{.Dir}}' "$MODULE")/deploy/crds"
cp "$src"/*.yaml "$tmp/crds/" || die "no CRDs in $src"
rm -f "$tmp/crds/README.md"
chmod -R u+w "$tmp"
stamp >"$tmp/.stamp"
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
log "cached in $ROOT ($(du -sh "$ROOT" | cut -f1))"
echo "$ROOT"
