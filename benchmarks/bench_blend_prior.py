"""The cost of the scene's prior of the local blend weight (``gating.scene_blend_prior``, session 18) beside
``predict`` on a raster of several blocks.

A raster of up to ``member_forecasts.BLOCK_PIXELS`` pixels is one block of ``predict`` and needs no estimate;
a larger one gets the scene's mean sums of the blend weight from ``gating.PRIOR_PIXELS`` pixels first. This
tiles the stack of a finished main job (``./deformcast demo OUT``: ``OUT/scene/stack.tif`` and ``OUT/models``,
whose gate uses the local blend) ``--tiles`` x ``--tiles`` times and runs ``predict`` without calibration in a
fresh process, with the prior and without it (``DEFORMCAST_BLEND_PRIOR=0``): wall time, the seconds of the
estimate, the gate's seconds and the peak resident memory (VmHWM).

Usage::

    .venv/bin/python benchmarks/bench_blend_prior.py build/s17_demo --tiles 4
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ensure_pkg, vm_mb  # noqa: E402


def child(stack: str, models: str, out: str) -> None:
    ensure_pkg()
    from deformcast.algorithms.maps import ensemble

    t0 = time.time()
    res = ensemble.predict_ensemble(stack, models, out, calibrate=False)
    t = res["timings_s"]
    print(json.dumps({"wall_s": round(time.time() - t0, 1), "blend_prior_s": round(t.get("blend_prior", 0.0), 1),
                      "gate_s": round(t.get("gate", 0.0), 1), "inference_s": round(t.get("inference", 0.0), 1),
                      "peak_mb": round(vm_mb(), 0)}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a finished main job's folder (scene/stack.tif and models/ inside)")
    ap.add_argument("--tiles", type=int, default=4)
    ap.add_argument("--dir", default="/tmp/dcbench_blend_prior")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    ensure_pkg()
    import numpy as np
    from deformcast.algorithms.io import raster

    os.makedirs(args.dir, exist_ok=True)
    info = raster.open_stack(os.path.join(args.run, "scene", "stack.tif"))
    y = np.tile(raster.read_stack(info), (1, args.tiles, args.tiles)).astype(np.float32)
    stack = os.path.join(args.dir, "tiled.tif")
    raster.write_stack(stack, y, info.dates, raster.make_grid(300000.0, 5650000.0, 50.0, y.shape[2], y.shape[1]))
    print(f"{y.shape[1]} x {y.shape[2]} pixels ({y.shape[1] * y.shape[2]}), {y.shape[0]} epochs", flush=True)
    for prior in ("1", "0"):
        env = dict(os.environ, DEFORMCAST_BLEND_PRIOR=prior)
        out = subprocess.run([sys.executable, os.path.abspath(__file__), args.run, "--child", stack,
                              os.path.join(args.run, "models"), os.path.join(args.dir, f"median_{prior}.tif")],
                             env=env, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"prior {prior}: {out}", flush=True)


if __name__ == "__main__":
    main()
