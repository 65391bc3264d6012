"""The main job end to end on a tiny scene: workflow algorithm, report, QGIS project; the shipped
graphical model headless."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms import raster
from deformcast.algorithms.synthetic import write_scene


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    return write_scene(str(d), seed=5, width=24, height=20, n_epochs=60, n_future=4)


@pytest.mark.slow
def test_workflow_on_own_stack_writes_report_and_project(run_alg, tiny_scene, tmp_path):
    from qgis.core import QgsProject

    out = tmp_path / "wf"
    res = run_alg("workflow", {
        "INPUT": tiny_scene["stack"], "OBSERVED": tiny_scene["future_observed"],
        "ARCHITECTURES": ["gru"], "HORIZON": 3, "N_TRIALS": 2, "TOP_K": 2, "MAX_EPOCHS": 2,
        "THRESHOLDS": "2,5", "SEED": 1, "DEVICE": "cpu", "OUTPUT_FOLDER": str(out)})
    assert Path(res["OUTPUT_REPORT"]).is_file() and Path(res["OUTPUT_PROJECT"]).is_file()
    summary = json.loads((out / "workflow.json").read_text())
    # the backtest table holds the ensemble, members and every baseline on the same pixels
    names = [r["model"] for r in summary["backtest"]["rows"]]
    assert names[0] == "ensemble median" and any(n.startswith("baseline: trajectory") for n in names)
    assert all(np.isfinite(r["rmse_observed"]) for r in summary["backtest"]["rows"])
    html = Path(res["OUTPUT_REPORT"]).read_text()
    for needle in ("TPE tuning", "baseline: persistence", "Susceptibility", "Tiered control zones", "data:image/png"):
        assert needle in html
    # every raster output is styled
    for k in ("forecast_median", "tiers", "OUTPUT_SUSCEPTIBILITY", "OUTPUT_EXCEEDANCE"):
        p = summary["paths"][k]
        assert os.path.exists(os.path.splitext(p)[0] + ".qml"), p
    # the project opens with every layer valid, grouped
    proj = QgsProject()
    assert proj.read(res["OUTPUT_PROJECT"])
    layers = list(proj.mapLayers().values())
    assert len(layers) >= 10 and all(lyr.isValid() for lyr in layers)
    groups = [g.name() for g in proj.layerTreeRoot().children()]
    assert groups[:4] == ["Decision", "Uncertainty", "Forecast", "Residuals"]
    tiers = next(lyr for lyr in layers if lyr.name() == "Control tiers")
    assert tiers.renderer().type() == "paletted"


@pytest.mark.slow
def test_graphical_model_runs_headless(qgis_process_run, tiny_scene, tmp_path):
    r = qgis_process_run("run", "deformcast:deformcast_workflow_model", "--", f"INPUT={tiny_scene['stack']}",
                         "ARCHITECTURE=gru", "HORIZON=2", "N_TRIALS=2", "TOP_K=2", "MAX_EPOCHS=2", "THRESHOLDS=3",
                         f"tune:Model folder={tmp_path / 'models'}",
                         f"predict:Forecast (median)={tmp_path / 'median.tif'}",
                         f"uncertainty:Susceptibility={tmp_path / 'susceptibility.tif'}",
                         f"zoning:Control tiers={tmp_path / 'tiers.tif'}",
                         f"zoning:Control zones={tmp_path / 'zones.gpkg'}", timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    tiers, grid, _ = raster.read_raster(str(tmp_path / "tiers.tif"))
    vals = set(np.unique(tiers[np.isfinite(tiers)]).astype(int))
    assert vals and vals <= {1, 2, 3, 4}
    assert (tmp_path / "models" / "manifest.json").is_file()
    assert (tmp_path / "zones.gpkg").is_file()
    assert (tmp_path / "median.qml").is_file() and (tmp_path / "susceptibility.qml").is_file()
