#!/usr/bin/env bash
# `buf breaking` of the working tree's protos against the protos of an earlier
# commit: by default HEAD~1, the previous commit on main (CI runs this in a fresh
# clone of main, where the working tree is HEAD). Rules are buf.yaml's (FILE):
# a change that would break generated clients of an existing package fails,
# while a new package version (xenmca.sal.v2 beside xenmca.sal.v1) is new files
# and never a break of v1.
#
#   bash scripts/check_breaking.sh          # against HEAD~1
#   bash scripts/check_breaking.sh HEAD     # before committing: against the last commit
#
# buf: $BUF if set, else `buf` on PATH, else /opt/buf/node_modules/.bin/buf.
# Exit 0: no breaking change, or skipped (HEAD~1 does not exist: first commit
# or a shallow clone; or it has no protos/). Exit 100 (buf's code): breaking
# changes, listed. Any other non-zero: the check could not run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ref="${1:-HEAD~1}"

buf="${BUF:-}"
if [ -z "$buf" ]; then
  if command -v buf >/dev/null 2>&1; then
    buf="$(command -v buf)"
  elif [ -x /opt/buf/node_modules/.bin/buf ]; then
    buf=/opt/buf/node_modules/.bin/buf
  else
    echo "check_breaking: buf not found (set BUF, or put buf on PATH)" >&2
    exit 2
  fi
fi

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "check_breaking: $root is not a git work tree" >&2
  exit 2
fi
if ! sha="$(git rev-parse --verify --quiet "${ref}^{commit}")"; then
  if [ $# -gt 0 ]; then
    echo "check_breaking: $ref does not name a commit" >&2
    exit 2
  fi
  if ! git rev-parse --verify --quiet 'HEAD^{commit}' >/dev/null; then
    why="there are no commits yet"
  elif [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    why="HEAD's parent is not in this shallow clone (fetch more history)"
  else
    why="HEAD is the first commit"
  fi
  echo "check_breaking: skipped: no $ref to compare with: $why"
  exit 0
fi
if [ "$(git cat-file -t "$sha:protos" 2>/dev/null)" != tree ]; then
  echo "check_breaking: skipped: $ref (${sha:0:12}) has no protos/ directory"
  exit 0
fi

# The earlier commit's own buf.yaml places its module (protos/); without one,
# read its protos/ directory as the module root.
against=".git#ref=$sha"
if ! git cat-file -e "$sha:buf.yaml" 2>/dev/null; then
  against="$against,subdir=protos"
fi

echo "check_breaking: buf breaking against $ref (${sha:0:12})"
status=0
"$buf" breaking --against "$against" || status=$?
if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 100 ]; then
    echo "check_breaking: the changes above break clients generated from $ref's protos." >&2
    echo "  Keep the old package as it was and put the change in a new package version" >&2
    echo "  (e.g. protos/xenmca/sal/v2/ with package xenmca.sal.v2)." >&2
  fi
  exit "$status"
fi
echo "check_breaking: no breaking changes"
