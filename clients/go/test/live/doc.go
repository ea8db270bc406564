// Package live holds the Go client's tests against a real local testbed:
// `xenmca serve pcpu` and `xenmca serve xen` as child processes on free
// loopback ports, with no Python dom0, so that xenmca-go's dom0 is the one
// attached. They need the `xenmca` command (on PATH, or $XENMCA_BIN); without
// it they are skipped, unless $XENMCA_CLIENTS names "go" (as in CI), where
// they fail.
package live
