"""What a study leaves for people: baselines on the same samples, the trials CSV, the HTML report."""
from __future__ import annotations

import csv
import math
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ...progress import Progress
from .space import Dim
from .storage import quiet_optuna
from .worker import ORPHAN_ATTR


def read_pixels(stack, pixel: np.ndarray, width: int) -> np.ndarray:
    """``(T, n)`` series of the flat pixel indices ``pixel`` from an array or a StackInfo."""
    from ...io.raster import StackInfo, open_stack, read_stack, row_blocks

    if isinstance(stack, str):
        stack = open_stack(stack)
    if isinstance(stack, StackInfo):
        upix = np.unique(pixel)
        rows = upix // width
        out = np.full((stack.n_epochs, upix.size), np.nan, np.float32)
        for r0, r1 in row_blocks(stack.grid.height, 256):
            sel = (rows >= r0) & (rows < r1)
            if not sel.any():
                continue
            block = read_stack(stack, rows=(r0, r1))
            p = upix[sel]
            out[:, sel] = block.reshape(block.shape[0], -1)[:, p - r0 * width]
        return out[:, np.searchsorted(upix, pixel)]
    a = np.asarray(stack)
    return a.reshape(a.shape[0], -1)[:, pixel]


def baseline_scores(stack, dates, width: int, samples, names: Sequence[str] = None,
                    progress: Optional[Progress] = None) -> Dict[str, Dict[str, float]]:
    """Classical forecasts on exactly the (pixel, end epoch) pairs of ``samples``, scored.

    Each baseline is fitted per pixel on the history up to the sample's last input epoch and
    evaluated at the same target epochs the networks forecast, so the table compares like with
    like. Returns ``{baseline: metrics.scores}``.
    """
    from ...data import baselines as bl
    from ...metrics import scores

    names = list(names or bl.BASELINES)
    dates = np.asarray(dates, dtype="datetime64[D]")
    truth = np.asarray(samples.truth, dtype=np.float64)
    horizon = truth.shape[1]
    series = read_pixels(stack, np.asarray(samples.pixel), width)
    preds = {n: np.full(truth.shape, np.nan) for n in names}
    ends = np.asarray(samples.end)
    uends = np.unique(ends)
    for i, e in enumerate(uends):
        if progress is not None:
            progress.set(i / max(1, uends.size))
        sel = np.nonzero(ends == e)[0]
        hd = dates[int(e) + 1:int(e) + 1 + horizon]
        fc = bl.forecast_baselines(series[:, sel], dates, int(e), hd, names=names)
        for n in names:
            preds[n][sel, :hd.size] = fc[n].T
    return {n: scores(preds[n], truth) for n in names}




def study_seconds(study) -> float:
    """Wall time of the study: first trial start to last trial end (all workers, all runs)."""
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    ends = [t.datetime_complete for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    if not starts or not ends:
        return 0.0
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def write_trials_csv(study, path: str) -> str:
    """One row per trial: number, state, value, duration, worker, epochs, parameters."""
    trials = study.get_trials(deepcopy=False)
    orphaned = {k[len(ORPHAN_ATTR):]: v for k, v in study.user_attrs.items() if k.startswith(ORPHAN_ATTR)}
    pnames = sorted({k for t in trials for k in t.params})
    cols = ["number", "state", "val_rmse_mm", "seconds", "epochs_run", "best_epoch", "n_parameters",
            "worker", "note"] + pnames
    tmp = path + ".part"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for t in trials:
            dur = (t.datetime_complete - t.datetime_start).total_seconds() if (
                t.datetime_complete and t.datetime_start) else ""
            note = ("surplus (study already full)" if t.user_attrs.get("surplus")
                    else "hand-set defaults" if t.user_attrs.get("hand_set_defaults")
                    else "stopped with the study (STUDY_PATIENCE)" if t.user_attrs.get("stopped_by_study")
                    else t.user_attrs.get("failed_reason") or orphaned.get(str(t.number), ""))
            w.writerow([t.number, t.state.name, "" if t.value is None else t.value, dur,
                        t.user_attrs.get("epochs_run", ""), t.user_attrs.get("best_epoch", ""),
                        t.user_attrs.get("n_parameters", ""), t.user_attrs.get("worker", ""), note]
                       + [t.params.get(k, "") for k in pnames])
    os.replace(tmp, path)
    return path


def param_importances(study) -> Tuple[Dict[str, float], str]:
    """``(importances, method)``; graceful with few trials (empty dict and the reason)."""
    optuna = quiet_optuna()
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varying = [k for k in {k for t in done for k in t.params} if len({repr(t.params.get(k)) for t in done}) > 1]
    if len(done) < 4 or not varying:
        return {}, (f"Parameter importances need at least 4 complete trials with varying parameters "
                    f"(this study has {len(done)}).")
    try:
        from optuna.importance import PedAnovaImportanceEvaluator

        imp = optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        if imp and all(math.isfinite(v) for v in imp.values()) and sum(imp.values()) > 0:
            return dict(imp), "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
    except Exception:  # noqa: BLE001 - fall back below
        pass
    try:
        imp = optuna.importance.get_param_importances(study)
        return dict(imp), "fANOVA (optuna.importance default)"
    except Exception:  # noqa: BLE001 - fANOVA needs scikit-learn
        pass
    # fallback: |Spearman rank correlation| between parameter and validation RMSE, normalised
    from scipy.stats import spearmanr

    vals = np.array([t.value for t in done], dtype=float)
    imp = {}
    for k in varying:
        raw = [t.params.get(k) for t in done]
        try:
            x = np.array([float(v) for v in raw])
        except (TypeError, ValueError):
            cats = sorted({repr(v) for v in raw})
            x = np.array([cats.index(repr(v)) for v in raw], dtype=float)
        r = spearmanr(x, vals).correlation if np.ptp(x) > 0 else 0.0
        imp[k] = abs(float(r)) if r == r else 0.0
    tot = sum(imp.values()) or 1.0
    return ({k: v / tot for k, v in sorted(imp.items(), key=lambda kv: -kv[1])},
            "normalised |Spearman rank correlation| with the validation RMSE (fallback)")


def write_report(result, study, space: Mapping[str, Dim], path: str, architecture: str,
                 horizon: int, pruner: str) -> str:
    """The HTML report: history, importances, best parameters, top-K with test metrics, baselines."""
    from optuna.trial import TrialState

    from ...report import Report, new_figure

    rep = Report(f"Hyperparameter tuning: {architecture}, horizon {horizon}")
    rep.paragraph(
        f"Study '{result.study_name}' in {result.storage}. Sampler: TPE (multivariate, seeded); pruner: "
        f"{pruner}. {result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed trials. "
        f"Objective: validation RMSE in mm (the test period was not used for tuning). Study wall time "
        f"{result.study_seconds:.1f} s (first trial start to last trial end, all workers); this run "
        f"{result.wall_seconds:.1f} s, {result.worker.trials_run} trial(s) run by this worker.")
    trials = study.get_trials(deepcopy=False)
    # --- optimisation history
    comp = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if comp:
        fig = new_figure(7.5, 3.6)
        ax = fig.add_subplot(111)
        xs = [t.number for t in comp]
        ys = [t.value for t in comp]
        ax.scatter(xs, ys, s=18, color="#1f77b4", label="complete trial")
        pr = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
        if pr:
            ax2 = ax.twinx()
            ax2.scatter([t.number for t in pr], [min(t.intermediate_values.values()) for t in pr], s=14,
                        marker="x", color="#999999", label="pruned (best val. loss, right axis)")
            ax2.set_ylabel("val. loss (normalised)", color="#777777")
            ax2.legend(loc="upper center", fontsize=8)
        order = sorted(comp, key=lambda t: t.number)
        best, bx, by = math.inf, [], []
        for t in order:
            best = min(best, t.value)
            bx.append(t.number)
            by.append(best)
        ax.step(bx, by, where="post", color="#d62728", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("validation RMSE (mm)")
        ax.legend(loc="upper right", fontsize=8)
        rep.heading("Optimisation history")
        rep.figure(fig, "Validation RMSE of each complete trial and the best so far.")
    # --- importances
    rep.heading("Parameter importances")
    imp, method = param_importances(study)
    if imp:
        fig = new_figure(6.5, 0.4 * len(imp) + 1.0)
        ax = fig.add_subplot(111)
        names = list(imp)[::-1]
        ax.barh(names, [imp[k] for k in names], color="#2a7ab0")
        ax.set_xlabel("importance (sums to 1)")
        rep.figure(fig, f"Method: {method}.")
    else:
        rep.note(method)
    # --- best params
    rep.heading("Best parameters")
    rep.table([[k, v] for k, v in sorted(result.best_params.items())], ["parameter", "value"], digits=4)
    rep.paragraph(f"Best trial {result.best_trial}: validation RMSE {result.best_value:.4g} mm.")
    if result.default_val_rmse is not None:
        gain = 100.0 * (1.0 - result.best_value / result.default_val_rmse) if result.default_val_rmse > 0 else float("nan")
        rep.paragraph(f"Trial 0 ran the hand-set defaults: validation RMSE {result.default_val_rmse:.4g} mm; the best "
                      f"trial is {gain:.1f} % lower (one seed each, so part of a small difference is seed noise).")
    rep.heading("Search space")
    rep.table([[k, d.describe()] for k, d in space.items()], ["parameter", "range"])
    # --- top-K with test metrics and baselines
    rep.heading(f"Top {len(result.top)} models and the classical baselines (test period)")
    rows = []
    for m in result.top:
        rows.append([f"#{m['rank']} trial {m['trial']}" + (" (retrained)" if m.get("retrained") else ""),
                     m.get("val_rmse_mm"), m.get("test_rmse_mm"), m.get("test_mae_mm"), m.get("test_r2")])
    for name, s in sorted(result.baselines.items(), key=lambda kv: kv[1].get("rmse", math.inf)):
        rows.append([f"baseline: {name}", None, s.get("rmse"), s.get("mae"), s.get("r2")])
    rep.table(rows, ["model", "val. RMSE (mm)", "test RMSE (mm)", "test MAE (mm)", "test R²"], highlight=0)
    if result.baselines:
        best_b = min(result.baselines.items(), key=lambda kv: kv[1].get("rmse", math.inf))
        if result.top and result.top[0].get("test_rmse_mm") is not None:
            d = result.top[0]["test_rmse_mm"] - best_b[1]["rmse"]
            rep.paragraph(
                f"Best tuned model vs best baseline ({best_b[0]}) on the same test pixels and epochs: "
                f"{result.top[0]['test_rmse_mm']:.4g} vs {best_b[1]['rmse']:.4g} mm "
                f"({'lower' if d < 0 else 'higher'} by {abs(d):.3g} mm).")
    rep.paragraph("Baselines are fitted per pixel on the history up to each test window's last input epoch "
                  "and scored at the same target epochs as the networks.", "muted")
    if result.worker.errors:
        rep.heading("Failed trials (this worker)")
        for e in result.worker.errors[:20]:
            rep.paragraph(e, "muted")
    return rep.save(path)


