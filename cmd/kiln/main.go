// Command kiln builds container images from Dockerfiles without a daemon.
// Installed as "executor" it takes kaniko's executor arguments.
package main

import (
	"os"

	"github.com/kiln-build/kiln/pkg/cli"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

func main() {
	// A re-execution of kiln by its sandbox does its job here and exits.
	sandbox.Init()
	os.Exit(cli.Execute(os.Args))
}
