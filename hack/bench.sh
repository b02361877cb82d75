#!/usr/bin/env bash
# bench.sh: end-to-end builds, kiln side by side with buildah (make bench-e2e,
# also run by make bench after the Go benchmarks).
#
# Starts a registry on 127.0.0.1 (internal/tools/devregistry), pushes base
# images made offline once and cached in $BENCH_DIR/bases, then builds each
# shape with each builder, interleaved (kiln, buildah, kiln, ...; the order
# flips every run), BENCH_RUNS times; every build pushes its image:
#   a  busybox + 3 RUN + COPY of small files
#   b  Debian minbase + RUN creating 20,000 files + COPY of a 200 MB mixed context
#   c  Debian with build-essential (~400 MB) + RUN touch /one-file
#   d  multi-stage: gcc -static on (c), the binary copied into busybox
# Each kiln build gets a fresh --kiln-dir and each buildah build fresh storage
# (--root/--runroot, --layers, --isolation chroot): both pull their bases from
# the registry, as a new CI pod does. internal/tools/benchtool measures wall
# time, CPU (user+sys of the builder and all its descendants) and peak RSS
# (the summed RSS of the builder's process tree, sampled every 50 ms, and the
# largest single process, as /usr/bin/time's %M), and writes the medians and
# the kiln/buildah ratios to $BENCH_OUT/<date>.txt and .json.
#
# Variables:
#   BENCH_RUNS=3                 runs of each shape, mode and builder
#   BENCH_SHAPES="a b c d"       shapes to build
#   BENCH_BUILDERS="kiln buildah"  buildah is installed when missing; by default
#                                it is skipped with a message when it cannot be
#   BENCH_MODES=cold             cold: no layer cache. warm: a priming build that
#                                fills a fresh cache repository (kiln --cache=true
#                                --cache-repo --reproducible, buildah --cache-to), then the same
#                                build with a fresh work dir reading it; kiln's
#                                warm runs are skipped, with a message, when kiln
#                                refuses --cache. node: a node-local volume, no
#                                layer cache: a priming build, then the same build
#                                on the same --kiln-dir (buildah: the same storage,
#                                --no-cache), whose steps all run again
#   BENCH_TMPFS=0                1: every work directory (kiln's, buildah's storage,
#                                the registry's, the contexts, TMPDIR) on a tmpfs
#                                mounted for the run; BENCH_TMPFS_SIZE=12g
#   BENCH_DIR=/var/tmp/kiln-bench  cached base images (bases/), logs, work directory
#   BENCH_OUT=bench-results      where the results go
#   BENCH_REGISTRY               registry address (default 127.0.0.1:<a free port>)
#   BENCH_CONTEXT_MB=200         size of shape b's generated context
#   BENCH_TIMEOUT=900            seconds before a build is killed
#   BENCH_KILN_ARGS, BENCH_BUILDAH_ARGS  more flags for every build
#   BENCH_BUILDAH_DRIVER=overlay buildah's storage driver (overlay or vfs)
#   BENCH_REBUILD_BASES=1        rebuild the cached base images
#   DEBIAN_MIRROR                for debootstrap and apt (default: the host's)
# Needs root (chroot isolation for RUN, mounts) and Debian packages it installs
# when missing: busybox-static and debootstrap (to make the bases), buildah.
# Cost on 2 busy cores: the first run makes the bases (about 8 minutes:
# debootstrap 5, build-essential 2.5); then each run of the four shapes with
# both builders takes about 2.5 minutes (b's buildah build alone about 45 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
T0=$SECONDS

RUNS="${BENCH_RUNS:-3}"
SHAPES="${BENCH_SHAPES:-a b c d}"
BUILDERS="${BENCH_BUILDERS:-kiln buildah}"
MODES="${BENCH_MODES:-cold}"
TMPFS="${BENCH_TMPFS:-0}"
TMPFS_SIZE="${BENCH_TMPFS_SIZE:-12g}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/kiln-bench}"
OUT="${BENCH_OUT:-bench-results}"
CONTEXT_MB="${BENCH_CONTEXT_MB:-200}"
TIMEOUT="${BENCH_TIMEOUT:-900}"
BUILDAH_DRIVER="${BENCH_BUILDAH_DRIVER:-overlay}"
SUITE=bookworm

say() { printf '==> %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ checks
[[ $(id -u) == 0 ]] || die "needs root: kiln's and buildah's chroot isolation run the RUN steps, and the bases and BENCH_TMPFS need mounts; run it as root (sudo make bench-e2e)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS=\"$RUNS\" is not a positive number"
for s in $SHAPES; do [[ "$s" =~ ^[abcd]$ ]] || die "BENCH_SHAPES: unknown shape \"$s\" (shapes: a b c d)"; done
for b in $BUILDERS; do [[ "$b" == kiln || "$b" == buildah ]] || die "BENCH_BUILDERS: unknown builder \"$b\" (kiln, buildah)"; done
for m in $MODES; do [[ "$m" == cold || "$m" == warm || "$m" == node ]] || die "BENCH_MODES: unknown mode \"$m\" (cold, warm, node)"; done
[[ "$BENCH_DIR" != *[[:space:]]* ]] || die "BENCH_DIR=\"$BENCH_DIR\" contains white space"
command -v go >/dev/null || die "needs Go (to build kiln and internal/tools)"
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || die "needs a Debian system (dpkg, apt-get): the bases come from Debian's archive"

has() { [[ " $1 " == *" $2 "* ]]; }
BASES="$BENCH_DIR/bases"
needs_base() { # NAME: some selected shape builds on it
  case "$1" in
    busybox) has "$SHAPES" a || has "$SHAPES" d ;;
    debian) has "$SHAPES" b || has "$SHAPES" c || has "$SHAPES" d ;;
    debian-build) has "$SHAPES" c || has "$SHAPES" d ;;
  esac
}

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
}
# need_pkg PACKAGE: install a Debian package that is missing, or fail saying which.
need_pkg() {
  installed "$1" && return
  say "installing Debian's $1"
  apt_install "$1" || die "the Debian package $1 is missing and could not be installed (apt-get install $1)"
}
if has "$BUILDERS" buildah && ! command -v buildah >/dev/null; then
  say "installing Debian's buildah"
  if ! apt_install buildah; then
    [[ -n "${BENCH_BUILDERS:-}" ]] && die "buildah (Debian package buildah) is missing and could not be installed"
    echo "bench: buildah could not be installed (apt-get install buildah): building with kiln only" >&2
    BUILDERS=kiln
  fi
fi

# ------------------------------------------------------------------ tools
say "building bin/kiln and the bench tools"
make --no-print-directory build >/dev/null
KILN="$REPO/bin/kiln"
TOOLS="$BENCH_DIR/bin"
mkdir -p "$TOOLS" "$BASES"
go build -o "$TOOLS/benchtool" ./internal/tools/benchtool
go build -o "$TOOLS/devregistry" ./internal/tools/devregistry
BT="$TOOLS/benchtool"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LOGS="$BENCH_DIR/logs/$STAMP"
RECORDS="$LOGS/records.jsonl"
mkdir -p "$LOGS" "$OUT"

# ------------------------------------------------------------------ work dir, cleanup
WORK="$BENCH_DIR/work.$$"
REG_PID=""
MOUNTED=""

# unmount_under DIR: everything mounted below DIR (buildah's overlays, a
# chroot's /proc), deepest first.
unmount_under() {
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$REG_PID" ]]; then kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null; fi
  if [[ -d "$WORK" ]]; then
    unmount_under "$WORK"
    if [[ -n "$MOUNTED" ]]; then umount "$WORK" 2>/dev/null || umount -l "$WORK"; fi
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: terminated" >&2; exit 143' TERM

# Work directories of runs that were killed outright.
for stale in "$BENCH_DIR"/work.*; do
  [[ -d "$stale" ]] && ! kill -0 "${stale##*.}" 2>/dev/null || continue
  unmount_under "$stale"
  umount "$stale" 2>/dev/null || true
  rm -rf "$stale"
done
mkdir -p "$WORK"
if [[ "$TMPFS" == 1 ]]; then
  mount -t tmpfs -o "size=$TMPFS_SIZE,mode=0755" kiln-bench "$WORK" || die "could not mount a tmpfs on $WORK"
  MOUNTED=1
  FSDESC="tmpfs ($TMPFS_SIZE)"
else
  FSDESC="$(findmnt -n -o FSTYPE -T "$WORK") under $BENCH_DIR"
fi
mkdir -p "$WORK/tmp" "$WORK/ctx" "$WORK/conf"
export TMPDIR="$WORK/tmp" # both builders spool layers there

# ------------------------------------------------------------------ registry
REG="${BENCH_REGISTRY:-127.0.0.1:$("$BT" freeport)}"
say "starting a registry on $REG (storage $WORK/registry)"
"$TOOLS/devregistry" -addr "$REG" -dir "$WORK/registry" >"$LOGS/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/${REG%:*}/${REG#*:}") 2>/dev/null && break
  kill -0 "$REG_PID" 2>/dev/null || die "the registry did not start on $REG: $(tail -3 "$LOGS/registry.log")"
  sleep 0.1
done
(exec 3<>"/dev/tcp/${REG%:*}/${REG#*:}") 2>/dev/null || die "the registry does not answer on $REG"

# buildah: the bench registry is plain HTTP; no signature checks.
cat >"$WORK/conf/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"

[[registry]]
location = "$REG"
insecure = true
EOF
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/conf/policy.json"
export CONTAINERS_REGISTRIES_CONF="$WORK/conf/registries.conf"

# ------------------------------------------------------------------ base images
# Each base is built once, by kiln from a tree (FROM scratch + ADD of a tar,
# which keeps owners and modes), saved as an OCI layout in $BASES and pushed
# to each run's registry. A recipe's text is its cache key: editing it rebuilds.
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m="$(grep -rhoE '^(URIs:|deb)[[:space:]]+[^[:space:]]+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

# kiln_image CONTEXT NAME [kiln flags...]: build CONTEXT into $BASES/NAME.oci.
kiln_image() {
  local ctx="$1" name="$2"; shift 2
  rm -rf "$BASES/$name.oci.tmp" "$WORK/kiln-base"
  "$KILN" build --context "$ctx" --reproducible --no-push --destination "bench/$name" \
    --oci-layout-path "$BASES/$name.oci.tmp" --kiln-dir "$WORK/kiln-base" --insecure-registry "$REG" "$@" \
    >>"$LOGS/bases.log" 2>&1 || die "building the base image $name failed; see $LOGS/bases.log"
  rm -rf "$BASES/$name.oci" "$WORK/kiln-base"
  mv "$BASES/$name.oci.tmp" "$BASES/$name.oci"
}

# rootfs_image ROOT NAME CMD: the tree ROOT as a one-layer image.
rootfs_image() {
  local root="$1" name="$2" cmd="$3" ctx="$WORK/base-$2"
  mkdir -p "$ctx"
  tar --numeric-owner -C "$root" -cf "$ctx/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["%s"]\n' \
    "$cmd" >"$ctx/Dockerfile"
  kiln_image "$ctx" "$name"
  rm -rf "$ctx"
}

make_busybox() {
  local root="$WORK/rootfs-busybox" applet
  rm -rf "$root"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,dev,proc,sys}
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/root"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list-full); do
    [[ "$applet" == bin/busybox || -e "$root/$applet" ]] || ln -s /bin/busybox "$root/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  rootfs_image "$root" busybox sh
  rm -rf "$root"
}

make_debian() {
  local root="$WORK/rootfs-debian" mirror
  mirror="$(debian_mirror)"
  rm -rf "$root"
  say "debian: debootstrap --variant=minbase $SUITE from $mirror (a few minutes)"
  debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >>"$LOGS/bases.log" 2>&1 ||
    { unmount_under "$root"; die "debootstrap failed; see $LOGS/bases.log"; }
  unmount_under "$root"
  # What a container runtime provides, and what apt downloads again.
  find "$root/dev" "$root/proc" "$root/sys" -mindepth 1 -delete
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  rm -f "$root/etc/hostname" "$root/etc/resolv.conf"
  rootfs_image "$root" debian bash
  rm -rf "$root"
}

make_debian_build() {
  local ctx="$WORK/base-debian-build"
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $REG/bench/debian:$SUITE
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends build-essential \\
 && apt-get clean && rm -rf /var/lib/apt/lists/*
EOF
  say "debian-build: apt-get install build-essential in a kiln RUN (a minute or two)"
  push_base debian "debian:$SUITE"
  kiln_image "$ctx" debian-build --isolation chroot
  rm -rf "$ctx"
}

# base_key NAME: what the cached image was made from.
base_key() {
  case "$1" in
    busybox) declare -f make_busybox rootfs_image | sha256sum | cut -c1-16 ;;
    debian) { declare -f make_debian rootfs_image; echo "$SUITE"; } | sha256sum | cut -c1-16 ;;
    debian-build) { declare -f make_debian_build; cat "$BASES/debian.oci/index.json"; } | sha256sum | cut -c1-16 ;;
  esac
}

ensure_base() {
  local name="$1" key t0=$SECONDS
  key="$(base_key "$name")"
  if [[ "${BENCH_REBUILD_BASES:-0}" != 1 && -e "$BASES/$name.oci/index.json" && "$(cat "$BASES/$name.key" 2>/dev/null)" == "$key" ]]; then
    return
  fi
  say "building the base image $name (cached in $BASES)"
  case "$name" in
    busybox) need_pkg busybox-static ;;
    debian) need_pkg debootstrap ;;
  esac
  "make_${name//-/_}"
  base_key "$name" >"$BASES/$name.key"
  say "base image $name built in $((SECONDS - t0))s"
}

push_base() {
  "$BT" pushlayout -layout "$BASES/$1.oci" -ref "$REG/bench/$2" | sed 's/^/    /'
}

BASE_DESC=()
for name in busybox debian debian-build; do
  needs_base "$name" || continue
  [[ "$name" == debian-build ]] && ensure_base debian # the recipe builds on it
  ensure_base "$name"
done
needs_base busybox && push_base busybox busybox:latest
if needs_base debian || needs_base debian-build; then push_base debian "debian:$SUITE"; fi
needs_base debian-build && push_base debian-build debian-build:latest
for name in busybox debian debian-build; do
  needs_base "$name" || continue
  BASE_DESC+=("$name: $("$BT" describe -layout "$BASES/$name.oci")")
done

# ------------------------------------------------------------------ contexts
make_contexts() {
  local c="$WORK/ctx" i
  if has "$SHAPES" a; then
    mkdir -p "$c/a/files"
    for i in $(seq -w 1 24); do
      printf "small file $i of the bench context, line %d\n" $(seq 1 "$((10#$i * 8))") >"$c/a/files/f$i.txt"
    done
    cat >"$c/a/Dockerfile" <<EOF
FROM $REG/bench/busybox:latest
RUN mkdir -p /app/data && echo one >/app/data/one
RUN for i in 1 2 3 4 5 6 7 8; do echo "line \$i" >>/app/data/lines; done
RUN echo 'app:x:1000:1000::/app:/bin/sh' >>/etc/passwd && chown -R 1000 /app/data
COPY files/ /app/files/
EOF
  fi
  if has "$SHAPES" b; then
    mkdir -p "$c/b"
    "$BT" gencontext -dir "$c/b/data" -bytes "$((CONTEXT_MB << 20))" -seed 1
    cat >"$c/b/Dockerfile" <<EOF
FROM $REG/bench/debian:$SUITE
RUN mkdir /many && cd /many && for d in \$(seq 0 99); do mkdir \$d; for f in \$(seq 0 199); do echo "\$d/\$f" >\$d/\$f; done; done
COPY data/ /data/
EOF
  fi
  if has "$SHAPES" c; then
    mkdir -p "$c/c"
    printf 'FROM %s/bench/debian-build:latest\nRUN touch /one-file\n' "$REG" >"$c/c/Dockerfile"
  fi
  if has "$SHAPES" d; then
    mkdir -p "$c/d"
    cat >"$c/d/hello.c" <<'EOF'
#include <stdio.h>

int main(int argc, char **argv) {
	unsigned long sum = 0;
	for (int i = 0; i < argc; i++)
		for (const char *p = argv[i]; *p; p++)
			sum = sum * 31 + (unsigned char)*p;
	printf("hello from a static binary (%lu)\n", sum);
	return 0;
}
EOF
    cat >"$c/d/Dockerfile" <<EOF
FROM $REG/bench/debian-build:latest AS build
COPY hello.c /src/hello.c
RUN gcc -static -O2 -o /src/hello /src/hello.c
FROM $REG/bench/busybox:latest
COPY --from=build /src/hello /usr/local/bin/hello
CMD ["hello"]
EOF
  fi
}
say "writing the build contexts"
make_contexts

# ------------------------------------------------------------------ cache modes
KILN_WARM=1
BUILDAH_WARM=1
if has "$MODES" warm; then
  if has "$BUILDERS" kiln; then
    mkdir -p "$WORK/probe"
    printf 'FROM scratch\nCOPY Dockerfile /\n' >"$WORK/probe/Dockerfile"
    if ! probe="$("$KILN" build --cache=true --cache-repo="$REG/bench/cache-probe" --dryrun --context "$WORK/probe" \
      --destination "$REG/bench/probe:latest" --insecure-registry "$REG" --kiln-dir "$WORK/probe-kiln" 2>&1)"; then
      echo "bench: warm mode skipped for kiln, which does not accept --cache yet: $(tail -1 <<<"$probe")" >&2
      KILN_WARM=0
    fi
    rm -rf "$WORK/probe" "$WORK/probe-kiln"
  fi
  if has "$BUILDERS" buildah && ! buildah build --help 2>/dev/null | grep -q -- '--cache-to'; then
    echo "bench: warm mode skipped for buildah, which has no --cache-to (buildah $(buildah --version | awk '{print $3}'))" >&2
    BUILDAH_WARM=0
  fi
fi

# cache_flags BUILDER SHAPE REPO: the flags that read and fill a layer cache.
cache_flags() {
  case "$1" in
    kiln)
      # --reproducible: a warm build's layers that do not come from the cache
      # (COPY --from, COPY without --cache-copy-layers) then match the
      # priming build's, which the report checks.
      printf '%s\n' --cache=true "--cache-repo=$3" --reproducible
      # issue 10: COPY layers are cached too for the big-context shape.
      [[ "$2" == b ]] && printf '%s\n' --cache-copy-layers=true
      ;;
    buildah) printf '%s\n' --cache-from "$3" --cache-to "$3" ;;
  esac
  return 0
}

# ------------------------------------------------------------------ builds
FAILED=()

# build BUILDER SHAPE MODE RUN [extra flags...]: one measured build, from a
# fresh work dir removed afterwards (NODE_DIR: that one, kept unless
# NODE_KEEP is empty), pushed to $REG/bench/SHAPE-BUILDER-rRUN:MODE.
# A repository per run: a registry answers whether it has a blob per
# repository, so no build finds the layers of an earlier run there (a warm
# build finds its priming build's, as a rebuild would).
build() {
  local builder="$1" shape="$2" mode="$3" run="$4"; shift 4
  local id="$shape-$mode-$builder-r$run" ctx="$WORK/ctx/$shape"
  local dest="$REG/bench/$shape-$builder-r$run:$mode" dir="${NODE_DIR:-$WORK/b-$id}"
  local -a cmd
  # shellcheck disable=SC2206 # the extra flags are words on purpose
  case "$builder" in
    kiln)
      cmd=("$KILN" build --context "$ctx" --dockerfile "$ctx/Dockerfile" --destination "$dest"
        --insecure-registry "$REG" --kiln-dir "$dir" --isolation chroot "$@" ${BENCH_KILN_ARGS:-})
      ;;
    buildah)
      # Root's buildah keeps what it learnt about blobs (digests, which registry
      # has them) in /var/lib/containers/cache whatever --root says: each build
      # gets its own, in a private mount namespace, as a new pod would.
      mkdir -p "$dir/blob-info-cache" /var/lib/containers/cache
      local -a own=(unshare --mount --propagation private -- sh -c
        'mount --bind "$0" /var/lib/containers/cache && exec "$@"' "$dir/blob-info-cache")
      local -a g=(--root "$dir/root" --runroot "$dir/runroot" --storage-driver "$BUILDAH_DRIVER")
      cmd=("${own[@]}" buildah "${g[@]}" build --signature-policy "$WORK/conf/policy.json" --isolation chroot
        --format docker --layers -f "$ctx/Dockerfile" -t "localhost/bench/$id" "$@" ${BENCH_BUILDAH_ARGS:-} "$ctx"
        ::: "${own[@]}" buildah "${g[@]}" push --signature-policy "$WORK/conf/policy.json" "localhost/bench/$id" "docker://$dest")
      ;;
  esac
  mkdir -p "$dir"
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  printf '  %-22s load %-5s ' "$id" "$load"
  local rc=0
  "$BT" measure -record "$RECORDS" -log "$LOGS/$id.log" -ref "$dest" -timeout "${TIMEOUT}s" -interval 50ms \
    -label "shape=$shape" -label "mode=$mode" -label "builder=$builder" -label "run=$run" -label "load1=$load" \
    -- "${cmd[@]}" || rc=$?
  if ((rc == 130 || rc == 143)); then
    echo "bench: interrupted" >&2
    exit "$rc"
  elif ((rc != 0)); then
    FAILED+=("$id: $LOGS/$id.log")
    kill -0 "$REG_PID" 2>/dev/null || die "the registry on $REG stopped; see $LOGS/registry.log"
  fi
  if [[ -z "${NODE_KEEP:-}" ]]; then
    unmount_under "$dir"
    rm -rf "$dir"
  fi
}

say "building: shapes $SHAPES, builders $BUILDERS, modes $MODES, $RUNS runs (logs in $LOGS)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T_BUILDS=$SECONDS
for run in $(seq 1 "$RUNS"); do
  order="$BUILDERS"
  if ((run % 2 == 0)); then order="$(tr -s ' ' '\n' <<<"$BUILDERS" | tac | xargs)"; fi
  say "run $run/$RUNS (order: $order)"
  for shape in $SHAPES; do
    for mode in $MODES; do
      for builder in $order; do
        case "$mode" in
          cold) build "$builder" "$shape" cold "$run" ;;
          warm)
            [[ "$builder" == kiln && "$KILN_WARM" == 0 || "$builder" == buildah && "$BUILDAH_WARM" == 0 ]] && continue
            mapfile -t flags < <(cache_flags "$builder" "$shape" "$REG/bench/cache-$shape-$builder-r$run")
            build "$builder" "$shape" prime "$run" "${flags[@]}"
            build "$builder" "$shape" warm "$run" "${flags[@]}"
            ;;
          node)
            NODE_DIR="$WORK/node-$shape-$builder-r$run" NODE_KEEP=1 build "$builder" "$shape" nodeprime "$run"
            if [[ "$builder" == buildah ]]; then
              NODE_DIR="$WORK/node-$shape-$builder-r$run" build "$builder" "$shape" node "$run" --no-cache
            else
              NODE_DIR="$WORK/node-$shape-$builder-r$run" build "$builder" "$shape" node "$run"
            fi
            ;;
        esac
      done
    done
  done
done
T_BUILDS=$((SECONDS - T_BUILDS))

# ------------------------------------------------------------------ report
[[ -s "$RECORDS" ]] || die "no build was measured"
buildah_version="-"
command -v buildah >/dev/null && buildah_version="$(buildah --version | awk '{print $3}')"
meta=(
  -meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  -meta "machine=$(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GB RAM, Linux $(uname -r); load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  -meta "builders=kiln $(git describe --tags --always --dirty 2>/dev/null || echo dev) (--isolation chroot, fresh --kiln-dir), buildah $buildah_version (--layers, --isolation chroot, $BUILDAH_DRIVER storage, fresh --root/--runroot)"
  -meta "runs=$RUNS per shape, mode and builder, interleaved; work directories on $FSDESC; registry $REG (distribution, loopback, plain HTTP)"
  -meta "bases=$(IFS=';'; echo "${BASE_DESC[*]}" | sed 's/;/; /g')"
)
has "$SHAPES" a && meta+=(-meta "shape a=busybox + 3 RUN + COPY of 24 small files")
has "$SHAPES" b && meta+=(-meta "shape b=Debian $SUITE minbase + RUN creating 20,000 files + COPY of a $CONTEXT_MB MB generated context (random, text, zeros)")
has "$SHAPES" c && meta+=(-meta "shape c=Debian $SUITE with build-essential + RUN touch /one-file")
has "$SHAPES" d && meta+=(-meta "shape d=multi-stage: COPY hello.c + gcc -static on (c), the binary copied into busybox")
meta+=(-meta "columns=medians over the runs that succeeded; wall: start to exit of the build, push included (buildah: build then push); cpu: user+sys of the builder and every process below it; rss tree: peak of the summed RSS of the builder's processes, sampled every 50 ms; rss largest: the largest single process (as /usr/bin/time %M); image: its compressed layers, base layers included")
echo
"$BT" report -records "$RECORDS" -txt "$OUT/$STAMP.txt" -json "$OUT/$STAMP.json" "${meta[@]}"
echo
say "results: $OUT/$STAMP.txt and $OUT/$STAMP.json; logs: $LOGS"
say "time: ${T_BUILDS}s of builds, $((SECONDS - T0))s in all"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  printf 'bench: %d builds failed:\n' "${#FAILED[@]}" >&2
  printf '  %s\n' "${FAILED[@]}" >&2
  exit 1
fi
