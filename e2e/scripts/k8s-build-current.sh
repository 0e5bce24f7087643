#!/usr/bin/env bash
# k8s-build-current.sh — build a CURRENT Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler) and etcd for the e2e tests from their Go modules.
# TEST TOOLING, not product.
#
# Why: no registry ships these binaries, but the Go module proxy serves k8s.io/kubernetes and
# go.etcd.io/etcd/server/v3. Two small modules of our own, checked in, pin them:
#   e2e/k8s-current/go.mod       requires k8s.io/kubernetes; `replace` lines pin every k8s.io
#                                staging module (required there as v0.0.0) to v0.MINOR.PATCH
#   e2e/k8s-current/etcd/go.mod  requires go.etcd.io/etcd/server/v3 (its root package is etcd's main)
# Versions come from e2e/scripts/versions.env (the one place). Binaries are cached under
#   ${XDG_CACHE_HOME:-~/.cache}/erlmcp-k8s/<k8s-version>/bin/   (kube-*, etcd, .stamp)
# with GOMODCACHE and GOCACHE under ${XDG_CACHE_HOME:-~/.cache}/erlmcp-k8s/go/, so a warm machine
# returns at once and a second cold build of the binaries reuses the compiled packages.
#
# Usage: e2e/scripts/k8s-build-current.sh                   (prints the bin dir on stdout, last line)
#        e2e/scripts/k8s-build-current.sh --update-modules  (rewrite both go.mod/go.sum from versions.env)
# Needs: `go` on PATH at least as new as the go line of e2e/k8s-current/go.mod (GOTOOLCHAIN is
# honoured if set, else local), and the Go module proxy (`go env GOPROXY`) on a cold cache.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
MOD_DIR="$(cd "$HERE/../k8s-current" && pwd)"
ETCD_MOD_DIR="$MOD_DIR/etcd"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-k8s"
CACHE_ROOT="$CACHE/$K8S_CURRENT_VERSION"
BIN_DIR="$CACHE_ROOT/bin"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

log() { printf '[k8s-build-current] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export CGO_ENABLED=0 GOWORK=off

# The cache is valid for exactly these versions and module files: editing a go.mod/go.sum
# (or versions.env) rebuilds.
stamp() {
  printf 'k8s=%s etcd=%s mods=%s\n' "$K8S_CURRENT_VERSION" "$ETCD_CURRENT_VERSION" \
    "$(cat "$MOD_DIR/go.mod" "$MOD_DIR/go.sum" "$ETCD_MOD_DIR/go.mod" "$ETCD_MOD_DIR/go.sum" | sha256sum | cut -c1-16)"
}
have_all() {
  local b
  for b in "${K8S_BINARIES[@]}" etcd; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
  [[ -f $BIN_DIR/.stamp && "$(cat "$BIN_DIR/.stamp")" == "$(stamp)" ]]
}

# ---------------------------------------------------------------- Go toolchain
need_go() {
  command -v go >/dev/null 2>&1 ||
    die "Go not found on PATH: the current plane (E2E_K8S=current) is built from Go modules and needs go >= $(go_line "$MOD_DIR/go.mod")"
  local have want
  have=$(go env GOVERSION 2>/dev/null) || die "\`go env GOVERSION\` failed: broken Go toolchain at $(command -v go)"
  have=${have#go}
  want=$(go_line "$MOD_DIR/go.mod")
  if [[ $GOTOOLCHAIN == local && "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]]; then
    die "Go $have is too old: e2e/k8s-current/go.mod (k8s.io/kubernetes $K8S_CURRENT_VERSION) needs go >= $want (or export GOTOOLCHAIN=go$want to fetch it through the proxy)"
  fi
}
go_line() { awk '$1 == "go" {print $2; exit}' "$1"; }

# A failed module download: say whether the proxy is unreachable or something else broke.
module_failure() { # what logfile
  local proxy
  proxy=$(go env GOPROXY | cut -d, -f1 | cut -d'|' -f1)
  tail -n 20 "$2" >&2
  if [[ $proxy == off ]]; then
    die "$1: GOPROXY=off and the modules are not in $GOMODCACHE"
  elif [[ $proxy == http* ]] && ! curl -sf --max-time 15 -o /dev/null "$proxy/k8s.io/kubernetes/@v/$K8S_CURRENT_VERSION.info"; then
    die "$1: the Go module proxy $proxy is not reachable (needed on a cold cache; modules go to $GOMODCACHE)"
  fi
  die "$1 failed (the proxy $proxy answers; see the go output above)"
}

# ---------------------------------------------------------------- --update-modules
update_modules() {
  need_go
  mkdir -p "$GOMODCACHE" "$GOCACHE"
  local info gomod staging m
  log "resolving k8s.io/kubernetes@$K8S_CURRENT_VERSION through $(go env GOPROXY)"
  info=$(cd / && GOFLAGS='' go mod download -json "k8s.io/kubernetes@$K8S_CURRENT_VERSION" 2>"$CACHE/update.log") ||
    module_failure "go mod download k8s.io/kubernetes@$K8S_CURRENT_VERSION" "$CACHE/update.log"
  gomod=$(sed -n 's/.*"GoMod": *"\([^"]*\)".*/\1/p' <<<"$info")
  [[ -f $gomod ]] || die "no go.mod of k8s.io/kubernetes@$K8S_CURRENT_VERSION in the download"
  # The staging modules: what k8s.io/kubernetes requires as v0.0.0 (its own replace lines point
  # them into ./staging, which a dependent module cannot see).
  staging=$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)
  [[ -n $staging ]] || die "found no k8s.io staging modules in $gomod"
  {
    echo "// The current Kubernetes control plane of the e2e test bed (TEST TOOLING): written by"
    echo "// e2e/scripts/k8s-build-current.sh --update-modules from e2e/scripts/versions.env."
    echo "module erlmcp.test/e2e/k8s-current"
    echo
    echo "go $(go_line "$gomod")"
    echo
    grep '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $K8S_CURRENT_VERSION"
    echo
    echo "tool ("
    for m in "${K8S_BINARIES[@]}"; do echo "	k8s.io/kubernetes/cmd/$m"; done
    echo ")"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $K8S_CURRENT_STAGING_VERSION"; done
    echo ")"
  } >"$MOD_DIR/go.mod"
  rm -f "$MOD_DIR/go.sum"
  log "go mod tidy in $MOD_DIR ($(wc -w <<<"$staging") staging modules pinned to $K8S_CURRENT_STAGING_VERSION)"
  (cd "$MOD_DIR" && GOFLAGS='' go mod tidy) >>"$CACHE/update.log" 2>&1 || module_failure "go mod tidy (k8s)" "$CACHE/update.log"
  {
    echo "// etcd for the current control plane of the e2e test bed (TEST TOOLING): written by"
    echo "// e2e/scripts/k8s-build-current.sh --update-modules. The root package of the module is etcd's main."
    echo "module erlmcp.test/e2e/k8s-current/etcd"
    echo
    echo "go $(go_line "$gomod")"
    echo
    echo "require go.etcd.io/etcd/server/v3 $ETCD_CURRENT_VERSION"
    echo
    echo "tool go.etcd.io/etcd/server/v3"
  } >"$ETCD_MOD_DIR/go.mod"
  rm -f "$ETCD_MOD_DIR/go.sum"
  log "go mod tidy in $ETCD_MOD_DIR"
  (cd "$ETCD_MOD_DIR" && GOFLAGS='' go mod tidy) >>"$CACHE/update.log" 2>&1 || module_failure "go mod tidy (etcd)" "$CACHE/update.log"
  log "updated; commit e2e/k8s-current/{go.mod,go.sum,etcd/go.mod,etcd/go.sum}"
}

if [[ ${1:-} == --update-modules ]]; then
  mkdir -p "$CACHE"
  update_modules
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--update-modules]"

# The checked-in modules must be the versions pinned in versions.env.
requires() { grep -Eq "^(require)?[[:space:]]*$2 $3( |\$)" "$1"; } # go.mod module version
requires "$MOD_DIR/go.mod" k8s.io/kubernetes "$K8S_CURRENT_VERSION" ||
  die "e2e/k8s-current/go.mod does not require k8s.io/kubernetes $K8S_CURRENT_VERSION (versions.env): run $0 --update-modules"
requires "$ETCD_MOD_DIR/go.mod" go.etcd.io/etcd/server/v3 "$ETCD_CURRENT_VERSION" ||
  die "e2e/k8s-current/etcd/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_CURRENT_VERSION (versions.env): run $0 --update-modules"
if grep -E '^[[:space:]]+k8s\.io/[^ ]+ => ' "$MOD_DIR/go.mod" | grep -vq " $K8S_CURRENT_STAGING_VERSION\$"; then
  die "e2e/k8s-current/go.mod pins a staging module to another version than $K8S_CURRENT_STAGING_VERSION: run $0 --update-modules"
fi

if have_all; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

mkdir -p "$CACHE_ROOT" "$GOMODCACHE" "$GOCACHE"
# One build at a time per version: concurrent callers wait, then find the cache.
exec 9>"$CACHE_ROOT/.lock"
if ! flock -n 9; then
  log "another build holds $CACHE_ROOT/.lock; waiting for it"
  flock 9
fi
if have_all; then
  log "cached (built by a concurrent run): $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

need_go
log "go: $(go version) (GOTOOLCHAIN=$GOTOOLCHAIN, GOPROXY=$(go env GOPROXY))"

# ---------------------------------------------------------------- modules
K8S_PKGS=()
for b in "${K8S_BINARIES[@]}"; do K8S_PKGS+=("k8s.io/kubernetes/cmd/$b"); done
ETCD_PKG=go.etcd.io/etcd/server/v3
t0=$(date +%s)
log "fetching modules (only what a cold $GOMODCACHE lacks)"
(cd "$MOD_DIR" && go list -deps "${K8S_PKGS[@]}" >/dev/null) >"$CACHE_ROOT/modules.log" 2>&1 ||
  module_failure "fetching the modules of k8s.io/kubernetes $K8S_CURRENT_VERSION" "$CACHE_ROOT/modules.log"
(cd "$ETCD_MOD_DIR" && go list -deps "$ETCD_PKG" >/dev/null) >>"$CACHE_ROOT/modules.log" 2>&1 ||
  module_failure "fetching the modules of go.etcd.io/etcd/server/v3 $ETCD_CURRENT_VERSION" "$CACHE_ROOT/modules.log"
log "modules ready in $(( $(date +%s) - t0 ))s"

# ---------------------------------------------------------------- build (k8s and etcd in parallel)
# The version variables Kubernetes' own build (hack/lib/version.sh) sets, so that /version and
# `kubectl version` report the real release.
minor=${K8S_CURRENT_VERSION#v1.}; minor=${minor%%.*}
vars=(
  "gitVersion=$K8S_CURRENT_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean
  "gitCommit=module-k8s.io/kubernetes@$K8S_CURRENT_VERSION" "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
)
K8S_LDFLAGS="-s -w"
for v in "${vars[@]}"; do
  K8S_LDFLAGS+=" -X k8s.io/component-base/version.$v -X k8s.io/client-go/pkg/version.$v"
done
tmpbin="$CACHE_ROOT/bin.tmp.$$"
rm -rf "$tmpbin"; mkdir -p "$tmpbin"
trap 'rm -rf "$tmpbin"' EXIT
LOG_K8S="$CACHE_ROOT/build-k8s.log" LOG_ETCD="$CACHE_ROOT/build-etcd.log"
log "building ${K8S_BINARIES[*]} $K8S_CURRENT_VERSION and etcd $ETCD_CURRENT_VERSION (cold: ~45 min on 2 shared busy cores, under a minute with a warm GOCACHE; logs: $LOG_K8S, $LOG_ETCD)"
t0=$(date +%s)
(cd "$MOD_DIR" && exec go build -o "$tmpbin/" -ldflags "$K8S_LDFLAGS" "${K8S_PKGS[@]}") >"$LOG_K8S" 2>&1 &
kpid=$!
(cd "$ETCD_MOD_DIR" && exec go build -o "$tmpbin/etcd" -ldflags "-s -w" "$ETCD_PKG") >"$LOG_ETCD" 2>&1 &
epid=$!
last=$t0
while kill -0 "$kpid" 2>/dev/null || kill -0 "$epid" 2>/dev/null; do
  sleep 1
  if (( $(date +%s) - last >= 30 )); then last=$(date +%s); log "still building... $(( last - t0 ))s"; fi
done
krc=0; erc=0
wait "$kpid" || krc=$?
wait "$epid" || erc=$?
if ((krc)); then tail -n 40 "$LOG_K8S" >&2; die "go build of ${K8S_BINARIES[*]} $K8S_CURRENT_VERSION failed with $(go version) (log: $LOG_K8S)"; fi
if ((erc)); then tail -n 40 "$LOG_ETCD" >&2; die "go build of etcd $ETCD_CURRENT_VERSION failed with $(go version) (log: $LOG_ETCD)"; fi
log "build finished in $(( $(date +%s) - t0 ))s"

# ---------------------------------------------------------------- check and cache
"$tmpbin/kube-apiserver" --version 2>&1 | grep -x "Kubernetes $K8S_CURRENT_VERSION" >/dev/null ||
  die "built kube-apiserver reports '$("$tmpbin/kube-apiserver" --version 2>&1)', not Kubernetes $K8S_CURRENT_VERSION"
"$tmpbin/etcd" --version 2>&1 | grep "etcd Version: ${ETCD_CURRENT_VERSION#v}\$" >/dev/null ||
  die "built etcd reports '$("$tmpbin/etcd" --version 2>&1 | head -n1)', not $ETCD_CURRENT_VERSION"
stamp >"$tmpbin/.stamp"
rm -rf "$BIN_DIR"
mv "$tmpbin" "$BIN_DIR"
log "cached binaries in $BIN_DIR ($(du -sh "$BIN_DIR" | cut -f1))"
echo "$BIN_DIR"
