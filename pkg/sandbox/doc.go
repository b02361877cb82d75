// Package sandbox runs the command of a Dockerfile RUN instruction without a
// daemon.
//
// Three isolation modes exist:
//
//   - chroot: the command runs in a root filesystem directory, pivoted into
//     it, in fresh mount, PID, UTS and IPC namespaces (and a network
//     namespace of its own on a host, see network.go), with /proc, /dev,
//     /sys and generated /etc/hosts, /etc/resolv.conf and /etc/hostname
//     mounted for the RUN only. Needs root.
//   - rootless: the same inside a user namespace that kiln enters once, early
//     (EnterUserNamespace), so that a non-root user is "root" of the build.
//   - in-place: kaniko's model for unprivileged Kubernetes pods, where the
//     root filesystem being built is "/" of the container kiln runs in and
//     no namespace or mount can be created. The command runs directly.
//
// Every mode runs the command under a helper process, a re-execution of the
// kiln binary (see Init): in chroot and rootless modes it is PID 1 of the
// new PID namespace and sets up the mounts before it pivots; in in-place
// mode it is a child subreaper. Either way the helper reaps orphans and,
// when the command exits, ends every process the command left behind.
// Mounts are only ever made in the helper's private mount namespace, so
// nothing is mounted on the host and nothing survives the RUN.
//
// What a RUN command may do is the same in every mode as far as the mode
// allows (see docs/security.md): Docker's default capabilities without
// CAP_MKNOD and no ambient ones (capabilities.go), Docker's default seccomp
// profile compiled to BPF by kiln (seccomp.go, seccompbpf.go), a nodev
// root filesystem and /dev (rootsetup.go), and on a host a network
// namespace of its own connected by pasta or slirp4netns (network.go).
// kiln's own process is not dumpable (protect.go), and in in-place
// isolation kiln's own files are checked and put back after every RUN
// (ownfiles.go).
//
// Resolve turns the requested mode ("auto" by default) into a concrete one
// with a reason for the log; DetectContainer and Protected give the
// container facts that in-place builds need.
package sandbox
