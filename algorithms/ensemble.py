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


def predict_ensemble(stack_path: str, model_folder: str, out_median: str, out_quantiles: Optional[str] = None,
                     out_members: Optional[str] = None, horizon: Optional[int] = None, members=None,
                     quantiles: Sequence[float] = (10, 50, 90), dates=None, covariates: Optional[Sequence[str]] = None,
                     end_date=None, block_rows: int = 64, device: str = "auto", batch_size: int = 2048,
                     progress: Optional[Progress] = None) -> Dict[str, object]:
    """Forecast with every member, write median / quantiles / members rasters; return a summary."""
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
    # pass 1 is the forecast itself; the median style needs a range, taken from the first blocks
    med_path, q_path, m_path = out_median, out_quantiles, out_members
    meta = {"DEFORMCAST_MODEL_FOLDER": os.path.abspath(model_folder), "DEFORMCAST_END_DATE": raster.iso(info.dates[e]),
            "DEFORMCAST_MEMBERS": json.dumps([os.path.basename(m.folder) for m in loaded])}
    w_med = raster.RasterWriter(med_path, info.grid, H, [raster.iso(d) for d in fdates], metadata=meta)
    w_q = raster.RasterWriter(q_path, info.grid, len(qs), [f"P{q:g} {raster.iso(fdates[-1])}" for q in qs],
                              metadata=meta) if q_path else None
    w_m = raster.RasterWriter(m_path, info.grid, M * H, member_band_names(M, fdates), metadata=meta) if m_path else None
    writers = [w for w in (w_med, w_q, w_m) if w is not None]
    halo = max(dataset.halo(c) for c in configs) if configs else 0
    n_valid = 0
    final_vals = []
    try:
        blocks = list(raster.row_blocks(Hh, block_rows))
        for bi, (r0, r1) in enumerate(blocks):
            a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
            # all epochs: in a backtest the residual target's classical forecast needs the real dates of
            # the forecast epochs (forecast_inputs reads values only up to end_index)
            blk = raster.read_stack(info, rows=(a0, a1))
            cov_blk = {k: v[a0:a1] for k, v in cov.items()}
            out = np.full((M, H, r1 - r0, W), np.nan, np.float32)
            valid_all = np.ones((r1 - r0, W), bool)
            for k, (m, cfg) in enumerate(zip(loaded, configs)):
                sub = progress.sub((bi + k / M) / len(blocks), (bi + (k + 1) / M) / len(blocks))
                X, valid, anchor = dataset.forecast_inputs(blk, info.dates, info.grid, a0, cfg,
                                                           m.meta["normalisation"], cov_blk or None,
                                                           end_index=e, out_rows=(r0, r1))
                if X.shape[0]:
                    y = m.predict(X, batch_size=batch_size, device=dev, progress=sub)
                    mm = dataset.to_mm(y, anchor, m.meta["normalisation"])[:, :H]
                    out[k][:, valid] = mm.T
                valid_all &= valid
                progress.check()
            out[:, :, ~valid_all] = np.nan
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
            "end_date": raster.iso(info.dates[e]), "valid_pixels": n_valid, "device": dev}
