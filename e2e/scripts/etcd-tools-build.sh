#!/usr/bin/env bash
# etcd-tools-build.sh — the etcd client tools (etcdctl, etcdutl) of the plane's etcd, for the
# disaster-recovery drills (snapshot save / restore). TEST TOOLING, not product.
#
# E2E_K8S=current (default): etcdctl and etcdutl built from their Go modules
#   (go.etcd.io/etcd/etcdctl/v3, go.etcd.io/etcd/etcdutl/v3) at ETCD_CURRENT_VERSION (versions.env),
#   pinned by our module e2e/k8s-current/etcd-tools/go.mod, cached under
#   ${XDG_CACHE_HOME:-~/.cache}/erlmcp-k8s/etcd-tools-<version>/bin/ with their own .stamp.
#   Deliberately separate from k8s-build-current.sh: its stamp covers only the Kubernetes and etcd
#   modules, so adding or rebuilding these tools never invalidates that (40+ minute) build. The Go
#   caches are shared with it (most of these modules are etcd's own).
# E2E_K8S=1.20: Debian's etcd-client (etcdctl 3.4, beside Debian's etcd-server 3.4), apt-installed
#   if missing; 3.4 has no etcdutl (`etcdctl snapshot restore` does the restore there).
#
# Usage: e2e/scripts/etcd-tools-build.sh                   (prints the bin dir as the last stdout line)
#        e2e/scripts/etcd-tools-build.sh --update-modules  (rewrite etcd-tools/go.mod, go.sum from versions.env)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
PLANE="${E2E_K8S:-current}"
MOD_DIR="$(cd "$HERE/../k8s-current/etcd-tools" && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-k8s"
ROOT="$CACHE/etcd-tools-$ETCD_CURRENT_VERSION"
BIN_DIR="$ROOT/bin"
TOOLS=(etcdctl etcdutl)

log() { printf '[etcd-tools-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $PLANE == 1.20 ]]; then
  if ! command -v etcdctl >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "etcdctl missing and not root (apt-get install etcd-client)"
    log "apt-get install etcd-client"
    export DEBIAN_FRONTEND=noninteractive
    {
      apt-get -q -o DPkg::Lock::Timeout=600 update || echo "apt-get update had errors; trying install anyway"
      apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends etcd-client
    } >"$CACHE/etcd-client.apt.log" 2>&1 || { tail -n 30 "$CACHE/etcd-client.apt.log" >&2; die "apt-get install etcd-client failed"; }
  fi
  # Captured first: `grep -q` closing the pipe early would fail the pipeline (pipefail).
  have=$(ETCDCTL_API=3 etcdctl version 2>&1 || true)
  [[ $have == *"etcdctl version: 3.4."* ]] ||
    die "etcdctl on PATH is not 3.4 (${have%%$'\n'*}): the 1.20 plane runs Debian's etcd 3.4"
  dirname "$(command -v etcdctl)"
  exit 0
fi
[[ $PLANE == current ]] || die "E2E_K8S=$PLANE: use current or 1.20"

export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0 GOWORK=off

if [[ ${1:-} == --update-modules ]]; then
  command -v go >/dev/null 2>&1 || die "Go not found on PATH"
  mkdir -p "$GOMODCACHE" "$GOCACHE"
  {
    echo "// etcdctl and etcdutl for the current control plane of the e2e test bed (TEST TOOLING), at the"
    echo "// version of its etcd (ETCD_CURRENT_VERSION in e2e/scripts/versions.env): written by"
    echo "// e2e/scripts/etcd-tools-build.sh --update-modules. The root package of each module is its main."
    echo "module erlmcp.test/e2e/k8s-current/etcd-tools"
    echo
    echo "go $(awk '$1 == "go" {print $2; exit}' "$MOD_DIR/../etcd/go.mod")"
    echo
    echo "require ("
    for t in "${TOOLS[@]}"; do echo "	go.etcd.io/etcd/$t/v3 $ETCD_CURRENT_VERSION"; done
    echo ")"
    echo
    echo "tool ("
    for t in "${TOOLS[@]}"; do echo "	go.etcd.io/etcd/$t/v3"; done
    echo ")"
  } >"$MOD_DIR/go.mod"
  rm -f "$MOD_DIR/go.sum"
  (cd "$MOD_DIR" && go mod tidy) >&2 || die "go mod tidy in $MOD_DIR failed (is the Go module proxy $(go env GOPROXY) reachable?)"
  log "updated; commit e2e/k8s-current/etcd-tools/{go.mod,go.sum}"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [--update-modules]"

for t in "${TOOLS[@]}"; do
  grep -Eq "^(require)?[[:space:]]*go\.etcd\.io/etcd/$t/v3 $ETCD_CURRENT_VERSION( |\$)" "$MOD_DIR/go.mod" ||
    die "e2e/k8s-current/etcd-tools/go.mod does not require go.etcd.io/etcd/$t/v3 $ETCD_CURRENT_VERSION (versions.env): run $0 --update-modules"
done
stamp() { printf 'etcd-tools=%s mods=%s\n' "$ETCD_CURRENT_VERSION" "$(cat "$MOD_DIR/go.mod" "$MOD_DIR/go.sum" | sha256sum | cut -c1-16)"; }
have_all() {
  local t
  for t in "${TOOLS[@]}"; do [[ -x $BIN_DIR/$t ]] || return 1; done
  [[ "$(cat "$BIN_DIR/.stamp" 2>/dev/null)" == "$(stamp)" ]]
}
if have_all; then echo "$BIN_DIR"; exit 0; fi

mkdir -p "$ROOT" "$GOMODCACHE" "$GOCACHE"
exec 9>"$ROOT/.lock"
flock 9 # one build at a time; a waiting caller then finds the cache
if have_all; then echo "$BIN_DIR"; exit 0; fi
command -v go >/dev/null 2>&1 || die "Go not found on PATH: etcdctl/etcdutl $ETCD_CURRENT_VERSION are built from their Go modules"

tmp="$ROOT/bin.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s)
log "building ${TOOLS[*]} $ETCD_CURRENT_VERSION (log: $ROOT/build.log)"
for t in "${TOOLS[@]}"; do
  (cd "$MOD_DIR" && nice -n 10 go build -trimpath -buildvcs=false -mod=readonly -ldflags '-s -w' \
    -o "$tmp/$t" "go.etcd.io/etcd/$t/v3") >>"$ROOT/build.log" 2>&1 ||
    { tail -n 30 "$ROOT/build.log" >&2; die "go build of $t failed (modules come from $(go env GOPROXY) on a cold cache)"; }
done
for t in "${TOOLS[@]}"; do
  have=$("$tmp/$t" version 2>&1 || true)
  [[ $'\n'$have$'\n' == *$'\n'"$t version: ${ETCD_CURRENT_VERSION#v}"$'\n'* ]] ||
    die "built $t reports '${have%%$'\n'*}', not $ETCD_CURRENT_VERSION"
done
stamp >"$tmp/.stamp"
rm -rf "$BIN_DIR"
mv "$tmp" "$BIN_DIR"
log "built in $(( $(date +%s) - t0 ))s: $BIN_DIR"
echo "$BIN_DIR"
