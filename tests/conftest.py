"""Shared test fixtures.

The repository root is the plugin package ``deformcast``: a symlink under build/pkgroot makes
``import deformcast.algorithms...`` work from a checkout with any folder name, so the core and
the Processing wrappers are the same module objects in every test.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
_PKGROOT = ROOT / "build" / "pkgroot"
_PKGROOT.mkdir(parents=True, exist_ok=True)
_link = _PKGROOT / "deformcast"
if not _link.exists():
    try:
        _link.symlink_to(ROOT, target_is_directory=True)
    except FileExistsError:
        pass
if str(_PKGROOT) not in sys.path:
    sys.path.insert(0, str(_PKGROOT))


@pytest.fixture()
def deformcast_provider(qgis_app, qgis_processing):
    """QgsApplication + Processing initialised, with the DeformCast provider registered."""
    from qgis.core import QgsApplication

    from deformcast.processing_provider.provider import DeformCastProvider

    reg = QgsApplication.processingRegistry()
    prov = reg.providerById("deformcast")
    if prov is None:
        # keep the Python object alive: a temporary would be garbage-collected, leaving QGIS a
        # provider without its Python overrides (id() empty, algorithms 'not found' in later tests)
        _KEEP_ALIVE.append(DeformCastProvider())
        reg.addProvider(_KEEP_ALIVE[-1])
        prov = reg.providerById("deformcast")
    return prov


_KEEP_ALIVE = []


@pytest.fixture(scope="session", autouse=True)
def _release_qgis_objects_before_exit(qgis_app):
    """Before pytest-qgis tears QGIS down (its session teardown runs after this one): take our provider
    out of the registry and collect garbage, so that no Python wrapper of a QGIS/GDAL object is
    destroyed after exitQgis (that segfaulted the process at exit, rc 139, after all tests passed)."""
    yield
    import gc

    from qgis.core import QgsApplication

    reg = QgsApplication.processingRegistry()
    for prov in list(_KEEP_ALIVE):
        if reg.providerById("deformcast") is not None:
            reg.removeProvider("deformcast")
    _KEEP_ALIVE.clear()
    gc.collect()


@pytest.fixture()
def run_alg(deformcast_provider):
    """``run_alg("synthetic_scenario", {...})`` -> result dict of processing.run."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    def _run(alg_id, params, feedback=None, context=None):
        full = alg_id if ":" in alg_id else f"deformcast:{alg_id}"
        return processing.run(full, params, feedback=feedback or QgsProcessingFeedback(),
                              context=context or QgsProcessingContext())

    return _run


def qgis_process(*args, timeout=900, env=None):
    """Run ``./deformcast <args>`` (qgis_process.bin with the project profile)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(ROOT / "deformcast"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd=str(ROOT))


@pytest.fixture()
def qgis_process_run():
    return qgis_process


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield
