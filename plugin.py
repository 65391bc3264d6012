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
        from .ui.deps_dialog import add_dependency_path

        # packages installed by the dependency dialog live in the profile; QGIS's own numpy wins
        add_dependency_path()
        from .processing_provider.provider import DeformCastProvider

        if self.provider is None:
            self.provider = DeformCastProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):  # noqa: N802
        self.initProcessing()
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction

        icon = QIcon(os.path.join(PLUGIN_DIR, "resources", "icon.svg"))
        from .ui import gui_entries

        entries = gui_entries(self)
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
        dock = getattr(self, "_dc_inspector", None)
        if dock is not None:       # its marks and map tools leave the canvas; Qt deletes it in the main thread
            self.iface.removeDockWidget(dock)
            dock.dispose()
            self._dc_inspector = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
