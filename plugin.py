"""DeformCast QGIS plugin: Processing provider (initProcessing) and GUI (initGui)."""
from __future__ import annotations

import os

from qgis.core import QgsApplication

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


class DeformCastPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.actions = []
        self.menu_name = "&DeformCast"

    # qgis_process calls only this one
    def initProcessing(self):  # noqa: N802
        from .processing_provider.provider import DeformCastProvider

        if self.provider is None:
            self.provider = DeformCastProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        entries = [("DeformCast toolbox…", self.open_toolbox), ("Check dependencies…", self.show_dependencies)]
        try:
            from .ui import gui_entries

            entries = gui_entries(self) + entries
        except ImportError:
            pass
        for text, slot in entries:
            action = QAction(icon, text, self.iface.mainWindow())
            action.triggered.connect(slot)
            self.iface.addPluginToMenu(self.menu_name, action)
            self.actions.append(action)
        if self.actions:
            self.iface.addToolBarIcon(self.actions[0])

    def unload(self):
        for action in self.actions:
            self.iface.removePluginMenu(self.menu_name, action)
            self.iface.removeToolBarIcon(action)
        self.actions = []
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    # --- GUI entries -------------------------------------------------------------------------
    def open_toolbox(self):
        try:
            from processing import execAlgorithmDialog  # noqa: F401
            self.iface.showProcessingToolbox() if hasattr(self.iface, "showProcessingToolbox") else None
        except ImportError:
            pass

    def show_dependencies(self):
        from qgis.PyQt.QtWidgets import QMessageBox

        from .algorithms import deps

        st = deps.status()
        lines = [f"{'✔' if ok else '✘'} {name}" for name, ok in st.items()]
        miss = deps.missing()
        if miss:
            lines += ["", "Install the missing packages with:", deps.install_command(miss)]
        QMessageBox.information(self.iface.mainWindow(), "DeformCast dependencies", "\n".join(lines))
