"""Threads and build configuration of the native core."""

from __future__ import annotations

import os
import platform

from . import _core

__all__ = ["get_num_threads", "set_num_threads", "show_config"]


def set_num_threads(n: int) -> None:
    """Sets the number of OpenMP threads the kernels use (as ``torch.set_num_threads``).

    Args:
        n: a positive thread count. The default is OpenMP's (``OMP_NUM_THREADS`` or the
            number of cores).
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"Number of threads must be positive, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Returns the number of threads the kernels use."""
    return _core.get_num_threads()


def config() -> dict[str, str]:
    """The build and run-time configuration as a dict (what :func:`show_config` prints)."""
    return {
        "numoptim": _core.__version__,
        "simd_level": _core.simd_level(),
        "cpu_simd_level": _core.cpu_simd_level(),
        "dispatch_override": os.environ.get("NUMOPTIM_DISPATCH", "") or "none",
        "num_threads": str(get_num_threads()),
        "openmp": str(_core.openmp_version()),
        "compiler": _core.compiler(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def show_config() -> None:
    """Prints the version, the SIMD level chosen at run time, OpenMP threads and compiler.

    The SIMD level is the best of avx512 / avx2 / baseline that the CPU supports,
    lowered by the environment variable ``NUMOPTIM_DISPATCH`` when it is set.
    """
    import numpy

    info = config()
    info["numpy"] = numpy.__version__
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}} : {value}")
