"""The fields of a model.json (QGIS-free): which are required, the checks of their types and ranges
before anything is built from them, and the command that re-creates a model when its folder is
damaged. Used by :mod:`algorithms.models.modelio`."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

REQUIRED_META = ("architecture", "hparams", "n_features", "window", "horizon")


def is_whole(v) -> bool:
    """A whole number (int, numpy integer or integral float; not a bool)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, float) and v.is_integer()


def is_finite_number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def meta_problem(meta: Dict[str, Any]) -> str:
    """What is wrong with the fields of a model.json ('' when nothing): the fields prediction
    builds on must have the right type and range."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        return "it lacks " + ", ".join(missing)
    if not isinstance(meta["architecture"], str) or not meta["architecture"].strip():
        return f"architecture is {meta['architecture']!r}, not a name"
    for k in ("n_features", "window", "horizon"):
        v = meta[k]
        if not is_whole(v) or int(v) < 1:
            return f"{k} is {v!r}, not a whole number of at least 1"
    if not isinstance(meta["hparams"], dict):
        return f"hparams is {type(meta['hparams']).__name__}, not an object"
    for k, v in meta["hparams"].items():
        if isinstance(v, float) and not np.isfinite(v):
            return f"hparams.{k} is not a finite number"
        if not isinstance(v, (int, float, str, bool)) or v is None:
            return f"hparams.{k} is {v!r}, not a number, text or true/false"
    for k in ("normalisation", "data_config", "validation"):
        if k in meta and meta[k] is not None and not isinstance(meta[k], dict):
            return f"{k} is {type(meta[k]).__name__}, not an object"
    enc = meta.get("encodings")
    if enc is not None and (not isinstance(enc, list) or not all(isinstance(e, str) for e in enc)):
        return f"encodings is {enc!r}, not a list of names"
    if enc:
        from ..data.features import ENCODINGS

        bad = [e for e in enc if e.strip().lower() not in ENCODINGS]
        if bad:   # features built differently from training: a silently wrong forecast
            return (f"encodings names {', '.join(repr(b) for b in bad)}, which DeformCast does not know "
                    f"(valid: {', '.join(ENCODINGS)})")
    fn = meta.get("feature_names")
    if fn is not None and (not isinstance(fn, list) or not all(isinstance(e, str) for e in fn)):
        return f"feature_names is {fn!r}, not a list of names"
    g = meta.get("grid")
    if g:
        if not isinstance(g, dict):
            return "grid is not an object"
        gt = g.get("geotransform")
        if not isinstance(gt, list) or len(gt) != 6 or not all(is_finite_number(v) for v in gt):
            return f"grid.geotransform is {gt!r}, not six numbers"
        for k in ("width", "height"):
            if not is_whole(g.get(k)) or int(g.get(k)) < 1:
                return f"grid.{k} is {g.get(k)!r}, not a whole number of at least 1"
        if not isinstance(g.get("crs_wkt", ""), str):
            return "grid.crs_wkt is not text"
    dates = meta.get("dates")
    if dates is not None:
        from ..io.raster import parse_date

        if not isinstance(dates, list) or any(parse_date(d) is None for d in dates):
            return "dates is not a list of YYYY-MM-DD dates"
    return ""


def recreate_command(meta, folder: str = "") -> str:
    """The command that re-creates a model (tune or train), from what its model.json says."""
    meta = meta if isinstance(meta, dict) else {}
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), str) else "<architecture>"
    horizon = meta.get("horizon") if is_whole(meta.get("horizon")) else "<horizon>"
    stack = meta.get("stack") if isinstance(meta.get("stack"), str) else "<your stack.tif>"
    q = (lambda v: f'"{v}"' if " " in str(v) else str(v))
    if meta.get("study_name") or meta.get("trial") is not None:
        return (f"./deformcast run deformcast:tune -- INPUT={q(stack)} ARCHITECTURE={arch} HORIZON={horizon} "
                "OUTPUT_FOLDER=<new model folder>")
    window = meta.get("window") if is_whole(meta.get("window")) else "<window>"
    return (f"./deformcast run deformcast:train -- INPUT={q(stack)} ARCHITECTURE={arch} HORIZON={horizon} "
            "WINDOW=" + str(window) + " OUTPUT_FOLDER=<new model folder> OUTPUT_REPORT=train.html "
            "OUTPUT_FORECAST=forecast.tif OUTPUT_RESIDUALS=residuals.tif")


def recreate_hint(meta, folder: str = "") -> str:
    return ("Restore the model folder from a backup, or re-create the model: " + recreate_command(meta, folder)
            + " (or the same algorithm in the QGIS Processing toolbox).")
