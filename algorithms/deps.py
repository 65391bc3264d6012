"""Which optional Python packages are installed, and how to install the missing ones."""
from __future__ import annotations

import importlib.util
from typing import Dict, List

from .errors import MissingDependency

#: package import name -> pip requirement (pinned as in requirements.txt / constraints.txt)
REQUIRED = {
    "numpy": "numpy<2",
    "torch": "torch==2.13.0",
    "optuna": "optuna>=3.6,<5",
    "scipy": "scipy>=1.10,<1.14",
    "statsmodels": "statsmodels>=0.14,<0.15",
}


def available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing(names=None) -> List[str]:
    names = list(REQUIRED) if names is None else list(names)
    return [n for n in names if not available(n)]


def status() -> Dict[str, bool]:
    return {n: available(n) for n in REQUIRED}


def install_command(names=None) -> str:
    """The exact command that installs ``names`` (default: every missing package).

    numpy stays below 2 so that the GDAL bindings QGIS ships keep working.
    """
    names = missing() if names is None else list(names)
    reqs = " ".join(f"'{REQUIRED[n]}'" for n in names) or "'numpy<2'"
    return f"python3 -m pip install --user 'numpy<2' {reqs}"


def require(*names: str) -> None:
    """Raise :class:`MissingDependency` naming the packages and the install command."""
    miss = missing(names)
    if miss:
        raise MissingDependency(
            "This step needs the Python package(s) " + ", ".join(miss) + ", which are not "
            "installed in QGIS's Python. Install them (then restart QGIS) with:\n    "
            + install_command(miss)
            + "\nor run scripts/setup.sh from the DeformCast folder for a project-local set-up."
        )
