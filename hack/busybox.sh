#!/usr/bin/env bash
# busybox.sh ARCH [DIR]: prints the path of a static busybox for linux/ARCH (a Go
# architecture: amd64, arm64, ...), for the debug image of that platform.
#   This machine's architecture: /bin/busybox (Debian package busybox-static).
#   Another one: Debian's busybox-static for it, downloaded with apt-get and unpacked
#   into DIR (default: a new temporary directory). As root, the architecture is added
#   to dpkg's (dpkg --add-architecture ARCH; apt-get update) when apt does not know it.
# The file is checked: an ELF executable for ARCH that needs no dynamic loader.
# Exit status: 0 with the path on stdout; 2 when it cannot be obtained on this
# machine (no apt, or not root and apt has no package lists for ARCH), so that a
# caller may skip; 1 for anything else (download failed as root, not static, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ARCH="${1:?usage: hack/busybox.sh ARCH [DIR]}"
unavailable() { echo "busybox.sh: $* " >&2; exit 2; }
die() { echo "busybox.sh: $*" >&2; exit 1; }

case "$ARCH" in
  amd64 | arm64 | s390x | riscv64) deb_arch="$ARCH" ;;
  386) deb_arch=i386 ;;
  arm) deb_arch=armhf ;;
  ppc64le) deb_arch=ppc64el ;;
  *) die "unknown architecture \"$ARCH\"" ;;
esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tool="${RELEASETOOL:-}"
if [[ -z "$tool" ]]; then
  go build -o "$work/releasetool" ./internal/tools/releasetool
  tool="$work/releasetool"
fi

if [[ "$ARCH" == "$(go env GOHOSTARCH)" ]]; then
  [[ -f /bin/busybox ]] || unavailable "/bin/busybox not found: install the Debian package busybox-static"
  "$tool" elf -arch "$ARCH" /bin/busybox || die "/bin/busybox is not a static busybox for $ARCH"
  echo /bin/busybox
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || unavailable "Debian's busybox-static:$deb_arch needs apt-get and dpkg-deb (a Debian machine)"
dir="${2:-$(mktemp -d)}"
rm -rf "$dir/download"; mkdir -p "$dir/download"
download() { (cd "$dir/download" && apt-get download -q "busybox-static:$deb_arch") >"$work/apt.log" 2>&1; }
if ! download; then
  if [[ $(id -u) != 0 ]]; then
    unavailable "apt-get download busybox-static:$deb_arch failed and only root can add $deb_arch to dpkg's architectures (dpkg --add-architecture $deb_arch; apt-get update): $(tail -1 "$work/apt.log")"
  fi
  if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch"; then
    echo "busybox.sh: adding $deb_arch to dpkg's architectures for busybox-static:$deb_arch" >&2
    dpkg --add-architecture "$deb_arch"
  fi
  # A source that fails (one without this architecture, one out of reach)
  # makes apt-get update fail while Debian's lists are fine: the download
  # below says whether they are.
  apt-get update -q >"$work/update.log" 2>&1 || echo "busybox.sh: apt-get update: $(grep -E '^(E|W):' "$work/update.log" | head -3)" >&2
  download || die "apt-get download busybox-static:$deb_arch failed: $(cat "$work/apt.log")"
fi
debs=("$dir"/download/busybox-static_*_"$deb_arch".deb)
[[ -f "${debs[0]}" && ${#debs[@]} == 1 ]] || die "expected one busybox-static_*_$deb_arch.deb in \"$dir/download\", got: ${debs[*]}"
rm -rf "$dir/root"
dpkg-deb -x "${debs[0]}" "$dir/root" || die "unpacking \"${debs[0]}\" failed"
bb="$dir/root/bin/busybox"
[[ -f "$bb" ]] || die "\"${debs[0]}\" has no /bin/busybox"
"$tool" elf -arch "$ARCH" "$bb" || die "\"${debs[0]}\": /bin/busybox is not a static busybox for $ARCH"
echo "busybox.sh: Debian busybox-static $(dpkg-deb -f "${debs[0]}" Version) for $deb_arch" >&2
echo "$bb"
