// Command xenmca-go is a Go client of the xenmca coordinator: `status` prints
// its state, `dom0` acts as a minimal dom0 logger. It behaves as the Node
// client (clients/node, xenmca-node) does; see ../../README.md.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"xenmca.dev/clients/go/internal/cli"
)

func main() {
	// A closed stdout is an error of the write (EPIPE), not a silent death by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(cli.Main(os.Args[1:], cli.IO{Stdout: os.Stdout, Stderr: os.Stderr, HandleSignals: true}))
}
