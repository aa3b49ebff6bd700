#!/usr/bin/env bash
# Build a virtual environment holding a real tritonserver (bundled by nvidia-pytriton) for the
# triton endpoint's real-server tests, and print the server binary's path and library folder.
#
# Usage: eval "$(scripts/triton-venv.sh .venv-triton)"     (prints two export lines)
#
# pytriton's tritonserver runs python-backend models through a stub that embeds the interpreter:
# it needs numpy<2 in its own venv (so never the dev venv), that interpreter's lib folder
# (libpython) on LD_LIBRARY_PATH, and the venv's bin first on PATH (the tests find the venv from
# the binary's path). pytriton copies the stub for the running Python next to the backend at
# start-up; we do it once here, so the bare binary serves python models.
# Idempotent: an existing venv that already has the binary and the stub is reused.
set -euo pipefail

if [[ $# -ne 1 || "$1" == -* ]]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
python=${PYTHON:-python3}

find_server() {
    # The binary ships inside the pytriton package: pytriton/tritonserver/bin/tritonserver.
    "$dir/bin/python" - <<'EOF'
import pathlib
import sys

import pytriton

root = pathlib.Path(pytriton.__file__).resolve().parent
for path in sorted(root.rglob("tritonserver")):
    if path.is_file() and path.parent.name == "bin":
        print(path)
        sys.exit(0)
sys.exit(f"no tritonserver binary under {root}")
EOF
}

if [[ ! -x "$dir/bin/python" ]]; then
    "$python" -m venv "$dir"
fi
if ! server=$(find_server 2>/dev/null); then
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check 'numpy<2' nvidia-pytriton >&2
    server=$(find_server)
fi
# The python backend loads triton_python_backend_stub from its own folder: the one built for
# this venv's Python.
version=$("$dir/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
tritondir=$(dirname "$(dirname "$server")")
stub="$tritondir/python_backend_stubs/$version/triton_python_backend_stub"
if [[ ! -f "$stub" ]]; then
    echo "pytriton ships no python backend stub for Python $version ($stub)" >&2
    exit 1
fi
cmp -s "$stub" "$tritondir/backends/python/triton_python_backend_stub" \
    || cp "$stub" "$tritondir/backends/python/triton_python_backend_stub"
# The stub links against the interpreter's libpython: its lib folder.
libdir=$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

printf 'export MMEPERF_TRITONSERVER=%q\n' "$server"
printf 'export MMEPERF_TRITON_LD_LIBRARY_PATH=%q\n' "$libdir"
