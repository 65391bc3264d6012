"""Common base of the DeformCast Processing algorithms.

A wrapper declares parameters, reads them, calls one core function with a
:class:`algorithms.progress.Progress` built from the QgsProcessingFeedback, and returns the
outputs. What every algorithm gets from this base:

* **One error path.** Every failure reaches the user as a QgsProcessingException whose message
  names the fix: core errors (:class:`DeformCastError`, missing packages, Cancel) with the core's
  message, file-system errors naming the file, anything else as an unexpected error with the
  first line of its message (libraries' advice, e.g. torch's about ``weights_only``, is cut), never
  a traceback. Core warnings (:func:`algorithms.errors.warn`) become feedback warnings.
* **Output safety.** An output path equal to an input or to another output is refused before
  anything is written. File outputs are written under a temporary name beside the target
  (``<name>.dcpart-<pid>-<tag>.<ext>``, side files such as the ``.qml`` style included) and moved
  into place only when the whole run succeeded: a failed or cancelled run leaves every earlier
  file at the output paths untouched and nothing that looks complete. Folder outputs (model
  folders, workflow folders) are not moved (the cores there write a completion marker last);
  ``IN_PLACE_OUTPUTS`` names further outputs a core must write in place.
* **Choices by name or number.** Enum parameters take the option names or the numbers the help
  lists (``ARCHITECTURE=1``); an unknown value is refused with the list of valid ones.
* **Processing dialogs.** The help panel gets one line per paragraph (QGIS's panel wraps every
  source line of ``shortHelpString`` in its own paragraph) and a link to the page of docs/ that
  documents the algorithm (also ``helpUrl``, the dialog's Help button). Expert parameters are
  folded under *Advanced* (:meth:`DeformCastAlgorithm.advanced`). Mandatory raster inputs start
  empty instead of taking the active layer (:class:`NoActiveLayerWrapper`), except those in
  :data:`ACTIVE_LAYER_INPUTS`.
* **Quiet input loading.** QGIS computes statistics when it loads an input raster for a run; for a
  band with one value GDAL prints "dfMax should be strictly greater than dfMin", and the statistics
  went into an ``.aux.xml`` beside the user's file. Inputs the plugin's code loads are loaded with
  GDAL's messages and side-car writing switched off for this thread; under ``./deformcast``
  (qgis_process loads the inputs before any plugin code runs) the project's own headless profile
  gives raster layers no contrast stretch, so no statistics are computed
  (:func:`headless_profile_defaults`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtGui import QIcon

from ..algorithms import deps
from ..algorithms.errors import Cancelled, DeformCastError, warnings_to
from ..algorithms.progress import Progress

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "resources", "icon.svg")

GROUPS = {
    "data": "Data",
    "modelling": "Modelling",
    "maps": "Maps",
    "decision": "Decision",
}

# choice lists come from the core (defined once there): the architectures from the model registry
from ..algorithms.chain import DEVICES as _DEVICES  # noqa: E402
from ..algorithms.data.dataset import (ANCHORS as _ANCHORS, ENCODINGS as _ENCODINGS,
    VALIDATIONS as _VALIDATIONS)  # noqa: E402
from ..algorithms.models import names as _architectures  # noqa: E402

ARCHITECTURES = list(_architectures())
ENCODINGS = list(_ENCODINGS)
VALIDATIONS = list(_VALIDATIONS)
ANCHORS = list(_ANCHORS)
DEVICES = list(_DEVICES)

#: the page of docs/ (relative to the plugin folder) that documents each algorithm (help link)
DOCS = {
    "import_timeseries": "docs/README_data.md",
    "sample_at_points": "docs/README_data.md",
    "synthetic_scenario": "docs/README_synthetic.md",
    "train": "docs/README_models.md",
    "tune": "docs/README_tuning.md",
    "compare": "docs/README_tuning.md",
    "predict": "docs/README_calibration.md",
    "uncertainty": "docs/README_maps.md",
    "residuals": "docs/README_maps.md",
    "zoning": "docs/README_maps.md",
    "workflow": "README.md",
    "deformcast_workflow_model": "README.md",
}

#: (algorithm, parameter) raster inputs that may start from the active layer; every other mandatory
#: raster input of a DeformCast dialog starts empty (an active tier map is no displacement stack)
ACTIVE_LAYER_INPUTS = {("sample_at_points", "INPUT")}


def docs_path(alg_id: str) -> str:
    """Absolute path of the documentation page of an algorithm (the README when none is listed)."""
    return os.path.join(PLUGIN_DIR, DOCS.get(alg_id, "README.md"))


def help_url(alg_id: str) -> str:
    """``file://`` URL of :func:`docs_path` (what the dialog's Help button opens)."""
    from qgis.PyQt.QtCore import QUrl

    return QUrl.fromLocalFile(docs_path(alg_id)).toString()


_BLOCK_END = re.compile(r"(</(?:p|ul|ol|table|h[1-6]|pre|div)>)\s*", re.IGNORECASE)


def panel_html(html: str) -> str:
    """Help HTML laid out for QGIS's Processing help panel: one line per paragraph.

    The panel (``formatHelp`` in QgsProcessingAlgorithmDialogBase) wraps every *line* of
    ``shortHelpString`` in its own ``<p>``, so a paragraph wrapped over several source lines showed
    as several paragraphs with a blank line between each. Line breaks inside a paragraph become
    spaces (``<pre>`` keeps them as ``<br>``), and each block element ends its line; no empty lines.
    """
    text = (html or "").strip()
    # <pre> blocks keep their line breaks
    text = re.sub(r"<pre>(.*?)</pre>", lambda m: "<pre>" + m.group(1).replace("\n", "<br>") + "</pre>", text,
                  flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(r"\s*\n\s*", " ", text)
    text = _BLOCK_END.sub(lambda m: m.group(1) + "\n", text)
    lines: List[str] = []
    for line in (x.strip() for x in text.split("\n")):
        if not line:
            continue
        if lines and (line.startswith("</") or not re.match(r"<(p|ul|ol|table|h[1-6]|pre|div)\b", line, re.I)):
            lines[-1] += " " + line   # a closing tag or loose text continues the block before it
        else:
            lines.append(line)
    return "\n".join(lines)


def docs_paragraph(alg_id: str) -> str:
    """The help's last paragraph: where the full documentation is."""
    rel = DOCS.get(alg_id, "README.md")
    return (f'<p>Full documentation: <a href="{help_url(alg_id)}">{rel}</a> in the plugin folder '
            "(also the dialog's Help button).</p>")


class NoActiveLayerWrapper:
    """Processing's own widget for a mandatory raster input, starting **empty**.

    QGIS 3.22 fills a mandatory layer input without a default with the active layer (else the
    first layer of the project): ``tune``'s INPUT became whatever map was selected, e.g. the tier
    map. Set as the parameter's ``widget_wrapper`` metadata (:func:`no_active_layer`), this factory
    builds the standard widget (the same the registry builds; modeler and batch dialogs unchanged)
    and, in the algorithm dialog, hides the active layer from it and leaves its layer box empty
    until a layer is chosen. Running with it empty is refused by QGIS as a missing value.
    """

    def __new__(cls, param, dialog, row=0, col=0, **kw):
        from qgis.gui import QgsGui, QgsProcessingGui

        from processing.gui.wrappers import WidgetWrapperFactory, dialogTypes

        class_type = dialog.__class__.__name__
        if class_type == "ModelerParametersDialog":
            return QgsGui.processingGuiRegistry().createModelerParameterWidget(
                dialog.model, dialog.childId, param, dialog.context)
        kind = dialogTypes.get(class_type, QgsProcessingGui.Standard)
        wrapper = QgsGui.processingGuiRegistry().createParameterWidgetWrapper(param, kind)
        if wrapper is None:
            return WidgetWrapperFactory.create_wrapper_from_class(param, dialog, row, col)
        wrapper.setDialog(dialog)
        if kind == QgsProcessingGui.Standard:
            _start_empty(wrapper)
        return wrapper


def _start_empty(wrapper) -> None:
    from qgis.gui import QgsMapLayerComboBox, QgsProcessingParameterWidgetContext
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QComboBox

    set_context, create = wrapper.setWidgetContext, wrapper.createWrappedWidget

    def set_widget_context(context):
        c = QgsProcessingParameterWidgetContext()   # the same context, without the active layer
        c.setProject(context.project())
        c.setMapCanvas(context.mapCanvas())
        c.setMessageBar(context.messageBar())
        c.setBrowserModel(context.browserModel())
        if context.model() is not None:
            c.setModel(context.model())
            c.setModelChildAlgorithmId(context.modelChildAlgorithmId())
        wrapper._dc_context = c   # the wrapper keeps a copy; keep ours alive as long as it
        set_context(c)

    def create_wrapped_widget(context):
        w = create(context)
        if w is not None and not wrapper.parameterDefinition().defaultValue():
            # the layer box inside Processing's widget (a QgsMapLayerComboBox that sip sees as QComboBox)
            for box in w.findChildren(QComboBox):
                if box.metaObject().className() == "QgsMapLayerComboBox":
                    combo = sip.cast(box, QgsMapLayerComboBox)
                    combo.setAllowEmptyLayer(True)
                    combo.setLayer(None)
                    break
        return w

    wrapper.setWidgetContext = set_widget_context
    wrapper.createWrappedWidget = create_wrapped_widget


def no_active_layer(definition):
    """Give a raster input :class:`NoActiveLayerWrapper` (returns the definition)."""
    md = dict(definition.metadata() or {})
    md["widget_wrapper"] = {"class": f"{__name__}.NoActiveLayerWrapper"}
    definition.setMetadata(md)
    return definition


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
    #: file outputs the core must write at their own path (e.g. it keeps work files named after
    #: them); every other file output is written under a temporary name and moved into place
    IN_PLACE_OUTPUTS: Sequence[str] = ()

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
        """The HELP text, one line per paragraph (see :func:`panel_html`), a note on missing
        packages, and a link to the documentation page."""
        text = self.HELP.strip()
        miss = deps.missing(self.REQUIRES)
        if miss:
            text += ("<p><b>Not ready:</b> this algorithm needs the Python package(s) "
                     + ", ".join(miss) + ". Install them with:<br><code>"
                     + deps.install_command(miss) + "</code></p>")
        return panel_html(text + docs_paragraph(self.ALG_ID))

    def helpString(self):  # noqa: N802
        return self.shortHelpString()

    def helpUrl(self):  # noqa: N802
        return help_url(self.ALG_ID)

    def createInstance(self):  # noqa: N802
        return type(self)()

    # --- parameter helpers (names, not indices) -----------------------------------------
    _enum_options: Dict[str, List[str]]

    def addParameter(self, definition, createOutput=True):  # noqa: N802
        """QgsProcessingAlgorithm.addParameter; a mandatory raster input starts empty in the
        dialog instead of taking the active layer (see :class:`NoActiveLayerWrapper`)."""
        if (definition.type() == "raster" and not definition.flags() & QgsProcessingParameterDefinition.FlagOptional
                and (self.ALG_ID, definition.name()) not in ACTIVE_LAYER_INPUTS):
            no_active_layer(definition)
        return super().addParameter(definition, createOutput)

    def advanced(self, *names: str) -> None:
        """Fold the named (expert) parameters under *Advanced* in the dialog. Call at the end of
        ``initAlgorithm``; an unknown name is a programming error."""
        for name in names:
            d = self.parameterDefinition(name)
            if d is None:
                raise KeyError(f"{self.ALG_ID}: no parameter {name} to mark advanced")
            d.setFlags(d.flags() | QgsProcessingParameterDefinition.FlagAdvanced)

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
        """The chosen option name (a name or the option's number in the help)."""
        names = self._enum_names(parameters, name)
        if names is None:
            return self.parameterAsEnumString(parameters, name, context)
        return names[0] if names else self.parameterAsEnumString(parameters, name, context)

    def enum_values(self, parameters, name: str, context) -> List[str]:
        names = self._enum_names(parameters, name)
        if names is None:
            return list(self.parameterAsEnumStrings(parameters, name, context))
        return names

    def _enum_names(self, parameters, name: str) -> Optional[List[str]]:
        """Option names of an enum value given by names and/or numbers; None when not given or
        not one of ours (QGIS then reads it); DeformCastError for an unknown value."""
        options = (getattr(self, "_enum_options", None) or {}).get(name)
        raw = parameters.get(name) if parameters is not None else None
        if options is None or raw is None:
            return None
        items = _enum_items(raw)
        if not items:   # not given, or not a form we read: QGIS's reading (and default) applies
            return None
        out = []
        for it in items:
            v = _enum_item(it, options)
            if v is None:
                raise DeformCastError(_enum_message(name, it, options))
            out.append(v)
        return out

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
        """Refuse unknown choice names with the list of valid ones; numbers of the help's list
        are accepted (QGIS's own check, which knows only names, sees them as names)."""
        normal = dict(parameters)
        for name, options in (getattr(self, "_enum_options", None) or {}).items():
            raw = parameters.get(name)
            if raw is None:
                continue
            items = _enum_items(raw)
            if items is None:
                continue
            names = []
            for it in items:
                v = _enum_item(it, options)
                if v is None:
                    return False, _enum_message(name, it, options)
                names.append(v)
            if names or isinstance(raw, (list, tuple)):
                normal[name] = names if isinstance(raw, (list, tuple)) or len(names) != 1 else names[0]
        with quiet_gdal():  # QGIS loads the input layers here (statistics: see the module doc)
            return super().checkParameterValues(normal, context)

    # --- running -------------------------------------------------------------------------
    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        moves: List[Tuple[str, str]] = []
        try:
            deps.require(*self.REQUIRES)
            with quiet_gdal():  # input layers load here (then reused from the context's store)
                run_params, moves = self._safe_outputs(parameters, context)
            warn_fn = feedback.pushWarning if feedback is not None and hasattr(feedback, "pushWarning") else (
                feedback.pushInfo if feedback is not None else (lambda m: None))
            with warnings_to(warn_fn):
                result = self.execute(run_params, context, feedback, progress_from(feedback))
            return _commit(moves, result)
        except QgsProcessingException:
            _discard(moves)
            raise
        except Cancelled as e:
            _discard(moves)
            raise QgsProcessingException(str(e)) from None
        except DeformCastError as e:
            _discard(moves)
            raise QgsProcessingException(str(e)) from None
        except MemoryError:
            _discard(moves)
            raise QgsProcessingException(
                "Out of memory. Use a smaller area or a smaller block size, or close other programs.") from None
        except OSError as e:
            _discard(moves)
            raise QgsProcessingException(_os_message(e)) from None
        except Exception as e:  # noqa: BLE001 - the one error path: never a traceback, never library advice
            _discard(moves)
            _log_traceback(self.ALG_ID)
            raise QgsProcessingException(
                f"{self.DISPLAY_NAME or self.ALG_ID} stopped on an unexpected error ({type(e).__name__}: "
                f"{clean_message(e)}). No output was written. Check the inputs and settings of this run (files "
                "complete and of the kind each parameter asks for); if they are right, please report this "
                "message together with the run log.") from None

    # --- output safety -------------------------------------------------------------------
    def _safe_outputs(self, parameters, context):
        """Refuse outputs on inputs or on each other; redirect file outputs to temporary names.

        Returns ``(parameters for execute, [(temporary stem, final path)])``."""
        inputs: Dict[str, List[str]] = {}
        outputs: List[Tuple[str, str, object]] = []   # (name, path, definition)
        for d in self.parameterDefinitions():
            name = d.name()
            if d.isDestination():
                p = self._destination_path(parameters, d, context)
                if p:
                    outputs.append((name, p, d))
            else:
                paths = self._input_paths(parameters, d, context)
                if paths:
                    inputs[name] = paths
        seen: Dict[str, str] = {}
        for name, p, dest in outputs:
            key = _norm(p)
            for iname, ipaths in inputs.items():
                for ip in ipaths:
                    if _norm(ip) == key:
                        raise DeformCastError(
                            f"{name} is the input {iname} ('{p}'): writing it would destroy the input. Give "
                            f"{name} another file name.")
            if key in seen:
                raise DeformCastError(
                    f"{seen[key]} and {name} are the same file ('{p}'): each output needs its own file name. "
                    f"Give {name} another name.")
            seen[key] = name
            ext = os.path.splitext(p)[1].lower()
            if dest.type() == "rasterDestination" and _plain_file(p) and ext not in (".tif", ".tiff"):
                # GeoTIFF is all DeformCast writes: a '.png' held a GeoTIFF, and its style overwrote the .tif's
                raise DeformCastError(
                    f"{name} '{p}': DeformCast writes rasters as GeoTIFF. Give a file name ending in .tif (e.g. "
                    f"'{os.path.splitext(os.path.basename(p))[0]}.tif'), or convert the result afterwards.")
            if (dest.type() == "fileDestination" and _plain_file(p) and ext != ".csv"
                    and "*.csv" in (dest.fileFilter() or "").lower()):
                # a CSV table written under any name: 'values.tif' held text that GIS programs refuse as a raster
                raise DeformCastError(
                    f"{name} '{p}': this output is a CSV table. Give a file name ending in .csv (e.g. "
                    f"'{os.path.splitext(os.path.basename(p))[0]}.csv').")
        run_params = dict(parameters)
        moves: List[Tuple[str, str]] = []
        for name, p, d in outputs:
            if d.type() == "folderDestination" or name in self.IN_PLACE_OUTPUTS or not _plain_file(p):
                continue
            folder, base = os.path.split(os.path.abspath(p))
            stem, ext = os.path.splitext(base)
            tmp_stem = os.path.join(folder, f"{stem}.dcpart-{os.getpid()}-{uuid.uuid4().hex[:6]}")
            os.makedirs(folder, exist_ok=True)
            run_params[name] = tmp_stem + ext
            moves.append((tmp_stem, os.path.join(folder, stem)))
        return run_params, moves

    def _destination_path(self, parameters, d, context) -> str:
        if parameters.get(d.name()) in (None, ""):
            return ""
        try:
            if d.type() in ("folderDestination", "fileDestination"):
                return self.parameterAsFileOutput(parameters, d.name(), context) or ""
            return self.parameterAsOutputLayer(parameters, d.name(), context) or ""
        except Exception:  # noqa: BLE001 - an unusual destination: the algorithm reads it itself
            return ""

    def _input_paths(self, parameters, d, context) -> List[str]:
        raw = parameters.get(d.name())
        if raw in (None, "", []):
            return []
        t = d.type()
        out: List[str] = []
        # a path given as text is the path: no layer is loaded for it (loading layers in the task's
        # thread only to read their source cost time and could crash QGIS in that thread)
        texts = raw if isinstance(raw, (list, tuple)) else [raw]
        if all(isinstance(x, str) for x in texts) and all(os.path.exists(x.split("|")[0]) for x in texts):
            return [x.split("|")[0] for x in texts]
        try:
            if t == "raster":
                lyr = self.parameterAsRasterLayer(parameters, d.name(), context)
                out = [lyr.source()] if lyr is not None else [str(raw)]
            elif t in ("vector", "source", "layer", "mesh"):
                lyr = self.parameterAsLayer(parameters, d.name(), context)
                out = [lyr.source()] if lyr is not None else [str(raw)]
            elif t == "multilayer":
                out = [lyr.source() for lyr in self.parameterAsLayerList(parameters, d.name(), context)]
            elif t == "file":
                out = [self.parameterAsFile(parameters, d.name(), context)]
            elif t == "string":
                v = self.parameterAsString(parameters, d.name(), context)
                out = [v] if v and os.path.exists(v) else []
        except Exception:  # noqa: BLE001 - the algorithm reports a bad input itself
            out = [str(raw)] if isinstance(raw, str) else []
        return [o.split("|")[0] for o in out if o]

    # Wrappers implement ``execute``. (Not ``run``: QgsProcessingAlgorithm.run is what
    # processing.run() calls, and a Python method of that name would shadow it.)
    def execute(self, parameters, context, feedback, progress: Progress) -> dict:
        raise QgsProcessingException(f"{self.ALG_ID}: execute() is not implemented")


# --- enum values -------------------------------------------------------------------------------

def _enum_items(raw) -> Optional[list]:
    """The items of an enum value (list, comma text, number); None for what QGIS must read."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (list, tuple)):
        return [i for i in raw if str(i).strip() != ""]
    if isinstance(raw, (int, float)):
        return [raw]
    if isinstance(raw, str):
        return [t for t in (x.strip() for x in raw.split(",")) if t]
    return None


def _enum_item(it, options: Sequence[str]) -> Optional[str]:
    if isinstance(it, float) and it.is_integer():
        it = int(it)
    if isinstance(it, int) and not isinstance(it, bool):
        return options[it] if 0 <= it < len(options) else None
    s = str(it).strip()
    if s in options:
        return s
    low = {o.lower(): o for o in options}
    if s.lower() in low:
        return low[s.lower()]
    if s.isdigit() and int(s) < len(options):
        return options[int(s)]
    return None


def _enum_message(name: str, it, options: Sequence[str]) -> str:
    return (f"{name}: unknown value '{it}'. Valid values: " + ", ".join(options)
            + f" (the name, or its number 0 to {len(options) - 1} in this order).")


# --- GDAL while QGIS loads inputs -------------------------------------------------------------------

@contextlib.contextmanager
def quiet_gdal():
    """GDAL's messages off and its ``.aux.xml`` side-cars off, in this thread, while the block runs."""
    try:
        from osgeo import gdal
    except ImportError:  # pragma: no cover
        yield
        return
    old = gdal.GetThreadLocalConfigOption("GDAL_PAM_ENABLED", None)
    gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", "NO")
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        gdal.SetThreadLocalConfigOption("GDAL_PAM_ENABLED", old)


def headless_profile_defaults() -> bool:
    """Under ``./deformcast`` (qgis_process with the project's own profile ``.qgis-profile``):
    QGIS loads every input raster of a run before the plugin's code runs, and computed a
    contrast stretch for it (GDAL's dfMax message, an ``.aux.xml`` beside the user's file). That
    profile renders nothing, so its raster layers get no stretch ("None" limits). Other profiles
    (the user's QGIS, a plain qgis_process) are left alone. Returns True when it applied."""
    try:
        from qgis.core import QgsApplication, QgsSettings
    except ImportError:  # pragma: no cover
        return False
    if QgsApplication.instance() is None or QgsApplication.platform() != "qgis_process":
        return False
    prof = os.environ.get("QGIS_CUSTOM_CONFIG_PATH", "")
    own = os.path.join(os.path.realpath(PLUGIN_DIR), ".qgis-profile")
    if not prof or os.path.realpath(prof) != own:
        return False
    s = QgsSettings()
    for key in ("singleBand", "multiBandSingleByte", "multiBandMultiByte"):
        name = "Raster/defaultContrastEnhancementLimits/" + key
        if s.value(name) != "None":
            s.setValue(name, "None")
    return True


headless_profile_defaults()


# --- output safety ------------------------------------------------------------------------------

def _norm(p: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(str(p))))


def _plain_file(p: str) -> bool:
    """A file path (not a database URI, a memory layer or a QGIS source string)."""
    s = str(p)
    return bool(s) and "|" not in s and "://" not in s and not s.lower().startswith(
        ("memory:", "ogr:", "postgres", "postgis:", "spatialite:", "dbname=", "gpkg:"))


def _files_of(tmp_stem: str) -> List[str]:
    folder, base = os.path.split(tmp_stem)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names if n.startswith(base)]


def _commit(moves: Sequence[Tuple[str, str]], result):
    """Move every temporary output (and its side files) into place; results point at the finals."""
    for tmp_stem, final_stem in moves:
        files = _files_of(tmp_stem)
        for f in files:
            dest = final_stem + f[len(tmp_stem):]
            if os.path.isdir(dest) and not os.path.isdir(f):
                raise DeformCastError(f"Cannot write '{dest}': a folder of that name exists. Give another output name.")
            os.replace(f, dest)
            if dest.lower().endswith((".tif", ".tiff", ".vrt")) and os.path.exists(dest + ".aux.xml") and \
                    not any(g == f + ".aux.xml" for g in files):
                os.remove(dest + ".aux.xml")  # statistics of the file this run replaced

    def fix(v):
        if isinstance(v, str):
            for tmp_stem, final_stem in moves:
                if v.startswith(tmp_stem):
                    return final_stem + v[len(tmp_stem):]
            return v
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in (result or {}).items()}


def _discard(moves: Sequence[Tuple[str, str]]) -> None:
    import shutil

    for tmp_stem, _ in moves:
        for f in _files_of(tmp_stem):
            try:
                shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)
            except OSError:
                pass


def clean_message(e: BaseException) -> str:
    """The first line of an exception's message, without library advice on unsafe loading."""
    text = str(e).strip()
    line = text.splitlines()[0].strip() if text else ""
    low = line.lower()
    if not line or "weights_only" in low or "pickle" in low or "arbitrary code" in low:
        return "details withheld: the library's message concerns unsafe loading"
    return line[:300]


def _os_message(e: OSError) -> str:
    where = f" '{e.filename}'" if getattr(e, "filename", None) else ""
    if e.errno == errno.ENOSPC:
        return f"The disk is full (writing{where}). Free space or choose an output folder on another disk."
    if isinstance(e, PermissionError):
        return (f"No permission to use{where}. Choose an output folder you may write to, or check the file's "
                "permissions.")
    if isinstance(e, FileNotFoundError):
        return f"The file or folder{where} does not exist (or was removed during the run). Check the path."
    return f"Cannot read or write{where}: {e.strerror or clean_message(e)}. Check the path and the disk."


def _log_traceback(alg_id: str) -> None:
    """The full traceback goes to the QGIS message log (for a bug report), not to the user."""
    import traceback

    try:
        from qgis.core import Qgis, QgsMessageLog

        QgsMessageLog.logMessage(f"{alg_id}: unexpected error\n{traceback.format_exc()}", "DeformCast", Qgis.Warning)
    except Exception:  # noqa: BLE001
        pass


def output_path(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> str:
    """Path of a raster/file destination; temporary outputs get a .tif path."""
    p = alg.parameterAsOutputLayer(parameters, name, context)
    if not p:
        p = alg.parameterAsFileOutput(parameters, name, context)
    return p


def raster_source(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> str:
    """File path of a raster layer parameter (layer from the project, or a path). A path given as text is taken as it
    is, without loading a layer: a layer loaded in a task's thread crashed QGIS once in the dialog's cancel test
    (session 47; see also output safety, which reads text paths directly for the same reason)."""
    raw = parameters.get(name)
    if isinstance(raw, str) and os.path.isfile(raw):
        return raw
    lyr = alg.parameterAsRasterLayer(parameters, name, context)
    if lyr is not None:
        return lyr.source()
    return str(raw) if raw is not None else ""


def layer_sources(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> List[str]:
    """File paths of a multiple-layers parameter (empty list when not given)."""
    if parameters.get(name) in (None, "", []):
        return []
    return [lyr.source() for lyr in alg.parameterAsLayerList(parameters, name, context)]
