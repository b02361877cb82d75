package sandbox

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// DetectContainer reports whether kiln runs in a container and names the
// evidence ("/.dockerenv exists", "/proc/1/cgroup path \"/kubepods/...\" is
// a Kubernetes cgroup", ...). Docker, Podman, containerd, CRI-O, LXC and
// Kubernetes are recognised, with cgroup v1 and v2.
func DetectContainer() (bool, string) {
	return detectContainer(os.DirFS("/"), os.Getenv)
}

// detectContainer looks for container markers in the filesystem fsys, whose
// root is the machine's "/", and in the environment. Markers are tried from
// the most to the least specific; the first one found is the reason.
func detectContainer(fsys fs.FS, getenv func(string) string) (bool, string) {
	for _, name := range []string{".dockerenv", "run/.containerenv"} {
		if _, err := fs.Stat(fsys, name); err == nil {
			return true, "/" + name + " exists"
		}
	}
	if getenv("KUBERNETES_SERVICE_HOST") != "" {
		return true, "KUBERNETES_SERVICE_HOST is set"
	}
	if v := getenv("container"); v != "" {
		return true, fmt.Sprintf("container=%s in the environment", v)
	}
	if b, err := fs.ReadFile(fsys, "run/systemd/container"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return true, fmt.Sprintf("/run/systemd/container says %q", bytes.TrimSpace(b))
	}
	for _, name := range []string{"proc/1/cgroup", "proc/self/cgroup"} {
		if path, runtime := containerCgroup(fsys, name); runtime != "" {
			return true, fmt.Sprintf("/%s path %q is a %s cgroup", name, path, runtime)
		}
	}
	if target, source := containerMount(fsys); source != "" {
		return true, fmt.Sprintf("/proc/self/mountinfo: %q comes from %q", target, source)
	}
	if pid := schedPID(fsys); pid > 1 {
		return true, fmt.Sprintf("/proc/1/sched shows pid %d for pid 1", pid)
	}
	return false, "no container marker found"
}

// containerCgroup returns the first cgroup path of the /proc/PID/cgroup file
// name that a container runtime created, and the runtime's name. Lines are
// "hierarchy-ID:controllers:path" for both cgroup v1 and v2 ("0::/path").
func containerCgroup(fsys fs.FS, name string) (string, string) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			continue
		}
		for _, elem := range strings.Split(fields[2], "/") {
			if runtime := cgroupRuntime(elem); runtime != "" {
				return fields[2], runtime
			}
		}
	}
	return "", ""
}

// cgroupRuntime names the runtime that creates cgroups named elem. The
// runtimes' own services (docker.service, containerd.service) do not count:
// kiln may run next to them on a host.
func cgroupRuntime(elem string) string {
	switch {
	case strings.HasPrefix(elem, "kubepods"):
		return "Kubernetes"
	case elem == "docker", strings.HasPrefix(elem, "docker-") && strings.HasSuffix(elem, ".scope"):
		return "Docker"
	case strings.HasPrefix(elem, "cri-containerd-"):
		return "containerd"
	case strings.HasPrefix(elem, "crio-"):
		return "CRI-O"
	case strings.HasPrefix(elem, "libpod-"), elem == "libpod_parent":
		return "Podman"
	case elem == "lxc", strings.HasPrefix(elem, "lxc.payload"):
		return "LXC"
	}
	return ""
}

// runtimeDirs are the state directories of container runtimes. When "/" or
// a file that runtimes bind-mount into containers (/etc/hosts) comes from
// one of them, kiln runs in a container even where cgroup namespaces hide
// the cgroup paths. Other mounts do not count: a host running containers
// has their root filesystems mounted too.
var runtimeDirs = []string{
	"/var/lib/docker/",
	"/var/lib/containerd/",
	"/var/lib/containers/storage/",
	"/var/lib/kubelet/pods/",
}

// containerMount returns "/" or a runtime-provided file of
// /proc/self/mountinfo whose source is in a runtime's state directory, and
// that source.
func containerMount(fsys fs.FS) (string, string) {
	f, err := fsys.Open("proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		return "", ""
	}
	for _, m := range mounts {
		switch m.MountPoint {
		case "/", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf":
		default:
			continue
		}
		sources := []string{m.Root}
		for _, opt := range strings.Split(m.SuperOptions, ",") {
			if _, dir, ok := strings.Cut(opt, "="); ok {
				sources = append(sources, strings.Split(dir, ":")...)
			}
		}
		for _, src := range sources {
			for _, dir := range runtimeDirs {
				if strings.Contains(src, dir) {
					return m.MountPoint, src
				}
			}
		}
	}
	return "", ""
}

// schedPID returns the pid that the first line of /proc/1/sched gives,
// "init (1234, #threads: 1)". Older kernels show the pid in the initial PID
// namespace there, so a value other than 1 means kiln is in a PID namespace.
func schedPID(fsys fs.FS) int {
	f, err := fsys.Open("proc/1/sched")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	line := sc.Text()
	open := strings.LastIndex(line, "(")
	comma := strings.LastIndex(line, ",")
	if open < 0 || comma < open {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[open+1 : comma]))
	if err != nil {
		return 0
	}
	return pid
}
