"""Training and inference throughput of the six architectures at their default sizes.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_models.py [--threads 2] [--device cpu|cuda|auto]
        [--window 12] [--horizon 6] [--features 4] [--archs lstm,gru,...] [--json out.json]

* Training throughput: windows per second through forward + backward + AdamW step + gradient
  clipping at the default batch size (what :func:`algorithms.learn.training.train_model` does per batch),
  after a warm-up.
* Inference throughput: pixel-forecasts per second, one pixel-forecast = all HORIZON steps of one
  pixel, through :func:`algorithms.learn.training.predict_array` (its default batch of 2048 under
  ``torch.inference_mode``). Pixel-step forecasts per second = that x HORIZON.
* End-to-end (ResNet+Transformer only): building the network inputs from a stack block with
  :func:`algorithms.data.dataset.forecast_inputs` (temporal encoding) plus the model, per pixel.

The target of issue 4: a default-size ResNet+Transformer predicts >= 50,000 pixel-forecasts per
second on 2 CPU cores. Numbers depend on the CPU and on other load; the script prints the
machine's core count and load average so a reader can judge.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PKGROOT = os.path.join(os.path.dirname(HERE), "build", "pkgroot")
if not os.path.exists(os.path.join(PKGROOT, "deformcast")):
    os.makedirs(PKGROOT, exist_ok=True)
    os.symlink(os.path.dirname(HERE), os.path.join(PKGROOT, "deformcast"))
sys.path.insert(0, PKGROOT)


def bench_train(name, F, window, horizon, device, seconds=4.0):
    import torch

    from deformcast.algorithms.models import build_model, count_parameters, resolve_hparams

    hp = resolve_hparams(name)
    torch.manual_seed(0)
    model = build_model(name, F, window, horizon, hp).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    bs = hp["batch_size"]
    X = torch.randn(bs * 8, window, F, device=device)
    Y = torch.randn(bs * 8, horizon, device=device)

    def step(i):
        sl = slice((i % 8) * bs, (i % 8 + 1) * bs)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(X[sl]), Y[sl])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
        opt.step()

    for i in range(3):
        step(i)
    if device == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step(n)
        n += 1
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return n * bs / dt, count_parameters(model)


def bench_infer(name, F, window, horizon, device, n=65536, repeats=3):
    import torch

    from deformcast.algorithms.models import build_model
    from deformcast.algorithms.learn.training import predict_array

    torch.manual_seed(0)
    model = build_model(name, F, window, horizon).eval()
    X = np.random.default_rng(0).standard_normal((n, window, F)).astype(np.float32)
    predict_array(model, X[:4096], device=device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_array(model, X, device=device)
        best = min(best, time.perf_counter() - t0)
    return n / best


def bench_end_to_end(device, window, horizon, side=200, T=150):
    """forecast_inputs (temporal encoding) + ResNet+Transformer on a side x side block."""
    import torch

    from deformcast.algorithms.data.dataset import feature_names, forecast_inputs
    from deformcast.algorithms.models import build_model
    from deformcast.algorithms.io.raster import make_grid
    from deformcast.algorithms.learn.training import predict_array

    rng = np.random.default_rng(1)
    dates = np.datetime64("2018-01-01") + np.arange(T) * np.timedelta64(12, "D")
    stack = np.cumsum(rng.normal(0, 1, (T, side, side)), axis=0).astype(np.float32)
    grid = make_grid(300000.0, 5600000.0, 50.0, side, side)
    cfg = {"window": window, "horizon": horizon, "encodings": ["temporal"], "target": "increment",
           "baseline": "trajectory_ensemble", "baseline_years": 3.0, "neighbourhood_k": 3, "fourier": 0,
           "covariate_names": [], "grid_shape": [side, side]}
    cfg["feature_names"] = feature_names(cfg)
    norm = {"disp_scale": 1.0, "target_scale": [1.0] * horizon, "date0": str(dates[0]),
            "time_scale_years": 4.0, "covariates": {}}
    torch.manual_seed(0)
    model = build_model("resnet_transformer", len(cfg["feature_names"]), window, horizon).eval()
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        X, valid, anchor = forecast_inputs(stack, dates, grid, 0, cfg, norm)
        t1 = time.perf_counter()
        predict_array(model, X, device=device)
        t2 = time.perf_counter()
        if t2 - t0 < best:
            best, feat = t2 - t0, t1 - t0
    return side * side / best, feat / best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--window", type=int, default=12)
    ap.add_argument("--horizon", type=int, default=6)
    ap.add_argument("--features", type=int, default=4, help="input channels (4 = displacement + temporal)")
    ap.add_argument("--archs", default="lstm,gru,tcn,cnn_lstm,transformer,resnet_transformer")
    ap.add_argument("--train-seconds", type=float, default=4.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)

    import torch

    from deformcast.algorithms.learn.training import resolve_device

    torch.set_num_threads(a.threads)
    dev = resolve_device(a.device)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, device {dev}, {a.threads} threads, {os.cpu_count()} cores, "
          f"load average {load}; window {a.window}, horizon {a.horizon}, {a.features} channels")
    rows = []
    print(f"{'architecture':20s} {'params':>8s} {'train win/s':>12s} {'infer px/s':>12s} {'px-steps/s':>12s}")
    for name in a.archs.split(","):
        tr, npar = bench_train(name, a.features, a.window, a.horizon, dev, a.train_seconds)
        inf = bench_infer(name, a.features, a.window, a.horizon, dev)
        rows.append({"architecture": name, "parameters": npar, "train_samples_per_s": tr,
                     "infer_pixel_forecasts_per_s": inf, "infer_pixel_steps_per_s": inf * a.horizon})
        print(f"{name:20s} {npar:8d} {tr:12.0f} {inf:12.0f} {inf * a.horizon:12.0f}", flush=True)
    e2e, feat_share = bench_end_to_end(dev, a.window, a.horizon)
    print(f"end-to-end ResNet+Transformer (inputs from a 200 x 200 x 150 block + model): {e2e:.0f} pixel-forecasts/s "
          f"({100 * feat_share:.0f} % of the time building inputs)")
    rt = [r for r in rows if r["architecture"] == "resnet_transformer"]
    if rt:
        ok = rt[0]["infer_pixel_forecasts_per_s"] >= 50000
        print(f"target (ResNet+Transformer >= 50,000 pixel-forecasts/s on {a.threads} threads): "
              f"{'MET' if ok else 'NOT MET'} ({rt[0]['infer_pixel_forecasts_per_s']:.0f})")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"device": dev, "threads": a.threads, "cores": os.cpu_count(), "load": load,
                       "window": a.window, "horizon": a.horizon, "features": a.features, "rows": rows,
                       "end_to_end_pixel_forecasts_per_s": e2e, "torch": torch.__version__}, fh, indent=1)


if __name__ == "__main__":
    main()
