package executor

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCheckEmulation(t *testing.T) {
	dir := t.TempDir()
	foreign := "arm64"
	if runtime.GOARCH == "arm64" {
		foreign = "amd64"
	}
	if err := checkEmulation(runtime.GOARCH, dir); err != nil {
		t.Errorf("native: %v", err)
	}
	err := checkEmulation(foreign, dir)
	if err == nil || !strings.Contains(err.Error(), "qemu-user-static") {
		t.Fatalf("no handler: %v", err)
	}
	handler := filepath.Join(dir, "qemu-"+qemuNames[foreign])
	write := func(s string) {
		if err := os.WriteFile(handler, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("enabled\ninterpreter /usr/bin/qemu-x\nflags: OC\noffset 0\n")
	if err := checkEmulation(foreign, dir); err == nil || !strings.Contains(err.Error(), "F (fix binary)") {
		t.Errorf("without F: %v", err)
	}
	write("disabled\ninterpreter /usr/bin/qemu-x\nflags: OCF\n")
	if err := checkEmulation(foreign, dir); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled: %v", err)
	}
	write("enabled\ninterpreter /usr/bin/qemu-x\nflags: POCF\n")
	if err := checkEmulation(foreign, dir); err != nil {
		t.Errorf("usable handler: %v", err)
	}
}
