#!/usr/bin/env bash
# conformance.sh: runs the Dockerfile conformance corpus (../shared/conformance)
# with bin/kiln against the reference builder, buildah. Needs root; installs
# buildah and starts the harness registries (../shared/harness/up.sh).
# Extra arguments go to the runner (e.g. --only REGEX).
#
# kiln follows BuildKit where buildah departs from it. The cases below differ
# from the reference for that reason alone; each still runs, with the one
# difference BuildKit implies accepted and everything else compared:
#   expose-volume-env, symlink-volume-relative: VOLUME changes only the image
#     config (dockerfile2llb's dispatchVolume); buildah also creates the
#     directory, so /var/lib/testdata and /log/test exist only in its image.
#   expose-volume-env: BuildKit exposes each port of `EXPOSE 9000-9001`
#     (dispatchExpose); buildah keeps "9000-9001/tcp". ExposedPorts is checked
#     against BuildKit's set instead of buildah's.
#   volume-perms: for the same reason /vol/subvol does not exist when the next
#     RUN chmods it; BuildKit's build fails there and so must kiln's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SHARED="${SHARED:-$(cd .. && pwd)/shared}"
[[ -d "$SHARED/conformance" ]] || { echo "conformance: $SHARED/conformance not found (set SHARED)" >&2; exit 2; }
if ! command -v buildah >/dev/null || ! command -v jq >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah jq curl >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah jq curl >/dev/null; }
fi
up_log="$("$SHARED/harness/up.sh" 2>&1)" || { echo "$up_log" >&2; exit 2; }
KILN="$PWD/bin/kiln"
CASES="$SHARED/conformance/cases"
BUILD="$KILN build --dockerfile {dockerfile} --context {context} --destination {dest} --insecure-registry 127.0.0.1:5000 {target_flag} {build_args}"

# Arguments meant for the runner; --only narrows the divergent cases too.
only='.*'
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[i]}" == --only ]] && only="${args[i+1]:-}"
done
selected() { [[ "$1" =~ $only ]]; }

status=0
"$SHARED/conformance/run.sh" --skip '^(expose-volume-env|symlink-volume-relative|volume-perms)$' "$@" "$BUILD" "$CASES" || status=$?

# VOLUME without a directory: compare everything but the declared path and
# the parents buildah made for it.
divergent() { # case, extra imgdiff flags...
  local name="$1"; shift
  selected "$name" || return 0
  echo "# $name: where buildah departs from BuildKit, imgdiff $*"
  IMGDIFF_FLAGS="${IMGDIFF_FLAGS:-} $*" "$SHARED/conformance/run.sh" --only "^$name\$" "$BUILD" "$CASES" || status=1
}
divergent expose-volume-env --ignore /var/lib --ignore-config ExposedPorts
divergent symlink-volume-relative --ignore /log
if selected expose-volume-env; then
  want='["53/udp","8080/tcp","9000/tcp","9001/tcp"]'
  got="$("${IMGDIFF:-${HARNESS_DIR:-/tmp/harness}/bin/imgdiff}" summary --json --insecure "${REGISTRY:-127.0.0.1:5000}/conformance/ours/expose-volume-env:latest" | jq -c '.config.config.ExposedPorts | keys')"
  if [[ "$got" == "$want" ]]; then
    echo "# expose-volume-env: ExposedPorts $got, as BuildKit exposes them"
  else
    echo "expose-volume-env: ExposedPorts $got, BuildKit gives $want"; status=1
  fi
fi

# volume-perms must fail, and for the reason BuildKit's build fails.
if selected volume-perms; then
  ctx="$(mktemp -d)"
  cp -a "$CASES/volume-perms/." "$ctx/" && rm -f "$ctx/case.json"
  if out="$("$KILN" build --context "$ctx" --no-push 2>&1)"; then
    echo "volume-perms: kiln built it; BuildKit fails at RUN chmod 0711 /vol/subvol (no directory for VOLUME)"; status=1
  elif grep -q 'Dockerfile:3: RUN chmod 0711 /vol/subvol: exited with code 1' <<<"$out" && grep -q 'No such file or directory' <<<"$out"; then
    echo "volume-perms                       -       fail   expected   BuildKit's build fails the same way: $(grep -o 'chmod: .*' <<<"$out" | head -1)"
  else
    echo "volume-perms: kiln failed for another reason:"; echo "$out"; status=1
  fi
  rm -rf "$ctx"
fi
exit "$status"
