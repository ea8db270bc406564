#!/usr/bin/env bash
# The whole flow on loopback, by hand: a pCPU host with 4 pCPUs, the coordinator,
# dom0, some CMC and CPE errors (one pCPU storming), the coordinator's status and
# dom0's log summary. Everything it starts is stopped on exit; files go to a temp dir.
set -euo pipefail
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

python - "$work/tokens.json" <<'PY'
import sys
from pathlib import Path
from xenmca.rpc.identity import TokenBook
TokenBook.generate().save(Path(sys.argv[1]))
PY
export XENMCA_TOKEN_FILE="$work/tokens.json"

wait_for() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; exit 1; }

xenmca serve pcpu --pcpus 0-3 --host 127.0.0.1 --base-port 0 --ready-file "$work/pcpus.json" \
  --events "$work/pcpu-events.jsonl" & pids+=($!)
wait_for "$work/pcpus.json"
inventory="$work/inventory.json"
cp "$work/pcpus.json" "$inventory"
xenmca serve xen --listen 127.0.0.1:0 --inventory "$inventory" --vcpu0-pcpu 0 \
  --throttle-preset fast --events "$work/xen-events.jsonl" --ready-file "$work/xen.json" & pids+=($!)
wait_for "$work/xen.json"
xen="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["address"])' "$work/xen.json")"
xenmca dom0 --xen "$xen" --db "$work/dom0.sqlite" --cpe-poll-min 0.05 --cpe-poll-max 0.5 \
  --events "$work/dom0-events.jsonl" & pids+=($!)

addr() { python -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/pcpus.json" "$1"; }
for p in 0 1 2 3; do xenmca inject --pcpu "$(addr $p)" --type cmc --count 5 --rate 2; done
xenmca inject --pcpu "$(addr 2)" --type cmc --count 200 --rate 1000
xenmca inject --pcpu "$(addr 3)" --type cpe --count 3
sleep 4
xenmca status --xen "$xen"
xenmca log summary --db "$work/dom0.sqlite"
echo "files: $work"
