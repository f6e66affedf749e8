#!/usr/bin/env bash
# release.sh [OUTDIR] builds static release binaries for linux and darwin
# on amd64 and arm64 into OUTDIR (default dist/): per platform one archive
# alphaswarm-<version>-<os>-<arch>.tar.gz holding alphaswarm (the CLI) and
# alphaswarmd (the control plane, which `alphaswarm serve` runs from the
# same directory), with SHA256SUMS beside them. Not run by CI. The version
# is the exact git tag at HEAD, else `git describe`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
rev=$(git -C "$root" rev-parse HEAD)
version=$(git -C "$root" describe --tags --exact-match 2>/dev/null || git -C "$root" describe --tags --always --dirty)
mkdir -p "$out"
for platform in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64; do
	os=${platform%/*} arch=${platform#*/}
	name="alphaswarm-$version-$os-$arch"
	echo "building $name" >&2
	mkdir -p "$out/$name"
	(cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=true \
		-ldflags "-s -w -X github.com/alphaswarm/controller/internal/cli.Version=$version -X github.com/alphaswarm/controller/internal/cli.Revision=$rev" \
		-o "$out/$name/" ./cmd/alphaswarm ./cmd/alphaswarmd)
	tar -C "$out" -czf "$out/$name.tar.gz" "$name"
	rm -r "${out:?}/$name"
done
(cd "$out" && sha256sum alphaswarm-"$version"-*.tar.gz > SHA256SUMS && cat SHA256SUMS)
