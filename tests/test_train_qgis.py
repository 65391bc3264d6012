"""``deformcast:train`` through processing.run and through qgis_process (a subprocess)."""
import json
import os

import pytest

from deformcast.algorithms.data.baselines import BASELINES


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from deformcast.algorithms.data.synthetic import write_scene

    return write_scene(str(tmp_path_factory.mktemp("scene")), seed=2, width=16, height=16, n_epochs=40, n_future=3)


_TINY = '{"d_model": 16, "layers": 1, "res_blocks": 1}'


def _read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def open_names(path):
    from deformcast.algorithms.io.raster import read_raster

    return read_raster(path)[2]


def _check_outputs(res, arch):
    from deformcast.algorithms.models.modelio import read_manifest
    from deformcast.algorithms.io.raster import read_raster

    man = read_manifest(res["OUTPUT_FOLDER"])
    assert man["members"][0]["architecture"] == arch
    for key in ("OUTPUT_FORECAST", "OUTPUT_RESIDUALS"):
        path = res[key]
        assert os.path.isfile(path), path
        qml = os.path.splitext(path)[0] + ".qml"
        assert os.path.isfile(qml) and "singlebandpseudocolor" in _read(qml)
        arr, _, names = read_raster(path)
        assert arr.shape[1:] == (16, 16) and all(len(n) == 10 and n[4] == "-" for n in names)
    html = _read(res["OUTPUT_REPORT"])
    for b in BASELINES:
        assert b in html, b
    assert "data:image/png;base64," in html


def test_train_via_processing_run(run_alg, scene, tmp_path):
    res = run_alg("train", {
        "INPUT": scene["stack"], "ARCHITECTURE": "cnn_lstm", "HORIZON": 2, "WINDOW": 5,
        "ENCODING": ["temporal", "spatial"], "HPARAMS": '{"hidden": 16, "conv_channels": 16}',
        "MAX_EPOCHS": 2, "SEED": 1, "DEVICE": "cpu", "ZONES": scene["zones"], "TARGET": "residual",
        "OUTPUT_FOLDER": str(tmp_path / "model"), "OUTPUT_REPORT": str(tmp_path / "report.html"),
        "OUTPUT_FORECAST": str(tmp_path / "fc.tif"), "OUTPUT_RESIDUALS": str(tmp_path / "res.tif")})
    _check_outputs(res, "cnn_lstm")
    # the outputs open in QGIS with their styles
    from qgis.core import QgsRasterLayer

    for key in ("OUTPUT_FORECAST", "OUTPUT_RESIDUALS"):
        lyr = QgsRasterLayer(res[key], key)
        assert lyr.isValid()
        _msg, ok = lyr.loadDefaultStyle()
        assert ok and lyr.renderer().type() == "singlebandpseudocolor"
        assert lyr.bandName(1).endswith(open_names(res[key])[0])
    html = _read(res["OUTPUT_REPORT"])
    assert "per zone" in html and "correction to the classical adaptive forecast" in html


def test_train_refuses_bad_input_cleanly(run_alg, scene, tmp_path):
    from qgis.core import QgsProcessingException

    base = {"INPUT": scene["stack"], "HORIZON": 2, "WINDOW": 5, "MAX_EPOCHS": 1,
            "OUTPUT_FOLDER": str(tmp_path / "m"), "OUTPUT_REPORT": str(tmp_path / "r.html"),
            "OUTPUT_FORECAST": str(tmp_path / "f.tif"), "OUTPUT_RESIDUALS": str(tmp_path / "r.tif")}
    with pytest.raises(QgsProcessingException, match="Unknown hyperparameter 'depth'"):
        run_alg("train", dict(base, ARCHITECTURE="gru", HPARAMS='{"depth": 3}'))
    with pytest.raises(QgsProcessingException, match="Valid values: lstm, gru"):
        run_alg("train", dict(base, ARCHITECTURE="mamba"))
    with pytest.raises(QgsProcessingException, match="Too few epochs"):
        run_alg("train", dict(base, ARCHITECTURE="gru", WINDOW=38))


def test_train_via_qgis_process(qgis_process_run, scene, tmp_path):
    r = qgis_process_run(
        "run", "deformcast:train", "--json", "--",
        f"INPUT={scene['stack']}", "ARCHITECTURE=resnet_transformer", "HORIZON=3", "WINDOW=6",
        "ENCODING=temporal", f"HPARAMS={_TINY}", "MAX_EPOCHS=2", "SEED=3", "DEVICE=auto",
        f"TRUTH={scene['truth']}",
        f"OUTPUT_FOLDER={tmp_path / 'model'}", f"OUTPUT_REPORT={tmp_path / 'report.html'}",
        f"OUTPUT_FORECAST={tmp_path / 'fc.tif'}", f"OUTPUT_RESIDUALS={tmp_path / 'res.tif'}",
        env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    start = r.stdout.find("{")
    res = json.loads(r.stdout[start:])["results"]
    _check_outputs(res, "resnet_transformer")
    assert "noise-free truth" in _read(res["OUTPUT_REPORT"])
