"""Writing a synthetic scene into a folder of GeoTIFFs (with styles and ``scene.json``) and reading it back."""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import numpy as np

from ...errors import DeformCastError
from ...progress import Progress
from .build import make_scene
from .scene import COVARIATE_NAMES, LITHOLOGY, ZONE_COLOURS, ZONE_NAMES, Scene
from .varied import check_physics

SCENE_JSON = "scene.json"


def _covariate_style(name: str, arr: np.ndarray) -> str:
    from ...io import styles

    if name == "lithology":
        return styles.categorical([(c, r[0], r[5]) for c, r in LITHOLOGY.items()])
    if name == "mining_mask":
        return styles.categorical([(0, "Outside extracted panels", "#f0f0f0"),
                                   (1, "Extracted panel (mining / dewatering)", "#8c510a")])
    if name == "fault_distance":
        m = float(np.nanmax(np.abs(arr))) or 1.0
        return styles.pseudocolor(-m, m, "residual", unit="m")
    lo, hi = styles.robust_range(arr, 1, 99)
    return styles.pseudocolor(lo, hi, "viridis", unit="m")


def write_scene(folder: str, seed=0, progress: Optional[Progress] = None, physics: str = "demo",
                **kw) -> Dict[str, str]:
    """Build the scene and write it into ``folder``; return ``name -> path``.

    Files: ``stack.tif`` (observed), ``truth.tif`` (observed + future epochs, noise-free),
    ``future_observed.tif``, ``zones.tif``, ``covariates/<name>.tif`` (each with its ``.qml``
    style) and ``scene.json`` (parameters, dates, file list), which is written last as the
    completion marker: a folder without it is unfinished. Keys of the returned dict:
    ``stack``, ``truth``, ``future_observed``, ``zones``, the covariate names, ``scene_json``.
    ``physics`` and the other keywords go to :func:`make_scene`.
    """
    from ...io import styles
    from ...io.raster import iso, write_raster, write_stack

    progress = progress or Progress()
    if not folder or not str(folder).strip():
        raise DeformCastError("OUTPUT_FOLDER is empty; give a folder for the scene files.")
    folder = os.path.abspath(str(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise DeformCastError(f"OUTPUT_FOLDER '{folder}' is a file; give a folder path.")
    try:
        os.makedirs(os.path.join(folder, "covariates"), exist_ok=True)
    except OSError as e:
        raise DeformCastError(f"Cannot create the output folder '{folder}': {e.strerror}. "
                              "Choose a folder you can write to.") from None
    physics = check_physics(physics)  # refused before anything is touched
    scene = make_scene(seed=seed, progress=progress.sub(0.0, 0.6), physics=physics, **kw)
    marker = os.path.join(folder, SCENE_JSON)
    if os.path.exists(marker):
        os.remove(marker)  # from here on an interrupted rewrite must not look complete
    wp = progress.sub(0.6, 1.0)
    meta = {"DEFORMCAST_SCENE": "synthetic", "SEED": scene.params["seed"], "UNITS": "mm",
            "SIGN": "positive = uplift"}
    if physics != "demo":
        meta["PHYSICS"] = physics
    out: Dict[str, str] = {}
    out["stack"] = write_stack(os.path.join(folder, "stack.tif"), scene.observed, scene.dates, scene.grid,
                               metadata=dict(meta, CONTENT="observed displacement"))
    wp.set(0.35)
    out["truth"] = write_stack(os.path.join(folder, "truth.tif"), scene.truth, scene.all_dates, scene.grid,
                               metadata=dict(meta, CONTENT="noise-free truth, observed and future epochs",
                                             N_OBSERVED=scene.dates.size))
    wp.set(0.7)
    out["future_observed"] = write_stack(os.path.join(folder, "future_observed.tif"), scene.future_observed,
                                         scene.future_dates, scene.grid,
                                         metadata=dict(meta, CONTENT="noisy observations after the stack"))
    wp.set(0.8)
    out["zones"] = write_raster(
        os.path.join(folder, "zones.tif"), scene.zones, scene.grid, ["zone"], "uint8", None,
        styles.categorical([(k, v, ZONE_COLOURS[k]) for k, v in scene.zone_names.items()]),
        metadata=dict(meta, CONTENT="zones: " + "; ".join(f"{k} {v}" for k, v in scene.zone_names.items())))
    for name in COVARIATE_NAMES:
        arr = scene.covariates[name]
        is_class = name in ("lithology", "mining_mask")
        out[name] = write_raster(
            os.path.join(folder, "covariates", f"{name}.tif"), arr, scene.grid, [name],
            "uint8" if is_class else "float32", None, _covariate_style(name, arr),
            metadata=dict(meta, CONTENT=scene.params["covariates"][name]))
        wp.check()
    wp.set(0.95)
    doc = {
        "params": scene.params,
        "dates": [iso(d) for d in scene.dates],
        "future_dates": [iso(d) for d in scene.future_dates],
        "crs": f"EPSG:{scene.params['epsg']}",
        "geotransform": list(scene.grid.geotransform),
        "files": {k: os.path.relpath(v, folder) for k, v in out.items()},
        "covariates": list(COVARIATE_NAMES),
    }
    tmp = marker + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, marker)
    out["scene_json"] = marker
    wp.set(1.0)
    return out


def read_scene(folder: str) -> Scene:
    """Read a folder written by :func:`write_scene` back into a :class:`Scene`."""
    from ...io.raster import open_stack, read_raster, read_stack

    marker = os.path.join(str(folder), SCENE_JSON)
    if not os.path.isfile(marker):
        raise DeformCastError(f"'{folder}' holds no complete synthetic scene ({SCENE_JSON} is missing); "
                              "run synthetic_scenario again.")
    with open(marker, encoding="utf-8") as fh:
        doc = json.load(fh)
    files = {k: os.path.join(str(folder), v) for k, v in doc["files"].items()}
    info = open_stack(files["stack"])
    observed = read_stack(info)
    truth = read_stack(open_stack(files["truth"]))
    fut = read_stack(open_stack(files["future_observed"]))
    zones = read_raster(files["zones"])[0][0].astype(np.int16)
    cov = {n: read_raster(files[n])[0][0] for n in doc["covariates"]}
    zone_names = {int(k): v for k, v in doc["params"].get("zones", {}).items()} or dict(ZONE_NAMES)
    return Scene(grid=info.grid, dates=info.dates,
                 future_dates=np.array(doc["future_dates"], dtype="datetime64[D]"),
                 observed=observed, truth=truth, future_observed=fut, covariates=cov, zones=zones,
                 params=doc["params"], zone_names=zone_names)
