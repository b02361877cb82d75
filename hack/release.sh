#!/usr/bin/env bash
# release.sh (make release): kiln's release, built from this checkout into DIST (default dist/):
#   DIST/kiln-linux-ARCH  static binaries (CGO_ENABLED=0, -trimpath), stamped (hack/version.sh)
#   DIST/SHA256SUMS       their checksums (sha256sum -c SHA256SUMS)
#   DIST/oci/             an OCI layout with the executor and debug images, built by kiln:
#                           VERSION-ARCH, VERSION-debug-ARCH   one image per platform
#                           VERSION, VERSION-debug             one manifest list each, made by
#                                                              `kiln manifest push-index`
#   DIST/images.txt       "TAG DIGEST" for each of them
# The images are pushed to a staging registry this script starts on 127.0.0.1 (the
# manifest lists are made in a registry, by kiln's own commands), then copied into the
# layout. With PUSH=1 REPO=registry.example.com/kiln they are also pushed to REPO under
# the same tags, plus "latest" and "debug" when VERSION is a release (vX.Y.Z), with
# kiln's usual credentials (docker config, KILN_REGISTRY_<HOST>_USER/_PASSWORD, ...).
#   PLATFORMS   default "linux/amd64 linux/arm64"
#   VERSION     default hack/version.sh version
#   KILN_FLAGS  more flags for kiln build and kiln manifest when pushing to REPO
#               (--docker-config DIR, --registry-certificate HOST=CA.pem, ...)
#   KILN        the kiln that builds the images and lists (default: bin/kiln, from make build)
#   BUSYBOX_<ARCH>  a static busybox for that architecture (default: hack/busybox.sh ARCH:
#               /bin/busybox for this machine's, Debian's busybox-static for another)
# Reproducible: everything is stamped with the last commit's time (SOURCE_DATE_EPOCH),
# so two runs on the same checkout give the same binaries and the same digests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIST="${DIST:-dist}"
PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64}"
export VERSION="${VERSION:-$(hack/version.sh version)}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(hack/version.sh epoch)}"
PUSH="${PUSH:-0}"
REPO="${REPO:-}"
read -r -a kiln_flags <<<"${KILN_FLAGS:-}"
log() { printf '\n==> %s\n' "$*" >&2; }
die() { echo "release: $*" >&2; exit 1; }

[[ "$VERSION" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$ ]] || die "VERSION \"$VERSION\" cannot be an image tag"
if [[ "$PUSH" == 1 ]]; then
  [[ -n "$REPO" ]] || die "PUSH=1 needs REPO, the repository to push to (e.g. REPO=ghcr.io/kiln-build/kiln)"
  [[ "$REPO" != *:* || "$REPO" == */* && "${REPO##*/}" != *:* ]] || die "REPO \"$REPO\" is a repository: no tag"
fi
archs=()
for p in $PLATFORMS; do
  [[ "$p" =~ ^linux/[a-z0-9]+$ ]] || die "platform \"$p\": want linux/ARCH"
  archs+=("${p#linux/}")
done
[[ ${#archs[@]} -gt 0 ]] || die "PLATFORMS is empty"

work="$(mktemp -d)"
reg_pid=""
cleanup() {
  if [[ -n "$reg_pid" ]]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "${DIST:?}"
mkdir -p "$DIST"
kiln="${KILN:-}"
[[ -z "$kiln" || "$kiln" == /* ]] || die "KILN \"$kiln\": give an absolute path"
if [[ -z "$kiln" ]]; then
  make --no-print-directory build >&2
  kiln="$PWD/bin/kiln"
fi
go build -o "$work/releasetool" ./internal/tools/releasetool
go build -o "$work/devregistry" ./internal/tools/devregistry
export RELEASETOOL="$work/releasetool"  # for images.sh and busybox.sh
ldflags="$(hack/version.sh ldflags)"

log "kiln $VERSION: binaries"
for arch in "${archs[@]}"; do
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags "$ldflags" -o "$DIST/kiln-linux-$arch" ./cmd/kiln
  "$work/releasetool" elf -arch "$arch" "$DIST/kiln-linux-$arch"
done
(cd "$DIST" && sha256sum kiln-linux-* >SHA256SUMS)
cat "$DIST/SHA256SUMS" >&2

log "static busybox for each platform's debug image"
declare -A busybox
for arch in "${archs[@]}"; do
  var="BUSYBOX_${arch^^}"
  if [[ -n "${!var:-}" ]]; then
    busybox[$arch]="${!var}"
  else
    status=0
    busybox[$arch]="$(hack/busybox.sh "$arch" "$work/busybox-$arch")" || status=$?
    [[ $status == 0 ]] || die "no static busybox for linux/$arch (see above); set $var to one"
  fi
  echo "linux/$arch: ${busybox[$arch]}" >&2
done

log "staging registry"
"$work/devregistry" -addr 127.0.0.1:0 -dir "$work/registry" >"$work/registry.log" 2>&1 &
reg_pid=$!
stage=""
for _ in $(seq 1 100); do
  stage="$(sed -n 's|^registry listening on http://\([0-9.:]*\) .*|\1|p' "$work/registry.log")"
  [[ -n "$stage" ]] && break
  kill -0 "$reg_pid" 2>/dev/null || die "the staging registry did not start: $(cat "$work/registry.log")"
  sleep 0.1
done
[[ -n "$stage" ]] || die "the staging registry did not start: $(cat "$work/registry.log")"
stage_repo="$stage/kiln"
stage_flags=(--insecure-registry "$stage")
echo "$stage_repo" >&2

# Per-platform tags first: each platform's image has its own tag, and the
# lists are made over them.
for arch in "${archs[@]}"; do
  log "images for linux/$arch"
  repos="$stage_repo"
  [[ "$PUSH" == 1 ]] && repos+=" $REPO"
  PLATFORM="linux/$arch" OUT="$work/out-$arch" REPO="$repos" PUSH=1 \
    EXECUTOR_TAG="$VERSION-$arch" DEBUG_TAG="$VERSION-debug-$arch" \
    BINARY="$DIST/kiln-linux-$arch" BUSYBOX="${busybox[$arch]}" \
    KILN="$kiln" KILN_FLAGS="${stage_flags[*]} ${kiln_flags[*]}" hack/images.sh >&2
  echo "$VERSION-$arch $(cat "$work/out-$arch/executor.digest")" >>"$work/images.txt"
  echo "$VERSION-debug-$arch $(cat "$work/out-$arch/debug.digest")" >>"$work/images.txt"
done

release_tag=0
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] && release_tag=1
layout_refs=()
for flavour in "" -debug; do
  list="$VERSION$flavour"
  log "manifest list $list"
  stage_sources=() sources=()
  for arch in "${archs[@]}"; do
    stage_sources+=("$stage_repo:$VERSION$flavour-$arch")
    sources+=("$REPO:$VERSION$flavour-$arch")
  done
  digest="$("$kiln" manifest push-index "${stage_flags[@]}" "$stage_repo:$list" "${stage_sources[@]}")"
  echo "$list $digest" >>"$work/images.txt"
  if [[ "$PUSH" == 1 ]]; then
    targets=("$list")
    if [[ $release_tag == 1 ]]; then
      if [[ -z "$flavour" ]]; then targets+=(latest); else targets+=(debug); fi
    fi
    for target in "${targets[@]}"; do
      # The same manifests in the same order: the same list, the same digest.
      pushed="$("$kiln" manifest push-index "${kiln_flags[@]}" "$REPO:$target" "${sources[@]}")"
      [[ "$pushed" == "$digest" ]] || die "$REPO:$target is $pushed, the staged list $digest"
      echo "$REPO:$target $pushed" >&2
    done
  fi
  layout_refs+=("$stage_repo:$list=$list")
  for arch in "${archs[@]}"; do layout_refs+=("$stage_repo:$VERSION$flavour-$arch=$VERSION$flavour-$arch"); done
done

log "OCI layout $DIST/oci"
"$work/releasetool" layout -dir "$DIST/oci" -insecure "${layout_refs[@]}"
sort "$work/images.txt" >"$DIST/images.txt"
cat "$DIST/images.txt"
if [[ "$PUSH" == 1 ]]; then
  echo "pushed to $REPO" >&2
fi
