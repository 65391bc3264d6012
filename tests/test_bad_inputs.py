"""Issue 14, "no silent wrong results": every bad or unusual input of the issue, run through the
Processing algorithms (the CSV/point cases through import_timeseries), with the message, the
failure and that no output looks complete checked. Tiny rasters, one trial, one epoch."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.data import dataset
from deformcast.algorithms.models import modelio
from deformcast.algorithms.io import raster
from deformcast.algorithms.learn import tuning
from deformcast.algorithms.learn.training import train_model

# ------------------------------------------------------------------------------------------
# fixtures and helpers
# ------------------------------------------------------------------------------------------
W_, H_, T_ = 9, 7, 60
SPACE = json.dumps({"samples_per_epoch": 64, "hidden": 4, "layers": 1, "batch_size": 64})
TUNE = {"ARCHITECTURE": "gru", "HORIZON": 2, "N_TRIALS": 1, "TOP_K": 1, "MAX_EPOCHS": 1, "MAX_SAMPLES": 300,
        "WINDOW": 6, "ENCODING": ["temporal"], "PRUNER": "none", "SEARCH_SPACE": SPACE, "SEED": 1, "DEVICE": "cpu",
        "THREADS": 1}


def _values(seed=1, T=T_, H=H_, W=W_):
    rng = np.random.default_rng(seed)
    t = np.arange(T, dtype=np.float32)[:, None, None]
    rate = rng.uniform(-0.8, 0.2, size=(1, H, W)).astype(np.float32)
    v = rate * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25) + rng.normal(0, 0.3, (T, H, W))
    v[0] = 0.0  # a constant first band, as in every stack referred to its first epoch
    return v.astype(np.float32)


DATES = np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(12, "D")
GRID = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 9 x 7 x 60 stack and a model folder with two tiny GRU members (1 epoch each)."""
    d = tmp_path_factory.mktemp("small")
    vals = _values()
    stack = str(d / "stack.tif")
    raster.write_stack(stack, vals, DATES, GRID)
    prep = dataset.prepare(vals, DATES, GRID, 8, 3, encodings=("temporal",), max_samples=300, seed=0)
    root = d / "models"
    names = []
    for k in range(2):
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 4}, device="cpu",
                          seed=k, max_epochs=1, patience=1)
        meta = {"architecture": "gru", "hparams": res.hparams, "n_features": prep.n_features, "window": res.window,
                "horizon": res.horizon, "feature_names": prep.feature_names, "encodings": ["temporal"],
                "normalisation": prep.norm, "data_config": prep.config, "grid": modelio.grid_to_dict(GRID),
                "validation": {"val_loss": res.best_val_loss}, "seed": k, "stack": stack,
                "dates": [str(x) for x in DATES]}
        names.append(f"m{k:02d}_gru")
        modelio.save_model(str(root / names[-1]), res.model, meta)
    modelio.write_manifest(str(root), names)
    return {"dir": d, "stack": stack, "models": str(root), "vals": vals}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 16 x 16 x 40 synthetic scene (tune needs a few more pixels than `small`)."""
    from deformcast.algorithms.data import synthetic

    d = tmp_path_factory.mktemp("scene")
    return synthetic.write_scene(str(d), seed=2, width=16, height=16, n_epochs=40, n_future=4)


@pytest.fixture()
def fb(qgis_app):
    """A QgsProcessingFeedback that keeps its warnings and infos."""
    from qgis.core import QgsProcessingFeedback

    class FB(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings, self.infos = [], []

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)
            super().pushWarning(text)

        def pushInfo(self, text):  # noqa: N802
            self.infos.append(text)
            super().pushInfo(text)

    return FB()


def _copy_models(small, tmp_path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(small["models"], dest)
    return dest


def _predict(run_alg, stack, models, out_dir, feedback=None, **kw):
    params = {"INPUT": str(stack), "MODEL_FOLDER": str(models), "DEVICE": "cpu", "CALIBRATE": False,
              "OUTPUT_MEDIAN": str(Path(out_dir) / "median.tif")}
    params.update(kw)
    return run_alg("predict", params, feedback=feedback)


def _leftovers(folder) -> list:
    """Temporary or partial files left in a folder (none may be)."""
    return [n for n in os.listdir(folder) if ".dcpart-" in n or ".part" in n]


def _refused(run_alg, alg, params, match, feedback=None):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=match) as ei:
        run_alg(alg, params, feedback=feedback)
    msg = str(ei.value)
    assert "Traceback" not in msg and "weights_only" not in msg
    return msg


def _sha(path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------
# 1 + 2: study identity
# ------------------------------------------------------------------------------------------
def test_studies_have_their_own_folder_identity_and_refuse_other_data(run_alg, scene, tmp_path, fb):
    out = tmp_path / "tuned"
    base = dict(TUNE, INPUT=scene["stack"], OUTPUT_FOLDER=str(out))
    # gru, then lstm, then gru again into one OUTPUT_FOLDER (the case); COVARIATES without the
    # covariates encoding are warned about (item 6)
    run_alg("tune", dict(base, COVARIATES=[scene["dem"]]), feedback=fb)
    assert any("COVARIATES" in w and "do NOT see them" in w for w in fb.warnings), fb.warnings
    gru_top = json.loads((out / "manifest.json").read_text())
    run_alg("tune", dict(base, ARCHITECTURE="lstm"))
    run_alg("tune", dict(base, N_TRIALS=2, TOP_K=2))   # continues the gru study: one more trial
    studies = sorted(p.name for p in (out / "studies").iterdir())
    assert len(studies) == 2 and studies[0].startswith("deformcast-gru-h2-temporal-") \
        and studies[1].startswith("deformcast-lstm-h2-temporal-"), studies
    gru_dir = out / "studies" / studies[0]
    gru = modelio.read_manifest(str(gru_dir))
    assert gru["study_name"] == studies[0] and len(gru["members"]) == 2
    fp = modelio.read_meta(gru["members"][0]["path"])["data_fingerprint"]
    for m in gru["members"]:   # only GRU models, all trained on this stack
        meta = modelio.read_meta(m["path"])
        assert meta["architecture"] == "gru" and meta["data_fingerprint"] == fp and meta["study_name"] == studies[0]
    assert studies[0].endswith(fp[7:17])
    top = modelio.read_manifest(str(out))   # the folder's manifest: the study that finished last
    assert top["study_folder"] == os.path.join("studies", studies[0])
    assert [m["path"] for m in top["members"]] == [m["path"] for m in gru["members"]]
    assert gru_top["study_folder"] == top["study_folder"]
    lstm = modelio.read_manifest(str(out / "studies" / studies[1]))
    assert {modelio.read_meta(m["path"])["architecture"] for m in lstm["members"]} == {"lstm"}

    # another input into the same study (explicit STUDY_NAME): refused, naming the fix; nothing changes
    other = str(tmp_path / "other.tif")
    info = raster.open_stack(scene["stack"])
    raster.write_stack(other, raster.read_stack(info) + 1.0, info.dates, info.grid)
    before = (out / "manifest.json").read_text()
    msg = _refused(run_alg, "tune", dict(base, INPUT=other, STUDY_NAME=studies[0], N_TRIALS=3), "other data")
    assert "STUDY_NAME" in msg and "other.tif" in msg
    assert (out / "manifest.json").read_text() == before
    assert len(os.listdir(gru_dir / "trials")) == 2
    # and another configuration of the same study: refused too
    msg = _refused(run_alg, "tune", dict(base, MAX_EPOCHS=2, N_TRIALS=3), "other settings")
    assert "max_epochs" in msg and "OUTPUT_FOLDER" in msg


def test_no_partial_manifest_while_another_worker_runs_a_trial(scene, tmp_path):
    """A worker that runs out of trials waits for the trial another worker is running (item 8)."""
    import subprocess
    import sys

    info = raster.open_stack(scene["stack"])
    out = tmp_path / "two"
    logs = []
    from deformcast.algorithms.progress import Progress

    kw = dict(top_k=3, seed=1, search_space=json.loads(SPACE), window=6, encodings=["temporal"], max_epochs=1,
              max_samples=300, threads=1, pruner="none", evaluate_test=False, write_outputs=False,
              study_name="two-workers")
    tuning.run_study(info, info.dates, info.grid, "gru", 2, str(out), n_trials=1, **kw)
    sdir = Path(tuning.study_folder(str(out), "two-workers"))
    st, _ = tuning.open_storage("", str(sdir))
    import optuna

    study = optuna.load_study(study_name="two-workers", storage=st)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    trial = study.ask()   # "another worker" on this machine is running this trial
    trial.set_user_attr("worker", f"{os.uname().nodename}:{other.pid}")
    seen = {}

    def watch():
        t0 = time.time()
        while time.time() - t0 < 120:
            if any(m.startswith("Waiting for trial") for m in logs):
                time.sleep(0.5)
                seen["manifests"] = [(p / "manifest.json").read_text() for p in (out, sdir)]
                other.kill()
                other.wait()
                return
            time.sleep(0.05)
        other.kill()
        other.wait()

    earlier = [(p / "manifest.json").read_text() for p in (out, sdir)]   # the first run's (1 member)
    th = threading.Thread(target=watch)
    th.start()
    res = tuning.run_study(info, info.dates, info.grid, "gru", 2, str(out), n_trials=3,
                           progress=Progress(on_log=logs.append), **kw)
    th.join()
    assert "manifests" in seen, "the worker did not wait for the other worker's trial"
    assert seen["manifests"] == earlier   # no new (partial, 2-member) manifest while the other trial ran
    # the other worker died: its trial failed, this worker ran one more; the manifest has all three
    assert res.n_complete == 3 and len(modelio.read_manifest(str(out))["members"]) == 3


# ------------------------------------------------------------------------------------------
# 3: GDAL scale and offset
# ------------------------------------------------------------------------------------------
def _write_int16(path, values, names, grid, scale, offset=0.0, unit=None, metadata=None):
    """An int16 raster storing (value - offset) / scale with band scale/offset (and a unit) set;
    NaN stored as nodata -32768."""
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), grid.width, grid.height, values.shape[0], gdal.GDT_Int16)
    ds.SetGeoTransform(grid.geotransform)
    ds.SetProjection(grid.crs_wkt)
    if metadata:
        ds.SetMetadata(metadata)
    for i in range(values.shape[0]):
        b = ds.GetRasterBand(i + 1)
        b.SetDescription(str(names[i]))
        b.SetNoDataValue(-32768)
        q = np.round((values[i] - offset) / scale)
        assert np.nanmax(np.abs(q)) < 32767
        b.WriteArray(np.where(np.isfinite(q), q, -32768).astype(np.int16))
        b.SetScale(scale)
        b.SetOffset(offset)
        if unit:
            b.SetUnitType(unit)
    ds = None
    return str(path)


def _write_scaled(path, vals, scale=0.1, offset=0.0, unit=None):
    """int16 stack storing (mm - offset) / scale, with band scale/offset set (and a unit)."""
    return _write_int16(path, vals, DATES, GRID, scale, offset, unit)


def test_band_scale_and_offset_are_honoured(run_alg, small, tmp_path, fb):
    vals = small["vals"]
    scaled = _write_scaled(tmp_path / "scaled.tif", vals, 0.1, 5.0)
    a = raster.read_stack(raster.open_stack(scaled))
    assert np.allclose(a, vals, atol=0.051)
    # predict: the forecast of the int16 stack equals that of the float stack (not 10x too large)
    ref = _predict(run_alg, small["stack"], small["models"], tmp_path / "ref")
    sc = _predict(run_alg, scaled, small["models"], tmp_path / "sc")
    fa = raster.read_raster(ref["OUTPUT_MEDIAN"])[0]
    fb_ = raster.read_raster(sc["OUTPUT_MEDIAN"])[0]
    assert np.nanmax(np.abs(fa)) > 1.0 and np.allclose(fa, fb_, atol=0.3, equal_nan=True)
    # import_timeseries: mm out, whatever the storage; a band unit (metres) is converted too
    out = str(tmp_path / "imported.tif")
    run_alg("import_timeseries", {"INPUT": scaled, "OUTPUT": out})
    assert np.allclose(raster.read_raster(out)[0], vals, atol=0.051)
    metres = _write_scaled(tmp_path / "metres.tif", vals / 1000.0, 0.0001, 0.0, unit="m")
    out2 = str(tmp_path / "imported_m.tif")
    run_alg("import_timeseries", {"INPUT": metres, "UNITS": "cm", "OUTPUT": out2}, feedback=fb)
    assert np.allclose(raster.read_raster(out2)[0], vals, atol=0.051)   # the band's unit wins over UNITS ...
    assert any("declare their unit (m)" in w and "UNITS=cm is not applied" in w for w in fb.warnings)  # ... said
    # a unit that is not a length (radians of phase) is read as mm, with a warning
    fb.warnings.clear()
    rad = _write_scaled(tmp_path / "rad.tif", vals, 0.1, 0.0, unit="rad")
    run_alg("import_timeseries", {"INPUT": rad, "OUTPUT": str(tmp_path / "imported_rad.tif")}, feedback=fb)
    assert any("unit 'rad'" in w for w in fb.warnings), fb.warnings


def _scaled_copy(src, dst, scale, offset=0.0, unit=None, divide=1.0):
    """``src`` (any raster) rewritten as int16 storing (value / divide - offset) / scale with band scale/offset
    (and a unit) set: band descriptions and dataset metadata kept, NaN stored as nodata -32768."""
    from osgeo import gdal

    arr, grid, names = raster.read_raster(str(src))
    return _write_int16(dst, arr / divide, names, grid, scale, offset, unit, gdal.Open(str(src)).GetMetadata() or {})


_MAPS: dict = {}


@pytest.fixture()
def maps(small, tmp_path_factory, run_alg):
    """predict (members, median) and uncertainty of the float stack: the reference of the readers below
    (made once per module; run_alg is function-scoped)."""
    if _MAPS:
        return _MAPS
    d = tmp_path_factory.mktemp("maps")
    pr = run_alg("predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                             "CALIBRATE": False, "OUTPUT_MEDIAN": str(d / "median.tif"),
                             "OUTPUT_MEMBERS": str(d / "members.tif")})
    un = _uncertainty(run_alg, pr["OUTPUT_MEMBERS"], small["stack"], d / "ref")
    _MAPS.update({"dir": d, "members": pr["OUTPUT_MEMBERS"], "median": pr["OUTPUT_MEDIAN"], "unc": un})
    return _MAPS


def _uncertainty(run_alg, members, stack, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return run_alg("uncertainty", {
        "MEMBERS": str(members), "INPUT": str(stack), "THRESHOLDS": "1,3", "CLASS_LIMITS": "0.5,1,2,4",
        "OUTPUT_SUSCEPTIBILITY": str(out / "susc.tif"), "OUTPUT_SPREAD": str(out / "spread.tif"),
        "OUTPUT_AMBIGUITY": str(out / "amb.tif"), "OUTPUT_CONFIDENCE": str(out / "conf.tif"),
        "OUTPUT_EXCEEDANCE": str(out / "exc.tif"), "OUTPUT_DEFORMATION": str(out / "defo.tif"),
        "OUTPUT_REPORT": str(out / "unc.html")})


def _close(a, b, atol):
    a, b = raster.read_raster(str(a))[0], raster.read_raster(str(b))[0]
    assert a.shape == b.shape and np.array_equal(np.isfinite(a), np.isfinite(b))
    assert np.allclose(a, b, atol=atol, equal_nan=True), float(np.nanmax(np.abs(a - b)))
    return a


def test_uncertainty_reads_scaled_members_and_stack(run_alg, small, maps, tmp_path):
    # members stored as mm x 100 (int16, scale 0.01, offset 2), the stack in metres (scale 1e-5, unit m)
    members = _scaled_copy(maps["members"], tmp_path / "members_i16.tif", 0.01, 2.0)
    stack = _scaled_copy(small["stack"], tmp_path / "stack_m.tif", 0.00001, 0.0, unit="m", divide=1000.0)
    un = _uncertainty(run_alg, members, stack, tmp_path / "sc")
    ref = maps["unc"]
    d = _close(ref["OUTPUT_DEFORMATION"], un["OUTPUT_DEFORMATION"], 0.02)
    assert np.nanmax(np.abs(d)) > 0.2   # a signal well above the storage step
    _close(ref["OUTPUT_SPREAD"], un["OUTPUT_SPREAD"], 0.02)
    s0, s1 = (raster.read_raster(un_["OUTPUT_SUSCEPTIBILITY"])[0] for un_ in (ref, un))
    assert np.mean(s0 == s1) >= 0.9   # hand limits: only pixels within 0.01 mm of a limit may move


def test_residuals_read_scaled_forecast_and_observations(run_alg, maps, tmp_path):
    rng = np.random.default_rng(3)
    arr, grid, names = raster.read_raster(maps["median"])
    obs = arr + rng.normal(0, 1.0, arr.shape).astype(np.float32)
    observed = str(tmp_path / "observed.tif")
    raster.write_stack(observed, obs, [np.datetime64(n[:10]) for n in names], grid)
    fc_i16 = _scaled_copy(maps["median"], tmp_path / "fc_i16.tif", 0.1, -1.0)
    obs_m = _scaled_copy(observed, tmp_path / "obs_m.tif", 0.0001, 0.0, unit="m", divide=1000.0)

    def run(fc, ob, name):
        return run_alg("residuals", {"FORECAST": fc, "OBSERVED": ob, "N_PERMUTATIONS": 9, "SEED": 1,
                                     "OUTPUT_RESIDUALS": str(tmp_path / f"{name}.tif"),
                                     "OUTPUT_REPORT": str(tmp_path / f"{name}.html")})

    a = run(maps["median"], observed, "ref")
    b = run(fc_i16, obs_m, "sc")
    r = _close(a["OUTPUT_RESIDUALS"], b["OUTPUT_RESIDUALS"], 0.15)
    assert np.nanstd(r) > 0.5


def test_zoning_reads_scaled_layers(run_alg, maps, tmp_path):
    ref = maps["unc"]
    spread = _scaled_copy(ref["OUTPUT_SPREAD"], tmp_path / "spread_i16.tif", 0.001)
    exc = _scaled_copy(ref["OUTPUT_EXCEEDANCE"], tmp_path / "exc_i16.tif", 0.0001, 0.5)
    fc = _scaled_copy(ref["OUTPUT_DEFORMATION"], tmp_path / "defo_cm.tif", 0.001, 0.0, unit="cm", divide=10.0)

    def run(sp, ex, fo, name):
        return run_alg("zoning", {"SUSCEPTIBILITY": ref["OUTPUT_SUSCEPTIBILITY"], "SPREAD": sp, "EXCEEDANCE": ex,
                                  "FORECAST": fo, "OUTPUT_TIERS": str(tmp_path / f"{name}.tif"),
                                  "OUTPUT_REPORT": str(tmp_path / f"{name}.html"),
                                  "OUTPUT_DISCONTINUITY": str(tmp_path / f"{name}_disc.tif")})

    a = run(ref["OUTPUT_SPREAD"], ref["OUTPUT_EXCEEDANCE"], ref["OUTPUT_DEFORMATION"], "ref")
    b = run(spread, exc, fc, "sc")   # without scale/offset: probabilities > 1 are refused, steps 100x too large
    ta, tb = (raster.read_raster(x["OUTPUT_TIERS"])[0] for x in (a, b))
    assert np.mean(ta == tb) >= 0.95
    _close(a["OUTPUT_DISCONTINUITY"], b["OUTPUT_DISCONTINUITY"], 0.05)


def test_inspector_reads_scaled_rasters(qgis_app, small, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsRasterLayer

    from deformcast.ui.inspector import pixel_series

    stack_m = _scaled_copy(small["stack"], tmp_path / "stack_m.tif", 0.0001, 0.0, unit="m", divide=1000.0)
    x0, dx, _, y0, _, dy = GRID.geotransform
    pt = QgsPointXY(x0 + 3.5 * dx, y0 + 2.5 * dy)
    crs = QgsCoordinateReferenceSystem("EPSG:25832")
    ref = pixel_series({"stack": QgsRasterLayer(small["stack"], "f")}, pt, crs)
    sc = pixel_series({"stack": QgsRasterLayer(stack_m, "m")}, pt, crs)
    assert ref.pixel == sc.pixel == (2, 3)
    assert np.allclose(ref.observed[1], small["vals"][:, 2, 3], atol=1e-4)
    assert np.allclose(sc.observed[1], ref.observed[1], atol=0.051)   # mm, not metres


# ------------------------------------------------------------------------------------------
# 4 + 5: outputs on inputs, outputs on each other, temporary names
# ------------------------------------------------------------------------------------------
def test_output_on_the_input_is_refused(run_alg, small, tmp_path):
    stack = tmp_path / "a.tif"
    shutil.copy(small["stack"], stack)
    before = _sha(stack)
    msg = _refused(run_alg, "predict", {"INPUT": str(stack), "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(stack)}, "destroy the input")
    assert "OUTPUT_MEDIAN" in msg and "INPUT" in msg
    assert _sha(stack) == before and _leftovers(tmp_path) == []
    # the same through another spelling of the path
    _refused(run_alg, "predict", {"INPUT": str(stack), "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                  "OUTPUT_MEDIAN": str(tmp_path / "sub" / ".." / "a.tif")}, "destroy the input")
    assert _sha(stack) == before
    # a model folder on the stack (tune OUTPUT_FOLDER = INPUT): refused before anything is written
    _refused(run_alg, "tune", dict(TUNE, INPUT=str(stack), OUTPUT_FOLDER=str(stack)), "destroy the input")
    assert _sha(stack) == before


def test_two_outputs_on_one_path_are_refused(run_alg, small, tmp_path):
    dup = str(tmp_path / "dup.tif")
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": dup, "OUTPUT_QUANTILES": dup}, "same file")
    assert "OUTPUT_MEDIAN" in msg and "OUTPUT_QUANTILES" in msg
    assert not os.path.exists(dup) and _leftovers(tmp_path) == []


def test_outputs_move_into_place_only_on_success(run_alg, small, tmp_path, monkeypatch):
    from deformcast.algorithms.maps import ensemble

    out = tmp_path / "out"
    res = _predict(run_alg, small["stack"], small["models"], out, OUTPUT_QUANTILES=str(out / "q.tif"))
    assert res["OUTPUT_MEDIAN"] == str(out / "median.tif") and res["OUTPUT_QUANTILES"] == str(out / "q.tif")
    assert sorted(os.listdir(out)) == ["median.qml", "median.tif", "q.qml", "q.tif"]
    old = {n: _sha(out / n) for n in os.listdir(out)}
    real = ensemble.predict_ensemble

    def fails_late(*a, **k):   # writes every output, then fails (e.g. a full disk on the last step)
        real(*a, **k)
        raise RuntimeError("disk trouble after the outputs were written")

    monkeypatch.setattr(ensemble, "predict_ensemble", fails_late)
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "CALIBRATE": False, "OUTPUT_MEDIAN": str(out / "median.tif"),
                                        "OUTPUT_QUANTILES": str(out / "q.tif")}, "unexpected error")
    assert "disk trouble" in msg and "No output was written" in msg
    assert {n: _sha(out / n) for n in os.listdir(out)} == old   # the earlier outputs are untouched


# ------------------------------------------------------------------------------------------
# 7: tracebacks become messages that name the fix
# ------------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def _set_meta(folder: Path, **changes):
    p = folder / "model.json"
    meta = json.loads(p.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    p.write_text(json.dumps(meta))


def test_damaged_models_are_refused_with_the_command_that_recreates_them(run_alg, small, tmp_path, capfd):
    import torch

    out = tmp_path / "out"
    # a pickle in place of the weights (its checksum updated): refused, torch's advice never shown
    m = _copy_models(small, tmp_path / "evil")
    w = m / "m00_gru" / "weights.pt"
    torch.save({"model": _Evil()}, w)
    _set_meta(m / "m00_gru", weights_sha256=_sha(w))
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(out / "a.tif")}, "not a plain weights file")
    assert "deformcast:train" in msg and "WINDOW=8" in msg and "pickle" not in msg.lower()
    assert "this must never run" not in capfd.readouterr().out
    # truncated weights after the checksum was removed: a model without a checksum is refused
    m = _copy_models(small, tmp_path / "nosum")
    w = m / "m01_gru" / "weights.pt"
    w.write_bytes(w.read_bytes()[:200])
    _set_meta(m / "m01_gru", weights_sha256=None)
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(out / "b.tif")}, "no checksum")
    assert "./deformcast run deformcast:train" in msg
    # model.json with non-numeric fields
    m = _copy_models(small, tmp_path / "nonnum")
    _set_meta(m / "m00_gru", window="eight")
    _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                  "OUTPUT_MEDIAN": str(out / "c.tif")}, "window is 'eight'")
    _set_meta(m / "m00_gru", window=8, hparams={"hidden": [4]})
    _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                  "OUTPUT_MEDIAN": str(out / "d.tif")}, "hparams.hidden")
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize("folder, match", [
    (3, "member 1 has the folder 3"),
    ("/etc", "absolute path"),
    ("../elsewhere", "outside the model folder"),
    ("m00_gru/../../models2/m00_gru", "outside the model folder"),
    ("link", "outside the model folder"),   # a link inside the folder that leads out of it
])
def test_damaged_manifest_is_refused(run_alg, small, tmp_path, folder, match):
    m = _copy_models(small, tmp_path)
    shutil.copytree(m, tmp_path / "models2")   # a real model outside the folder ('../' must not reach it)
    (tmp_path / "elsewhere").symlink_to(m / "m00_gru")
    (m / "link").symlink_to(tmp_path / "models2" / "m00_gru")
    man = json.loads((m / "manifest.json").read_text())
    man["members"][0]["folder"] = folder
    (m / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "out"
    _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                  "OUTPUT_MEDIAN": str(out / "a.tif")}, match)
    assert not (out / "a.tif").exists()


def test_bad_search_space_and_hparams_are_messages(run_alg, scene, tmp_path):
    out = tmp_path / "t"
    msg = _refused(run_alg, "tune", dict(TUNE, INPUT=scene["stack"], OUTPUT_FOLDER=str(out),
                                         SEARCH_SPACE='{"lr": {"low": "a", "high": 1}}'), "not a number")
    assert "'lr' low" in msg and "Example" in msg
    _refused(run_alg, "tune", dict(TUNE, INPUT=scene["stack"], OUTPUT_FOLDER=str(out),
                                   SEARCH_SPACE='{"lr": {"low": NaN, "high": 1}}'), "NaN")
    assert not (out / "manifest.json").exists()
    msg = _refused(run_alg, "train", {"INPUT": scene["stack"], "ARCHITECTURE": "gru", "HORIZON": 2, "WINDOW": 6,
                                      "HPARAMS": '{"lr": NaN}', "MAX_EPOCHS": 1, "DEVICE": "cpu",
                                      "OUTPUT_FOLDER": str(tmp_path / "m"),
                                      "OUTPUT_REPORT": str(tmp_path / "r.html"),
                                      "OUTPUT_FORECAST": str(tmp_path / "f.tif"),
                                      "OUTPUT_RESIDUALS": str(tmp_path / "res.tif")}, "HPARAMS")
    assert "NaN" in msg and not (tmp_path / "f.tif").exists()


def test_unexpected_errors_are_messages_without_library_advice(run_alg, small, tmp_path, monkeypatch):
    from deformcast.algorithms.maps import ensemble

    def boom(*a, **k):
        raise RuntimeError("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` "
                           "will likely succeed")

    monkeypatch.setattr(ensemble, "predict_ensemble", boom)
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(tmp_path / "a.tif")}, "unexpected error")
    assert "False" not in msg and "RuntimeError" in msg


# ------------------------------------------------------------------------------------------
# 8: the smaller items
# ------------------------------------------------------------------------------------------
def test_enum_numbers_are_accepted_and_unknown_values_list_the_valid_ones(run_alg, small, tmp_path,
                                                                         deformcast_provider):
    from qgis.core import QgsProcessingContext

    out = str(tmp_path / "cm.tif")
    run_alg("import_timeseries", {"INPUT": small["stack"], "UNITS": "1", "OUTPUT": out})   # 1 = cm
    assert np.allclose(raster.read_raster(out)[0], small["vals"] * 10.0, atol=1e-3)
    run_alg("import_timeseries", {"INPUT": small["stack"], "UNITS": 2, "OUTPUT": out})     # 2 = m
    assert np.allclose(raster.read_raster(out)[0], small["vals"] * 1000.0, rtol=1e-5, atol=1e-2)
    msg = _refused(run_alg, "import_timeseries", {"INPUT": small["stack"], "UNITS": "7",
                                                  "OUTPUT": str(tmp_path / "x.tif")}, "UNITS")
    assert "mm, cm, m" in msg and "number" in msg
    tune = next(a for a in deformcast_provider.algorithms() if a.name() == "tune").create()
    ok, msg = tune.checkParameterValues({"INPUT": small["stack"], "ARCHITECTURE": "1", "ENCODING": "1,6",
                                         "OUTPUT_FOLDER": str(tmp_path / "f")}, QgsProcessingContext())
    assert ok, msg
    assert tune.enum_value({"ARCHITECTURE": "1"}, "ARCHITECTURE", QgsProcessingContext()) == "gru"
    assert tune.enum_values({"ENCODING": "1,6"}, "ENCODING", QgsProcessingContext()) == ["temporal", "regime"]
    ok, msg = tune.checkParameterValues({"INPUT": small["stack"], "ARCHITECTURE": "17",
                                         "OUTPUT_FOLDER": str(tmp_path / "f")}, QgsProcessingContext())
    assert not ok and "lstm, gru" in msg


def _egms(path, rows, header_dates=("20200105", "20200117", "20200129"), delim=",", extra_header=None):
    head = ["pid", "easting", "northing"] + list(extra_header or header_dates)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(delim.join(head) + "\n")
        for r in rows:
            fh.write(delim.join(r) + "\n")
    return str(path)


def test_semicolon_csv_with_decimal_commas(run_alg, tmp_path):
    rows = [["1", "4321000,5", "3210050,5", "0,0", "-1,5", "-3,0"],
            ["2", "4321150,5", "3210050,5", "0,0", "-2,5", "-5,0"]]
    src = _egms(tmp_path / "de.csv", rows, delim=";")
    out = str(tmp_path / "de.tif")
    run_alg("import_timeseries", {"INPUT": src, "CELL_SIZE": 100, "OUTPUT": out})
    a = raster.read_raster(out)[0]
    assert np.nanmin(a[2]) == pytest.approx(-5.0) and np.nanmax(a[2]) == pytest.approx(-3.0)
    assert np.count_nonzero(np.isfinite(a[1])) == 2


def test_dropped_rows_and_undated_columns_are_counted(run_alg, tmp_path, fb):
    rows = [["1", "4321000", "3210050", "0", "-1", "7", "-3"],
            ["2", "abc", "3210050", "0", "-2", "7", "-5"],
            ["3", "4321150", "", "0", "-2", "7", "-5"],
            ["4", "4321150", "3210050", "0", "-2", "7", "-5"]]
    src = _egms(tmp_path / "p.csv", rows, extra_header=["20200105", "20200117", "", "20200210"])
    out = str(tmp_path / "p.tif")
    run_alg("import_timeseries", {"INPUT": src, "CELL_SIZE": 100, "OUTPUT": out}, feedback=fb)
    text = " ".join(fb.warnings)
    assert "2 row(s)" in text and "line 3" in text and "'abc'" in text
    assert "1 column(s)" in text and "column 6 (blank name)" in text and "NOT imported" in text
    # all rows bad: the message says why there are no points
    src = _egms(tmp_path / "bad.csv", [r for r in rows[1:3]], extra_header=["20200105", "20200117", "x", "20200210"])
    msg = _refused(run_alg, "import_timeseries", {"INPUT": src, "CELL_SIZE": 100, "OUTPUT": str(tmp_path / "b.tif")},
                   "no points with coordinates")
    assert "2 row(s)" in msg and not (tmp_path / "b.tif").exists()


def test_one_pixel_stack_is_warned_about(run_alg, tmp_path, fb):
    from qgis.core import QgsProcessingException

    g = raster.make_grid(0, 100, 10, 1, 1)
    p = str(tmp_path / "one.tif")
    raster.write_stack(p, _values(T=40, H=1, W=1), DATES[:40], g)
    try:
        run_alg("tune", dict(TUNE, INPUT=p, VALIDATION="time", OUTPUT_FOLDER=str(tmp_path / "o")), feedback=fb)
    except QgsProcessingException:
        pass   # a single series may also be too short to tune; the point is the warning
    assert any("only 1 pixel" in w for w in fb.warnings), fb.warnings


def test_end_date_after_the_last_acquisition_and_members_zero(run_alg, small, tmp_path):
    out = tmp_path / "o"
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "END_DATE": "2030-01-01", "OUTPUT_MEDIAN": str(out / "a.tif")},
                   "after the last acquisition")
    assert str(DATES[-1]) in msg and "END_DATE empty" in msg
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "MEMBERS": "0", "OUTPUT_MEDIAN": str(out / "a.tif")}, "MEMBERS 0")
    assert "from 1 to 2" in msg
    _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                  "MEMBERS": "5", "OUTPUT_MEDIAN": str(out / "a.tif")}, "holds 2 member")
    assert not out.exists() or os.listdir(out) == []


def test_predict_warns_when_the_stack_differs_from_the_training_stack(run_alg, small, tmp_path, fb):
    # every 6 days instead of 12: the window spans another duration
    p6 = str(tmp_path / "six.tif")
    raster.write_stack(p6, small["vals"], np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(6, "D"), GRID)
    _predict(run_alg, p6, small["models"], tmp_path / "a", feedback=fb, COVARIATES=[small["stack"]])
    text = " ".join(fb.warnings)
    assert "every 12 days" in text and "every 6 days" in text
    assert "COVARIATES were given" in text
    # a backtest from inside the training period on the training grid
    fb.warnings.clear()
    _predict(run_alg, small["stack"], small["models"], tmp_path / "b", feedback=fb, END_DATE=str(DATES[20]))
    assert any("inside the period the models were trained" in w for w in fb.warnings), fb.warnings
    # the same stack, forecast from its end: nothing to warn about
    fb.warnings.clear()
    _predict(run_alg, small["stack"], small["models"], tmp_path / "c", feedback=fb)
    assert fb.warnings == []


def test_a_stack_in_metres_is_warned_about_unless_its_unit_says_so(run_alg, small, tmp_path, fb):
    """Displacement in metres without a declared unit is read as mm: every forecast, threshold and tier would be
    a thousand times off. predict and tune say so; with the band unit 'm' the values are converted and nothing
    is said; micrometres (or integers without their scale) are warned about too."""
    from osgeo import gdal

    pm = str(tmp_path / "metres.tif")
    raster.write_stack(pm, small["vals"] / 1000.0, DATES, GRID)
    _predict(run_alg, pm, small["models"], tmp_path / "a", feedback=fb)
    text = " ".join(fb.warnings)
    assert "looks like metres" in text and "SetUnitType('m')" in text, fb.warnings
    fb.warnings.clear()
    try:
        run_alg("tune", dict(TUNE, INPUT=pm, OUTPUT_FOLDER=str(tmp_path / "t")), feedback=fb)
    except Exception:  # noqa: BLE001 - the point is the warning before tuning starts
        pass
    assert any("looks like metres" in w for w in fb.warnings), fb.warnings
    ds = gdal.Open(pm, gdal.GA_Update)
    for i in range(ds.RasterCount):
        ds.GetRasterBand(i + 1).SetUnitType("m")
    ds = None
    fb.warnings.clear()
    _predict(run_alg, pm, small["models"], tmp_path / "b", feedback=fb)
    assert not any("change by a median" in w for w in fb.warnings), fb.warnings
    pu = str(tmp_path / "micro.tif")
    raster.write_stack(pu, small["vals"] * 1000.0, DATES, GRID)
    fb.warnings.clear()
    _predict(run_alg, pu, small["models"], tmp_path / "c", feedback=fb)
    assert any("micrometres" in w for w in fb.warnings), fb.warnings
    # the stack in mm: nothing about its values
    fb.warnings.clear()
    _predict(run_alg, small["stack"], small["models"], tmp_path / "d", feedback=fb)
    assert fb.warnings == []


def test_pixels_left_without_a_forecast_are_counted_and_said(run_alg, small, tmp_path, fb):
    """A gap of up to 3 acquisitions inside the members' input window is filled in time and the pixel forecast;
    pixels still without a forecast (no value at the origin, a longer gap) are counted and said, with why and
    the fix, instead of leaving part of the map silently empty."""
    v = small["vals"].copy()
    v[-1, 0, :3] = np.nan        # 3 pixels without a value at the last acquisition
    v[-6:-2, 1, :2] = np.nan     # 2 with a gap of 4 inside the window (8 epochs)
    v[-5:-2, 3, :4] = np.nan     # 4 with a gap of 3 inside the window: filled, forecast
    v[-30, 2, :4] = np.nan       # 4 with a gap long before the window: forecast as usual
    p = str(tmp_path / "gaps.tif")
    raster.write_stack(p, v, DATES, GRID)
    res = _predict(run_alg, p, small["models"], tmp_path / "a", feedback=fb)
    msgs = [w for w in fb.warnings if "have no forecast" in w]
    assert len(msgs) == 1, fb.warnings
    assert msgs[0].startswith(f"5 of the {W_ * H_} pixels with data") and "itself (3 of them)" in msgs[0]
    assert "REGULARISE=true" in msgs[0] and "END_DATE" not in msgs[0]   # 3 of 63 lack the last value: no hint
    med = raster.read_raster(res["OUTPUT_MEDIAN"])[0]
    assert np.isnan(med[:, 0, :3]).all() and np.isnan(med[:, 1, :2]).all()
    assert np.isfinite(med[:, 2, :4]).all() and np.isfinite(med[:, 3, :4]).all()
    # the filled pixels get the forecast of their series with the gap interpolated by hand
    w = v.copy()
    t = (DATES - DATES[0]).astype(float)
    for c in range(4):
        w[-5:-2, 3, c] = np.interp(t[-5:-2], t[[-6, -2]], v[[-6, -2], 3, c])
    p2 = str(tmp_path / "by_hand.tif")
    raster.write_stack(p2, w, DATES, GRID)
    res2 = _predict(run_alg, p2, small["models"], tmp_path / "b")
    med2 = raster.read_raster(res2["OUTPUT_MEDIAN"])[0]
    np.testing.assert_allclose(med[:, 3, :4], med2[:, 3, :4], atol=1e-4)


def test_empty_last_acquisitions_are_refused_before_the_work(run_alg, small, tmp_path, fb):
    """A stack whose last two bands hold no value: predict refuses at once, naming the dates, the fix and the
    END_DATE that works (and that END_DATE does); tune warns before it starts (models can be trained); the
    main job refuses before tuning (it forecasts from the last acquisition)."""
    v = small["vals"].copy()
    v[-2:] = np.nan
    p = str(tmp_path / "empty_end.tif")
    raster.write_stack(p, v, DATES, GRID)
    msg = _refused(run_alg, "predict", {"INPUT": p, "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(tmp_path / "a" / "m.tif")}, "no value at any pixel")
    assert f"from {DATES[-2]} to {DATES[-1]}" in msg and f"END_DATE={DATES[-3]}" in msg
    _predict(run_alg, p, small["models"], tmp_path / "b", END_DATE=str(DATES[-3]))
    try:
        run_alg("tune", dict(TUNE, INPUT=p, OUTPUT_FOLDER=str(tmp_path / "t")), feedback=fb)
    except Exception:  # noqa: BLE001 - the point is the warning before tuning starts
        pass
    assert any("no value at any pixel" in w for w in fb.warnings), fb.warnings
    t0 = time.time()
    msg = _refused(run_alg, "workflow", {"INPUT": p, "HORIZON": 2, "N_TRIALS": 1, "OUTPUT_FOLDER": str(tmp_path / "w")},
                   "no value at any pixel")
    assert time.time() - t0 < 60 and not (tmp_path / "w" / "models").exists()


def test_a_last_acquisition_with_a_large_hole_suggests_the_earlier_origin(run_alg, small, tmp_path, fb):
    """Over a fifth of the pixels without the last value (a hole in the last acquisition): the warning suggests
    forecasting from the acquisition before it, and that END_DATE forecasts them."""
    v = small["vals"].copy()
    v[-1, :3, :] = np.nan                      # 27 of 63 pixels
    p = str(tmp_path / "hole.tif")
    raster.write_stack(p, v, DATES, GRID)
    _predict(run_alg, p, small["models"], tmp_path / "a", feedback=fb)
    msgs = [w for w in fb.warnings if "have no forecast" in w]
    assert len(msgs) == 1 and f"END_DATE={DATES[-2]}" in msgs[0] and "43 % of the pixels" in msgs[0], fb.warnings
    res = _predict(run_alg, p, small["models"], tmp_path / "b", END_DATE=str(DATES[-2]))
    assert np.isfinite(raster.read_raster(res["OUTPUT_MEDIAN"])[0]).all()


def test_median_step_on_known_values():
    from deformcast.algorithms.io import units

    t = np.arange(50, dtype=np.float64)
    a = np.zeros((50, 2, 3))
    a[:, 0, 0] = 2.0 * t                               # |change| 2 at every step
    a[:, 0, 1] = np.where(t % 2 == 0, 0.0, 3.0)        # 3
    a[:, 0, 2] = 4.0 * t
    a[10:20, 0, 2] = np.nan                            # a gap: the changes across it are left out, still 4
    a[:, 1, :] = np.nan
    a[:5, 1, 0] = 1.0                                  # too few values to count
    assert units.median_step(a) == 3.0
    assert np.isnan(units.median_step(np.full((20, 2, 2), np.nan)))
    assert units.magnitude_message(3.0, "s.tif") == "" and units.magnitude_message(0.0, "s.tif") == ""
    assert "metres" in units.magnitude_message(0.003, "s.tif") and "s.tif" in units.magnitude_message(0.003, "s.tif")
    assert "micrometres" in units.magnitude_message(2500.0, "s.tif")
    assert units.magnitude_message(float("nan"), "s.tif") == ""


def test_no_gdal_noise_and_no_aux_xml_beside_the_input(run_alg, small, tmp_path, capfd):
    stack = tmp_path / "user_stack.tif"
    shutil.copy(small["stack"], stack)     # no .qml beside it: QGIS computes statistics on load
    capfd.readouterr()
    run_alg("import_timeseries", {"INPUT": str(stack), "OUTPUT": str(tmp_path / "copy.tif")})
    _predict(run_alg, str(stack), small["models"], tmp_path / "out")
    err = capfd.readouterr().err
    assert "dfMax" not in err
    import gc

    gc.collect()
    assert not (tmp_path / "user_stack.tif.aux.xml").exists()


def test_storage_password_from_environment_never_echoed(run_alg, scene, tmp_path, monkeypatch, fb):
    import optuna

    seen = {}

    class FakeRDB:
        def __init__(self, url, **kw):
            seen["url"] = url
            raise RuntimeError(f"could not connect to {url}")

    monkeypatch.setattr(optuna.storages, "RDBStorage", FakeRDB)
    monkeypatch.setenv("DEFORMCAST_STORAGE_PASSWORD", "s3cret-pw")
    params = dict(TUNE, INPUT=scene["stack"], OUTPUT_FOLDER=str(tmp_path / "db"),
                  STORAGE="postgresql://me@db.example:5433/optuna")
    msg = _refused(run_alg, "tune", params, "Cannot open the Optuna storage", feedback=fb)
    assert "s3cret-pw" in seen["url"] and "s3cret-pw" not in msg + " ".join(fb.infos + fb.warnings)
    # a pgpass-style file (host:port:database:user:password)
    monkeypatch.delenv("DEFORMCAST_STORAGE_PASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text("other:*:*:*:nope\ndb.example:5433:optuna:me:from-file\n")
    monkeypatch.setenv("DEFORMCAST_PGPASS", str(pgpass))
    msg = _refused(run_alg, "tune", params, "Cannot open")
    assert ":from-file@" in seen["url"] and "from-file" not in msg
    # a password in the URL itself still works, is warned about and never shown
    fb.warnings.clear()
    msg = _refused(run_alg, "tune", dict(params, STORAGE="postgresql://me:inline-pw@db.example/optuna"), "Cannot open",
                   feedback=fb)
    assert "inline-pw" not in msg and any("contains a password" in w for w in fb.warnings)
    assert not any("inline-pw" in t for t in fb.warnings + fb.infos)


def test_headless_run_prints_no_gdal_noise(small, tmp_path, qgis_process_run):
    """./deformcast (qgis_process) loads the input raster before the plugin runs: no dfMax message, no .aux.xml."""
    from conftest import ROOT

    ini = ROOT / ".qgis-profile" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    if ini.is_file():   # forget what an earlier run set: the plugin must set it again
        lines = ini.read_text().splitlines()
        ini.write_text("\n".join(ln for ln in lines if not ln.startswith("defaultContrastEnhancementLimits")) + "\n")
    stack = tmp_path / "user_stack.tif"
    shutil.copy(small["stack"], stack)
    r = qgis_process_run("run", "deformcast:predict", "--", f"INPUT={stack}", f"MODEL_FOLDER={small['models']}",
                         "DEVICE=cpu", "CALIBRATE=false", f"OUTPUT_MEDIAN={tmp_path / 'median.tif'}", timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "dfMax" not in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "user_stack.tif.aux.xml").exists()
    assert (tmp_path / "median.tif").exists() and _leftovers(tmp_path) == []


def test_pixels_with_one_value_at_every_date_are_read_as_no_data(run_alg, small, tmp_path, fb):
    """A -9999 fill without a declared nodata (two rows) and a reference point (0 at every date): read as no
    data, said once with the fix, and the other pixels forecast exactly as when the fill is declared nodata.
    Before, the -9999 rows got a -9999 mm forecast in the highest tier, and a 0 fill was left without a forecast
    under a message that blamed gaps."""
    from deformcast.algorithms.io import fill

    v = small["vals"].copy()
    v[:, :2, :] = -9999.0          # a mask written as a value: 18 pixels
    v[:, 4, 4] = 0.0               # the reference point
    v[:, 5, 1] = np.round(v[:, 5, 1])   # a real series stored as whole mm: not constant, kept
    p = str(tmp_path / "fill.tif")
    raster.write_stack(p, v, DATES, GRID)
    info = raster.open_stack(p)
    want = np.zeros((H_, W_), bool)
    want[:2] = True
    want[4, 4] = True
    np.testing.assert_array_equal(info.fill, want)
    got = raster.read_stack(info)
    assert np.isnan(got[:, want]).all() and np.isfinite(got[:, ~want]).all()
    assert info.fill_note.startswith(f"19 pixel(s) of 'fill.tif' ({100 * 19 / 63:.1f} % of those with data)")
    assert "most of them -9999" in info.fill_note and "gdal_edit.py -a_nodata -9999 fill.tif" in info.fill_note
    res = _predict(run_alg, p, small["models"], tmp_path / "a", feedback=fb)
    assert [w for w in fb.warnings if "hold the same value at every date" in w] == [info.fill_note]
    assert not [w for w in fb.warnings if "have no forecast" in w], fb.warnings
    med = raster.read_raster(res["OUTPUT_MEDIAN"])[0]
    assert np.isnan(med[:, want]).all() and np.isfinite(med[:, ~want]).all()
    w = v.copy()
    w[:, want] = np.nan            # the same stack with the fill declared as no data
    p2 = str(tmp_path / "declared.tif")
    raster.write_stack(p2, w, DATES, GRID)
    assert raster.open_stack(p2).fill is None
    med2 = raster.read_raster(_predict(run_alg, p2, small["models"], tmp_path / "b")["OUTPUT_MEDIAN"])[0]
    np.testing.assert_array_equal(med, med2)
    # a 0 fill: the note does not suggest 0 as nodata (the reference acquisition is 0 everywhere)
    assert "-a_nodata" not in fill.fill_message("z.tif", 18, 63, 0.0) and "NaN can" in fill.fill_message(
        "z.tif", 18, 63, 0.0)


def test_a_stack_with_one_value_everywhere_is_refused_before_the_work(run_alg, small, tmp_path):
    """Every pixel constant (an all-zero stack): predict, tune and the main job refuse at once with what to
    check, instead of tuning and failing with 'no training window' after several trials. Opened as a stack (a
    viewer, the inspector) it reads as it is."""
    v = np.zeros_like(small["vals"])
    v[:, 0, 0] = np.nan
    p = str(tmp_path / "zeros.tif")
    raster.write_stack(p, v, DATES, GRID)
    match = "holds the same value at every date"
    _refused(run_alg, "predict", {"INPUT": p, "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                  "OUTPUT_MEDIAN": str(tmp_path / "a" / "m.tif")}, match)
    assert not (tmp_path / "a" / "m.tif").exists()
    _refused(run_alg, "tune", dict(TUNE, INPUT=p, OUTPUT_FOLDER=str(tmp_path / "t")), match)
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").rglob("*.journal"))
    np.testing.assert_array_equal(raster.read_stack(raster.open_stack(p)), v)
    t0 = time.time()
    msg = _refused(run_alg, "workflow", {"INPUT": p, "HORIZON": 2, "N_TRIALS": 1, "OUTPUT_FOLDER": str(tmp_path / "w")},
                   match)
    assert "(most of them 0)" in msg and time.time() - t0 < 60 and not (tmp_path / "w" / "models").exists()


@pytest.mark.parametrize("value", [-9999.0, float(np.finfo(np.float32).min)])
def test_a_fill_value_at_masked_dates_is_read_as_no_data(run_alg, small, tmp_path, fb, value):
    """-9999 (or float32's lowest value) written at masked dates, no nodata declared: read as no data, said with
    the value to declare, and the forecast equals that of the same stack with NaN there. Real values that repeat
    (whole millimetres, the reference acquisition's 0) or stand out without repeating (a 5 m spike) are kept."""
    from deformcast.algorithms.io import fill

    v = small["vals"].copy()
    m = np.random.default_rng(5).random(v.shape) < 0.04
    m[-1] = False                                   # keep the origin, so every pixel is forecast either way
    v[m] = value
    p = str(tmp_path / "fill_dates.tif")
    raster.write_stack(p, v, DATES, GRID)
    info = raster.open_stack(p)
    assert info.fill is None and info.fill_values == (float(np.float32(value)),)
    got = raster.read_stack(info)
    np.testing.assert_array_equal(np.isnan(got), m)
    short = "-9999" if value == -9999.0 else "-3.4028235e+38"
    assert f"equal {short}, far beyond all others" in info.fill_note and f"-a_nodata {short} " in info.fill_note
    res = _predict(run_alg, p, small["models"], tmp_path / "a", feedback=fb)
    assert [w for w in fb.warnings if "far beyond all others" in w] == [info.fill_note]
    w = v.copy()
    w[m] = np.nan
    p2 = str(tmp_path / "nan_dates.tif")
    raster.write_stack(p2, w, DATES, GRID)
    assert raster.open_stack(p2).fill_values == ()
    med = raster.read_raster(res["OUTPUT_MEDIAN"])[0]
    med2 = raster.read_raster(_predict(run_alg, p2, small["models"], tmp_path / "b")["OUTPUT_MEDIAN"])[0]
    np.testing.assert_array_equal(med, med2)
    assert np.isfinite(med).all()
    # what is not a fill: whole millimetres repeat but lie within the data; a lone spike does not repeat
    rng = np.random.default_rng(0)
    whole = np.round(rng.normal(0, 300, 200_000)).astype(np.float32)
    assert fill.fill_values(whole)[0] == ()
    spiky = rng.normal(0, 30, 200_000).astype(np.float32)
    spiky[::1000] += 5000.0
    assert fill.fill_values(spiky)[0] == ()
    zeros = np.concatenate([np.zeros(50_000, np.float32), spiky])
    assert fill.fill_values(zeros)[0] == ()


def test_fill_travels_to_distributed_workers(small, tmp_path):
    """A Dask worker rebuilds the stack from plain Python (maps/distributed.py): the constant pixels and the
    fill value travel with it, so a worker reads the stack as the client does."""
    from deformcast.algorithms.maps import distributed

    v = small["vals"].copy()
    m = np.random.default_rng(2).random(v.shape) < 0.05
    m[:, :2, :] = False
    v[m] = -32768.0                 # a fill at masked dates
    v[:, :2, :] = -9999.0           # and another over whole pixels
    p = str(tmp_path / "both.tif")
    raster.write_stack(p, v, DATES, GRID)
    info = raster.open_stack(p)
    assert info.fill_values == (-32768.0,) and info.fill is not None and info.fill[:2].all()
    assert "equal -32768, far beyond" in info.fill_note
    back = distributed.stack_info(distributed.stack_job(info))
    assert back.fill_values == info.fill_values
    np.testing.assert_array_equal(back.fill, info.fill)
    np.testing.assert_array_equal(raster.read_stack(back), raster.read_stack(info))


def test_fill_values_on_known_samples():
    """Two fills at once are both found (the second would hide the first from the percentile of 'the rest');
    a value far out that is too rare, or too close to the data, is not a fill."""
    from deformcast.algorithms.io import fill

    rng = np.random.default_rng(3)
    data = rng.normal(0, 40, 100_000).astype(np.float32)
    both = np.concatenate([data, np.full(3000, -9999.0, np.float32), np.full(500, -32768.0, np.float32)])
    vals, counts, typical = fill.fill_values(both)
    assert vals == (-9999.0, -32768.0) and counts == (3000, 500) and 100 < typical < 200
    rare = np.concatenate([data, np.full(50, -9999.0, np.float32)])       # 0.05 % < FILL_MIN_SHARE
    assert fill.fill_values(rare)[0] == ()
    near = np.concatenate([data * 10, np.full(3000, -1000.0, np.float32)])  # within 5 x the data's 99.9 %
    assert fill.fill_values(near)[0] == ()


def test_residuals_read_a_fill_in_the_observations_as_no_data(run_alg, maps, tmp_path, fb):
    """Later observations with -9999 at masked dates and no nodata: the residuals there are no data (before,
    forecast + 9999 mm entered every statistic), said once, and the other residuals are unchanged."""
    rng = np.random.default_rng(4)
    arr, grid, names = raster.read_raster(maps["median"])
    obs = arr + rng.normal(0, 1.0, arr.shape).astype(np.float32)
    dates = [np.datetime64(n[:10]) for n in names]
    m = rng.random(obs.shape) < 0.15
    filled = obs.copy()
    filled[m] = -9999.0
    nan = obs.copy()
    nan[m] = np.nan
    a, b = str(tmp_path / "filled.tif"), str(tmp_path / "nan.tif")
    raster.write_stack(a, filled, dates, grid)
    raster.write_stack(b, nan, dates, grid)

    def run(ob, name, feedback=None):
        return run_alg("residuals", {"FORECAST": maps["median"], "OBSERVED": ob, "N_PERMUTATIONS": 9, "SEED": 1,
                                     "OUTPUT_RESIDUALS": str(tmp_path / f"res_{name}.tif"),
                                     "OUTPUT_REPORT": str(tmp_path / f"res_{name}.html")}, feedback=feedback)

    ra = raster.read_raster(run(a, "filled", fb)["OUTPUT_RESIDUALS"])[0]
    rb = raster.read_raster(run(b, "nan")["OUTPUT_RESIDUALS"])[0]
    np.testing.assert_array_equal(ra, rb)
    assert np.isnan(ra[m]).all() and np.nanmax(np.abs(ra)) < 10
    assert len([w for w in fb.warnings if "equal -9999, far beyond all others" in w]) == 1, fb.warnings


def test_the_toolbox_predict_says_when_it_converts_a_slow_layout(run_alg, small, tmp_path, fb, monkeypatch):
    """Session 28: the toolbox's ``predict`` opens the stack for its checks before the forecast, so a slow file layout
    is converted there: its log says so (it converted silently before), ``predict`` then reads the copy, and the
    forecast is the one from the original stack."""
    from osgeo import gdal

    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    vals = np.tile(small["vals"], (1, 3, 3))         # wider than a 16 x 16 tile: a tiled layout
    plain = str(tmp_path / "plain.tif")
    raster.write_stack(plain, vals, DATES, raster.make_grid(300000.0, 5650000.0, 50.0, 3 * W_, 3 * H_))
    tiled = str(tmp_path / "tiled.tif")
    gdal.Translate(tiled, plain, creationOptions=["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE",
                                                  "INTERLEAVE=PIXEL"])
    res = _predict(run_alg, tiled, small["models"], tmp_path / "t", feedback=fb)
    said = fb.infos + fb.warnings
    assert any("converted once" in t and "tiled.tif" in t for t in said), said
    assert any("from its converted copy" in t for t in said), said
    ref = _predict(run_alg, plain, small["models"], tmp_path / "p")
    np.testing.assert_array_equal(raster.read_raster(res["OUTPUT_MEDIAN"])[0],
                                  raster.read_raster(ref["OUTPUT_MEDIAN"])[0])


# ------------------------------------------------------------------------------------------
# reliability sweep: outputs not GeoTIFF, complex stacks, members without what a forecast reads, empty samples
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["median.png", "median"])
def test_raster_outputs_must_be_named_tif(run_alg, small, tmp_path, name):
    """A raster output named '.png' (or without extension) held a GeoTIFF under that name, and its style
    'median.qml' overwrote the style of 'median.tif' beside it: refused before anything is written."""
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": small["models"], "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(tmp_path / name)}, "ending in .tif")
    assert "OUTPUT_MEDIAN" in msg and "GeoTIFF" in msg and os.listdir(tmp_path) == []


def test_a_stack_of_complex_numbers_is_refused(run_alg, small, tmp_path):
    """Complex bands (interferograms) were read as their real part, without a word: refused, naming the fix."""
    from osgeo import gdal

    p = str(tmp_path / "ifg.tif")
    gdal.Translate(p, small["stack"], outputType=gdal.GDT_CFloat32)
    for alg, out in (("predict", "OUTPUT_MEDIAN"), ("import_timeseries", "OUTPUT")):
        params = {"INPUT": p, out: str(tmp_path / f"{alg}.tif")}
        if alg == "predict":
            params.update(MODEL_FOLDER=small["models"], DEVICE="cpu")
        msg = _refused(run_alg, alg, params, "complex numbers")
        assert "Unwrap" in msg and not (tmp_path / f"{alg}.tif").exists()


@pytest.mark.parametrize("key", ["normalisation", "data_config"])
def test_members_without_what_a_forecast_reads_are_refused(run_alg, small, tmp_path, key):
    """A model.json without its normalisation (or data configuration) stopped predict on an 'unexpected error
    (KeyError)': now the damaged member is named with the command that re-creates it."""
    m = _copy_models(small, tmp_path)
    _set_meta(m / "m01_gru", **{key: None})
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(tmp_path / "out" / "a.tif")}, f"it lacks {key}")
    assert "m01_gru" in msg and "deformcast:train" in msg and "unexpected" not in msg
    assert not (tmp_path / "out" / "a.tif").exists()


def test_sample_at_points_refuses_an_empty_table_and_reads_rotated_grids(run_alg, small, tmp_path, fb):
    """Points off the raster gave a CSV of ids without one value, and rows skipped for their coordinates were
    dropped silently: the first is refused (nothing written), the second said. A rotated grid is sampled in the
    cell that holds each point (the rotation was ignored)."""
    from deformcast.algorithms.io import sampling

    rows = [["1", "4321000", "3210050", "0", "-1", "-3"], ["2", "abc", "3210050", "0", "-2", "-5"]]
    pts = _egms(tmp_path / "pts.csv", rows)     # EPSG:3035, far from the stack (EPSG:25832)
    out = tmp_path / "values.csv"
    msg = _refused(run_alg, "sample_at_points", {"INPUT": small["stack"], "POINTS": pts, "OUTPUT": str(out)},
                   "None of the 1 points")
    assert "stack.tif" in msg and "1 row(s)" in msg and not out.exists() and _leftovers(tmp_path) == []
    imported = str(tmp_path / "pts.tif")
    run_alg("import_timeseries", {"INPUT": pts, "CELL_SIZE": 100, "OUTPUT": imported})
    run_alg("sample_at_points", {"INPUT": imported, "POINTS": pts, "OUTPUT": str(out)}, feedback=fb)
    assert any("1 row(s)" in w and "line 3" in w for w in fb.warnings), fb.warnings
    assert out.read_text().splitlines()[1] == "1,4321000.0,3210050.0,0.000,-1.000,-3.000"
    gt = GRID.geotransform
    rot = raster.Grid((gt[0], 35.0, 35.0, gt[3], 35.0, -35.0), GRID.crs_wkt, W_, H_)
    p = raster.write_stack(str(tmp_path / "rot.tif"), small["vals"][:3], DATES[:3], rot)
    x, y = rot.pixel_centres()
    got = sampling.sample_grid_at_points(p, np.column_stack([x.ravel(), y.ravel()]), GRID.crs_wkt)
    np.testing.assert_array_equal(got.T.reshape(3, H_, W_), small["vals"][:3])


# ------------------------------------------------------------------------------------------
# reliability sweep 2: zone and exceedance rasters that are not, points without dates, CSV names, encodings
# ------------------------------------------------------------------------------------------
def test_residual_zones_must_be_one_band_of_zone_codes(run_alg, small, maps, scene, tmp_path):
    """The 60-band stack as ZONES was read as zones by its first band (all 0: one 'outside' row), a map of values
    by its rounded values: both refused, naming the fix. One band of codes (uint8 as synthetic_scenario writes
    them, or whole-numbered floats) still works; the train/backtest ZONES too."""
    from osgeo import gdal

    from deformcast.algorithms.maps import backtest, residuals

    params = {"FORECAST": maps["median"], "OBSERVED": maps["median"], "N_PERMUTATIONS": 0,
              "OUTPUT_RESIDUALS": str(tmp_path / "res.tif")}
    msg = _refused(run_alg, "residuals", dict(params, ZONES=small["stack"]), "has 60 bands")
    assert "zones.tif of synthetic_scenario" in msg and "ZONE_FIELD" in msg and not (tmp_path / "res.tif").exists()
    _refused(run_alg, "residuals", dict(params, ZONES=maps["unc"]["OUTPUT_DEFORMATION"]), "not whole numbers")
    codes = np.zeros((H_, W_), np.float32)
    codes[:3] = 1
    codes[5:, 4:] = 2
    z_u8 = raster.write_raster(str(tmp_path / "z_u8.tif"), codes, GRID, dtype="uint8")
    z_f = raster.write_raster(str(tmp_path / "z_f.tif"), np.where(codes == 2, np.nan, codes), GRID)
    for z in (z_u8, z_f):
        run_alg("residuals", dict(params, ZONES=z, OUTPUT_RESIDUALS=str(tmp_path / f"r_{os.path.basename(z)}")))
    sz, sgrid = scene["zones"], raster.open_raster(scene["zones"])[1]
    zarr, names = residuals.zones_array(sz, sgrid)   # the synthetic scene's own zone raster
    assert zarr.shape == (sgrid.height, sgrid.width) and set(names) >= set(np.unique(zarr)) - {0}
    assert backtest._zones(sz, sgrid)[0].shape == zarr.shape
    with pytest.raises(residuals.DeformCastError, match="has 60 bands"):
        backtest._zones(small["stack"], GRID)
    assert gdal.Open(sz).RasterCount == 1


def test_zoning_refuses_an_exceedance_raster_that_holds_no_probabilities(run_alg, small, maps, tmp_path):
    """The stack as EXCEEDANCE passed (its band 1 is all 0, a valid probability): refused by its dated band, and
    without dates by a band outside 0..1; another output of 'uncertainty' (confidence, also 0..1) by its band
    description. OUTPUT_EXCEEDANCE with any EXCEEDANCE_BAND still works."""
    ref = maps["unc"]
    base = {"SUSCEPTIBILITY": ref["OUTPUT_SUSCEPTIBILITY"], "SPREAD": ref["OUTPUT_SPREAD"],
            "OUTPUT_TIERS": str(tmp_path / "tiers.tif")}
    msg = _refused(run_alg, "zoning", dict(base, EXCEEDANCE=small["stack"]), "band 1 is the date 2020-01-01")
    assert "OUTPUT_EXCEEDANCE raster of 'uncertainty'" in msg and not (tmp_path / "tiers.tif").exists()
    undated = raster.write_raster(str(tmp_path / "undated.tif"), small["vals"][:5], GRID)
    _refused(run_alg, "zoning", dict(base, EXCEEDANCE=undated), r"band 2 holds values from .* not probabilities")
    _refused(run_alg, "zoning", dict(base, EXCEEDANCE=ref["OUTPUT_CONFIDENCE"]),
             "another output of 'uncertainty' .*classification confidence")
    for b in (1, 2):
        run_alg("zoning", dict(base, EXCEEDANCE=ref["OUTPUT_EXCEEDANCE"], EXCEEDANCE_BAND=b,
                               OUTPUT_TIERS=str(tmp_path / f"t{b}.tif")))


@pytest.mark.parametrize("head", [["pid", "easting", "northing"], ["id", "easting", "northing"]])
def test_sample_at_points_reads_points_without_dates(run_alg, tmp_path, head):
    """Sampling needs ids and coordinates only: a CSV without date columns was refused ('No date columns
    found'). Its values equal those sampled with the EGMS CSV the raster was imported from."""
    rows = [["7", "4321000", "3210050", "0", "-1", "-3"], ["9", "4321150", "3210050", "0", "-2", "-5"]]
    egms = _egms(tmp_path / "egms.csv", rows)
    imported = str(tmp_path / "pts.tif")
    run_alg("import_timeseries", {"INPUT": egms, "CELL_SIZE": 100, "OUTPUT": imported})
    bare = tmp_path / "bare.csv"
    bare.write_text(",".join(head) + "\n" + "".join(",".join(r[:3]) + "\n" for r in rows))
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_alg("sample_at_points", {"INPUT": imported, "POINTS": egms, "OUTPUT": str(a)})
    run_alg("sample_at_points", {"INPUT": imported, "POINTS": str(bare), "OUTPUT": str(b)})
    assert a.read_text() == b.read_text()
    assert [ln.split(",")[0] for ln in b.read_text().splitlines()[1:]] == ["7", "9"]


def test_sample_at_points_reads_a_point_layer_without_date_fields(run_alg, small, tmp_path):
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(GRID.crs_wkt)
    p = str(tmp_path / "pts.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(p)
    lyr = ds.CreateLayer("pts", srs, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    x0, y0 = GRID.geotransform[0], GRID.geotransform[3]
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("name", "a")
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x0 + 75} {y0 - 125})"))   # column 1, row 2
    lyr.CreateFeature(f)
    ds = lyr = f = None
    out = tmp_path / "v.csv"
    run_alg("sample_at_points", {"INPUT": small["stack"], "POINTS": p, "OUTPUT": str(out)})
    got = [float(v) for v in out.read_text().splitlines()[1].split(",")[3:]]
    np.testing.assert_allclose(got, small["vals"][:, 2, 1], atol=5e-4)


@pytest.mark.parametrize("name", ["values.tif", "values"])
def test_csv_outputs_must_be_named_csv(run_alg, small, tmp_path, name):
    """sample_at_points wrote its CSV table under 'values.tif': refused before anything is written."""
    pts = _egms(tmp_path / "pts.csv", [["1", "4321000", "3210050", "0", "-1", "-3"]])
    out = tmp_path / "out"
    out.mkdir()
    msg = _refused(run_alg, "sample_at_points", {"INPUT": small["stack"], "POINTS": pts, "OUTPUT": str(out / name)},
                   "ending in .csv")
    assert "OUTPUT" in msg and "'values.csv'" in msg and os.listdir(out) == []


def test_members_with_unknown_encodings_are_refused(run_alg, small, tmp_path):
    """encodings ["bogus"] in a model.json was accepted without a word: refused with the valid names and the
    command that re-creates the model."""
    m = _copy_models(small, tmp_path)
    _set_meta(m / "m00_gru", encodings=["temporal", "bogus"])
    msg = _refused(run_alg, "predict", {"INPUT": small["stack"], "MODEL_FOLDER": str(m), "DEVICE": "cpu",
                                        "OUTPUT_MEDIAN": str(tmp_path / "out" / "a.tif")}, "encodings names 'bogus'")
    assert "m00_gru" in msg and "temporal" in msg and "deformcast:train" in msg
    assert not (tmp_path / "out" / "a.tif").exists()


def test_a_stack_declaring_0_as_nodata_is_told_that_its_reference_date_reads_empty(small, tmp_path):
    """A stack referenced to its first date holds 0 mm there; with NoData = 0 (a common export setting) that date and
    every exact 0 were read as no data without a word. Now it is said, with the fix; a stack without that
    declaration, or whose first date is not all 0, is not warned about."""
    import warnings

    from osgeo import gdal

    from deformcast.algorithms.errors import DeformCastWarning

    p = str(tmp_path / "nodata0.tif")
    gdal.Translate(p, small["stack"], noData=0)
    with pytest.warns(DeformCastWarning, match="declares 0 as its NoData value") as rec:
        info = raster.open_stack(p)
    assert "gdal_edit.py -unsetnodata 'nodata0.tif'" in str(rec[0].message)
    assert not np.isfinite(raster.read_stack(info, bands=[0])).any()      # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeformCastWarning)
        raster.open_stack(small["stack"])                                  # NaN as NoData: silent
        shifted = str(tmp_path / "shifted.tif")                            # 0 declared, no date all 0: silent
        gdal.Translate(shifted, small["stack"], noData=0, scaleParams=[[0, 1, 5, 6]])
        raster.open_stack(shifted)
