// Command benchtool is the Go half of hack/bench.sh, the end-to-end benchmark
// of kiln against buildah. It is not shipped.
//
//	benchtool measure   run a build command, record wall time, CPU time and peak RSS
//	benchtool gencontext write the deterministic mixed build context of shape (b)
//	benchtool pushlayout push the image of an OCI layout (a cached base image)
//	benchtool describe  the size of an OCI layout's image
//	benchtool freeport  print a free TCP port on 127.0.0.1
//	benchtool report    medians per shape, mode and builder, side by side
package main

import (
	"fmt"
	"net"
	"os"
)

const usageText = `usage: benchtool COMMAND [flags]

commands:
  measure     -record FILE -label K=V... [-log FILE] [-ref IMAGE] -- CMD ARGS... [::: CMD ARGS...]
  gencontext  -dir DIR [-bytes N] [-seed N]
  pushlayout  -layout DIR -ref IMAGE
  describe    -layout DIR
  freeport
  report      -records FILE -txt FILE -json FILE [-meta K=V...]

Run "benchtool COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "measure":
		err = measureCmd(args)
	case "gencontext":
		err = genContextCmd(args)
	case "pushlayout":
		err = pushLayoutCmd(args)
	case "describe":
		err = describeLayoutCmd(args)
	case "freeport":
		err = freePort()
	case "report":
		err = reportCmd(args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usageText)
	default:
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n%s", cmd, usageText)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// freePort prints a port nothing listens on right now. Another process may
// take it before the registry does; the script then fails to start it and
// says so, and BENCH_REGISTRY picks an address by hand.
func freePort() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}
