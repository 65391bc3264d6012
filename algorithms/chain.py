"""The DeformCast chain, declared once: its parameters and the layer tree it produces.

Every entrance reads this module, so they cannot drift apart:

* ``deformcast:workflow`` (the README's main job) declares its Processing parameters from
  :data:`PARAMETERS`, turns the values into :func:`workflow.run_workflow` arguments with
  :func:`workflow_kwargs`, and builds its QGIS project (and, from the desktop, the layer group of
  the run) from :data:`LAYER_TREE` via :func:`resolve_tree`;
* the workflow dialog (``ui.workflow_dialog``) generates its widgets from :data:`PARAMETERS`
  (``advanced`` ones folded under *Advanced*) and runs ``deformcast:workflow``;
* ``scripts/build_model.py`` takes the defaults of the graphical model (``.model3``) and of its
  ``tune`` step from :func:`defaults`.

The modelling defaults are those of :func:`workflow.run_workflow` (the configuration measured
best: LSTM with its compact search space, 30-epoch horizon, 20 TPE trials, top-10 ensemble, automatic coding
strategy, spatial validation, residual target, adaptive anchor, compact search space); they are
read from its signature, never copied. Choice lists come from the core too (:mod:`dataset`,
the model registry). QGIS-free: no qgis/Qt import here.
"""
from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .data import dataset
from .io import styles
from .errors import DeformCastError

DEVICES = ("auto", "cpu", "cuda")

#: sections of the dialog, in order (Processing shows the parameters in declaration order)
SECTIONS = {"data": "Displacement time series", "model": "Forecast and tuning", "maps": "Maps and decisions",
            "run": "Run", "output": "Output"}

#: Processing defaults that differ from :func:`workflow.run_workflow`'s own, on purpose
#: (``SEED`` 42 is the seed every Processing algorithm and the README's demo numbers use)
ENTRANCE_DEFAULTS = {"seed": 42}


def architectures() -> List[str]:
    """Architecture names of the model registry (torch is not imported)."""
    from .models import names

    return list(names())


@dataclass(frozen=True)
class Param:
    """One parameter of the chain.

    ``kind``: ``raster`` (one raster, a path), ``rasters`` (several), ``enum`` (``choices``,
    ``multiple`` for a list), ``int``, ``float``, ``string``, ``folder`` (output folder).
    ``arg`` names the :func:`workflow.run_workflow` keyword it feeds; ``default`` is the value in
    Processing's form (filled from run_workflow's signature, see :func:`_resolve`).
    """

    name: str
    kind: str
    label: str
    arg: Optional[str] = None
    default: Any = None
    choices: Tuple[str, ...] = ()
    multiple: bool = False
    optional: bool = False
    advanced: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    section: str = "model"
    tip: str = ""


def _declared() -> List[Param]:
    P = Param
    return [
        # --- data ------------------------------------------------------------------------
        P("INPUT", "raster", "Displacement stack (empty: built-in demo scene)", "stack_path", optional=True,
          section="data", tip="A multiband raster, one band per acquisition, displacement in mm. Leave it empty "
          "to run on the built-in synthetic demo scene (known physics)."),
        P("DATES", "string", "Acquisition dates (text file or comma list; default: band descriptions)", "dates",
          optional=True, section="data", tip="Only needed when the bands do not carry their dates."),
        P("COVARIATES", "rasters", "Covariates", "covariates", optional=True, section="data",
          tip="Static rasters of the same area (resampled onto the stack's grid)."),
        P("OBSERVED", "raster", "Later observations (for the residual analysis)", "observed_path", optional=True,
          section="data", tip="Acquisitions after the stack; without them the residual step is skipped."),
        P("REGULAR_STEP", "int", "Regular time step to put the stack on first (days; 0 = keep its dates)",
          "regular_step_days", minimum=0, maximum=366, section="data", advanced=True,
          tip="For a record whose cadence changed (Sentinel-1: 6 days until December 2021, 12 after): the "
          "networks count epochs, so give the recent step (12). Linear interpolation in time; gaps longer than "
          "3 steps stay empty."),
        # --- modelling ---------------------------------------------------------------------
        P("ARCHITECTURES", "enum", "Architectures", "architectures", choices=tuple(architectures()),
          multiple=True, advanced=True),
        P("HORIZON", "int", "Forecast horizon (epochs; 30 = a year at 12 days)", "horizon", minimum=1,
          maximum=1000),
        P("N_TRIALS", "int", "TPE trials per architecture", "n_trials", minimum=1, maximum=100000),
        P("TOP_K", "int", "Ensemble size (best models kept)", "top_k", minimum=1, maximum=1000, advanced=True),
        P("MAX_EPOCHS", "int", "Maximum epochs per trial", "max_epochs", minimum=1, maximum=100000, advanced=True),
        P("WINDOW", "int", "Input window (epochs; 0 = tuned)", "window", optional=True, minimum=0, maximum=10000,
          advanced=True),
        P("ENCODING", "enum", "Spatiotemporal coding (empty: trajectory + regime where the series allows it)",
          "encodings", choices=tuple(dataset.ENCODINGS), multiple=True, optional=True, advanced=True),
        P("TARGET", "enum", "What the networks learn", "target", choices=tuple(dataset.TARGETS), advanced=True),
        P("ANCHOR", "enum", "Classical forecast the networks correct", "baseline", choices=tuple(dataset.ANCHORS),
          advanced=True),
        P("STEPS", "string", "Step dates: auto (detected in the stack), none, or known dates (comma list or "
          "a CSV/TXT file of YYYY-MM-DD)", "steps", optional=True, advanced=True,
          tip="Each date enters the classical fits of the pixels whose history shows the step. A detected step of "
              "one or two Sentinel-1 phase cycles (27.73 mm) is reported as a possible unwrapping error."),
        P("VALIDATION", "enum", "Validation (early stopping, TPE objective) windows", "validation",
          choices=tuple(dataset.VALIDATIONS), advanced=True),
        P("SEARCH_SPACE", "string", "Search space overrides (JSON; empty = compact demo space, {} = full space)",
          "search_space", optional=True, advanced=True),
        P("MAX_SAMPLES", "int", "Training windows sampled from the stack", "max_samples", minimum=100,
          maximum=10 ** 8, advanced=True),
        # --- maps --------------------------------------------------------------------------
        P("THRESHOLDS", "string", "Exceedance thresholds (mm over the horizon)", "thresholds", section="maps",
          tip="Deformation magnitudes over the horizon, comma separated; the first one drives the zoning."),
        P("N_CLASSES", "int", "Susceptibility classes", "n_classes", minimum=2, maximum=7, section="maps",
          advanced=True),
        P("MIN_AREA", "float", "Smallest zone polygon (m²)", "min_area", minimum=0.0, maximum=1e12, section="maps",
          advanced=True),
        P("MMU", "float", "Minimum mapping unit (m²): smaller zones merge into their neighbours (0 = off)", "mmu",
          minimum=0.0, maximum=1e12, section="maps", advanced=True,
          tip="Zones of one tier smaller than this merge into the tier holding most of their boundary (a tie: "
          "the more severe); Tier 1 is never merged away. 10000 m² = 1 ha, about a city block."),
        # --- run ---------------------------------------------------------------------------
        P("SEED", "int", "Random seed", "seed", minimum=-(2 ** 31) + 1, maximum=2 ** 31 - 1, section="run",
          advanced=True),
        P("DEVICE", "enum", "Compute device", "device", choices=DEVICES, section="run", advanced=True),
        P("LOCAL_WORKERS", "int", "Tuning worker processes on this machine (0 = one per CPU core, at most 4)",
          "local_workers", minimum=0, maximum=64, section="run", advanced=True,
          tip="Trials run in parallel processes with one torch thread each (measured about twice as fast as one "
          "two-thread process on 2 cores); 1 = a single process."),
        P("OUTPUT_FOLDER", "folder", "Output folder", section="output"),
    ]


def core_defaults() -> Dict[str, Any]:
    """Keyword defaults of :func:`workflow.run_workflow` (the measured-best configuration)."""
    from .workflow import run_workflow

    return {k: p.default for k, p in inspect.signature(run_workflow).parameters.items()
            if p.default is not inspect.Parameter.empty}


def to_processing(p: Param, value: Any) -> Any:
    """A run_workflow value -> the same value in Processing's form for parameter ``p``."""
    if p.name == "SEARCH_SPACE":
        return "" if value in (None, "compact") else (value if isinstance(value, str) else json.dumps(value))
    if p.name == "THRESHOLDS":
        return ",".join(f"{float(t):g}" for t in (value or ()))
    if p.kind == "enum":
        if p.multiple:
            if value is None or (isinstance(value, str) and dataset.is_auto(value)):
                return []
            return [str(v) for v in ([value] if isinstance(value, str) else value)]
        return str(value)
    if p.kind == "int":
        return 0 if value is None else int(value)
    if p.kind == "float":
        return 0.0 if value is None else float(value)
    if p.kind == "rasters":
        return list(value or [])
    if p.kind in ("string", "raster"):
        return "" if value is None else str(value)
    return value


def _resolve() -> List[Param]:
    core = core_defaults()
    out = []
    for p in _declared():
        if p.arg:
            if p.arg not in core:
                raise DeformCastError(f"run_workflow has no keyword '{p.arg}' for the chain parameter {p.name}.")
            value = ENTRANCE_DEFAULTS.get(p.arg, core[p.arg])
            d = to_processing(p, value)
            if p.kind in ("raster", "string") and d == "" and p.optional:
                d = None
            if p.kind == "rasters" and d == []:
                d = None
            out.append(Param(**{**p.__dict__, "default": d}))
        else:
            out.append(p)
    return out


#: the workflow's parameters, in Processing order, defaults filled in from run_workflow
PARAMETERS: Tuple[Param, ...] = tuple(_resolve())
BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMETERS}


def defaults() -> Dict[str, Any]:
    """``{name: default}`` in Processing's form (None for the optional inputs left empty)."""
    return {p.name: (list(p.default) if isinstance(p.default, (list, tuple)) else p.default) for p in PARAMETERS}


def visible() -> List[Param]:
    return [p for p in PARAMETERS if not p.advanced]


def advanced() -> List[Param]:
    return [p for p in PARAMETERS if p.advanced]


def workflow_kwargs(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Processing-form ``values`` (missing ones take the defaults) -> run_workflow keywords.

    ``OUTPUT_FOLDER`` becomes the positional ``output_folder`` key. Empty optional values mean
    the core's default (None, auto encodings, compact search space).
    """
    from .maps.uncertainty import parse_number_list

    core = core_defaults()
    out: Dict[str, Any] = {}
    for p in PARAMETERS:
        v = values.get(p.name, p.default)
        if p.name == "OUTPUT_FOLDER":
            out["output_folder"] = v
            continue
        if p.kind in ("raster", "string"):
            v = None if v is None or str(v).strip() == "" else str(v).strip()
        if p.name == "THRESHOLDS":
            th = parse_number_list(v, "THRESHOLDS")
            if not th:
                raise DeformCastError("THRESHOLDS: give at least one threshold in mm, e.g. 10,20.")
            v = th
        elif p.name == "SEARCH_SPACE":
            v = v or "compact"
        elif p.kind == "rasters":
            v = [str(x) for x in (v or [])]
        elif p.kind == "enum" and p.multiple:
            v = [str(x) for x in (v or [])]
            if p.name == "ARCHITECTURES" and not v:
                v = list(core["architectures"])
            elif p.name == "ENCODING" and not v:
                v = None
        elif p.kind == "enum":
            v = str(v) if v not in (None, "") else core[p.arg]
        elif p.kind == "int":
            v = int(v if v is not None else 0)
            if p.name == "WINDOW" and v <= 0:
                v = None
        elif p.kind == "float":
            v = float(v if v is not None else 0.0)
        out[p.arg] = v
    return out


def run_name(output_folder: str) -> str:
    """The name of a run's layer group: 'DeformCast <output folder name>'."""
    return "DeformCast " + (os.path.basename(os.path.normpath(str(output_folder))) or "run")


# ------------------------------------------------------------------------------------------------
# the layer tree a run produces
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSpec:
    """``key``: the key of the run's ``paths`` (workflow.json) or of the extras (``observed``,
    ``covariates``); ``style``: ``sidecar`` (the ``.qml`` the core wrote beside the file),
    ``stack`` (one date band: the last, mm, diverging ramp) or ``discontinuity`` (trace/buffer)."""

    key: str
    name: str
    visible: bool = False
    style: str = "sidecar"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    layers: Tuple[LayerSpec, ...]
    expanded: bool = False


L = LayerSpec
#: sub-groups of a run's group, top first; only the decision map (control tiers) is switched on
LAYER_TREE: Tuple[GroupSpec, ...] = (
    GroupSpec("Decision", (L("zones_polygons", "Control zones"), L("tiers", "Control tiers", visible=True),
                           L("OUTPUT_DISCONTINUITY", "Discontinuities (differential movement)", style="discontinuity")),
              expanded=True),
    GroupSpec("Uncertainty", (L("OUTPUT_EXCEEDANCE", "Exceedance probability"),
                              L("OUTPUT_CONFIDENCE", "Classification confidence"),
                              L("OUTPUT_AMBIGUITY", "Class ambiguity"), L("OUTPUT_SPREAD", "Ensemble spread"),
                              L("OUTPUT_SUSCEPTIBILITY", "Susceptibility"))),
    GroupSpec("Forecast", (L("OUTPUT_DEFORMATION", "Forecast deformation over the horizon"),
                           L("forecast_median", "Forecast (ensemble median)"),
                           L("forecast_quantiles", "Forecast quantiles"),
                           L("forecast_members", "Ensemble members"))),
    GroupSpec("Residuals", (L("OUTPUT_HOTSPOT_CLASSES", "Residual hot spot classes"),
                            L("OUTPUT_HOTSPOTS", "Residual hot spots (Gi* z)"),
                            L("OUTPUT_RESIDUALS", "Residuals"))),
    GroupSpec("Data", (L("stack", "Displacement stack", style="stack"),
                       L("observed", "Later observations", style="stack"),
                       L("future_observed", "Later observations", style="stack"),
                       L("zones", "Scene zones (truth)"), L("truth", "Noise-free truth", style="stack"),
                       L("covariates", "Covariate"))),
)
del L

#: the layers the zoning decision reads (``run_workflow`` step 7) and writes beside the tiers
ZONING_INPUTS = ("OUTPUT_SUSCEPTIBILITY", "OUTPUT_AMBIGUITY", "OUTPUT_EXCEEDANCE", "OUTPUT_HOTSPOTS",
                 "OUTPUT_DEFORMATION")
ZONING_OUTPUTS = ("tiers", "zones_polygons", "OUTPUT_DISCONTINUITY")


def layer_names() -> List[str]:
    return [ly.name for g in LAYER_TREE for ly in g.layers]


def scene_covariates(paths: Mapping[str, Any]) -> List[str]:
    """The built-in scene's covariate rasters (the ones run_workflow used when none were given)."""
    if not paths.get("truth") or not paths.get("stack"):
        return []
    from .data.synthetic import COVARIATE_NAMES

    folder = os.path.join(os.path.dirname(str(paths["stack"])), "covariates")
    return [p for p in (os.path.join(folder, f"{n}.tif") for n in COVARIATE_NAMES) if os.path.exists(p)]


@dataclass
class ResolvedLayer:
    path: str
    name: str
    visible: bool
    style: str


def resolve_tree(paths: Mapping[str, Any], observed: Optional[str] = None,
                 covariates: Optional[Sequence[str]] = None) -> List[Tuple[GroupSpec, List[ResolvedLayer]]]:
    """The run's layer tree with files: ``[(group, [ResolvedLayer, ...]), ...]``.

    ``paths`` is the summary's ``paths`` (workflow.json). ``observed``/``covariates`` are the inputs
    the run was given (the scene's covariates are found beside its stack). Missing files and
    groups without a file are left out; a file appears once.
    """
    covs = list(paths.get("covariates") or []) if isinstance(paths.get("covariates"), (list, tuple)) else []
    covs = covs or list(covariates or []) or scene_covariates(paths)
    extras = {"observed": observed}
    seen = set()
    out = []
    for g in LAYER_TREE:
        items: List[ResolvedLayer] = []
        for spec in g.layers:
            if spec.key == "covariates":
                cands = [(c, f"{spec.name}: {os.path.splitext(os.path.basename(str(c)))[0]}") for c in covs]
            else:
                p = paths.get(spec.key) if spec.key in paths else extras.get(spec.key)
                cands = [(p, spec.name)] if isinstance(p, str) else []
            for p, name in cands:
                if not p or not os.path.exists(str(p)):
                    continue
                key = os.path.normcase(os.path.abspath(str(p)))
                if key in seen:
                    continue
                seen.add(key)
                items.append(ResolvedLayer(str(p), name, spec.visible, spec.style))
        if items:
            out.append((g, items))
    return out


def last_band(path: str):
    """(band number, float array) of a raster's last band (nodata as NaN)."""
    import numpy as np
    from osgeo import gdal

    ds = gdal.Open(str(path))
    if ds is None:
        raise DeformCastError(f"Cannot open '{path}'.")
    n = ds.RasterCount
    from .io.raster import read_band

    a = read_band(ds.GetRasterBand(n), 0, 0, ds.RasterXSize, ds.RasterYSize, True).astype(np.float32)
    return n, a


DISCONTINUITY_CLASSES = ((1, "within the buffer of a discontinuity (at least tier 2)", "#fdae61"),
                         (2, "discontinuity trace (sharp step in the forecast)", "#7b0000"))


def layer_qml(layer: ResolvedLayer) -> Optional[str]:
    """The QGIS style (.qml text) the chain gives ``layer``; None: its sidecar ``.qml``."""
    if layer.style == "stack":
        band, a = last_band(layer.path)
        return styles.deformation_style(a, band=band)
    if layer.style == "discontinuity":
        return styles.categorical(DISCONTINUITY_CLASSES, band=3)
    return None


def fallback_qml(path: str) -> str:
    """A style for a raster without a usable one (never the grey or RGB default): the last band,
    mm, diverging ramp centred on 0."""
    band, a = last_band(path)
    return styles.deformation_style(a, band=band)


def relabel(label: str) -> str:
    """Legend labels without infinite bounds: 'Low (-inf to 3 mm)' -> 'Low (< 3 mm)'."""
    import re

    label = re.sub(r"\(-inf to ([^ )]+)( [^)]*)?\)", lambda m: f"(< {m.group(1)}{m.group(2) or ''})", label)
    label = re.sub(r"\(([^ )]+) to inf( [^)]*)?\)", lambda m: f"(> {m.group(1)}{m.group(2) or ''})", label)
    return label


def markdown_table(advanced_flag: bool = True) -> str:
    """The workflow's parameters as a Markdown table (for the README: generated, never copied)."""
    rows = ["| parameter | default | choices / range | what it is |", "| --- | --- | --- | --- |"]
    for p in PARAMETERS:
        d = p.default
        if isinstance(d, list):
            d = ",".join(d) if d else "(automatic)" if p.name == "ENCODING" else "(none)"
        elif d in (None, ""):
            d = "(none)" if p.kind != "folder" else "(required)"
        elif p.name == "WINDOW" and d == 0:
            d = "0 (tuned)"
        if p.name == "SEARCH_SPACE":
            d = "(compact demo space)"
        if p.choices:
            rng = ", ".join(p.choices)
        elif p.kind in ("int", "float") and p.minimum is not None and p.name != "SEED":
            rng = f">= {p.minimum:g}" + (f", <= {p.maximum:g}" if p.maximum is not None and p.maximum < 1e6 else "")
        else:
            rng = ""
        label = p.label + (" *(advanced)*" if advanced_flag and p.advanced else "")
        rows.append(f"| `{p.name}` | {d} | {rng} | {label} |")
    return "\n".join(rows)
