// Command kiln builds container images from Dockerfiles without a daemon.
// Installed as "executor" it takes kaniko's executor arguments.
package main

import (
	"os"

	"github.com/kiln-build/kiln/pkg/cli"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

func main() {
	// First, before anything reads a credential: Init makes the process
	// not dumpable, so that a RUN step cannot read kiln's memory,
	// environment or file descriptors through /proc. A re-execution of
	// kiln by its sandbox does its job here and exits.
	sandbox.Init()
	os.Exit(cli.Execute(os.Args))
}
