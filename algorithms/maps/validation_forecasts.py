"""The forecasts the calibration is fitted on (:mod:`calibration`): the delivered forecast from each rolling validation
origin on sampled rows, against what was observed, with its evidence.

Reading (issue 17): whole contiguous row spans aligned to the file's block height, never scattered rows. Where
``predict`` runs its blocks in local processes (:mod:`distributed`), each span's origins are split between them
(session 26): the calibration ran in the calling process while the processes waited, 14 s of a 140 s ``predict``
of a million pixels. The parts come back in span and origin order, so the collection is the one-process one.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np

from ..data import dataset
from ..io import raster
from .evidence import evidence
from ..order_stats import member_median
from ..progress import Progress, silent

#: at most this many rolling origins (evenly spread) calibrate the spread: each costs a full gated
#: forecast (with the local blend's earlier origins) of the sampled rows
MAX_ORIGINS = 8
#: rows scored per span when the calibration samples the raster (the pixel budget is spread over spans)
SPAN_ROWS = 16


# ---------------------------------------------------------------------------------------------
# reading: contiguous, block-aligned row spans
# ---------------------------------------------------------------------------------------------
def block_height(path: str) -> int:
    """Rows per block of the file's first band (1 when unknown)."""
    gdal = raster._gdal()
    ds = gdal.Open(str(path))
    try:
        return max(1, int(ds.GetRasterBand(1).GetBlockSize()[1]))
    except (AttributeError, RuntimeError):
        return 1


def read_spans(height: int, width: int, block_h: int, halo: int, max_pixels: int,
               chunk_pixels: int) -> List[Tuple[int, int, int, int]]:
    """``(a0, a1, r0, r1)``: read rows a0..a1 (aligned to ``block_h``), score rows r0..r1 inside.

    When about ``max_pixels`` pixels need every row, the raster is cut into consecutive spans of
    about ``chunk_pixels`` pixels (a multiple of ``block_h`` rows) read with their halo, extended to
    block boundaries. Otherwise spans of SPAN_ROWS rows are spread evenly over the raster and read
    with their halo, extended to whole blocks (the caller forecasts only the span and its halo: the
    read follows the file's layout, the cost follows the pixel budget), unless those spans would score every
    row anyway (session 18).
    """
    bh = max(1, min(int(block_h), int(height)))
    down = lambda r: (r // bh) * bh                                     # noqa: E731
    up = lambda r: min(height, -(-r // bh) * bh)                        # noqa: E731
    rows_needed = max(1, math.ceil(max_pixels / max(1, width)))
    step = max(bh, (max(1, chunk_pixels // max(1, width)) // bh) * bh)
    whole = [(down(max(0, r0 - halo)), up(min(height, r0 + step + halo)), r0, min(height, r0 + step))
             for r0 in range(0, height, step)]
    if rows_needed >= height:
        return whole
    inner = SPAN_ROWS                                                   # scored rows per span
    n = max(1, min(height // max(1, inner), math.ceil(rows_needed / inner)))
    starts = np.linspace(0, max(0, height - inner), n).round().astype(int)
    out = []
    for r0 in sorted(set(starts.tolist())):
        r1 = min(height, r0 + inner)
        out.append((down(max(0, r0 - halo)), up(min(height, r1 + halo)), int(r0), int(r1)))
    # spread spans that score every row anyway read and pool their halos again and again (the local blend's
    # record around each span): the consecutive spans score the same rows for less
    return whole if sum(r1 - r0 for _, _, r0, r1 in out) >= height else out


# ---------------------------------------------------------------------------------------------
# collection on the validation origins
# ---------------------------------------------------------------------------------------------
def origins_for(configs, info, H: int, window: int, e: int) -> List[int]:
    """The rolling validation origins (skill_gate's) whose targets do not pass the forecast start."""
    from .skill_gate import rolling_origins

    oo = [o for o in rolling_origins(configs, info.n_epochs, H, window, info.dates) if o + H <= e]
    if len(oo) > MAX_ORIGINS:
        oo = [oo[i] for i in np.linspace(0, len(oo) - 1, MAX_ORIGINS).round().astype(int)]
    return oo


def collect(info, loaded, configs, cov, e: int, H: int, dev: str, batch_size: int, gate=None,
            max_pixels: int = 2000, progress: Optional[Progress] = None, seasonal: bool = False,
            remote: Optional[tuple] = None, meanwhile=None) -> Optional[dict]:
    """Delivered forecasts from the validation origins against the observations, with their evidence:
    ``{"err" (H, N), "feats" (F, H, N), "origin" (N,), "raw_in" (H, N), "origins": [...]}`` or None.
    ``remote``: ``(pool, job)``, a started :class:`distributed.LocalPool` and what its processes need to load the
    members (``predict``'s block job): the spans' origins are then forecast there, and ``meanwhile()`` runs here
    while they do (:func:`distributed.run_blocks`)."""
    from .gating import gate_halo
    from .member_forecasts import BLOCK_PIXELS, Plan
    from .skill_gate import _score_mask

    progress = progress or silent()
    win = max(int(m.meta["window"]) for m in loaded)
    origins = origins_for(configs, info, H, win, e)
    if not origins:
        return None
    mask = _score_mask(configs, info.grid.shape)
    Hh, W = info.grid.shape
    halo = max([dataset.halo(c) for c in configs] + [gate_halo(gate)])
    spans = read_spans(Hh, W, block_height(info.source), halo, max_pixels * (5 if mask is not None else 1),
                       BLOCK_PIXELS)
    kw = dict(H=H, gate=gate, seasonal=seasonal, halo=halo, mask=mask)
    parts = _remote_parts(remote, spans, origins, cov, kw, progress, meanwhile) if remote else None
    if parts is None:
        parts, read, plan = [], (None, None), Plan(loaded, configs)
        for i, (b0, b1, r0, r1) in enumerate(spans):
            if read[0] != (b0, b1):       # spans inside one block of the file share its read
                read = ((b0, b1), raster.read_stack(info, rows=(b0, b1)))
            parts += span_parts(info, loaded, configs, read[1], b0, r0, r1, origins, {k: v[b0:b1] for k, v in cov.items()},
                                dev, batch_size, plan=plan, progress=progress, **kw)
            progress.set((i + 1) / len(spans))
    if not parts:
        return None
    return {"err": np.concatenate([p[0] for p in parts], axis=1), "feats": np.concatenate([p[2] for p in parts], axis=2),
            "origin": np.concatenate([np.full(p[0].shape[1], p[3]) for p in parts]),
            "raw_in": np.concatenate([p[1] for p in parts], axis=1), "origins": origins}


def span_parts(info, loaded, configs, read, b0: int, r0: int, r1: int, origins, cov_rows, dev: str, batch_size: int,
               H: int, gate, seasonal: bool, halo: int, mask: Optional[np.ndarray], plan=None,
               progress: Optional[Progress] = None) -> List[tuple]:
    """One span's part of :func:`collect`: ``[(err (H, n), raw_in (H, n), feats (F, H, n), origin)]`` for each of
    ``origins`` with scored pixels, in their order. ``read`` and ``cov_rows`` hold the file's and the covariates'
    rows from ``b0``; ``mask`` the scored pixels of the grid (``skill_gate._score_mask``, None: all); ``plan`` the
    members' :class:`member_forecasts.Plan` (made here when None)."""
    from .gating import forecast_gated
    from .member_forecasts import BLOCK_PIXELS, Plan, family_cache
    from .skill_gate import scored

    W = info.grid.shape[1]
    plan = Plan(loaded, configs) if plan is None else plan
    cfg0 = configs[0]
    L, steps = int(cfg0.get("horizon", H)), cfg0.get("steps") or None
    b1 = b0 + read.shape[1]
    a0, a1 = max(b0, r0 - halo), min(b1, r1 + halo)
    blk = read[:, a0 - b0:a1 - b0]                  # the span and its halo: what gets forecast
    cov_blk = {k: v[a0 - b0:a1 - b0] for k, v in cov_rows.items()}
    # origins forecast together: up to a block of pixels, halo rows counted (the families and the local track
    # record are fitted on them too). Counting the core rows only put eight origins of a 10-row span and its 40
    # halo rows into one call: a 2.4 GB peak on a 1000-pixel-wide raster (session 25); two blocks' worth: 2.1 GB
    # and 14.5 s; one: 1.5 GB and 12 s, the same calibration (session 26, docs/benchmarks.md)
    per_call = max(1, BLOCK_PIXELS // max(1, (a1 - a0) * W))
    caches = {id(blk): family_cache(blk, info.dates, cfg0, H)}
    out = []
    for j in range(0, len(origins), per_call):
        _forget_before(caches, id(blk), origins[j:], L)
        chunk = [(blk, a0, r0, r1, cov_blk, o) for o in origins[j:j + per_call]]
        for (_, _, _, _, _, o), (fc, valid) in zip(chunk, forecast_gated(
                chunk, info.dates, info.grid, loaded, plan, H, dev, batch_size, gate=gate, caches=caches,
                need=None if mask is None else mask[r0:r1])):
            obs, ok = scored(blk, a0, r0, r1, o, H, valid, mask)
            if not ok.any():
                continue
            mem = fc[:, :, ok].astype(np.float64)
            y = obs[:, ok].astype(np.float64)
            with np.errstate(all="ignore"):
                p10, p90 = np.percentile(mem, [10, 90], axis=0)
            out.append((y - member_median(mem), (y >= p10) & (y <= p90),
                        evidence(blk, a0, r0, r1, o, info.dates, fc, ok, L, steps, caches[id(blk)], seasonal=seasonal),
                        int(o)))
        if progress is not None:
            progress.check()
    return out


def _remote_parts(remote, spans, origins, cov, kw, progress, meanwhile=None) -> Optional[List[tuple]]:
    """:func:`span_parts` of every span on the local processes, each span's origins split between them (contiguous
    runs, so neighbouring origins still share their cached families), the parts in span and origin order; None
    where the processes could not start or one died (the caller then collects in this process)."""
    from . import distributed

    pool, job = remote
    runs = [list(r) for r in np.array_split(np.asarray(origins), min(pool.n, len(origins))) if r.size]
    tasks = [(job, b0, b1, r0, r1, [int(o) for o in run], {k: v[b0:b1] for k, v in cov.items()}, kw)
             for b0, b1, r0, r1 in spans for run in runs]
    got: List[list] = [None] * len(tasks)
    progress.log(f"Calibration: {len(origins)} validation origins on {len(spans)} span(s) of rows, forecast in "
                 f"{pool.n} local processes.")
    try:
        distributed.run_blocks(pool, remote_span, tasks, lambda i, res: got.__setitem__(i, res), progress,
                               what="calibration span", meanwhile=meanwhile)
    except distributed.PoolBroken as err:
        progress.log(f"{err} Calibrating in this process.")
        return None
    return [p for res in got for p in res]


def remote_span(job: dict, b0: int, b1: int, r0: int, r1: int, origins, cov_rows: dict, kw: dict) -> List[tuple]:
    """:func:`span_parts` in a local process: the members from its cache, the stack from its path."""
    from . import distributed
    from ..learn.runtime import inference_threads

    info = distributed.stack_info(job["stack"])
    loaded, _, dev = distributed.worker_members(job["model_folder"], job["members"], job["device"], info, job["e"])
    configs = [m.meta.get("data_config") or {} for m in loaded]
    with inference_threads():
        return span_parts(info, loaded, configs, raster.read_stack(info, rows=(b0, b1)), b0, r0, r1, origins, cov_rows,
                          dev, job["batch_size"], **kw)


def _forget_before(caches: dict, key: int, rest, lead: int) -> None:
    """Drop from a span's caches the classical families and the ensemble's earlier medians that no origin still to
    come (``rest``) needs (its own and its local track records' origins, :func:`anchors.local_origins`,
    :func:`anchors.candidate_origins`): they were
    kept for the whole span. A small saving (256 x 1000 pixels in one process: 2.76 -> 2.69 GB; the calibration's
    peak was its origins forecast together, see ``per_call`` in :func:`span_parts`, session 25)."""
    from ..data.anchors import candidate_origins, local_origins

    keep = {int(o) for o in rest} | {p for o in rest
                                     for p in local_origins(int(o), lead) + candidate_origins(int(o), lead)}
    caches[key].release(keep=keep)
    past = caches.get("_past_medians")
    if past:
        for k in [k for k in past if k[0] == key and k[1] not in keep]:
            del past[k]
