#!/usr/bin/env bash
# Regenerates the Python stubs (*_pb2.py, *_pb2_grpc.py, *.pyi) beside every
# .proto under protos/. Run from anywhere; CI runs it and fails on a diff.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/protos"
mapfile -t files < <(find xenmca -name '*.proto' | LC_ALL=C sort)
find xenmca \( -name '*_pb2.py' -o -name '*_pb2_grpc.py' -o -name '*_pb2.pyi' \) -delete
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. "${files[@]}"
echo "generated stubs for ${#files[@]} proto files"
