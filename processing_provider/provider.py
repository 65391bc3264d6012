"""The DeformCast Processing provider (id ``deformcast``).

Algorithms are discovered from the ``alg_*.py`` modules of this package, so adding an
algorithm means adding one module. The provider loads even when torch, optuna, scipy or
statsmodels are missing: it logs which are missing and the command that installs them, and
each algorithm that needs them says so in its help and refuses to run with that message.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..algorithms import deps
from .base import (GROUPS, ICON_PATH, PLUGIN_DIR, DeformCastAlgorithm, docs_paragraph, help_url, no_active_layer,
                   panel_html)

MODELS_DIR = os.path.join(PLUGIN_DIR, "resources", "models")

#: toolbox names of the shipped graphical models (their ids, ``model_name`` in the .model3, stay)
MODEL_DISPLAY_NAMES = {
    "deformcast_workflow_model": "Full workflow as a graphical model (tune, forecast, uncertainty, zoning)",
}


class DeformCastModel(QgsProcessingModelAlgorithm):
    """A shipped graphical model as the toolbox shows it: a display name (not its raw id), the
    group of the algorithms (group id ``decision``, not the file's ``Decision``: one toolbox group
    per name), the help laid out for the Processing panel with a link to the docs, and mandatory
    raster inputs that start empty instead of taking the active layer."""

    def displayName(self):  # noqa: N802
        return MODEL_DISPLAY_NAMES.get(self.name(), self.name().replace("_", " ").capitalize())

    def groupId(self):  # noqa: N802
        gid = super().groupId()
        return gid.lower() if gid.lower() in GROUPS else gid

    def group(self):
        gid = self.groupId()
        return GROUPS.get(gid, super().group())

    def shortHelpString(self):  # noqa: N802
        text = super().shortHelpString() or ""
        for tag in ("<html>", "</html>", "<body>", "</body>"):
            text = text.replace(tag, "")
        text = text.strip()
        while text.endswith("<br>"):
            text = text[:-4].rstrip()
        return panel_html(text + docs_paragraph(self.name()))

    def helpString(self):  # noqa: N802
        return self.shortHelpString()

    def helpUrl(self):  # noqa: N802
        return help_url(self.name())

    def icon(self):
        return QIcon(ICON_PATH)

    def createInstance(self):  # noqa: N802
        m = DeformCastModel()
        m.loadVariant(self.toVariant())
        m.setSourceFilePath(self.sourceFilePath())
        return m

    def prepare_inputs(self) -> None:
        """Mandatory raster inputs start empty in the dialog (see base.NoActiveLayerWrapper)."""
        for d in self.parameterDefinitions():
            if d.type() == "raster" and not d.flags() & d.FlagOptional and "widget_wrapper" not in d.metadata():
                self.updateModelParameter(no_active_layer(d.clone()))


def algorithm_classes():
    classes = []
    pkg_dir = os.path.dirname(__file__)
    for info in sorted(pkgutil.iter_modules([pkg_dir]), key=lambda m: m.name):
        if not info.name.startswith("alg_"):
            continue
        try:
            mod = importlib.import_module(f"{__package__}.{info.name}")
        except Exception as e:  # noqa: BLE001 - one broken module must not take the provider down
            QgsMessageLog.logMessage(f"DeformCast: cannot load {info.name}: {e!r}", "DeformCast", Qgis.Critical)
            continue
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, DeformCastAlgorithm) and obj.ALG_ID and obj.__module__ == mod.__name__:
                classes.append(obj)
    return classes


class DeformCastProvider(QgsProcessingProvider):
    def id(self):
        return "deformcast"

    def name(self):
        return "DeformCast"

    def longName(self):  # noqa: N802
        miss = deps.missing()
        return "DeformCast" + (f" (missing: {', '.join(miss)})" if miss else "")

    def icon(self):
        return QIcon(ICON_PATH)

    def supportedOutputRasterLayerExtensions(self):  # noqa: N802
        """GeoTIFF is all DeformCast writes: the save dialogs of its raster outputs offer it alone (a name with another
        extension, e.g. on the command line, is refused before anything is written: base._safe_outputs)."""
        return ["tif"]

    def load(self):
        miss = deps.missing()
        if miss:
            QgsMessageLog.logMessage(
                "DeformCast: missing Python packages " + ", ".join(miss)
                + ". Install them with: " + deps.install_command(miss),
                "DeformCast", Qgis.Warning)
        # The shipped graphical models call this provider's algorithms, which the registry only
        # resolves once the provider is registered: add them when that happens.
        QgsApplication.processingRegistry().providerAdded.connect(self._provider_added)
        return super().load()

    def unload(self):
        try:
            QgsApplication.processingRegistry().providerAdded.disconnect(self._provider_added)
        except (TypeError, RuntimeError):
            pass
        super().unload()

    def loadAlgorithms(self):  # noqa: N802
        for cls in algorithm_classes():
            self.addAlgorithm(cls())
        if QgsApplication.processingRegistry().providerById(self.id()) is not None:
            self._add_models()

    def _provider_added(self, provider_id):
        if provider_id == self.id():
            self._add_models()

    def _add_models(self):
        """Offer the graphical models of resources/models (.model3) in the toolbox."""
        if not os.path.isdir(MODELS_DIR):
            return
        for name in sorted(os.listdir(MODELS_DIR)):
            if not name.endswith(".model3"):
                continue
            model = DeformCastModel()
            if model.fromFile(os.path.join(MODELS_DIR, name)):
                model.prepare_inputs()
                if self.algorithm(model.name()) is None:
                    self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"DeformCast: cannot read the model {name}", "DeformCast", Qgis.Warning)
