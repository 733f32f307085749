#!/usr/bin/env bash
# Incremental developer build without pip: compiles numoptim._core into build/dev and
# copies it next to the Python sources, so `PYTHONPATH=python pytest` runs the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" "$@" >/dev/null
cmake --build build/dev
# Copy, then rename: overwriting the module in place would change the pages of a
# running interpreter that has it mapped (a crash, not an error).
for so in build/dev/_core*.so; do
  cp "$so" "python/numoptim/.$(basename "$so").new"
  mv "python/numoptim/.$(basename "$so").new" "python/numoptim/$(basename "$so")"
done
