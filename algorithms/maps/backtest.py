"""Backtest of an ensemble on the test period of its models, beside the classical baselines.

The models of a folder were trained and tuned on epochs before their test period (``data_config
["test_start"]``); this module forecasts from the last epoch before it (``END_DATE``), so every
forecast epoch is an acquisition the models never saw, and scores on the same pixels and epochs:

- the ensemble median, each member, and every classical baseline of :mod:`baselines` (fitted per
  pixel on the epochs up to the forecast start), against the observations and, where given
  (synthetic scene), against the noise-free truth;
- the P10-P90 band of the calibrated members (see :mod:`calibration`): share of later
  observations inside it (coverage);
- exceedance probabilities (share of calibrated members whose deformation over the horizon reaches
  a threshold): Brier score and Brier skill score against the area-wide base rate.

Point scores (median, members) use the raw members; coverage and Brier scores the calibrated ones,
as ``predict`` writes them by default.

"Deformation over the horizon" is the value at the last forecast epoch minus the value at the
forecast start (observed), taken as magnitude ``|d|``, as in :mod:`uncertainty`.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np

from ..data import anchors, baselines
from .. import metrics
from ..models import modelio
from ..io import raster
from .ensemble import predict_ensemble
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
                 block_rows: int = 0, progress: Optional[Progress] = None) -> Dict[str, object]:
    """Forecast the models' test period and score it; writes rasters into ``out_folder``."""
    progress = progress or silent()
    info = raster.open_stack(stack_path, dates, progress=progress)
    ts = _test_start(model_folder)
    if not 1 <= ts < info.n_epochs:
        raise DeformCastError(f"The models' test period starts at epoch {ts}, outside this stack of {info.n_epochs} "
                              "epochs: backtest on the stack the models were tuned on.")
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
        tr, tg, tnames = raster.read_raster(truth_path)
        tdates = [raster.parse_date(n) for n in tnames]
        tmap = {str(d): k for k, d in enumerate(tdates) if d is not None}
        if not tg.same_as(info.grid) or any(str(d) not in tmap for d in fdates[:H]):
            raise DeformCastError("The truth raster must be on the stack's grid and hold the forecast dates.")
        truth = tr[[tmap[str(d)] for d in fdates[:H]]]
        valid &= np.isfinite(truth).all(axis=0)
    progress.set(0.85)
    steps = (modelio.read_meta(modelio.member_paths(model_folder)[0]).get("data_config") or {}).get("steps") or None
    base = baselines.forecast_baselines(stack, info.dates, e, fdates[:H], time_function=steps)
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
    d_mem = np.abs(memc[:, -1] - start[None])
    exceed = []
    for t in thresholds:
        prob = (d_mem >= float(t)).mean(axis=0)
        b = brier(prob[valid], (d_obs >= float(t))[valid].astype(float))
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
