#!/usr/bin/env bash
# version.sh: what a build of this checkout is stamped with (see pkg/cli/version.go).
#   hack/version.sh version   vX.Y.Z on a release tag; vX.Y.Z-N-gHASH N commits after it;
#                             v0.0.0-N-gHASH before the first tag; "-dirty" with local changes
#   hack/version.sh commit    the full commit hash ("-dirty" with local changes)
#   hack/version.sh date      the commit's time, RFC 3339 in UTC (or $SOURCE_DATE_EPOCH's):
#                             never the wall clock, so that two builds are the same binary
#   hack/version.sh epoch     the same time in seconds (SOURCE_DATE_EPOCH for images)
#   hack/version.sh ldflags   the go build -ldflags that stamp all three
# VERSION, COMMIT and SOURCE_DATE_EPOCH in the environment override git's values.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
pkg=github.com/kiln-build/kiln/pkg/cli

in_git() { git rev-parse --verify -q HEAD >/dev/null 2>&1; }

version() {
  if [[ -n "${VERSION:-}" ]]; then echo "$VERSION"; return; fi
  if ! in_git; then echo dev; return; fi
  # Release tags are vMAJOR.MINOR.PATCH[-PRERELEASE] (see CHANGELOG.md).
  if git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' --dirty 2>/dev/null; then return; fi
  local dirty=""
  git diff --quiet HEAD 2>/dev/null || dirty=-dirty
  echo "v0.0.0-$(git rev-list --count HEAD)-g$(git rev-parse --short=7 HEAD)$dirty"
}

commit() {
  if [[ -n "${COMMIT:-}" ]]; then echo "$COMMIT"; return; fi
  if ! in_git; then echo unknown; return; fi
  local dirty=""
  git diff --quiet HEAD 2>/dev/null || dirty=-dirty
  echo "$(git rev-parse HEAD)$dirty"
}

epoch() {
  if [[ -n "${SOURCE_DATE_EPOCH:-}" ]]; then echo "$SOURCE_DATE_EPOCH"; return; fi
  if ! in_git; then echo 0; return; fi
  git log -1 --format=%ct
}

date_() {
  local e
  e="$(epoch)"
  TZ=UTC0 date -d "@$e" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || TZ=UTC0 date -r "$e" +%Y-%m-%dT%H:%M:%SZ
}

case "${1:-}" in
  version) version ;;
  commit) commit ;;
  date) date_ ;;
  epoch) epoch ;;
  ldflags) echo "-s -w -X $pkg.Version=$(version) -X $pkg.Commit=$(commit) -X $pkg.BuildDate=$(date_)" ;;
  *) echo "usage: hack/version.sh version|commit|date|epoch|ldflags" >&2; exit 2 ;;
esac
