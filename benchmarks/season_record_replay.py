"""The local track record's season (session 32, docs/skill.md): the ``local`` classical forecast with its shipped
record (four origins within the last horizon, scored on the epochs up to the forecast origin) against records that
also hold origins about a year back, whose targets fall in the same season as the forecast's, replayed like
``combination_replay.py`` from several origins of each scene, classical forecasts only (no run's members needed).

Why: at a 15-epoch horizon of 12-day acquisitions the shipped record judges the candidates on the half year before
the origin, the opposite phase of an annual cycle to the half year it forecasts. On the second generator's seed 35
(session 32) ``local`` scored 6.17 mm in its mining zone and 3.13 mm in its background against 2.55 and 2.19 for
the best trajectory fits; the future was a summer with a 5.5 mm seasonal amplitude.

Since session 34 ``shipped`` is the candidates' record of :func:`anchors.candidate_origins` (seven origins over the
same recent span) and ``recent`` the four origins above.

``scenes`` are folders holding ``scene/stack.tif`` and ``scene/truth.tif`` (``bench_skill.py`` runs, or scenes
written with ``--make``). Ratios to the best ordinary family member chosen in hindsight at each origin, against the
truth and the expected observation; the mean over origins per scene, then median / geometric mean / worst.

Usage::

    .venv/bin/python benchmarks/season_record_replay.py --make ours:200-209 ind:100-109 --root build/srr
    .venv/bin/python benchmarks/season_record_replay.py --out build/srr.json build/srr/*/seed_*
"""
import argparse
import json
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from combination_replay import add_ratios, print_summary  # noqa: E402
from deformcast.algorithms.data import anchors as anc, step_detect  # noqa: E402
from deformcast.algorithms.data.baselines import TimeFunction  # noqa: E402
from deformcast.algorithms.io import raster  # noqa: E402

H = 15
YEAR = 30      # epochs of 12 days in a year (365.25 / 12 = 30.4)


def variants(e: int, L: int) -> dict:
    """The record's origins of each variant at origin ``e``: ``shipped`` those of :func:`anchors.candidate_origins`
    (seven over the recent span since session 34), ``recent`` the four of :func:`anchors.local_origins` (sessions 4-33,
    the ``shipped`` of session 32's measurement)."""
    shipped = anc.candidate_origins(e, L)
    return {"shipped": shipped, "recent": anc.local_origins(e, L),
            "+ a year back": sorted(shipped + [e - YEAR]),
            "+ a year back, two": sorted(shipped + [e - YEAR - L // 3, e - YEAR]),
            "a year back only (same season)": [e - YEAR - L // 3, e - YEAR]}


#: the second generator's scenes as written (``ind``) and with one part of their physics taken out, the rest drawn
#: the same (session 39: neither the stratified troposphere nor the ground's random walk is why the local forecast
#: reads above the best classical forecast there against the truth)
IND_KINDS = {"ind": {}, "ind-nostrat": {"strat": 0.0}, "ind-nowalk": {"walk": 0.0}}


def make(spec: str, root: str) -> list:
    kind, rng = spec.split(":")
    a, b = (int(x) for x in rng.split("-"))
    out = []
    for seed in range(a, b + 1):
        folder = os.path.join(root, kind, f"seed_{seed}")
        if not os.path.isfile(os.path.join(folder, "scene", "truth.tif")):
            if kind == "blind":
                import blind_scene
                blind_scene.write(os.path.join(folder, "scene"), seed, n_future=H)
            elif kind in IND_KINDS:
                import independent_scene
                independent_scene.write(os.path.join(folder, "scene"), seed, n_future=H, **IND_KINDS[kind])
            else:
                from deformcast.algorithms.data.synthetic import write_scene
                write_scene(os.path.join(folder, "scene"), seed=seed, physics="varied", width=100, height=80,
                            n_epochs=150, n_future=H, step_days=12)
        out.append(folder)
    return out


def scene_arrays(folder: str):
    """A written scene's stack ``y`` (T, R, W) and ``flat`` (T, R*W), dates ``d``, truth ``tr`` (T + future, R*W),
    the reference epoch's noise ``ref``, the time function of the steps found in the stack ``tf``, the dates with
    :data:`H` future ones ``dd`` and the last epoch ``e``."""
    info = raster.open_stack(os.path.join(folder, "scene", "stack.tif"))
    y = raster.read_stack(info).astype(np.float64)
    T, R, W = y.shape
    flat = y.reshape(T, -1)
    d = np.asarray(info.dates, dtype="datetime64[D]")
    tr = raster.read_raster(os.path.join(folder, "scene", "truth.tif"))[0].reshape(-1, R * W).astype(np.float64)
    ref = np.nanmean(flat - tr[:T], axis=0)
    found = step_detect.detect_steps(y, d)
    tf = TimeFunction(step_dates=tuple(np.datetime64(f["date"], "D") for f in found)) if found else None
    dd = np.concatenate([d, [d[-1] + (d[-1] - d[-2]) * (k + 1) for k in range(H)]])
    return y, flat, d, tr, ref, tf, dd, T - 1


def replay(folder: str, steps, forecasts) -> dict:
    """Ratios (:func:`combination_replay.add_ratios`) of the forecasts ``forecasts(y, o, hd, td, tf, fam)`` returns
    (a dict name -> (h, pixels)) from each origin ``o`` = last epoch - ``steps``, classical family ``fam`` beside."""
    y, flat, d, tr, ref, tf, dd, e = scene_arrays(folder)
    res = {"truth": {}, "expected": {}}
    fut = os.path.join(folder, "scene", "future_observed.tif")      # the later acquisitions, where written
    obs = (np.concatenate([flat, raster.read_raster(fut)[0].reshape(-1, flat.shape[1]).astype(np.float64)])
           if os.path.isfile(fut) else None)
    for k in steps:
        o = e - k
        hd, td = d[:o + 1], dd[o + 1:o + H + 1]
        fam = anc.family_forecasts(flat[:o + 1], hd, td, tf)
        add_ratios(res, forecasts(y, o, hd, td, tf, fam), fam, tr, ref, o, obs)
    return res


def local(y, o: int, hd, td, tf, fam, cache=None, **kw) -> np.ndarray:
    """The local forecast (:data:`H`, pixels) from origin ``o`` of the stack ``y``, as ``anchors`` holds it now (the
    replays' variants patch it), with the family ``fam``; ``cache``: the :class:`anchors.FamilyCache` of that
    origin when the variants share it (a new one otherwise, as a variant of ``LOCAL_EXTRA`` needs)."""
    if cache is None:
        cache = anc.FamilyCache(y[:o + 1], hd, H, tf)
    return anc.local_forecast(y[:o + 1], hd, td, H, tf, family=fam, past_family=cache, **kw).reshape(H, -1)


def patched_variants(variants, only, attr: str, make, compute, module=anc) -> dict:
    """``compute()`` once per variant ``name`` of ``variants`` (all, or those in ``only``) with ``module.<attr>``
    (default ``anchors``) replaced by ``make(name)`` (None: left as shipped), restored afterwards: how the replays put
    a variant into the local forecast from outside."""
    out = {}
    shipped = getattr(module, attr)
    for name in variants:
        if only and name not in only:
            continue
        new = make(name)
        if new is not None:
            setattr(module, attr, new)
        try:
            out[name] = compute()
        finally:
            setattr(module, attr, shipped)
    return out


def run(folder: str, steps, only=None) -> dict:
    def forecasts(y, o, hd, td, tf, fam):
        cache = anc.FamilyCache(y[:o + 1], hd, H, tf)
        return {name: local(y, o, hd, td, tf, fam, cache, origins=origins)
                for name, origins in variants(o, H).items() if not only or name in only}

    return replay(folder, steps, forecasts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("scenes", nargs="*")
    ap.add_argument("--make", nargs="*", default=[],
                    help="kind:first-last, kind ours, ind, ind-nostrat, ind-nowalk or blind: write these scenes")
    ap.add_argument("--root", default="build/season_record")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--variants", nargs="+", default=None, help="only these (default: all)")
    args = ap.parse_args(argv)
    scenes = list(args.scenes)
    for spec in args.make:
        scenes += make(spec, args.root)
    warnings.simplefilter("ignore")
    allres = {}
    for f in scenes:
        r = run(f, args.origins, args.variants)
        allres[f] = r
        print(f, " | ".join(f"{n} {np.mean(v):.3f}" for n, v in r["truth"].items()), flush=True)
    summarise(allres, args.out)


def replay_main(run, description: str, argv=None, before=None, after=None) -> None:
    """The command line of a replay of variants of the local forecast (``decay_replay.py``, ``season_offer_replay.py``):
    ``run(folder, origins, variants)`` per scene, one line per scene, then :func:`summarise`. ``before()`` runs before
    each scene, ``after(folder, result)`` returns more text for its line."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("scenes", nargs="+", help="folders holding scene/stack.tif and scene/truth.tif")
    ap.add_argument("--origins", type=int, nargs="+", default=[15, 12, 9, 6, 3, 0])
    ap.add_argument("--variants", nargs="+", default=None, help="only these (default: all)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    allres = {}
    for f in args.scenes:
        if before is not None:
            before()
        allres[f] = run(f, args.origins, args.variants)
        more = after(f, allres[f]) if after is not None else ""
        print(f, " | ".join(f"{n} {np.mean(v):.3f}" for n, v in allres[f]["truth"].items()) + more, flush=True)
    summarise(allres, args.out)


#: the measures of :func:`combination_replay.add_ratios`, as the summaries name them
MEASURES = {"truth": "the truth", "expected": "the expected observation",
            "fair": "the truth, relative to the member best against the expected observation",
            "observed": "the later acquisitions"}


def summarise(allres: dict, out=None) -> None:
    """Print each generator's summary of the replayed scenes ``allres`` (folder -> ratios) and write them to ``out``."""
    scenes = list(allres)
    groups = {"ours": [f for f in scenes if "/ind" not in f and "/blind" not in f],
              "second generator": [f for f in scenes if "/ind" in f],
              "third generator": [f for f in scenes if "/blind" in f]}
    for g, fs in groups.items():
        for tn in [t for t in ("truth", "expected", "fair", "observed") if fs and t in allres[fs[0]]]:
            print_summary({f: allres[f] for f in fs}, tn,
                          f"{g}, against {MEASURES[tn]} (mean over origins; median / geometric mean / worst over "
                          f"{len(fs)} scenes)")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(allres, fh, indent=1)


if __name__ == "__main__":
    main()
