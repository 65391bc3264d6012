"""Paired timing of two revisions of DeformCast on this machine: the same benchmark command run alternately in a git
worktree of ``--old`` and in this checkout (``new``), in ABBA order so a drift of the machine's speed during the
series weighs on both sides alike, and the paired differences summarised with a t-interval.

Why (session 29). On the 2-vCPU development VM the same code's `predict` of 1 M pixels took 119-137 s within one
afternoon, so one run of each revision cannot show a change of a few seconds, and runs made an hour apart compare the
machine, not the code. Each pair here runs back to back; the summary gives each side's mean and spread and the mean
paired difference with its 95 % interval: a change is shown only where that interval excludes 0.

The command is run in the root of each revision's checkout with its own ``.venv`` (the worktree gets a link to this
checkout's). It must print a JSON object (the last line of its standard output that parses as one, e.g.
``bench_predict.py --child``); ``--key`` picks numbers from it (``a.b`` for nested keys). The command's wall time and
its largest process's peak memory (``wait4``) are always recorded. ``{side}`` and ``{run}`` in the command and in
``--env`` values are replaced by ``old``/``new`` and the pair's number; ``--fresh KEY`` removes the folder of the
``--env`` variable KEY before each run (a cache folder: every run a user's first).

Usage (a user's first `predict` + `uncertainty` on a tiled file, four pairs)::

    .venv/bin/python benchmarks/bench_pair.py --old 096a208 --pairs 4 --key predict_s --key total_s \\
        --env GDAL_CACHEMAX=64 --env DEFORMCAST_CACHE_DIR=/tmp/pair_{side}_{run} --fresh DEFORMCAST_CACHE_DIR -- \\
        .venv/bin/python benchmarks/bench_predict.py --child build/s23/bp 1000 10 build/s24/demo/models tiled_pixel
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]


def abba(pairs: int) -> List[tuple]:
    """``[(run, side), ...]``: pairs alternately old-new and new-old (ABBA), so a steady drift cancels."""
    out = []
    for i in range(int(pairs)):
        sides = ("old", "new") if i % 2 == 0 else ("new", "old")
        out += [(i + 1, s) for s in sides]
    return out


def last_json(text: str) -> Optional[dict]:
    """The last line of ``text`` that parses as a JSON object, or the whole text as one; None where none does."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                got = json.loads(line)
            except ValueError:
                continue
            if isinstance(got, dict):
                return got
    try:
        got = json.loads(text)
    except ValueError:
        return None
    return got if isinstance(got, dict) else None


def pick(obj: Optional[dict], key: str) -> float:
    """``obj[a][b]`` for the key ``a.b``; NaN where it is missing or not a number."""
    cur = obj
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return float("nan")
        cur = cur[part]
    try:
        return float(cur)
    except (TypeError, ValueError):
        return float("nan")


def summary(old: Sequence[float], new: Sequence[float]) -> Dict[str, float]:
    """Each side's mean and standard deviation, and the mean paired difference (new - old) with its 95 % t-interval
    (NaN where fewer than two pairs have both values)."""
    from statistics import mean, stdev

    from scipy.stats import t as student

    both = [(a, b) for a, b in zip(old, new) if math.isfinite(a) and math.isfinite(b)]
    out = {"n": len(both)}
    for name, vals in (("old", [a for a, _ in both]), ("new", [b for _, b in both])):
        out[f"{name}_mean"] = mean(vals) if vals else float("nan")
        out[f"{name}_sd"] = stdev(vals) if len(vals) > 1 else float("nan")
    d = [b - a for a, b in both]
    out["diff_mean"] = mean(d) if d else float("nan")
    if len(d) > 1:
        half = float(student.ppf(0.975, len(d) - 1)) * stdev(d) / math.sqrt(len(d))
        out["diff_lo"], out["diff_hi"] = out["diff_mean"] - half, out["diff_mean"] + half
    else:
        out["diff_lo"] = out["diff_hi"] = float("nan")
    return out


def fill_in(text: str, fill: Dict[str, str]) -> str:
    """``text`` with ``{side}`` and ``{run}`` replaced (other braces, e.g. of a Python one-liner, kept)."""
    for k, v in fill.items():
        text = text.replace("{" + k + "}", v)
    return text


def worktree(rev: str) -> Path:
    """A git worktree of ``rev`` under build/bench_pair (made once), with a link to this checkout's ``.venv``."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True)
    where = ROOT / "build" / "bench_pair" / sha.stdout.strip()
    if not where.exists():
        where.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", "-f", str(where), rev], cwd=ROOT, check=True,
                       capture_output=True)
    venv = where / ".venv"
    if not venv.exists() and (ROOT / ".venv").exists():
        venv.symlink_to(ROOT / ".venv", target_is_directory=True)
    return where


def run_once(cmd: List[str], cwd: Path, env: Dict[str, str]) -> dict:
    """One run: ``{"wall_s", "peak_mb", "rc", "json"}``; ``peak_mb`` the largest resident set of the command and the
    processes it waited for (``wait4``: its local worker processes too)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, tail = out.read(), err.read()[-2000:]
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024.0, "rc": rc, "json": last_json(text),
            "stderr_tail": tail if rc else ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 usage="%(prog)s --old REV [options] -- COMMAND ...")
    ap.add_argument("--old", required=True, help="the revision to compare with (a commit, tag or branch)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--key", action="append", default=[], help="a number of the command's JSON (a.b for nested)")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the command ({side}, {run} replaced)")
    ap.add_argument("--fresh", action="append", default=[],
                    help="an --env KEY whose folder is removed before each run (e.g. DEFORMCAST_CACHE_DIR: a first run)")
    ap.add_argument("--out", default=None, help="a JSON file for every run and the summary")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the benchmark command after --")
    roots = {"old": worktree(a.old), "new": ROOT}
    keys = ["wall_s", "peak_mb"] + list(a.key)
    runs = []
    for run, side in abba(a.pairs):
        fill = {"side": side, "run": str(run)}
        env = dict(os.environ)
        for kv in a.env:
            k, _, v = kv.partition("=")
            env[k] = fill_in(v, fill)
        for k in a.fresh:
            if env.get(k) and os.path.isdir(env[k]):
                shutil.rmtree(env[k])
        res = run_once([fill_in(c, fill) for c in cmd], roots[side], env)
        row = {"run": run, "side": side, "rc": res["rc"], "wall_s": res["wall_s"], "peak_mb": res["peak_mb"]}
        for k in a.key:
            row[k] = pick(res["json"], k)
        runs.append(row)
        print(f"pair {run} {side}: " + ", ".join(f"{k} {row[k]:.1f}" for k in keys)
              + ("" if res["rc"] == 0 else f"  (exit {res['rc']}: {res['stderr_tail'][-300:]})"), flush=True)
    print(f"\n{a.old} (old) against this checkout (new), {a.pairs} pairs in ABBA order:")
    print("| figure | old: mean (sd) | new: mean (sd) | new - old: mean [95 % interval] |")
    print("|---|---:|---:|---:|")
    table = {}
    for k in keys:
        old = [r[k] for r in runs if r["side"] == "old" and r["rc"] == 0]
        new = [r[k] for r in runs if r["side"] == "new" and r["rc"] == 0]
        s = table[k] = summary(old, new)
        print(f"| {k} | {s['old_mean']:.2f} ({s['old_sd']:.2f}) | {s['new_mean']:.2f} ({s['new_sd']:.2f}) | "
              f"{s['diff_mean']:+.2f} [{s['diff_lo']:+.2f}, {s['diff_hi']:+.2f}] |")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump({"old": a.old, "command": " ".join(shlex.quote(c) for c in cmd), "runs": runs,
                       "summary": table}, fh, indent=1)
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
