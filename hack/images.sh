#!/usr/bin/env bash
# images.sh: builds kiln's executor images with kiln (deploy/image/Dockerfile).
#   PLATFORM  target platform (default linux/amd64)
#   OUT       output directory (default bin/images): OCI layouts OUT/executor and
#             OUT/debug, docker-loadable tarballs OUT/executor.tar and OUT/debug.tar
#   REPO      image repository (default kiln); PUSH=1 pushes REPO:executor and
#             REPO:debug instead of writing only files (with the usual credentials)
#   BUSYBOX   static busybox for the debug image (default /bin/busybox from
#             Debian's busybox-static; give an arm64 one for linux/arm64)
# Builds are reproducible: SOURCE_DATE_EPOCH is the last commit's time, so the
# same checkout gives the same digests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PLATFORM="${PLATFORM:-linux/amd64}"
OUT="${OUT:-bin/images}"
REPO="${REPO:-kiln}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
ARCH="${PLATFORM#linux/}"; ARCH="${ARCH%%/*}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

make --no-print-directory build
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/rootfs/kiln/.docker" "$ctx/rootfs/kiln/ssl/certs" "$ctx/rootfs/kaniko" \
  "$ctx/rootfs/workspace" "$ctx/rootfs/root" "$ctx/rootfs/tmp" "$ctx/busybox-linux-$ARCH"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0700 "$ctx/rootfs/root"
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags "-s -w -X github.com/kiln-build/kiln/pkg/cli.Version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)" \
  -o "$ctx/bin/kiln-linux-$ARCH" ./cmd/kiln
ln -s executor "$ctx/rootfs/kiln/kiln"
ln -s /kiln/executor "$ctx/rootfs/kaniko/executor"
ln -s /kiln/.docker "$ctx/rootfs/kaniko/.docker"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/kiln/ssl/certs/ca-certificates.crt" \
  || { echo "images: /etc/ssl/certs/ca-certificates.crt missing (Debian package ca-certificates)" >&2; exit 1; }
[[ -x "$BUSYBOX" ]] || { echo "images: $BUSYBOX missing (Debian package busybox-static, or set BUSYBOX)" >&2; exit 1; }
cp "$BUSYBOX" "$ctx/busybox-linux-$ARCH/busybox"
for applet in $("$BUSYBOX" --list 2>/dev/null || true); do
  [[ "$applet" == busybox ]] || ln -s busybox "$ctx/busybox-linux-$ARCH/$applet"
done
# Files from git checkouts and cp have this machine's times and modes: make
# them canonical so the digest depends on content only.
find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
for target in executor debug; do
  rm -rf "$OUT/$target" "$OUT/$target.tar"
  args=(build --context "$ctx" --dockerfile deploy/image/Dockerfile --target "$target" --custom-platform "$PLATFORM"
        --reproducible --destination "$REPO:$target" --digest-file "$OUT/$target.digest")
  if [[ "${PUSH:-0}" == 1 ]]; then
    bin/kiln "${args[@]}"
  else
    bin/kiln "${args[@]}" --no-push --oci-layout-path "$OUT/$target" --tar-path "$OUT/$target.tar"
  fi
  echo "$REPO:$target $(cat "$OUT/$target.digest")"
done
