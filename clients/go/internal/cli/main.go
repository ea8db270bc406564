package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"xenmca.dev/clients/go/internal/client"
	"xenmca.dev/clients/go/internal/dom0"
	"xenmca.dev/clients/go/internal/render"
	"xenmca.dev/clients/go/internal/rpcerr"
	"xenmca.dev/clients/go/internal/tokens"
)

// IO are the streams a run uses, and whether it handles SIGINT/SIGTERM.
type IO struct {
	Stdout, Stderr io.Writer
	// HandleSignals makes dom0 stop on SIGINT/SIGTERM.
	HandleSignals bool
	// Signals, if not nil, stands in for the process's signals (tests).
	Signals <-chan os.Signal
}

var lineBreaks = regexp.MustCompile(`\s*\n\s*`)

// Main runs the command line (argv without the program) and returns the exit status.
func Main(argv []string, streams IO) int {
	command := ""
	if len(argv) > 0 {
		if _, ok := commands[argv[0]]; ok {
			command = argv[0]
		}
	}
	fail := func(message string, status int) int {
		where := Prog
		if command != "" {
			where = Prog + " " + command
		}
		fmt.Fprintf(streams.Stderr, "%s: error: %s\n", where, lineBreaks.ReplaceAllString(message, " "))
		return status
	}
	parsed, opts, err := ParseCommandLine(argv)
	if err == nil && parsed == "help" {
		if _, err := io.WriteString(streams.Stdout, Usage+"\n"); err != nil {
			return fail(err.Error(), 1)
		}
		return 0
	}
	if err == nil {
		if parsed == "status" {
			err = runStatus(opts, streams)
		} else {
			err = runDom0(opts, streams)
		}
	}
	if err == nil {
		return 0
	}
	var commandErr *CommandError
	var tokenErr *tokens.FileError
	var dom0Err *dom0.Error
	switch {
	case errors.As(err, &commandErr), errors.As(err, &tokenErr):
		return fail(err.Error(), 2)
	case errors.As(err, &dom0Err):
		return fail(err.Error(), dom0Err.ExitCode)
	}
	return fail(err.Error(), 1)
}

func connect(opts *Options, identities []string) (*client.Client, error) {
	token, err := tokens.Resolve(opts.TokenFile, identities)
	if err != nil {
		return nil, err
	}
	files, err := readTLSFiles(opts.TLS)
	if err != nil {
		return nil, err
	}
	c, err := client.Connect(opts.Xen, token, client.Options{
		Deadline: time.Duration(opts.TimeoutMs) * time.Millisecond,
		TLS:      files,
	})
	if err != nil {
		if files != nil {
			return nil, tlsError(err)
		}
		return nil, commandErrorf("--xen: %s", err)
	}
	return c, nil
}

func runStatus(opts *Options, streams IO) error {
	c, err := connect(opts, []string{"operator", "dom0", "xen"})
	if err != nil {
		return err
	}
	state, raw, err := c.Status(context.Background())
	c.Close()
	if err != nil {
		return commandErrorf("%s: %s", opts.Xen, rpcerr.Describe(err))
	}
	var text string
	if opts.JSON {
		text = render.StatusJSON(state, raw)
	} else {
		for i, line := range render.StatusLines(state, opts.Xen) {
			if i > 0 {
				text += "\n"
			}
			text += line
		}
	}
	_, err = io.WriteString(streams.Stdout, text+"\n")
	return err
}

func runDom0(opts *Options, streams IO) error {
	token, err := tokens.Resolve(opts.TokenFile, []string{"dom0"})
	if err != nil {
		return err
	}
	files, err := readTLSFiles(opts.TLS)
	if err != nil {
		return err
	}
	sink, err := openLog(opts.Out, streams.Stdout)
	if err != nil {
		return err
	}
	defer sink.close()
	c, err := client.Connect(opts.Xen, token, client.Options{
		Deadline: time.Duration(opts.TimeoutMs) * time.Millisecond,
		TLS:      files,
	})
	if err != nil {
		if files != nil {
			return tlsError(err)
		}
		return commandErrorf("--xen: %s", err)
	}
	defer c.Close()
	log := func(message string) { fmt.Fprintf(streams.Stderr, "%s dom0: %s\n", Prog, message) }
	d := dom0.New(c, dom0.Options{
		Write:          sink.Write,
		Log:            log,
		Max:            int(opts.Max),
		CPEPoll:        time.Duration(opts.CPEPollMs) * time.Millisecond,
		ConnectTimeout: time.Duration(opts.ConnectTimeoutMs) * time.Millisecond,
		Instance:       opts.Instance,
		Raw:            opts.Raw,
		AlreadyLogged:  sink.alreadyLogged,
	})
	signals := streams.Signals
	if streams.HandleSignals && signals == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		signals = ch
	}
	done := make(chan struct{})
	defer close(done)
	if signals != nil {
		go func() {
			for {
				select {
				case sig := <-signals:
					d.Stop(signalName(sig))
				case <-done:
					return
				}
			}
		}()
	}
	reason, n, err := d.Run()
	if err != nil {
		return err
	}
	log(fmt.Sprintf("stopped (%s): %d records logged, %d duplicates, %d cleared, %d interrupts, %d CPE polls, %d call errors",
		reason, n.Logged, n.Duplicates, n.Cleared, n.Interrupts, n.Polls, n.CallErrors))
	return nil
}

// signalName is "SIGINT" or "SIGTERM", as Node names them.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
