"""Model folders: save and load trained models safely, and the manifest of an ensemble (QGIS-free).

Layout (../shared/INTERFACE.md "Model folder")::

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
``horizon``. Written by :func:`algorithms.training.run_training_job` and expected by prediction:
``feature_names``, ``encodings``, ``normalisation`` (the dataset's ``norm`` dict), ``data_config``
(the dataset's ``config`` dict), ``grid`` (:func:`grid_to_dict`), ``data_fingerprint``,
``validation`` (``{"val_loss", "best_epoch", "epochs_run"}``), ``seed``. Added by
:func:`save_model`: ``format``, ``format_version``, ``created`` (UTC ISO), ``versions``
(deformcast, torch, numpy, python), ``weights`` (file name) and ``weights_sha256``.

Safety: weights are a plain ``state_dict`` saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and containers, so a model
file from someone else cannot execute code. The SHA-256 in model.json detects a truncated or
swapped weights file. Nothing is unpickled.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .errors import DeformCastError

FORMAT = "deformcast-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_JSON = "model.json"
WEIGHTS = "weights.pt"
REQUIRED_META = ("architecture", "hparams", "n_features", "window", "horizon")


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
        from . import __version__

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
    from .raster import Grid

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
        from .training import predict_array

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
    if meta.get("format") != FORMAT:
        raise DeformCastError(f"'{p}' is not a DeformCast model description.")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise DeformCastError(
            f"The model in '{folder}' was written by a newer DeformCast (format "
            f"{meta.get('format_version')}); update the plugin to load it.")
    return meta


def load_model(folder: str, device: str = "cpu") -> LoadedModel:
    """Rebuild the architecture from model.json and load the weights (``weights_only=True``)."""
    import torch

    from .models import build_model
    from .training import resolve_device

    meta = read_meta(folder)
    dev = resolve_device(device)
    wpath = os.path.join(str(folder), meta.get("weights", WEIGHTS))
    if not os.path.isfile(wpath):
        raise DeformCastError(f"The weights file '{wpath}' is missing; train the model again.")
    if meta.get("weights_sha256") and _sha256(wpath) != meta["weights_sha256"]:
        raise DeformCastError(
            f"The weights file '{wpath}' does not match its model.json (checksum differs): it was "
            "changed or truncated. Train the model again or restore the folder from a backup.")
    model = build_model(meta["architecture"], int(meta["n_features"]), int(meta["window"]),
                        int(meta["horizon"]), meta["hparams"])
    try:
        state = torch.load(wpath, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, KeyError) as e:
        raise DeformCastError(
            f"The weights in '{wpath}' do not fit a {meta['architecture']} with the hyperparameters of "
            f"its model.json ({str(e).splitlines()[0]}).") from None
    model.to(dev).eval()
    return LoadedModel(model, meta, os.path.abspath(str(folder)))


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
        folder = os.path.relpath(os.path.join(model_root, row["folder"]), model_root)
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
        raise DeformCastError(f"Cannot read '{p}': {e}.") from None
    members = data.get("members") or []
    if not members:
        raise DeformCastError(f"'{p}' lists no models.")
    for m in members:
        m["path"] = os.path.normpath(os.path.join(model_root, m["folder"]))
        if not os.path.isfile(os.path.join(m["path"], MODEL_JSON)):
            raise DeformCastError(
                f"The model '{m['folder']}' listed in '{p}' is missing. The folder was changed after "
                "training; restore it or train again.")
    return data


def member_paths(model_root: str) -> List[str]:
    return [m["path"] for m in read_manifest(model_root)["members"]]
