#!/usr/bin/env bash
# Regenerates the committed Go stubs in clients/go/gen/ from protos/ with buf
# and the pinned protoc-gen-go and protoc-gen-go-grpc (see buf.gen.yaml).
#
#   bash clients/go/gen.sh            # rewrite clients/go/gen/
#   bash clients/go/gen.sh --check    # fail if clients/go/gen/ is not what it would write
#
# The plugins are installed with `go install` into a temporary folder; buf is
# $BUF if set, else @bufbuild/buf from npm, installed into the same folder.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12      # google.golang.org/protobuf/cmd/protoc-gen-go
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc
BUF_NPM_VERSION=1.75.0              # @bufbuild/buf

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: bash clients/go/gen.sh [--check]" >&2; exit 2 ;;
esac

tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT

GOBIN="$tools/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOBIN="$tools/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
export PATH="$tools/bin:$PATH"

buf="${BUF:-}"
if [[ -z "$buf" ]]; then
  npm install --prefix "$tools/npm" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
    "@bufbuild/buf@$BUF_NPM_VERSION" >/dev/null
  buf="$tools/npm/node_modules/.bin/buf"
fi

cd "$here"
if (( check )); then
  "$buf" generate --template buf.gen.yaml -o "$tools/out"
  if ! diff -r gen "$tools/out/gen" >"$tools/diff"; then
    head -n 40 "$tools/diff" >&2
    echo "clients/go/gen is stale: run 'bash clients/go/gen.sh' and commit clients/go/gen" >&2
    exit 1
  fi
  echo "clients/go/gen is up to date"
else
  "$buf" generate --template buf.gen.yaml
  echo "generated clients/go/gen from protos/"
fi
