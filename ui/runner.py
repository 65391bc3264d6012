"""The engine of the workflow dialog, without widgets: it is a front end to ``deformcast:workflow``.

The dialog's parameters are the algorithm's own (declared once in :mod:`algorithms.chain`, with
their defaults, choices and advanced flags); this module

* checks them while the user types (:func:`validate`): the stack's dates are read with
  :func:`algorithms.io.raster.open_stack`, covariates are checked against the stack's grid, and the
  number of epochs is compared with what window + horizon + validation + test need;
* lists the Processing runs (:func:`build_jobs`): ``[import_timeseries ->] workflow``;
* runs them one after the other as background tasks (:class:`WorkflowRunner`, each a
  ``QgsProcessingAlgRunnerTask``: progress, Cancel, the canvas stays usable). The workflow's own
  post-processing, in the main thread, adds the run's layer group to the project, the same tree as
  its ``deformcast.qgz``;
* keeps the user's choices between QGIS sessions (:func:`save_settings`, :func:`load_settings`).

No science happens here: every number comes out of ``deformcast:workflow``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRectangle,
    QgsSettings,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

from ..algorithms import chain

WORKFLOW_ID = "deformcast:workflow"
IMPORT_ID = "deformcast:import_timeseries"
SETTINGS_KEY = "DeformCast/workflow_dialog/parameters"

#: the dialog-only choices of the "import a time series first" branch
IMPORT_DEFAULTS: Dict[str, Any] = {"source": "stack", "import_input": "", "cell_size": 0.0, "units": "mm",
                                   "target_crs": ""}


def default_parameters() -> Dict[str, Any]:
    """``deformcast:workflow``'s defaults as the dialog passes them (empty inputs left out)."""
    return clean(chain.defaults())


def clean(params: Dict[str, Any]) -> Dict[str, Any]:
    """Leave out what is not set (None, '' and [] of optional parameters), as Processing does."""
    out = {}
    for k, v in params.items():
        p = chain.BY_NAME.get(k)
        if v is None:
            continue
        if p is not None and p.optional and p.kind != "enum" and v in ("", []):
            continue
        out[k] = list(v) if isinstance(v, (list, tuple)) else v
    return out


def import_choices(values: Optional[dict]) -> dict:
    out = dict(IMPORT_DEFAULTS)
    out.update({k: v for k, v in (values or {}).items() if k in IMPORT_DEFAULTS})
    return out


def alg_options(alg_id: str, name: str, fallback: Sequence[str]) -> List[str]:
    """The choice list of an installed algorithm's enum parameter (defined there, not here)."""
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    d = alg.parameterDefinition(name) if alg is not None else None
    return list(d.options()) if d is not None and hasattr(d, "options") else list(fallback)


def registry_has(alg_id: str) -> bool:
    full = alg_id if ":" in alg_id else f"deformcast:{alg_id}"
    return QgsApplication.processingRegistry().algorithmById(full) is not None


# --------------------------------------------------------------------------------------------
# settings (between QGIS sessions)
# --------------------------------------------------------------------------------------------
def save_settings(params: Dict[str, Any], extra: Optional[dict] = None) -> None:
    s = QgsSettings()
    s.setValue(SETTINGS_KEY, json.dumps({"parameters": params, "import": import_choices(extra)}, default=str))


def load_settings() -> Optional[dict]:
    """``{"parameters": {...}, "import": {...}}`` as saved, or None."""
    raw = QgsSettings().value(SETTINGS_KEY, "")
    if not raw:
        return None
    try:
        d = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("parameters"), dict):
        return None
    d["parameters"] = {k: v for k, v in d["parameters"].items() if k in chain.BY_NAME}
    d["import"] = import_choices(d.get("import"))
    return d


def clear_settings() -> None:
    QgsSettings().remove(SETTINGS_KEY)


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


def smallest_window(params: Dict[str, Any]) -> int:
    """WINDOW, or the smallest window the tuner may pick when WINDOW is 0 (tuned)."""
    w = int(params.get("WINDOW") or 0)
    if w > 0:
        return w
    try:
        from ..algorithms.workflow import compact_space

        archs = params.get("ARCHITECTURES") or chain.defaults()["ARCHITECTURES"]
        space = None if params.get("SEARCH_SPACE") else compact_space(archs)
        if space and "window" in space:
            return int(space["window"]["low"])
        from ..algorithms.models import DATA_SPACE

        return int(min(p.low for p in DATA_SPACE if p.name == "window"))
    except Exception:  # noqa: BLE001 - an older core: the plain minimum
        return 2


def check_epochs(n_epochs: int, window: int, horizon: int) -> Optional[str]:
    """None when ``n_epochs`` suffice for WINDOW + HORIZON + validation + test, else the reason
    (the same check ``tune`` and ``train`` make, ``algorithms.data.dataset.validate_inputs``)."""
    from ..algorithms.errors import DeformCastError

    try:
        from ..algorithms.data.dataset import validate_inputs
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


def _raster_grid(path: str):
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(str(path))
    return ds.GetGeoTransform(), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize


def _extent(gt, w, h) -> QgsRectangle:
    xs = [gt[0], gt[0] + w * gt[1] + h * gt[2]]
    ys = [gt[3], gt[3] + w * gt[4] + h * gt[5]]
    return QgsRectangle(min(xs), min(ys), max(xs), max(ys))


def validate(params: Dict[str, Any], extra: Optional[dict] = None, check_algorithms: bool = True) -> Validation:
    """Check ``deformcast:workflow`` parameters the way the algorithm will; messages name what to change.

    ``extra`` holds the dialog's import choices (:data:`IMPORT_DEFAULTS`)."""
    from ..algorithms.errors import DeformCastError
    from ..algorithms.io.raster import crs_equal, empty_origin, magnitude_warning, open_stack

    c = dict(chain.defaults())
    c.update(params or {})
    imp = import_choices(extra)
    v = Validation()
    horizon = int(c.get("HORIZON") or 0)
    window = smallest_window(c)
    if horizon < 1:
        v.add("error", "Horizon must be at least 1 epoch.")
    archs = list(c.get("ARCHITECTURES") or [])
    bad = [a for a in archs if a not in chain.BY_NAME["ARCHITECTURES"].choices]
    if bad:
        v.add("error", f"Unknown architecture(s) {', '.join(bad)}. Valid: "
                       f"{', '.join(chain.BY_NAME['ARCHITECTURES'].choices)}.")
    if "covariates" in (c.get("ENCODING") or []) and not c.get("COVARIATES"):
        v.add("error", "The 'covariates' coding strategy needs covariate rasters: add some or untick it.")
    n_trials, top_k = int(c.get("N_TRIALS") or 0), int(c.get("TOP_K") or 0)
    if top_k > n_trials:
        v.add("warning", f"The ensemble keeps at most the {n_trials} trial(s) run per architecture "
                         f"(ensemble size {top_k}): raise the TPE trials for a larger ensemble.")
    try:
        from ..algorithms.maps.uncertainty import parse_number_list

        th = parse_number_list(c.get("THRESHOLDS"), "THRESHOLDS")
        if not th:
            v.add("error", "Give at least one exceedance threshold in mm, e.g. 10,20.")
        elif any(t <= 0 for t in th):
            v.add("error", "Thresholds are deformation magnitudes over the horizon in mm: use positive numbers.")
    except DeformCastError:
        v.add("error", f"Thresholds '{c.get('THRESHOLDS')}' are not numbers: write e.g. 10,20 (mm over the horizon).")
    space = str(c.get("SEARCH_SPACE") or "").strip()
    if space:
        try:
            if not isinstance(json.loads(space), dict):
                raise ValueError
        except ValueError:
            v.add("error", "The search space overrides must be a JSON object, e.g. {\"layers\": 1} "
                           "(empty: the compact demo space; {}: the full space).")

    out = str(c.get("OUTPUT_FOLDER") or "").strip()
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
    if imp["source"] == "import":
        src = str(imp["import_input"] or "").strip()
        if not src:
            v.add("error", "Choose the file or point layer to import (EGMS CSV, point layer, MintPy/LiCSBAS HDF5).")
        elif not os.path.exists(src.split("|")[0]):
            v.add("error", f"'{src}' does not exist.")
        else:
            is_h5 = src.lower().endswith((".h5", ".hdf5", ".he5"))
            if not is_h5 and float(imp["cell_size"] or 0) <= 0:
                v.add("error", "Points are gridded onto a raster: give a cell size (in metres of the target CRS).")
            v.add("info", "The stack will be imported first; its dates and epochs are checked after the import.")
        if check_algorithms and not registry_has(IMPORT_ID):
            v.add("error", f"The algorithm {IMPORT_ID} is not available in this installation.")
    else:
        path = str(c.get("INPUT") or "").strip()
        if not path:
            v.add("info", "No displacement stack: the workflow runs on the built-in synthetic demo scene "
                          "(known physics, generated with the seed). Choose a stack to forecast your own data.")
        else:
            try:
                info = open_stack(path, c.get("DATES") or None)
                v.n_epochs = info.n_epochs
                v.dates = info.dates
                stack_grid = info.grid
                v.add("info", f"{info.n_epochs} epochs, {info.dates[0]} to {info.dates[-1]}; "
                              f"{info.grid.width} x {info.grid.height} pixels.")
                if info.constant_note:   # nothing but constant pixels: the job would refuse it
                    v.add("error", info.constant_note)
                elif info.fill_note:      # fills read as no data: said before the run, as the run says it
                    v.add("warning", info.fill_note)
                empty = empty_origin(info)
                if empty:                 # the job refuses it before tuning: said here first
                    v.add("error", empty)
                units = "" if info.constant_note else magnitude_warning(info)
                if units:
                    v.add("warning", units)
                if horizon >= 1:
                    why = check_epochs(info.n_epochs, window, horizon)
                    if why:
                        v.add("error", why)
                    elif not c.get("ENCODING"):
                        try:
                            from ..algorithms.data.dataset import auto_encodings

                            enc = auto_encodings(info.dates, horizon, c.get("VALIDATION") or "space")
                            v.add("info", "Coding strategy (automatic): " + ", ".join(enc) + ".")
                        except Exception:  # noqa: BLE001 - informative only
                            pass
            except DeformCastError as e:
                v.add("error", str(e))

    for cov in c.get("COVARIATES") or []:
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
    obs = str(c.get("OBSERVED") or "").strip()
    if obs and not os.path.exists(obs):
        v.add("error", f"The later observations '{obs}' do not exist.")

    if check_algorithms and not registry_has(WORKFLOW_ID):
        v.add("error", f"The algorithm {WORKFLOW_ID} is not available in this installation.")
    return v


# --------------------------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------------------------
@dataclass
class Job:
    alg_id: str
    params: dict
    label: str
    weight: float = 1.0


def build_jobs(params: Dict[str, Any], extra: Optional[dict] = None) -> List[Job]:
    """``[import_timeseries ->] workflow`` with every output at a fixed path in the output folder."""
    p = clean(params)
    imp = import_choices(extra)
    out = os.path.abspath(str(p.get("OUTPUT_FOLDER") or ""))
    p["OUTPUT_FOLDER"] = out
    jobs: List[Job] = []
    if imp["source"] == "import":
        stack = os.path.join(out, "stack.tif")
        ip = {"INPUT": imp["import_input"], "UNITS": imp["units"], "OUTPUT": stack}
        if float(imp["cell_size"] or 0) > 0:
            ip["CELL_SIZE"] = float(imp["cell_size"])
        if imp["target_crs"]:
            ip["TARGET_CRS"] = imp["target_crs"]
        jobs.append(Job(IMPORT_ID, ip, "Import the time series", 0.05))
        p["INPUT"] = stack
        p.pop("DATES", None)
    jobs.append(Job(WORKFLOW_ID, p, "Full workflow", 1.0))
    return jobs


class _Feedback(QgsProcessingFeedback):
    """Messages of the running algorithm, handed to the main thread through a signal."""

    message = pyqtSignal(str)

    def __init__(self):
        super().__init__()
        self.errors: List[str] = []

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        self.errors.append(str(error))
        self.message.emit("ERROR: " + str(error))

    def pushInfo(self, info):  # noqa: N802
        self.message.emit(str(info))

    def pushWarning(self, warning):  # noqa: N802
        self.message.emit("Warning: " + str(warning))

    def pushCommandInfo(self, info):  # noqa: N802
        self.message.emit(str(info))

    def pushConsoleInfo(self, info):  # noqa: N802
        self.message.emit(str(info))


CANCELLED = "Cancelled by the user; the steps that finished kept their outputs."


class WorkflowRunner(QObject):
    """Runs the jobs one after the other, each as a ``QgsProcessingAlgRunnerTask`` in QGIS's task
    manager. ``progressChanged(0..100)``, ``logMessage(text)``; ``finished()`` when it ends, with
    ``results`` (the workflow's outputs) or ``error`` (text). ``project`` gets the run's layers."""

    progressChanged = pyqtSignal(float)
    logMessage = pyqtSignal(str)
    finished = pyqtSignal()

    def __init__(self, jobs: Sequence[Job], project: Optional[QgsProject] = None, parent=None):
        super().__init__(parent)
        self.jobs = list(jobs)
        self.project = project if project is not None else QgsProject.instance()
        self.results: Optional[dict] = None
        self.error: Optional[str] = None
        self.log: List[str] = []
        self.seconds = 0.0
        self.running = False
        self._i = -1
        self._task = None
        self._feedback = None
        self._context = None
        self._cancelled = False
        self._t0 = 0.0
        total = sum(j.weight for j in self.jobs) or 1.0
        self._spans = []
        a = 0.0
        for j in self.jobs:
            self._spans.append((a / total * 100.0, (a + j.weight) / total * 100.0))
            a += j.weight

    def _log(self, s: str) -> None:
        self.log.append(s)
        self.logMessage.emit(s)

    def start(self) -> None:
        self.running = True
        self._t0 = time.time()
        self._next({})

    def cancel(self) -> None:
        self._cancelled = True
        if self._feedback is not None:
            self._feedback.cancel()
        if self._task is not None:
            try:
                self._task.cancel()
            except RuntimeError:  # the task already finished and was deleted
                pass

    def _next(self, previous: dict) -> None:
        self._i += 1
        if self._cancelled:
            return self._end(error=CANCELLED)
        if self._i >= len(self.jobs):
            return self._end(results=previous)
        job = self.jobs[self._i]
        alg = QgsApplication.processingRegistry().createAlgorithmById(job.alg_id)
        if alg is None:
            return self._end(error=f"The algorithm {job.alg_id} is not available in this installation.")
        params = dict(job.params)
        for name in ("OUTPUT_FOLDER",):
            if params.get(name):
                os.makedirs(params[name], exist_ok=True)
        if job.alg_id == IMPORT_ID:
            os.makedirs(os.path.dirname(params["OUTPUT"]), exist_ok=True)
        self._log(f"[{self._i + 1}/{len(self.jobs)}] {job.label}: {job.alg_id}")
        ctx = QgsProcessingContext()
        ctx.setProject(self.project)
        fb = _Feedback()
        fb.message.connect(self._log)
        lo, hi = self._spans[self._i]
        fb.progressChanged.connect(lambda p, lo=lo, hi=hi: self.progressChanged.emit(lo + (hi - lo) * float(p) / 100.0))
        task = QgsProcessingAlgRunnerTask(alg, params, ctx, fb)
        task.executed.connect(lambda ok, res, fb=fb: self._executed(ok, res, fb))
        self._context, self._feedback, self._task, self._alg = ctx, fb, task, alg
        QgsApplication.taskManager().addTask(task)

    def _executed(self, ok: bool, results: dict, fb: _Feedback) -> None:
        self._task = None
        if self._cancelled or fb.isCanceled():
            return self._end(error=CANCELLED)
        if not ok:
            msg = "; ".join(fb.errors) or "it stopped without a message"
            return self._end(error=f"{self.jobs[self._i].label} failed: {msg}")
        self.progressChanged.emit(self._spans[self._i][1])
        self._next(dict(results or {}))

    def _end(self, results: Optional[dict] = None, error: Optional[str] = None) -> None:
        self.results = results if error is None else None
        self.error = error
        self.seconds = time.time() - self._t0
        self.running = False
        self._task = None
        self.finished.emit()


def reports(output_folder: str) -> List[str]:
    """The run's HTML reports, the story (report.html) first."""
    out = os.path.abspath(output_folder)
    if not os.path.isdir(out):
        return []
    found = sorted(os.path.join(out, f) for f in os.listdir(out) if f.lower().endswith((".html", ".htm")))
    main = os.path.join(out, "report.html")
    return ([main] if main in found else []) + [f for f in found if f != main]


def find_group(output_folder: str, project: Optional[QgsProject] = None):
    project = project or QgsProject.instance()
    return project.layerTreeRoot().findGroup(chain.run_name(output_folder))
