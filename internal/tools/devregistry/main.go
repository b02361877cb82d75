// Command devregistry serves a Docker Distribution registry (the real one,
// in-process) on a loopback address with filesystem storage, for `make demo`
// and local experiments. It is not shipped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5001", "loopback address to listen on")
	dir := flag.String("dir", "", "storage directory (required)")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()
	if *dir == "" {
		log.Fatal("devregistry: -dir is required")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("devregistry: %q is not a loopback address", *addr)
	}
	// distribution logs through logrus's standard logger, and logs the 404s
	// of every blob existence check at error level.
	if !*verbose {
		logrus.SetOutput(io.Discard)
	}
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem":  configuration.Parameters{"rootdirectory": *dir},
		"delete":      configuration.Parameters{"enabled": true},
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("devregistry: %v", err)
	}
	srv := &http.Server{Handler: handlers.NewApp(context.Background(), cfg)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	fmt.Printf("registry listening on http://%s (storage %s)\n", ln.Addr(), *dir)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("devregistry: %v", err)
	}
}
