#!/usr/bin/env bash
# Runs the whole test suite against numoptim._core built with AddressSanitizer and
# UndefinedBehaviorSanitizer. Exits non-zero if a test fails or any sanitizer reports.
#
#   bash dev/sanitize.sh [extra pytest arguments, e.g. tests/test_sparse.py -x]
#
# Needs gcc's ASan/UBSan runtimes (Debian/Ubuntu: apt-get install libasan8 libubsan1,
# or the gcc-NN package that provides them) plus what dev/build.sh needs (cmake, ninja,
# pybind11, numpy, pytest). On 2 cores the first build takes about 2 minutes and the
# suite about 2-3 minutes (ASan slows the kernels down; the suite runs unchanged).
#
# What it does, and why:
# - Builds the module in its own tree, build/sanitize, with
#     -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
#   at RelWithDebInfo (-O2 -g: the kernels are compiled and vectorized as in a release,
#   and the reports have file:line). -fno-sanitize-recover makes every UB report fatal,
#   so none can scroll past unnoticed. The normal flags (NUMOPTIM_KERNEL_OPTIONS) stay;
#   no -march=native, no -ffast-math.
# - Never touches python/numoptim (dev/build.sh's in-place module stays as it is): the
#   Python sources and the sanitized _core*.so are copied into build/sanitize/pkg/numoptim
#   and the suite runs with PYTHONPATH=build/sanitize/pkg, from the repository root.
# - The Python interpreter is not instrumented, so the ASan runtime has to be the first
#   library loaded: it is LD_PRELOADed (g++ -print-file-name=libasan.so). gcc's libasan
#   does not carry the UBSan handlers; libubsan is loaded with the module (a NEEDED
#   library) and works without being preloaded. libstdc++ is preloaded right after
#   libasan: ASan intercepts __cxa_throw and looks up the real one when it starts;
#   in a C program such as python libstdc++ is not loaded yet then, and the first C++
#   exception the module throws (a ValueError from a binding) ends in
#   "AddressSanitizer: CHECK failed: ... real___cxa_throw != 0".
# - ASAN_OPTIONS=detect_leaks=0: LeakSanitizer would report CPython's, numpy's and
#   OpenBLAS's deliberate never-freed allocations (interned objects, module state,
#   thread buffers) at every interpreter exit; that noise would hide real reports.
#   Memory errors (overflow, use-after-free, ...) are still all caught.
# - The environment, LD_PRELOAD included, reaches the interpreters and tools that the
#   tests start (tests/test_process.py, test_cli.py, test_optimizers.py, and
#   test_cpp_package.py's cmake, compiler and consumer, which are not instrumented and
#   just run on top of the ASan allocator). Reports must not vanish into output that a
#   test captures:
#   * ASan writes each report to its own file, build/sanitize/reports/asan.PID
#     (ASAN_OPTIONS log_path); the script fails if any such file exists.
#   * gcc's libubsan ignores UBSAN_OPTIONS=log_path when libasan is loaded too (its
#     reports still go to stderr), so pytest runs with --capture=sys: the tests'
#     Python-level output is captured as usual, but whatever the native code writes to
#     file descriptor 2 (a UBSan report, in pytest itself or a forked child) reaches
#     the log. A UBSan report is fatal (exit status 1), and the tests check the exit
#     status of the interpreters they start and show their stderr when it is not 0
#     (a future test that ignored both could hide a UBSan report in a subprocess).
#   * Second line of defence: the script fails if the log contains
#     "ERROR: AddressSanitizer" or "runtime error:".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build/sanitize
PKG=$BUILD/pkg
REPORTS=$BUILD/reports

# The real interpreter, not a pyenv shim (a shell script) that would run under LD_PRELOAD.
PYTHON=$(python -c 'import sys; print(sys.executable)')

ASAN_RUNTIME=$(g++ -print-file-name=libasan.so)
UBSAN_RUNTIME=$(g++ -print-file-name=libubsan.so)
if [[ $ASAN_RUNTIME != /* || ! -e $ASAN_RUNTIME || $UBSAN_RUNTIME != /* || ! -e $UBSAN_RUNTIME ]]; then
  echo "dev/sanitize.sh: gcc's sanitizer runtimes were not found" \
       "(g++ -print-file-name=libasan.so printed '$ASAN_RUNTIME'," \
       "libubsan.so '$UBSAN_RUNTIME')." >&2
  echo "Install them, e.g. apt-get install libasan8 libubsan1 (Debian 12 / Ubuntu 22.04+)," \
       "or the package of your gcc version that provides them." >&2
  exit 2
fi
ASAN_RUNTIME=$(readlink -f "$ASAN_RUNTIME")
CXX_RUNTIME=$(readlink -f "$(g++ -print-file-name=libstdc++.so)")

SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
echo "== building numoptim._core with $SANITIZE in build/sanitize"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=g++ \
  "-DCMAKE_CXX_FLAGS=$SANITIZE" \
  "-DCMAKE_MODULE_LINKER_FLAGS=$SANITIZE" \
  -DPython_EXECUTABLE="$PYTHON" \
  -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD"

# A private copy of the package with the sanitized module.
rm -rf "$PKG"
mkdir -p "$PKG/numoptim"
cp python/numoptim/*.py python/numoptim/*.pyi python/numoptim/py.typed "$PKG/numoptim/"
cp "$BUILD"/_core*.so "$PKG/numoptim/"
if ! readelf -d "$PKG"/numoptim/_core*.so | grep -q 'libasan'; then
  echo "dev/sanitize.sh: $(ls "$PKG"/numoptim/_core*.so) is not linked against libasan" >&2
  exit 2
fi

rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export PYTHONPATH=$PKG
export LD_PRELOAD="$ASAN_RUNTIME $CXX_RUNTIME"
# halt_on_error: stop at the first report (the default for ASan, made explicit);
# log_path: one file per process with a report (see above); detect_leaks=0: see above.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=$REPORTS/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

where=$("$PYTHON" -c 'import numoptim, numoptim._core as c; print(c.__file__)')
if [[ $where != "$PKG"/numoptim/_core* ]]; then
  echo "dev/sanitize.sh: imported $where, not the sanitized copy in $PKG" >&2
  exit 2
fi
echo "== running the test suite with $where"

LOG=$BUILD/pytest.log
start=$SECONDS
set +e
"$PYTHON" -m pytest -q -p no:cacheprovider --capture=sys "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
echo "== pytest exited $status after $((SECONDS - start)) s"

failed=0
if [[ $status -ne 0 ]]; then
  failed=1
fi
if grep -qE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|Sanitizer: CHECK failed|runtime error:' "$LOG"; then
  echo "dev/sanitize.sh: the pytest output contains sanitizer reports" >&2
  failed=1
fi
reports=$(find "$REPORTS" -type f | sort)
if [[ -n $reports ]]; then
  echo "dev/sanitize.sh: $(wc -l <<<"$reports") sanitizer report file(s):" >&2
  for report in $reports; do
    echo "---- $report" >&2
    cat "$report" >&2
  done
  failed=1
fi
if [[ $failed -ne 0 ]]; then
  echo "== FAILED (see $LOG and $REPORTS)" >&2
  exit 1
fi
echo "== passed under AddressSanitizer and UndefinedBehaviorSanitizer: no reports"
