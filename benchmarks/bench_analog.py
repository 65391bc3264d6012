"""The cost of the spatial analog (``algorithms/data/analog.py``, session 49) from one origin: a dense scene of
``bench_skill.py``'s size, one of ``predict``'s 64 000-pixel blocks, and a raster of scattered points like the real
Doñana ascending track (8 % of 391 x 354 pixels). Random-walk series of 150 epochs, horizon 15; wall time (best of
``--repeat``) and the peak of the arrays numpy allocates (``tracemalloc``).

The local forecast makes the analog once per origin of its track record (seven, and seven more at quiet pixels) and
keeps it in the block's ``FamilyCache``, so the gate, the calibration and the forecast of one block share them.

Usage::

    DEFORMCAST_THREADS=1 .venv/bin/python benchmarks/bench_analog.py
"""
import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg  # noqa: E402

ensure_pkg()
from deformcast.algorithms.data import analog  # noqa: E402

CASES = {"scene 80 x 100": (80, 100, 1.0), "block 64 x 1000": (64, 1000, 1.0),
         "points 354 x 391 (8 %)": (354, 391, 0.08)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| case | pixels with values | wall (best of %d) | peak of numpy's arrays |" % a.repeat)
    print("|---|---:|---:|---:|")
    for name, (R, C, share) in CASES.items():
        y = rng.normal(0, 1.0, (a.epochs, R, C)).cumsum(axis=0)
        if share < 1.0:
            y[:, rng.random((R, C)) > share] = np.nan
        walls = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            analog.analog_forecast(y, a.horizon)
            walls.append(time.perf_counter() - t)
        tracemalloc.start()
        analog.analog_forecast(y, a.horizon)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        n = int(np.isfinite(y[-1]).sum())
        print(f"| {name} | {n} | {min(walls):.2f} s | {peak / 2 ** 20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
