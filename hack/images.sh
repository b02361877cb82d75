#!/usr/bin/env bash
# images.sh: builds kiln's executor images with kiln (deploy/image/Dockerfile).
#   PLATFORM     target platform (default linux/amd64)
#   OUT          output directory (default bin/images): OCI layouts OUT/executor and
#                OUT/debug, docker-loadable tarballs OUT/executor.tar and OUT/debug.tar,
#                and the digests OUT/executor.digest and OUT/debug.digest
#   REPO         image repository (default kiln), or several separated by spaces
#   EXECUTOR_TAG, DEBUG_TAG
#                the images' tags (default executor and debug)
#   PUSH=1       push REPO:EXECUTOR_TAG and REPO:DEBUG_TAG (with the usual credentials)
#                instead of writing the layouts and tarballs
#   KILN_FLAGS   more flags of kiln build, e.g. "--insecure-registry 127.0.0.1:5001"
#   BINARY       the static kiln binary for PLATFORM to put in the images (default: built here)
#   KILN         the kiln that builds them (default: bin/kiln, from make build)
#   BUSYBOX      static busybox for PLATFORM, for the debug image (default /bin/busybox from
#                Debian's busybox-static, which is only right for this machine's platform;
#                hack/busybox.sh ARCH fetches Debian's for another one)
# Both binaries are checked: ELF executables for PLATFORM's architecture that
# need no dynamic loader, since the images are FROM scratch.
# Builds are reproducible: SOURCE_DATE_EPOCH is the last commit's time, so the
# same checkout gives the same digests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PLATFORM="${PLATFORM:-linux/amd64}"
OUT="${OUT:-bin/images}"
REPO="${REPO:-kiln}"
EXECUTOR_TAG="${EXECUTOR_TAG:-executor}"
DEBUG_TAG="${DEBUG_TAG:-debug}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
ARCH="${PLATFORM#linux/}"; ARCH="${ARCH%%/*}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(hack/version.sh epoch)}"
die() { echo "images: $*" >&2; exit 1; }
[[ "$PLATFORM" == linux/* ]] || die "PLATFORM \"$PLATFORM\": kiln's images are for linux/ARCH"
read -r -a repos <<<"$REPO"
read -r -a kiln_flags <<<"${KILN_FLAGS:-}"
[[ ${#repos[@]} -gt 0 ]] || die "REPO is empty"

kiln="${KILN:-}"
[[ -z "$kiln" || "$kiln" == /* ]] || die "KILN \"$kiln\": give an absolute path"
if [[ -z "$kiln" ]]; then
  make --no-print-directory build
  kiln=bin/kiln
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ctx="$work/context"
tool="${RELEASETOOL:-}"
if [[ -z "$tool" ]]; then
  go build -o "$work/releasetool" ./internal/tools/releasetool
  tool="$work/releasetool"
fi
mkdir -p "$ctx/bin" "$ctx/rootfs/kiln/.docker" "$ctx/rootfs/kiln/ssl/certs" "$ctx/rootfs/kaniko" \
  "$ctx/rootfs/workspace" "$ctx/rootfs/root" "$ctx/rootfs/tmp" "$ctx/busybox-linux-$ARCH"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0700 "$ctx/rootfs/root"
if [[ -n "${BINARY:-}" ]]; then
  cp "$BINARY" "$ctx/bin/kiln-linux-$ARCH" || die "BINARY \"$BINARY\" missing"
else
  CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags "$(hack/version.sh ldflags)" \
    -o "$ctx/bin/kiln-linux-$ARCH" ./cmd/kiln
fi
"$tool" elf -arch "$ARCH" "$ctx/bin/kiln-linux-$ARCH" || die "the kiln binary does not fit $PLATFORM"
ln -s executor "$ctx/rootfs/kiln/kiln"
ln -s /kiln/executor "$ctx/rootfs/kaniko/executor"
ln -s /kiln/.docker "$ctx/rootfs/kaniko/.docker"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/kiln/ssl/certs/ca-certificates.crt" \
  || die "/etc/ssl/certs/ca-certificates.crt missing (Debian package ca-certificates)"
[[ -f "$BUSYBOX" ]] || die "BUSYBOX \"$BUSYBOX\" missing: the debug image needs a static busybox for $PLATFORM (Debian package busybox-static; hack/busybox.sh $ARCH fetches it for another architecture)"
"$tool" elf -arch "$ARCH" "$BUSYBOX" \
  || die "BUSYBOX \"$BUSYBOX\" does not fit $PLATFORM: give a static busybox for $ARCH (hack/busybox.sh $ARCH)"
cp "$BUSYBOX" "$ctx/busybox-linux-$ARCH/busybox"
chmod 0755 "$ctx/busybox-linux-$ARCH/busybox"
# The applets are read from busybox's own table, not by running it: it may
# be built for another CPU. Without them /busybox/sh would be missing.
applets="$("$tool" applets "$BUSYBOX")" || die "BUSYBOX \"$BUSYBOX\": no applet list"
for applet in $applets; do
  [[ "$applet" == busybox ]] || ln -s busybox "$ctx/busybox-linux-$ARCH/$applet"
done
[[ -L "$ctx/busybox-linux-$ARCH/sh" ]] || die "BUSYBOX \"$BUSYBOX\" has no sh applet"
# Files from git checkouts and cp have this machine's times and modes: make
# them canonical so the digest depends on content only.
find "$ctx" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
for target in executor debug; do
  tag="$EXECUTOR_TAG"
  [[ "$target" == debug ]] && tag="$DEBUG_TAG"
  rm -rf "${OUT:?}/$target" "$OUT/$target.tar"
  args=(build --context "$ctx" --dockerfile deploy/image/Dockerfile --target "$target" --custom-platform "$PLATFORM"
        --reproducible --digest-file "$OUT/$target.digest" "${kiln_flags[@]}")
  for repo in "${repos[@]}"; do args+=(--destination "$repo:$tag"); done
  if [[ "${PUSH:-0}" == 1 ]]; then
    "$kiln" "${args[@]}"
  else
    "$kiln" "${args[@]}" --no-push --oci-layout-path "$OUT/$target" --tar-path "$OUT/$target.tar"
  fi
  for repo in "${repos[@]}"; do echo "$repo:$tag $(cat "$OUT/$target.digest")"; done
done
