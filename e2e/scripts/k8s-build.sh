#!/usr/bin/env bash
# k8s-build.sh — build the real Kubernetes 1.20 control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler) for the e2e tests (E2E_K8S=1.20; the current plane
# is k8s-build-current.sh). TEST TOOLING, not product.
#
# Why: no package registry ships those binaries and this machine has no other network.
# Debian bookworm's `kubernetes` source package (1.20.2) still carries the full tree
# with vendor/, so we build the three binaries from it, once, and cache them under
#   ${XDG_CACHE_HOME:-~/.cache}/erlmcp-k8s/<debian-version>/bin/
# A warm machine returns immediately. /etc is never modified: the deb-src entry lives in
# a throw-away APT_CONFIG whose lists/cache sit in a temp dir.
#
# Usage: e2e/scripts/k8s-build.sh        (prints the bin dir on stdout, last line)
# Env:   K8S_DEB_VERSION   Debian source version to build (default below)
#        K8S_BUILD_KEEP=1  keep the build tree (for debugging)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
K8S_DEB_VERSION="${K8S_DEB_VERSION:-$K8S_1_20_DEB_VERSION}"
K8S_GIT_VERSION="${K8S_GIT_VERSION:-$K8S_1_20_GIT_VERSION}"   # what `kubectl version` reports for the server
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-k8s/$K8S_DEB_VERSION"
BIN_DIR="$CACHE_ROOT/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
LOG="$CACHE_ROOT/build.log"

log() { printf '[k8s-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

if have_all; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get install of build deps)"
mkdir -p "$CACHE_ROOT"

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

# ---------------------------------------------------------------- build dependencies
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 --no-install-recommends)
need_pkgs=(golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev make xz-utils ca-certificates)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get update + install of build deps: ${missing[*]} (log: $CACHE_ROOT/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  {
    apt-get -q -o DPkg::Lock::Timeout=600 update || echo "apt-get update had errors; trying install anyway"
    apt-get install "${APT_OPTS[@]}" "${missing[@]}"
  } >"$CACHE_ROOT/apt.log" 2>&1 || { tail -n 30 "$CACHE_ROOT/apt.log" >&2; die "apt-get install failed"; }
fi
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -f $REFLECT2_SRC/reflect2.go ]] || die "Debian reflect2 tree not found at $REFLECT2_SRC"

# ---------------------------------------------------------------- temp workspace
WORK="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
cleanup() {
  if [[ ${K8S_BUILD_KEEP:-0} == 1 ]]; then log "keeping $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- deb-src via private APT_CONFIG
# Mirror every `deb` entry of the machine's own sources whose suite is bookworm* as a
# deb-src entry (component main). Handles one-line .list files and deb822 .sources files.
APTDIR="$WORK/apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/parts" "$APTDIR/prefs"
SRC_LIST="$APTDIR/sources.list"
: >"$SRC_LIST"

emit_src() { # uri suite signed-by
  local uri=$1 suite=$2 key=${3:-}
  case $suite in bookworm|bookworm-*|bookworm/*) ;; *) return 0 ;; esac
  if [[ -n $key ]]; then
    echo "deb-src [signed-by=$key] $uri $suite main" >>"$SRC_LIST"
  else
    echo "deb-src $uri $suite main" >>"$SRC_LIST"
  fi
}

parse_list() { # one-line style
  local line opts uri suite key
  while read -r line; do
    line=${line%%#*}
    [[ $line =~ ^[[:space:]]*deb[[:space:]] ]] || continue
    line=${line#*deb }
    key=""
    if [[ $line =~ ^[[:space:]]*\[([^]]*)\][[:space:]]*(.*)$ ]]; then
      opts=${BASH_REMATCH[1]}; line=${BASH_REMATCH[2]}
      [[ $opts =~ signed-by=([^[:space:]]+) ]] && key=${BASH_REMATCH[1]}
    fi
    read -r uri suite _ <<<"$line"
    [[ -n ${uri:-} && -n ${suite:-} ]] && emit_src "$uri" "$suite" "$key"
  done <"$1"
}

parse_deb822() { # stanzas separated by blank lines
  local types="" uris="" suites="" key="" enabled="yes" line k v
  flush() {
    if [[ " $types " == *" deb "* && $enabled != no ]]; then
      local u s
      for u in $uris; do for s in $suites; do emit_src "$u" "$s" "$key"; done; done
    fi
    types="" uris="" suites="" key="" enabled="yes"
  }
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^[[:space:]]*# ]] && continue
    if [[ -z ${line//[[:space:]]/} ]]; then flush; continue; fi
    [[ $line =~ ^([A-Za-z-]+):[[:space:]]*(.*)$ ]] || continue
    k=${BASH_REMATCH[1],,}; v=${BASH_REMATCH[2]}
    case $k in
      types) types=$v ;; uris) uris=$v ;; suites) suites=$v ;;
      signed-by) key=$v ;; enabled) enabled=${v,,} ;;
    esac
  done <"$1"
  flush
}

[[ -f /etc/apt/sources.list ]] && parse_list /etc/apt/sources.list
for f in /etc/apt/sources.list.d/*.list; do [[ -f $f ]] && parse_list "$f"; done
for f in /etc/apt/sources.list.d/*.sources; do [[ -f $f ]] && parse_deb822 "$f"; done
if ! grep -q ' bookworm main' "$SRC_LIST"; then
  log "no bookworm entry in the machine's apt sources; falling back to http://deb.debian.org/debian"
  echo "deb-src http://deb.debian.org/debian bookworm main" >>"$SRC_LIST"
fi
sort -u -o "$SRC_LIST" "$SRC_LIST"
log "temporary deb-src entries:"; sed 's/^/[k8s-build]   /' "$SRC_LIST" >&2

cat >"$APTDIR/apt.conf" <<EOF
Dir::Etc::sourcelist "$SRC_LIST";
Dir::Etc::sourceparts "$APTDIR/parts";
Dir::Etc::preferencesparts "$APTDIR/prefs";
Dir::State::lists "$APTDIR/lists";
Dir::Cache "$APTDIR/cache";
APT::Sandbox::User "root";
EOF
export APT_CONFIG="$APTDIR/apt.conf"

log "fetching source indexes (private lists in $APTDIR)"
apt-get -q update >"$WORK/apt-update.log" 2>&1 || { tail -n 30 "$WORK/apt-update.log" >&2; die "apt-get update (private) failed"; }

SRCDIR="$WORK/src"
mkdir -p "$SRCDIR"
log "apt-get source --download-only kubernetes=$K8S_DEB_VERSION"
( cd "$SRCDIR" && apt-get -q source --download-only "kubernetes=$K8S_DEB_VERSION" ) >"$WORK/apt-source.log" 2>&1 \
  || { tail -n 30 "$WORK/apt-source.log" >&2; die "could not download source kubernetes=$K8S_DEB_VERSION"; }
unset APT_CONFIG

dsc=$(ls "$SRCDIR"/kubernetes_*.dsc)
log "unpacking $(basename "$dsc")"
( cd "$SRCDIR" && dpkg-source -x "$dsc" tree ) >"$WORK/dpkg-source.log" 2>&1 \
  || { tail -n 30 "$WORK/dpkg-source.log" >&2; die "dpkg-source -x failed"; }
TREE="$SRCDIR/tree"
[[ -d $TREE/cmd/kube-apiserver && -d $TREE/vendor ]] || die "source tree lacks cmd/kube-apiserver or vendor/"

# REQUIRED: the vendored reflect2 is too old for go 1.18+ and the apiserver segfaults in
# json-iterator on server-side apply of custom resources with labels. Use Debian's 1.0.2.
log "replacing vendor/github.com/modern-go/reflect2 with Debian's ($REFLECT2_SRC)"
rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
mkdir -p "$TREE/vendor/github.com/modern-go/reflect2"
cp -a "$REFLECT2_SRC/." "$TREE/vendor/github.com/modern-go/reflect2/"
# Drop test files that may import packages absent from vendor/.
find "$TREE/vendor/github.com/modern-go/reflect2" -name '*_test.go' -delete

# ---------------------------------------------------------------- build
# Kubernetes 1.20 builds only with Debian's Go 1.19 (GOPATH mode, vendor/): name it explicitly,
# since `go` on PATH may be a much newer toolchain that refuses this tree.
GO119=/usr/lib/go-1.19/bin
[[ -x $GO119/go ]] || die "Debian's Go 1.19 not found at $GO119/go (package golang-1.19-go)"
export PATH="$GO119:$PATH" GOTOOLCHAIN=local GOROOT="${GO119%/bin}"
: >"$LOG"
log "go: $(go version)"
log "building ${BINARIES[*]} (GOPATH mode, ~5-7 min cold on 2 cores); log: $LOG"
start=$(date +%s)
whats=""
for b in "${BINARIES[@]}"; do whats+="cmd/$b "; done
(
  cd "$TREE"
  export KUBE_GIT_VERSION="$K8S_GIT_VERSION" KUBE_GIT_TREE_STATE=clean \
         KUBE_GIT_COMMIT=debian-"$K8S_DEB_VERSION" \
         GO111MODULE=off GOFLAGS='' GOPROXY=off KUBE_VERBOSE=1
  exec make WHAT="${whats% }"
) >>"$LOG" 2>&1 &
mpid=$!
while kill -0 "$mpid" 2>/dev/null; do
  sleep 30
  kill -0 "$mpid" 2>/dev/null && log "still building... $(( $(date +%s) - start ))s"
done
if ! wait "$mpid"; then
  log "build FAILED after $(( $(date +%s) - start ))s; tail of $LOG:"
  tail -n 60 "$LOG" >&2
  exit 1
fi
log "build finished in $(( $(date +%s) - start ))s"

OUT="$TREE/_output/bin"
[[ -d $OUT ]] || OUT="$TREE/_output/local/bin/linux/amd64"
tmpbin="$CACHE_ROOT/bin.tmp.$$"
rm -rf "$tmpbin"; mkdir -p "$tmpbin"
for b in "${BINARIES[@]}"; do
  [[ -x "$OUT/$b" ]] || { tail -n 60 "$LOG" >&2; die "missing $OUT/$b after build"; }
  cp "$OUT/$b" "$tmpbin/$b"
done
rm -rf "$BIN_DIR"
mv "$tmpbin" "$BIN_DIR"
"$BIN_DIR/kube-apiserver" --version >&2 || true
log "cached binaries in $BIN_DIR"
echo "$BIN_DIR"
