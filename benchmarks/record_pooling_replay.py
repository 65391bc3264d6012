"""Two ways to make the local forecast's candidate weights less noisy (session 35, docs/skill.md, both measured
and not taken), replayed like ``season_record_replay.py`` from several origins of each scene, classical forecasts
only; ratios to the best ordinary family member chosen in hindsight, against the truth and the expected observation.

* ``leads B``: one weight vector per run of lead steps instead of one for the whole lead. The candidates' record
  is split into ``B`` runs of lead steps (1-5, 6-10, 11-15 at lead 15 and B = 3); each run is scored on those steps
  of every record origin that reaches them, pooled as shipped, and weighs the candidates for the same steps of the
  forecast. Why: the record's late origins score only the first steps, where candidates that follow the last
  acquisitions win, while the forecast's late steps may need a longer fit.
* ``shrink k, N classes``: each pixel's pooled record shrunk towards the mean record of the scene's pixels of the
  same class of evidence for a trend (N quantile classes of |v| / se of the two-year velocity, or of |v|),
  ``(pooled + k * class mean) / (1 + k)``, as the blend weight is shrunk towards the scene's (session 18). Why: on
  the second generator a 15 x 15 neighbourhood holds few independent draws of the atmosphere.

* ``shrink by evidence``: the shrink of the first version of what was then shipped (``pooling.shrink_to_class``),
  with the sampling variance from the guided box instead of the plain one.

All are put into ``anchors.local_forecast`` from outside (its ``record`` and ``guided_box_mean``). They were measured
against the record of session 34: run with ``DEFORMCAST_EVIDENCE_CLASSES=0`` for those figures (without it they
come on top of the shipped shrink).

Usage::

    .venv/bin/python benchmarks/record_pooling_replay.py --out build/rpr.json build/srr/*/seed_*
"""
import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import anchors as anc  # noqa: E402
from deformcast.algorithms.data import track_record as tr  # noqa: E402
from season_record_replay import H, replay, summarise  # noqa: E402

#: name -> ("leads", B) or ("shrink", k, classes, key)
VARIANTS = {"shipped": None, "leads 2": ("leads", 2), "leads 3": ("leads", 3), "leads 5": ("leads", 5),
            "shrink 1, 5 classes of |v|/se": ("shrink", 1.0, 5, "t"),
            "shrink 1, 5 classes of |v|": ("shrink", 1.0, 5, "v"),
            "shrink 0.3, 5 classes of |v|/se": ("shrink", 0.3, 5, "t"),
            "shrink 3, 5 classes of |v|/se": ("shrink", 3.0, 5, "t"),
            "shrink 1, one class": ("shrink", 1.0, 1, "t"),
            "shrink by evidence, 5 classes": ("eb", 5)}


def lead_runs(lead: int, n: int) -> list:
    """``n`` runs of lead steps ``(lo, hi)`` (steps lo .. hi - 1, from 0) covering ``0 .. lead - 1``."""
    edges = np.linspace(0, int(lead), int(n) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def record_on_steps(lo: int, hi: int):
    """``track_record.record`` over the lead steps ``lo .. hi - 1`` of each origin only (the other epochs weigh 0)."""
    def rec(flat, lead, origins, forecasts, weights=None, errors=None, keep=None):
        T = flat.shape[0]
        base = np.ones(T) if weights is None else np.asarray(weights, dtype=np.float64)
        err, n = None, 0
        for o in origins:
            m = min(int(lead), T - 1 - int(o))
            if m <= lo:
                continue
            w = np.zeros(T)
            sl = slice(int(o) + 1 + lo, int(o) + 1 + min(hi, m))
            w[sl] = base[sl]
            r = tr.record(flat, lead, [o], forecasts, w, errors, keep)
            if r is not None:
                err, n = (r if err is None else err + r), n + 1
        return None if n == 0 else err / n
    return rec


def shrunk_pooling(k: float, classes: int, key: str):
    """``guided_box_mean`` whose result is shrunk towards the mean record of each class of the velocity guide."""
    box_mean = anc.guided_box_mean

    def pooled(err, box, guide):
        out = box_mean(err, box, guide)
        if guide is None:
            return out
        C = err.shape[0]
        v, se = guide
        v, se = np.asarray(v).reshape(-1), np.asarray(se).reshape(-1)
        e2, o2 = err.reshape(C, -1), out.reshape(C, -1).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(v) / se if key == "t" else np.abs(v)
        ok = np.isfinite(z) & np.isfinite(e2).all(axis=0)
        if ok.sum() < 10:
            return out
        edges = np.quantile(z[ok], np.linspace(0, 1, classes + 1)[1:-1])
        cls = np.searchsorted(edges, np.where(np.isfinite(z), z, 0.0))
        for b in range(classes):
            inb = cls == b
            if (inb & ok).any():
                o2[:, inb] = (o2[:, inb] + k * e2[:, inb & ok].mean(axis=1)[:, None]) / (1.0 + k)
        return o2.reshape(out.shape)
    return pooled


def evidence_pooling(classes: int, per_origin: list):
    """``guided_box_mean`` whose result is shrunk towards the mean record of each class of |v| / se by the weight
    empirical Bayes gives it: ``s2 / (s2 + V)``, ``s2`` the pixel's sampling variance of its pooled record (the
    variance over the record origins of each origin's pooled record, over their number), ``V`` the spread of the
    pooled records between the pixels of the class that the sampling variance does not explain. ``per_origin``:
    the record of each origin ((C, n) each), filled by :func:`recording`."""
    box_mean = anc.guided_box_mean

    def pooled(err, box, guide):
        out = box_mean(err, box, guide)
        if guide is None or len(per_origin) < 2:
            return out
        C = err.shape[0]
        po = np.stack([box_mean(r.reshape(err.shape), box, guide).reshape(C, -1) for r in per_origin])
        s2 = po.var(axis=0, ddof=1) / po.shape[0]
        v, se = (np.asarray(a).reshape(-1) for a in guide)
        o2 = out.reshape(C, -1).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(v) / se
        ok = np.isfinite(z) & np.isfinite(o2).all(axis=0) & np.isfinite(s2).all(axis=0)
        if ok.sum() < 10:
            return out
        edges = np.quantile(z[ok], np.linspace(0, 1, classes + 1)[1:-1])
        cls = np.searchsorted(edges, np.where(np.isfinite(z), z, 0.0))
        for b in range(classes):
            inb, sel = cls == b, (cls == b) & ok
            if sel.sum() < 2:
                continue
            m = o2[:, sel].mean(axis=1)
            V = np.maximum(o2[:, sel].var(axis=1) - s2[:, sel].mean(axis=1), 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                lam = np.where(np.isfinite(s2[:, inb]), s2[:, inb] / (s2[:, inb] + V[:, None]), 0.0)
            lam = np.nan_to_num(lam, nan=0.0)
            o2[:, inb] = (1.0 - lam) * o2[:, inb] + lam * m[:, None]
        return o2.reshape(out.shape)
    return pooled


def recording(per_origin: list):
    """``track_record.record`` that also keeps each origin's record in ``per_origin``."""
    def rec(flat, lead, origins, forecasts, weights=None, errors=None, keep=None):
        per_origin.clear()
        for o in origins:
            r = tr.record(flat, lead, [o], forecasts, weights, errors)
            if r is not None:
                per_origin.append(r)
        return tr.record(flat, lead, origins, forecasts, weights, errors, keep)
    return rec


def local_variant(spec, y, o, hd, td, tf, fam, cache):
    def one():
        return anc.local_forecast(y[:o + 1], hd, td, H, tf, family=fam, past_family=cache,
                                  origins=anc.candidate_origins(o, H)).reshape(H, -1)
    if spec is None:
        return one()
    saved = anc.record, anc.guided_box_mean
    try:
        if spec[0] == "shrink":
            anc.guided_box_mean = shrunk_pooling(*spec[1:])
            return one()
        if spec[0] == "eb":
            per_origin = []
            anc.record, anc.guided_box_mean = recording(per_origin), evidence_pooling(spec[1], per_origin)
            return one()
        out = np.empty((H, y[0].size))
        for lo, hi in lead_runs(H, spec[1]):
            anc.record = record_on_steps(lo, hi)
            out[lo:hi] = one()[lo:hi]
        return out
    finally:
        anc.record, anc.guided_box_mean = saved


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--variants", nargs="+", default=None, help="only these (default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    names = [n for n in VARIANTS if not args.variants or n in args.variants]

    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, H, tf)
        return {n: local_variant(VARIANTS[n], y, o, hd, td, tf, fam, cache) for n in names}

    allres = {}
    for f in args.scenes:
        allres[f] = replay(f, args.origins, forecasts)
        print(f, " | ".join(f"{n} {np.mean(v):.3f}" for n, v in allres[f]["truth"].items()), flush=True)
    summarise(allres, args.out)


if __name__ == "__main__":
    main()
