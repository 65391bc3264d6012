"""The skill gate's classical candidates and the local blend (:mod:`skill_gate` holds the gate itself, which
re-exports these names): every classical forecast the gate weighs from an origin (the family, the members' adaptive
anchor, the ``local`` forecast), the lattice of pixels the ensemble's local track record is scored on, and the
ensemble blended per pixel with the ``local`` classical forecast by their recent track records."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..data import anchors as anc
from ..data import dataset
from ..io import raster

ANCHOR = "anchor"   # the members' adaptive combination (their own classical anchor)
LOCAL = "local"     # the family weighted by each neighbourhood's recent track record (anchors.local_forecast)


def _history(blk: np.ndarray, e: int, cache: Optional[anc.FamilyCache]) -> np.ndarray:
    """The block's history up to ``e`` in float64, (e + 1, rows, cols): a view of the cache's copy when there is one."""
    if cache is not None and cache.flat.shape == (blk.shape[0], blk.shape[1] * blk.shape[2]):
        return cache.flat[: e + 1].reshape((e + 1,) + blk.shape[1:])
    return np.asarray(blk[: e + 1], dtype=np.float64)


def candidates(blk: np.ndarray, a0: int, r0: int, r1: int, e: int, dates, H: int, config: dict,
               valid: np.ndarray, cache: Optional[anc.FamilyCache] = None, record_prior=None,
               record_noise="auto") -> np.ndarray:
    """Every classical candidate from origin ``e`` for the pixels ``valid`` (bool (r1 - r0, W)) of rows
    r0..r1 of a block read from row ``a0`` (with ``anchors.LOCAL_HALO`` rows of halo where the raster
    has them): float64 ``(len(CANDIDATES), H, n)``, rows in :data:`CANDIDATES` order (the family, the
    members' own adaptive anchor, the local track-record combination). ``record_prior``: the scene's classes of the
    local track record (``anchors.local_forecast``; None: the block's). ``record_noise``: the noise variance taken out
    of that record (``anchors.local_forecast``; ``"auto"``: the block's choice)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    full_h = int(config.get("horizon", H))
    td = dataset.target_dates(d, int(e), full_h)
    steps = config.get("steps") or None
    hist_blk = _history(blk, e, cache)
    memo = None if cache is None else cache.local       # the local blend's local forecast, when it ran first
    W = blk.shape[2]
    idx = (r0 - a0) * W + np.flatnonzero(np.asarray(valid).ravel())     # the pixels asked for, in the block
    C = len(anc.FAMILY)
    out = np.empty((C + 2, full_h, idx.size))        # filled row by row: no copy of the family
    in_stack = cache is not None and e + full_h < d.size     # targets inside the stack: the cache has the family
    key = anc.memo_key(e, td, full_h)
    if not in_stack and memo is not None and key in memo:
        # the blend left its local forecast: the family of the pixels asked for alone, a chunk at a time, into the
        # candidates (session 27; for the whole block it was 350 MB at a 30-epoch horizon, the largest array of
        # predict's blocks)
        for px, fam in anc.family_chunks(hist_blk.reshape(e + 1, -1)[:, idx], d[: e + 1], td, steps):
            out[:C, :, px] = fam
        local = memo.pop(key)["local"]
    else:
        if in_stack:
            fam_all = cache(e)
        else:   # the family for the whole block: its halo rows feed the local track record
            fam_all = anc.family_forecasts(hist_blk.reshape(e + 1, -1), d[: e + 1], td, steps)
        local = anc.local_forecast(hist_blk, d[: e + 1], td, full_h, steps, family=fam_all, past_family=cache,
                                   memo=memo, record_prior=record_prior, record_noise=record_noise)
        for c in range(C):
            out[c] = fam_all[c][:, idx]
    aw = config.get("anchor_weights") if config.get("baseline") == "adaptive" else None
    out[C] = anc.combine(out[:C], aw) if aw is not None else np.nan
    out[C + 1] = local.reshape(full_h, -1)[:, idx]
    return out[:, :H]


#: the ensemble's local track record is scored on a lattice only: every ``stride``-th row and column of the raster
#: (absolute indices divisible by it). The record is pooled over a neighbourhood (``anchors.LOCAL_BOX``) anyway, and
#: each earlier origin costs a forecast of every member (4 origins: 4 forecasts, the largest cost of ``predict``).
#: RECORD_STRIDE 3 keeps 25 of the 225 pixels of the 15 x 15 neighbourhood: every third row (sessions 4-5) and the
#: 3 x 3 lattice (session 6) delivered the same forecast to within 0.004 of the best classical RMSE on 25 benchmark
#: seeds (benchmarks/gate_replay.py, docs/skill.md). It is the stride of a gate fitted before session 30 (no
#: ``record_stride`` in its manifest) and of a stack of scattered points.
RECORD_STRIDE = 3
#: the stride on a dense stack (session 30): 16 of the 225 pixels. Replayed on 22 scenes of both generators it
#: delivers what the 3 x 3 lattice does (mean ratio to the best classical forecast 1.032 against 1.030, 8 scenes
#: worse and 9 better), at 0.56 x its forecasts from the earlier origins; on the same scenes as scattered points
#: (8 % of the pixels) it lost (median 0.981 -> 1.026), so scattered points keep RECORD_STRIDE
DENSE_RECORD_STRIDE = 4
#: the share of the raster's pixels with a value at the last acquisition from which a stack counts as dense
DENSE_FRACTION = 0.5


def record_stride_for(info) -> int:
    """The record lattice's stride for a stack (a :class:`raster.StackInfo`): :data:`DENSE_RECORD_STRIDE` where at
    least :data:`DENSE_FRACTION` of the pixels have a value at the last acquisition, else :data:`RECORD_STRIDE`. The
    gate fitted on the stack keeps it (``record_stride``), and ``predict`` uses the gate's (:func:`gate_stride`)."""
    last = raster.read_stack(info, bands=[info.n_epochs - 1])
    return DENSE_RECORD_STRIDE if float(np.isfinite(last).mean()) >= DENSE_FRACTION else RECORD_STRIDE


def gate_stride(gate: Optional[dict]) -> int:
    """The record lattice's stride of a fitted gate (:data:`RECORD_STRIDE` for a gate from before session 30)."""
    return int((gate or {}).get("record_stride") or RECORD_STRIDE)


def record_mask(a0: int, n_rows: int, n_cols: int, stride: int = RECORD_STRIDE) -> np.ndarray:
    """(n_rows, n_cols) bool: the pixels of rows ``a0 .. a0 + n_rows`` (full raster width) on which the
    ensemble's local track record is scored (every ``stride``-th row and column)."""
    rows = (np.arange(int(a0), int(a0) + int(n_rows)) % int(stride)) == 0
    cols = (np.arange(int(n_cols)) % int(stride)) == 0
    return rows[:, None] & cols[None, :]


def local_blend(blk: np.ndarray, a0: int, r0: int, r1: int, e: int, dates, config: dict, now: np.ndarray,
                past, cache: Optional[anc.FamilyCache] = None, prior_sums=None, sums_only: bool = False,
                stride: int = RECORD_STRIDE, record_prior=None, evidence: Optional[dict] = None,
                record_noise="auto"):
    """The ensemble blended per pixel with the local classical forecast by their recent track records
    around it (:func:`anchors.local_forecast` with ``ensemble``), rows r0..r1: (H, r1 - r0, W).

    ``now`` (H, a1 - a0, W) the ensemble median from origin ``e`` (NaN where none), ``past(o)`` the
    ensemble median from an earlier origin ``o`` over the models' horizon, (horizon, a1 - a0, W), or
    None; only its pixels :func:`record_mask` (``stride``) are used. Needs the block's halo rows
    (``anchors.LOCAL_HALO``) where the raster has them. ``prior_sums``: the scene's mean sums of the blend
    weight (:func:`gating.scene_blend_prior`; None: the block's). ``sums_only``: the blend weight's per-pixel
    sums ``(num, den)`` over the whole block, (a1 - a0) * W each, instead of the blend. ``record_prior``,
    ``evidence``, ``record_noise``: as :func:`anchors.local_forecast` takes them (the scene's classes of the local
    track record; a dict for the block's unshrunk records; the noise taken out of that record, ``"auto"``: the
    block's choice).
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    H = now.shape[0]
    L = int(config.get("horizon", H))
    td = dataset.target_dates(d, int(e), L)[:H]
    n = blk.shape[1] * blk.shape[2]
    fam = cache(e)[:, :H] if cache is not None and e + L < d.size else None
    keep = record_mask(a0, blk.shape[1], blk.shape[2], stride)

    def past_on_record_rows(o):
        p = past(o)
        if p is None:
            return None
        p = np.array(p[:L], dtype=np.float64)
        p[:, ~keep] = np.nan          # the same pixels whatever the caller forecast (fit and predict agree)
        return p.reshape(L, n)

    res = anc.local_forecast(_history(blk, e, cache), d[: e + 1], td, L,
                             config.get("steps") or None, family=fam, past_family=cache,
                             ensemble=(now.reshape(H, n), past_on_record_rows), prior_sums=prior_sums,
                             sums_only=sums_only, memo=None if cache is None else cache.local,
                             record_prior=record_prior, evidence=evidence, record_noise=record_noise)
    return res if sums_only else res[0][:, r0 - a0:r1 - a0]


#: the classical candidates of the gate, in the row order of :func:`candidates`
CANDIDATES = tuple(anc.FAMILY_NAMES) + (ANCHOR, LOCAL)
