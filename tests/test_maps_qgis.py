"""The maps/decision algorithms through QGIS Processing: uncertainty -> residuals -> zoning."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.io.raster import make_grid, read_raster, write_raster, write_stack

DATES = np.array(["2021-01-01", "2021-01-13", "2021-01-25", "2021-02-06"], dtype="datetime64[D]")


@pytest.fixture()
def scene(tmp_path):
    """A 12 x 14 scene: a subsidence bowl, 6 members x 2 forecast epochs, later observations."""
    h, w = 12, 14
    grid = make_grid(700000, 5300000, 20.0, w, h)
    yy, xx = np.mgrid[0:h, 0:w]
    bowl = -30.0 * np.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 8.0)
    stack = np.stack([bowl * k / 3 for k in range(4)]).astype(np.float32)  # last epoch = bowl
    rng = np.random.default_rng(0)
    fc_dates = np.array(["2021-02-18", "2021-03-02"], dtype="datetime64[D]")
    bands, names = [], []
    for m in range(6):
        noise = rng.normal(0, 1.0, size=(h, w))
        for j in range(2):
            bands.append(stack[-1] + (bowl * (j + 1) / 3) * (1 + 0.1 * (m - 2.5)) + noise)
            names.append(f"member{m} {fc_dates[j]}")
    sp = write_stack(str(tmp_path / "stack.tif"), stack, DATES, grid)
    mp = write_raster(str(tmp_path / "members.tif"), np.stack(bands).astype(np.float32), grid, names)
    median = np.median(np.stack(bands).reshape(6, 2, h, w), axis=0).astype(np.float32)
    fp = write_stack(str(tmp_path / "median.tif"), median, fc_dates, grid)
    obs = np.concatenate([stack, median + rng.normal(0, 0.5, size=median.shape).astype(np.float32)])
    obs[4:, 6:9, 10:13] += 6.0  # a place where the forecast misses
    op = write_stack(str(tmp_path / "observed.tif"), obs, np.concatenate([DATES, fc_dates]), grid)
    return {"stack": sp, "members": mp, "median": fp, "observed": op, "grid": grid, "dir": tmp_path}


def _qml(path):
    return os.path.exists(os.path.splitext(path)[0] + ".qml")


def test_chain_through_processing(run_alg, scene):
    d = scene["dir"]
    u = run_alg("uncertainty", {
        "MEMBERS": scene["members"], "INPUT": scene["stack"], "THRESHOLDS": "5,10", "N_CLASSES": 5,
        "MODE": "subsidence", "EXTREME_QUANTILES": "95",
        "OUTPUT_SUSCEPTIBILITY": str(d / "susc.tif"), "OUTPUT_SPREAD": str(d / "spread.tif"),
        "OUTPUT_AMBIGUITY": str(d / "amb.tif"), "OUTPUT_CONFIDENCE": str(d / "conf.tif"),
        "OUTPUT_EXCEEDANCE": str(d / "exc.tif"), "OUTPUT_DEFORMATION": str(d / "def.tif"),
        "OUTPUT_CLASS_PROBABILITIES": str(d / "probs.tif"), "OUTPUT_REPORT": str(d / "unc.html")})
    for k in ("OUTPUT_SUSCEPTIBILITY", "OUTPUT_SPREAD", "OUTPUT_AMBIGUITY", "OUTPUT_CONFIDENCE",
              "OUTPUT_EXCEEDANCE", "OUTPUT_DEFORMATION", "OUTPUT_CLASS_PROBABILITIES"):
        assert os.path.exists(u[k]) and _qml(u[k]), k
    assert os.path.exists(u["OUTPUT_REPORT"])
    exc, _, names = read_raster(u["OUTPUT_EXCEEDANCE"])
    assert exc.shape[0] == 3 and "5 mm" in names[0]
    # the bowl centre subsides by ~30 mm x 2/3 over the horizon relative to the last epoch
    assert exc[1, 4, 4] > 0.99 and exc[0, 11, 13] < 0.01     # dressed members: near, not at, 1 and 0

    r = run_alg("residuals", {
        "FORECAST": scene["median"], "OBSERVED": scene["observed"], "UNCERTAINTY": [u["OUTPUT_SPREAD"]],
        "N_PERMUTATIONS": 19, "SEED": 1, "OUTPUT_RESIDUALS": str(d / "res.tif"),
        "OUTPUT_HOTSPOTS": str(d / "gi.tif"), "OUTPUT_HOTSPOT_CLASSES": str(d / "gic.tif"),
        "OUTPUT_REPORT": str(d / "res.html")})
    for k in ("OUTPUT_RESIDUALS", "OUTPUT_HOTSPOTS", "OUTPUT_HOTSPOT_CLASSES"):
        assert os.path.exists(r[k]) and _qml(r[k]), k
    assert r["MORANS_I"] > 0.2 and r["MORANS_P"] == pytest.approx(0.05)
    cls = read_raster(r["OUTPUT_HOTSPOT_CLASSES"])[0][0]
    assert cls[7, 11] >= 6

    z = run_alg("zoning", {
        "SUSCEPTIBILITY": u["OUTPUT_SUSCEPTIBILITY"], "AMBIGUITY": u["OUTPUT_AMBIGUITY"],
        "EXCEEDANCE": u["OUTPUT_EXCEEDANCE"], "EXCEEDANCE_BAND": 1, "HOTSPOTS": r["OUTPUT_HOTSPOTS"],
        "FORECAST": u["OUTPUT_DEFORMATION"], "RULES": json.dumps({"exceedance_high": 0.6}), "MIN_AREA": 800, "MMU": 0,
        "OUTPUT_TIERS": str(d / "tiers.tif"), "OUTPUT_ZONES": str(d / "zones.gpkg"),
        "OUTPUT_REPORT": str(d / "zoning.html")})
    assert os.path.exists(z["OUTPUT_TIERS"]) and _qml(z["OUTPUT_TIERS"])
    assert os.path.exists(z["OUTPUT_ZONES"]) and _qml(z["OUTPUT_ZONES"])
    tiers = read_raster(z["OUTPUT_TIERS"])[0][0]
    assert tiers[4, 4] == 1 and tiers[7, 11] == 2
    quiet = tiers == 4  # routine where exceeding the threshold is unlikely, whatever the relative class
    assert quiet.sum() > 0.2 * tiers.size and np.all(exc[0][quiet] < 0.2)
    from qgis.core import QgsVectorLayer

    vl = QgsVectorLayer(z["OUTPUT_ZONES"], "zones", "ogr")
    assert vl.isValid() and vl.featureCount() >= 3
    msg, ok = vl.loadNamedStyle(os.path.splitext(z["OUTPUT_ZONES"])[0] + ".qml")
    assert ok, msg
    assert vl.renderer().type() == "categorizedSymbol"
    assert {f["tier"] for f in vl.getFeatures()} >= {1, 2, 4}


def test_polygon_zones_through_processing(run_alg, scene, tmp_path):
    from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

    g = scene["grid"]
    x0, y0 = g.geotransform[0], g.geotransform[3]
    vl = QgsVectorLayer("Polygon?crs=EPSG:25832&field=name:string", "fault", "memory")
    f = QgsFeature(vl.fields())
    f.setAttribute("name", "fault")
    f.setGeometry(QgsGeometry.fromWkt(
        f"POLYGON(({x0 + 200} {y0 - 120},{x0 + 260} {y0 - 120},{x0 + 260} {y0 - 180},{x0 + 200} {y0 - 180},"
        f"{x0 + 200} {y0 - 120}))"))
    vl.dataProvider().addFeatures([f])
    r = run_alg("residuals", {"FORECAST": scene["median"], "OBSERVED": scene["observed"], "ZONES": vl,
                              "ZONE_FIELD": "name", "N_PERMUTATIONS": 0,
                              "OUTPUT_RESIDUALS": "TEMPORARY_OUTPUT", "OUTPUT_HOTSPOTS": "TEMPORARY_OUTPUT",
                              "OUTPUT_HOTSPOT_CLASSES": "TEMPORARY_OUTPUT",
                              "OUTPUT_REPORT": str(tmp_path / "z.html")})
    html = Path(r["OUTPUT_REPORT"]).read_text(encoding="utf-8")
    assert "name=fault" in html


def test_bad_input_is_a_processing_error(run_alg, scene):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="No forecast date is also an observation date"):
        run_alg("residuals", {"FORECAST": scene["median"], "OBSERVED": scene["stack"],
                              "OUTPUT_RESIDUALS": "TEMPORARY_OUTPUT", "OUTPUT_HOTSPOTS": "TEMPORARY_OUTPUT",
                              "OUTPUT_HOTSPOT_CLASSES": "TEMPORARY_OUTPUT", "OUTPUT_REPORT": "TEMPORARY_OUTPUT"})
    with pytest.raises(QgsProcessingException, match="MODE"):
        run_alg("uncertainty", {"MEMBERS": scene["members"], "INPUT": scene["stack"], "MODE": "sideways",
                                "OUTPUT_SUSCEPTIBILITY": "TEMPORARY_OUTPUT"})


@pytest.mark.slow
def test_uncertainty_via_qgis_process(qgis_process_run, scene):
    d = scene["dir"]
    out = str(d / "qp_susc.tif")
    p = qgis_process_run("run", "deformcast:uncertainty", "--", f"MEMBERS={scene['members']}",
                         f"INPUT={scene['stack']}", "THRESHOLDS=5", "N_CLASSES=3", "MODE=magnitude",
                         f"OUTPUT_SUSCEPTIBILITY={out}", f"OUTPUT_EXCEEDANCE={d / 'qp_exc.tif'}",
                         f"OUTPUT_REPORT={d / 'qp.html'}", timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert os.path.exists(out) and _qml(out)
    s = read_raster(out)[0][0]
    assert set(np.unique(s[np.isfinite(s)])) == {1, 2, 3}
