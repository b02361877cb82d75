// Package integration runs the real kiln binary against real registries,
// git and HTTP servers on 127.0.0.1, and runc.
package integration

import (
	"os"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}
