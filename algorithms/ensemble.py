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

Calibration (``calibrate=True``, the default). The spread of ten networks trained on the same
data reflects model uncertainty only and is far narrower than the error of a forecast against a
later, noisy acquisition (measured on the demo scene: the raw P10-P90 band covered 6-11 % of
later observations). Where the paper is silent we calibrate the ensemble by *dressing* it, a
standard post-processing of ensemble forecasts: at each pixel and horizon step the members keep
their order but are spread as normal quantiles around the median with the total standard deviation
``sqrt(s_models² + σ_h²)``, where ``s_models`` is the members' own spread at that pixel and ``σ_h``
is one number per horizon step for the error the models cannot see (observation noise, atmosphere).
``σ_h`` is chosen so that the members' P10-P90 band covers 80 % of the observations of the
**validation** period (the members' early-stopping period: never the test period, and never an
epoch after the forecast start). The median is unchanged; the quantiles, the members raster and
hence the exceedance probabilities and class ambiguity of ``uncertainty`` become calibrated, and
pixels where the models disagree keep a wider band. (We first tried plain spread inflation,
``median + c (member - median)``: calibrated, but it blew the models' tiny random disagreements up
into noisy exceedance maps with a negative Brier skill.) Forecast origins for the calibration are up
to three epochs in the validation period whose targets are all observed; where there is none (a
stack too short, or a backtest from before the validation period), nothing is changed.

Outputs (../shared/INTERFACE.md):
- median: one band per forecast date (ISO description), mm, same reference as the stack;
- quantiles: P10/P50/P90 (or the quantiles asked for) of the members at the last forecast epoch;
- members: member-major bands ``[m0 h1..hH, m1 h1..hH, ...]`` described ``member<k> <ISO date>``.
"""
from __future__ import annotations

import json
import os
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
    idx = int(np.searchsorted(dates, d, side="right")) - 1
    if idx < 0:
        raise DeformCastError(f"END_DATE {d} lies before the first acquisition ({dates[0]}).")
    return idx


def _forecast_block(blk, dates, grid, a0, r0, r1, loaded, configs, cov_blk, e, H, dev, batch_size, progress=None):
    """Every member's forecast for rows r0..r1 from epoch ``e``: (M, H, r1-r0, W) mm, NaN where not all can."""
    M, W = len(loaded), blk.shape[2]
    out = np.full((M, H, r1 - r0, W), np.nan, np.float32)
    valid_all = np.ones((r1 - r0, W), bool)
    for k, (m, cfg) in enumerate(zip(loaded, configs)):
        sub = None if progress is None else progress.sub(k / M, (k + 1) / M)
        X, valid, anchor = dataset.forecast_inputs(blk, dates, grid, a0, cfg, m.meta["normalisation"],
                                                   cov_blk or None, end_index=e, out_rows=(r0, r1))
        if X.shape[0]:
            y = m.predict(X, batch_size=batch_size, device=dev, progress=sub)
            mm = dataset.to_mm(y, anchor, m.meta["normalisation"])[:, :H]
            out[k][:, valid] = mm.T
        valid_all &= valid
    out[:, :, ~valid_all] = np.nan
    return out, valid_all


def _normal_scores(M: int) -> np.ndarray:
    from statistics import NormalDist

    nd = NormalDist()
    return np.array([nd.inv_cdf((k + 0.5) / M) for k in range(M)], dtype=np.float64)


def dress(members: np.ndarray, sigma: float) -> np.ndarray:
    """Members (M, ...) -> dressed members: same order, normal scores x sqrt(s_models² + sigma²)
    around the median (see the module doc)."""
    m = np.asarray(members, dtype=np.float64)
    M = m.shape[0]
    with np.errstate(all="ignore"):
        med = np.median(m, axis=0)
        s2 = np.mean((m - med) ** 2, axis=0)
    z = _normal_scores(M)
    ranks = np.argsort(np.argsort(m, axis=0, kind="stable"), axis=0, kind="stable")
    return (med + np.sqrt(s2 + float(sigma) ** 2) * z[ranks]).astype(np.float32)


def coverage(members: np.ndarray, obs: np.ndarray, sigma: float, lo: float = 10.0, hi: float = 90.0) -> float:
    """Share of ``obs`` (n,) inside the P``lo``-P``hi`` band of the members (M, n) dressed with ``sigma``."""
    a, b = np.percentile(dress(members, sigma), [lo, hi], axis=0)
    return float(np.mean((obs >= a) & (obs <= b)))


def dressing_sigma(members: np.ndarray, obs: np.ndarray, target: float = 0.8, max_sigma: float = 500.0) -> float:
    """Smallest sigma (mm) whose dressed P10-P90 band covers ``target`` of ``obs`` (0 if already)."""
    if obs.size == 0 or members.shape[0] < 2:
        return 0.0
    if coverage(members, obs, 0.0) >= target:
        return 0.0
    lo, hi = 0.0, 1.0
    while coverage(members, obs, hi) < target and hi < max_sigma:
        lo, hi = hi, hi * 2
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if coverage(members, obs, mid) >= target:
            hi = mid
        else:
            lo = mid
    return float(hi)


def calibration_sigmas(info, loaded, configs, cov, e: int, H: int, dev: str, batch_size: int,
                        max_pixels: int = 20000, target: float = 0.8, progress: Optional[Progress] = None):
    """Dressing sigma per horizon step (mm) from the validation period (see the module doc).

    Returns ``(sigmas (H,), details dict)``.
    """
    train_end = max(int(c.get("train_end", 0)) for c in configs)
    val_end = min(int(c.get("val_end", info.n_epochs)) for c in configs)
    win = max(int(m.meta["window"]) for m in loaded)
    last_origin = min(val_end - 1, e) - H          # targets o+1..o+H observed and not after the forecast start
    first_origin = max(train_end - 1, win - 1)      # targets after the training period
    if last_origin < first_origin:
        return np.zeros(H), {"calibrated": False, "reason": "no validation epochs to calibrate on"}
    origins = sorted(set(np.linspace(first_origin, last_origin, num=min(3, last_origin - first_origin + 1))
                         .round().astype(int).tolist()))
    Hh, W = info.grid.shape
    rows_needed = max(1, int(np.ceil(max_pixels / max(1, W))))
    if rows_needed >= Hh:   # small raster: every pixel, in row blocks
        spans = list(raster.row_blocks(Hh, max(1, BLOCK_PIXELS // max(1, W))))
    else:                   # large raster: evenly spread single rows, about max_pixels pixels
        spans = [(int(r), int(r) + 1) for r in np.linspace(0, Hh - 1, rows_needed).astype(int)]
    halo = max(dataset.halo(c) for c in configs)
    mems, obss = [[] for _ in range(H)], [[] for _ in range(H)]
    for i, (r0, r1) in enumerate(spans):
        a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
        blk = raster.read_stack(info, rows=(a0, a1))
        cov_blk = {k: v[a0:a1] for k, v in cov.items()}
        for o in origins:
            out, valid = _forecast_block(blk, info.dates, info.grid, a0, r0, r1, loaded, configs, cov_blk, o, H,
                                         dev, batch_size)
            obs = blk[o + 1:o + 1 + H, r0 - a0:r1 - a0]
            for h in range(H):
                ok = valid & np.isfinite(obs[h])
                mems[h].append(out[:, h][:, ok])
                obss[h].append(obs[h][ok])
        if progress is not None:
            progress.set((i + 1) / len(spans))
    sigmas = np.zeros(H)
    raw, cal = [], []
    for h in range(H):
        m = np.concatenate(mems[h], axis=1) if mems[h] else np.zeros((len(loaded), 0))
        o = np.concatenate(obss[h]) if obss[h] else np.zeros(0)
        sigmas[h] = dressing_sigma(m, o, target)
        with np.errstate(all="ignore"):
            a, b = np.percentile(m, [10, 90], axis=0) if o.size else (0, 0)
        raw.append(float(np.mean((o >= a) & (o <= b))) if o.size else float("nan"))
        cal.append(coverage(m, o, sigmas[h]) if o.size else float("nan"))
    return sigmas, {"calibrated": True, "origins": [raster.iso(info.dates[o]) for o in origins],
                     "n_pixels_per_step": int(sum(len(x) for x in obss[0])), "sigma_mm": sigmas.tolist(),
                     "raw_coverage": raw, "calibrated_coverage": cal, "target": target}


def predict_ensemble(stack_path: str, model_folder: str, out_median: str, out_quantiles: Optional[str] = None,
                     out_members: Optional[str] = None, horizon: Optional[int] = None, members=None,
                     quantiles: Sequence[float] = (10, 50, 90), dates=None, covariates: Optional[Sequence[str]] = None,
                     end_date=None, block_rows: int = 0, device: str = "auto", batch_size: int = 2048,
                     calibrate: bool = True, progress: Optional[Progress] = None) -> Dict[str, object]:
    """Forecast with every member, write median / quantiles / members rasters; return a summary.

    ``block_rows`` 0 (default) = as many rows as make about ``BLOCK_PIXELS`` pixels, so the memory a
    block needs is the same whatever the raster's width (and area).
    """
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
    if calibrate and M > 1:
        sigmas, cal = calibration_sigmas(info, loaded, configs, cov, e, H, dev, batch_size,
                                           progress=progress.sub(0.0, 0.15))
        progress = progress.sub(0.15, 1.0)
        if cal["calibrated"]:
            progress.log("Ensemble dressing per horizon step (validation period): sigma "
                         + ", ".join(f"{f:.2f}" for f in sigmas) + " mm; P10-P90 coverage "
                         + ", ".join(f"{a:.0%}->{b:.0%}" for a, b in zip(cal["raw_coverage"], cal["calibrated_coverage"])))
        else:
            progress.log(f"No calibration: {cal['reason']}.")
    else:
        sigmas, cal = np.zeros(H), {"calibrated": False, "reason": "switched off" if M > 1 else "one member"}
    med_path, q_path, m_path = out_median, out_quantiles, out_members
    meta = {"DEFORMCAST_MODEL_FOLDER": os.path.abspath(model_folder), "DEFORMCAST_END_DATE": raster.iso(info.dates[e]),
            "DEFORMCAST_MEMBERS": json.dumps([os.path.basename(m.folder) for m in loaded]),
            "DEFORMCAST_CALIBRATION": json.dumps(cal)}
    w_med = raster.RasterWriter(med_path, info.grid, H, [raster.iso(d) for d in fdates], metadata=meta)
    w_q = raster.RasterWriter(q_path, info.grid, len(qs), [f"P{q:g} {raster.iso(fdates[-1])}" for q in qs],
                              metadata=meta) if q_path else None
    w_m = raster.RasterWriter(m_path, info.grid, M * H, member_band_names(M, fdates), metadata=meta) if m_path else None
    writers = [w for w in (w_med, w_q, w_m) if w is not None]
    halo = max(dataset.halo(c) for c in configs) if configs else 0
    n_valid = 0
    final_vals = []
    if not block_rows or int(block_rows) <= 0:
        block_rows = max(1, BLOCK_PIXELS // max(1, W))
    try:
        blocks = list(raster.row_blocks(Hh, block_rows))
        for bi, (r0, r1) in enumerate(blocks):
            a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
            # all epochs: in a backtest the residual target's classical forecast needs the real dates of
            # the forecast epochs (forecast_inputs reads values only up to end_index)
            blk = raster.read_stack(info, rows=(a0, a1))
            cov_blk = {k: v[a0:a1] for k, v in cov.items()}
            out, valid_all = _forecast_block(blk, info.dates, info.grid, a0, r0, r1, loaded, configs, cov_blk, e, H,
                                             dev, batch_size, progress.sub(bi / len(blocks), (bi + 1) / len(blocks)))
            if cal["calibrated"]:
                for h in range(H):
                    out[:, h] = dress(out[:, h], sigmas[h])
            n_valid += int(valid_all.sum())
            with np.errstate(all="ignore"):
                med = np.median(out, axis=0) if M > 1 else out[0]
            w_med.write(med, r0)
            if w_q is not None:
                with np.errstate(all="ignore"):
                    qv = np.percentile(out[:, -1], qs, axis=0).astype(np.float32) if valid_all.any() else \
                        np.full((len(qs), r1 - r0, W), np.nan, np.float32)
                qv[:, ~valid_all] = np.nan
                w_q.write(qv, r0)
            if w_m is not None:
                w_m.write(out.reshape(M * H, r1 - r0, W), r0)
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
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            if w.ds is not None:
                w.abort()
        raise
    return {"OUTPUT_MEDIAN": med_path, "OUTPUT_QUANTILES": q_path, "OUTPUT_MEMBERS": m_path,
            "members": [os.path.basename(m.folder) for m in loaded], "forecast_dates": [raster.iso(d) for d in fdates],
            "end_date": raster.iso(info.dates[e]), "valid_pixels": n_valid, "device": dev, "calibration": cal}
