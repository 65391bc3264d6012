"""The members' forecast engine: load the members of a model folder and forecast every member for
blocks of rows from any origins, with the inputs each group of members shares built once and one
network call per member for all blocks (see :mod:`ensemble` for the products made of it)."""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional

import numpy as np

from ..order_stats import member_median
from ..data import dataset
from ..data.series import FILL_EPOCHS, fill_window_gaps
from ..models import modelio
from ..errors import DeformCastError

#: pixels per block when ``block_rows`` is automatic (64 rows of a 1000-pixel-wide raster)
BLOCK_PIXELS = 64000


def load_members(model_folder: str, members=None, device: str = "cpu", info=None,
                 end: Optional[int] = None) -> List[modelio.LoadedModel]:
    """Load the manifest's members in rank order; ``members`` = a count or a list of folder names. With
    ``info`` (the stack to forecast, ``raster.open_stack``) each member trained with date weights gets the
    stack's, from its epochs up to ``end`` (the forecast origin; :func:`date_weights.bind`)."""
    paths = member_selection(model_folder, members)
    loaded = [modelio.load_model(p, device=device) for p in paths]
    for m in loaded:   # what a forecast reads besides the weights (a bare KeyError before)
        lacking = [k for k in ("normalisation", "data_config") if not isinstance(m.meta.get(k), dict)]
        if lacking:
            raise DeformCastError(f"'{os.path.join(m.folder, modelio.MODEL_JSON)}' is damaged: it lacks "
                                  f"{', '.join(lacking)}, which a forecast needs. "
                                  + modelio.recreate_hint(m.meta, m.folder))
    horizons = {int(m.meta["horizon"]) for m in loaded}
    if len(horizons) != 1:
        raise DeformCastError("The members forecast different horizons (" + ", ".join(map(str, sorted(horizons)))
                              + "); keep members of one horizon in a model folder.")
    if info is not None:
        from ..data import date_weights

        date_weights.bind(loaded, info, end)
    return loaded


def member_selection(model_folder: str, members=None) -> List[str]:
    """The folders of the manifest's members that :func:`load_members` loads, in rank order."""
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
    return paths


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


class Plan:
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


def _item_shared(item, dates, grid, plan: Plan) -> dict:
    """The per-item parts shared by the groups: ``pre`` (pixels every member may forecast, a superset of
    the final ones) and, per shared key, ``(valid, position in its pixel list, anchor, trajectory
    channels or None)``."""
    blk, a0, r0, r1, _, e = item
    # the members' inputs fill short gaps before the origin (dataset.forecast_inputs): so does this superset
    hist = fill_window_gaps(blk[:e + 1, r0 - a0:r1 - a0], dates[:e + 1], FILL_EPOCHS)
    pre = np.isfinite(hist[max(0, e - plan.max_window + 1):]).all(axis=0)
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


def forecast_items(items, dates, grid, loaded, plan: Plan, H, dev, batch_size, progress=None, timer=None):
    """Every member's forecast for each item ``(blk, a0, r0, r1, cov_blk, e)`` (rows r0..r1 of a block
    read from row a0, forecast from epoch e) -> list of ``(out (M, H, r1-r0, W) mm, valid_all)``, NaN
    where not every member can forecast. The inputs of all items are stacked: one network call per
    member for all of them. The skill gate acts afterwards (:func:`gating.forecast_gated`)."""
    from ..data.features import family_memo

    batches = _batches(items)
    res = []
    for k, batch in enumerate(batches):
        sub = None if progress is None else progress.sub(k / len(batches), (k + 1) / len(batches))
        with family_memo():   # the groups of one block share its classical family (fitted once per origin)
            res += _forecast_items([it for it, _ in batch], dates, grid, loaded, plan, H, dev, batch_size, sub, timer)
    pieces = [[] for _ in items]
    for r, (_, (i, q0, q1)) in zip(res, (b for batch in batches for b in batch)):
        pieces[i].append((r, q0, q1))
    out = []
    for it, got in zip(items, pieces):        # the pieces of a split item back together
        if len(got) == 1:
            out.append(got[0][0])
            continue
        o = np.full((got[0][0][0].shape[0], H, it[3] - it[2], it[0].shape[2]), np.nan, np.float32)
        v = np.zeros((it[3] - it[2], it[0].shape[2]), bool)
        for (oo, vv), q0, q1 in got:
            o[:, :, q0 - it[2]:q1 - it[2]] = oo
            v[q0 - it[2]:q1 - it[2]] = vv
        out.append((o, v))
    return out


#: pixels whose network inputs are built at once (an item with more is split by rows): the inputs of a 64 000-pixel
#: block and their classical family took 0.95 GB (session 19)
INPUT_PIXELS = 16384


def _batches(items):
    """``items`` in batches of at most :data:`INPUT_PIXELS` pixels (one item at least): ``[[(item, (index, r0,
    r1)), ...], ...]``, an item with more pixels cut into pieces of whole rows."""
    batches, cur, n = [], [], 0
    for i, it in enumerate(items):
        blk, a0, r0, r1, cov_blk, e = it
        W = blk.shape[2]
        step = max(1, INPUT_PIXELS // max(1, W)) if (r1 - r0) * W > INPUT_PIXELS else max(1, r1 - r0)
        for q0 in list(range(r0, r1, step)) or [r0]:          # an item without rows stays one piece
            q1 = min(r1, q0 + step)
            px = (q1 - q0) * W
            if cur and n + px > INPUT_PIXELS:
                batches.append(cur)
                cur, n = [], 0
            cur.append(((blk, a0, q0, q1, cov_blk, e), (i, q0, q1)))
            n += px
    if cur:
        batches.append(cur)
    return batches


def _forecast_items(items, dates, grid, loaded, plan: Plan, H, dev, batch_size, progress=None, timer=None):
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
    return list(zip(outs, valid_all))


def family_cache(blk, dates, cfg0: dict, H: int, lean: bool = False):
    """The classical family of a block from any origin, computed once (:class:`anchors.FamilyCache`; ``lean``: only
    the track record's errors from the earlier origins, not their family, for a block forecast from one origin)."""
    from ..data.anchors import FamilyCache

    return FamilyCache(blk, dates, int(cfg0.get("horizon", H)), cfg0.get("steps") or None, lean=lean)


def own_history(plan: Plan) -> bool:
    """Whether every member's inputs depend on the pixel's own history only (no neighbourhood, no coordinates):
    then any set of pixels can be forecast apart from the others, with the same result."""
    return all("neighbourhood" not in (g.cfg.get("encodings") or ()) and "spatial" not in
               (g.cfg.get("encodings") or ()) for g in plan.groups)


def forecast_items_on(items, needs, dates, grid, loaded, plan: Plan, H: int, dev, batch_size, progress=None,
                      timer=None):
    """:func:`forecast_items` on the pixels ``needs[i]`` ((r1 - r0, W) bool) of each item only, NaN (and not valid)
    elsewhere: the same forecasts there, for :func:`own_history` members (the caller checks). The pixels of an
    item are forecast as one row of their own; items that share a block, rows and ``needs`` object share it."""
    import dataclasses

    rows, made = [], {}
    for (blk, a0, r0, r1, cov_blk, e), need in zip(items, needs):
        key = (id(blk), r0, r1, id(need))
        if key not in made:
            ii, jj = np.nonzero(need)
            ib = ii + (r0 - a0)
            made[key] = (np.ascontiguousarray(blk[:, ib, jj][:, None, :]),
                         {n: v[ib, jj][None] for n, v in (cov_blk or {}).items()}, ii, jj)
        rows.append(made[key])
    res = [None] * len(items)
    for n in sorted({r[0].shape[2] for r in rows}):       # one grid width per call
        idx = [i for i, r in enumerate(rows) if r[0].shape[2] == n]
        g1 = None if grid is None else dataclasses.replace(grid, width=int(n))
        got = forecast_items([(rows[i][0], 0, 0, 1, rows[i][1], items[i][5]) for i in idx], dates, g1, loaded, plan,
                             H, dev, batch_size, progress, timer) if n else \
            [(np.zeros((len(loaded), H, 1, 0), np.float32), np.zeros((1, 0), bool))] * len(idx)   # nothing wanted
        for i, (out, valid) in zip(idx, got):
            _, _, ii, jj = rows[i]
            shape = needs[i].shape
            full = np.full((out.shape[0], out.shape[1]) + shape, np.nan, np.float32)
            full[:, :, ii, jj] = out[:, :, 0]
            va = np.zeros(shape, bool)
            va[ii, jj] = valid[0]
            res[i] = (full, va)
    return res


def medians_on_rows(blk, a0: int, cov_blk, origins, keep: np.ndarray, dates, grid, loaded, plan: Plan, L: int, dev,
                    batch_size) -> Dict[int, np.ndarray]:
    """The ensemble median from each origin over ``L`` epochs on the block pixels ``keep`` only ((rows of
    ``blk``, W) bool, or (rows of ``blk``,) for whole rows): ``{origin: (L, rows of blk, W)}``, NaN
    elsewhere (at least on the pixels outside ``keep``). Members whose inputs depend only on the pixel's
    own history (no neighbourhood, no coordinates) forecast the rows and columns that hold a chosen
    pixel as one compact block; otherwise one call per row (the neighbourhood needs the rows around)."""
    origins = [int(o) for o in origins]
    keep = np.asarray(keep, dtype=bool)
    if keep.ndim == 1:
        keep = np.repeat(keep[:, None], blk.shape[2], axis=1)
    idx = np.flatnonzero(keep.any(axis=1))
    cidx = np.flatnonzero(keep.any(axis=0))
    out = {o: np.full((L,) + blk.shape[1:], np.nan, np.float32) for o in origins}   # medians of float32 forecasts
    if not origins or idx.size == 0:
        return out
    compact = own_history(plan)
    items, where = [], []
    if compact and grid is not None and cidx.size < blk.shape[2]:
        import dataclasses

        grid = dataclasses.replace(grid, width=int(cidx.size))      # the compact block's own width
    if compact:
        sb = np.ascontiguousarray(blk[:, idx][:, :, cidx])
        sc = {n: v[idx][:, cidx] for n, v in (cov_blk or {}).items()}
        for o in origins:
            items.append((sb, 0, 0, sb.shape[1], sc, o))
            where.append((o, np.ix_(idx, cidx)))
    else:
        for o in origins:
            for i in idx:
                items.append((blk, a0, a0 + int(i), a0 + int(i) + 1, cov_blk, o))
                where.append((o, (np.array([i]),)))
    for (o, ii), (res, _) in zip(where, forecast_items(items, dates, grid, loaded, plan, L, dev, batch_size)):
        with np.errstate(all="ignore"):
            med = member_median(res)
        if len(ii) == 2:
            out[o][(slice(None),) + ii] = med
        else:
            out[o][:, ii[0]] = med
    return out


def members_covariates(configs, covariates, grid) -> Dict[str, np.ndarray]:
    """The covariate rasters the members need (their ``covariates`` coding), aligned to ``grid``;
    ``{}`` when none needs any. A missing one is a clear error naming the fix."""
    need = sorted({n for c in configs if "covariates" in (c.get("encodings") or ())
                   for n in c.get("covariate_names", [])})
    if not need:
        return {}
    from ..io.covariates import align_covariates

    cov = align_covariates(list(covariates or []), grid)
    missing = [n for n in need if n not in cov]
    if missing:
        raise DeformCastError("The models need the covariate(s) " + ", ".join(missing) + "; give them in "
                              "COVARIATES (files named like those used in training).")
    return cov
