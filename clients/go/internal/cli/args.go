package cli

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// CommandError is a problem reported in one line with exit status 2 (could not run).
type CommandError struct{ Message string }

func (e *CommandError) Error() string { return e.Message }

func commandErrorf(format string, args ...any) error {
	return &CommandError{fmt.Sprintf(format, args...)}
}

// option is one command-line option: a string that takes a value, or a flag.
type option struct {
	takesValue bool
	short      string
}

var common = map[string]option{
	"xen":        {takesValue: true},
	"token-file": {takesValue: true},
	"tls-cert":   {takesValue: true},
	"tls-key":    {takesValue: true},
	"tls-ca":     {takesValue: true},
	"timeout":    {takesValue: true},
	"help":       {short: "h"},
}

// commands are the options of each command.
var commands = map[string]map[string]option{
	"status": with(common, map[string]option{"json": {}}),
	"dom0": with(common, map[string]option{
		"max":             {takesValue: true},
		"cpe-poll":        {takesValue: true},
		"out":             {takesValue: true},
		"raw":             {},
		"instance":        {takesValue: true},
		"connect-timeout": {takesValue: true},
	}),
}

func with(a, b map[string]option) map[string]option {
	out := map[string]option{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// token is one parsed argument: an option (with its value, if any) or a positional.
type token struct {
	positional  bool
	name        string // the option's long name (or the short letter if unknown)
	rawName     string // as written: "--xen", "-h"
	value       *string
	inlineValue bool
}

// tokenize splits args as Node's util.parseArgs does (strict, no positionals):
// "--name=value", "--name value" for options that take one, "-abc" as -a -b
// -c, "--" ends the options.
func tokenize(args []string, options map[string]option) []token {
	var tokens []token
	shortToLong := func(letter string) string {
		for name, opt := range options {
			if opt.short == letter {
				return name
			}
		}
		return letter
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			for _, rest := range args[i+1:] {
				rest := rest
				tokens = append(tokens, token{positional: true, value: &rest})
			}
			return tokens
		case strings.HasPrefix(arg, "--"):
			name, value, inline := strings.Cut(arg[2:], "=")
			t := token{name: name, rawName: "--" + name}
			if inline {
				t.value, t.inlineValue = &value, true
			} else if options[name].takesValue && i+1 < len(args) {
				i++
				next := args[i]
				t.value = &next
			}
			tokens = append(tokens, t)
		case len(arg) > 2 && arg[0] == '-':
			// A group of short flags: -hx is -h -x.
			for _, r := range arg[1:] {
				letter := string(r)
				tokens = append(tokens, token{name: shortToLong(letter), rawName: "-" + letter})
			}
		case len(arg) == 2 && arg[0] == '-':
			letter := arg[1:]
			t := token{name: shortToLong(letter), rawName: arg}
			if options[t.name].takesValue && i+1 < len(args) {
				i++
				next := args[i]
				t.value = &next
			}
			tokens = append(tokens, t)
		default:
			arg := arg
			tokens = append(tokens, token{positional: true, value: &arg})
		}
	}
	return tokens
}

// parseOptions checks the tokens in order and returns the last value of each
// option ("true" for a flag), with Node's messages for what it refuses.
func parseOptions(args []string, options map[string]option) (map[string]string, error) {
	values := map[string]string{}
	for _, t := range tokenize(args, options) {
		if t.positional {
			return nil, commandErrorf("Unexpected argument '%s'. This command does not take positional arguments", *t.value)
		}
		opt, known := options[t.name]
		if !known {
			return nil, commandErrorf("Unknown option '%s'", t.rawName)
		}
		shortAndLong := "--" + t.name
		if opt.short != "" {
			shortAndLong = "-" + opt.short + ", " + shortAndLong
		}
		if opt.takesValue && t.value == nil {
			return nil, commandErrorf("Option '%s <value>' argument missing", shortAndLong)
		}
		if !opt.takesValue && t.value != nil {
			return nil, commandErrorf("Option '%s' does not take an argument", shortAndLong)
		}
		if !t.inlineValue && t.value != nil && len(*t.value) > 1 && (*t.value)[0] == '-' {
			example := "'" + t.rawName + "=-XYZ'"
			if !strings.HasPrefix(t.rawName, "--") {
				example = "'--" + t.name + "=-XYZ' or '" + t.rawName + "-XYZ'"
			}
			return nil, commandErrorf("Option '%s' argument is ambiguous. Did you forget to specify the option argument for '%s'? To specify an option argument starting with a dash use %s.", t.rawName, t.rawName, example)
		}
		if t.value != nil {
			values[t.name] = *t.value
		} else {
			values[t.name] = "true"
		}
	}
	return values, nil
}

var hostPort = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[^\t\n\v\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}:\[\]/]+):(\d{1,5})$`)

// ParseHostPort checks HOST:PORT (or [v6]:PORT) the way the Python tools do.
func ParseHostPort(text string) (string, int, error) {
	m := hostPort.FindStringSubmatch(text)
	if m == nil {
		return "", 0, commandErrorf("address '%s' is not HOST:PORT", text)
	}
	port, _ := strconv.Atoi(m[2])
	if port < 1 || port > 65535 {
		return "", 0, commandErrorf("address '%s' is not HOST:PORT", text)
	}
	return m[1], port, nil
}

var digits = regexp.MustCompile(`^[0-9]+$`)

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER.
const maxSafeInteger = 1<<53 - 1

// nonNegativeInt reads a whole number >= 0 (fallback when absent).
func nonNegativeInt(name string, values map[string]string, fallback int64) (int64, error) {
	text, ok := values[name]
	if !ok {
		return fallback, nil
	}
	n, err := strconv.ParseUint(text, 10, 64)
	if !digits.MatchString(text) || err != nil || n > maxSafeInteger {
		return 0, commandErrorf("--%s must be a whole number >= 0 (got '%s')", name, text)
	}
	return int64(n), nil
}

// TLSPaths are the three files of mutual TLS.
type TLSPaths struct{ Cert, Key, CA string }

// Options are a command line's settings.
type Options struct {
	Xen       string
	TokenFile string
	TLS       *TLSPaths
	TimeoutMs int64
	// status
	JSON bool
	// dom0
	Max              int64
	CPEPollMs        int64
	ConnectTimeoutMs int64
	Out              string
	Raw              bool
	Instance         string
}

// ParseCommandLine reads argv (after the program name): the command
// ("status", "dom0" or "help") and its options.
func ParseCommandLine(argv []string) (string, *Options, error) {
	if len(argv) == 0 {
		return "", nil, commandErrorf("missing command (status or dom0); see --help")
	}
	command, rest := argv[0], argv[1:]
	if command == "-h" || command == "--help" || command == "help" {
		return "help", nil, nil
	}
	spec, ok := commands[command]
	if !ok {
		return "", nil, commandErrorf("unknown command '%s' (choose status or dom0)", command)
	}
	values, err := parseOptions(rest, spec)
	if err != nil {
		return "", nil, err
	}
	if values["help"] == "true" {
		return "help", nil, nil
	}
	xen, ok := values["xen"]
	if !ok {
		return "", nil, commandErrorf("--xen HOST:PORT is required")
	}
	if _, _, err := ParseHostPort(xen); err != nil {
		return "", nil, commandErrorf("--xen: %s", err)
	}
	if _, given := values["timeout"]; given {
		n, err := nonNegativeInt("timeout", values, 0)
		if err != nil {
			return "", nil, err
		}
		if n == 0 {
			return "", nil, commandErrorf("--timeout must be at least 1 ms")
		}
	}
	given := 0
	for _, name := range []string{"tls-cert", "tls-key", "tls-ca"} {
		if _, ok := values[name]; ok {
			given++
		}
	}
	if given != 0 && given != 3 {
		return "", nil, commandErrorf("--tls-cert, --tls-key and --tls-ca go together (all three or none)")
	}
	opts := &Options{Xen: xen, TokenFile: values["token-file"]}
	if given == 3 {
		opts.TLS = &TLSPaths{Cert: values["tls-cert"], Key: values["tls-key"], CA: values["tls-ca"]}
	}
	if opts.TimeoutMs, err = nonNegativeInt("timeout", values, 10_000); err != nil {
		return "", nil, err
	}
	if command == "status" {
		opts.JSON = values["json"] == "true"
		return command, opts, nil
	}
	if opts.Max, err = nonNegativeInt("max", values, 0); err != nil {
		return "", nil, err
	}
	if opts.CPEPollMs, err = nonNegativeInt("cpe-poll", values, 1000); err != nil {
		return "", nil, err
	}
	if opts.ConnectTimeoutMs, err = nonNegativeInt("connect-timeout", values, 10_000); err != nil {
		return "", nil, err
	}
	opts.Out = values["out"]
	opts.Raw = values["raw"] == "true"
	opts.Instance = values["instance"]
	if _, ok := values["instance"]; !ok {
		opts.Instance = fmt.Sprintf("%s-%d", Prog, os.Getpid())
	}
	return command, opts, nil
}
