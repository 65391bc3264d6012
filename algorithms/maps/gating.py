"""The skill gate applied to forecasts of the members (:mod:`skill_gate` holds the gate itself):
the local blend with the local classical forecast, then the per-class shift towards the gate's
classical reference. Used by ``predict`` and by the calibration, which both forecast gated."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..order_stats import member_median
from ..data.track_record import BLEND_RECORD_MEANS
from .gate_candidates import RECORD_STRIDE, gate_stride, local_blend, record_mask
from .member_forecasts import (BLOCK_PIXELS, Plan, family_cache, forecast_items, forecast_items_on, medians_on_rows,
                               own_history)

#: pixels that estimate the scene's mean sums of the blend weight (:func:`scene_blend_prior`) when ``predict``
#: forecasts a raster in more than one block: a raster of at most as many pixels is read whole for it, so its
#: blocks give the one-block result; a larger one in bands of rows spread over it. The estimate costs about
#: what the local blend of as many pixels costs (2 shared cores, a 320 x 400 raster: 17 s for 16 000 pixels in a
#: ``predict`` of 351 s, against 266 s without it; 116 s for 64 000; benchmarks/bench_blend_prior.py): a scene's
#: mean needs no more
PRIOR_PIXELS = 16_000
#: pixels per call of ``skill_gate.apply_gate`` (the members in float64 beside the candidates)
GATE_CHUNK = 8192
#: ``predict``'s blocks forecast the ensemble's record only on the rows their blend weights pool (:func:`_local_blend`,
#: session 27); False: on the whole halo, as before (the same forecast; tests/test_skill_gate.py compares them)
TRIM_PAST_MEDIANS = True


def forecast_gated(items, dates, grid, loaded, plan: Plan, H, dev, batch_size, progress=None, timer=None,
                   gate: Optional[dict] = None, caches: Optional[dict] = None, need: Optional[np.ndarray] = None):
    """:func:`member_forecasts.forecast_items`, then (``gate``) the skill gate: members shifted towards its
    classical reference forecast. The classical family of each block is computed once per origin for
    all items of that block (``caches``: ``id(blk) -> anchors.FamilyCache``, kept by the caller while
    its blocks live, e.g. the calibration's many origins of one block). ``need`` ((r1 - r0, W) bool, the same
    for every item): only these pixels are wanted (the calibration's scored ones); where the members read the
    pixel's own history alone the others are not forecast (NaN)."""
    timer = {} if timer is None else timer
    if need is not None and own_history(plan):
        res = forecast_items_on(items, [need] * len(items), dates, grid, loaded, plan, H, dev, batch_size, progress,
                                timer)
    else:
        res = forecast_items(items, dates, grid, loaded, plan, H, dev, batch_size, progress, timer)
    outs = [o for o, _ in res]
    valid_all = [v for _, v in res]
    if gate:
        from .skill_gate import apply_gate, candidates

        cfg0 = loaded[0].meta.get("data_config") or {}
        t0 = time.perf_counter()
        own = caches is None
        caches = {} if own else caches
        for it in items:
            if id(it[0]) not in caches:     # predict's blocks (one origin each): lean, no earlier origin's family
                caches[id(it[0])] = family_cache(it[0], dates, cfg0, H, lean=own)
        if gate.get("local_blend"):
            _local_blend(items, outs, valid_all, dates, grid, loaded, plan, dev, batch_size, cfg0, caches,
                         gate.get("blend_prior"), trim=own, stride=gate_stride(gate),
                         record_prior=gate.get("record_prior"), record_noise=gate.get("record_noise", "auto"))
        if own:     # nobody forecasts these blocks again: the track record's origins are done with
            caches.pop("_past_medians", None)
            for blk, *_, e in items:
                caches[id(blk)].release(keep=[e for b, *_, e in items if b is blk])
        for (blk, a0, r0, r1, _, e), out, va in zip(items, outs, valid_all):
            if not va.any():
                continue
            cands = candidates(blk, a0, r0, r1, int(e), dates, H, cfg0, va, caches[id(blk)],
                               record_prior=gate.get("record_prior"), record_noise=gate.get("record_noise", "auto"))
            last = blk[e, r0 - a0:r1 - a0][va].astype(np.float64)
            flat, ids = out.reshape(out.shape[0], out.shape[1], -1), np.flatnonzero(va.ravel())
            for j in range(0, ids.size, GATE_CHUNK):    # the gate is per pixel: in chunks, float64 copies stay small
                c = slice(j, j + GATE_CHUNK)
                flat[:, :, ids[c]] = apply_gate(flat[:, :, ids[c]].astype(np.float64), cands[:, :, c], last[c],
                                                gate).astype(np.float32)
            if not np.shares_memory(flat, out):         # a reshape that had to copy
                out[...] = flat.reshape(out.shape)
            del cands
        timer["gate"] = timer.get("gate", 0.0) + time.perf_counter() - t0
    return list(zip(outs, valid_all))


def gate_halo(gate) -> int:
    """Rows of halo the skill gate's local classical forecast needs around a block (0 without a gate)."""
    from ..data.anchors import LOCAL_HALO

    return LOCAL_HALO if gate else 0


def _local_blend(items, outs, valid_all, dates, grid, loaded, plan, dev, batch_size, cfg0, caches=None,
                 prior_sums=None, trim: bool = False, stride: int = RECORD_STRIDE, record_prior=None,
                 record_noise="auto") -> None:
    """Shift each item's members so that their median becomes the local blend of the skill gate
    (:func:`skill_gate.local_blend`): the ensemble's own forecasts from the earlier origins of the
    local track record are made here, on the record pixels of the whole block, halo rows included
    (:func:`skill_gate.record_mask`, :func:`member_forecasts.medians_on_rows`). ``trim``: nobody reads these
    medians again (``predict``'s blocks); with ``prior_sums`` they are then made only on the rows the items' blend
    weights pool."""
    from ..data.anchors import LOCAL_BOX, local_origins

    L = int(cfg0.get("horizon", outs[0].shape[1] if outs else 1))
    first = plan.max_window - 1
    blocks, keys, span = {}, [], {}
    for blk, a0, r0, r1, cov_blk, e in items:
        blocks[id(blk)] = (blk, a0, cov_blk)
        lo, hi = span.get(id(blk), (r0, r1))
        span[id(blk)] = (min(lo, r0), max(hi, r1))
        for o in local_origins(int(e), L):
            if o >= first and (id(blk), o) not in keys:
                keys.append((id(blk), o))
    # the ensemble medians from earlier origins, on the record pixels only (skill_gate.record_mask), kept
    # in ``caches`` so that forecasts from neighbouring origins of one block (the calibration's) share
    # the origins their track records have in common
    past = {} if caches is None else caches.setdefault("_past_medians", {})
    todo = [k for k in keys if k not in past]
    for b in {k[0] for k in todo}:
        blk, a0, cov_blk = blocks[b]
        keep = record_mask(a0, *blk.shape[1:], stride)
        if prior_sums is not None and trim and TRIM_PAST_MEDIANS:
            # the blend weight of rows r0..r1 pools the sums of the rows within half a box of them, and with the
            # scene's prior no other row's sums enter it: the ensemble's record is forecast there only (the outer
            # half of the halo serves the local classical forecast's own pooling; session 27)
            lo, hi = span[b]
            rows = np.arange(a0, a0 + blk.shape[1])
            keep &= ((rows >= lo - LOCAL_BOX // 2) & (rows < hi + LOCAL_BOX // 2))[:, None]
        got = medians_on_rows(blk, a0, cov_blk, [k[1] for k in todo if k[0] == b], keep,
                              dates, grid, loaded, plan, L, dev, batch_size)
        for o, med in got.items():
            past[(b, o)] = med
    for (blk, a0, r0, r1, _, e), out, va in zip(items, outs, valid_all):
        if not va.any():
            continue
        with np.errstate(all="ignore"):
            med = member_median(out)                                         # (H, r1 - r0, W)
        now = np.full((med.shape[0],) + blk.shape[1:], np.nan)
        now[:, r0 - a0:r1 - a0] = med
        loc = local_blend(blk, a0, r0, r1, int(e), dates, cfg0, now, lambda o, b=id(blk): past.get((b, o)),
                          (caches or {}).get(id(blk)), prior_sums=prior_sums, stride=stride,
                          record_prior=record_prior, record_noise=record_noise)
        shift = np.where(np.isfinite(loc) & va[None], loc - med, 0.0)
        out += shift[None].astype(out.dtype)


def scene_blend_prior(info, loaded, plan: Plan, configs, cov, e: int, H: int, dev, batch_size,
                      progress=None, stride: int = RECORD_STRIDE) -> dict:
    """The scene's priors of the local blend from origin ``e``, for ``predict`` to give every block of a raster
    forecast in more than one block (within one block the block's own are the scene's): ``blend_prior``, the mean
    sums ``[n_scene, d_scene]`` of the local blend's weight (:func:`track_record.blend_weight`, session 18), and
    ``record_prior``, the classes of trend evidence of the local classical forecast's track record with their mean
    records (:func:`pooling.class_prior`, session 35; None where it could not be estimated): the ensemble's medians
    from the track record's origins on the record pixels and the local classical forecast, as the blocks compute
    them, on :data:`PRIOR_PIXELS` pixels (the whole raster when it has no more). ``progress``: checked for
    Cancel after each band. ``stride``: the record lattice's (the gate's, :func:`skill_gate.gate_stride`)."""
    from ..data.pooling import EVIDENCE_CLASSES, class_prior
    from ..data import anchors as anc, dataset, flat_record
    from ..io import raster

    Hh, W = info.grid.shape
    cfg0 = configs[0]
    L = int(cfg0.get("horizon", H))
    halo = max([dataset.halo(c) for c in configs] + [anc.LOCAL_HALO])
    rows = max(1, BLOCK_PIXELS // max(1, W))
    if Hh * W <= PRIOR_PIXELS:
        spans = list(raster.row_blocks(Hh, rows))
    else:                                   # bands of rows spread over the raster
        band = max(1, min(rows, 2 * anc.LOCAL_HALO + 1))
        n = max(1, int(np.ceil(PRIOR_PIXELS / (band * W))))
        starts = np.linspace(0, max(0, Hh - band), n).round().astype(int)
        spans = sorted({(int(r), min(Hh, int(r) + band)) for r in starts})
    first = plan.max_window - 1
    origins = [o for o in anc.local_origins(int(e), L) if o >= first]
    num = den = 0.0
    npx = 0
    ev_all, ev_long = [], []
    bands = [(r0, r1, max(0, r0 - halo), min(Hh, r1 + halo)) for r0, r1 in spans]
    blocks = [raster.read_stack(info, rows=(a0, a1)) for _, _, a0, a1 in bands]     # at most PRIOR_PIXELS and halos
    noise = scene_record_noise(info, bands, int(e), L, cfg0, H, progress, blocks)
    for (r0, r1, a0, a1), blk in zip(bands, blocks):
        cov_blk = {k: v[a0:a1] for k, v in cov.items()}
        past = medians_on_rows(blk, a0, cov_blk, origins, record_mask(a0, a1 - a0, W, stride), info.dates, info.grid,
                               loaded, plan, L, dev, batch_size)
        now = np.full((H, a1 - a0, W), np.nan)          # the sums do not read the forecast itself
        ev = {}
        n_, d_ = local_blend(blk, a0, r0, r1, int(e), info.dates, cfg0, now, past.get,
                             family_cache(blk, info.dates, cfg0, H, lean=True), sums_only=True, stride=stride,
                             evidence=ev, record_noise=noise["noise"])
        core = slice((r0 - a0) * W, (r1 - a0) * W)
        if ev:
            ev_all.append((ev["pooled"][:, core], ev["s2"][:, core], ev["z"][core]))
            lg = ev.get("long")     # the longer record of quiet ground (data.flat_record, session 47)
            if lg is not None and lg[1] is not None:
                ev_long.append((lg[0][:, core], lg[1][:, core], ev["z"][core]))
        num += float(n_[core].sum())
        den += float(d_[core].sum())
        npx += int(np.count_nonzero(d_[core] > 0)) if BLEND_RECORD_MEANS else (r1 - r0) * W   # pixels with a record
        if progress is not None:
            progress.check()
    rec = None
    if ev_all:
        rec = class_prior(*(np.concatenate(x, axis=-1) for x in zip(*ev_all)), EVIDENCE_CLASSES)
        if rec is not None and ev_long:
            rec["long"] = flat_record.scene_prior(ev_long)
    if progress is not None:
        also = "" if rec is None else ", and each pixel's local track record towards its class of trend evidence"
        progress.log(f"Local blend: the ensemble's weight is shrunk towards the scene's{also}, estimated on {npx} "
                     f"pixels{' with a record' if BLEND_RECORD_MEANS else ''} ({len(spans)} band(s) of rows).")
    return {"blend_prior": [num / max(1, npx), den / max(1, npx)], "record_prior": rec,
            "record_noise": noise["noise"]}


def scene_record_noise(info, bands, e: int, L: int, cfg0: dict, H: int, progress=None, blocks=None) -> dict:
    """:func:`record_noise.noise_choice` for the scene from origin ``e``, on the core rows of ``bands`` (``(r0, r1, a0,
    a1)``: rows r0..r1 read with their halo a0..a1): the noise of each date from the complete series of all core
    rows, the sums of squared errors of the past local forecasts over the core pixels of every band; the same
    choice every block of the raster then takes (``record_noise``), as a raster of one block takes its own.
    ``blocks``: the bands' rows a0..a1 read already (at least up to ``e``; None: read here)."""
    from ..data import anchors as anc, record_noise as rn
    from ..io import raster

    if not rn.RECORD_NOISE:
        if progress is not None and rn.RECORD_MEAN:
            progress.log("Local classical forecast: each candidate's track record is its squared mean error over the "
                         "epochs scored from each earlier origin (the targets' noise enters it about 1/m).")
        return {"noise": 0.0, "sse": [0.0, 0.0], "target_noise": 0.0}
    d = np.asarray(info.dates, dtype="datetime64[D]")
    W = info.grid.shape[1]
    steps = cfg0.get("steps") or None
    if blocks is None:
        blocks = [raster.read_stack(info, bands=list(range(e + 1)), rows=(a0, a1)) for _, _, a0, a1 in bands]
    blocks = [b[:e + 1] for b in blocks]
    core = np.concatenate([b[:, r0 - a0:r1 - a0].reshape(e + 1, -1) for (r0, r1, a0, _), b in zip(bands, blocks)],
                          axis=1)
    s2 = {p: rn.target_noise(core[:p + 1], d[:p + 1], L) for p in [e] + [e - b for b in rn.noise_backs(L)]}
    del core
    sse = np.zeros(2)
    for (r0, r1, a0, a1), blk in zip(bands, blocks):
        score = np.zeros((a1 - a0, W), bool)
        score[r0 - a0:r1 - a0] = True
        sse += rn.noise_sse(blk, d[:e + 1], L, anc.local_forecast, steps,
                            family_cache(blk, d[:e + 1], cfg0, H, lean=True), score.ravel(), s2.get)
        if progress is not None:
            progress.check()
    chosen = rn.noise_chosen(sse)
    if progress is not None:
        progress.log(f"Local classical forecast: the targets' noise ({np.sqrt(s2[e]):.2f} mm) is "
                     + ("taken out of" if chosen else "left in")
                     + f" its candidates' track record (the scene's past forecasts: {sse[1] / max(sse[0], 1e-300):.3f}"
                     f" of the error without it).")
    return {"noise": s2[e] if chosen else 0.0, "sse": sse.tolist(), "target_noise": s2[e]}
