#!/usr/bin/env bash
# Builds and tests the Go client: modules, gofmt, go vet, the binary
# (clients/go/bin/xenmca-go), go test. Exits non-zero on any failure.
#
#   bash clients/go/build.sh
#
# The live tests (test/live) need `xenmca` on PATH (the project's venv) or
# $XENMCA_BIN; without it they skip, unless $XENMCA_CLIENTS names "go".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

go mod download
go mod verify
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change these files (run 'gofmt -w clients/go'):" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go build -o bin/xenmca-go ./cmd/xenmca-go
go test -count=1 ./...
