#!/usr/bin/env bash
# k8s-up.sh — start a throw-away, real Kubernetes control plane on 127.0.0.1 for the e2e
# tests: etcd + kube-apiserver + kube-controller-manager + kube-scheduler.
# E2E_K8S chooses the plane: `current` (default; k8s-build-current.sh, from Go modules, with its
# own etcd) or `1.20` (k8s-build.sh, from Debian's source, Debian's etcd). Versions: versions.env.
# TEST TOOLING, not product. There is no kubelet: pods get created and scheduled-or-Pending,
# never run. Everything (certs, keys, tokens, etcd data, logs, PIDs) lives in STATE_DIR and
# every port is a free non-default one, so nothing clashes with the host or parallel runs.
#
# Usage: e2e/scripts/k8s-up.sh [STATE_DIR]      (default: $PWD/.cache/k8s)
# Stdout: the admin kubeconfig path (STATE_DIR/kubeconfig), as the only/last line.
# Stderr: progress. Logs: STATE_DIR/logs/<component>.log. Stop with k8s-down.sh STATE_DIR.
# Also writes STATE_DIR/env (K8S_API_URL, K8S_ADMIN_TOKEN, K8S_CA_FILE, ports) for scripts.
# If STATE_DIR already holds a healthy cluster of the same E2E_K8S started by this script, it
# is reused; one of the other version is stopped and wiped first.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
PLANE="${E2E_K8S:-current}"
case $PLANE in
  current | 1.20) ;;
  *) printf '[k8s-up] ERROR: E2E_K8S=%s: use current or 1.20\n' "$PLANE" >&2; exit 1 ;;
esac
STATE_DIR="${1:-$PWD/.cache/k8s}"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
MARKER="$STATE_DIR/.erlmcp-k8s-state"
PIDS="$STATE_DIR/pids"
LOGS="$STATE_DIR/logs"
PKI="$STATE_DIR/pki"
KUBECONFIG_OUT="$STATE_DIR/kubeconfig"
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
READY_TIMEOUT="${K8S_READY_TIMEOUT:-90}"

log() { printf '[k8s-up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t0=$(date +%s)

# Is the recorded PID alive and really ours (its command line mentions STATE_DIR)?
ours() { # name
  local f="$PIDS/$1.pid" pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$STATE_DIR" >/dev/null
}

# ------------------------------------------------------------------ reuse / stale state
# The marker holds the plane (E2E_K8S) that made the dir: never reuse the other version's.
if [[ -f $MARKER && -f $STATE_DIR/env && "$(cat "$MARKER")" == "plane=$PLANE" ]] && ours etcd && ours kube-apiserver &&
   ours kube-controller-manager && ours kube-scheduler; then
  # shellcheck disable=SC1091
  source "$STATE_DIR/env"
  if curl -sf --max-time 5 --cacert "$K8S_CA_FILE" -H "Authorization: Bearer $K8S_ADMIN_TOKEN" \
       "$K8S_API_URL/readyz" >/dev/null; then
    log "reusing running $PLANE control plane in $STATE_DIR ($K8S_API_URL)"
    echo "$KUBECONFIG_OUT"
    exit 0
  fi
fi
if [[ -n "$(ls -A "$STATE_DIR")" ]]; then
  [[ -f $MARKER ]] || die "$STATE_DIR is not empty and was not made by k8s-up.sh; refusing to wipe it"
  log "stale state in $STATE_DIR ($(cat "$MARKER" 2>/dev/null || true), E2E_K8S=$PLANE): stopping leftovers and wiping it"
  "$HERE/k8s-down.sh" "$STATE_DIR" >&2
  mkdir -p "$STATE_DIR"
fi
echo "plane=$PLANE" >"$MARKER"
mkdir -p "$PIDS" "$LOGS" "$PKI" "$STATE_DIR/etcd"
chmod 700 "$STATE_DIR" "$PKI" "$STATE_DIR/etcd"

# ------------------------------------------------------------------ binaries & deps
if [[ $PLANE == current ]]; then BUILD=k8s-build-current.sh; else BUILD=k8s-build.sh; fi
BIN="$("$HERE/$BUILD" | tail -n1)" || die "$BUILD failed (see above): no $PLANE control plane"
[[ -x $BIN/kube-apiserver ]] || die "$BUILD did not give a bin dir (got '$BIN')"
missing=()
# 1.20 runs on Debian's etcd 3.4; current servers want etcd >= 3.5, built beside them.
[[ $PLANE == current ]] || command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]} and not root"
  log "apt-get install ${missing[*]} (log: $LOGS/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  {
    apt-get -q -o DPkg::Lock::Timeout=600 update || echo "apt-get update had errors; trying install anyway"
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
  } >"$LOGS/apt.log" 2>&1 || { tail -n 30 "$LOGS/apt.log" >&2; die "apt-get install failed"; }
fi
if [[ $PLANE == current ]]; then ETCD="$BIN/etcd"; else ETCD="$(command -v etcd)"; fi
# Flags that only 1.20 has: its controller-manager and scheduler still open insecure ports.
OLD_FLAGS=()
[[ $PLANE == 1.20 ]] && OLD_FLAGS=(--port 0)

# ------------------------------------------------------------------ free ports
# Listening TCP ports from /proc (no iproute2 needed), plus the ones we already picked.
taken=" "
for f in /proc/net/tcp /proc/net/tcp6; do
  [[ -r $f ]] || continue
  while read -r _ laddr _ st _; do
    [[ $st == 0A ]] && taken+="$((16#${laddr##*:})) "
  done < <(tail -n +2 "$f")
done
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    [[ $taken == *" $p "* ]] && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    taken+="$p "
    echo "$p"; return 0
  done
  die "no free port found"
}
ETCD_PORT=$(pick_port); ETCD_PEER_PORT=$(pick_port); API_PORT=$(pick_port)
KCM_PORT=$(pick_port); SCHED_PORT=$(pick_port)
API_URL="https://127.0.0.1:$API_PORT"
log "ports: etcd $ETCD_PORT/$ETCD_PEER_PORT apiserver $API_PORT controller-manager $KCM_PORT scheduler $SCHED_PORT"

# ------------------------------------------------------------------ PKI (fresh per run)
ossl() { openssl "$@" >>"$LOGS/openssl.log" 2>&1 || { tail -n 20 "$LOGS/openssl.log" >&2; die "openssl $1 failed"; }; }
ossl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=erlmcp-e2e-ca" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
cat >"$PKI/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
ossl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr"
ossl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 3 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt"
# Front-proxy (request-header) CA + client cert: for aggregated APIs, and so that the
# controller-manager/scheduler authn delegation finds a requestheader CA instead of
# logging "missing content for CA bundle" errors every few ms.
cat >"$PKI/client.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
ossl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=erlmcp-e2e-front-proxy-ca" \
  -keyout "$PKI/front-proxy-ca.key" -out "$PKI/front-proxy-ca.crt"
ossl req -newkey rsa:2048 -nodes -subj "/CN=front-proxy-client" \
  -keyout "$PKI/front-proxy-client.key" -out "$PKI/front-proxy-client.csr"
ossl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" \
  -CAkey "$PKI/front-proxy-ca.key" -CAcreateserial -days 3 -extfile "$PKI/client.ext" \
  -out "$PKI/front-proxy-client.crt"
ossl genrsa -out "$PKI/sa.key" 2048
ossl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

tok() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
ADMIN_TOKEN=$(tok); KCM_TOKEN=$(tok); SCHED_TOKEN=$(tok)
cat >"$PKI/tokens.csv" <<EOF
$ADMIN_TOKEN,admin,uid-admin,"system:masters"
$KCM_TOKEN,system:kube-controller-manager,uid-kube-controller-manager
$SCHED_TOKEN,system:kube-scheduler,uid-kube-scheduler
EOF
chmod 600 "$PKI"/*

CA_B64=$(base64 -w0 <"$PKI/ca.crt")
write_kubeconfig() { # file user token
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: erlmcp-e2e
  cluster:
    server: $API_URL
    certificate-authority-data: $CA_B64
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@erlmcp-e2e
  context:
    cluster: erlmcp-e2e
    user: $2
    namespace: default
current-context: $2@erlmcp-e2e
EOF
  chmod 600 "$1"
}
write_kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" system:kube-controller-manager "$KCM_TOKEN"
write_kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" system:kube-scheduler "$SCHED_TOKEN"

# ------------------------------------------------------------------ process control
fail() {
  log "ERROR: $*"
  local f
  for f in "$LOGS"/*.log; do
    [[ -s $f ]] || continue
    case ${f##*/} in openssl.log|apt.log) continue ;; esac
    log "---- tail of $f"; tail -n 25 "$f" >&2
  done
  log "stopping what was started (state kept in $STATE_DIR for inspection)"
  K8S_DOWN_KEEP_STATE=1 "$HERE/k8s-down.sh" "$STATE_DIR" >&2 || true
  exit 1
}
start() { # name cmd...
  local name=$1; shift
  # setsid: own session, so a signal to the caller's process group doesn't take it down;
  # the script has no job control, so setsid execs in place and $! is the real PID.
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  # The command line, NUL-separated: k8s-etcd.sh restore restarts the plane from it.
  printf '%s\0' "$@" >"$PIDS/$name.cmd"
  log "started $name (pid $!)"
}
wait_for() { # name timeout cmd...  (polls until cmd succeeds; fails if the process died)
  local name=$1 timeout=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    # Read twice more before declaring it dead: /proc/PID/cmdline can read empty while the
    # process is mid-exec (setsid -> the binary), which once failed a healthy start.
    ours "$name" || { sleep 0.3; ours "$name"; } || { sleep 1; ours "$name"; } || fail "$name exited"
    (( $(date +%s) < deadline )) || fail "$name not healthy after ${timeout}s"
    sleep 0.5
  done
}
api_get() { # path
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$API_URL$1"
}

# ------------------------------------------------------------------ etcd
start etcd "$ETCD" --name erlmcp-e2e --data-dir "$STATE_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "erlmcp-e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state new --initial-cluster-token "erlmcp-e2e-$$" \
  --quota-backend-bytes 1073741824 --logger zap --log-outputs stderr --log-level warn
wait_for etcd "$READY_TIMEOUT" curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

# ------------------------------------------------------------------ kube-apiserver
# Admission: the 1.20 defaults (NamespaceLifecycle, LimitRanger, ServiceAccount, Priority,
# DefaultTolerationSeconds, DefaultStorageClass, ResourceQuota, webhooks, ...) minus nothing;
# no NodeRestriction (no kubelets). Endpoint reconciler off: the only endpoint would be
# 127.0.0.1, which Endpoints validation rejects (loopback), so it would just log errors.
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
  --cert-dir "$STATE_DIR/apiserver-certs" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User \
  --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$PKI/front-proxy-client.crt" \
  --proxy-client-key-file "$PKI/front-proxy-client.key" \
  --token-auth-file "$PKI/tokens.csv" \
  --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI/sa.pub" \
  --service-account-signing-key-file "$PKI/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
  --endpoint-reconciler-type none \
  --allow-privileged=true \
  --profiling=false \
  --v 1
wait_for kube-apiserver "$READY_TIMEOUT" api_get /readyz
log "kube-apiserver ready at $API_URL ($(( $(date +%s) - t0 ))s)"

# ------------------------------------------------------------------ controller-manager, scheduler
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" "${OLD_FLAGS[@]}" \
  --cert-dir "$STATE_DIR/kcm-certs" \
  --controllers '*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$PKI/sa.key" \
  --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --leader-elect=false \
  --profiling=false \
  --v 1
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" "${OLD_FLAGS[@]}" \
  --cert-dir "$STATE_DIR/scheduler-certs" \
  --leader-elect=false \
  --profiling=false \
  --v 1
wait_for kube-controller-manager "$READY_TIMEOUT" curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz"
wait_for kube-scheduler "$READY_TIMEOUT" curl -skf --max-time 2 "https://127.0.0.1:$SCHED_PORT/healthz"

# The `default` ServiceAccount (service-account controller) must exist before pods can be
# admitted in "default". On 1.20 pods mount its legacy token Secret (token controller); current
# servers create no such Secret (1.24+) and pods mount a projected token plus the
# kube-root-ca.crt ConfigMap (root-ca-cert publisher).
if [[ $PLANE == 1.20 ]]; then
  sa_ready() { api_get /api/v1/namespaces/default/serviceaccounts/default | grep '"secrets"' >/dev/null; }
else
  sa_ready() {
    api_get /api/v1/namespaces/default/serviceaccounts/default >/dev/null &&
      api_get /api/v1/namespaces/default/configmaps/kube-root-ca.crt >/dev/null
  }
fi
wait_for kube-controller-manager "$READY_TIMEOUT" sa_ready

# ------------------------------------------------------------------ outputs
write_kubeconfig "$KUBECONFIG_OUT" admin "$ADMIN_TOKEN"
cat >"$STATE_DIR/env" <<EOF
K8S_API_URL=$API_URL
K8S_ADMIN_TOKEN=$ADMIN_TOKEN
K8S_CA_FILE=$PKI/ca.crt
K8S_KUBECONFIG=$KUBECONFIG_OUT
K8S_ETCD_URL=http://127.0.0.1:$ETCD_PORT
K8S_CONTROLLER_MANAGER_PORT=$KCM_PORT
K8S_SCHEDULER_PORT=$SCHED_PORT
K8S_BIN_DIR=$BIN
K8S_PLANE=$PLANE
EOF
chmod 600 "$STATE_DIR/env"
ver=$(api_get /version | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
log "control plane $ver up in $(( $(date +%s) - t0 ))s; state in $STATE_DIR"
echo "$KUBECONFIG_OUT"
