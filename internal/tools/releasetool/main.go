// Command releasetool does the steps of `make release` (hack/release.sh)
// that shell tools cannot do reliably. It is not shipped.
//
//	releasetool elf -arch ARCH FILE      FILE is a static ELF executable for linux/ARCH
//	releasetool applets FILE             the applets of a busybox binary, read without running it
//	releasetool layout -dir DIR REF=NAME...
//	                                     copy each image or index REF from a registry into the
//	                                     OCI layout DIR, named NAME (org.opencontainers.image.ref.name)
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "elf":
		err = elfCommand(args)
	case "applets":
		err = appletsCommand(args)
	case "layout":
		err = layoutCommand(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "releasetool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: releasetool elf -arch ARCH FILE | applets FILE | layout -dir DIR REF=NAME...")
	os.Exit(2)
}
