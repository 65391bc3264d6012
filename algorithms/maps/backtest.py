"""Backtest of an ensemble on the test period of its models, beside the classical baselines.

The models of a folder were trained and tuned on epochs before their test period (``data_config
["test_start"]``); this module forecasts from the last epoch before it (``END_DATE``), so every
forecast epoch is an acquisition the models never saw, and scores on the same pixels and epochs:

- the ensemble median, each member, and every classical baseline of :mod:`baselines` (fitted per
  pixel on the epochs up to the forecast start), against the observations and, where given
  (synthetic scene), against the noise-free truth;
- the P10-P90 band of the calibrated members (see :mod:`calibration`): share of later
  observations inside it (coverage);
- exceedance probabilities (that the deformation over the horizon reaches a threshold, from the calibrated
  members as :mod:`uncertainty` maps them: :mod:`exceedance`): Brier score and Brier skill score against the
  area-wide base rate.

Point scores (median, members) use the raw members; coverage and Brier scores the calibrated ones,
as ``predict`` writes them by default.

"Deformation over the horizon" is the value at the last forecast epoch minus the value at the
forecast start (observed), taken as magnitude ``|d|``, as in :mod:`uncertainty`.

Rolling origins (:func:`score_origins`; ``run_backtest(origins="rolling")`` and the ``train`` job's
evaluation): forecasts start from the last epoch before the test period and then every horizon
epochs, each seeing observations up to itself only; every member and baseline is scored per lead step
and per zone on the same pixels and epochs.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..order_stats import member_median
from ..data import anchors, step_detect
from .. import metrics
from ..models import modelio
from ..io import raster
from .ensemble import predict_ensemble
from .exceedance import exceedance_probability
from ..errors import DeformCastError
from ..progress import Progress, silent


def _test_start(model_folder: str) -> int:
    metas = [modelio.read_meta(p) for p in modelio.member_paths(model_folder)]
    starts = {int((m.get("data_config") or {}).get("test_start", -1)) for m in metas}
    if len(starts) != 1 or -1 in starts:
        raise DeformCastError("The members of the model folder do not share one test period; backtest them one by one.")
    return starts.pop()


def brier(prob: np.ndarray, outcome: np.ndarray) -> Dict[str, float]:
    p = np.asarray(prob, float)
    o = np.asarray(outcome, float)
    ok = np.isfinite(p) & np.isfinite(o)
    p, o = p[ok], o[ok]
    if p.size == 0:
        return {"brier": float("nan"), "brier_ref": float("nan"), "bss": float("nan"), "base_rate": float("nan"), "n": 0}
    bs = float(np.mean((p - o) ** 2))
    base = float(o.mean())
    ref = float(np.mean((base - o) ** 2))
    return {"brier": bs, "brier_ref": ref, "bss": (1.0 - bs / ref) if ref > 0 else float("nan"),
            "base_rate": base, "n": int(p.size)}


def run_backtest(stack_path: str, model_folder: str, out_folder: str, truth_path: Optional[str] = None,
                 thresholds: Sequence[float] = (5.0, 10.0), dates=None, covariates=None, device: str = "auto",
                 block_rows: int = 0, origins: str = "single", zones_path: Optional[str] = None, seed: int = 42,
                 progress: Optional[Progress] = None) -> Dict[str, object]:
    """Forecast the models' test period and score it; writes rasters into ``out_folder``.

    ``origins="single"`` (default; the workflow's backtest): one forecast from the last epoch before the
    test period, through :func:`predict_ensemble`, with coverage and exceedance scores.
    ``origins="rolling"``: forecasts from that epoch and then every horizon epochs (:func:`score_origins`),
    scored per lead step and per zone (``zones_path``) beside the baselines.
    """
    progress = progress or silent()
    info = raster.open_stack(stack_path, dates, progress=progress)
    ts = _test_start(model_folder)
    if not 1 <= ts < info.n_epochs:
        raise DeformCastError(f"The models' test period starts at epoch {ts}, outside this stack of {info.n_epochs} "
                              "epochs: backtest on the stack the models were tuned on.")
    if origins == "rolling":
        return _run_rolling(info, model_folder, out_folder, ts, truth_path, zones_path, covariates, device,
                            block_rows, seed, progress)
    if origins != "single":
        raise DeformCastError(f"Unknown backtest origins '{origins}'; use 'single' or 'rolling'.")
    e = ts - 1
    os.makedirs(out_folder, exist_ok=True)
    med_p = os.path.join(out_folder, "backtest_median.tif")
    mem_p = os.path.join(out_folder, "backtest_members_raw.tif")
    cal_p = os.path.join(out_folder, "backtest_members_calibrated.tif")
    res = predict_ensemble(stack_path, model_folder, med_p, None, mem_p, dates=dates, covariates=covariates,
                           end_date=str(info.dates[e]), block_rows=block_rows, device=device, calibrate=False,
                           progress=progress.sub(0.0, 0.4), gate=False)
    gated = bool(modelio.read_manifest(model_folder).get("gate"))
    cal = predict_ensemble(stack_path, model_folder, os.path.join(out_folder, "backtest_median_calibrated.tif"),
                           None, cal_p, dates=dates, covariates=covariates, end_date=str(info.dates[e]),
                           block_rows=block_rows, device=device, calibrate=True, progress=progress.sub(0.4, 0.8))
    fdates = np.array(res["forecast_dates"], dtype="datetime64[D]")
    idx = [int(np.searchsorted(info.dates, d)) for d in fdates]
    inside = [i for i, d in zip(idx, fdates) if i < info.n_epochs and info.dates[i] == d]
    H = len(inside)
    if H == 0:
        raise DeformCastError("None of the forecast epochs is an acquisition of the stack; nothing to score.")
    stack = raster.read_stack(info)
    obs = stack[inside]                                                  # (H, rows, cols)
    med = raster.read_raster(med_p)[0][:H]
    med_cal = raster.read_raster(os.path.join(out_folder, "backtest_median_calibrated.tif"))[0][:H]
    M = len(res["members"])
    Hm = len(fdates)
    mem = raster.read_raster(mem_p)[0].reshape(M, Hm, *info.grid.shape)[:, :H]
    memc = raster.read_raster(cal_p)[0].reshape(M, Hm, *info.grid.shape)[:, :H]
    valid = np.isfinite(med).all(axis=0) & np.isfinite(obs).all(axis=0)
    truth = None
    if truth_path:
        tinfo, tbands = _truth_bands(truth_path, info.grid, [raster.iso(d) for d in fdates[:H]])
        truth = raster.read_stack(tinfo, bands=tbands)
        valid &= np.isfinite(truth).all(axis=0)
    progress.set(0.85)
    steps = (modelio.read_meta(modelio.member_paths(model_folder)[0]).get("data_config") or {}).get("steps") or None
    base = step_detect.baselines_where_steps_show(stack, info.dates, e, fdates[:H], time_function=steps)
    fam = anchors.family_forecasts(stack[:e + 1].reshape(e + 1, -1), info.dates[:e + 1], fdates[:H], steps)
    for c, name in enumerate(anchors.FAMILY_NAMES):
        if name not in base:
            base[name] = fam[c].reshape((H,) + stack.shape[1:]).astype(np.float32)
    refs = {"observed": obs}
    if truth is not None:
        refs["truth"] = truth
    rows = []

    def score(name, pred):
        row = {"model": name}
        for rname, ref in refs.items():
            s = metrics.scores(pred[:, valid], ref[:, valid])
            row[f"rmse_{rname}"] = s["rmse"]
            row[f"mae_{rname}"] = s["mae"]
        rows.append(row)

    if gated:  # what predict delivers: the skill-gated, calibrated ensemble
        score("delivered forecast (skill-gated ensemble)", med_cal)
    score("ensemble median", med)
    member_rmse = []
    for k in range(M):
        score(f"member {k + 1} ({res['members'][k]})", mem[k])
        member_rmse.append(rows[-1])
    for name, f in base.items():
        score(f"baseline: {name}", f)
    # coverage of the P10-P90 band, all steps
    p10, p90 = np.percentile(memc, [10, 90], axis=0)
    inside_band = (obs >= p10) & (obs <= p90)
    coverage = float(inside_band[:, valid].mean())
    # exceedance: deformation over the horizon from the forecast start
    start = stack[e]
    d_obs = np.abs(obs[-1] - start)
    probs = exceedance_probability(memc[:, -1][:, valid] - start[valid][None], thresholds, "magnitude")
    exceed = []
    for t, prob in zip(thresholds, probs):
        b = brier(prob, (d_obs >= float(t))[valid].astype(float))
        b["threshold_mm"] = float(t)
        exceed.append(b)
    progress.set(1.0)
    key = "rmse_truth" if truth is not None else "rmse_observed"
    best_member = min(member_rmse, key=lambda r: r[key])
    best_baseline = min((r for r in rows if r["model"].startswith("baseline")), key=lambda r: r[key])
    return {"rows": rows, "coverage_p10_p90": coverage, "exceedance": exceed, "n_pixels": int(valid.sum()),
            "forecast_start": str(info.dates[e]), "forecast_dates": [str(d) for d in fdates[:H]], "score_key": key,
            "ensemble": rows[0], "raw_ensemble": rows[1] if gated else rows[0], "best_member": best_member, "best_baseline": best_baseline,
            "median_path": med_p, "members_path": mem_p, "calibrated_members_path": cal_p, "n_members": M,
            "calibration": cal["calibration"]}


# --- rolling origins: several forecast starts inside the test period -----------------------------------

_METRIC_PIXELS = 250_000  # pixels kept for the scores (all of them below this many)
MEDIAN = "ensemble median"


def rolling_origins(test_start: int, T: int, horizon: int, window: int) -> List[int]:
    """Forecast origins (index of the last input epoch) covering the test period without overlap: the
    last epoch before it, then every ``horizon`` epochs (those with a full input window)."""
    return [e for e in range(test_start - 1, T - 1, horizon) if e >= window - 1]


def lead_steps(origins: Sequence[int], test_start: int, T: int, horizon: int) -> np.ndarray:
    """Lead (1..horizon) of each test epoch ``test_start..T-1`` (0 = no origin forecasts it)."""
    lead = np.zeros(max(T - test_start, 0), np.int64)
    for e in origins:
        for k in range(1, horizon + 1):
            if e + k < T:
                lead[e + k - test_start] = k
    return lead


def _truth_bands(truth_path: str, grid, names: Sequence[str]):
    tinfo = raster.open_stack(truth_path)
    if not tinfo.grid.same_as(grid):
        raise DeformCastError("The TRUTH stack is on another grid than INPUT; give the noise-free stack "
                              "of the same scene.")
    pos = {str(d): i for i, d in enumerate(tinfo.dates)}
    missing = [n for n in names if n not in pos]
    if missing:
        raise DeformCastError(f"The TRUTH stack has no band for the test date(s) {', '.join(missing[:3])}.")
    return tinfo, [pos[n] for n in names]


def _zones(zones_path: str, grid):
    from ..decision.zone_names import check_zone_codes
    from ..io.styles import palette_labels, sidecar_path

    ds, zg = raster.open_raster(zones_path, "ZONES")
    z = raster.read_band(ds.GetRasterBand(1))
    check_zone_codes(ds, z, zones_path, polygons=False)
    if not zg.same_as(grid):
        raise DeformCastError("The ZONES raster must be on the grid of INPUT (same size, extent and CRS).")
    return z, (palette_labels(sidecar_path(zones_path)) or None)


def score_origins(info, members: Sequence, names: Sequence[str], test_start: int, horizon: int,
                  covariates: Optional[Dict[str, np.ndarray]] = None, truth_path: Optional[str] = None,
                  zones_path: Optional[str] = None, forecast_path: Optional[str] = None,
                  residuals_path: Optional[str] = None, block_rows: int = 256, device: str = "cpu", seed: int = 42,
                  on_rows=None, progress: Optional[Progress] = None) -> Dict[str, object]:
    """Backtest ``members`` (:class:`modelio.LoadedModel`-like: ``model``, ``meta`` with ``data_config``
    and ``normalisation``) on the test period from rolling origins, block by block.

    Every origin (:func:`rolling_origins`) forecasts the next ``horizon`` epochs from observations up to
    itself only, so every test epoch has one forecast (lead 1..horizon). The classical baselines
    (:mod:`baselines`) forecast from the same origins on the same history; all methods (the members
    named ``names``, their median ``"ensemble median"`` first when there are several, the baselines)
    are scored on the same pixels and epochs (every method and the reference finite): RMSE, MAE, R²
    overall, per lead step and per zone (``zones_path``), against the observations and a noise-free
    ``truth_path`` stack (matched by date). The first method is written to ``forecast_path`` and
    ``residuals_path`` (forecast minus observed; one band per test date, styled). ``on_rows(centre)``
    sees every block of rows (e.g. a data fingerprint). Returns ``metrics`` ({reference: {method:
    evaluate()}}), ``methods``, ``origins``, ``lead``, ``test_dates``, ``n_pairs``.
    """
    from ..data.baselines import BASELINES, forecast_baselines
    from ..data.dataset import forecast_inputs, read_rows, to_mm
    from ..io import styles
    from ..learn.runtime import predict_array
    from ..metrics import evaluate

    progress = progress or silent()
    covariates = covariates or {}
    grid, sdates = info.grid, info.dates
    T = int(sdates.size)
    cfgs = [m.meta["data_config"] for m in members]
    window = max(int(c["window"]) for c in cfgs)
    origins = rolling_origins(test_start, T, horizon, window)
    if not origins:
        raise DeformCastError("No forecast origin before the test period has a full input window.")
    test_idx = np.arange(test_start, T)
    lead = lead_steps(origins, test_start, T, horizon)
    n_b = test_idx.size
    test_names = [raster.iso(d) for d in sdates[test_idx]]
    truth_info, truth_band = _truth_bands(truth_path, grid, test_names) if truth_path else (None, None)
    zones, zone_labels = _zones(zones_path, grid) if zones_path else (None, None)
    rng = np.random.default_rng(seed)
    n_pix = grid.width * grid.height
    keep_mask = None if n_pix <= _METRIC_PIXELS else (rng.random(grid.shape) < _METRIC_PIXELS / n_pix)
    nets = list(names)
    methods = ([MEDIAN] if len(members) > 1 else []) + nets + list(BASELINES)
    acc = {m: [] for m in methods}
    acc_obs, acc_truth, acc_zone = [], [], []
    fc_w = rs_w = None
    sample_fc, sample_rs = [], []
    blocks = list(raster.row_blocks(grid.height, block_rows))
    try:
        if forecast_path:
            fc_w = raster.RasterWriter(forecast_path, grid, n_b, test_names,
                                       metadata={"CONTENT": "test-period forecast, mm"}, write_rows=block_rows)
        if residuals_path:
            rs_w = raster.RasterWriter(residuals_path, grid, n_b, test_names,
                                       metadata={"CONTENT": "forecast minus observed, mm"}, write_rows=block_rows)
        for bi, (r0, r1) in enumerate(blocks):
            spans = [read_rows(r0, r1, grid.height, c) for c in cfgs]
            a0, a1 = min(s[0] for s in spans), max(s[1] for s in spans)
            blk = raster.read_stack(info, rows=(a0, a1))
            centre = blk[:, r0 - a0:r1 - a0]
            if on_rows is not None:
                on_rows(centre)
            cov_blk = {n: c[a0:a1] for n, c in covariates.items()}
            h, w = centre.shape[1:]
            pred = {m: np.full((n_b, h, w), np.nan, np.float32) for m in methods}
            for oi, e in enumerate(origins):
                ks = [k for k in range(1, horizon + 1) if e + k < T]
                bands = [e + k - test_start for k in ks]
                valid_all = np.ones((h, w), bool)
                for lm, name in zip(members, nets):
                    cfg, norm = lm.meta["data_config"], lm.meta["normalisation"]
                    X, valid, anchor = forecast_inputs(blk, sdates, grid, a0, cfg, norm, cov_blk, end_index=e,
                                                       out_rows=(r0, r1))
                    valid_all &= valid
                    if X.shape[0]:
                        y = to_mm(predict_array(lm.model, X, device=device), anchor, norm)  # (n, horizon)
                        for j, k in enumerate(ks):
                            pred[name][bands[j]][valid] = y[:, k - 1]
                if len(members) > 1:
                    pred[MEDIAN][bands] = member_median(np.stack([pred[n][bands] for n in nets]))
                fb = forecast_baselines(centre[: e + 1], sdates[: e + 1], e, sdates[[e + k for k in ks]])
                for name, f in fb.items():
                    pred[name][bands] = np.where(valid_all[None], f, np.nan)  # the same pixels as the models
                progress.set((bi + (oi + 1) / len(origins)) / len(blocks))
            obs = centre[test_idx]
            first = pred[methods[0]]
            if fc_w is not None:
                fc_w.write(first, r0)
                sample_fc.append(first[:, ::7, ::7])
            if rs_w is not None:
                rs = first - obs
                rs_w.write(rs, r0)
                sample_rs.append(rs[:, ::7, ::7])
            km = np.ones((h, w), bool) if keep_mask is None else keep_mask[r0:r1]
            for m in methods:
                acc[m].append(pred[m][:, km])
            acc_obs.append(obs[:, km])
            if truth_info is not None:
                acc_truth.append(raster.read_stack(truth_info, rows=(r0, r1), bands=truth_band)[:, km])
            if zones is not None:
                acc_zone.append(zones[r0:r1][km])
        if fc_w is not None:
            fc_w.qml = styles.deformation_style(np.concatenate([s.ravel() for s in sample_fc]))
            fc_w.close()
            fc_w = None
        if rs_w is not None:
            rs_w.qml = styles.residual_style(np.concatenate([s.ravel() for s in sample_rs]))
            rs_w.close()
            rs_w = None
    finally:
        for wtr in (fc_w, rs_w):
            if wtr is not None:
                wtr.abort()

    # --- scores: the same pixels and epochs for every method ----------------------------------
    P = {m: np.concatenate(acc[m], axis=1) for m in methods}  # (n_b, n_pix_kept)
    O = np.concatenate(acc_obs, axis=1)
    common = np.isfinite(O)
    for m in methods:
        common &= np.isfinite(P[m])
    refs = {"observed": O}
    if acc_truth:
        Tr = np.concatenate(acc_truth, axis=1)
        common &= np.isfinite(Tr)
        refs["truth"] = Tr
    if not common.any():
        raise DeformCastError("No test pixel has a forecast from the model and every baseline and an "
                              "observation; the test period may be all nodata.")
    Z = np.concatenate(acc_zone) if acc_zone else None
    scores: Dict[str, Dict[str, dict]] = {}
    for ref_name, R in refs.items():
        scores[ref_name] = {}
        for m in methods:
            pm = np.where(common, P[m], np.nan)
            ev = evaluate(pm.ravel()[:, None], R.ravel()[:, None], None if Z is None else np.tile(Z, n_b),
                          zone_labels)
            ev["per_step"] = [evaluate(pm[lead == k].ravel()[:, None], R[lead == k].ravel()[:, None])["overall"]
                              for k in range(1, horizon + 1)]
            scores[ref_name][m] = ev
    return {"metrics": scores, "methods": methods, "origins": origins, "lead": lead, "test_dates": test_names,
            "n_pairs": int(common.sum()), "with_zones": zones is not None}


def _run_rolling(info, model_folder, out_folder, ts, truth_path, zones_path, covariates, device, block_rows, seed,
                 progress) -> Dict[str, object]:
    """:func:`run_backtest` from rolling origins: the members of ``model_folder`` through :func:`score_origins`."""
    from ..learn.runtime import resolve_device
    from .member_forecasts import load_members, members_covariates

    dev = resolve_device(device)
    loaded = load_members(model_folder, device=dev, info=info)
    for m in loaded:
        cfg = m.meta.get("data_config") or {}
        modelio.check_compatible(m.meta, grid=info.grid if "spatial" in cfg.get("encodings", ()) else None, config=cfg,
                                 what=f"the stack '{os.path.basename(info.path)}'")
    cov = members_covariates([m.meta.get("data_config") or {} for m in loaded], covariates, info.grid)
    names = [f"member {k + 1} ({os.path.basename(m.folder)})" for k, m in enumerate(loaded)]
    os.makedirs(out_folder, exist_ok=True)
    fc_p = os.path.join(out_folder, "backtest_rolling_forecast.tif")
    rs_p = os.path.join(out_folder, "backtest_rolling_residuals.tif")
    out = score_origins(info, loaded, names, ts, int(loaded[0].meta["horizon"]), covariates=cov,
                        truth_path=truth_path, zones_path=zones_path, forecast_path=fc_p, residuals_path=rs_p,
                        block_rows=block_rows or 256, device=dev, seed=seed, progress=progress)
    rows = []
    for m in out["methods"]:
        row = {"model": m if m == MEDIAN or m in names else f"baseline: {m}"}
        for ref, by in out["metrics"].items():
            row[f"rmse_{ref}"] = by[m]["overall"]["rmse"]
            row[f"mae_{ref}"] = by[m]["overall"]["mae"]
        rows.append(row)
    out.update(rows=rows, origins=[raster.iso(info.dates[e]) for e in out["origins"]], lead=out["lead"].tolist(),
               forecast_path=fc_p, residuals_path=rs_p, n_members=len(loaded),
               score_key="rmse_truth" if truth_path else "rmse_observed")
    return out
