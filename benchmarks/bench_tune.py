"""Benchmark of ``tune`` on the built-in demo scene (issue 5 targets).

(a) TPE with N trials (default 30) vs the hand-set defaults of the same architecture:
    validation RMSE improvement (target >= 10 %) and the test RMSE of the tuned top models beside
    the classical baselines on the same test windows.
(b) Two worker processes vs one on the same study size: wall time (journal storage).
(c) Pruners: median vs hyperband vs none, same trials budget and seed: best validation RMSE,
    pruned trials, wall time (the measurement behind the default pruner).
(d) ``--patience-csv trials.csv ...``: replays finished studies (their trials.csv, e.g. from
    ``./deformcast demo``) through the study-patience rule for N = 3..12 and prints how many trials
    each N runs and the best validation RMSE it keeps (the measurement behind STUDY_PATIENCE).

Small models and few windows keep it at about 10-15 minutes on 2 CPU cores::

    .venv/bin/python benchmarks/bench_tune.py [--out DIR] [--arch lstm] [--trials 30] [--quick]

``--quick`` shrinks everything to check that the script runs (numbers meaningless). Results go to
``<out>/bench_tune.json`` and a Markdown summary is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKGROOT = ROOT / "build" / "pkgroot"
PKGROOT.mkdir(parents=True, exist_ok=True)
if not (PKGROOT / "deformcast").exists():
    (PKGROOT / "deformcast").symlink_to(ROOT, target_is_directory=True)
sys.path.insert(0, str(PKGROOT))

WORKER = textwrap.dedent('''
    import json, sys, time
    sys.path.insert(0, {pkgroot!r})
    import torch
    torch.set_num_threads(1)
    from deformcast.algorithms.data import synthetic
    from deformcast.algorithms.learn import tuning
    out, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = json.loads(sys.argv[4])
    sc = synthetic.make_scene(seed=0, **cfg["scene"])
    r = tuning.run_study(sc.observed, sc.dates, sc.grid, cfg["arch"], cfg["horizon"], out, n_trials=n, top_k=3,
                         seed=11, search_space=cfg["space"], encodings="temporal", max_epochs=cfg["epochs"],
                         patience=cfg["epochs"], max_samples=cfg["max_samples"], threads=threads, pruner="none",
                         evaluate_test=False, write_outputs=False)
    print("RAN", r.worker.trials_run, flush=True)
''')


def part_a_c(args, scene, cache, out):
    from deformcast.algorithms.learn import compare, tuning
    from deformcast.algorithms.progress import Progress

    space = {"samples_per_epoch": args.samples_per_epoch}
    res = {"defaults": [], "pruners": {}}
    # hand-set defaults, several seeds (the spread says how much of a difference is seed noise)
    for s in range(args.default_seeds):
        t = time.time()
        r = compare._manual_run(cache, args.arch, "temporal", None, space, s, args.epochs, args.patience, "cpu", 1,
                                Progress())
        r["seconds"] = time.time() - t
        r["seed"] = s
        res["defaults"].append(r)
        print(f"default seed {s}: val {r['val_rmse_mm']:.4f} test {r['test_rmse_mm']:.4f} ({r['seconds']:.1f} s)",
              flush=True)
    for pruner in args.pruners:
        folder = out / f"study_{pruner}"
        shutil.rmtree(folder, ignore_errors=True)
        t = time.time()
        tr = tuning.run_study(scene.observed, scene.dates, scene.grid, args.arch, args.horizon, str(folder),
                              n_trials=args.trials, top_k=args.top_k, seed=args.seed, pruner=pruner,
                              search_space=space, encodings="temporal", max_epochs=args.epochs,
                              patience=args.patience, threads=1, data=cache,
                              report_path=str(folder / "tune_report.html"))
        wall = time.time() - t
        res["pruners"][pruner] = {
            "best_val_rmse_mm": tr.best_value, "best_params": tr.best_params, "n_complete": tr.n_complete,
            "n_pruned": tr.n_pruned, "n_failed": tr.n_failed, "wall_s": wall,
            "top": [{k: m.get(k) for k in ("rank", "trial", "val_rmse_mm", "test_rmse_mm", "test_mae_mm", "test_r2")}
                    for m in tr.top],
            "baselines": tr.baselines,
        }
        print(f"TPE {pruner}: best val {tr.best_value:.4f} mm, {tr.n_pruned} pruned, {wall:.1f} s", flush=True)
    return res


def part_b(args, out):
    """Same study size with one worker and with two worker processes (1 torch thread each)."""
    script = out / "worker.py"
    script.write_text(WORKER.format(pkgroot=str(PKGROOT)))
    cfg = {"scene": {}, "arch": args.arch, "horizon": args.horizon, "epochs": args.b_epochs,
           "max_samples": args.max_samples,
           # fixed architecture and batch size: every trial costs about the same, so the wall times compare
           "space": {"samples_per_epoch": args.samples_per_epoch, "hidden": 32, "layers": 1, "batch_size": 256,
                     "window": 12}}
    if args.quick:
        cfg["scene"] = {"width": 24, "height": 20, "n_epochs": 60}
    env = dict(os.environ, PYTHONPATH=str(PKGROOT))
    res = {}
    configs = [tuple(int(v) for v in c.split("x")) for c in args.b_configs.split(",") if c]
    for workers, threads in configs:
        folder = out / f"workers_{workers}x{threads}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t = time.time()
        procs = [subprocess.Popen([sys.executable, str(script), str(folder), str(args.b_trials), str(threads),
                                   json.dumps(cfg)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(workers)]
        outs = [p.communicate() for p in procs]
        wall = time.time() - t
        for p, (so, se) in zip(procs, outs):
            if p.returncode != 0:
                raise RuntimeError(se[-3000:])
        ran = [int(so.split("RAN ")[1].split()[0]) for so, _ in outs]
        from deformcast.algorithms.learn import tuning

        import optuna

        sdir = next(p for p in (folder / tuning.STUDIES_DIR).iterdir() if (p / tuning.JOURNAL_NAME).exists())
        st, _ = tuning.open_storage("", str(sdir))
        study = optuna.load_study(study_name=optuna.study.get_all_study_names(st)[0], storage=st)
        study_s = tuning.study_seconds(study)
        res[f"{workers} worker(s) x {threads} thread(s)"] = {"wall_s": wall, "study_s": study_s,
                                                              "trials_per_worker": ran}
        print(f"{workers} worker(s) x {threads} thread(s): {wall:.1f} s ({study_s:.1f} s first trial start to "
              f"last trial end), trials {ran}", flush=True)
    return res


def patience_replay(paths, ns=range(3, 13)) -> str:
    """(d): the study-patience rule replayed on finished studies' trials.csv files."""
    import csv

    from deformcast.algorithms.learn.tuning.patience import DEFAULT_MIN_REL, stop_trial

    lines = ["| study | trials | best (all) | " + " | ".join(f"N={n}" for n in ns) + " |",
             "|---|---|---|" + "---|" * len(ns)]
    for path in paths:
        rows = [r for r in csv.DictReader(open(path, encoding="utf-8")) if r["state"] in ("COMPLETE", "PRUNED")]
        rows.sort(key=lambda r: int(r["number"]))
        vals = [float(r["val_rmse_mm"]) if r["state"] == "COMPLETE" else None for r in rows]
        best = min(v for v in vals if v is not None)
        cells = []
        for n in ns:
            k, b = stop_trial(vals, n, DEFAULT_MIN_REL)
            cells.append(f"{k} trials, {b:.3f}")
        lines.append(f"| {Path(path).parent.name[:40]} | {len(vals)} | {best:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    if "--patience-csv" in sys.argv:
        print(patience_replay(sys.argv[sys.argv.index("--patience-csv") + 1:]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/deformcast_bench_tune")
    ap.add_argument("--arch", default="lstm")
    ap.add_argument("--horizon", type=int, default=6)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--samples-per-epoch", type=int, default=2048)
    ap.add_argument("--max-samples", type=int, default=4000)
    ap.add_argument("--default-seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pruners", default="median,hyperband,none")
    ap.add_argument("--b-trials", type=int, default=12)
    ap.add_argument("--b-epochs", type=int, default=6)
    ap.add_argument("--b-configs", default="1x1,2x1,1x2", help="workers x torch threads to time in (b)")
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--only-b", action="store_true", help="run only (b), the worker timing")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    args.pruners = [p for p in args.pruners.split(",") if p]
    if args.quick:
        args.trials, args.epochs, args.patience, args.samples_per_epoch = 3, 2, 2, 256
        args.max_samples, args.default_seeds, args.b_trials, args.b_epochs, args.top_k = 500, 1, 2, 1, 2

    import torch

    torch.set_num_threads(1)
    from deformcast.algorithms.data import synthetic
    from deformcast.algorithms.learn import tuning

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    kw = {"width": 24, "height": 20, "n_epochs": 60} if args.quick else {}
    scene = synthetic.make_scene(seed=0, **kw)
    cache = tuning.DataCache(scene.observed, scene.dates, scene.grid, args.horizon, seed=0,
                             max_samples=args.max_samples)
    results = {"settings": vars(args), "scene": list(scene.observed.shape), "cpu_count": os.cpu_count(),
               "load_avg_start": os.getloadavg()}
    if not args.only_b:
        results.update(part_a_c(args, scene, cache, out))
    if not args.skip_b:
        results["workers"] = part_b(args, out)
    if args.only_b:
        with open(out / "bench_tune_b.json", "w") as fh:
            json.dump(results, fh, indent=2, default=str)
        for k, v in results["workers"].items():
            print(f"| {k} | {v['wall_s']:.1f} | {v['study_s']:.1f} | {v['trials_per_worker']} |")
        return
    results["load_avg_end"] = os.getloadavg()
    results["total_s"] = time.time() - t0
    with open(out / "bench_tune.json", "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print(summary(results))


def summary(r) -> str:
    import numpy as np

    lines = ["## bench_tune results", ""]
    d_val = np.array([d["val_rmse_mm"] for d in r["defaults"]])
    d_test = np.array([d["test_rmse_mm"] for d in r["defaults"]])
    lines.append(f"Scene {r['scene']} (T, H, W); architecture {r['settings']['arch']}, horizon "
                 f"{r['settings']['horizon']}; load average at start {r['load_avg_start'][0]:.1f}.")
    lines.append(f"Hand-set defaults ({len(d_val)} seeds): validation RMSE mean {d_val.mean():.4f} mm "
                 f"(min {d_val.min():.4f}), test RMSE mean {d_test.mean():.4f} mm.")
    lines.append("")
    lines.append("| pruner | best val. RMSE (mm) | improvement vs default mean | vs best default seed | "
                 "complete / pruned | wall (s) | test RMSE #1 (mm) | test RMSE top-K mean (mm) |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, p in r["pruners"].items():
        imp = 100 * (1 - p["best_val_rmse_mm"] / d_val.mean())
        imp_min = 100 * (1 - p["best_val_rmse_mm"] / d_val.min())
        tt = [m["test_rmse_mm"] for m in p["top"] if m["test_rmse_mm"] is not None]
        lines.append(f"| {name} | {p['best_val_rmse_mm']:.4f} | {imp:+.1f} % | {imp_min:+.1f} % | "
                     f"{p['n_complete']} / {p['n_pruned']} | {p['wall_s']:.0f} | {tt[0]:.4f} | {np.mean(tt):.4f} |")
    first = next(iter(r["pruners"].values()))
    lines.append("")
    lines.append("Baselines on the same test windows: " + ", ".join(
        f"{k} {v['rmse']:.4f}" for k, v in sorted(first["baselines"].items(), key=lambda kv: kv[1]["rmse"])) + " mm.")
    if "workers" in r:
        lines.append("")
        lines.append("| workers | wall incl. start-up (s) | first trial start to last trial end (s) | trials per worker |")
        lines.append("|---|---|---|---|")
        for k, v in r["workers"].items():
            lines.append(f"| {k} | {v['wall_s']:.1f} | {v['study_s']:.1f} | {v['trials_per_worker']} |")
    lines.append("")
    lines.append(f"Total {r['total_s']:.0f} s; load average at end {r['load_avg_end'][0]:.1f}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
