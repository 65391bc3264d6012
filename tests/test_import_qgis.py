"""deformcast:import_timeseries on the real QGIS: processing.run and qgis_process.bin."""
from __future__ import annotations

import os

import numpy as np
import pytest

from test_readers import (DATES, check_stack, grid3035, write_egms_csv, write_mintpy, write_point_layer,  # noqa: E402
                          write_tif)


def test_import_egms_csv_through_processing_run(tmp_path, run_alg):
    src = write_egms_csv(tmp_path / "EGMS_L2b_146_0411_IW1_VV.csv", "L2")
    out = str(tmp_path / "stack.tif")
    res = run_alg("import_timeseries", {"INPUT": str(src), "CELL_SIZE": 100, "UNITS": "mm",
                                        "TARGET_CRS": "EPSG:3035", "OUTPUT": out})
    assert res["OUTPUT"] == out
    check_stack(out)
    # a QGIS vector source string (GeoPackage layer, D_YYYYMMDD fields in metres)
    gpkg = write_point_layer(str(tmp_path / "insar.gpkg"), "GPKG", "D_{}", 1000.0, extra_layer=True)
    out2 = str(tmp_path / "stack2.tif")
    run_alg("import_timeseries", {"INPUT": f"{gpkg}|layername=ps", "CELL_SIZE": 100, "UNITS": "m",
                                  "OUTPUT": out2})
    check_stack(out2)
    # and the results back on the points
    res = run_alg("sample_at_points", {"INPUT": out2, "POINTS": gpkg + "|layername=ps",
                                       "OUTPUT": str(tmp_path / "pts.csv")})
    with open(res["OUTPUT"]) as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("id,x,y,2020-01-05,") and len(lines) == 1 + 20


def test_import_messages_through_processing(tmp_path, run_alg, deformcast_provider):
    from qgis.core import QgsProcessingContext, QgsProcessingException

    src = write_egms_csv(tmp_path / "pts.csv", "L3")
    with pytest.raises(QgsProcessingException, match="CELL_SIZE is required"):
        run_alg("import_timeseries", {"INPUT": str(src), "OUTPUT": str(tmp_path / "o.tif")})
    assert not os.path.exists(tmp_path / "o.tif")
    alg = next(a for a in deformcast_provider.algorithms() if a.name() == "import_timeseries").create()
    ok, msg = alg.checkParameterValues({"INPUT": str(src), "UNITS": "inch", "OUTPUT": "x.tif"},
                                       QgsProcessingContext())
    assert not ok and "inch" in msg and "mm, cm, m" in msg
    # a stack without dates, rescued by the DATES parameter
    tif = write_tif(str(tmp_path / "nodates.tif"))
    with pytest.raises(QgsProcessingException, match="DATES"):
        run_alg("import_timeseries", {"INPUT": tif, "OUTPUT": str(tmp_path / "o2.tif")})
    out = str(tmp_path / "o3.tif")
    run_alg("import_timeseries", {"INPUT": tif, "DATES": ",".join(str(d) for d in DATES), "OUTPUT": out})
    check_stack(out)


@pytest.mark.slow
def test_import_mintpy_through_qgis_process(tmp_path, qgis_process_run):
    """h5py (Debian's, built on the system HDF5 QGIS also loads) works inside qgis_process."""
    src = write_mintpy(str(tmp_path / "geo_timeseries.h5"))
    out = str(tmp_path / "mintpy_stack.tif")
    r = qgis_process_run("run", "deformcast:import_timeseries", "--", f"INPUT={src}", "REGULARISE=false",
                         f"OUTPUT={out}", timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stdout + r.stderr
    check_stack(out)
    from osgeo import gdal

    ds = gdal.Open(out)
    assert ds.RasterCount == DATES.size
    assert np.allclose(ds.GetGeoTransform(), grid3035().geotransform)
    assert ds.GetRasterBand(DATES.size).GetDescription() == str(DATES[-1])
