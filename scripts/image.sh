#!/usr/bin/env bash
# image.sh [TAG] builds the controller image (default tag alphaswarm:dev)
# from deploy/docker/Dockerfile without pulling a base image: it compiles the
# two static binaries, alphaswarm (the CLI, the entrypoint: `alphaswarm serve`
# runs alphaswarmd beside it) and alphaswarmd (the control plane)
# (CGO_ENABLED=0) for linux/$GOARCH, copies the build host's CA
# bundle ($CA_BUNDLE, default /etc/ssl/certs/ca-certificates.crt) and runs
# `docker build` on a context made of just those files.
set -euo pipefail
tag=${1:-alphaswarm:dev}
root=$(cd "$(dirname "$0")/.." && pwd)
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -r "$ca" ] || { echo "image.sh: no CA bundle at $ca (set CA_BUNDLE)" >&2; exit 1; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
# The toolchain stamps vcs.revision itself in a git checkout; in a git
# worktree it cannot, so the revision is passed as a fallback.
rev=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-$(go env GOARCH)} \
	go build -trimpath -buildvcs=true \
	-ldflags "-s -w -X github.com/alphaswarm/controller/internal/cli.Revision=$rev" \
	-o "$ctx/" ./cmd/alphaswarm ./cmd/alphaswarmd)
cp "$ca" "$ctx/ca-certificates.crt"
chmod 0644 "$ctx/ca-certificates.crt"
mkdir -m 0700 "$ctx/data"
cp "$root/deploy/docker/Dockerfile" "$ctx/Dockerfile"
docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag"
