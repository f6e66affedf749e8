#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the kubernetes provider's
# real-API-server tests need (kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok) from the Go module proxy, into a cache outside the
# repository keyed by version, and installs Debian's etcd. Rebuilds only what
# is missing. Prints the bin directory on its last line.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging
# modules with local paths), so a throwaway wrapper module requires it and
# replaces every staging module with its published v0.X.Y.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${ALPHASWARM_K8S_CACHE:-/var/cache/alphaswarm/k8s-$K8S_VERSION}"
BIN="$CACHE/bin"
mkdir -p "$BIN"
export PATH="/usr/local/go/bin:$PATH"

if ! command -v etcd >/dev/null 2>&1; then
  echo "k8s: installing Debian's etcd-server" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

missing=()
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  [ -x "$BIN/$b" ] || missing+=("$b")
done
if [ "${#missing[@]}" -gt 0 ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module alphaswarm.local/k8sbuild"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" | awk '{print $1}' |
      grep -v -e '^k8s.io/sample-controller$' -e '^k8s.io/sample-cli-plugin$' |
      while read -r m; do echo "replace $m => $m $STAGING_VERSION"; done
  } > "$work/go.mod"
  for b in "${missing[@]}"; do
    echo "k8s: building $b $K8S_VERSION (this takes minutes the first time)" >&2
    (cd "$work" && GOFLAGS=-mod=mod go build -trimpath \
      -ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION" \
      -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b" >&2) && mv "$BIN/$b.tmp" "$BIN/$b"
  done
fi
if [ ! -x "$BIN/kwok" ]; then
  echo "k8s: building kwok $KWOK_VERSION" >&2
  GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
fi
echo "$BIN"
