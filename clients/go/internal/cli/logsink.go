package cli

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"

	"xenmca.dev/clients/go/internal/jsobj"
	"xenmca.dev/clients/go/internal/oserr"
)

// logSink is where dom0 writes its records: stdout (each line written at
// once), or a file (appended and fsync'd) whose existing lines are the
// records already logged.
type logSink struct {
	mu            sync.Mutex
	write         func(line string) error
	alreadyLogged []string
	close         func() error
}

// Write appends one line and returns once it is durable.
func (s *logSink) Write(line string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(line)
}

// nodeWriteError is a failed write as Node words a stream's: "write EPIPE".
type nodeWriteError struct{ err error }

func (e nodeWriteError) Error() string { return oserr.Message(e.err) }

// nodeFileError is a failed file call as Node's fs words it: "ENOSPC: no space left on device, write".
type nodeFileError struct {
	syscall string
	err     error
}

func (e nodeFileError) Error() string {
	var pathErr *fs.PathError
	inner := e.err
	if errors.As(e.err, &pathErr) {
		inner = pathErr.Err
	}
	return oserr.Code(inner) + ": " + inner.Error() + ", " + e.syscall
}

func openLog(out string, stdout io.Writer) (*logSink, error) {
	if out == "" {
		return &logSink{
			write: func(line string) error {
				if _, err := io.WriteString(stdout, line+"\n"); err != nil {
					return nodeWriteError{err}
				}
				return nil
			},
			close: func() error { return nil },
		}, nil
	}
	existing := ""
	data, err := os.ReadFile(out)
	switch {
	case err == nil:
		existing = strings.ToValidUTF8(string(data), "\uFFFD")
	case !errors.Is(err, fs.ErrNotExist):
		return nil, commandErrorf("--out: cannot read %s: %s", out, oserr.Code(err))
	}
	var already []string
	for _, text := range strings.Split(existing, "\n") {
		// A torn last line (a crash mid-write) is not a record: it will be delivered again.
		v, err := jsobj.Parse(text)
		if err != nil {
			continue
		}
		if line, ok := v.(*jsobj.Object); ok {
			pcpu, hasPcpu := line.Get("pcpu")
			id, hasID := line.Get("record_id")
			if hasPcpu && hasID {
				already = append(already, jsobj.ToString(pcpu)+":"+jsobj.ToString(id))
			}
		}
	}
	file, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return nil, commandErrorf("--out: cannot open %s: %s", out, oserr.Code(err))
	}
	prefix := ""
	if existing != "" && !strings.HasSuffix(existing, "\n") {
		prefix = "\n"
	}
	return &logSink{
		alreadyLogged: already,
		write: func(line string) error {
			if _, err := file.WriteString(prefix + line + "\n"); err != nil {
				return nodeFileError{"write", err}
			}
			prefix = ""
			if err := file.Sync(); err != nil {
				return nodeFileError{"fdatasync", err}
			}
			return nil
		},
		close: file.Close,
	}, nil
}
