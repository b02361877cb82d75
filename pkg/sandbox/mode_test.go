package sandbox

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "chroot", "rootless", "in-place"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("chroot "); err == nil || !strings.Contains(err.Error(), `"chroot "`) {
		t.Errorf("ParseMode(\"chroot \"): %v, want an error quoting the value", err)
	}
}

func TestResolve(t *testing.T) {
	denied := errors.New("mount: operation not permitted")
	type env struct {
		euid      int
		inUserNS  bool
		container bool
		probe     error // for both probes
	}
	tests := []struct {
		name    string
		env     env
		mode    Mode
		force   bool
		want    Mode
		reason  string // substring of the reason or error
		wantErr bool
	}{
		{"auto: root on a machine", env{euid: 0}, ModeAuto, false, ModeChroot, "running as root outside a container", false},
		{"auto: root in a privileged container", env{euid: 0, container: true}, ModeAuto, false, ModeChroot, "in a container (marker) that permits mount namespaces", false},
		{"auto: root in a pod", env{euid: 0, container: true, probe: denied}, ModeAuto, false, ModeInPlace, "does not permit mount namespaces (mount: operation not permitted)", false},
		{"auto: root on a locked-down machine", env{euid: 0, probe: denied}, ModeAuto, false, "", "--isolation=in-place --force", true},
		{"auto: user", env{euid: 1000}, ModeAuto, false, ModeRootless, "running as uid 1000", false},
		{"auto: user without user namespaces", env{euid: 1000, container: true, probe: denied}, ModeAuto, false, "", "user namespaces are not permitted", true},
		{"auto: in kiln's user namespace", env{euid: 0, inUserNS: true}, ModeAuto, false, ModeRootless, "user namespace description", false},
		{"chroot as root", env{euid: 0}, ModeChroot, false, ModeChroot, "requested", false},
		{"chroot as user", env{euid: 1000}, ModeChroot, false, "", "--isolation=rootless", true},
		{"rootless before entering", env{euid: 1000}, ModeRootless, false, ModeRootless, "requested", false},
		{"rootless after entering", env{euid: 0, inUserNS: true}, ModeRootless, false, ModeRootless, "user namespace description", false},
		{"in-place in a container", env{euid: 0, container: true}, ModeInPlace, false, ModeInPlace, "running in a container (marker)", false},
		{"in-place on a machine", env{euid: 0}, ModeInPlace, false, "", "--force", true},
		{"in-place forced", env{euid: 0}, ModeInPlace, true, ModeInPlace, "forced outside a container", false},
		{"unknown", env{}, Mode("bridge"), false, "", `"bridge"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := environment{
				euid:      tt.env.euid,
				inUserNS:  tt.env.inUserNS,
				userNS:    func() string { return "user namespace description" },
				container: func() (bool, string) { return tt.env.container, "marker" },
				probe: func(rootless bool) error {
					if rootless != (tt.env.euid != 0) {
						t.Errorf("probe(rootless=%v) as uid %d", rootless, tt.env.euid)
					}
					return tt.env.probe
				},
			}
			got, reason, err := e.resolve(tt.mode, tt.force)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("resolve(%q) = %q, %q, %v; want an error containing %q", tt.mode, got, reason, err, tt.reason)
				}
				return
			}
			if err != nil || got != tt.want || !strings.Contains(reason, tt.reason) {
				t.Errorf("resolve(%q) = %q, %q, %v; want %q with a reason containing %q", tt.mode, got, reason, err, tt.want, tt.reason)
			}
		})
	}
}

// The probes run for real: root on this machine may create namespaces.
func TestProbeIsolation(t *testing.T) {
	testutil.RequireRoot(t, "chroot isolation's namespaces and mounts are permitted only to root")
	if err := probeIsolation(false); err != nil {
		t.Errorf("probe for chroot isolation: %v", err)
	}
	if err := probeIsolation(true); err != nil {
		t.Errorf("probe for rootless isolation: %v", err)
	}
	mode, reason, err := Resolve(ModeAuto, false)
	if err != nil || mode != ModeChroot || reason == "" {
		t.Errorf("Resolve(auto) as root = %q, %q, %v; want chroot with a reason", mode, reason, err)
	}
}

func TestNew(t *testing.T) {
	if _, err := New(ModeAuto); err == nil {
		t.Error("New(auto) succeeded")
	}
	if _, err := New(ModeRootless); err == nil || !strings.Contains(err.Error(), "EnterUserNamespace") {
		t.Errorf("New(rootless) outside kiln's user namespace: %v", err)
	}
	sb, err := New(ModeInPlace)
	if err != nil || sb.Mode() != ModeInPlace {
		t.Errorf("New(in-place) = %v, %v", sb, err)
	}
	_, err = New(ModeChroot)
	if (os.Geteuid() == 0) != (err == nil) {
		t.Errorf("New(chroot) as uid %d: %v", os.Geteuid(), err)
	}
}

func TestExitError(t *testing.T) {
	if got := (&ExitError{Code: 42}).Error(); got != "exited with code 42" {
		t.Errorf("%q", got)
	}
	if got := (&ExitError{Code: 137, Signal: "SIGKILL"}).Error(); got != "killed by signal SIGKILL" {
		t.Errorf("%q", got)
	}
}
