"""What the developer scripts share: import ``deformcast`` from a checkout, and a QGIS with Processing
and the DeformCast provider (scripts/build_model.py, build_interface_doc.py, screenshots.py)."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_pkg() -> str:
    """``import deformcast`` works from a checkout with any folder name (a symlink under build/pkgroot)."""
    root = os.path.join(ROOT, "build", "pkgroot")
    os.makedirs(root, exist_ok=True)
    link = os.path.join(root, "deformcast")
    if not os.path.exists(link):
        os.symlink(ROOT, link)
    if root not in sys.path:
        sys.path.insert(0, root)
    return root


def start_processing(gui: bool = False):
    """``(QgsApplication, provider)``: QGIS initialised, Processing initialised and the DeformCast
    provider registered. Keep both referenced: the registry does not own the Python provider."""
    ensure_pkg()
    from qgis.core import QgsApplication

    app = QgsApplication([], gui)
    app.initQgis()
    plugins = os.path.join(app.pkgDataPath(), "python", "plugins")
    if plugins not in sys.path:
        sys.path.append(plugins)
    from processing.core.Processing import Processing

    Processing.initialize()
    from deformcast.processing_provider.provider import DeformCastProvider

    provider = DeformCastProvider()
    if not QgsApplication.processingRegistry().addProvider(provider):
        raise SystemExit("cannot register the DeformCast provider")
    return app, provider
