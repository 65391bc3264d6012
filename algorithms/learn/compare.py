"""Does tuning pay, and which architecture is better? Repeated runs + Welch t-tests + BH.

For every chosen architecture (and coding strategy, if several are given) ``compare`` makes
``REPEATS`` independent runs with the **hand-set defaults** (the registry's defaults, window 12
epochs unless WINDOW is set; repeat ``r`` trains with seed ``SEED + r``) and ``REPEATS``
independent **TPE** runs (``tune`` with ``N_TRIALS`` trials, sampler/training seeds
``SEED + 1000 (r + 1)``, the best trial by validation RMSE is kept). Every run is scored on the
**test period** (RMSE in mm over the test windows of :func:`algorithms.data.dataset.prepare`: all
windows whose targets lie in the last ``n_test`` epochs), which neither training nor tuning saw.

The windows are sampled once (seed ``SEED``) and shared by all runs, so the spread between
repeats measures what the paper's comparison is about: the randomness of initialisation,
shuffling and the search, not of the data sample.

Tests (:mod:`algorithms.stats`): Welch's t-test of TPE vs manual per architecture/strategy, and
between every pair of architectures/strategies within each method (TPE runs against TPE runs,
manual against manual); all p-values of one comparison form a single family adjusted with
Benjamini–Hochberg at ``ALPHA``. Each row also gives the mean difference with its 95 % Welch CI
and Hedges' g. With REPEATS = 2 the tests have very little power (df <= 2); 5 or more repeats
are advisable for a conclusion, 2 only for a trial run.

Outputs: the tests table (CSV), a runs table beside it (``<table>_runs.csv``, one row per run),
and an HTML report with box plots, the tests, the classical baselines on the same test windows
for context, and one sentence per test saying whether the difference survives FDR control.
Finished runs are cached in a work folder (``<table>_work/``), so an interrupted comparison
continues where it stopped (TPE runs resume their Optuna journal).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import DeformCastError
from ..data.date_weights import sample_weights
from ..progress import Progress
from .. import stats

METHODS = ("manual", "tpe")
TEST_COLUMNS = ["family", "group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b", "sd_a", "sd_b", "diff",
                "ci_low", "ci_high", "t", "df", "p", "p_bh", "significant_bh", "hedges_g"]
RUN_COLUMNS = ["architecture", "strategy", "method", "repeat", "seed", "val_rmse_mm", "test_rmse_mm",
               "test_mae_mm", "test_r2", "seconds", "config"]


@dataclass
class CompareResult:
    table: str
    runs_table: str
    report: Optional[str]
    runs: List[Dict[str, Any]]
    tests: List[Dict[str, Any]]
    sentences: List[str]
    baselines: Dict[str, Dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def parse_strategies(value, default=("temporal",)) -> List[str]:
    """``"none; temporal; temporal,neighbourhood"`` -> canonical encoding keys (one per strategy)."""
    from ..data.dataset import parse_encodings
    from .tuning import encoding_key

    if value is None or (isinstance(value, str) and not value.strip()):
        items = [",".join(default) if not isinstance(default, str) else default]
    elif isinstance(value, str):
        items = [s for s in value.split(";") if s.strip()]
    else:
        items = list(value)
    out = []
    for it in items:
        key = encoding_key(it)
        parse_encodings(key.split(","))  # unknown names -> DeformCastError with the valid list
        if key not in out:
            out.append(key)
    return out


def _label(arch: str, strategy: str, several: bool) -> str:
    return f"{arch} [{strategy}]" if several else arch


def _fingerprint(d: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _manual_run(cache, arch: str, strategy: str, window: Optional[int], fixed: Mapping[str, Any], seed: int,
                max_epochs: int, patience: int, device: str, threads, progress: Progress) -> Dict[str, Any]:
    from .training import train_model
    from .tuning import DEFAULT_WINDOW, build_search_space, default_config, no_log, split_config, split_scores

    space = build_search_space(arch, None, window=window or DEFAULT_WINDOW, encodings=strategy,
                               max_window=cache.max_window())
    cfg = default_config(arch, space, window or DEFAULT_WINDOW)
    # fixed values of SEARCH_SPACE (e.g. samples_per_epoch) apply to the manual runs as well
    cfg.update({k: v for k, v in fixed.items() if k not in ("window", "encoding")})
    w, enc, hp = split_config(arch, cfg)
    prep = cache.get(w, enc)
    res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, arch, hp, device=device, seed=seed,
                      max_epochs=max_epochs, patience=patience, progress=no_log(progress), threads=threads,
                      train_W=sample_weights(prep, "train"), val_W=sample_weights(prep, "val"))
    val = split_scores(res.model, prep.val, prep.norm)
    test = split_scores(res.model, prep.test, prep.norm)
    return {"val_rmse_mm": val["rmse"], "test_rmse_mm": test["rmse"], "test_mae_mm": test["mae"],
            "test_r2": test["r2"], "config": {"window": w, "encoding": enc, **{k: hp[k] for k in sorted(hp)}}}


def _fixed_values(search_space) -> Dict[str, Any]:
    from .tuning import parse_search_space

    ov = parse_search_space(search_space)
    return {k: v for k, v in ov.items() if not isinstance(v, (list, dict))}


def run_comparison(stack, dates, grid, architectures: Sequence[str], horizon: int, output_table: str,
                   report_path: Optional[str] = None, *, repeats: int = 3, alpha: float = 0.05,
                   n_trials: int = 20, strategies=None, window: Optional[int] = None, search_space=None,
                   max_epochs: int = 30, patience: int = 6, pruner: str = "median", max_samples: int = 20000,
                   seed: int = 42, device: str = "auto", threads: Optional[int] = None, covariates=None,
                   work_folder: Optional[str] = None, progress: Optional[Progress] = None) -> CompareResult:
    """Repeated manual vs TPE runs per architecture/strategy, scored on the test period; tests. See module doc."""
    from ..models import get_spec
    from .runtime import resolve_device
    from .tuning import DEFAULT_WINDOW, DataCache, baseline_scores, run_study

    t0 = time.time()
    progress = progress or Progress()
    archs = []
    for a in architectures or []:
        name = get_spec(a).name
        if name not in archs:
            archs.append(name)
    if not archs:
        raise DeformCastError("ARCHITECTURES: choose at least one architecture to compare.")
    repeats = int(repeats)
    if repeats < 2:
        raise DeformCastError(f"REPEATS must be at least 2 for a t-test (got {repeats}); 5 or more are advisable.")
    if not 0.0 < float(alpha) < 1.0:
        raise DeformCastError(f"ALPHA must be between 0 and 1 (e.g. 0.05), got {alpha}.")
    if int(n_trials) < 1:
        raise DeformCastError(f"N_TRIALS must be at least 1 (got {n_trials}).")
    if not output_table:
        raise DeformCastError("OUTPUT_TABLE: give a CSV file for the tests table.")
    device = resolve_device(device)
    strats = parse_strategies(strategies)
    several = len(strats) > 1
    output_table = os.path.abspath(output_table)
    stem = os.path.splitext(output_table)[0]
    work = os.path.abspath(work_folder or stem + "_work")
    os.makedirs(work, exist_ok=True)
    cache = DataCache(stack, dates, grid, horizon, covariates=covariates, seed=seed, max_samples=max_samples)
    fixed = _fixed_values(search_space)

    groups = [(a, s) for a in archs for s in strats]
    units_per_repeat = 1 + int(n_trials)
    total = len(groups) * repeats * units_per_repeat
    done_units = 0
    runs: List[Dict[str, Any]] = []
    for arch, strat in groups:
        for r in range(repeats):
            for method in METHODS:
                units = 1 if method == "manual" else int(n_trials)
                sub = progress.sub(0.9 * done_units / total, 0.9 * (done_units + units) / total)
                run_seed = int(seed) + r if method == "manual" else int(seed) + 1000 * (r + 1)
                settings = {"arch": arch, "strategy": strat, "method": method, "repeat": r, "seed": run_seed,
                            "horizon": int(horizon), "window": window, "n_trials": int(n_trials) if method == "tpe" else 0,
                            "max_epochs": int(max_epochs), "patience": int(patience), "pruner": pruner,
                            "space": search_space if isinstance(search_space, (str, type(None))) else json.dumps(search_space, sort_keys=True),
                            "max_samples": int(max_samples), "data_seed": int(seed)}
                key = f"{arch}__{strat.replace(',', '+')}__{method}__{r}"
                cache_file = os.path.join(work, key + ".json")
                row = None
                if os.path.isfile(cache_file):
                    try:
                        with open(cache_file, encoding="utf-8") as fh:
                            old = json.load(fh)
                        if old.get("fingerprint") == _fingerprint(settings):
                            row = old["row"]
                            progress.log(f"{key}: reusing the finished run in {work}.")
                    except (OSError, ValueError, KeyError):
                        row = None
                if row is None:
                    ts = time.time()
                    if method == "manual":
                        res = _manual_run(cache, arch, strat, window, fixed, run_seed, max_epochs, patience,
                                          device, threads, sub)
                    else:
                        tr = run_study(cache.stack, cache.dates, grid, arch, horizon, os.path.join(work, key),
                                       n_trials=int(n_trials), top_k=1, seed=run_seed, pruner=pruner,
                                       search_space=search_space, window=window, encodings=strat,
                                       max_epochs=max_epochs, patience=patience, device=device, threads=threads,
                                       data=cache, evaluate_test=True, write_outputs=False, progress=sub)
                        best = tr.top[0]
                        res = {"val_rmse_mm": best["val_rmse_mm"], "test_rmse_mm": best["test_rmse_mm"],
                               "test_mae_mm": best["test_mae_mm"], "test_r2": best["test_r2"],
                               "config": dict(best["params"], trial=best["trial"])}
                    row = {"architecture": arch, "strategy": strat, "method": method, "repeat": r, "seed": run_seed,
                           "seconds": time.time() - ts, **res}
                    tmp = cache_file + ".part"
                    with open(tmp, "w", encoding="utf-8") as fh:
                        json.dump({"fingerprint": _fingerprint(settings), "row": row}, fh, default=str)
                    os.replace(tmp, cache_file)
                    progress.log(f"{_label(arch, strat, several)} {method} #{r + 1}: test RMSE "
                                 f"{row['test_rmse_mm']:.4g} mm (validation {row['val_rmse_mm']:.4g} mm).")
                runs.append(row)
                done_units += units

    # ---- statistics -------------------------------------------------------------------------------
    samples: Dict[str, List[float]] = {}
    for row in runs:
        lab = f"{_label(row['architecture'], row['strategy'], several)} {row['method']}"
        samples.setdefault(lab, []).append(float(row["test_rmse_mm"]))
    pairs, families = [], []
    for a, s in groups:
        g = _label(a, s, several)
        pairs.append((f"{g} tpe", f"{g} manual"))
        families.append("TPE vs manual")
    for method in ("tpe", "manual"):
        for (a1, s1), (a2, s2) in combinations(groups, 2):
            pairs.append((f"{_label(a1, s1, several)} {method}", f"{_label(a2, s2, several)} {method}"))
            families.append(f"between set-ups ({'TPE' if method == 'tpe' else 'manual'})")
    tests = stats.pairwise(samples, pairs, alpha=float(alpha))
    for t, fam in zip(tests, families):
        t["family"] = fam
    sentences = [stats.describe(t, alpha=float(alpha)) for t in tests]

    prog_b = progress.sub(0.9, 0.97)
    bscores: Dict[str, Dict[str, float]] = {}
    try:
        ref = cache.get(window or DEFAULT_WINDOW, strats[0])
        bscores = baseline_scores(cache.stack, cache.dates, grid.width, ref.test, progress=prog_b)
    except DeformCastError as e:
        progress.log(f"Baselines not computed: {e}")

    runs_path = stem + "_runs.csv"
    _write_csv(runs_path, RUN_COLUMNS, [dict(r, config=json.dumps(r.get("config", {}), sort_keys=True, default=str))
                                        for r in runs])
    rep_path = None
    if report_path:
        rep_path = write_report(report_path, runs, samples, tests, sentences, bscores, archs, strats, several,
                                repeats, int(n_trials), float(alpha), int(horizon), time.time() - t0)
    _write_csv(output_table, TEST_COLUMNS, tests)  # the main output, written last
    progress.set(1.0)
    return CompareResult(output_table, runs_path, rep_path, runs, tests, sentences, bscores, time.time() - t0)


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            vals = []
            for c in columns:
                v = r.get(c, "")
                if isinstance(v, float) and not math.isfinite(v):
                    v = ""
                vals.append(v)
            w.writerow(vals)
    os.replace(tmp, path)
    return path


def write_report(path, runs, samples, tests, sentences, bscores, archs, strats, several, repeats, n_trials,
                 alpha, horizon, seconds) -> str:
    from ..report import Report, new_figure

    rep = Report("TPE tuning vs hand-set defaults: statistical comparison")
    rep.paragraph(
        f"Architectures: {', '.join(archs)}; coding strategies: {'; '.join(strats)}; horizon {horizon} epochs. "
        f"{repeats} runs with the hand-set defaults and {repeats} TPE runs ({n_trials} trials each) per set-up, "
        f"each scored on the test period (RMSE in mm; the test period was used neither for training nor for "
        f"tuning). Welch's t-tests, Benjamini–Hochberg FDR control at alpha = {alpha:g} over all "
        f"{len(tests)} tests. Wall time {seconds:.1f} s.")
    # box plots
    labels = list(samples)
    fig = new_figure(max(6.0, 1.1 * len(labels) + 2), 4.0)
    ax = fig.add_subplot(111)
    data = [samples[k] for k in labels]
    bp = ax.boxplot(data, patch_artist=True)
    for patch, lab in zip(bp["boxes"], labels):
        patch.set_facecolor("#9ecae1" if lab.endswith("manual") else "#fdae6b")
    for i, vals in enumerate(data, start=1):
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.08, 0.08, len(vals)), vals, s=14, color="#333333", zorder=3)
    ax.set_xticks(range(1, len(labels) + 1))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("test RMSE (mm)")
    if bscores:
        name, best = min(bscores.items(), key=lambda kv: kv[1].get("rmse", math.inf))
        if math.isfinite(best.get("rmse", math.nan)):
            ax.axhline(best["rmse"], color="#d62728", ls="--", lw=1, label=f"best baseline ({name})")
            ax.legend(fontsize=8)
    rep.heading("Test RMSE of every run")
    rep.figure(fig, "Blue: hand-set defaults; orange: TPE-tuned; dots: single runs.")
    rep.heading("Summary per set-up")
    rows = []
    for lab in labels:
        v = np.asarray(samples[lab])
        rows.append([lab, len(v), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"),
                     float(v.min()), float(v.max())])
    rep.table(rows, ["set-up", "runs", "mean", "SD", "min", "max"])
    rep.heading("Tests (Welch, Benjamini–Hochberg)")
    rep.table([[t["family"], f"{t['group_a']} − {t['group_b']}", t["diff"], t["ci_low"], t["ci_high"], t["hedges_g"],
                t["df"], t["p"], t["p_bh"], "yes" if t["significant_bh"] else "no"] for t in tests],
              ["family", "difference", "mean diff. (mm)", "CI low", "CI high", "Hedges' g", "df", "p", "p (BH)",
               f"survives FDR {alpha:g}"], digits=4)
    rep.heading("In words")
    surv = [s for s, t in zip(sentences, tests) if t["significant_bh"]]
    rep.paragraph(f"{len(surv)} of {len(tests)} differences survive Benjamini–Hochberg FDR control at "
                  f"alpha = {alpha:g}." + ("" if surv else " None of the observed differences can be "
                                            "distinguished from run-to-run noise with these repeats."))
    rep.html("<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in sentences) + "</ul>")
    if repeats < 5:
        rep.note(f"With {repeats} repeats per set-up a Welch test has few degrees of freedom and little power; "
                 "use REPEATS of 5 or more before drawing conclusions.")
    if bscores:
        rep.heading("Classical baselines on the same test windows")
        rep.table([[k, v["rmse"], v["mae"], v["r2"]] for k, v in sorted(bscores.items(), key=lambda kv: kv[1]["rmse"])],
                  ["baseline", "RMSE (mm)", "MAE (mm)", "R²"])
    rep.heading("Runs")
    rep.table([[r["architecture"], r["strategy"], r["method"], r["repeat"] + 1, r["seed"], r["val_rmse_mm"],
                r["test_rmse_mm"], r["seconds"]] for r in runs],
              ["architecture", "strategy", "method", "run", "seed", "val. RMSE", "test RMSE", "s"])
    return rep.save(path)


def _esc(s: str) -> str:
    import html

    return html.escape(s)


def compare_job(stack_path: str, architectures: Sequence[str], horizon: int, output_table: str,
                report_path: Optional[str] = None, *, dates=None, covariates: Sequence[str] = (),
                progress: Optional[Progress] = None, **kw) -> CompareResult:
    """The ``compare`` Processing algorithm without QGIS: read the inputs, run :func:`run_comparison`."""
    from .tuning import load_inputs

    progress = progress or Progress()
    info, cov = load_inputs(stack_path, dates, covariates, progress.sub(0.0, 0.02))
    return run_comparison(info, info.dates, info.grid, architectures, horizon, output_table, report_path,
                          covariates=cov, progress=progress.sub(0.02, 1.0), **kw)
