// Package cli is the xenmca-go command: `status` and `dom0`, with the Node
// client's (xenmca-node's) options, output, one-line errors and exit statuses
// (0 ok, 1 failed while running, 2 could not run: bad arguments, an unreadable
// token file, an unreachable coordinator, a refused identity).
package cli

import (
	"strconv"

	"xenmca.dev/clients/go/internal/client"
)

// Prog is the command's name in its messages.
const Prog = "xenmca-go"

// Usage is the text of --help.
var Usage = `usage: ` + Prog + ` <command> [options]

commands:
  status --xen HOST:PORT [--token-file FILE] [TLS] [--json] [--timeout MS]
      print the coordinator's state: pCPUs, dom0, queues, counters, throttling
  dom0 --xen HOST:PORT [--token-file FILE] [TLS] [--max N] [--cpe-poll MS] [--out FILE]
       [--raw] [--instance NAME] [--connect-timeout MS] [--timeout MS]
      act as dom0: attach, and for each virtual interrupt GET the record, print
      it as one JSON line (flushed; with --out, appended and fsync'd), then
      CLEAR that record id; poll CPE every --cpe-poll ms (default 1000, 0: off);
      stop after --max records (default: no limit) or on SIGINT/SIGTERM

options:
  --token-file FILE   JSON (or flat YAML) {identity: token}; default $XENMCA_TOKEN_FILE.
                      status presents the operator token (else dom0's), dom0 dom0's
  --tls-cert FILE --tls-key FILE --tls-ca FILE   (TLS: all three or none)
                      mutual TLS with this client certificate, its key and the CA
                      that signed the coordinator's; the identity is the
                      certificate's CN (` + "`xenmca certs generate`" + ` makes them)
  --timeout MS        deadline of each unary call (default ` + strconv.FormatInt(client.DefaultDeadline.Milliseconds(), 10) + `)
  -h, --help          this help

exit status: 0 ok, 1 failed while running, 2 could not run`
