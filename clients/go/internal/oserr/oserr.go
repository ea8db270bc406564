// Package oserr names operating-system errors the way Node.js does in
// err.code ("ENOENT", "EISDIR") and err.message ("write EPIPE"), so that the Go
// client's one-line errors read like the Node client's.
package oserr

import (
	"errors"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// Code is the errno name of err ("ENOENT"), or err's text when it has none.
func Code(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

// Message is Node's message for a failed system call: "write EPIPE".
func Message(err error) string {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Op + " " + Code(pathErr.Err)
	}
	return Code(err)
}
