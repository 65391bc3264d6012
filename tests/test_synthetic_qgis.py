"""synthetic_scenario through QGIS Processing (processing.run) and headless qgis_process."""
import json
import math
import os

import numpy as np
import pytest

SMALL = {"WIDTH": 40, "HEIGHT": 30, "N_EPOCHS": 40, "N_FUTURE": 5}


def _check_stack(path, n_bands, first_date="2017-01-06", step=12):
    from osgeo import gdal, osr

    ds = gdal.Open(path)
    assert ds is not None and ds.RasterCount == n_bands
    descs = [ds.GetRasterBand(i + 1).GetDescription() for i in range(n_bands)]
    dates = np.array(descs, dtype="datetime64[D]")  # ISO dates or this raises
    assert descs[0] == first_date
    assert np.all(np.diff(dates).astype(int) == step)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    srs.AutoIdentifyEPSG()
    assert srs.GetAuthorityCode(None) == "25832"
    nod = ds.GetRasterBand(1).GetNoDataValue()
    assert nod is not None and math.isnan(nod)
    arr = ds.ReadAsArray().astype(np.float32)
    assert os.path.isfile(os.path.splitext(path)[0] + ".qml")
    return arr, descs


def test_processing_run(run_alg, tmp_path):
    from deformcast.algorithms.data.synthetic import COVARIATE_NAMES

    out = tmp_path / "scene"
    res = run_alg("synthetic_scenario", dict(SMALL, SEED=7, OUTPUT_FOLDER=str(out)))
    assert res["OUTPUT_FOLDER"] == str(out)
    assert res["OUTPUT_STACK"] == str(out / "stack.tif")
    stack, _ = _check_stack(res["OUTPUT_STACK"], 40)
    truth, descs = _check_stack(res["OUTPUT_TRUTH"], 45)
    future, _ = _check_stack(res["OUTPUT_FUTURE"], 5, first_date=descs[40])
    assert stack.shape == (40, 30, 40)
    # value ranges: subsidence bowls of tens of mm, uplift, holes only in the observations
    assert -200 < np.nanmin(stack) < -30 and 10 < np.nanmax(stack) < 80
    assert np.isnan(stack).any() and np.all(np.isfinite(truth))
    assert np.all(truth[0] == 0) and np.all((stack[0] == 0) | np.isnan(stack[0]))
    assert np.isnan(future).any()
    covs = res["OUTPUT_COVARIATES"]
    assert [os.path.basename(p) for p in covs] == [f"{n}.tif" for n in COVARIATE_NAMES]
    for p in covs + [res["OUTPUT_ZONES"]]:
        assert os.path.isfile(p) and os.path.isfile(os.path.splitext(p)[0] + ".qml")
    doc = json.loads((out / "scene.json").read_text())
    assert doc["params"]["seed"] == 7 and doc["params"]["width"] == 40
    assert len(doc["dates"]) == 40 and len(doc["future_dates"]) == 5


def test_physics_parameter(run_alg, tmp_path, deformcast_provider):
    from qgis.core import QgsProcessingException

    from deformcast.algorithms.data.synthetic import make_scene

    alg = deformcast_provider.algorithm("synthetic_scenario")
    p = alg.parameterDefinition("PHYSICS")
    assert p is not None and list(p.options()) == ["demo", "varied"]
    assert p.flags() & p.FlagOptional and "varied" in alg.shortHelpString()
    out = tmp_path / "v"
    res = run_alg("synthetic_scenario", dict(SMALL, SEED=4, PHYSICS="varied", OUTPUT_FOLDER=str(out)))
    doc = json.loads((out / "scene.json").read_text())
    assert doc["params"]["physics"]["mode"] == "varied"
    ref = make_scene(seed=4, width=40, height=30, n_epochs=40, n_future=5, physics="varied")
    truth, _ = _check_stack(res["OUTPUT_TRUTH"], 45)
    np.testing.assert_allclose(truth, ref.truth, atol=1e-4)
    run_alg("synthetic_scenario", dict(SMALL, SEED=4, PHYSICS="demo", OUTPUT_FOLDER=str(tmp_path / "d")))
    assert json.loads((tmp_path / "d" / "scene.json").read_text())["params"]["physics"] == {"mode": "demo"}
    with pytest.raises(QgsProcessingException, match="PHYSICS"):
        run_alg("synthetic_scenario", dict(SMALL, PHYSICS="wild", OUTPUT_FOLDER=str(tmp_path / "w")))


def test_outputs_chain_in_the_modeler(deformcast_provider):
    alg = deformcast_provider.algorithm("synthetic_scenario")
    assert alg is not None and alg.group() == "Data"
    for name in ("OUTPUT_STACK", "OUTPUT_TRUTH", "OUTPUT_FUTURE", "OUTPUT_ZONES"):
        assert alg.outputDefinition(name).type() == "outputRaster"
    assert alg.outputDefinition("OUTPUT_COVARIATES").type() == "outputMultilayer"
    assert alg.outputDefinition("OUTPUT_FOLDER") is not None


def test_layers_open_in_qgis_with_their_styles(run_alg, tmp_path):
    from qgis.core import QgsRasterLayer

    res = run_alg("synthetic_scenario", dict(SMALL, SEED=1, OUTPUT_FOLDER=str(tmp_path / "s")))
    lyr = QgsRasterLayer(res["OUTPUT_ZONES"], "zones")
    assert lyr.isValid()
    msg, ok = lyr.loadNamedStyle(os.path.splitext(res["OUTPUT_ZONES"])[0] + ".qml")
    assert ok, msg
    labels = [c.label for c in lyr.renderer().classes()]
    assert "Mining subsidence bowl" in labels and "Fault zone" in labels
    lith = QgsRasterLayer([p for p in res["OUTPUT_COVARIATES"] if p.endswith("lithology.tif")][0], "lith")
    lith.loadNamedStyle(lith.source()[:-4] + ".qml")
    assert "Tertiary clay and silt" in [c.label for c in lith.renderer().classes()]
    stack = QgsRasterLayer(res["OUTPUT_STACK"], "stack")
    assert stack.isValid() and stack.bandCount() == 40 and stack.crs().authid() == "EPSG:25832"


def test_desktop_run_opens_stack_and_zones(run_alg, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProject

    ctx = QgsProcessingContext()
    ctx.setProject(QgsProject.instance())
    res = run_alg("synthetic_scenario", dict(SMALL, SEED=2, OUTPUT_FOLDER=str(tmp_path / "d")), context=ctx)
    to_load = ctx.layersToLoadOnCompletion()
    assert set(to_load) == {res["OUTPUT_STACK"], res["OUTPUT_ZONES"]}


def test_bad_values_give_clear_errors(run_alg, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="N_EPOCHS = 10 is out of range"):
        run_alg("synthetic_scenario", dict(SMALL, N_EPOCHS=10, OUTPUT_FOLDER=str(tmp_path / "a")))
    with pytest.raises(QgsProcessingException, match="CELL_SIZE"):
        run_alg("synthetic_scenario", dict(SMALL, CELL_SIZE=0, OUTPUT_FOLDER=str(tmp_path / "b")))
    assert not (tmp_path / "a" / "scene.json").exists()


def test_cancel(run_alg, tmp_path):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    fb = QgsProcessingFeedback()
    fb.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        run_alg("synthetic_scenario", dict(SMALL, OUTPUT_FOLDER=str(tmp_path / "c")), feedback=fb)
    assert not (tmp_path / "c" / "scene.json").exists()
    assert not (tmp_path / "c" / "stack.tif").exists()


@pytest.mark.slow
def test_qgis_process_headless(qgis_process_run, tmp_path):
    out = tmp_path / "headless"
    r = qgis_process_run("run", "deformcast:synthetic_scenario", "--", "SEED=3", f"OUTPUT_FOLDER={out}",
                         "WIDTH=40", "HEIGHT=30", "N_EPOCHS=60", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"OUTPUT_STACK:\t{out / 'stack.tif'}" in r.stdout
    stack, descs = _check_stack(str(out / "stack.tif"), 60)
    assert stack.shape == (60, 30, 40)
    assert -200 < np.nanmin(stack[-1]) < -30 and np.nanmax(stack[-1]) > 10
    assert 0.01 < np.isnan(stack[-1]).mean() < 0.2
    truth, tdescs = _check_stack(str(out / "truth.tif"), 72)
    assert tdescs[:60] == descs
    assert np.all(truth[0] == 0) and np.all(np.isfinite(truth))
    for name in ("stack", "truth", "future_observed", "zones", "covariates/lithology", "covariates/dem",
                 "covariates/fault_distance", "covariates/mining_mask"):
        assert (out / f"{name}.qml").is_file(), name
    doc = json.loads((out / "scene.json").read_text())
    assert doc["params"]["seed"] == 3 and doc["crs"] == "EPSG:25832"
    # the same seed through processing gives the same stack (determinism across entry points)
    from deformcast.algorithms.data.synthetic import make_scene

    ref = make_scene(seed=3, width=40, height=30, n_epochs=60)
    np.testing.assert_array_equal(np.isnan(stack), np.isnan(ref.observed))
    np.testing.assert_allclose(stack, ref.observed, atol=1e-4, equal_nan=True)  # BLAS rounding
    # a bad value fails the run with the core's message, not a traceback
    bad = qgis_process_run("run", "deformcast:synthetic_scenario", "--", f"OUTPUT_FOLDER={tmp_path / 'bad'}",
                           "N_EPOCHS=10", timeout=300)
    assert bad.returncode != 0
    assert "N_EPOCHS = 10 is out of range" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
