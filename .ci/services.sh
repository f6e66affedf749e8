#!/usr/bin/env bash
# Makes sure the services the tests need are present and answering on a
# fresh machine: a Docker Engine and the PostgreSQL 15 server binaries
# (the tests start their own throwaway clusters with initdb/pg_ctl).
set -euo pipefail

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- Docker Engine -----------------------------------------------------------
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "ci: installing Debian's docker.io"
    apt_install docker.io
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then
    :
  elif command -v service >/dev/null 2>&1 && service docker start >/dev/null 2>&1; then
    :
  else
    echo "ci: starting dockerd in the background"
    (dockerd >/tmp/alphaswarm-ci-dockerd.log 2>&1 &)
  fi
  for _ in $(seq 1 60); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 1
  done
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "ci: installing Debian's docker-compose (compose profiles)"
  apt_install docker-compose
fi
echo "ci: docker engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# --- PostgreSQL server binaries ----------------------------------------------
if ! command -v initdb >/dev/null 2>&1 && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo "ci: installing PostgreSQL 15"
  apt_install postgresql-15
fi
if ! command -v initdb >/dev/null 2>&1; then
  export PATH="/usr/lib/postgresql/15/bin:$PATH"
fi
echo "ci: $(initdb --version)"
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres

# --- Kubernetes control plane binaries (provider/kubernetes real-API tests) --
# Built once from the Go module proxy into a cache outside the repository.
ALPHASWARM_K8S_BIN="$(bash .ci/k8s-binaries.sh | tail -n 1)"
export ALPHASWARM_K8S_BIN
echo "ci: kubernetes binaries in $ALPHASWARM_K8S_BIN"

# --- Headless Chromium (dashboard browser tests) ------------------------------
if ! command -v chromium >/dev/null 2>&1; then
  echo "ci: installing Debian's chromium"
  apt_install chromium
fi
echo "ci: $(chromium --version 2>/dev/null || echo 'chromium missing')"
