"""Forecast scores: RMSE, MAE and R^2, per horizon step, overall, and per zone; NaN ignored.

Conventions: ``pred`` and ``truth`` are ``(N, H)`` arrays (N pixels/samples x H horizon steps,
mm). Rasters ``(H, rows, cols)`` go through :func:`evaluate_maps`. A pair counts only where both
values are finite. R^2 = 1 - SSE / SST with SST about the mean of the truth in the same group
(per step: that step's mean; overall: the pooled mean), so an R^2 of cumulative displacement
rewards getting the spatial pattern right; it is NaN where the truth has no variance or fewer
than two values.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from .errors import DeformCastError


def _pairs(pred, truth):
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        raise DeformCastError(f"Forecast {p.shape} and truth {t.shape} differ in shape; compare "
                              "rasters of the same grid and number of epochs.")
    ok = np.isfinite(p) & np.isfinite(t)
    return p[ok], t[ok]


def scores(pred, truth) -> Dict[str, float]:
    """{rmse, mae, r2, bias, n} over all finite pairs (NaN scores when there is none)."""
    p, t = _pairs(pred, truth)
    n = int(p.size)
    if n == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "r2": float("nan"), "bias": float("nan"), "n": 0}
    err = p - t
    sse = float(np.sum(err ** 2))
    sst = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - sse / sst if n > 1 and sst > 0 else float("nan")
    return {"rmse": float(np.sqrt(sse / n)), "mae": float(np.mean(np.abs(err))), "r2": r2,
            "bias": float(np.mean(err)), "n": n}


def rmse(pred, truth) -> float:
    return scores(pred, truth)["rmse"]


def mae(pred, truth) -> float:
    return scores(pred, truth)["mae"]


def r2(pred, truth) -> float:
    return scores(pred, truth)["r2"]


def evaluate(pred, truth, zones: Optional[np.ndarray] = None,
             zone_names: Optional[Dict[int, str]] = None) -> dict:
    """Scores of an ``(N, H)`` forecast.

    Returns ``{"overall": scores, "per_step": [scores for each step], "per_zone":
    {zone name: {"overall": scores, "per_step": [...]}}}``; ``zones`` (N,) integer labels
    (0 or negative/NaN = outside every zone), ``zone_names`` label -> name (default
    ``zone <label>``).
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.ndim == 1:
        p, t = p[:, None], t[:, None]
    if p.shape != t.shape:
        raise DeformCastError(f"Forecast {p.shape} and truth {t.shape} differ in shape.")
    out = {"overall": scores(p, t), "per_step": [scores(p[:, h], t[:, h]) for h in range(p.shape[1])],
           "per_zone": {}}
    if zones is not None:
        z = np.asarray(zones, dtype=np.float64).reshape(-1)
        if z.size != p.shape[0]:
            raise DeformCastError(f"The zone raster has {z.size} pixels but the forecast {p.shape[0]}; "
                                  "give a zone raster on the stack grid.")
        labels = np.unique(z[np.isfinite(z) & (z > 0)]).astype(np.int64)
        for lab in labels:
            m = z == lab
            name = (zone_names or {}).get(int(lab), f"zone {int(lab)}")
            out["per_zone"][name] = {"overall": scores(p[m], t[m]),
                                     "per_step": [scores(p[m, h], t[m, h]) for h in range(p.shape[1])]}
    return out


def evaluate_maps(pred_maps, truth_maps, zones: Optional[np.ndarray] = None,
                  zone_names: Optional[Dict[int, str]] = None) -> dict:
    """Like :func:`evaluate` for rasters: ``pred_maps``/``truth_maps`` (H, rows, cols), zones (rows, cols)."""
    p = np.asarray(pred_maps)
    t = np.asarray(truth_maps)
    if p.ndim == 2:
        p, t = p[None], t[None]
    if p.shape != t.shape:
        raise DeformCastError(f"Forecast {p.shape} and truth {t.shape} differ in shape.")
    return evaluate(p.reshape(p.shape[0], -1).T, t.reshape(t.shape[0], -1).T,
                    None if zones is None else np.asarray(zones).reshape(-1), zone_names)


def table(results: Dict[str, dict], keys: Sequence[str] = ("rmse", "mae", "r2")) -> list:
    """``{method: evaluate(...)}`` -> rows ``[method, rmse, mae, r2, n]`` (overall), for reports."""
    rows = []
    for name, res in results.items():
        o = res["overall"]
        rows.append([name] + [o[k] for k in keys] + [o["n"]])
    return rows
