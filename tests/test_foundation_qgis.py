"""Plugin foundation on the real QGIS: provider, plugin entry points, styles, headless runs."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.io import raster, styles

ROOT = Path(__file__).resolve().parents[1]


def test_provider_registered_with_groups(deformcast_provider):
    from qgis.core import QgsApplication

    prov = QgsApplication.processingRegistry().providerById("deformcast")
    assert prov is not None and prov.name() == "DeformCast"
    algs = {a.name(): a for a in prov.algorithms()}
    assert "synthetic_scenario" in algs, sorted(algs)
    assert {a.group() for a in algs.values()} <= {"Data", "Modelling", "Maps", "Decision"}
    for a in algs.values():
        assert a.shortHelpString().strip(), f"{a.name()} has no help text"
        assert not a.icon().isNull()


def test_plugin_init_gui_and_unload(qgis_iface, deformcast_provider):
    from qgis.core import QgsApplication

    import deformcast

    reg = QgsApplication.processingRegistry()
    reg.removeProvider(reg.providerById("deformcast"))
    # pytest-qgis's interface stand-in lacks the removal calls of the real QgisInterface
    for name in ("removePluginMenu", "removeToolBarIcon", "removeDockWidget"):
        if not hasattr(qgis_iface, name):
            setattr(qgis_iface, name, lambda *a: None)
    plugin = deformcast.classFactory(qgis_iface)
    plugin.initProcessing()
    assert reg.providerById("deformcast") is not None
    plugin.initGui()
    assert plugin.actions
    inspector = [a for a in plugin.actions if a.text() == "Time-series inspector"][0]
    inspector.trigger()
    dock = plugin._dc_inspector
    assert dock is not None and not dock.isHidden()
    plugin.unload()
    assert reg.providerById("deformcast") is None and plugin.actions == []
    # the inspector dock leaves with the plugin: its canvas marks and map tools released, deleted by Qt
    assert plugin._dc_inspector is None and dock._disposed


def test_qml_styles_load_in_qgis(tmp_path, qgis_app):
    from qgis.core import QgsRasterLayer

    g = raster.make_grid(0, 100, 10, 4, 3)
    p = str(tmp_path / "classes.tif")
    raster.write_raster(p, np.array([[1, 2, 3, 4], [5, 1, 2, 3], [4, 5, 1, 2]]), g, dtype="uint8", nodata=0,
                        qml=styles.class_style(styles.class_labels(5)))
    lyr = QgsRasterLayer(p, "classes")
    assert lyr.isValid()
    lyr.loadDefaultStyle()
    r = lyr.renderer()
    assert r.type() == "paletted"
    assert [c.label for c in r.classes()] == ["Very low", "Low", "Moderate", "High", "Very high"]
    p2 = str(tmp_path / "defo.tif")
    raster.write_raster(p2, np.linspace(-10, 5, 12).reshape(3, 4), g, qml=styles.deformation_style(np.array([-10, 5.0])))
    lyr2 = QgsRasterLayer(p2, "defo")
    lyr2.loadDefaultStyle()
    assert lyr2.renderer().type() == "singlebandpseudocolor"
    assert lyr2.renderer().classificationMin() == pytest.approx(-lyr2.renderer().classificationMax())


def test_unknown_choice_refused_with_valid_list(run_alg, deformcast_provider):
    from qgis.core import QgsProcessingContext

    alg = next((a for a in deformcast_provider.algorithms() if a.name() == "train"), None)
    if alg is None:
        pytest.skip("train algorithm not registered yet")
    alg = alg.create()
    ok, msg = alg.checkParameterValues({"ARCHITECTURE": "lstmm"}, QgsProcessingContext())
    assert not ok and "lstmm" in msg and "resnet_transformer" in msg


def _clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


@pytest.mark.slow
def test_launcher_lists_algorithms():
    r = subprocess.run([str(ROOT / "deformcast"), "list"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "deformcast:synthetic_scenario" in r.stdout


@pytest.mark.slow
def test_provider_loads_without_torch(tmp_path):
    """qgis_process with Debian's Python only (no venv: torch/optuna missing) still lists the provider,
    and an algorithm needing torch refuses with the install command."""
    env = _clean_env()
    env["PYTHONPATH"] = ""
    profile = tmp_path / "profile"
    (profile / "python" / "plugins").mkdir(parents=True)
    os.symlink(ROOT, profile / "python" / "plugins" / "deformcast")
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(profile)
    env["QGIS_PLUGINPATH"] = str(profile / "python" / "plugins")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True, env=env)
    if probe.returncode == 0:
        pytest.skip("torch is installed system-wide; cannot test its absence")
    subprocess.run(["qgis_process.bin", "plugins", "enable", "deformcast"], capture_output=True, env=env, timeout=300)
    r = subprocess.run(["qgis_process.bin", "list"], capture_output=True, text=True, env=env, timeout=300)
    assert "deformcast:synthetic_scenario" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    torch_algs = [a for a in ("train", "tune") if f"deformcast:{a}" in r.stdout]
    if not torch_algs:
        pytest.skip("no torch-based algorithm registered yet")
    stack = str(tmp_path / "stack.tif")
    dates = np.datetime64("2020-01-01") + np.arange(40) * np.timedelta64(12, "D")
    raster.write_stack(stack, np.zeros((40, 4, 5), np.float32), dates, raster.make_grid(0, 100, 10, 5, 4))
    args = {"train": ["ARCHITECTURE=gru", "HORIZON=2", f"OUTPUT_FOLDER={tmp_path / 'm'}",
                      f"OUTPUT_REPORT={tmp_path / 'r.html'}", f"OUTPUT_FORECAST={tmp_path / 'f.tif'}",
                      f"OUTPUT_RESIDUALS={tmp_path / 'res.tif'}"],
            "tune": ["ARCHITECTURE=gru", "HORIZON=2", "N_TRIALS=1", "TOP_K=1", f"OUTPUT_FOLDER={tmp_path / 'm'}",
                     f"OUTPUT_REPORT={tmp_path / 'r.html'}"]}[torch_algs[0]]
    r = subprocess.run(["qgis_process.bin", "run", f"deformcast:{torch_algs[0]}", "--", f"INPUT={stack}", *args],
                       capture_output=True, text=True, env=env, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "torch" in out and "pip install" in out
    assert "Traceback" not in out
