package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// How a RUN with the default network is connected (netPlan.kind).
const (
	// netShared: kiln's own network namespace. In a container that is the
	// pod's network, which is what a RUN should get.
	netShared = "shared"
	// netPasta and netSlirp: a network namespace of the RUN's own,
	// connected to the outside by user-mode networking, so that it has
	// outbound connections but not the machine's loopback services.
	netPasta = "pasta"
	netSlirp = "slirp4netns"
	// netHostNoRaw: the machine's network namespace, without CAP_NET_RAW,
	// when no user-mode networking is installed.
	netHostNoRaw = "host-no-raw"
)

// netPlan is how RUN commands with the default network are connected,
// decided once per build.
type netPlan struct {
	kind string
	// tool is the absolute path of pasta or slirp4netns.
	tool string
	// why is the log line that says what RUN gets and why.
	why  string
	warn bool
}

// networkEnv overrides planNetwork's choice: "pasta" or "slirp4netns" (a
// network of the RUN's own even in a container, whose loopback may hold
// sidecars' services), or "shared" (kiln's network, with CAP_NET_RAW).
const networkEnv = "KILN_RUN_NETWORK"

// planNetwork decides the default network of RUN commands in chroot and
// rootless isolation: the container's when kiln runs in one, otherwise a
// network namespace of the RUN's own, connected by pasta (preferred) or
// slirp4netns, whichever is installed. Without either, RUN shares the
// machine's network without CAP_NET_RAW, with a warning: refusing RUN
// network altogether would break most builds. $KILN_RUN_NETWORK
// (networkEnv) overrides the choice.
//
// Both need /dev/net/tun, which kiln must be able to open (checked by
// openTun): rootless kiln cannot where the device is not world-writable.
func planNetwork(container func() (bool, string), lookPath func(string) (string, error), getenv func(string) string,
	openTun func() error) (netPlan, error) {
	userNet := func(kind, because string) netPlan {
		p, _ := lookPath(kind)
		return netPlan{kind: kind, tool: p, why: fmt.Sprintf("RUN network: a network namespace of its own, connected by %s (%s), %s: "+
			"outbound connections work, the loopback services of kiln's machine or pod are out of reach", kind, p, because)}
	}
	switch v := getenv(networkEnv); v {
	case "", "auto":
	case netPasta, netSlirp:
		if _, err := lookPath(v); err != nil {
			pkg := map[string]string{netPasta: "passt", netSlirp: "slirp4netns"}[v]
			return netPlan{}, fmt.Errorf("%s=%s, but %s is not installed (Debian package %s): %w", networkEnv, v, v, pkg, err)
		}
		if err := openTun(); err != nil {
			return netPlan{}, fmt.Errorf("%s=%s, but kiln cannot open /dev/net/tun, which %s needs: %w", networkEnv, v, v, err)
		}
		return userNet(v, "as "+networkEnv+" asks"), nil
	case netShared:
		return netPlan{kind: netShared, why: fmt.Sprintf("RUN network: kiln's own, as %s=%s asks", networkEnv, v)}, nil
	default:
		return netPlan{}, fmt.Errorf("%s=%q: want %q, %q, %q or %q", networkEnv, v, "auto", netPasta, netSlirp, netShared)
	}
	if in, why := container(); in {
		return netPlan{kind: netShared, why: fmt.Sprintf("RUN network: kiln's own, that of the container it runs in (%s)", why)}, nil
	}
	missing := "neither pasta nor slirp4netns is installed to give RUN a network of its own"
	fix := "install the Debian package passt (or slirp4netns)"
	for _, kind := range []string{netPasta, netSlirp} {
		if _, err := lookPath(kind); err != nil {
			continue
		}
		if err := openTun(); err != nil {
			missing = fmt.Sprintf("%s is installed, but kiln cannot open /dev/net/tun, which it needs (%v)", kind, err)
			fix = "make /dev/net/tun usable (mode 0666, as Linux distributions install it)"
			break
		}
		return userNet(kind, "kiln runs on a host, not in a container"), nil
	}
	return netPlan{kind: netHostNoRaw, warn: true, why: "RUN network: this machine's network, without CAP_NET_RAW: " +
		missing + ", so a RUN can reach services listening on this machine's loopback interface; " + fix}, nil
}

// openTun checks that the process can open /dev/net/tun, as pasta and
// slirp4netns do to make the RUN's network interface. Opening it creates
// nothing.
func openTun() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// userNetwork reports whether the plan gives RUN a network namespace of
// its own.
func (p netPlan) userNetwork() bool { return p.kind == netPasta || p.kind == netSlirp }

// dnsForwardAddr is where pasta answers DNS for the machine's resolver when
// that one listens on loopback (systemd-resolved, dnsmasq), unreachable
// from the RUN's namespace otherwise.
const dnsForwardAddr = "169.254.1.1"

// slirpDNS is slirp4netns's built-in DNS forwarder.
const slirpDNS = "10.0.2.3"

// resolvConf adapts the machine's /etc/resolv.conf to the plan: with
// pasta, loopback name servers become the address pasta forwards to the
// machine's resolver (returned as forward, "" when none is needed); with
// slirp4netns, the name servers are its DNS forwarder.
func (p netPlan) resolvConf(machine []byte) (conf []byte, forward string) {
	if !p.userNetwork() {
		return machine, ""
	}
	var out bytes.Buffer
	replaced := false
	sc := bufio.NewScanner(bytes.NewReader(machine))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			addr, err := netip.ParseAddr(fields[1])
			loopback := err == nil && addr.Unmap().IsLoopback()
			switch {
			case p.kind == netSlirp || loopback:
				if !replaced {
					server := slirpDNS
					if p.kind == netPasta {
						server, forward = dnsForwardAddr, dnsForwardAddr
					}
					out.WriteString("nameserver " + server + "\n")
					replaced = true
				}
				continue
			}
		}
		out.WriteString(line + "\n")
	}
	if p.kind == netSlirp && !replaced {
		out.WriteString("nameserver " + slirpDNS + "\n")
	}
	return out.Bytes(), forward
}

// netStartTimeout bounds how long pasta or slirp4netns may take to set up
// a RUN's network.
const netStartTimeout = 30 * time.Second

// connect connects the network namespace of process pid (a RUN's helper,
// waiting for its configuration) to the outside, and returns the function
// that disconnects it. forward is pasta's DNS forwarding address, if any.
func (p netPlan) connect(pid int, forward string) (func(), error) {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return nil, fmt.Errorf("opening the RUN's network namespace: %w", err)
	}
	defer ns.Close()
	switch p.kind {
	case netPasta:
		return startPasta(p.tool, ns, forward)
	case netSlirp:
		return startSlirp(p.tool, ns)
	}
	return nil, fmt.Errorf("no user-mode networking in plan %q", p.kind)
}

// networkHelperEnv is the environment of pasta and slirp4netns: nothing of
// kiln's.
var networkHelperEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// startPasta runs pasta in the foreground for the namespace ns. pasta
// writes its pid to the --pid file once the namespace is configured: a
// pipe, so that kiln knows when the RUN may start.
//
// pasta is run as root ("--runas 0:0"): started as root it would otherwise
// switch to nobody, who may not enter the namespace. It keeps only the
// capabilities it needs. --no-map-gw, and no port forwarding either way
// (-t, -u, -T, -U none), keep the machine's loopback out of reach.
func startPasta(tool string, ns *os.File, forward string) (func(), error) {
	pidR, pidW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pidR.Close()
	args := []string{"--config-net", "--quiet", "--foreground", "--runas", "0:0",
		"--netns", "/proc/self/fd/3", "--no-netns-quit", "--pid", "/proc/self/fd/4",
		"-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw"}
	if forward != "" {
		args = append(args, "--dns-forward", forward)
	}
	cmd := exec.Command(tool, args...)
	cmd.Env = networkHelperEnv
	stderr := &limitedBuffer{max: 4096}
	cmd.Stderr = stderr
	cmd.ExtraFiles = []*os.File{ns, pidW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	pidW.Close()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", tool, err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	// A line with its pid once ready; end of file if it exits first.
	line, err := readLineWithin(pidR, netStartTimeout, cmd.Process)
	if err != nil || strings.TrimSpace(line) == "" {
		stop()
		return nil, fmt.Errorf("%s did not set up the network: %s", tool, explain(err, cmd, stderr))
	}
	return stop, nil
}

// startSlirp runs slirp4netns for the namespace ns: it writes to its ready
// file descriptor once the namespace is configured, and exits when its exit
// file descriptor is closed.
func startSlirp(tool string, ns *os.File) (func(), error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	exitR, exitW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(tool, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--ready-fd=4", "--exit-fd=5", "--netns-type=path", "/proc/self/fd/3", "tap0")
	cmd.Env = networkHelperEnv
	stderr := &limitedBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.ExtraFiles = []*os.File{ns, readyW, exitR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	readyW.Close()
	exitR.Close()
	if err != nil {
		exitW.Close()
		return nil, fmt.Errorf("starting %s: %w", tool, err)
	}
	stop := func() {
		exitW.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	line, err := readLineWithin(readyR, netStartTimeout, cmd.Process)
	if err != nil || !strings.HasPrefix(line, "1") {
		stop()
		return nil, fmt.Errorf("%s did not set up the network: %s", tool, explain(err, cmd, stderr))
	}
	return stop, nil
}

// readLineWithin reads what r gives until a newline or end of file, for at
// most timeout; then it kills proc, which ends the read.
func readLineWithin(r *os.File, timeout time.Duration, proc *os.Process) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if errors.Is(err, os.ErrClosed) || (err != nil && line != "") {
			err = nil
		}
		done <- result{line, err}
	}()
	select {
	case res := <-done:
		return res.line, res.err
	case <-time.After(timeout):
		proc.Kill()
		<-done
		return "", fmt.Errorf("no answer within %s", timeout)
	}
}

// explain says why a network helper failed, from its error and output.
func explain(err error, cmd *exec.Cmd, stderr *limitedBuffer) string {
	var parts []string
	if err != nil && !errors.Is(err, os.ErrClosed) {
		parts = append(parts, err.Error())
	}
	if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		parts = append(parts, cmd.ProcessState.String())
	}
	var lines []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		// pasta also tries the system log, which a container may lack.
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "to syslog") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 {
		parts = append(parts, strings.Join(lines, "; "))
	}
	if len(parts) == 0 {
		return "it exited without saying why"
	}
	return strings.Join(parts, ": ")
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }
