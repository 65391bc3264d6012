"""Core foundation: imports without QGIS, dates, raster round trip, atomic writes, styles."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms import deps
from deformcast.algorithms.io import raster, styles
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress

ROOT = Path(__file__).resolve().parents[1]


def test_core_imports_without_qgis():
    code = ("import sys, algorithms, algorithms.io.raster, algorithms.io.styles, algorithms.progress, algorithms.deps;"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('qgis','PyQt5','PyQt6')];"
            "assert not bad, bad; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_core_sources_never_import_qgis():
    offenders = []
    for p in (ROOT / "algorithms").rglob("*.py"):
        for line in p.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if s.startswith(("import qgis", "from qgis", "import PyQt", "from PyQt")):
                offenders.append(f"{p.name}: {s}")
    assert offenders == []


@pytest.mark.parametrize("text,expected", [
    ("2020-03-05", "2020-03-05"), ("20200305", "2020-03-05"), ("D20200305", "2020-03-05"),
    ("D_20200305", "2020-03-05"), ("2020-03-05T00:00:00", "2020-03-05"), ("banana", None), ("20201340", None),
    ("2020/03/05", "2020-03-05"), ("2020.3.5", "2020-03-05"), ("2020-03-05 10:42:01", "2020-03-05"),
    ("05/03/2020", None), ("03/05/2020", None), ("2020-03/05", None), ("2020-02-30", None)])
def test_parse_date(text, expected):
    d = raster.parse_date(text)
    assert (None if d is None else str(d)) == expected


def test_dates_param_list_and_file(tmp_path):
    f = tmp_path / "dates.txt"
    f.write_text("# acquisitions\n2020-01-01\n20200113\n")
    assert [str(d) for d in raster.parse_dates_param(str(f))] == ["2020-01-01", "2020-01-13"]
    assert [str(d) for d in raster.parse_dates_param("2020-01-01, 20200113")] == ["2020-01-01", "2020-01-13"]
    with pytest.raises(DeformCastError, match="not a date"):
        raster.parse_dates_param("2020-01-01,yesterday")


def test_duplicate_and_unsorted_dates_refused():
    d = np.array(["2020-01-01", "2020-01-13", "2020-01-13"], dtype="datetime64[D]")
    with pytest.raises(DeformCastError, match="twice"):
        raster.check_dates(d)
    with pytest.raises(DeformCastError, match="not in time order"):
        raster.check_dates(d[::-1][1:])


def _grid(w=7, h=5):
    return raster.make_grid(300000.0, 5650000.0, 50.0, w, h, epsg=25832)


def test_stack_round_trip(tmp_path):
    g = _grid()
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(4, 5, 7)).astype(np.float32)
    vals[:, 0, 0] = np.nan
    dates = np.array(["2020-01-01", "2020-01-13", "2020-01-25", "2020-02-06"], dtype="datetime64[D]")
    p = str(tmp_path / "s.tif")
    raster.write_stack(p, vals, dates, g)
    assert os.path.exists(p) and os.path.exists(str(tmp_path / "s.qml"))
    assert not os.path.exists(p + ".part.tif")
    info = raster.open_stack(p)
    assert [str(d) for d in info.dates] == [str(d) for d in dates]
    assert info.grid.same_as(g)
    back = raster.read_stack(info)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(vals))
    np.testing.assert_allclose(back[~np.isnan(back)], vals[~np.isnan(vals)])
    np.testing.assert_allclose(raster.read_stack(info, rows=(2, 4)), back[:, 2:4])
    np.testing.assert_allclose(raster.read_stack(info, rows=(np.int64(1), np.int64(3))), back[:, 1:3])


def test_stack_without_dates_refused_and_dates_param(tmp_path):
    g = _grid()
    p = str(tmp_path / "nodates.tif")
    raster.write_raster(p, np.zeros((3, 5, 7), np.float32), g)
    with pytest.raises(DeformCastError, match="DATES parameter"):
        raster.open_stack(p)
    info = raster.open_stack(p, dates="2021-01-01,2021-01-13,2021-01-25")
    assert info.n_epochs == 3
    with pytest.raises(DeformCastError, match="one date per band"):
        raster.open_stack(p, dates="2021-01-01,2021-01-13")


def test_failed_write_leaves_no_output(tmp_path):
    g = _grid()
    p = str(tmp_path / "out.tif")
    with pytest.raises(Cancelled):
        with raster.RasterWriter(p, g, 2, qml=styles.probability_style()) as w:
            w.write(np.zeros((2, 2, 7), np.float32), 0)
            raise Cancelled()
    assert sorted(os.listdir(tmp_path)) == []


def test_styles_are_valid_xml_with_class_names():
    for q in (styles.pseudocolor(-5, 5, "deformation"), styles.probability_style(2),
              styles.class_style(styles.class_labels(5)), styles.deformation_style(np.array([-3.0, 1.0]))):
        root = ET.fromstring(q.split("\n", 1)[1])
        assert root.tag == "qgis"
    q = styles.class_style(["Very low", "Low", "Moderate", "High", "Very high"])
    labels = [e.get("label") for e in ET.fromstring(q.split("\n", 1)[1]).iter("paletteEntry")]
    assert labels == ["Very low", "Low", "Moderate", "High", "Very high"]


def test_progress_maps_nested_ranges_and_cancels():
    seen = []
    flag = {"c": False}
    p = Progress(seen.append, lambda: flag["c"])
    child = p.sub(0.5, 1.0)
    child.set(0.5)
    assert seen[-1] == pytest.approx(75.0)
    flag["c"] = True
    with pytest.raises(Cancelled):
        child.set(0.6)


def test_dependency_report_names_install_command():
    assert deps.missing(["numpy"]) == []
    assert deps.missing(["surely_not_a_package_xyz"]) == ["surely_not_a_package_xyz"]
    cmd = deps.install_command(["torch", "optuna"])
    assert "torch==2.13.0" in cmd and "optuna" in cmd and "numpy<2" in cmd
    with pytest.raises(DeformCastError, match="pip install"):
        deps.REQUIRED["_fake_pkg_for_test"] = "_fake_pkg_for_test"
        try:
            deps.require("_fake_pkg_for_test")
        finally:
            deps.REQUIRED.pop("_fake_pkg_for_test")


def test_child_interpreter_is_this_python_not_sys_executable(monkeypatch, tmp_path):
    """Worker processes run on the interpreter of sys.exec_prefix, whatever sys.executable says (inside QGIS it is
    the QGIS binary, or in qgis_process another installation's python3 on PATH)."""
    real = deps.python_interpreter()
    out = subprocess.run([real, "-c", "import sys; print(sys.version_info[:2], sys.exec_prefix)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == f"{tuple(sys.version_info[:2])} {sys.exec_prefix}"
    # an embedding binary as sys.executable does not matter
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    assert deps.python_interpreter() == real
    # a prefix without an interpreter (and no build BINDIR): sys.executable where it is a Python, else PATH, else a
    # clear message
    import sysconfig

    xy = f"python{sys.version_info[0]}.{sys.version_info[1]}"

    def executable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return str(path)

    monkeypatch.setattr(sysconfig, "get_config_var", lambda name: None)
    fake = executable(tmp_path / "elsewhere" / xy)
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", fake)
    assert deps.python_interpreter() == fake
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis" / "bin" / "qgis"))   # nothing beside it
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(DeformCastError, match="LOCAL_WORKERS=1"):
        deps.python_interpreter()
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))          # PATH: the same minor version only
    assert deps.python_interpreter() == fake
    # Windows / OSGeo4W: python.exe in the prefix itself; macOS QGIS.app: python<X.Y> beside the QGIS binary
    win = executable(tmp_path / "apps" / "Python311" / "python.exe")
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path / "apps" / "Python311"))
    assert deps.python_interpreter() == win
    mac = executable(tmp_path / "QGIS.app" / "Contents" / "MacOS" / xy)
    monkeypatch.setattr(sys, "exec_prefix", str(tmp_path / "QGIS.app" / "Contents" / "Frameworks"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "QGIS.app" / "Contents" / "MacOS" / "QGIS"))
    assert deps.python_interpreter() == mac
    from deformcast.algorithms.learn.tuning.local_workers import python_executable
    from deformcast.algorithms.maps.distributed import spawn_python

    monkeypatch.undo()
    assert python_executable() == spawn_python() == real


def test_gdal_array_imports_with_numpy_below_2():
    from osgeo import gdal_array  # noqa: F401

    assert int(np.__version__.split(".")[0]) < 2


def test_vrt_of_one_file_per_date_takes_the_dates_from_the_file_names(tmp_path):
    """A folder of single-date GeoTIFFs stacked with gdalbuildvrt -separate has bands without descriptions: the
    date in each file's name is read (before: refused, asking for DATES). A name with two dates (an
    interferogram) or none gives no date, and the stack is refused as before."""
    from osgeo import gdal

    from deformcast.algorithms.io.source_dates import name_date

    g = _grid()
    vals = np.random.default_rng(0).normal(size=(4, 5, 7)).astype(np.float32)
    names = ["disp_20200101.tif", "S1_2020-01-13_los.tif", "20200125T054512_up.tif", "d20200206.tif"]
    files = []
    for k, n in enumerate(names):
        files.append(str(tmp_path / n))
        raster.write_raster(files[-1], vals[k:k + 1], g)
    vrt = str(tmp_path / "stack.vrt")
    gdal.BuildVRT(vrt, files, separate=True)
    info = raster.open_stack(vrt)
    assert [str(d) for d in info.dates] == ["2020-01-01", "2020-01-13", "2020-01-25", "2020-02-06"]
    np.testing.assert_allclose(raster.read_stack(info), vals)
    assert name_date("/x/20200105_20200117.tif") is None and name_date("los.tif") is None
    assert name_date("ts_2020-02-30.tif") is None and name_date("a_123456789.tif") is None
    assert name_date("disp_05012020.tif") is None       # day first: not read as a date
    bad = str(tmp_path / "ifg.vrt")
    os.rename(files[1], str(tmp_path / "20200101_20200113.tif"))
    files[1] = str(tmp_path / "20200101_20200113.tif")
    gdal.BuildVRT(bad, files, separate=True)
    with pytest.raises(DeformCastError, match="band 2 of 'ifg.vrt'.*a date in each file's name"):
        raster.open_stack(bad)


def test_a_description_with_one_date_among_other_words(tmp_path):
    """Band descriptions such as 'timeseries-20200105' or 'S1A_2020-01-17_VV' hold one date among other words:
    it is read. Two dates (an interferogram) or a day-first number are not, and the stack is refused."""
    g = _grid()
    p = str(tmp_path / "words.tif")
    raster.write_raster(p, np.random.default_rng(0).normal(size=(3, 5, 7)).astype(np.float32), g,
                        band_names=["timeseries-20200105", "S1A_2020-01-17_VV", "D_20200129 (asc)"])
    assert [str(d) for d in raster.open_stack(p).dates] == ["2020-01-05", "2020-01-17", "2020-01-29"]
    q = str(tmp_path / "ifg.tif")
    raster.write_raster(q, np.zeros((2, 5, 7), np.float32) + 1, g, band_names=["20200105_20200117", "disp_05012020"])
    with pytest.raises(DeformCastError, match="band 1 of 'ifg.tif'"):
        raster.open_stack(q)
