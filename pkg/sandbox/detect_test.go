package sandbox

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestDetectContainer(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	hostCgroupV1 := "12:pids:/user.slice/user-1000.slice\n1:name=systemd:/init.scope\n0::/init.scope\n"
	hostMountinfo := "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		// A container's root on the host is not a marker.
		"40 22 0:50 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X,upperdir=/var/lib/docker/overlay2/abc/diff\n"
	tests := []struct {
		name   string
		fs     fstest.MapFS
		env    map[string]string
		want   bool
		reason string
	}{
		{name: "host", fs: fstest.MapFS{
			"proc/1/cgroup":       file(hostCgroupV1),
			"proc/self/cgroup":    file("0::/system.slice/docker.service\n"),
			"proc/self/mountinfo": file(hostMountinfo),
			"proc/1/sched":        file("systemd (1, #threads: 1)\n---\n"),
		}, want: false, reason: "no container marker found"},
		{name: "docker", fs: fstest.MapFS{".dockerenv": file("")}, want: true, reason: "/.dockerenv exists"},
		{name: "podman", fs: fstest.MapFS{"run/.containerenv": file("engine=\"podman\"\n")}, want: true, reason: "/run/.containerenv exists"},
		{name: "kubernetes env", env: map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, want: true, reason: "KUBERNETES_SERVICE_HOST is set"},
		{name: "container env", env: map[string]string{"container": "podman"}, want: true, reason: "container=podman in the environment"},
		{name: "systemd container file", fs: fstest.MapFS{"run/systemd/container": file("lxc\n")}, want: true, reason: `/run/systemd/container says "lxc"`},
		{name: "cgroup v1 kubepods", fs: fstest.MapFS{
			"proc/1/cgroup": file("11:memory:/kubepods/burstable/pod1234/0123abcd\n10:cpu:/kubepods/burstable/pod1234/0123abcd\n"),
		}, want: true, reason: `/proc/1/cgroup path "/kubepods/burstable/pod1234/0123abcd" is a Kubernetes cgroup`},
		{name: "cgroup v2 kubepods slice", fs: fstest.MapFS{
			"proc/1/cgroup": file("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-0a1b.scope\n"),
		}, want: true, reason: "Kubernetes cgroup"},
		{name: "cgroup v1 docker", fs: fstest.MapFS{"proc/1/cgroup": file("4:devices:/docker/0123456789abcdef\n")}, want: true, reason: "Docker cgroup"},
		{name: "cgroup v2 docker scope", fs: fstest.MapFS{"proc/self/cgroup": file("0::/system.slice/docker-0123abcd.scope\n")}, want: true, reason: `/proc/self/cgroup path "/system.slice/docker-0123abcd.scope" is a Docker cgroup`},
		{name: "containerd", fs: fstest.MapFS{"proc/1/cgroup": file("0::/system.slice/cri-containerd-0a1b.scope\n")}, want: true, reason: "containerd cgroup"},
		{name: "cri-o", fs: fstest.MapFS{"proc/1/cgroup": file("0::/machine.slice/crio-0a1b.scope\n")}, want: true, reason: "CRI-O cgroup"},
		{name: "podman cgroup", fs: fstest.MapFS{"proc/1/cgroup": file("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-0a1b.scope/container\n")}, want: true, reason: "Podman cgroup"},
		{name: "cgroup namespace, docker root overlay", fs: fstest.MapFS{
			"proc/1/cgroup": file("0::/\n"),
			"proc/self/mountinfo": file("600 500 0:60 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/ABC:/var/lib/docker/overlay2/l/DEF,upperdir=/var/lib/docker/overlay2/123/diff\n" +
				"610 600 0:61 / /proc rw - proc proc rw\n"),
		}, want: true, reason: `/proc/self/mountinfo: "/" comes from "/var/lib/docker/overlay2/l/ABC"`},
		{name: "kubelet etc-hosts", fs: fstest.MapFS{
			"proc/self/mountinfo": file("600 500 0:60 / / rw - overlay overlay rw,lowerdir=/l\n" +
				"620 600 254:1 /var/lib/kubelet/pods/0a1b/etc-hosts /etc/hosts rw - ext4 /dev/vda1 rw\n"),
		}, want: true, reason: `"/etc/hosts" comes from "/var/lib/kubelet/pods/0a1b/etc-hosts"`},
		{name: "sched pid", fs: fstest.MapFS{"proc/1/sched": file("bash (12345, #threads: 1)\n")}, want: true, reason: "/proc/1/sched shows pid 12345 for pid 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := tt.fs
			if fsys == nil {
				fsys = fstest.MapFS{}
			}
			got, reason := detectContainer(fsys, func(k string) string { return tt.env[k] })
			if got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("detectContainer() = %v, %q; want %v, %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}
