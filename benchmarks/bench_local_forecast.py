"""Time of the skill gate's local classical forecast (``anchors.local_forecast``) per million pixels,
with the shipped settings and with session 9's (plain 9 x 9 box, the half-year velocity as the only extra
candidate).

The local forecast runs on every pixel in ``predict`` (the local blend) and at every rolling origin of
the main job's gate, so its cost scales with the raster. A synthetic block (seasonal motion, a trend and
white noise; the cost does not depend on the values) is timed, best of ``--repeat`` runs.

Usage::

    .venv/bin/python benchmarks/bench_local_forecast.py --rows 64 --cols 500
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()

from deformcast.algorithms.data import anchors as A  # noqa: E402

SESSION9 = {"LOCAL_BOX": 9, "LOCAL_GUIDED": False, "LOCAL_EXTRA": (("linear_6m", "linear", 0.5),)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    T, R, W, L = args.epochs, args.rows, args.cols, args.horizon
    d = np.datetime64("2017-01-01") + np.arange(T + L) * 12
    t = np.arange(T) * 12 / 365.25
    y = rng.normal(0, 2, (T, R, W)) + (-5 * t + 3 * np.cos(2 * np.pi * t))[:, None, None]

    def best():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            A.local_forecast(y, d[:T], d[T:], L)
            times.append(time.perf_counter() - t0)
        return min(times)

    shipped = best()
    saved = {k: getattr(A, k) for k in SESSION9}
    try:
        for k, v in SESSION9.items():
            setattr(A, k, v)
        old = best()
    finally:
        for k, v in saved.items():
            setattr(A, k, v)
    n = R * W
    print(f"{n} pixels x {T} epochs, horizon {L}: shipped {shipped:.2f} s ({shipped / n * 1e6:.0f} s per million "
          f"pixels), session 9's settings {old:.2f} s ({old / n * 1e6:.0f} s per million pixels)")


if __name__ == "__main__":
    main()
