"""DeformCast Qt dialogs (qgis.PyQt imports only, so Qt5 and Qt6 builds both work).

* :mod:`ui.workflow_dialog` — a front end to ``deformcast:workflow`` (the main job), run as a
  background task;
* :mod:`ui.runner` — its engine without widgets (validation, the Processing runs, settings);
* :mod:`ui.inspector` — the time-series inspector map tool and dock;
* :mod:`ui.deps_dialog` — dependency check and installer (pip into the QGIS profile).
"""


def gui_entries(plugin):
    """(menu text, slot) pairs the plugin adds to its menu; the first goes on the toolbar.

    Dialogs are built on first use and kept on the plugin object, so reopening shows the
    same dialog with the user's last choices.
    """

    def results_loaded(group, parameters):
        """A finished run: the inspector (when open) reads the new layers."""
        dock = getattr(plugin, "_dc_inspector", None)
        if dock is not None:
            dock.auto_assign([n.layer() for n in group.findLayers()])
            dock.dates_param = parameters.get("DATES") or None

    def open_workflow():
        from .workflow_dialog import WorkflowDialog

        dlg = getattr(plugin, "_dc_workflow", None)
        if dlg is None:
            dlg = WorkflowDialog(plugin.iface)
            dlg.resultsLoaded.connect(results_loaded)
            plugin._dc_workflow = dlg
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()
        return dlg

    def open_inspector():
        from qgis.PyQt.QtCore import Qt

        from .inspector import InspectorDock

        dock = getattr(plugin, "_dc_inspector", None)
        if dock is None:
            dock = InspectorDock(plugin.iface, parent=plugin.iface.mainWindow())
            plugin.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            plugin._dc_inspector = dock
            dock.auto_assign()
        dock.show()
        dock.pick_btn.setChecked(True)
        return dock

    def open_dependencies():
        from .deps_dialog import DependencyDialog

        dlg = DependencyDialog(plugin.iface.mainWindow())
        plugin._dc_deps = dlg
        dlg.show()
        return dlg

    def open_help():
        from .workflow_dialog import HelpDialog

        dlg = HelpDialog(plugin.iface.mainWindow())
        plugin._dc_help = dlg
        dlg.show()
        return dlg

    return [
        ("DeformCast workflow…", open_workflow),
        ("Time-series inspector", open_inspector),
        ("Install dependencies…", open_dependencies),
        ("DeformCast help…", open_help),
    ]
