"""Model folders: save and load trained models safely, and the manifest of an ensemble (QGIS-free).

Layout (docs/interface.md "Model folder")::

    <model_root>/
        manifest.json            # written LAST: members in rank order (its presence = complete)
        <member>/                # one sub-folder per model, e.g. "m01_resnet_transformer"
            weights.pt           # torch state_dict (tensors only), read with weights_only=True
            model.json           # everything needed to predict again (below)
        ...                      # anything else the writer adds (metrics.csv, report.html)

API::

    save_model(folder, model, meta) -> folder          # atomic: <folder>.part-<pid>, then renamed
    load_model(folder, device="cpu") -> LoadedModel     # .model (eval), .meta, .folder, .predict(X)
    check_compatible(meta, grid=None, encodings=None, n_features=None, window=None, config=None)
    write_manifest(model_root, members, extra=None) -> path   # members: folder names in rank order
    read_manifest(model_root) -> dict                   # {"members": [{"rank", "folder", "path", ...}], ...}
    member_paths(model_root) -> [absolute member folders in rank order]
    grid_to_dict(grid) / grid_from_dict(d); data_fingerprint(values, dates, grid) -> "sha256:..."
    DataFingerprint(shape, dates, grid).add_rows(block) ... .hexdigest()   # the same, block-wise

``meta`` (model.json) keys. Required: ``architecture``, ``hparams``, ``n_features``, ``window``,
``horizon``. Written by :func:`algorithms.learn.train_job.run_training_job` and expected by prediction:
``feature_names``, ``encodings``, ``normalisation`` (the dataset's ``norm`` dict), ``data_config``
(the dataset's ``config`` dict), ``grid`` (:func:`grid_to_dict`), ``data_fingerprint``,
``validation`` (``{"val_loss", "best_epoch", "epochs_run"}``), ``seed``. Added by
:func:`save_model`: ``format``, ``format_version``, ``created`` (UTC ISO), ``versions``
(deformcast, torch, numpy, python), ``weights`` (file name) and ``weights_sha256``.

Safety: weights are a plain ``state_dict`` saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and containers, so a model
file from someone else cannot execute code. The SHA-256 in model.json is **required**: it detects
a truncated or swapped weights file, and a model.json without it is refused (with the command that
re-creates the model) rather than loaded unchecked. Nothing is unpickled. model.json is checked
field by field (types and ranges) before anything is built from it, and a manifest's members must
be sub-folders of the model folder (no absolute paths, no ``..``). Every problem is a
:class:`DeformCastError` that names the fix; library messages (torch's advice included) are never
passed on.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from ..errors import DeformCastError
from .model_meta import REQUIRED_META, is_whole, meta_problem, recreate_hint

FORMAT = "deformcast-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.datetime64):
        return str(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        f = float(o)
        return f if np.isfinite(f) else None
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return o


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(data), fh, indent=2, allow_nan=False)
    os.replace(tmp, path)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> Dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        from .. import __version__

        out["deformcast"] = __version__
    except ImportError:
        pass
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    return out


# --- grid and data identity ---------------------------------------------------------------------

def grid_to_dict(grid) -> Dict[str, Any]:
    return {"geotransform": [float(v) for v in grid.geotransform], "crs_wkt": grid.crs_wkt or "",
            "width": int(grid.width), "height": int(grid.height)}


def grid_from_dict(d: Dict[str, Any]):
    from ..io.raster import Grid

    return Grid(tuple(float(v) for v in d["geotransform"]), d.get("crs_wkt") or "", int(d["width"]), int(d["height"]))


class DataFingerprint:
    """Incremental SHA-256 of a stack: shape, dates, grid, then every value row by row.

    Feed row blocks ``(T, h, W)`` top to bottom with :meth:`add_rows`; the digest does not depend
    on the block size, so a block-wise reader and :func:`data_fingerprint` agree. NaN are hashed
    as a fixed value.
    """

    def __init__(self, shape, dates=None, grid=None):
        self.h = hashlib.sha256()
        self.h.update(repr(tuple(int(s) for s in shape)).encode())
        if dates is not None:
            self.h.update(np.asarray(dates, dtype="datetime64[D]").astype("int64").tobytes())
        if grid is not None:
            self.h.update(json.dumps(grid_to_dict(grid), sort_keys=True).encode())

    def add_rows(self, block: np.ndarray) -> None:
        b = np.nan_to_num(np.asarray(block, dtype=np.float32), nan=-9.87654e30)
        for r in range(b.shape[1]):
            self.h.update(np.ascontiguousarray(b[:, r, :]).tobytes())

    def hexdigest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def data_fingerprint(values: np.ndarray, dates=None, grid=None) -> str:
    """A SHA-256 of the data a model was trained on (see :class:`DataFingerprint`).

    Recorded in model.json so a report can tell whether a model is applied to the very data it
    was trained on.
    """
    v = np.asarray(values, dtype=np.float32)
    fp = DataFingerprint(v.shape, dates, grid)
    fp.add_rows(v)
    return fp.hexdigest()


# --- one model -----------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    model: Any
    meta: Dict[str, Any]
    folder: str

    def predict(self, X, batch_size: int = 2048, device: str = "cpu", progress=None) -> np.ndarray:
        from ..learn.runtime import predict_array

        return predict_array(self.model, X, batch_size=batch_size, device=device, progress=progress)


def save_model(folder: str, model, meta: Dict[str, Any]) -> str:
    """Write ``model`` (weights) and ``meta`` (model.json) into ``folder``, atomically.

    Everything goes to ``<folder>.part-<pid>`` first and is renamed to ``folder`` when complete
    (an existing ``folder`` is replaced), so an interrupted save never leaves a folder that
    looks like a model.
    """
    import torch

    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise DeformCastError(f"Cannot save the model: model.json needs {', '.join(missing)}.")
    folder = os.path.abspath(str(folder))
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = f"{folder}.part-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        wpath = os.path.join(tmp, WEIGHTS)
        torch.save(state, wpath)
        full = dict(meta)
        full.update({"format": FORMAT, "format_version": FORMAT_VERSION,
                     "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                     "versions": versions(), "weights": WEIGHTS, "weights_sha256": _sha256(wpath)})
        _write_json(os.path.join(tmp, MODEL_JSON), full)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_meta(folder: str) -> Dict[str, Any]:
    p = os.path.join(str(folder), MODEL_JSON)
    if not os.path.isfile(p):
        raise DeformCastError(
            f"'{folder}' holds no model ({MODEL_JSON} is missing). Choose a model sub-folder written "
            "by the DeformCast train or tune algorithms.")
    try:
        with open(p, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as e:
        raise DeformCastError(f"Cannot read '{p}': {e}. The model folder is damaged; train the model again.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DeformCastError(f"'{p}' is not a DeformCast model description. {recreate_hint(meta, folder)}")
    fv = meta.get("format_version", 0)
    if not is_whole(fv):
        raise DeformCastError(f"'{p}' is damaged: format_version is {fv!r}, not a whole number. "
                              + recreate_hint(meta, folder))
    if int(fv) > FORMAT_VERSION:
        raise DeformCastError(
            f"The model in '{folder}' was written by a newer DeformCast (format "
            f"{meta.get('format_version')}); update the plugin to load it.")
    problem = meta_problem(meta)
    if problem:
        raise DeformCastError(f"'{p}' is damaged: {problem}. {recreate_hint(meta, folder)}")
    return meta


def load_model(folder: str, device: str = "cpu") -> LoadedModel:
    """Rebuild the architecture from model.json and load the weights (``weights_only=True``)."""
    import torch

    from . import build_model
    from ..learn.runtime import resolve_device

    meta = read_meta(folder)
    dev = resolve_device(device)
    wname = meta.get("weights", WEIGHTS)
    if not isinstance(wname, str) or not wname or os.path.basename(wname) != wname or wname in (".", ".."):
        raise DeformCastError(f"The model.json in '{folder}' names the weights file {wname!r}, not a file name "
                              f"inside the model folder. {recreate_hint(meta, folder)}")
    wpath = os.path.join(str(folder), wname)
    if not os.path.isfile(wpath):
        raise DeformCastError(f"The weights file '{wpath}' is missing. {recreate_hint(meta, folder)}")
    sha = meta.get("weights_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        raise DeformCastError(
            f"The model.json in '{folder}' has no checksum of its weights (weights_sha256), so a damaged or "
            f"swapped weights file could not be detected; DeformCast does not load such a model. "
            + recreate_hint(meta, folder))
    if _sha256(wpath) != sha.lower():
        raise DeformCastError(
            f"The weights file '{wpath}' does not match its model.json (checksum differs): it was "
            f"changed or truncated. {recreate_hint(meta, folder)}")
    try:
        model = build_model(meta["architecture"], int(meta["n_features"]), int(meta["window"]),
                            int(meta["horizon"]), meta["hparams"])
    except DeformCastError as e:
        raise DeformCastError(f"The model.json in '{folder}' does not describe a model DeformCast can build "
                              f"({e}). {recreate_hint(meta, folder)}") from None
    except Exception as e:  # noqa: BLE001 - bad hyperparameters surface as many library errors
        raise DeformCastError(f"The model.json in '{folder}' does not describe a model DeformCast can build "
                              f"({_first_line(e)}). {recreate_hint(meta, folder)}") from None
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - pickles, garbage, truncated zips: never pass torch's advice on
        raise DeformCastError(
            f"'{wpath}' is not a plain weights file (tensors only): it holds other Python objects or is "
            "damaged. DeformCast never loads such files, because they can run code on this computer. "
            + recreate_hint(meta, folder)) from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise DeformCastError(f"'{wpath}' does not hold the weights of a model (a table of tensors). "
                              + recreate_hint(meta, folder))
    try:
        model.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001
        raise DeformCastError(
            f"The weights in '{wpath}' do not fit a {meta['architecture']} with the hyperparameters of "
            f"its model.json ({_first_line(e)}). {recreate_hint(meta, folder)}") from None
    model.to(dev).eval()
    return LoadedModel(model, meta, os.path.abspath(str(folder)))


def _first_line(e: BaseException) -> str:
    """The first line of a library's message, without its advice on unsafe loading."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if "weights_only" in line or "pickle" in line.lower():
        return type(e).__name__
    return line[:300]


def _crs_name(wkt: str) -> str:
    if not wkt:
        return "no CRS"
    try:
        from osgeo import osr

        s = osr.SpatialReference()
        s.ImportFromWkt(wkt)
        code = s.GetAuthorityCode(None)
        return f"EPSG:{code}" if code else (s.GetName() or "a custom CRS")
    except Exception:  # noqa: BLE001 - a name for a message only
        return "a custom CRS"


def check_compatible(meta: Dict[str, Any], grid=None, encodings: Optional[Iterable[str]] = None,
                     n_features: Optional[int] = None, window: Optional[int] = None,
                     config: Optional[Dict[str, Any]] = None, what: str = "the input stack") -> None:
    """Refuse (DeformCastError) to apply a model to data it was not trained for.

    Checks whichever is given: the grid (size, geotransform and CRS), the encodings, the number of
    input channels, the window, and the covariate names of the data configuration.
    """
    name = meta.get("architecture", "model")
    if grid is not None and meta.get("grid"):
        mg = grid_from_dict(meta["grid"])
        if not mg.same_as(grid):
            raise DeformCastError(
                f"The {name} model was trained on a {mg.width} x {mg.height} grid in "
                f"{_crs_name(mg.crs_wkt)} (origin {mg.geotransform[0]:.6g}, {mg.geotransform[3]:.6g}; "
                f"cell {mg.cell_size[0]:.6g}), but {what} is a {grid.width} x {grid.height} grid in "
                f"{_crs_name(grid.crs_wkt)} (origin {grid.geotransform[0]:.6g}, {grid.geotransform[3]:.6g}; "
                f"cell {grid.cell_size[0]:.6g}). Its spatial and neighbourhood encodings only hold on its "
                "own grid: predict on a stack with the same grid (resample it with gdalwarp to the "
                "model's grid) or train a model on this stack.")
    if encodings is not None and meta.get("encodings") is not None:
        a, b = sorted(set(meta["encodings"]) - {"none"}), sorted(set(encodings) - {"none"})
        if a != b:
            raise DeformCastError(
                f"The {name} model was trained with the encodings {', '.join(a) or 'none'} but "
                f"{', '.join(b) or 'none'} were asked for. Use the model's encodings or train a new model.")
    if n_features is not None and int(meta["n_features"]) != int(n_features):
        raise DeformCastError(
            f"The {name} model expects {meta['n_features']} input channels "
            f"({', '.join(meta.get('feature_names') or [])}) but the data gives {n_features}. Give the "
            "same covariates and encodings as in training.")
    if window is not None and int(meta["window"]) != int(window):
        raise DeformCastError(
            f"The {name} model reads windows of {meta['window']} epochs, not {window}. Use WINDOW "
            f"{meta['window']} (or leave it at the model's default).")
    if config is not None and meta.get("data_config") is not None:
        a = list(meta["data_config"].get("covariate_names") or [])
        b = list(config.get("covariate_names") or [])
        if a != b:
            raise DeformCastError(
                f"The {name} model was trained with the covariates {', '.join(a) or '(none)'} but "
                f"{', '.join(b) or '(none)'} were given. Give the same covariates, in the same order.")


# --- the model root ------------------------------------------------------------------------------

def write_manifest(model_root: str, members: Sequence, extra: Optional[Dict[str, Any]] = None) -> str:
    """Write ``manifest.json`` (last, atomically) listing ``members`` in rank order (best first).

    ``members``: sub-folder names (or dicts with a ``"folder"`` key and any extra fields such as
    ``val_loss``). Each must already hold a complete model (model.json + weights).
    """
    model_root = os.path.abspath(str(model_root))
    if not members:
        raise DeformCastError("A model folder needs at least one model.")
    rows = []
    for rank, m in enumerate(members, start=1):
        row = dict(m) if isinstance(m, dict) else {"folder": str(m)}
        folder = os.path.relpath(_member_path(model_root, row.get("folder"), rank, "the manifest being written"),
                                 model_root)
        meta = read_meta(os.path.join(model_root, folder))
        row.update({"rank": rank, "folder": folder})
        row.setdefault("architecture", meta.get("architecture"))
        row.setdefault("val_loss", (meta.get("validation") or {}).get("val_loss"))
        rows.append(row)
    first = read_meta(os.path.join(model_root, rows[0]["folder"]))
    data = {"format": "deformcast-manifest", "format_version": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "horizon": first.get("horizon"), "window": first.get("window"), "members": rows}
    if extra:
        data.update(extra)
    path = os.path.join(model_root, MANIFEST)
    _write_json(path, data)
    return path


def read_manifest(model_root: str) -> Dict[str, Any]:
    """The manifest with each member's absolute ``path`` added.

    A folder that is itself one model (model.json, no manifest) reads as a one-member manifest.
    """
    model_root = os.path.abspath(str(model_root))
    p = os.path.join(model_root, MANIFEST)
    if not os.path.isfile(p):
        if os.path.isfile(os.path.join(model_root, MODEL_JSON)):
            meta = read_meta(model_root)
            return {"format": "deformcast-manifest", "format_version": FORMAT_VERSION,
                    "horizon": meta.get("horizon"), "window": meta.get("window"),
                    "members": [{"rank": 1, "folder": ".", "path": model_root,
                                 "architecture": meta.get("architecture"),
                                 "val_loss": (meta.get("validation") or {}).get("val_loss")}]}
        raise DeformCastError(
            f"'{model_root}' is not a complete DeformCast model folder ({MANIFEST} is missing). "
            "Choose the OUTPUT_FOLDER of a finished train or tune run; a run that was cancelled or "
            "failed leaves no manifest.")
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise DeformCastError(f"Cannot read '{p}': {_first_line(e)}. The manifest is damaged; restore the model "
                              "folder or run tune/train again into a new OUTPUT_FOLDER.") from None
    if not isinstance(data, dict):
        raise DeformCastError(f"'{p}' is not a DeformCast manifest (not a JSON object). Restore the model folder "
                              "or run tune/train again into a new OUTPUT_FOLDER.")
    members = data.get("members") or []
    if not isinstance(members, list):
        raise DeformCastError(f"'{p}' is damaged: 'members' is not a list. Restore the model folder or run "
                              "tune/train again into a new OUTPUT_FOLDER.")
    if not members:
        raise DeformCastError(f"'{p}' lists no models. Run tune/train again into a new OUTPUT_FOLDER.")
    for k, m in enumerate(members, start=1):
        if not isinstance(m, dict):
            raise DeformCastError(f"'{p}' is damaged: member {k} is {m!r}, not an object with a 'folder'. "
                                  "Restore the model folder or run tune/train again into a new OUTPUT_FOLDER.")
        m["path"] = _member_path(model_root, m.get("folder"), k, f"'{p}'")
        if not os.path.isfile(os.path.join(m["path"], MODEL_JSON)):
            raise DeformCastError(
                f"The model '{m['folder']}' listed in '{p}' is missing. The folder was changed after "
                "training; restore it or train again.")
    return data


def _member_path(model_root: str, folder, k: int, where: str) -> str:
    """The absolute folder of member ``k``: a relative path inside ``model_root`` (no absolute
    paths, no ``..`` out of it, no link leading outside)."""
    fix = "Restore the model folder or run tune/train again into a new OUTPUT_FOLDER."
    if not isinstance(folder, str) or not folder.strip():
        raise DeformCastError(f"{where} is damaged: member {k} has the folder {folder!r}, not a folder name. {fix}")
    if os.path.isabs(folder) or folder.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", folder):
        raise DeformCastError(
            f"{where}: member {k} has the absolute path '{folder}'. Members must be sub-folders of the model folder "
            f"'{model_root}' (e.g. 'trials/000003'); a manifest may not point elsewhere. {fix}")
    path = os.path.normpath(os.path.join(model_root, folder))
    root_real = os.path.realpath(model_root)
    real = os.path.realpath(path)
    if (os.path.commonpath([model_root, path]) != model_root
            or os.path.commonpath([root_real, real]) != root_real):
        raise DeformCastError(
            f"{where}: member {k} ('{folder}') lies outside the model folder '{model_root}'. Members must be "
            f"sub-folders of it; a manifest may not point elsewhere. {fix}")
    return path


def member_paths(model_root: str) -> List[str]:
    return [m["path"] for m in read_manifest(model_root)["members"]]


# --- the stack a model is applied to ----------------------------------------------------------------

def _training_span(meta: Dict[str, Any]):
    """``(dates or None, first, last, median step in days or None, seen-until date or None)`` of the
    stack a model was trained on, from model.json (``dates``; else the data configuration)."""
    cfg = meta.get("data_config") or {}
    sd = cfg.get("split_dates") or {}
    dates = None
    if isinstance(meta.get("dates"), list) and len(meta["dates"]) >= 2:
        dates = np.array(meta["dates"], dtype="datetime64[D]")
    first = last = step = None
    if dates is not None:
        first, last = dates[0], dates[-1]
        step = float(np.median(np.diff(dates).astype(np.int64)))
    elif sd.get("train") and sd.get("test"):
        first, last = np.datetime64(sd["train"][0], "D"), np.datetime64(sd["test"][1], "D")
        n = cfg.get("n_epochs")
        if is_whole(n) and int(n) > 1:
            step = float((last - first).astype(np.int64)) / (int(n) - 1)
    seen = np.datetime64(sd["val"][1], "D") if sd.get("val") else None
    return dates, first, last, step, seen


def training_differences(metas: Sequence[Dict[str, Any]], info, end_index: Optional[int] = None) -> List[str]:
    """Warnings (sentences) where the stack ``info`` (:class:`raster.StackInfo`) differs from the
    models' training stack in a way that changes what the models do:

    * another **time step** (the window of N epochs then spans another duration, and the
      forecast epochs are spaced differently from what the models learnt);
    * another **cell size** for models with the neighbourhood encoding (the neighbours they learnt
      from were at another distance); other grids are refused by :func:`check_compatible` where the
      models use the spatial encoding, and do not matter to per-pixel models;
    * a forecast start inside the models' **training or validation period** on the training grid
      (a backtest on epochs the models were fitted to looks better than the models are).
    """
    from ..io.raster import iso

    out: List[str] = []
    if not metas:
        return out
    meta = metas[0]
    name = meta.get("architecture", "model")
    dates = np.asarray(info.dates, dtype="datetime64[D]")
    e = dates.size - 1 if end_index is None else int(end_index)
    tdates, first, last, step, seen = _training_span(meta)
    win = max(int(m.get("window", 2)) for m in metas)
    if step and dates.size >= 2:
        recent = dates[max(0, e - max(win, 2)):e + 1]
        own = float(np.median(np.diff(recent).astype(np.int64))) if recent.size >= 2 else None
        if own and not 0.8 <= own / step <= 1.25:
            out.append(
                f"The models were trained on a stack with an acquisition every {step:.0f} days, but this stack has "
                f"one every {own:.0f} days before the forecast start: their window of {win} epochs now spans "
                f"{own * win:.0f} instead of {step * win:.0f} days and the forecast epochs are spaced unlike those "
                "they learnt. Regularise the stack to the training step (import_timeseries REGULARISE with "
                f"STEP_DAYS={step:.0f}) or train on stacks with this step.")
    g = meta.get("grid")
    if g:
        mg = grid_from_dict(g)
        same = mg.same_as(info.grid)
        encs = {e_ for m in metas for e_ in (m.get("encodings") or [])}
        if not same and "neighbourhood" in encs:
            a, b = mg.cell_size[0], info.grid.cell_size[0]
            if a > 0 and not 0.99 <= b / a <= 1.01:
                out.append(
                    f"The {name} models use the neighbourhood encoding learnt on cells of {a:g} map units; this stack "
                    f"has cells of {b:g}, so the neighbours lie at other distances than in training. Resample the "
                    "stack to the training cell size (gdalwarp -tr) or train on this grid.")
        if same and seen is not None and e < dates.size and dates[e] < seen:
            out.append(
                f"The forecast starts on {iso(dates[e])}, inside the period the models were trained and validated on "
                f"(up to {seen}) on this very grid: the forecast of the epochs that follow repeats what the models "
                "were fitted to, so its errors look smaller than on new data. For a fair backtest give an END_DATE "
                f"in the models' test period (after {seen}).")
    return out
