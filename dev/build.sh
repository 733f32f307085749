#!/usr/bin/env bash
# Incremental developer build without pip: compiles numoptim._core into build/dev and
# copies it next to the Python sources, so `PYTHONPATH=python pytest` runs the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so python/numoptim/
