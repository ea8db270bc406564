#!/usr/bin/env bash
# The outside example from a built wheel: build xenmca's wheel from this repository, make a
# fresh venv, install the wheel (with its "testing" extra: pytest, pytest-asyncio) and this
# example project, check the wheel ships the plugin and py.typed, and run the example's
# tests, which reach xenmca only through its pytest plugin (the pytest11 entry point).
# Exit 0 when every test passed; non-zero otherwise. PYTHON picks the interpreter
# (default python3); KEEP=1 keeps the work directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/xenmca-pytest-user.XXXXXX")
if [[ ${KEEP:-0} == 1 ]]; then
    echo "work directory: $work"
else
    trap 'rm -rf "$work"' EXIT
fi
started=$SECONDS

echo "== building the xenmca wheel from $repo"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel=$(ls "$work"/dist/xenmca-*.whl)

echo "== checking what the wheel ships"
"$python" - "$wheel" <<'PY'
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
wanted = ["xenmca/py.typed", "xenmca/testing/py.typed", "xenmca/testing/plugin.py"]
missing = [name for name in wanted if name not in names]
entry_points = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
text = zipfile.ZipFile(sys.argv[1]).read(entry_points[0]).decode() if entry_points else ""
if "[pytest11]" not in text or "xenmca.testing.plugin" not in text:
    missing.append("the pytest11 entry point xenmca = xenmca.testing.plugin")
if missing:
    sys.exit(f"the wheel lacks: {', '.join(missing)}")
print(f"ok: {', '.join(wanted)}, pytest11 entry point")
PY

echo "== a fresh venv with the wheel and the example project"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install --quiet "${wheel}[testing]" "$here"

echo "== the example's tests"
cd "$here"
# xenmca must come from the wheel in the new venv, not from the repository.
"$venv_python" -c 'import sys, xenmca.testing.plugin as p; sys.exit(0 if p.__file__.startswith(sys.prefix) else f"xenmca imported from {p.__file__}")'
status=0
env -u PYTHONPATH -u PYTEST_DISABLE_PLUGIN_AUTOLOAD \
    "$venv_python" -m pytest -q -p no:cacheprovider "$@" || status=$?
echo "== pytest-user: exit $status in $((SECONDS - started)) s"
exit "$status"
