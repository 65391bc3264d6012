"""Which optional Python packages are installed, and how to install the missing ones."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
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


def python_interpreter() -> str:
    """The Python interpreter whose standard library and packages this process runs on: the one for child
    processes (the tuning's worker processes, ``predict``'s local processes, pip in the dependency dialog).

    Inside QGIS ``sys.executable`` is not to be trusted: it is the QGIS binary on some platforms, and in
    Debian's ``qgis_process`` it was measured to be the first ``python3`` on PATH, a pyenv shim of another
    installation; a child started with that one imports another Python's packages or none. So, in this order:
    ``python<X.Y>`` / ``python<X>`` in ``sys.exec_prefix``'s ``bin`` (Linux, venvs, conda), ``python.exe`` in
    ``sys.exec_prefix`` (Windows, OSGeo4W), ``python<X.Y>`` in the build's ``BINDIR`` (``sysconfig``) and beside
    ``sys.executable`` (macOS QGIS.app keeps it in ``Contents/MacOS``); then ``sys.executable`` where it is a Python;
    then ``python<X.Y>`` on PATH (never another minor version: its compiled packages would not load)."""
    import sysconfig

    major, minor = sys.version_info[0], sys.version_info[1]
    xy = f"python{major}.{minor}"
    exe = sys.executable or ""
    cands = [os.path.join(sys.exec_prefix, "bin", xy), os.path.join(sys.exec_prefix, "bin", f"python{major}"),
             os.path.join(sys.exec_prefix, "python.exe"), os.path.join(sys.exec_prefix, f"python{major}.exe")]
    bindir = sysconfig.get_config_var("BINDIR")
    if bindir:
        cands.append(os.path.join(bindir, xy))
    if exe:
        cands.append(os.path.join(os.path.dirname(exe), xy))
    for cand in cands:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    found = shutil.which(xy)
    if not found:
        raise MissingDependency(f"No Python {major}.{minor} interpreter was found for DeformCast's worker "
                                f"processes (looked in {sys.exec_prefix} and on PATH). Put {xy} on PATH, or keep the "
                                "work in one process (tune: LOCAL_WORKERS=1; predict: DEFORMCAST_PREDICT_WORKERS=1).")
    return found
