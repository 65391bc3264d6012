"""The chain declaration (algorithms/chain.py): defaults read from run_workflow, choice lists from the
core, Processing values -> run_workflow keywords, and the layer tree a run produces (QGIS-free)."""
import inspect
import os

import numpy as np
import pytest

from deformcast.algorithms import chain
from deformcast.algorithms.data import dataset
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.io.raster import make_grid, write_raster
from deformcast.algorithms.workflow import run_workflow


def test_defaults_are_run_workflows():
    sig = {k: p.default for k, p in inspect.signature(run_workflow).parameters.items()}
    for p in chain.PARAMETERS:
        if p.arg:
            core = chain.ENTRANCE_DEFAULTS.get(p.arg, sig[p.arg])
            assert chain.workflow_kwargs({})[p.arg] == (
                list(core) if isinstance(core, tuple) else core), p.name
    kw = chain.workflow_kwargs({"OUTPUT_FOLDER": "/o"})
    assert kw["output_folder"] == "/o" and kw["encodings"] is None and kw["search_space"] == "compact"
    assert kw["window"] is None and kw["thresholds"] == [10.0, 20.0] and kw["seed"] == 42
    assert set(chain.ENTRANCE_DEFAULTS) == {"seed"}  # the only entrance default not taken from the core
    d = chain.defaults()
    assert d["HORIZON"] == 30 and d["ARCHITECTURES"] == ["lstm"] and d["ENCODING"] == []
    assert d["ANCHOR"] == "adaptive" and d["VALIDATION"] == "space" and d["TARGET"] == "residual"


def test_choice_lists_are_the_cores():
    from deformcast.algorithms.models import names

    b = chain.BY_NAME
    assert b["ENCODING"].choices == tuple(dataset.ENCODINGS) and b["ANCHOR"].choices == tuple(dataset.ANCHORS)
    assert b["VALIDATION"].choices == tuple(dataset.VALIDATIONS) and b["TARGET"].choices == tuple(dataset.TARGETS)
    assert b["ARCHITECTURES"].choices == tuple(names())
    assert all(p.default in p.choices or p.multiple for p in chain.PARAMETERS if p.kind == "enum")


def test_workflow_kwargs_converts_processing_values():
    kw = chain.workflow_kwargs({"INPUT": " /d/s.tif ", "ENCODING": ["trajectory"], "WINDOW": 12, "THRESHOLDS": "5;15",
                                "ARCHITECTURES": [], "SEARCH_SPACE": "{}", "STEPS": "", "DATES": "",
                                "OUTPUT_FOLDER": "/o"})
    assert kw["stack_path"] == "/d/s.tif" and kw["encodings"] == ["trajectory"] and kw["window"] == 12
    assert kw["thresholds"] == [5.0, 15.0] and kw["architectures"] == ["lstm"]
    assert kw["search_space"] == "{}" and kw["steps"] is None and kw["dates"] is None
    with pytest.raises(DeformCastError, match="THRESHOLDS"):
        chain.workflow_kwargs({"THRESHOLDS": ""})
    assert set(chain.workflow_kwargs({})) <= set(inspect.signature(run_workflow).parameters)


def test_layer_tree_resolves_files(tmp_path):
    g = make_grid(320000.0, 5650000.0, 100.0, 4, 3)
    stack = write_raster(str(tmp_path / "stack.tif"), np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 12, g,
                         ["2020-01-01", "2020-01-13"])
    tiers = write_raster(str(tmp_path / "tiers.tif"), np.ones((3, 4)), g, dtype="uint8", nodata=0)
    disc = write_raster(str(tmp_path / "discontinuities.tif"), np.zeros((3, 3, 4)), g)
    cov = write_raster(str(tmp_path / "dem.tif"), np.ones((3, 4)), g)
    paths = {"stack": stack, "tiers": tiers, "OUTPUT_TIERS": tiers, "OUTPUT_DISCONTINUITY": disc,
             "forecast_median": str(tmp_path / "missing.tif"), "models": str(tmp_path)}
    tree = chain.resolve_tree(paths, covariates=[cov])
    assert [g.name for g, _ in tree] == ["Decision", "Data"]
    dec = {i.name: i for i in tree[0][1]}
    assert list(dec) == ["Control tiers", "Discontinuities (differential movement)"]  # tiers once, missing left out
    assert dec["Control tiers"].visible and not dec["Discontinuities (differential movement)"].visible
    data = [i.name for i in tree[1][1]]
    assert data == ["Displacement stack", "Covariate: dem"]
    qml = chain.layer_qml(tree[1][1][0])
    assert 'type="singlebandpseudocolor" band="2"' in qml and "mm" in qml  # the last date, mm, never RGB
    assert 'band="3"' in chain.layer_qml(dec["Discontinuities (differential movement)"])
    assert chain.layer_qml(dec["Control tiers"]) is None  # its own sidecar
    assert chain.run_name(str(tmp_path / "my run") + os.sep) == "DeformCast my run"
    assert chain.relabel("Very low (-inf to 0.336 mm)") == "Very low (< 0.336 mm)"
    assert chain.relabel("Very high (2.02 to inf mm)") == "Very high (> 2.02 mm)"
    assert chain.relabel("Low (0.3 to 0.7 mm)") == "Low (0.3 to 0.7 mm)"


def test_markdown_table_lists_every_parameter():
    t = chain.markdown_table()
    assert all(f"`{p.name}`" in t for p in chain.PARAMETERS) and "| `HORIZON` | 30 |" in t
