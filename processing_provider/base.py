"""Common base of the DeformCast Processing algorithms.

A wrapper declares parameters, reads them, calls one core function with a
:class:`algorithms.progress.Progress` built from the QgsProcessingFeedback, and returns the
outputs. Core errors (:class:`DeformCastError`, missing packages, Cancel) become
QgsProcessingException with the core's message, never a traceback.
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from ..algorithms import deps
from ..algorithms.errors import Cancelled, DeformCastError
from ..algorithms.progress import Progress

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "resources", "icon.svg")

GROUPS = {
    "data": "Data",
    "modelling": "Modelling",
    "maps": "Maps",
    "decision": "Decision",
}

ARCHITECTURES = ["lstm", "gru", "tcn", "cnn_lstm", "transformer", "resnet_transformer"]
# choice lists come from the core (defined once there)
from ..algorithms.dataset import ANCHORS as _ANCHORS, ENCODINGS as _ENCODINGS, VALIDATIONS as _VALIDATIONS  # noqa: E402

ENCODINGS = list(_ENCODINGS)
VALIDATIONS = list(_VALIDATIONS)
ANCHORS = list(_ANCHORS)
DEVICES = ["auto", "cpu", "cuda"]


def progress_from(feedback) -> Progress:
    """A core Progress that drives ``feedback`` (QgsProcessingFeedback or None)."""
    if feedback is None:
        return Progress()
    return Progress(feedback.setProgress, feedback.isCanceled, feedback.pushInfo)


class DeformCastAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set the class attributes and implement ``initAlgorithm`` and ``execute``."""

    ALG_ID: str = ""
    DISPLAY_NAME: str = ""
    GROUP: str = "data"
    HELP: str = ""
    #: Python packages this algorithm needs beyond QGIS (checked before it runs)
    REQUIRES: Sequence[str] = ("numpy",)

    # --- identity ------------------------------------------------------------------------
    def name(self):
        return self.ALG_ID

    def displayName(self):  # noqa: N802
        return self.DISPLAY_NAME

    def group(self):
        return GROUPS[self.GROUP]

    def groupId(self):  # noqa: N802
        return self.GROUP

    def icon(self):
        return QIcon(ICON_PATH)

    def shortHelpString(self):  # noqa: N802
        text = self.HELP.strip()
        miss = deps.missing(self.REQUIRES)
        if miss:
            text += ("<p><b>Not ready:</b> this algorithm needs the Python package(s) "
                     + ", ".join(miss) + ". Install them with:<br><code>"
                     + deps.install_command(miss) + "</code></p>")
        return text

    def createInstance(self):  # noqa: N802
        return type(self)()

    # --- parameter helpers (names, not indices) -----------------------------------------
    _enum_options: Dict[str, List[str]]

    def add_enum(self, name: str, description: str, options: Sequence[str], default=None,
                 multiple: bool = False, optional: bool = False):
        if not hasattr(self, "_enum_options") or self._enum_options is None:
            self._enum_options = {}
        self._enum_options[name] = list(options)
        if default is None:
            default = list(options)[0]
        p = QgsProcessingParameterEnum(name, description, list(options), multiple, default, optional)
        p.setUsesStaticStrings(True)
        self.addParameter(p)
        return p

    def enum_value(self, parameters, name: str, context) -> str:
        return self.parameterAsEnumString(parameters, name, context)

    def enum_values(self, parameters, name: str, context) -> List[str]:
        return list(self.parameterAsEnumStrings(parameters, name, context))

    def add_common_params(self, dates=True, seed=True, device=False):
        if dates:
            self.addParameter(QgsProcessingParameterString(
                "DATES", "Acquisition dates (text file or comma list; default: band descriptions)",
                optional=True))
        if seed:
            self.addParameter(QgsProcessingParameterNumber(
                "SEED", "Random seed", QgsProcessingParameterNumber.Integer, 42))
        if device:
            self.add_enum("DEVICE", "Compute device", DEVICES, "auto")

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Refuse unknown choice names with the list of valid ones."""
        for name, options in (getattr(self, "_enum_options", None) or {}).items():
            raw = parameters.get(name)
            if raw is None:
                continue
            items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
            for it in items:
                s = str(it).strip()
                if s and s not in options and not (s.isdigit() and int(s) < len(options)):
                    return False, (f"{name}: unknown value '{s}'. Valid values: "
                                   + ", ".join(options) + ".")
        return super().checkParameterValues(parameters, context)

    # --- running -------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            deps.require(*self.REQUIRES)
            return self.execute(parameters, context, feedback, progress_from(feedback))
        except Cancelled as e:
            raise QgsProcessingException(str(e)) from None
        except DeformCastError as e:
            raise QgsProcessingException(str(e)) from None
        except MemoryError:
            raise QgsProcessingException(
                "Out of memory. Use a smaller area or a smaller block size, or close other programs.") from None

    # Wrappers implement ``execute``. (Not ``run``: QgsProcessingAlgorithm.run is what
    # processing.run() calls, and a Python method of that name would shadow it.)
    def execute(self, parameters, context, feedback, progress: Progress) -> dict:
        raise QgsProcessingException(f"{self.ALG_ID}: execute() is not implemented")


def output_path(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> str:
    """Path of a raster/file destination; temporary outputs get a .tif path."""
    p = alg.parameterAsOutputLayer(parameters, name, context)
    if not p:
        p = alg.parameterAsFileOutput(parameters, name, context)
    return p


def raster_source(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> str:
    """File path of a raster layer parameter (layer from the project, or a path)."""
    lyr = alg.parameterAsRasterLayer(parameters, name, context)
    if lyr is not None:
        return lyr.source()
    raw = parameters.get(name)
    return str(raw) if raw is not None else ""


def layer_sources(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> List[str]:
    """File paths of a multiple-layers parameter (empty list when not given)."""
    if parameters.get(name) in (None, "", []):
        return []
    return [lyr.source() for lyr in alg.parameterAsLayerList(parameters, name, context)]
