package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
)

// The files kiln generates for a RUN and mounts over the root filesystem's
// own, which stay untouched.
const (
	etcHosts    = "/etc/hosts"
	etcResolv   = "/etc/resolv.conf"
	etcHostname = "/etc/hostname"
)

// writeEtcFiles writes the generated files of spec in dir and returns their
// paths there, by the path they are mounted at. resolv is /etc/resolv.conf
// unless spec has its own; nil means the machine's.
func writeEtcFiles(dir string, spec *Spec, resolv []byte) (map[string]string, error) {
	hostname := spec.hostname()
	hosts := spec.Hosts
	if hosts == nil {
		machine, err := os.ReadFile("/etc/hosts")
		hosts = defaultHosts(spec.Network, hostname, machine, err == nil)
	}
	if spec.ResolvConf != nil {
		resolv = spec.ResolvConf
	}
	if resolv == nil {
		resolv = defaultResolvConf()
	}
	files := map[string]string{}
	for target, content := range map[string][]byte{
		etcHosts:    hosts,
		etcResolv:   resolv,
		etcHostname: []byte(hostname + "\n"),
	} {
		p := filepath.Join(dir, filepath.Base(target))
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return nil, err
		}
		files[target] = p
	}
	return files, nil
}

func (s *Spec) hostname() string {
	if s.Hostname == "" {
		return DefaultHostname
	}
	return s.Hostname
}

// localhostEntries are the /etc/hosts lines every container has.
const localhostEntries = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

// defaultHosts is /etc/hosts for a RUN that brings none: on the machine's
// network, the machine's own entries (so that names added for a CI pod,
// such as Kubernetes host aliases, resolve as they do for kiln), otherwise
// the localhost entries; either way with the RUN's host name.
func defaultHosts(network, hostname string, machine []byte, machineOK bool) []byte {
	var b bytes.Buffer
	if network != NetworkNone && machineOK {
		b.Write(machine)
		if len(machine) > 0 && machine[len(machine)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString(localhostEntries)
	}
	b.WriteString("127.0.0.1\t" + hostname + "\n")
	return b.Bytes()
}

// defaultResolvConf is the machine's /etc/resolv.conf, for a RUN that
// shares the machine's network or has none (a RUN network of its own
// adapts it: netPlan.resolvConf). A machine without one gets an empty file,
// which makes resolvers use their defaults as the machine does.
func defaultResolvConf() []byte {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return []byte{}
	}
	return b
}
