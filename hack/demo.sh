#!/usr/bin/env bash
# demo.sh: kiln's main job, end to end, on this machine.
#   1. builds bin/kiln,
#   2. starts a Docker Distribution registry on 127.0.0.1:5001 (internal/tools/devregistry),
#   3. builds a busybox base image FROM scratch out of Debian's static busybox and pushes it,
#   4. builds examples/hello (two stages, RUN steps, heredoc, USER) and pushes it,
#   5. builds a third image FROM the pushed one and runs it, to show the image works.
# Needs Go, and root (chroot isolation) or unprivileged user namespaces (rootless isolation).
# KEEP=1 leaves the registry running at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REG="${DEMO_REGISTRY:-127.0.0.1:5001}"
log() { printf '\n==> %s\n' "$*"; }

if ! /bin/busybox --list >/dev/null 2>&1 || ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
  if [[ $(id -u) == 0 ]]; then
    log "installing Debian's busybox-static (the demo's base image is made from it)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file >/dev/null; }
  else
    echo "demo: /bin/busybox (Debian package busybox-static) is needed; install it or run as root" >&2
    exit 1
  fi
fi

log "building bin/kiln"
make --no-print-directory build

WORK="$(mktemp -d)"
REG_PID=""
cleanup() {
  if [[ -n "$REG_PID" && "${KEEP:-0}" != 1 ]]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log "starting a registry on $REG"
go build -o "$WORK/devregistry" ./internal/tools/devregistry
"$WORK/devregistry" -addr "$REG" -dir "$WORK/registry" &
REG_PID=$!
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/${REG%:*}/${REG#*:}") 2>/dev/null; then break; fi
  sleep 0.1
done

log "building the base image $REG/demo/busybox:latest FROM scratch"
base="$WORK/base"
mkdir -p "$base/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,home}
cp /bin/busybox "$base/rootfs/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [[ "$applet" == bin/busybox ]] || ln -sf /bin/busybox "$base/rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$base/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$base/rootfs/etc/group"
chmod 1777 "$base/rootfs/tmp"
cat > "$base/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
DOCKERFILE
bin/kiln build --context "$base" --destination "$REG/demo/busybox:latest" --insecure-registry "$REG"

log "building examples/hello and pushing $REG/demo/hello:latest"
bin/kiln build --context examples/hello --destination "$REG/demo/hello:latest" --insecure-registry "$REG" \
  --build-arg BASE="$REG/demo/busybox:latest" --digest-file "$WORK/digest"

log "using the pushed image as a base: its program runs"
mkdir -p "$WORK/check"
cat > "$WORK/check/Dockerfile" <<DOCKERFILE
FROM $REG/demo/hello:latest
RUN greet && cat /home/app/hello.txt && id
DOCKERFILE
bin/kiln build --context "$WORK/check" --no-push --insecure-registry "$REG"

log "done: $REG/demo/hello@$(cat "$WORK/digest")"
if [[ "${KEEP:-0}" == 1 ]]; then echo "registry still running (pid $REG_PID, storage $WORK/registry)"; trap - EXIT; fi
