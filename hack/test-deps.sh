#!/usr/bin/env bash
# test-deps.sh: installs the Debian packages the tests use, when running as
# root and they are missing. Without root the tests that need them skip with
# a message naming the package.
#   busybox-static  a static shell for the images RUN tests build
#   uidmap          newuidmap/newgidmap for rootless isolation tests
#   git             a git server (git http-backend, git daemon) for git context tests
#   runc            the OCI runtime of the end-to-end test under container security
#   file            tells a static busybox from a dynamic one
#   passt           pasta, user-mode networking for RUN on a host (sandbox tests)
#   slirp4netns     the other user-mode networking kiln can use (sandbox tests)
#   iproute2        ip, for the network namespaces of the sandbox security tests
set -euo pipefail
want=()
command -v busybox >/dev/null 2>&1 && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked' || want+=(busybox-static)
command -v newuidmap >/dev/null 2>&1 || want+=(uidmap)
command -v git >/dev/null 2>&1 || want+=(git)
command -v runc >/dev/null 2>&1 || want+=(runc)
command -v file >/dev/null 2>&1 || want+=(file)
command -v pasta >/dev/null 2>&1 || want+=(passt)
command -v slirp4netns >/dev/null 2>&1 || want+=(slirp4netns)
command -v ip >/dev/null 2>&1 || want+=(iproute2)
[[ ${#want[@]} -eq 0 ]] && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "test-deps: not root, not installing ${want[*]} (tests needing them will skip)" >&2
  exit 0
fi
echo "test-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${want[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${want[@]}" >/dev/null; }
