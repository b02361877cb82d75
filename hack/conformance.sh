#!/usr/bin/env bash
# conformance.sh: runs the Dockerfile conformance corpus (../shared/conformance)
# with bin/kiln against the reference builder, buildah. Needs root; installs
# buildah and starts the harness registries (../shared/harness/up.sh).
# Extra arguments go to the runner (e.g. --only REGEX).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED="${SHARED:-$(cd .. && pwd)/shared}"
[[ -d "$SHARED/conformance" ]] || { echo "conformance: $SHARED/conformance not found (set SHARED)" >&2; exit 2; }
if ! command -v buildah >/dev/null || ! command -v jq >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah jq curl >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah jq curl >/dev/null; }
fi
"$SHARED/harness/up.sh" >/dev/null
KILN="$PWD/bin/kiln"
exec "$SHARED/conformance/run.sh" "$@" \
  "$KILN build --dockerfile {dockerfile} --context {context} --destination {dest} --insecure-registry 127.0.0.1:5000 {target_flag} {build_args}" \
  "$SHARED/conformance/cases"
