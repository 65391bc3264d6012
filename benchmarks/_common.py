"""Shared helpers of the benchmark scripts."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKGROOT = ROOT / "build" / "pkgroot"


def ensure_pkg() -> None:
    """Make ``import deformcast`` work from a checkout with any folder name."""
    PKGROOT.mkdir(parents=True, exist_ok=True)
    link = PKGROOT / "deformcast"
    if not link.exists():
        try:
            link.symlink_to(ROOT, target_is_directory=True)
        except FileExistsError:     # another benchmark started at the same moment made it
            pass
    if str(PKGROOT) not in sys.path:
        sys.path.insert(0, str(PKGROOT))


def vm_mb(key: str = "VmHWM") -> float:
    """A memory figure of this process from /proc/self/status, in MB (VmHWM = peak resident set)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rmse(a, b, m) -> float:
    """RMSE of ``a`` against ``b`` ((epochs, rows, cols)) over the pixels ``m``; NaN when ``m`` holds none."""
    import numpy as np

    d = (a[:, m] - b[:, m]).astype(np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def fair_member(members, truth, expected, score):
    """The hindsight reference without the offset's luck (session 39): the index of the member of ``members`` best
    against the ``expected`` observation and its score against the ``truth`` (``score(forecast, target)``, an RMSE).
    A minimum over the members against the truth also picks the member whose errors happen to cancel part of the
    reference epoch's noise, which no forecast can know."""
    i = min(range(len(members)), key=lambda c: score(members[c], expected))
    return i, score(members[i], truth)


def common_mode(flat, dates):
    """Each date's common mode of a stack (epochs, pixels): the median over the complete series of the
    residual of each pixel's all-history fit (offset, velocity, acceleration, annual and semi-annual terms)
    at that date, as regional filtering does for GNSS networks. (epochs,)."""
    import numpy as np
    from deformcast.algorithms.data.common_mode import common_residual

    return common_residual(flat[:, np.isfinite(flat).all(axis=0)], dates)


def stack_of(folder: str) -> str:
    """The stack the main job of a ``bench_skill.py`` run read: ``stack_points.tif`` for a ``--points`` run,
    else the scene's ``stack.tif``."""
    import os

    pts = os.path.join(folder, "stack_points.tif")
    return pts if os.path.isfile(pts) else os.path.join(folder, "scene", "stack.tif")


def member_medians(job: str, info, origins, end=None):
    """The members of a finished main job (``job``/workflow.json) forecast on the stack ``info`` from each origin of
    ``origins`` (epoch indices), their date weights estimated on its epochs up to ``end`` (None: all, as ``predict``
    does); the ensemble median of each, float32 (len(origins), horizon, rows, cols), and the horizon."""
    import json
    import os

    import numpy as np
    from deformcast.algorithms.io import raster
    from deformcast.algorithms.maps.member_forecasts import Plan, forecast_items, load_members, members_covariates

    with open(os.path.join(job, "workflow.json"), encoding="utf-8") as fh:
        s = json.load(fh)
    loaded = load_members(s["paths"]["models"], None, device="cpu", info=info, end=end)
    configs = [m.meta.get("data_config") or {} for m in loaded]
    H = int(loaded[0].meta["horizon"])
    cov = members_covariates(configs, (), info.grid)
    blk = raster.read_stack(info)
    res = forecast_items([(blk, 0, 0, blk.shape[1], cov, o) for o in origins], info.dates, info.grid, loaded,
                         Plan(loaded, configs), H, "cpu", 4096)
    with np.errstate(all="ignore"):
        return np.stack([np.median(out, axis=0) for out, _ in res]).astype(np.float32), H


def run_medians(folder: str, back):
    """The members of a finished ``bench_skill.py`` run (``folder``/job) forecast from the last acquisition of its
    scene and from each origin ``back`` epochs before it; the ensemble median of each, float32
    (len(back) + 1, horizon, rows, cols). Returns ``(origins, medians, info, horizon)``."""
    import os

    from deformcast.algorithms.io import raster

    info = raster.open_stack(stack_of(folder))
    e = info.n_epochs - 1
    origins = [e - k for k in back] + [e]
    meds, H = member_medians(os.path.join(folder, "job"), info, origins)
    return origins, meds, info, H


def regated_workflow(stack_path: str, job: str) -> dict:
    """A finished main job (``job``/workflow.json) re-scored with the current skill gate, the same models and data: the
    gate fitted again (its rolling origins' CSV rewritten) and the forecast made again; the workflow's summary with
    the new gate."""
    import json
    import os

    from deformcast.algorithms.maps import skill_gate
    from deformcast.algorithms.maps.ensemble import predict_ensemble

    with open(os.path.join(job, "workflow.json"), encoding="utf-8") as fh:
        s = json.load(fh)
    s["gate"] = skill_gate.run_gate(stack_path, s["paths"]["models"], csv_path=os.path.join(job, "rolling_origins.csv"))
    predict_ensemble(stack_path, s["paths"]["models"], s["paths"]["forecast_median"])
    return s


#: the zone codes of the generated scenes' ``zones.tif`` (all three generators write them), as the benchmarks name them
ZONE_NAMES = {0: "background", 1: "mining", 2: "fault", 3: "uplift", 4: "step area", 5: "buildings"}


def write_generated(folder: str, s: dict, seed: int, scene: str, epsg: int, geotransform) -> dict:
    """A generated scene ``s`` (``observed``, ``truth``, ``future_observed``, ``zones``, ``dates``, ``future_dates``,
    ``params``) written like ``synthetic.write_scene`` (the keys ``bench_skill.py`` reads): the GeoTIFFs on a grid of
    EPSG ``epsg`` and ``geotransform``, tagged ``DEFORMCAST_SCENE`` = ``scene``, and ``scene.json``."""
    import json
    import os

    import numpy as np
    from deformcast.algorithms.io.raster import Grid, iso, write_raster, write_stack
    from osgeo import osr

    H, W = s["zones"].shape
    os.makedirs(folder, exist_ok=True)
    sr = osr.SpatialReference()
    sr.ImportFromEPSG(int(epsg))
    grid = Grid(tuple(float(v) for v in geotransform), sr.ExportToWkt(), W, H)
    meta = {"DEFORMCAST_SCENE": scene, "SEED": int(seed), "UNITS": "mm"}
    out = {"stack": write_stack(os.path.join(folder, "stack.tif"), s["observed"], s["dates"], grid,
                                metadata=dict(meta, CONTENT="observed displacement")),
           "truth": write_stack(os.path.join(folder, "truth.tif"), s["truth"],
                                np.concatenate([s["dates"], s["future_dates"]]), grid,
                                metadata=dict(meta, CONTENT="noise-free truth, observed and future epochs")),
           "future_observed": write_stack(os.path.join(folder, "future_observed.tif"), s["future_observed"],
                                          s["future_dates"], grid, metadata=dict(meta, CONTENT="later observations")),
           "zones": write_raster(os.path.join(folder, "zones.tif"), s["zones"], grid, ["zone"], "uint8")}
    marker = os.path.join(folder, "scene.json")
    with open(marker, "w", encoding="utf-8") as fh:
        json.dump({"params": s["params"], "dates": [iso(d) for d in s["dates"]],
                   "future_dates": [iso(d) for d in s["future_dates"]],
                   "files": {k: os.path.relpath(v, folder) for k, v in out.items()}}, fh, indent=1)
    out["scene_json"] = marker
    return out
