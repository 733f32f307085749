"""Loads the native module, or says what is missing and how to fix it."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from types import ModuleType


def explain(error: ImportError, package_dir: str) -> str:
    """The message for an ImportError raised while loading numoptim._core."""
    text = str(error)
    where = f"Python {platform.python_version()} on {sys.platform}-{platform.machine()}"
    if "libgomp" in text:
        return (
            "numoptim's native module needs the GNU OpenMP runtime (libgomp.so.1), "
            f"which was not found ({text}). Install it with the system's package manager "
            "(Debian/Ubuntu: apt-get install libgomp1; Fedora/RHEL: dnf install libgomp; "
            "Alpine: apk add libgomp), or install numoptim from a wheel made by "
            "`bash dev/wheel.sh`, which carries its own copy."
        )
    if getattr(error, "name", None) == "numoptim._core":
        return (
            f"numoptim's native module numoptim._core is not built in {package_dir} "
            f"for {where}. Install numoptim with `pip install .` from its source tree "
            "(needs a C++17 compiler with OpenMP), or build it in place with "
            "`bash dev/build.sh`."
        )
    return (
        f"numoptim's native module numoptim._core could not be loaded by {where}: "
        f"{text}. It was probably built for another Python or platform: reinstall "
        "numoptim with this interpreter (python -m pip install --force-reinstall numoptim, "
        "or pip install . from its source tree)."
    )


def load_core() -> ModuleType:
    """Imports numoptim._core; an ImportError names what is missing and the fix."""
    try:
        return importlib.import_module("numoptim._core")
    except ImportError as error:
        raise ImportError(explain(error, os.path.dirname(os.path.abspath(__file__)))) from error
