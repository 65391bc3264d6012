"""Ensemble forecast from a model folder, block by block (QGIS-free).

Every member listed in the folder's ``manifest.json`` (rank order; default all, i.e. the top-K
of a study) forecasts the ``horizon`` epochs after the last acquisition of the stack (or, for a
backtest, after the last acquisition on or before ``end_date``). The central predictor is the
**median** of the members (Liu et al. 2026: the median of the ten best tuned models); the
members' spread feeds the uncertainty maps.

Memory does not depend on the raster's area: the stack is read in row blocks (plus the
neighbourhood halo a member needs), members predict each block, and the three outputs are
written block-wise. A pixel gets a forecast only where every member can forecast it (all its
window epochs valid); elsewhere the outputs are nodata, so the median is always over the same
members.

Calibration (``calibrate=True``, the default; :mod:`calibration`). The spread of ten networks
trained on the same data reflects model uncertainty only and is far narrower than the error of a
forecast against a later, noisy acquisition (on the demo scene the raw P10-P90 band covered about
10 % of later observations). The members are therefore replaced by calibrated, coherent paths around
their median: the spread per lead step and per pixel is fitted on the delivered forecasts from the
rolling validation origins (never the test period, never an epoch after the forecast start), scaled
by the evidence at each pixel, and each member keeps its rank along the horizon like one plausible
future (see :mod:`calibration`). The median is unchanged. Where no validation origin precedes the
forecast start (a stack too short, or a backtest from before the validation period), nothing is
changed.

Speed (issue 6: ten members on a 1000 x 1000 x 150 stack in minutes on 2 CPU cores). The network
calls dominate; around them, nothing is computed once per member that is the same for several:
members on one data config share their inputs, and with the residual target the classical anchor
(and the ``trajectory`` encoding's channels), per-pixel fits that do not depend on the window, are
fitted once per block for all members (:class:`_Plan`). The calibration stacks the origins of a
block into one network call per member, and with a skill gate the classical family of a block is
fitted once per origin for all of them (``caches``).
``DEFORMCAST_THREADS`` sets the torch threads of the forecast (default: torch's own).

Outputs (../shared/INTERFACE.md):
- median: one band per forecast date (ISO description), mm, same reference as the stack;
- quantiles: P10/P50/P90 (or the quantiles asked for) of the members at the last forecast epoch;
- members: member-major bands ``[m0 h1..hH, m1 h1..hH, ...]`` described ``member<k> <ISO date>``.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import dataset, modelio, raster, styles
from .errors import DeformCastError
from .progress import Progress, silent


#: pixels per block when ``block_rows`` is automatic (64 rows of a 1000-pixel-wide raster)
BLOCK_PIXELS = 64000


def member_band_names(n_members: int, dates: Sequence) -> List[str]:
    return [f"member{k} {raster.iso(d)}" for k in range(n_members) for d in dates]


def parse_member_band(name: str):
    """``'member3 2021-02-01'`` -> (3, datetime64) or None."""
    parts = str(name).split()
    if len(parts) != 2 or not parts[0].startswith("member"):
        return None
    try:
        k = int(parts[0][6:])
    except ValueError:
        return None
    d = raster.parse_date(parts[1])
    return None if d is None else (k, d)


def load_members(model_folder: str, members=None, device: str = "cpu") -> List[modelio.LoadedModel]:
    """Load the manifest's members in rank order; ``members`` = a count or a list of folder names."""
    if not model_folder or not os.path.isdir(str(model_folder)):
        raise DeformCastError(f"The model folder '{model_folder}' does not exist. Give the OUTPUT_FOLDER of "
                              "a `tune` or `train` run.")
    paths = modelio.member_paths(model_folder)
    if members is not None and members != "" and members != 0:
        if isinstance(members, (int, np.integer)) or str(members).strip().isdigit():
            paths = paths[: int(members)]
        else:
            want = [m.strip() for m in (members if isinstance(members, (list, tuple)) else str(members).split(","))
                    if m.strip()]
            names = {os.path.basename(p): p for p in paths}
            unknown = [m for m in want if m not in names]
            if unknown:
                raise DeformCastError(f"No member named {', '.join(unknown)} in the model folder; its members are "
                                      + ", ".join(names) + ".")
            paths = [names[m] for m in want]
    if not paths:
        raise DeformCastError(f"The model folder '{model_folder}' lists no members.")
    loaded = [modelio.load_model(p, device=device) for p in paths]
    horizons = {int(m.meta["horizon"]) for m in loaded}
    if len(horizons) != 1:
        raise DeformCastError("The members forecast different horizons (" + ", ".join(map(str, sorted(horizons)))
                              + "); keep members of one horizon in a model folder.")
    return loaded


def _end_index(dates: np.ndarray, end_date) -> int:
    if end_date is None or str(end_date).strip() == "":
        return dates.size - 1
    d = raster.parse_date(end_date)
    if d is None:
        raise DeformCastError(f"END_DATE '{end_date}' is not a date (YYYY-MM-DD).")
    if d > dates[-1]:
        raise DeformCastError(
            f"END_DATE {d} lies after the last acquisition of the stack ({dates[-1]}): there is nothing to "
            "forecast from after it. Leave END_DATE empty to forecast from the last acquisition, or give a date "
            "within the stack for a backtest.")
    idx = int(np.searchsorted(dates, d, side="right")) - 1
    if idx < 0:
        raise DeformCastError(f"END_DATE {d} lies before the first acquisition ({dates[0]}).")
    return idx


#: normalisation entries that only turn the network output into mm (:func:`dataset.to_mm`), never
#: enter the network inputs: members differing only in these share their inputs
_OUTPUT_NORM_KEYS = ("target_scale", "correction_weight")
#: data-config entries that shape the network inputs but not the classical anchor of the residual
#: target (every other entry is part of the anchor's key, to be safe)
_FEATURE_ONLY_KEYS = ("window", "encodings", "neighbourhood_k", "fourier", "covariate_names", "feature_names",
                      "max_samples", "max_eval_samples", "stride", "seed", "spatial_holdout", "holdout_block",
                      "min_end_index", "validation", "val_fraction")


class _Group:
    """Members whose network inputs are identical (same data config and input normalisation)."""

    def __init__(self, cfg: dict, norm: dict, akey: Optional[str]):
        self.cfg, self.norm, self.akey = cfg, norm, akey
        self.skey: Optional[tuple] = None   # key of the inputs shared with other groups (see _Plan)
        self.split = None                   # (config without trajectory, n channels) when those are shared
        self.members: List[int] = []


class _Plan:
    """How a block's inputs are shared among the members (the speed-up of issue 6).

    * Members of one :class:`_Group` get their inputs built once per block (``dataset.forecast_inputs``).
    * Only pixels every member can forecast get a forecast (the others are nodata), so no member's
      network runs on any other: each group's inputs are cut to the pixels whose last ``max window``
      epochs (the longest window of all members) are valid and which have every shared part below.
    * With the residual target, the classical anchor (the per-pixel trajectory fit on the whole
      history, the costly part of the inputs) does not depend on the window or the encodings: it is
      fitted once per block for every anchor key (target, baseline, horizon, ...) and each group takes
      its pixels from it. The group's own features are built with the cheap ``increment`` anchor (the
      target does not enter the features).
    * Likewise the static channels of the ``trajectory`` encoding (a per-pixel fit too, the same for
      every window): computed once per block with the anchor, and appended to each group's other
      channels in the order of its ``feature_names``. A group whose channel names do not fit this
      layout is served by ``forecast_inputs`` directly.

    ``tests/test_ensemble.py`` checks that the result equals each member's own ``forecast_inputs``.
    """

    def __init__(self, loaded, configs):
        groups: Dict[str, _Group] = {}
        for k, (m, cfg) in enumerate(zip(loaded, configs)):
            norm = m.meta["normalisation"]
            key = json.dumps([cfg, {a: b for a, b in norm.items() if a not in _OUTPUT_NORM_KEYS}], sort_keys=True,
                             default=str)
            if key not in groups:
                akey = None
                if cfg.get("target", "increment") != "increment" and "window" in cfg:
                    akey = json.dumps({a: b for a, b in cfg.items() if a not in _FEATURE_ONLY_KEYS}, sort_keys=True,
                                      default=str)
                groups[key] = _Group(cfg, norm, akey)
            groups[key].members.append(k)
        self.groups = list(groups.values())
        self.max_window = max(int(m.meta["window"]) for m in loaded)
        # shared key (anchor key, with trajectory channels?) -> (config, norm) that computes them
        self.shared_inputs: Dict[tuple, tuple] = {}
        for g in self.groups:
            if g.akey is None:
                continue
            g.split = _split_trajectory(g.cfg)
            g.skey = (g.akey, g.split is not None)
            if g.skey not in self.shared_inputs:
                enc = ["trajectory"] if g.skey[1] else ["none"]
                self.shared_inputs[g.skey] = (dict(g.cfg, window=self.max_window, encodings=enc), g.norm)

    @property
    def anchor_keys(self) -> set:
        return {k[0] for k in self.shared_inputs}


def _split_trajectory(cfg: dict):
    """``(config without the trajectory encoding, number of its channels)`` where a group's trajectory
    channels can be shared (they come last in its ``feature_names``), else None."""
    traj = list(getattr(dataset, "TRAJECTORY_FEATURES", ()) or ())
    enc = list(cfg.get("encodings") or [])
    if not traj or "trajectory" not in enc or "feature_names" not in cfg:
        return None
    base = dict(cfg, encodings=[e for e in enc if e != "trajectory"] or ["none"])
    try:
        names = dataset.feature_names(base)
        own = dataset.feature_names(dict(cfg, encodings=["trajectory"]))
    except (KeyError, TypeError, ValueError):
        return None
    if list(cfg["feature_names"]) != names + traj or own != ["disp"] + traj:
        return None
    return base, len(traj)


def _item_shared(item, dates, grid, plan: _Plan) -> dict:
    """The per-item parts shared by the groups: ``pre`` (pixels every member may forecast, a superset of
    the final ones) and, per shared key, ``(valid, position in its pixel list, anchor, trajectory
    channels or None)``."""
    blk, a0, r0, r1, _, e = item
    pre = np.isfinite(blk[max(0, e - plan.max_window + 1):e + 1, r0 - a0:r1 - a0]).all(axis=0)
    out = {"pre": pre}
    for skey, (scfg, snorm) in plan.shared_inputs.items():
        Xs, uvalid, uanchor = dataset.forecast_inputs(blk, dates, grid, a0, scfg, snorm, None, end_index=e,
                                                      out_rows=(r0, r1))
        static = np.ascontiguousarray(Xs[:, -1, 1:]) if skey[1] else None   # trajectory channels (n, S)
        del Xs
        out[skey] = (uvalid, np.cumsum(uvalid.ravel()) - 1, uanchor, static)
        pre &= uvalid
    return out


def _group_inputs(item, dates, grid, g: _Group, shared: dict):
    """``(X, valid, anchor)`` of group ``g`` for one item, as :func:`dataset.forecast_inputs` gives them,
    cut to the pixels ``shared["pre"]`` (see :class:`_Plan`)."""
    blk, a0, r0, r1, cov_blk, e = item
    if g.akey is None:
        cfg = g.cfg
    else:
        cfg = dict(g.split[0] if g.split else g.cfg, target="increment")
    X, valid, anchor = dataset.forecast_inputs(blk, dates, grid, a0, cfg, g.norm, cov_blk or None, end_index=e,
                                               out_rows=(r0, r1))
    pre = shared["pre"]
    keep = pre[valid]             # row-major, like X
    if not keep.all():
        X, anchor = X[keep], anchor[keep]
        valid = valid & pre
    if g.akey is None:
        return X, valid, anchor
    _, pos, uanchor, static = shared[g.skey]
    idx = pos[valid.ravel()]      # valid lies inside the shared pixels (pre does)
    if g.split:
        st = static[idx]
        X = np.concatenate([X, np.broadcast_to(st[:, None, :], (st.shape[0], X.shape[1], st.shape[1]))], axis=2)
    return X, valid, uanchor[idx]


def _forecast_items(items, dates, grid, loaded, plan: _Plan, H, dev, batch_size, progress=None, timer=None,
                    gate: Optional[dict] = None, caches: Optional[dict] = None):
    """Every member's forecast for each item ``(blk, a0, r0, r1, cov_blk, e)`` (rows r0..r1 of a block
    read from row a0, forecast from epoch e) -> list of ``(out (M, H, r1-r0, W) mm, valid_all)``, NaN
    where not every member can forecast. The inputs of all items are stacked: one network call per
    member for all of them. With a ``gate`` (:mod:`skill_gate`) the members are shifted towards its
    classical reference forecast; the classical family of each block is computed once per origin for
    all items of that block (``caches``: ``id(blk) -> anchors.FamilyCache``, kept by the caller while
    its blocks live, e.g. the calibration's many origins of one block)."""
    M = len(loaded)
    outs = [np.full((M, H, it[3] - it[2], it[0].shape[2]), np.nan, np.float32) for it in items]
    valid_all = [np.ones((it[3] - it[2], it[0].shape[2]), bool) for it in items]
    timer = {} if timer is None else timer
    t0 = time.perf_counter()
    shared = [_item_shared(it, dates, grid, plan) for it in items]
    timer["inputs"] = timer.get("inputs", 0.0) + time.perf_counter() - t0
    done = 0
    for g in plan.groups:
        t0 = time.perf_counter()
        parts = [_group_inputs(it, dates, grid, g, sh) for it, sh in zip(items, shared)]
        X = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        anchor = parts[0][2] if len(parts) == 1 else np.concatenate([p[2] for p in parts])
        bounds = np.cumsum([0] + [p[0].shape[0] for p in parts])
        t1 = time.perf_counter()
        timer["inputs"] = timer.get("inputs", 0.0) + t1 - t0
        for k in g.members:
            sub = None if progress is None else progress.sub(done / M, (done + 1) / M)
            if X.shape[0]:
                y = loaded[k].predict(X, batch_size=batch_size, device=dev, progress=sub)
                mm = dataset.to_mm(y, anchor, loaded[k].meta["normalisation"])[:, :H]
                for i, p in enumerate(parts):
                    outs[i][k][:, p[1]] = mm[bounds[i]:bounds[i + 1]].T
            done += 1
        timer["inference"] = timer.get("inference", 0.0) + time.perf_counter() - t1
        for i, p in enumerate(parts):
            valid_all[i] &= p[1]
        del X, anchor, parts
    for out, va in zip(outs, valid_all):
        out[:, :, ~va] = np.nan
    if gate:
        from .skill_gate import apply_gate, candidates

        cfg0 = loaded[0].meta.get("data_config") or {}
        t0 = time.perf_counter()
        caches = {} if caches is None else caches
        for it in items:
            if id(it[0]) not in caches:
                caches[id(it[0])] = family_cache(it[0], dates, cfg0, H)
        if gate.get("local_blend"):
            _local_blend(items, outs, valid_all, dates, grid, loaded, plan, dev, batch_size, cfg0, caches)
        for (blk, a0, r0, r1, _, e), out, va in zip(items, outs, valid_all):
            if not va.any():
                continue
            cands = candidates(blk, a0, r0, r1, int(e), dates, H, cfg0, va, caches[id(blk)])
            last = blk[e, r0 - a0:r1 - a0][va].astype(np.float64)
            sub = out[:, :, va].astype(np.float64)
            out[:, :, va] = apply_gate(sub, cands, last, gate).astype(np.float32)
        timer["gate"] = timer.get("gate", 0.0) + time.perf_counter() - t0
    return list(zip(outs, valid_all))


def family_cache(blk, dates, cfg0: dict, H: int):
    """The classical family of a block from any origin, computed once (:class:`anchors.FamilyCache`)."""
    from .anchors import FamilyCache

    return FamilyCache(blk, dates, int(cfg0.get("horizon", H)), cfg0.get("steps") or None)


def _local_blend(items, outs, valid_all, dates, grid, loaded, plan, dev, batch_size, cfg0, caches=None) -> None:
    """Shift each item's members so that their median becomes the local blend of the skill gate
    (:func:`skill_gate.local_blend`): the ensemble's own forecasts from the earlier origins of the
    local track record are made here, on the whole block (halo rows included)."""
    from .anchors import local_origins
    from .skill_gate import local_blend

    L = int(cfg0.get("horizon", outs[0].shape[1] if outs else 1))
    first = plan.max_window - 1
    extra, keys = [], []
    for blk, a0, r0, r1, cov_blk, e in items:
        for o in local_origins(int(e), L):
            if o >= first and (id(blk), o) not in keys:
                keys.append((id(blk), o))
                extra.append((blk, a0, a0, a0 + blk.shape[1], cov_blk, o))
    past = {}
    if extra:
        for k, (out, _) in zip(keys, _forecast_items(extra, dates, grid, loaded, plan, L, dev, batch_size)):
            with np.errstate(all="ignore"):
                past[k] = np.median(out, axis=0)
    for (blk, a0, r0, r1, _, e), out, va in zip(items, outs, valid_all):
        if not va.any():
            continue
        with np.errstate(all="ignore"):
            med = np.median(out, axis=0)                                     # (H, r1 - r0, W)
        now = np.full((med.shape[0],) + blk.shape[1:], np.nan)
        now[:, r0 - a0:r1 - a0] = med
        loc = local_blend(blk, a0, r0, r1, int(e), dates, cfg0, now, lambda o, b=id(blk): past.get((b, o)),
                          (caches or {}).get(id(blk)))
        shift = np.where(np.isfinite(loc) & va[None], loc - med, 0.0)
        out += shift[None].astype(out.dtype)


def _gate_halo(gate) -> int:
    """Rows of halo the skill gate's local classical forecast needs around a block (0 without a gate)."""
    from .anchors import LOCAL_HALO

    return LOCAL_HALO if gate else 0


def predict_ensemble(stack_path: str, model_folder: str, out_median: str, out_quantiles: Optional[str] = None,
                     out_members: Optional[str] = None, horizon: Optional[int] = None, members=None,
                     quantiles: Sequence[float] = (10, 50, 90), dates=None, covariates: Optional[Sequence[str]] = None,
                     end_date=None, block_rows: int = 0, device: str = "auto", batch_size: int = 2048,
                     calibrate: bool = True, progress: Optional[Progress] = None, gate: bool = True,
                     calibration: Optional[str] = None) -> Dict[str, object]:
    """Forecast with every member, write median / quantiles / members rasters; return a summary.

    ``block_rows`` 0 (default) = as many rows as make about ``BLOCK_PIXELS`` pixels, so the memory a
    block needs is the same whatever the raster's width (and area). The summary's ``timings_s`` gives
    the seconds spent per phase (calibration, read, inputs, inference, dress_median, quantiles, write,
    total; inputs and inference of the calibration are inside its own figure).

    ``gate``: apply the skill gate stored in the folder's manifest (:mod:`skill_gate`), when there is
    one; False gives the raw ensemble (the rolling-origin evaluation compares both).

    ``calibration``: ``dressing`` or ``conformal`` (:mod:`calibration`; default
    :data:`calibration.DEFAULT_METHOD`), used when ``calibrate``.
    """
    with _inference_threads():
        return _predict_ensemble(stack_path, model_folder, out_median, out_quantiles, out_members, horizon, members,
                                 quantiles, dates, covariates, end_date, block_rows, device, batch_size, calibrate,
                                 progress, gate, calibration)


def _inference_threads():
    """Torch CPU threads for the forecast: ``DEFORMCAST_THREADS`` when set (e.g. 1 on an oversubscribed
    machine, where 2 OpenMP threads can wait on each other), else torch's own default (all cores)."""
    import contextlib

    if os.environ.get("DEFORMCAST_THREADS", "").strip():
        from .training import default_threads, torch_threads

        return torch_threads(default_threads())
    return contextlib.nullcontext()


def _predict_ensemble(stack_path, model_folder, out_median, out_quantiles, out_members, horizon, members, quantiles,
                      dates, covariates, end_date, block_rows, device, batch_size, calibrate, progress, use_gate=True,
                      method=None):
    from . import calibration as calib

    t_start = time.perf_counter()
    timer = {"read": 0.0, "inputs": 0.0, "inference": 0.0, "dress_median": 0.0, "quantiles": 0.0, "write": 0.0}
    progress = progress or silent()
    info = raster.open_stack(stack_path, dates)
    from .training import resolve_device

    dev = resolve_device(device)
    loaded = load_members(model_folder, members, device=dev)
    H_model = int(loaded[0].meta["horizon"])
    H = H_model if horizon in (None, 0, "") else int(horizon)
    if H < 1 or H > H_model:
        raise DeformCastError(f"HORIZON {H}: the models forecast {H_model} epochs; give a HORIZON from 1 to "
                              f"{H_model} (or leave it empty for the models' horizon).")
    configs = [m.meta.get("data_config") or {} for m in loaded]
    for m in loaded:
        cfg = m.meta.get("data_config") or {}
        modelio.check_compatible(m.meta, grid=info.grid if "spatial" in cfg.get("encodings", ()) else None,
                                 config=cfg, what=f"the stack '{os.path.basename(stack_path)}'")
    need_cov = sorted({n for c in configs if "covariates" in c.get("encodings", ()) for n in c.get("covariate_names", [])})
    cov = {}
    if need_cov:
        from .readers import align_covariates

        cov = align_covariates(list(covariates or []), info.grid)
        missing = [n for n in need_cov if n not in cov]
        if missing:
            raise DeformCastError("The models need the covariate(s) " + ", ".join(missing) + "; give them in "
                                  "COVARIATES (files named like those used in training).")
    e = _end_index(info.dates, end_date)
    gate = (modelio.read_manifest(model_folder).get("gate") if use_gate and members is None else None) or None
    if gate:
        progress.log(f"Skill gate ({gate.get('action')}): reference {gate.get('reference')}, mean ensemble weight "
                     f"{float(np.mean(gate.get('weights'))):.2f} (validation over rolling origins).")
    win_max = max(int(m.meta["window"]) for m in loaded)
    if e + 1 < win_max:
        raise DeformCastError(f"The members read {win_max} epochs (WINDOW) but only {e + 1} acquisitions lie up to the "
                              "forecast start. Give a longer stack or a later END_DATE.")
    fdates = dataset.target_dates(info.dates, e, H_model)[:H]
    M = len(loaded)
    qs = [float(q) for q in quantiles]
    if any(not 0 <= q <= 100 for q in qs):
        raise DeformCastError("QUANTILES must be percentages between 0 and 100, e.g. 10,50,90.")
    Hh, W = info.grid.shape
    t_cal = time.perf_counter()
    method = method or calib.DEFAULT_METHOD
    if method not in calib.METHODS:
        raise DeformCastError(f"CALIBRATION '{method}': valid values are {', '.join(calib.METHODS)}.")
    if calibrate and M > 1:
        model, cal = calib.calibrate(info, loaded, configs, cov, e, H, dev, batch_size, method, gate=gate,
                                     progress=progress.sub(0.0, 0.3))
        progress = progress.sub(0.3, 1.0)
        for line in calib.log_lines(cal):
            progress.log(line)
    else:
        model, cal = None, {"calibrated": False, "reason": "switched off" if M > 1 else "one member"}
    cfg0 = configs[0]
    timer["calibration"] = time.perf_counter() - t_cal
    plan = _Plan(loaded, configs)
    med_path, q_path, m_path = out_median, out_quantiles, out_members
    meta = {"DEFORMCAST_MODEL_FOLDER": os.path.abspath(model_folder), "DEFORMCAST_END_DATE": raster.iso(info.dates[e]),
            "DEFORMCAST_MEMBERS": json.dumps([os.path.basename(m.folder) for m in loaded]),
            "DEFORMCAST_CALIBRATION": json.dumps(cal), "DEFORMCAST_GATE": json.dumps(gate)}
    w_med = raster.RasterWriter(med_path, info.grid, H, [raster.iso(d) for d in fdates], metadata=meta)
    w_q = raster.RasterWriter(q_path, info.grid, len(qs), [f"P{q:g} {raster.iso(fdates[-1])}" for q in qs],
                              metadata=meta) if q_path else None
    w_m = raster.RasterWriter(m_path, info.grid, M * H, member_band_names(M, fdates), metadata=meta) if m_path else None
    writers = [w for w in (w_med, w_q, w_m) if w is not None]
    halo = max([dataset.halo(c) for c in configs] + [_gate_halo(gate)])
    n_valid = 0
    final_vals = []
    if not block_rows or int(block_rows) <= 0:
        block_rows = max(1, BLOCK_PIXELS // max(1, W))
    try:
        blocks = list(raster.row_blocks(Hh, block_rows))
        for bi, (r0, r1) in enumerate(blocks):
            t0 = time.perf_counter()
            a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
            # all epochs: in a backtest the residual target's classical forecast needs the real dates of
            # the forecast epochs (forecast_inputs reads values only up to end_index)
            blk = raster.read_stack(info, rows=(a0, a1))
            cov_blk = {k: v[a0:a1] for k, v in cov.items()}
            timer["read"] += time.perf_counter() - t0
            ((out, valid_all),) = _forecast_items([(blk, a0, r0, r1, cov_blk, e)], info.dates, info.grid, loaded, plan,
                                                  H, dev, batch_size,
                                                  progress.sub(bi / len(blocks), (bi + 1) / len(blocks)), timer,
                                                  gate=gate)
            t0 = time.perf_counter()
            feats = calib.evidence(blk, a0, r0, r1, e, info.dates, out, valid_all, cfg0.get("horizon", H),
                                   cfg0.get("steps")) if model is not None else None
            del blk
            n_valid += int(valid_all.sum())
            with np.errstate(all="ignore"):
                if model is not None:
                    med = calib.apply(model, out, valid_all, feats)   # coherent calibrated paths, median kept
                else:
                    med = np.median(out, axis=0) if M > 1 else out[0]
            t1 = time.perf_counter()
            timer["dress_median"] += t1 - t0
            if w_q is not None:
                with np.errstate(all="ignore"):
                    qv = np.percentile(out[:, -1], qs, axis=0).astype(np.float32) if valid_all.any() else \
                        np.full((len(qs), r1 - r0, W), np.nan, np.float32)
                qv[:, ~valid_all] = np.nan
            t2 = time.perf_counter()
            timer["quantiles"] += t2 - t1
            w_med.write(med, r0)
            if w_q is not None:
                w_q.write(qv, r0)
            if w_m is not None:
                w_m.write(out.reshape(M * H, r1 - r0, W), r0)
            timer["write"] += time.perf_counter() - t2
            if len(final_vals) < 20:
                final_vals.append(med[-1][valid_all][:5000])
            progress.set((bi + 1) / len(blocks))
        if n_valid == 0:
            raise DeformCastError("No pixel could be forecast: every pixel has nodata within the members' input window "
                                  f"(the last {win_max} epochs up to {info.dates[e]}). Check the stack's last epochs.")
        sample = np.concatenate(final_vals) if final_vals else np.zeros(1)
        w_med.qml = styles.deformation_style(sample, band=H)
        if w_q is not None:
            w_q.qml = styles.deformation_style(sample, band=len(qs))
        if w_m is not None:
            w_m.qml = styles.deformation_style(sample, band=H)
        t0 = time.perf_counter()
        for w in writers:
            w.close()
        timer["write"] += time.perf_counter() - t0
    except BaseException:
        for w in writers:
            if w.ds is not None:
                w.abort()
        raise
    return {"OUTPUT_MEDIAN": med_path, "OUTPUT_QUANTILES": q_path, "OUTPUT_MEMBERS": m_path,
            "members": [os.path.basename(m.folder) for m in loaded], "forecast_dates": [raster.iso(d) for d in fdates],
            "end_date": raster.iso(info.dates[e]), "valid_pixels": n_valid, "device": dev, "calibration": cal,
            "gate": gate,
            "timings_s": dict(timer, total=time.perf_counter() - t_start)}
