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

Outputs (docs/interface.md):
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

from ..data import dataset
from ..data.series import MAX_WINDOW_GAP
from . import distributed
from ..models import modelio
from ..io import raster, styles
from ..errors import DeformCastError, warn
from ..learn.runtime import inference_threads, numeric_session
from ..order_stats import member_median
from .gate_candidates import gate_stride
from .gating import forecast_gated, gate_halo, scene_blend_prior
from ..data.track_record import BLEND_PRIOR
from .member_forecasts import BLOCK_PIXELS, Plan, load_members, member_selection, members_covariates  # noqa: F401 - load_members: part of the API
from ..progress import Progress, silent


def member_band_names(n_members: int, dates: Sequence) -> List[str]:
    return [f"member{k} {raster.iso(d)}" for k in range(n_members) for d in dates]


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


@numeric_session
def predict_ensemble(stack_path: str, model_folder: str, out_median: str, out_quantiles: Optional[str] = None,
                     out_members: Optional[str] = None, horizon: Optional[int] = None, members=None,
                     quantiles: Sequence[float] = (10, 50, 90), dates=None, covariates: Optional[Sequence[str]] = None,
                     end_date=None, block_rows: int = 0, device: str = "auto", batch_size: int = 2048,
                     calibrate: bool = True, progress: Optional[Progress] = None, gate: bool = True,
                     calibration: Optional[str] = None, scheduler: Optional[str] = None,
                     seasonal_noise: Optional[bool] = None) -> Dict[str, object]:
    """Forecast with every member, write median / quantiles / members rasters; return a summary:
    ``median_path``, ``quantiles_path``, ``members_path`` (None where not written), ``members``,
    ``forecast_dates``, ``end_date``, ``valid_pixels``, ``device``, ``calibration``, ``gate``, ``timings_s``.

    ``block_rows`` 0 (default) = as many rows as make about ``BLOCK_PIXELS`` pixels, so the memory a
    block needs is the same whatever the raster's width (and area). The summary's ``timings_s`` gives
    the seconds spent per phase (calibration, read, inputs, inference, dress_median, quantiles, write,
    total; inputs and inference of the calibration are inside its own figure).

    ``gate``: apply the skill gate stored in the folder's manifest (:mod:`skill_gate`), when there is
    one; False gives the raw ensemble (the rolling-origin evaluation compares both).

    ``calibration``: ``dressing`` or ``conformal`` (:mod:`calibration`; default
    :data:`calibration.DEFAULT_METHOD`), used when ``calibrate``.

    ``seasonal_noise``: the calibration adds the acquisition noise by season of the target date
    (:mod:`evidence`; the band then narrows again after a summer); None:
    :data:`calibration.DEFAULT_SEASONAL`.

    ``scheduler``: a Dask scheduler address (``tcp://host:port``; :mod:`distributed`): the blocks are
    forecast on its workers (the calibration is fitted here first) and written here in block order, so
    the outputs are those of one process. Empty or None: everything runs in this process.
    """
    distributed.refuse_in_bootstrap()
    client = distributed.connect(scheduler, progress)
    try:
        with inference_threads():
            return _predict_ensemble(stack_path, model_folder, out_median, out_quantiles, out_members, horizon,
                                     members, quantiles, dates, covariates, end_date, block_rows, device, batch_size,
                                     calibrate, progress, gate, calibration, client, seasonal_noise)
    finally:
        if client is not None:
            client.close()


def _block(ctx: dict, loaded, plan, r0: int, r1: int, a0: int, a1: int, cov_blk: dict, progress=None) -> dict:
    """One row block ``r0:r1`` (read with its halo ``a0:a1``): the median, the quantiles and the members
    to write, with the pixel count, a sample of the last median epoch and the seconds per phase. The
    same code runs in this process and on a Dask worker (:func:`_remote_block`)."""
    from . import calibration as calib

    timer = {"read": 0.0, "inputs": 0.0, "inference": 0.0, "dress_median": 0.0, "quantiles": 0.0}
    t0 = time.perf_counter()
    # all epochs: in a backtest the residual target's classical forecast needs the real dates of
    # the forecast epochs (forecast_inputs reads values only up to end_index)
    blk = raster.read_stack(ctx.get("info") or distributed.stack_info(ctx["stack"]), rows=(a0, a1))
    timer["read"] += time.perf_counter() - t0
    dates, e, H, model, M = ctx["dates"], ctx["e"], ctx["H"], ctx["model"], len(loaded)
    ((out, valid_all),) = forecast_gated([(blk, a0, r0, r1, cov_blk, e)], dates, ctx["grid"], loaded, plan, H,
                                         ctx["dev"], ctx["batch_size"], progress, timer, gate=ctx["gate"])
    t0 = time.perf_counter()
    cfg0 = loaded[0].meta.get("data_config") or {}
    centre = None
    if model is not None and valid_all.any():   # the members' median, once for the evidence and the paths
        with np.errstate(all="ignore"):        # (in float64 as the evidence takes it; in float32 it is the
            centre = member_median(out[:, :, valid_all].astype(np.float64))   # float32 median's bits)
    feats = calib.evidence(blk, a0, r0, r1, e, dates, out, valid_all, cfg0.get("horizon", H), cfg0.get("steps"),
                           seasonal=calib.is_seasonal(model), centre=centre) if model is not None else None
    gaps = unforecast_counts(blk[:e + 1, r0 - a0:r1 - a0], valid_all)
    del blk
    with np.errstate(all="ignore"):
        if model is not None:
            med = calib.apply(model, out, valid_all, feats,   # coherent calibrated paths, median kept
                              None if centre is None else centre.astype(np.float32))
        else:
            med = member_median(out) if M > 1 else out[0]
    t1 = time.perf_counter()
    timer["dress_median"] += t1 - t0
    qv = None
    if ctx["want_q"]:
        qs = ctx["qs"]
        with np.errstate(all="ignore"):
            qv = np.percentile(out[:, -1], qs, axis=0).astype(np.float32) if valid_all.any() else \
                np.full((len(qs), r1 - r0, out.shape[-1]), np.nan, np.float32)
        qv[:, ~valid_all] = np.nan
    timer["quantiles"] += time.perf_counter() - t1
    return {"med": med, "q": qv, "members": out.reshape(M * H, r1 - r0, -1) if ctx["want_m"] else None,
            "n_valid": int(valid_all.sum()), "sample": med[-1][valid_all][:5000], "timer": timer, "gaps": gaps}


def _wants_prior(gate, n_blocks: int) -> bool:
    """Whether the blocks' local blend is shrunk towards the scene's (a gate with the local blend, more than one
    block; :func:`gating.scene_blend_prior`)."""
    return bool(gate and gate.get("local_blend") and n_blocks > 1 and BLEND_PRIOR > 0)


def unforecast_counts(hist, valid) -> Dict[str, int]:
    """Pixels of a block with data up to the origin (``hist`` (e + 1, rows, cols)) that got no forecast
    (``valid`` False: a gap in the members' input window): ``{"data", "none", "last_missing"}``, the last
    those without a value at the origin itself."""
    has = np.isfinite(hist).any(axis=0)
    none = has & ~np.asarray(valid, dtype=bool)
    return {"data": int(has.sum()), "none": int(none.sum()), "last_missing": int((none & ~np.isfinite(hist[-1])).sum())}


#: the share of the pixels with data that lack the origin's value above which the warning suggests an earlier origin
EARLIER_ORIGIN_SHARE = 0.2


def unforecast_message(gaps: Dict[str, int], window: int, origin, previous=None) -> str:
    """The warning for pixels with data but no forecast ('' when there are none): how many, why, the fix.
    ``previous``: the acquisition before ``origin``, suggested as ``END_DATE`` when more than
    :data:`EARLIER_ORIGIN_SHARE` of the pixels lack the origin's value (a last acquisition with a large hole)."""
    n, k = int(gaps.get("data", 0)), int(gaps.get("none", 0))
    if k == 0 or n == 0:
        return ""
    last = int(gaps.get("last_missing", 0))
    earlier = (f" {100.0 * last / n:.0f} % of the pixels lack the value of {origin}: forecasting from {previous} "
               f"(predict END_DATE={previous}) may cover them." if previous is not None
               and last > EARLIER_ORIGIN_SHARE * n else "")
    return (f"{k} of the {n} pixels with data ({100.0 * k / n:.1f} %) have no forecast: the networks read the last "
            f"{int(window)} acquisitions up to {origin}, where gaps of up to {MAX_WINDOW_GAP} acquisitions are "
            f"interpolated, and these pixels have no value at {origin} itself ({last} of them) or a longer gap there. "
            "Their maps stay empty. A record that ends before the last acquisition cannot be forecast from it; "
            "longer gaps can be bridged first (the main job's REGULAR_STEP or import_timeseries with "
            "REGULARISE=true interpolate gaps of up to 3 steps)." + earlier)


def _remote_block(job: dict, r0: int, r1: int, a0: int, a1: int, cov_blk: dict) -> dict:
    """:func:`_block` on a Dask worker: the members come from the worker's cache, the stack from its path."""
    info = distributed.stack_info(job["stack"])
    loaded, plan, dev = distributed.worker_members(job["model_folder"], job["members"], job["device"], info, job["e"])
    ctx = dict(job, info=info, dates=info.dates, grid=info.grid, dev=dev)
    with inference_threads():
        return _block(ctx, loaded, plan, r0, r1, a0, a1, cov_blk)


def _block_rows(block_rows, width: int) -> int:
    """The rows of a block: ``block_rows`` where given (> 0), else as many as make about ``BLOCK_PIXELS`` pixels."""
    if not block_rows or int(block_rows) <= 0:
        return max(1, BLOCK_PIXELS // max(1, int(width)))
    return int(block_rows)


def _early_pool(stack_path, dev: Optional[str], block_rows, client, progress):
    """The local processes for a stack, started from its size alone (:func:`raster.grid_shape`), before the stack is
    opened and checked; None where the device is not known yet (``dev`` None: :func:`runtime.known_device`), on a
    Dask ``client``, where GDAL cannot open the file (:func:`raster.open_stack` then says why) or where the stack is
    too small for them (:func:`distributed.local_workers`)."""
    if client is not None or dev is None:
        return None
    shape = raster.grid_shape(stack_path)
    if shape is None:
        return None
    Hh, W = shape
    n = distributed.local_workers(Hh * W, -(-Hh // _block_rows(block_rows, W)), dev)
    return distributed.start_local(n, progress) if n else None


def _prefetch_weights(info, model_folder, members, e: int) -> None:
    """The stack's date weights for the members (:func:`date_weights.prefetch`, their splits read from their
    model.json), estimated here before the job for the local processes or Dask workers is made, so they take them
    with the job instead of each reading the whole stack again (session 29). Where this fails,
    :func:`load_members` estimates them itself and says why where it cannot."""
    from ..data import date_weights

    try:
        paths = member_selection(model_folder, members)
        date_weights.prefetch(info, [(modelio.read_meta(p).get("data_config") or {}) for p in paths], e)
    except DeformCastError:
        pass


def _predict_ensemble(stack_path, model_folder, out_median, out_quantiles, out_members, horizon, members, quantiles,
                      dates, covariates, end_date, block_rows, device, batch_size, calibrate, progress, use_gate=True,
                      method=None, client=None, seasonal=None):
    from . import calibration as calib

    t_start = time.perf_counter()
    timer = {"read": 0.0, "inputs": 0.0, "inference": 0.0, "dress_median": 0.0, "quantiles": 0.0, "write": 0.0}
    progress = progress or silent()
    from ..learn.runtime import known_device, resolve_device

    # the local processes start before anything else where the device is known without torch: they import torch and
    # load the members while this process imports torch, converts a slow file layout and checks the stack (session 28;
    # session 27 started them after those, 1.5 s into a forecast of 1 M pixels, 5 s where the layout was converted)
    pool = _early_pool(stack_path, known_device(device), block_rows, client, progress)
    try:
        # the log says when a slow file layout is converted (once) or read from its copy; Cancel stops a conversion
        info = raster.open_stack(stack_path, dates, progress=progress.sub(0.0, 0.02))
        raster.refuse_constant(info)
        dev = resolve_device(device)
        e = _end_index(info.dates, end_date)
        empty = raster.empty_origin(info, e)
        if empty:
            raise DeformCastError(empty)
        qs = [float(q) for q in quantiles]
        if any(not 0 <= q <= 100 for q in qs):
            raise DeformCastError("QUANTILES must be percentages between 0 and 100, e.g. 10,50,90.")
        method = method or calib.DEFAULT_METHOD
        if method not in calib.METHODS:
            raise DeformCastError(f"CALIBRATION '{method}': valid values are {', '.join(calib.METHODS)}.")
        Hh, W = info.grid.shape
        block_rows = _block_rows(block_rows, W)
        n_blocks = -(-Hh // block_rows)
        n_local = distributed.local_workers(Hh * W, n_blocks, dev) if client is None else 0
        if pool is not None and pool.n != n_local:      # not what the stack and the device call for after all
            pool.close()
            pool = None
        if pool is None and n_local:
            pool = distributed.start_local(n_local, progress)
        # what a local process or Dask worker needs to load the members and read the stack (blocks and calibration),
        # with the date weights estimated here (session 29: each process used to read the whole stack for them)
        if pool is not None or client is not None:
            _prefetch_weights(info, model_folder, members, e)
        job = {"stack": distributed.stack_job(info), "model_folder": os.path.abspath(model_folder), "members": members,
               "device": device, "e": e, "batch_size": batch_size}
        if pool is not None:
            pool.preload(distributed.preload_members, job)     # the members loaded before the first task needs them
        raster.warn_magnitude(info)
        loaded = load_members(model_folder, members, device=dev, info=info, end=e)
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
        cov = members_covariates(configs, covariates, info.grid)
        gate = (modelio.read_manifest(model_folder).get("gate") if use_gate and members is None else None) or None
        if gate:
            progress.log(f"Skill gate ({gate.get('action')}): reference {gate.get('reference')}, mean ensemble weight "
                         f"{float(np.mean(gate.get('weights'))):.2f} (validation over rolling origins).")
        win_max = max(int(m.meta["window"]) for m in loaded)
        if e + 1 < win_max:
            raise DeformCastError(f"The members read {win_max} epochs (WINDOW) but only {e + 1} acquisitions lie up to "
                                  "the forecast start. Give a longer stack or a later END_DATE.")
        fdates = dataset.target_dates(info.dates, e, H_model)[:H]
        M = len(loaded)
        t_cal = time.perf_counter()
        got_prior = {}

        def blend_prior():      # the scene's blend prior, in this process while the local processes work
            t0 = time.perf_counter()
            got_prior["sums"] = scene_blend_prior(info, loaded, Plan(loaded, configs), configs, cov, e, H, dev,
                                                  batch_size, progress, gate_stride(gate))
            got_prior["s"] = time.perf_counter() - t0

        want_prior = pool is not None and _wants_prior(gate, n_blocks)
        if calibrate and M > 1:
            remote = None
            if pool is not None:     # the validation origins on the local processes too (session 26)
                pool = distributed.ready_local(pool, progress)
                remote = None if pool is None else (pool, job)
            # the prior while they forecast them (session 27: before, while they loaded the members, and they then
            # waited for it)
            model, cal = calib.calibrate(info, loaded, configs, cov, e, H, dev, batch_size, method, gate=gate,
                                         progress=progress.sub(0.0, 0.3), remote=remote,
                                         seasonal=calib.DEFAULT_SEASONAL if seasonal is None else bool(seasonal),
                                         meanwhile=blend_prior if want_prior else None)
            progress = progress.sub(0.3, 1.0)
            for line in calib.log_lines(cal):
                progress.log(line)
        else:
            model, cal = None, {"calibrated": False, "reason": "switched off" if M > 1 else "one member"}
        if want_prior and "sums" not in got_prior:
            blend_prior()
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    prior = got_prior.get("sums")
    # the calibration's wall time, the prior's own time (inside it where it ran while the processes forecast)
    timer["calibration"] = time.perf_counter() - t_cal
    if prior is not None:
        timer["blend_prior"] = got_prior["s"]
    try:
        return _forecast_blocks(info=info, loaded=loaded, configs=configs, cov=cov, e=e, H=H, M=M, qs=qs, dev=dev,
                                prior=prior, job=job,
                                batch_size=batch_size, gate=gate, model=model, cal=cal, model_folder=model_folder,
                                out_median=out_median, out_quantiles=out_quantiles,
                                out_members=out_members, block_rows=block_rows, fdates=fdates, win_max=win_max,
                                progress=progress, timer=timer, t_start=t_start, client=client, pool=pool)
    finally:
        if pool is not None:
            pool.close()


def _forecast_blocks(*, info, loaded, configs, cov, e, H, M, qs, dev, batch_size, gate, model, cal, model_folder,
                     out_median, out_quantiles, out_members, block_rows, fdates, win_max, progress,
                     timer, t_start, client, pool, job, prior=None) -> dict:
    """The row blocks of :func:`_predict_ensemble` after its calibration: in this process, on a Dask ``client``
    or in a local ``pool``; the writers are closed (or aborted) here. ``job``: what a worker needs to load the
    members and read the stack. ``prior``: the scene's blend prior where the caller computed it already (while the
    local processes loaded the members)."""
    Hh = info.grid.shape[0]
    plan = Plan(loaded, configs)
    med_path, q_path, m_path = out_median, out_quantiles, out_members
    meta = {"DEFORMCAST_MODEL_FOLDER": os.path.abspath(model_folder), "DEFORMCAST_END_DATE": raster.iso(info.dates[e]),
            "DEFORMCAST_MEMBERS": json.dumps([os.path.basename(m.folder) for m in loaded]),
            "DEFORMCAST_CALIBRATION": json.dumps(cal), "DEFORMCAST_GATE": json.dumps(gate)}
    w_med = raster.RasterWriter(med_path, info.grid, H, [raster.iso(d) for d in fdates], metadata=meta,
                                write_rows=block_rows)
    w_q = raster.RasterWriter(q_path, info.grid, len(qs), [f"P{q:g} {raster.iso(fdates[-1])}" for q in qs],
                              metadata=meta, write_rows=block_rows) if q_path else None
    w_m = raster.RasterWriter(m_path, info.grid, M * H, member_band_names(M, fdates), metadata=meta,
                              write_rows=block_rows) if m_path else None
    writers = [w for w in (w_med, w_q, w_m) if w is not None]
    halo = max([dataset.halo(c) for c in configs] + [gate_halo(gate)])
    # the last round of blocks shared evenly by the processes this machine has (session 29), the same blocks for
    # every executor
    spread = distributed.machine_workers(Hh * info.grid.shape[1], -(-Hh // block_rows), dev)
    blocks = [(r0, r1, max(0, r0 - halo), min(Hh, r1 + halo))
              for r0, r1 in raster.balanced_row_blocks(Hh, block_rows, spread)]
    if prior is not None:
        gate = dict(gate, **prior)
    elif _wants_prior(gate, len(blocks)):
        # every block's blend weight is shrunk towards the scene's, not towards its own (session 18), and every
        # block's local track record towards the scene's classes (session 35)
        t0 = time.perf_counter()
        gate = dict(gate, **scene_blend_prior(info, loaded, plan, configs, cov, e, H, dev, batch_size,
                                              progress, gate_stride(gate)))
        timer["blend_prior"] = time.perf_counter() - t0
    job = dict(job, dev=dev, H=H, gate=gate, model=model, qs=qs, want_q=w_q is not None, want_m=w_m is not None)
    acc = {"n_valid": 0, "done": 0, "final": [], "gaps": {"data": 0, "none": 0, "last_missing": 0}}

    def put(bi, res):   # the client writes each block in block order
        r0 = blocks[bi][0]
        t0 = time.perf_counter()
        w_med.write(res["med"], r0)
        if w_q is not None:
            w_q.write(res["q"], r0)
        if w_m is not None:
            w_m.write(res["members"], r0)
        for k, v in res["timer"].items():
            timer[k] = timer.get(k, 0.0) + v
        timer["write"] += time.perf_counter() - t0
        acc["n_valid"] += res["n_valid"]
        acc["done"] = bi + 1
        for k, v in res.get("gaps", {}).items():
            acc["gaps"][k] += int(v)
        if len(acc["final"]) < 20:
            acc["final"].append(res["sample"])

    tasks = [(job, r0, r1, a0, a1, {k: v[a0:a1] for k, v in cov.items()}) for r0, r1, a0, a1 in blocks] \
        if client is not None or pool is not None else []
    try:
        pool = distributed.ready_local(pool, progress)
        first = 0
        if pool is not None:
            try:
                distributed.run_blocks(pool, _remote_block, tasks, put, progress, what="block")
                first = len(blocks)
            except distributed.PoolBroken as err:   # the rest in this process, from the first block not written
                first = acc["done"]
                progress.log(f"{err} Forecasting blocks {first + 1}-{len(blocks)} in this process.")
        if client is None and first < len(blocks):
            ctx = dict(job, info=info, dates=info.dates, grid=info.grid)
            for bi, (r0, r1, a0, a1) in enumerate(blocks):
                if bi < first:
                    continue
                cov_blk = {k: v[a0:a1] for k, v in cov.items()}
                put(bi, _block(ctx, loaded, plan, r0, r1, a0, a1, cov_blk,
                               progress.sub(bi / len(blocks), (bi + 1) / len(blocks))))
                progress.set((bi + 1) / len(blocks))
        elif client is not None:
            progress.log(f"Forecasting {len(blocks)} blocks on the Dask cluster.")
            distributed.run_blocks(client, _remote_block, tasks, put, progress, what="block")
        n_valid, final_vals = acc["n_valid"], acc["final"]
        if n_valid == 0:
            raise DeformCastError("No pixel could be forecast: every pixel has nodata within the members' input window "
                                  f"(the last {win_max} epochs up to {info.dates[e]}). Check the stack's last epochs.")
        gap_msg = unforecast_message(acc["gaps"], win_max, raster.iso(info.dates[e]),
                                     raster.iso(info.dates[e - 1]) if e > 0 else None)
        if gap_msg:
            warn(gap_msg)
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
    return {"median_path": med_path, "quantiles_path": q_path, "members_path": m_path,
            "members": [os.path.basename(m.folder) for m in loaded], "forecast_dates": [raster.iso(d) for d in fdates],
            "end_date": raster.iso(info.dates[e]), "valid_pixels": n_valid, "unforecast": dict(acc["gaps"]),
            "unforecast_note": gap_msg, "device": dev, "calibration": cal,
            "gate": gate, "local_workers": 0 if pool is None or first < len(blocks) else pool.n,
            "timings_s": dict(timer, total=time.perf_counter() - t_start)}
