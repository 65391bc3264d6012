"""Rolling-origin evaluation and the skill gate: never hand out a forecast that validation shows
to be worse than a classical one.

Why (issue 12). A backtest from one forecast origin called the ensemble a win on a stack where the
future said otherwise, and the main job delivered forecasts that its own backtest showed to lose
against persistence, with no warning on the maps. One origin is one draw of the atmosphere.

Rolling origins (:func:`rolling_origins`). Many forecast origins spread over the last
``span_years`` (2) years before the models' test period, each forecasting the full horizon, whose
targets all lie *before* the test period: the test period stays unseen (the leakage test writes
garbage into it). With spatial validation the scored pixels are the validation pixels of the
models (never a training window's target); with time validation the origins' targets lie in the
validation period. Every origin scores the ensemble median, each member and every classical
forecast of :data:`anchors.FAMILY` plus the members' own adaptive anchor, on the same pixels and
epochs: mean and spread over origins of RMSE and MAE (a CSV beside the report).

The gate (:func:`fit_gate`). The classical candidates are the family of :mod:`anchors`, the
members' own adaptive anchor and the ``local`` forecast (the family weighted by each
neighbourhood's recent track record, :func:`anchors.local_forecast`). The scored pixels are split
into three classes by the movement the ``local`` forecast expects over the horizon: the quiet
half, the next 40 % and the fastest 10 % (limits fitted on the scored pixels and stored with the
gate), because the networks may help where the ground keeps its regime and hurt where it moves
fast, or the reverse. In each class the reference ``B`` is the ``local`` forecast (:func:`reference_of`;
until session 11 the candidate with the lowest rolling-origin RMSE there, a law of one to two years
before the forecast origin), and the delivered forecast is ``B + w (E - B)`` (``E`` the ensemble
median; every member is shifted by the same amount, so the spread stays), with ``w`` per lead step
in [0, 1] fitted by least squares over the rolling origins (each origin weighing by its number of values, not by
the size of its errors, and every "better" below judged origin by origin: :mod:`origin_stats`, since session 25): ``w = 1`` keeps the ensemble, ``w = 0``
falls back to the classical forecast, in between blends them. A class with fewer than
``MIN_CLASS_SAMPLES`` scored values takes the weights and the keep / fall back decision of all values
together (until session 12 the decision was made on the class's own few values: on 135 GNSS series a
class of 207 values fell back on a 3 % difference, docs/skill.md). Where the ensemble
is worse than the reference in a class and the blend gains less than ``MIN_GAIN`` (1 %) over the
reference, the class gets the classical forecast alone. A tie (the ensemble better by less than
``MIN_GAIN``) keeps the ensemble since session 10: before, it went to the classical forecast (a network
that adds nothing measurable was judged not worth its variance), which also dropped the local blend
there and cost the fresh seeds up to 0.085 (docs/skill.md). Where the ensemble is at least as good as
``B``, a shift towards ``B``
that gains less than ``MIN_GAIN`` over the ensemble itself is not made (``w = 1``, :func:`_earned`):
on all fifteen benchmark seeds the fitted shifts gained at most 0.7 % at the rolling origins, and in
the fastest class, where the pixels of the rolling origins are not the bowls moving at the forecast
origin, a 20-30 % shift towards a lagging forecast (``mean_last_5``) cost seed 4 a quarter of its
skill (docs/skill.md). A blend's gain is cross-validated over the origins (each origin scored with
weights fitted on the others): in sample, fifteen lead weights found a 1.04 % gain in a class that
then lost 2.3x out of sample (session 6). The gate is written into the ensemble's manifest (``"gate"``) and applied by
``predict`` (and so by every entrance); the report states the verdict and where the gate acted. The
workflow's verdict also needs the held-out test period to agree (:func:`with_held_out`).

Only rolling origins whose record gives the classical fits the terms the forecast origin's record
gives may move the gate (:func:`comparable_origins`); with fewer than :data:`MIN_COMPARABLE` the gate is
held (:func:`hold`): the ensemble after the local blend is delivered and the report says why.

The local blend (:func:`local_blend`). Before the class gate, the ensemble can be blended per pixel
with the ``local`` classical forecast by their own recent track records around the pixel (the
ensemble's forecasts from the earlier origins of :func:`anchors.local_origins`, scored like the
family's). The gate always uses the blend where the history allows it: the rolling origins lie up
to two years before the forecast origin, where the ground mostly behaved as in training, while the
blend exists for regime changes near the origin, which only the recent track record can see (a
rule that dropped the blend when the rolling origins showed it more than 3 % worse cost seed 5 of
the benchmark 11 %: docs/skill.md). ``predict`` then forecasts the ensemble from those earlier
origins too (4 more forecasts per block, on a 4 x 4 lattice of pixels on a dense stack, 3 x 3 on scattered points:
:func:`record_stride_for`, kept in the gate as ``record_stride``). At the final origin they lie (mostly) in the models' test
period, which no network trained on (:func:`anchors.local_origins`).
"""
from __future__ import annotations

import csv
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..order_stats import member_median
from ..data import anchors as anc
from ..data import dataset
from ..data.baselines import terms_for_span, years_between
from ..models import modelio
from ..io import raster
from ..errors import DeformCastError
from ..progress import Progress, silent
from . import origin_stats
from .origin_stats import mae as _mae, origin_scale as _origin_scale, ratio as _ratio, rmse as _rmse
from .gate_candidates import (ANCHOR, CANDIDATES, DENSE_RECORD_STRIDE, LOCAL, RECORD_STRIDE,  # noqa: F401 (re-exported)
                              _history, candidates, gate_stride, local_blend, record_mask, record_stride_for)
from .gate_report import (ENSEMBLE_LOCAL, append_to_report, gate_sentence, report_section,  # noqa: F401
                          with_held_out)

MIN_CLASS_SAMPLES = 300
#: the smallest relative RMSE gain over the classical reference (per class, over the rolling origins)
#: for which the ensemble is kept at all: below it the simpler classical forecast is delivered
MIN_GAIN = 0.01
#: how much worse than the raw ensemble (relative RMSE over the rolling origins) the local blend may
#: look and still be used (see fit_gate and docs/skill.md)
CLASS_QUANTILES = (50.0, 90.0)
CLASS_NAMES = ("quiet half", "moving (50-90 %)", "fastest 10 %")
_MANIFEST_OWN = ("format", "format_version", "created", "horizon", "window", "members", "gate")


def rolling_origins(configs: Sequence[dict], n_epochs: int, horizon: int, window: int, dates,
                    span_years: float = 2.0, max_origins: int = 12) -> List[int]:
    """Origins (indices of the last input epoch) whose targets all lie before the test period."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    test_start = min(int(c.get("test_start", n_epochs)) for c in configs)
    last = test_start - 1 - int(horizon)
    first = max(int(window) - 1, max(int(c.get("min_end_index", 0)) for c in configs))
    if all(c.get("validation", "time") == "time" for c in configs):
        first = max(first, max(int(c.get("train_end", 0)) for c in configs) - 1)
    if last < 0:
        return []
    cutoff = dates[last].astype("int64") - int(round(span_years * 365.25))
    first = max(first, int(np.searchsorted(dates.astype("int64"), cutoff, side="left")))
    if last < first:
        return []
    n = min(int(max_origins), last - first + 1)
    return sorted(set(np.linspace(first, last, num=n).round().astype(int).tolist()))


def comparable_origins(origins: Sequence[int], dates, e: int) -> List[int]:
    """The origins whose record gives the classical fits the terms the forecast origin ``e``'s record
    gives (:func:`baselines.terms_for_span` of the span since the first epoch: under 0.95 years a line,
    under 1.9 a line and the seasons, then the quadratic term too). From an origin with a shorter
    record the all-history trajectory is a simpler function than the one delivered at ``e``, and its
    score says nothing about it (a 2-year stack's rolling origins had under a year of history, where
    smoothed persistence beat every fit; the gate delivered it, 2.3 times worse than the trajectory
    from the full record: docs/skill.md, session 9)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    want = terms_for_span(float(years_between(d[int(e)], d[0])))
    return [int(o) for o in origins if terms_for_span(float(years_between(d[int(o)], d[0]))) == want]


def hold(gate: dict, why: str) -> dict:
    """The gate with every class weight 1: the ensemble (after the local blend) is delivered as it is,
    scores and verdict kept; ``held`` says why."""
    W = np.ones_like(np.asarray(gate["weights"], dtype=np.float64))
    sc = dict(gate["scores"])
    sc["gated forecast"] = dict(sc[gate.get("gated_on", "ensemble median")])
    per_class = [dict(c, rmse_gated=c["rmse_ensemble"], mean_weight=1.0) for c in gate["per_class"]]
    return dict(gate, weights=W.tolist(), action="ensemble kept", mean_weight=1.0, scores=sc, per_class=per_class,
                held=why)


#: comparable origins (:func:`comparable_origins`) needed for the gate to act
MIN_COMPARABLE = 3


def _score_mask(configs: Sequence[dict], shape) -> Optional[np.ndarray]:
    """The validation pixels of spatially validated members (None: every pixel)."""
    c = configs[0]
    if c.get("validation") != "space":
        return None
    return dataset.validation_mask(tuple(shape), float(c.get("val_fraction") or 0.2), int(c.get("holdout_block", 16)),
                                   int(c.get("seed", 0)))


def scored(blk: np.ndarray, a0: int, r0: int, r1: int, o: int, H: int, valid: np.ndarray,
           mask: Optional[np.ndarray]):
    """``(observations (H, r1 - r0, W), scored pixels (r1 - r0, W) bool)`` of a forecast from origin ``o``
    over rows r0..r1 of a block read from row ``a0``: pixels with a forecast (``valid``), every later
    observation, and inside ``mask`` (the validation pixels of space validation) when given."""
    obs = blk[o + 1:o + 1 + H, r0 - a0:r1 - a0]
    ok = valid & np.isfinite(obs).all(axis=0)
    if mask is not None:
        ok &= mask[r0:r1]
    return obs, ok


def collect(info, loaded, configs, cov, origins: Sequence[int], H: int, dev: str, batch_size: int = 2048,
            mask: Optional[np.ndarray] = None, max_pixels: int = 20000,
            progress: Optional[Progress] = None, stride: int = RECORD_STRIDE) -> Dict[str, object]:
    """Forecasts of the members and of every classical candidate from each origin, on scored pixels.

    Returns ``{"members": [(M, H, n) per origin], "family": [(len(CANDIDATES), H, n)], "obs": [(H, n)],
    "last": [(n,)], "origins": [...], "record_stride": stride}`` in mm; ``stride``: the local track record's
    lattice (:func:`record_stride_for`).
    """
    from .member_forecasts import BLOCK_PIXELS, Plan, forecast_items, forecast_items_on, medians_on_rows, own_history

    progress = progress or silent()
    Hh, W = info.grid.shape
    rows_needed = max(1, int(np.ceil(max_pixels / max(1, W)) * (5 if mask is not None else 1)))
    halo = max([dataset.halo(c) for c in configs] + [anc.LOCAL_HALO])
    if rows_needed >= Hh:
        spans = list(raster.row_blocks(Hh, max(1, BLOCK_PIXELS // max(1, W))))
    else:  # bands of rows spread over the raster
        band = 2 * anc.LOCAL_HALO + 1
        starts = np.linspace(0, max(0, Hh - band), max(1, rows_needed // band)).astype(int)
        spans = sorted({(int(r), min(Hh, int(r) + band)) for r in starts})
    plan = Plan(loaded, configs)
    cfg0 = configs[0]
    first = plan.max_window - 1
    every = sorted(set(origins) | {p for o in origins for p in anc.local_origins(o, H) if p >= first})
    res = {o: {"members": [], "local": [], "family": [], "obs": [], "last": []} for o in origins}
    for i, (r0, r1) in enumerate(spans):
        a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
        blk = raster.read_stack(info, rows=(a0, a1))
        cov_blk = {k: v[a0:a1] for k, v in cov.items()}
        # the rolling origins on whole blocks (halo rows for the local record); the origins that only
        # feed the local track record on its pixels (record_mask), as predict computes them
        items = [(blk, a0, a0, a1, cov_blk, o) for o in origins]
        if mask is not None and own_history(plan):
            # only what is read of the members' forecasts: the scored pixels and the local track record's (session
            # 19: a third of the block under space validation; the rest was forecast for nothing)
            need = record_mask(a0, a1 - a0, W, stride)
            need[r0 - a0:r1 - a0] |= mask[r0:r1]
            fc = dict(zip(origins, forecast_items_on(items, [need] * len(items), info.dates, info.grid, loaded, plan,
                                                     H, dev, batch_size)))
        else:
            fc = dict(zip(origins, forecast_items(items, info.dates, info.grid, loaded, plan, H, dev, batch_size)))
        with np.errstate(all="ignore"):
            meds = {o: member_median(out) for o, (out, _) in fc.items()}
        meds.update(medians_on_rows(blk, a0, cov_blk, [o for o in every if o not in fc], record_mask(a0, a1 - a0, W, stride),
                                    info.dates, info.grid, loaded, plan, H, dev, batch_size))
        cache = anc.FamilyCache(blk, info.dates, int(cfg0.get("horizon", H)), cfg0.get("steps") or None)
        for o in origins:
            out, valid = fc[o]
            out, valid = out[:, :, r0 - a0:r1 - a0], valid[r0 - a0:r1 - a0]
            obs, ok = scored(blk, a0, r0, r1, o, H, valid, mask)
            if not ok.any():
                continue
            loc = local_blend(blk, a0, r0, r1, o, info.dates, cfg0, meds[o], meds.get, cache, stride=stride)
            fam = candidates(blk, a0, r0, r1, o, info.dates, H, cfg0, ok, cache)
            keep = np.isfinite(fam[: len(anc.FAMILY_NAMES)]).all(axis=(0, 1)) & np.isfinite(loc[:, ok]).all(axis=0)
            res[o]["members"].append(out[:, :, ok][:, :, keep])
            res[o]["local"].append(loc[:, ok][:, keep])
            res[o]["family"].append(fam[:, :, keep])
            res[o]["obs"].append(obs[:, ok][:, keep])
            res[o]["last"].append(blk[o, r0 - a0:r1 - a0][ok][keep])
        progress.set((i + 1) / len(spans))
    out = {"members": [], "local": [], "family": [], "obs": [], "last": [], "origins": [], "record_stride": int(stride)}
    for o in origins:
        if not res[o]["obs"]:
            continue
        out["origins"].append(int(o))
        out["members"].append(np.concatenate(res[o]["members"], axis=2))
        out["local"].append(np.concatenate(res[o]["local"], axis=1))
        out["family"].append(np.concatenate(res[o]["family"], axis=2))
        out["obs"].append(np.concatenate(res[o]["obs"], axis=1))
        out["last"].append(np.concatenate(res[o]["last"]))
    return out


def classes_of(classifier: np.ndarray, last: np.ndarray, limits: Sequence[float]) -> np.ndarray:
    """Class 0/1/2 of each pixel by the movement ``|classifier[-1] - last|`` (mm) over the horizon."""
    mv = np.abs(np.asarray(classifier)[-1] - np.asarray(last))
    return np.clip(np.searchsorted(np.asarray(limits, np.float64), np.nan_to_num(mv), side="right"),
                   0, len(CLASS_NAMES) - 1)


def _lead_weights(E, B, Y, scale=None) -> np.ndarray:
    """Least-squares blend weight per lead of ``B + w (E - B)`` against ``Y``, clipped to [0, 1]; ``scale`` (one
    factor per value) weighs each value's residual (:func:`_origin_scale`)."""
    c = E - B
    r = Y - B
    if scale is not None:
        c, r = c * scale, r * scale
    num = (c * r).sum(axis=1)
    den = (c * c).sum(axis=1)
    w = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return np.clip(w, 0.0, 1.0)


def _cv_gated(E: np.ndarray, B: np.ndarray, Y: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """``B + w (E - B)`` with the lead weights of each origin's values fitted on the other origins only."""
    out = np.empty_like(E)
    scale = _origin_scale(B, Y, origin)
    for o in np.unique(origin):
        m = origin == o
        w = _lead_weights(E[:, ~m], B[:, ~m], Y[:, ~m], None if scale is None else scale[~m])
        out[:, m] = B[:, m] + w[:, None] * (E[:, m] - B[:, m])
    return out


def _earned(w: np.ndarray, E: np.ndarray, B: np.ndarray, Y: np.ndarray, origin=None) -> np.ndarray:
    """The class's weights after the MIN_GAIN rules: where the ensemble ``E`` is at least as good as the
    reference ``B``, a shift towards ``B`` (the fitted ``w``) must gain ``MIN_GAIN`` over ``E`` (else
    ``w = 1``); where it is worse, the blend must gain ``MIN_GAIN`` over ``B`` (else ``w = 0``, the
    classical forecast). Until session 10 ``E`` had to beat ``B`` by ``MIN_GAIN`` to be kept: a tie went
    to ``B`` alone, which also dropped the local blend in that class; on the fresh seeds run with
    session 10's local blend that cost up to 0.085 of the best classical RMSE and never helped
    (docs/skill.md).

    A blend's gain is cross-validated over the rolling origins (``origin``: the origin of each value;
    each origin scored with weights fitted on the others) when there are at least two: one weight per
    lead step fitted on a class explains a 1 % gain in sample all too easily. In session 6 a shift
    fitted in sample gained 1.04 % at the rolling origins and pushed a benchmark scene's fastest class 27 %
    towards the all-history linear fit: its mining bowls went from 6.9 to 16.1 mm (docs/skill.md).

    "Better" and "gains" compare the forecasts origin by origin (:func:`_ratio`, ``ORIGIN_AGGREGATION``)."""
    if origin is not None and np.unique(origin).size >= 2:
        G = _cv_gated(E, B, Y, origin)
    else:
        G = B + w[:, None] * (E - B)
    if _ratio(E, B, Y, origin) <= 1.0:   # a tie keeps the ensemble (after its local blend); session 10
        return w if _ratio(G, E, Y, origin) <= 1.0 - MIN_GAIN else np.ones_like(w)
    return w if _ratio(G, B, Y, origin) <= 1.0 - MIN_GAIN else np.zeros_like(w)


def reference_of(names: Sequence[str], rmse) -> str:
    """The classical forecast a class falls back to: ``local`` wherever it exists, else the candidate with
    the lowest rolling-origin score (``rmse(name)``: its RMSE, or as :func:`fit_gate` passes it, its ratio to
    one common candidate origin by origin).

    Why not the best candidate at the rolling origins (sessions 1-11): those origins lie one to two years
    before the forecast origin, so their best fixed law is the law of that time. On a scene of the second
    generator (benchmarks/independent_scene.py, seed 3) the all-history line won there, the class gate put
    the moving pixels on it (weight 0), and two bowls that sped up in the last year made the delivered
    forecast 1.83 times the best classical one (the local blend alone: 1.00). ``local`` chooses among the
    same candidates by each neighbourhood's track record up to the origin of every forecast, the final one
    included, and it is scored at the rolling origins by that same rule, so the weights fitted there hold
    for it (docs/skill.md, session 12)."""
    return LOCAL if LOCAL in names else min(names, key=rmse)


def fit_gate(data: Dict[str, object]) -> Dict[str, object]:
    """Scores per origin and the gate (see the module doc). ``data`` from :func:`collect`."""
    if not data["origins"]:
        raise DeformCastError("No rolling origin could be scored: the series is too short before the test period "
                              "for the horizon. Lower HORIZON or give a longer stack.")
    Fcat = np.concatenate(data["family"], axis=2)
    usable = [c for c in range(len(CANDIDATES)) if np.isfinite(Fcat[c]).all()]
    names = [CANDIDATES[c] for c in usable]
    med = [member_median(m) for m in data["members"]]
    blended = data.get("local") or None    # the ensemble after the local blend: what the gate acts on
    M = data["members"][0].shape[0]
    per = {"ensemble median": [], **({ENSEMBLE_LOCAL: []} if blended else {}),
           **{f"member {k + 1}": [] for k in range(M)}, **{n: [] for n in names}}
    for i in range(len(data["origins"])):
        Y = data["obs"][i]
        per["ensemble median"].append(_rmse(med[i], Y))
        if blended:
            per[ENSEMBLE_LOCAL].append(_rmse(blended[i], Y))
        for k in range(M):
            per[f"member {k + 1}"].append(_rmse(data["members"][i][k], Y))
        for c, n in zip(usable, names):
            per[n].append(_rmse(data["family"][i][c], Y))
    Ycat = np.concatenate(data["obs"], axis=1)
    Ecat = np.concatenate(med, axis=1)
    Mcat = np.concatenate(data["members"], axis=2)
    preds = {"ensemble median": Ecat, **{f"member {k + 1}": Mcat[k] for k in range(M)},
             **{n: Fcat[c] for c, n in zip(usable, names)}}
    if blended:
        preds[ENSEMBLE_LOCAL] = np.concatenate(blended, axis=1)
    raw_rmse = _rmse(Ecat, Ycat)
    # the gate acts on the local blend wherever it exists (module doc: the rolling origins cannot see
    # the regime changes near the forecast origin that the blend is for)
    E_key = ENSEMBLE_LOCAL if blended else "ensemble median"
    Ecat = preds[E_key]
    pooled = {}
    counts = [o.shape[1] for o in data["obs"]]
    for name, vals in per.items():
        r = np.array(vals)
        pooled[name] = {"rmse": _rmse(preds[name], Ycat), "rmse_mean": float(r.mean()),
                        "rmse_geo": origin_stats.geometric_rmse(r, counts),
                        "rmse_std": float(r.std(ddof=1)) if r.size > 1 else 0.0,
                        "mae_mean": _mae(preds[name], Ycat), "per_origin": r.tolist()}
    origin = np.concatenate([np.full(o.shape[1], i) for i, o in enumerate(data["obs"])])
    # the best classical candidate and the verdict by the gate's aggregation over origins (origin_stats): the
    # geometric mean of a candidate's per-origin RMSEs orders the candidates as their ratios to any one of them do
    score = "rmse_geo" if origin_stats.ORIGIN_AGGREGATION == "geometric" else "rmse"
    best = min(names, key=lambda n: pooled[n][score])
    classifier = LOCAL if LOCAL in names else best
    Ccat = Fcat[CANDIDATES.index(classifier)]
    Lcat = np.concatenate(data["last"])
    limits = [float(np.percentile(np.abs(Ccat[-1] - Lcat), q)) for q in CLASS_QUANTILES]
    cls = classes_of(Ccat, Lcat, limits)
    refs, weights = [], []
    Bcat = np.empty_like(Ecat)
    for k in range(len(CLASS_NAMES)):
        m = cls == k
        # the values the class is judged on: its own, or all of them where it has too few to judge it apart
        j = m if m.sum() >= MIN_CLASS_SAMPLES else np.ones_like(m)
        ref = reference_of(names, lambda n: _ratio(Fcat[CANDIDATES.index(n)][:, j], Fcat[usable[0]][:, j], Ycat[:, j],
                                                   origin[j]))
        B = Fcat[CANDIDATES.index(ref)]
        sc = _origin_scale(B[:, j], Ycat[:, j], origin[j])
        w = _earned(_lead_weights(Ecat[:, j], B[:, j], Ycat[:, j], sc), Ecat[:, j], B[:, j], Ycat[:, j], origin[j])
        Bcat[:, m] = B[:, m]
        refs.append(ref)
        weights.append(w)
    W = np.asarray(weights)
    gated = Bcat + W[cls].T * (Ecat - Bcat)
    g_per, start = [], 0
    for i in range(len(data["origins"])):
        n = data["obs"][i].shape[1]
        g_per.append(_rmse(gated[:, start:start + n], data["obs"][i]))
        start += n
    pooled["gated forecast"] = {"rmse": _rmse(gated, Ycat), "rmse_mean": float(np.mean(g_per)),
                                "rmse_geo": origin_stats.geometric_rmse(g_per, counts),
                                "rmse_std": float(np.std(g_per, ddof=1)) if len(g_per) > 1 else 0.0,
                                "mae_mean": _mae(gated, Ycat), "per_origin": g_per}
    per_class = []
    for k in range(len(CLASS_NAMES)):
        m = cls == k
        per_class.append({"class": CLASS_NAMES[k], "n": int(m.sum()), "reference": refs[k],
                          "rmse_ensemble": _rmse(Ecat[:, m], Ycat[:, m]),
                          "rmse_reference": _rmse(Bcat[:, m], Ycat[:, m]),
                          "rmse_gated": _rmse(gated[:, m], Ycat[:, m]), "mean_weight": float(np.mean(W[k]))})
    ratio = _ratio(preds["ensemble median"], preds[best], Ycat, origin)
    wins = sum(1 for a, b in zip(pooled["ensemble median"]["per_origin"], pooled[best]["per_origin"]) if a < b)
    action = ("ensemble kept" if W.min() >= 0.999 else "classical forecast" if W.max() <= 0.001 else "blended")
    return {"reference": best, "references": refs, "classifier": classifier, "weights": W.round(6).tolist(),
            "class_limits_mm": limits, "class_names": list(CLASS_NAMES), "origins": data["origins"],
            "n_values": int(Ycat.shape[1]), "scores": pooled, "per_class": per_class,
            "verdict": "win" if ratio < 1.0 else "lose", "origins_won": wins, "n_origins": len(data["origins"]),
            "mean_weight": float(W.mean()), "action": action, "ratio": ratio,
            "ratio_pooled": raw_rmse / pooled[best]["rmse"] if pooled[best]["rmse"] > 0 else float("nan"),
            "aggregation": origin_stats.ORIGIN_AGGREGATION,
            "local_blend": E_key == ENSEMBLE_LOCAL, "gated_on": E_key,
            "record_stride": int(data.get("record_stride") or RECORD_STRIDE)}


def apply_gate(out: np.ndarray, cands: np.ndarray, last: np.ndarray, gate: dict) -> np.ndarray:
    """Shift members ``out`` (M, H, n) in place: median -> ``B + w (median - B)`` per pixel.

    ``cands`` (len(CANDIDATES), H, n) from :func:`candidates` at the same origin; ``B`` is the class's
    reference (``gate["references"]``), the class from the movement its ``classifier`` forecasts;
    ``last`` (n,) the last value. Pixels where ``B`` is NaN are left as they are.
    """
    W = np.asarray(gate["weights"], np.float64)[:, : out.shape[1]]
    refs = gate.get("references") or [gate["reference"]] * W.shape[0]
    cls = classes_of(cands[CANDIDATES.index(gate.get("classifier", gate["reference"]))], last,
                     gate["class_limits_mm"])
    B = np.empty(out.shape[1:])
    for k, ref in enumerate(refs):
        m = cls == k
        B[:, m] = cands[CANDIDATES.index(ref)][:, m]
    with np.errstate(all="ignore"):
        med = member_median(out)
        shift = (1.0 - W[cls].T) * (B - med)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    out += shift[None].astype(out.dtype)
    return out


def write_csv(gate: dict, path: str, dates=None) -> str:
    """One row per (forecast, origin) with RMSE, plus the pooled rows; the gate's weights per class."""
    d = None if dates is None else np.asarray(dates, dtype="datetime64[D]")
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["forecast", "origin", "origin_date", "rmse_mm"])
        for name, s in gate["scores"].items():
            for o, r in zip(gate["origins"], s["per_origin"]):
                w.writerow([name, o, "" if d is None else raster.iso(d[o]), f"{r:.4f}"])
        for name, s in gate["scores"].items():
            w.writerow([name, "pooled", "", f"{s['rmse']:.4f}"])
            w.writerow([name, "mean over origins", "", f"{s['rmse_mean']:.4f}"])
            if "rmse_geo" in s:
                w.writerow([name, "geometric mean over origins", "", f"{s['rmse_geo']:.4f}"])
            w.writerow([name, "std over origins", "", f"{s['rmse_std']:.4f}"])
    return path


def gate_data(stack_path: str, model_folder: str, dates=None, covariates: Sequence[str] = (), device: str = "auto",
              progress: Optional[Progress] = None):
    """``(info, data, why)`` for :func:`fit_gate`: ``data`` from :func:`collect` on the comparable rolling origins,
    ``why`` the reason to :func:`hold` the gate, or None (also for benchmarks/gate_aggregation.py)."""
    from .member_forecasts import load_members, members_covariates
    from ..learn.runtime import resolve_device

    progress = progress or silent()
    info = raster.open_stack(stack_path, dates, progress=progress)
    dev = resolve_device(device)
    loaded = load_members(model_folder, None, device=dev, info=info)
    configs = [m.meta.get("data_config") or {} for m in loaded]
    H = int(loaded[0].meta["horizon"])
    cov = members_covariates(configs, covariates, info.grid)
    win = max(int(m.meta["window"]) for m in loaded)
    origins = rolling_origins(configs, info.n_epochs, H, win, info.dates)
    same = comparable_origins(origins, info.dates, info.n_epochs - 1)
    why = None
    if len(same) >= MIN_COMPARABLE:
        if len(same) < len(origins):
            progress.log(f"{len(origins) - len(same)} rolling origins left out: their record is too short for the "
                         "classical fits the forecast origin gets.")
        origins = same
    elif origins:
        why = (f"only {len(same)} of the {len(origins)} rolling origins have a record long enough for the classical "
               f"fits the forecast origin gets (the stack spans {float(years_between(info.dates[-1], info.dates[0])):.1f} "
               "years): the gate does not switch to a classical forecast on that evidence")
    progress.log(f"Rolling-origin evaluation: {len(origins)} origins before the test period, horizon {H} ...")
    data = collect(info, loaded, configs, cov, origins, H, dev, mask=_score_mask(configs, info.grid.shape),
                   progress=progress.sub(0.0, 0.95), stride=record_stride_for(info))
    return info, data, why


def run_gate(stack_path: str, model_folder: str, dates=None, covariates: Sequence[str] = (), device: str = "auto",
             csv_path: Optional[str] = None, write: bool = True, progress: Optional[Progress] = None) -> dict:
    """Rolling-origin evaluation of an ensemble folder, gate fitted and written into its manifest."""
    progress = progress or silent()
    info, data, why = gate_data(stack_path, model_folder, dates, covariates, device, progress)
    gate = fit_gate(data)
    if why:
        gate = hold(gate, why)
    gate["origin_dates"] = [raster.iso(info.dates[o]) for o in gate["origins"]]
    if csv_path:
        write_csv(gate, csv_path, info.dates)
        gate["csv"] = csv_path
    if write:
        man = modelio.read_manifest(model_folder)
        modelio.write_manifest(model_folder, [{k: v for k, v in m.items() if k != "path"} for m in man["members"]],
                               extra={k: v for k, v in man.items() if k not in _MANIFEST_OWN} | {"gate": {
                                   k: gate[k] for k in ("reference", "references", "classifier", "weights", "class_limits_mm",
                                                        "class_names", "local_blend", "verdict", "action",
                                                        "ratio", "ratio_pooled", "aggregation", "origin_dates",
                                                        "record_stride")}
                                                        | ({"held": gate["held"]} if gate.get("held") else {})})
    progress.log(gate_sentence(gate))
    progress.set(1.0)
    return gate
