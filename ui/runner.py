"""The workflow chain behind the DeformCast workflow dialog, without any widgets.

The dialog gathers the user's choices into a plain ``dict`` (keys in :data:`DEFAULTS`); this
module turns them into

* validation messages (:func:`validate`) shown while the user types: the stack's dates are read
  with :func:`algorithms.raster.open_stack`, covariates are checked against the stack's grid, and
  the number of epochs is compared with what window + horizon + validation + test need;
* the list of Processing steps (:func:`build_steps`):
  ``[import_timeseries ->] tune -> predict -> uncertainty -> zoning`` per chosen architecture
  (plus ``compare`` when asked), every output written to a fixed path in the output folder;
* a run of those steps (:func:`run_steps`), synchronous, used both by tests and by the
  background :class:`WorkflowTask` (a ``QgsTask``: progress bar, Cancel, canvas stays usable);
* styled layers in one layer-tree group (:func:`load_results`): each raster opens with the
  ``.qml`` sidecar the algorithms write, loaded as its default style.

No science happens here: every number comes out of the Processing algorithms
(``deformcast:<id>``), which call the QGIS-free core.

Choices where the paper (Liu et al. 2026) is silent, and why:

* Several architectures: one full branch (tune -> predict -> uncertainty -> zoning) per
  architecture, each in its own sub-folder and sub-group, instead of silently picking a winner;
  the ``compare`` step (Welch t-test + Benjamini-Hochberg) is offered for choosing between them.
* Parameters an installed algorithm does not declare are left out (and logged), so the dialog
  keeps working with older or newer algorithm versions; outputs the dialog does not name are
  still written into the step's folder rather than to temporary files.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsLayerTreeGroup,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsTask,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import pyqtSignal

ARCHITECTURES = ["lstm", "gru", "tcn", "cnn_lstm", "transformer", "resnet_transformer"]
ENCODINGS = ["none", "temporal", "spatial", "neighbourhood", "covariates"]
DEVICES = ["auto", "cpu", "cuda"]
UNITS = ["mm", "cm", "m"]
UNCERTAINTY_TYPES = ["ambiguity", "spread"]
IMPORT_KINDS = ["EGMS CSV", "Point layer", "MintPy / LiCSBAS HDF5"]

#: every key of a choices dict, with its default
DEFAULTS: Dict[str, object] = {
    "source": "stack",          # "stack": use a displacement stack; "import": import one first
    "stack": "",                # stack raster path
    "dates": "",                # optional DATES (text file or comma list)
    "import_input": "",         # EGMS CSV / point layer source / timeseries.h5 / cum.h5
    "cell_size": 0.0,           # points only (m, in the target CRS)
    "units": "mm",              # units of point date fields
    "target_crs": "",           # optional authid, e.g. EPSG:25832
    "covariates": [],           # raster paths
    "architectures": ["lstm"],
    "encodings": ["temporal"],
    "window": 12,
    "horizon": 3,
    "n_trials": 10,
    "top_k": 3,
    "max_epochs": 30,           # training epochs per trial
    "thresholds": "10,20,40",  # mm over the horizon
    "uncertainty_type": "ambiguity",  # zoning: "ambiguity" or "spread"
    "n_classes": 5,
    "seed": 42,
    "device": "auto",
    "compare": False,           # also run deformcast:compare over the architectures
    "repeats": 3,
    "alpha": 0.05,              # false discovery rate of the comparison (Benjamini-Hochberg)
    "output_folder": "",
    #: extra parameters per algorithm id, e.g. {"tune": {"MAX_EPOCHS": 2}} (scripts, tests)
    "extra": {},
}

CHAIN = ["tune", "predict", "uncertainty", "zoning"]


def choices_with_defaults(choices: Optional[dict]) -> dict:
    out = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
           for k, v in DEFAULTS.items()}
    out.update(choices or {})
    return out


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
@dataclass
class Message:
    level: str  # "error", "warning" or "info"
    text: str


@dataclass
class Validation:
    messages: List[Message] = field(default_factory=list)
    n_epochs: Optional[int] = None
    dates: Optional[Sequence] = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> List[str]:
        return [m.text for m in self.messages if m.level == "error"]

    @property
    def warnings(self) -> List[str]:
        return [m.text for m in self.messages if m.level == "warning"]

    def add(self, level: str, text: str) -> None:
        self.messages.append(Message(level, text))

    def html(self) -> str:
        colour = {"error": "#b00020", "warning": "#8a5a00", "info": "#1f5130"}
        mark = {"error": "✘", "warning": "⚠", "info": "✔"}
        return "<br>".join(f'<span style="color:{colour[m.level]}">{mark[m.level]} {_esc(m.text)}</span>'
                           for m in self.messages)


def _esc(s: str) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def check_epochs(n_epochs: int, window: int, horizon: int) -> Optional[str]:
    """None when ``n_epochs`` suffice for WINDOW + HORIZON + validation + test, else the reason.

    Asks the data module (``algorithms.dataset.validate_inputs``, the same check ``tune`` and
    ``train`` make), so the dialog and the algorithms always agree on the periods' lengths.
    """
    from ..algorithms.errors import DeformCastError

    try:
        from ..algorithms.dataset import validate_inputs
    except ImportError:  # a data module that needs a missing package: the plain rule
        need = int(window) + 3 * int(horizon)
        if int(n_epochs) < need:
            return (f"Too few epochs: {n_epochs}, but window {window} + horizon {horizon} + validation "
                    f"+ test need at least {need}. Lower the window or the horizon, or use a longer stack.")
        return None
    try:
        validate_inputs(int(n_epochs), int(window), int(horizon))
    except DeformCastError as e:
        return str(e)
    return None


def parse_thresholds(text) -> List[float]:
    items = [t for t in re.split(r"[,;\s]+", str(text or "").strip()) if t]
    return [float(t) for t in items]


def registry_has(alg_id: str) -> bool:
    return QgsApplication.processingRegistry().algorithmById(f"deformcast:{alg_id}") is not None


def _raster_grid(path: str):
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(str(path))
    return ds.GetGeoTransform(), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize


def _extent(gt, w, h) -> QgsRectangle:
    xs = [gt[0], gt[0] + w * gt[1] + h * gt[2]]
    ys = [gt[3], gt[3] + w * gt[4] + h * gt[5]]
    return QgsRectangle(min(xs), min(ys), max(xs), max(ys))


def validate(choices: dict, check_algorithms: bool = True) -> Validation:
    """Check the choices the way the algorithms will; messages name what to change."""
    from ..algorithms.errors import DeformCastError
    from ..algorithms.raster import crs_equal, open_stack

    c = choices_with_defaults(choices)
    v = Validation()
    window, horizon = int(c["window"]), int(c["horizon"])
    if window < 2:
        v.add("error", "Window must be at least 2 epochs.")
    if horizon < 1:
        v.add("error", "Horizon must be at least 1 epoch.")
    if not c["architectures"]:
        v.add("error", "Choose at least one architecture.")
    bad = [a for a in c["architectures"] if a not in ARCHITECTURES]
    if bad:
        v.add("error", f"Unknown architecture(s) {', '.join(bad)}. Valid: {', '.join(ARCHITECTURES)}.")
    if not c["encodings"]:
        v.add("error", "Choose at least one coding strategy (use 'none' for plain windows).")
    if "covariates" in c["encodings"] and not c["covariates"]:
        v.add("error", "The 'covariates' coding strategy needs covariate rasters: add some or untick it.")
    if int(c["n_trials"]) < 1:
        v.add("error", "The TPE budget must be at least 1 trial.")
    if int(c["top_k"]) < 1:
        v.add("error", "Keep at least 1 model (top-K).")
    elif int(c["top_k"]) > int(c["n_trials"]):
        v.add("error", f"Top-K ({c['top_k']}) cannot exceed the number of trials ({c['n_trials']}): "
                       "raise the TPE budget or lower top-K.")
    try:
        th = parse_thresholds(c["thresholds"])
        if not th:
            v.add("error", "Give at least one exceedance threshold in mm, e.g. 10,20,40.")
        elif any(t <= 0 for t in th):
            v.add("error", "Thresholds are deformation magnitudes over the horizon in mm: use positive numbers.")
    except ValueError:
        v.add("error", f"Thresholds '{c['thresholds']}' are not numbers: write e.g. 10,20,40 (mm over the horizon).")
    if c["uncertainty_type"] not in UNCERTAINTY_TYPES:
        v.add("error", f"Zoning uncertainty must be one of {', '.join(UNCERTAINTY_TYPES)}.")
    if int(c["max_epochs"]) < 1:
        v.add("error", "Train at least 1 epoch per trial.")
    if int(c["n_classes"]) < 2:
        v.add("error", "Susceptibility needs at least 2 classes.")
    if c["compare"] and int(c["repeats"]) < 2:
        v.add("error", "The comparison needs at least 2 repeats per method (a t-test needs a variance).")
    if c["compare"] and not 0 < float(c["alpha"]) < 1:
        v.add("error", "The false discovery rate must be between 0 and 1, e.g. 0.05.")

    out = str(c["output_folder"] or "").strip()
    if not out:
        v.add("error", "Choose an output folder.")
    else:
        parent = out if os.path.isdir(out) else os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(parent):
            v.add("error", f"The folder '{parent}' does not exist: create it or choose another output folder.")
        elif not os.access(parent, os.W_OK):
            v.add("error", f"Cannot write into '{parent}': choose a folder you can write to.")
        elif os.path.isdir(out) and os.listdir(out):
            v.add("warning", f"'{out}' is not empty: files of an earlier run there will be replaced.")

    stack_grid = None
    if c["source"] == "import":
        src = str(c["import_input"] or "").strip()
        if not src:
            v.add("error", "Choose the file or point layer to import (EGMS CSV, point layer, MintPy/LiCSBAS HDF5).")
        elif not os.path.exists(src.split("|")[0]):
            v.add("error", f"'{src}' does not exist.")
        else:
            is_h5 = src.lower().endswith((".h5", ".hdf5", ".he5"))
            if not is_h5 and float(c["cell_size"] or 0) <= 0:
                v.add("error", "Points are gridded onto a raster: give a cell size (in metres of the target CRS).")
            v.add("info", "The stack will be imported first; its dates and epochs are checked after the import.")
        if check_algorithms and not registry_has("import_timeseries"):
            v.add("error", "The algorithm deformcast:import_timeseries is not available in this installation.")
    else:
        path = str(c["stack"] or "").strip()
        if not path:
            v.add("error", "Choose a displacement stack (a layer or a multiband GeoTIFF).")
        else:
            try:
                info = open_stack(path, c["dates"] or None)
                v.n_epochs = info.n_epochs
                v.dates = info.dates
                stack_grid = info.grid
                v.add("info", f"{info.n_epochs} epochs, {info.dates[0]} to {info.dates[-1]}; "
                              f"{info.grid.width} x {info.grid.height} pixels.")
                if window >= 2 and horizon >= 1:
                    why = check_epochs(info.n_epochs, window, horizon)
                    if why:
                        v.add("error", why)
            except DeformCastError as e:
                v.add("error", str(e))

    for cov in c["covariates"] or []:
        name = os.path.basename(str(cov))
        if not os.path.exists(str(cov)):
            v.add("error", f"Covariate '{cov}' does not exist.")
            continue
        try:
            gt, wkt, w, h = _raster_grid(cov)
        except RuntimeError as e:
            v.add("error", f"Covariate '{name}' is not a raster GDAL can read ({e}).")
            continue
        if stack_grid is None:
            continue
        sgt = stack_grid.geotransform
        same = (w == stack_grid.width and h == stack_grid.height and crs_equal(wkt, stack_grid.crs_wkt)
                and all(abs(a - b) <= 1e-6 * max(1.0, abs(sgt[1])) for a, b in zip(gt, sgt)))
        if same:
            continue
        ext = _extent(gt, w, h)
        sext = _extent(sgt, stack_grid.width, stack_grid.height)
        if not crs_equal(wkt, stack_grid.crs_wkt):
            src_crs = QgsCoordinateReferenceSystem.fromWkt(wkt)
            dst_crs = QgsCoordinateReferenceSystem.fromWkt(stack_grid.crs_wkt)
            if src_crs.isValid() and dst_crs.isValid():
                try:
                    ext = QgsCoordinateTransform(src_crs, dst_crs, QgsProject.instance()).transformBoundingBox(ext)
                except Exception:  # noqa: BLE001 - QgsCsException: cannot compare, let the alg decide
                    pass
        if not ext.intersects(sext):
            v.add("error", f"Covariate '{name}' does not overlap the stack: choose a covariate of the same area.")
        else:
            v.add("warning", f"Covariate '{name}' is on another grid; it will be resampled onto the stack's grid.")

    if check_algorithms:
        needed = list(CHAIN) + (["compare"] if c["compare"] else [])
        missing = [a for a in needed if not registry_has(a)]
        if missing:
            v.add("error", "Not available in this installation yet: "
                  + ", ".join(f"deformcast:{a}" for a in missing) + ".")
    return v


# --------------------------------------------------------------------------------------------
# the chain of Processing steps
# --------------------------------------------------------------------------------------------
@dataclass
class Step:
    alg_id: str
    params: dict
    label: str
    folder: str
    branch: str = ""  # architecture of the branch ("" for shared steps)


def build_steps(choices: dict) -> List[Step]:
    """The Processing steps for ``choices``, with every output at a fixed path."""
    c = choices_with_defaults(choices)
    out = os.path.abspath(str(c["output_folder"]))
    extra = c.get("extra") or {}
    steps: List[Step] = []

    def common(alg, p):
        p = dict(p)
        p.update(extra.get(alg, {}))
        return p

    if c["source"] == "import":
        stack = os.path.join(out, "stack.tif")
        p = {"INPUT": c["import_input"], "UNITS": c["units"], "OUTPUT": stack}
        if float(c["cell_size"] or 0) > 0:
            p["CELL_SIZE"] = float(c["cell_size"])
        if c["target_crs"]:
            p["TARGET_CRS"] = c["target_crs"]
        steps.append(Step("import_timeseries", common("import_timeseries", p), "Import the time series", out))
        dates = None
    else:
        stack = str(c["stack"])
        dates = c["dates"] or None

    base = {"INPUT": stack, "SEED": int(c["seed"])}
    if dates:
        base["DATES"] = dates
    covs = list(c["covariates"] or [])
    if covs:
        base["COVARIATES"] = covs

    archs = list(c["architectures"])
    for arch in archs:
        d = os.path.join(out, arch) if len(archs) > 1 else out
        models = os.path.join(d, "models")
        steps.append(Step("tune", common("tune", dict(
            base, ARCHITECTURE=arch, HORIZON=int(c["horizon"]), WINDOW=int(c["window"]),
            ENCODING=list(c["encodings"]), N_TRIALS=int(c["n_trials"]), TOP_K=int(c["top_k"]),
            MAX_EPOCHS=int(c["max_epochs"]),
            DEVICE=c["device"], OUTPUT_FOLDER=models,
            OUTPUT_REPORT=os.path.join(d, "tuning_report.html"))), f"TPE tuning ({arch})", d, arch))
        members = os.path.join(d, "forecast_members.tif")
        steps.append(Step("predict", common("predict", dict(
            {k: val for k, val in base.items() if k != "SEED"}, MODEL_FOLDER=models, HORIZON=int(c["horizon"]), DEVICE=c["device"],
            OUTPUT_MEDIAN=os.path.join(d, "forecast_median.tif"),
            OUTPUT_QUANTILES=os.path.join(d, "forecast_quantiles.tif"),
            OUTPUT_MEMBERS=members)), f"Ensemble forecast ({arch})", d, arch))
        susc = os.path.join(d, "susceptibility.tif")
        spread = os.path.join(d, "spread.tif")
        exceed = os.path.join(d, "exceedance.tif")
        steps.append(Step("uncertainty", common("uncertainty", dict(
            MEMBERS=members, INPUT=stack, THRESHOLDS=str(c["thresholds"]), N_CLASSES=int(c["n_classes"]),
            **({"DATES": dates} if dates else {}),
            OUTPUT_SUSCEPTIBILITY=susc, OUTPUT_SPREAD=spread,
            OUTPUT_AMBIGUITY=os.path.join(d, "ambiguity.tif"),
            OUTPUT_CONFIDENCE=os.path.join(d, "confidence.tif"),
            OUTPUT_EXCEEDANCE=exceed,
            OUTPUT_CLASS_PROBABILITIES=os.path.join(d, "class_probabilities.tif"),
            OUTPUT_DEFORMATION=os.path.join(d, "forecast_deformation.tif"),
            OUTPUT_REPORT=os.path.join(d, "uncertainty_report.html"))), f"Susceptibility and uncertainty ({arch})", d, arch))
        steps.append(Step("zoning", common("zoning", dict(
            SUSCEPTIBILITY=susc, SPREAD=spread, AMBIGUITY=os.path.join(d, "ambiguity.tif"),
            UNCERTAINTY_TYPE=c["uncertainty_type"], EXCEEDANCE=exceed,
            FORECAST=os.path.join(d, "forecast_deformation.tif"),
            OUTPUT_TIERS=os.path.join(d, "tiers.tif"), OUTPUT_ZONES=os.path.join(d, "zones.gpkg"),
            OUTPUT_REPORT=os.path.join(d, "zoning_report.html"))), f"Tiered zoning ({arch})", d, arch))
    if c["compare"]:
        steps.append(Step("compare", common("compare", dict(
            base, ARCHITECTURES=archs, REPEATS=int(c["repeats"]), ALPHA=float(c["alpha"]),
            HORIZON=int(c["horizon"]), WINDOW=int(c["window"]), N_TRIALS=int(c["n_trials"]),
            ENCODING=list(c["encodings"]), MAX_EPOCHS=int(c["max_epochs"]), DEVICE=c["device"],
            OUTPUT_TABLE=os.path.join(out, "comparison.csv"),
            OUTPUT_REPORT=os.path.join(out, "comparison_report.html"))), "TPE vs manual comparison", out))
    return steps


def fit_params(alg, step: Step, log: Callable[[str], None] = lambda s: None) -> dict:
    """Keep the parameters ``alg`` declares; give undeclared outputs a path in the step folder."""
    out = {}
    for k, val in step.params.items():
        if alg.parameterDefinition(k) is None:
            log(f"{step.alg_id}: this version has no parameter {k}; left out.")
        else:
            out[k] = val
    for d in alg.destinationParameterDefinitions():
        if d.name() in out:
            continue
        stem = d.name().lower()
        stem = stem[len("output_"):] if stem.startswith("output_") else stem
        ext = d.defaultFileExtension() if hasattr(d, "defaultFileExtension") else ""
        if d.type() == "folderDestination" or not ext:
            out[d.name()] = os.path.join(step.folder, f"{step.alg_id}_{stem}")
        else:
            out[d.name()] = os.path.join(step.folder, f"{step.alg_id}_{stem}.{ext}")
    return out


class StepFailed(Exception):
    pass


class _Feedback(QgsProcessingFeedback):
    """A step's feedback: progress mapped into the whole chain, messages collected."""

    def __init__(self, on_progress, on_log):
        super().__init__()
        self._on_log = on_log
        self.errors: List[str] = []
        if on_progress is not None:
            self.progressChanged.connect(on_progress)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.errors.append(str(error))
        self._on_log("ERROR: " + str(error))

    def pushInfo(self, info):  # noqa: N802
        self._on_log(str(info))

    def pushWarning(self, warning):  # noqa: N802
        self._on_log("Warning: " + str(warning))


@dataclass
class ChainResult:
    outputs: List[Tuple[Step, dict]] = field(default_factory=list)
    seconds: float = 0.0

    def reports(self) -> List[str]:
        reps = []
        for _, res in self.outputs:
            for k, val in res.items():
                if isinstance(val, str) and val.lower().endswith((".html", ".htm")) and os.path.exists(val):
                    reps.append(val)
        return reps


def run_steps(steps: Sequence[Step], on_progress: Optional[Callable[[float], None]] = None,
              on_log: Callable[[str], None] = lambda s: None,
              is_cancelled: Callable[[], bool] = lambda: False) -> ChainResult:
    """Run ``steps`` one after the other (in the calling thread).

    ``on_progress`` gets 0..100 for the whole chain. Raises :class:`StepFailed` with the
    algorithm's own message when a step fails, and when ``is_cancelled()`` becomes true.
    """
    reg = QgsApplication.processingRegistry()
    result = ChainResult()
    t0 = time.time()
    n = max(1, len(steps))
    for i, step in enumerate(steps):
        if is_cancelled():
            raise StepFailed("Cancelled by the user; the steps that finished kept their outputs.")
        alg = reg.createAlgorithmById(f"deformcast:{step.alg_id}")
        if alg is None:
            raise StepFailed(f"The algorithm deformcast:{step.alg_id} is not available in this installation.")
        os.makedirs(step.folder, exist_ok=True)
        params = fit_params(alg, step, on_log)
        on_log(f"[{i + 1}/{len(steps)}] {step.label}: deformcast:{step.alg_id}")

        def prog(p, i=i):
            if on_progress is not None:
                on_progress(100.0 * (i + max(0.0, min(100.0, float(p))) / 100.0) / n)

        fb = _Feedback(prog, on_log)
        stop = threading.Event()

        def watch(fb=fb):  # turn the caller's Cancel into the algorithm's feedback.cancel()
            while not stop.wait(0.2):
                if is_cancelled():
                    fb.cancel()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        context = QgsProcessingContext()
        try:
            res, ok = alg.run(params, context, fb, {}, True)
        finally:
            stop.set()
            watcher.join()
        if is_cancelled() or fb.isCanceled():
            raise StepFailed("Cancelled by the user; the steps that finished kept their outputs.")
        if not ok:
            msg = "; ".join(fb.errors) or "it stopped without a message"
            raise StepFailed(f"{step.label} failed: {msg}")
        result.outputs.append((step, dict(res)))
        prog(100.0)
    result.seconds = time.time() - t0
    return result


class WorkflowTask(QgsTask):
    """The chain as a background task: the map canvas stays usable, Cancel stops it.

    ``on_finished(task)`` is called in the main thread; ``task.result`` (a :class:`ChainResult`)
    or ``task.error`` (text) says how it ended.
    """

    logMessage = pyqtSignal(str)

    def __init__(self, steps: Sequence[Step], description: str = "DeformCast workflow",
                 on_finished: Optional[Callable[["WorkflowTask"], None]] = None):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.steps = list(steps)
        self.result: Optional[ChainResult] = None
        self.error: Optional[str] = None
        self.log: List[str] = []
        self._on_finished = on_finished

    def _log(self, s: str) -> None:
        self.log.append(s)
        self.logMessage.emit(s)

    def run(self):
        try:
            self.result = run_steps(self.steps, self.setProgress, self._log, self.isCanceled)
            return True
        except StepFailed as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown to the user, never a raw traceback
            self.error = f"Unexpected error: {e}"
        return False

    def finished(self, ok):
        if not ok and self.error is None:
            self.error = "Cancelled by the user; the steps that finished kept their outputs."
        if self._on_finished is not None:
            self._on_finished(self)


# --------------------------------------------------------------------------------------------
# results -> layers
# --------------------------------------------------------------------------------------------
#: output name -> (display name, rank: lower = higher in the layer tree)
_NICE = {
    "OUTPUT_ZONES": ("Control zones", 0), "OUTPUT_TIERS": ("Control tiers", 1),
    "OUTPUT_EXCEEDANCE": ("Exceedance probability", 2), "OUTPUT_SUSCEPTIBILITY": ("Susceptibility", 3),
    "OUTPUT_CONFIDENCE": ("Classification confidence", 4), "OUTPUT_AMBIGUITY": ("Class ambiguity", 5),
    "OUTPUT_SPREAD": ("Ensemble spread", 6), "OUTPUT_CLASS_PROBABILITIES": ("Class probabilities", 6),
    "OUTPUT_DEFORMATION": ("Forecast deformation over the horizon", 6), "OUTPUT_MEDIAN": ("Forecast median", 7),
    "OUTPUT_QUANTILES": ("Forecast P10/P50/P90", 8), "OUTPUT_MEMBERS": ("Forecast members", 9),
    "OUTPUT": ("Displacement stack", 20),
}


def _layer_for(path: str, name: str):
    low = path.lower()
    if low.endswith((".tif", ".tiff", ".vrt", ".img")):
        lyr = QgsRasterLayer(path, name, "gdal")
    elif low.endswith((".gpkg", ".shp", ".geojson", ".fgb")):
        lyr = QgsVectorLayer(path, name, "ogr")
    else:
        return None
    if not lyr.isValid():
        return None
    qml = os.path.splitext(path)[0] + ".qml"
    if os.path.exists(qml):
        lyr.loadNamedStyle(qml)
    else:
        lyr.loadDefaultStyle()
    lyr.triggerRepaint()
    return lyr


def load_results(result: ChainResult, group_name: str = "DeformCast results",
                 project: Optional[QgsProject] = None, stack_path: Optional[str] = None) -> QgsLayerTreeGroup:
    """Add every raster/vector output as a styled layer into one group (sub-groups per branch)."""
    project = project or QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.insertGroup(0, group_name)
    branches = sorted({s.branch for s, _ in result.outputs if s.branch})
    sub = {b: (group.addGroup(b) if len(branches) > 1 else group) for b in branches}
    items = []
    for step, res in result.outputs:
        for key, val in res.items():
            if not isinstance(val, str) or not os.path.isfile(val):
                continue
            nice, rank = _NICE.get(key, (key.replace("OUTPUT_", "").replace("_", " ").capitalize(), 15))
            items.append((rank, step.branch, val, nice))
    if stack_path and os.path.isfile(stack_path) and not any(r == 20 for r, *_ in items):
        items.append((20, "", stack_path, "Displacement stack"))
    seen = set()
    for rank, branch, path, nice in sorted(items):
        if path in seen:
            continue
        seen.add(path)
        lyr = _layer_for(path, nice)
        if lyr is None:
            continue
        project.addMapLayer(lyr, False)
        (sub.get(branch, group)).addLayer(lyr)
    return group


def save_choices(choices: dict, folder: str) -> str:
    """Write the choices next to the outputs (``workflow.json``), so a run can be repeated."""
    os.makedirs(folder, exist_ok=True)
    p = os.path.join(folder, "workflow.json")
    with open(p, "w", encoding="utf-8") as fh:
        json.dump(choices_with_defaults(choices), fh, indent=2, default=str)
    return p
