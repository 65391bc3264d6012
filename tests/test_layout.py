"""Reads that follow the file's layout (issue 17): every layout reads the same values, the one-time
conversion is made once, reused, and made again when the file changes."""
import os

import numpy as np
import pytest
from osgeo import gdal

from deformcast.algorithms.io import layout, raster

gdal.UseExceptions()
T, H, W = 7, 40, 70
DATES = np.datetime64("2020-01-05") + np.arange(T) * 12


def _values():
    rng = np.random.default_rng(3)
    v = rng.normal(0, 20, (T, H, W))
    return np.round(v, 1)


@pytest.fixture()
def base(tmp_path):
    """int16 stack stored as mm x 10 with scale 0.1 and offset -2 (so scale/offset matter), nodata -32768 in
    some pixels, unit cm on the bands (so the length unit matters), one band per date."""
    grid = raster.make_grid(400000.0, 5800000.0, 20.0, W, H)
    raw = np.round((_values() + 2.0) / 0.1).astype(np.int16)
    raw[:, 3:6, 10:14] = -32768
    raw[2, 20, 5] = -32768
    p = str(tmp_path / "base.tif")
    ds = gdal.GetDriverByName("GTiff").Create(p, W, H, T, gdal.GDT_Int16, ["INTERLEAVE=BAND"])
    ds.SetGeoTransform(grid.geotransform)
    ds.SetProjection(grid.crs_wkt)
    for b in range(T):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(raw[b])
        band.SetNoDataValue(-32768)
        band.SetScale(0.1)
        band.SetOffset(-2.0)
        band.SetUnitType("cm")
        band.SetDescription(str(DATES[b]))
    ds = None
    return p


def _expected(path):
    """What raster.read_band gives band by band (the reference handling of nodata, scale, offset, unit)."""
    ds = gdal.Open(path)
    return np.stack([raster.read_band(ds.GetRasterBand(b + 1), to_mm=True) for b in range(ds.RasterCount)])


def _translate(base, path, opts):
    gdal.Translate(path, base, creationOptions=opts)
    return path


def _vrt(base, folder):
    ds = gdal.Open(base)
    files = []
    for b in range(T):
        f = os.path.join(folder, f"d{b}.tif")
        gdal.Translate(f, ds, bandList=[b + 1])
        files.append(f)
    p = os.path.join(folder, "stack.vrt")
    v = gdal.BuildVRT(p, files, separate=True)
    for b in range(T):
        src = ds.GetRasterBand(b + 1)
        vb = v.GetRasterBand(b + 1)
        vb.SetDescription(src.GetDescription())
        vb.SetNoDataValue(-32768)
        vb.SetScale(0.1)
        vb.SetOffset(-2.0)
        vb.SetUnitType("cm")
    v = None
    return p


LAYOUT_OPTS = {
    "tiled_pixel": ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE", "INTERLEAVE=PIXEL"],
    "tiled_band": ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE", "INTERLEAVE=BAND"],
    "striped_band": ["TILED=NO", "INTERLEAVE=BAND"],
    "striped_pixel": ["TILED=NO", "INTERLEAVE=PIXEL", "COMPRESS=LZW"],
}


@pytest.mark.parametrize("name", sorted(LAYOUT_OPTS) + ["vrt"])
def test_every_layout_reads_the_same(base, tmp_path, name, monkeypatch):
    monkeypatch.setenv("DEFORMCAST_CONVERT", "never")
    expected = _expected(base)
    assert np.isnan(expected[:, 3:6, 10:14]).all() and np.isnan(expected[2, 20, 5])
    np.testing.assert_allclose(expected[0, 0, 0], (_values()[0, 0, 0] + 2.0) * 10.0 - 20.0, atol=0.02)
    sub = tmp_path / name
    sub.mkdir()
    path = _vrt(base, str(sub)) if name == "vrt" else _translate(base, str(sub / "s.tif"), LAYOUT_OPTS[name])
    info = raster.open_stack(path)
    lay = layout.describe(gdal.Open(path))
    assert lay.all_bands_at_once == (name in ("tiled_pixel", "striped_pixel"))
    np.testing.assert_array_equal(info.dates, DATES)
    whole = raster.read_stack(info)
    np.testing.assert_array_equal(whole, expected)
    # row blocks with a halo, as ensemble reads them, and a band subset
    for a0, a1 in [(0, 13), (11, 29), (27, 40), (39, 40)]:
        np.testing.assert_array_equal(raster.read_stack(info, rows=(a0, a1)), expected[:, a0:a1])
    np.testing.assert_array_equal(raster.read_stack(info, rows=(5, 9), bands=[6, 0, 3]), expected[[6, 0, 3], 5:9])


def test_float32_nan_nodata_and_pixel_interleave(tmp_path, monkeypatch):
    """DeformCast's own contract stack (float32, NaN nodata) converted to pixel interleave reads the same."""
    monkeypatch.setenv("DEFORMCAST_CONVERT", "never")
    grid = raster.make_grid(0.0, 0.0, 10.0, W, H)
    v = _values().astype(np.float32)
    v[:, 0, :5] = np.nan
    own = raster.write_stack(str(tmp_path / "own.tif"), v, DATES, grid)
    pix = _translate(own, str(tmp_path / "pix.tif"), LAYOUT_OPTS["tiled_pixel"])
    a, b = raster.read_stack(raster.open_stack(own)), raster.read_stack(raster.open_stack(pix))
    np.testing.assert_array_equal(a, v)
    np.testing.assert_array_equal(b, v)


def test_describe_and_decision(base, tmp_path, monkeypatch):
    pix = _translate(base, str(tmp_path / "pix.tif"), LAYOUT_OPTS["tiled_pixel"])
    band = _translate(base, str(tmp_path / "band.tif"), LAYOUT_OPTS["tiled_band"])
    lp, lb = layout.describe(gdal.Open(pix)), layout.describe(gdal.Open(band))
    assert (lp.interleave, lp.tiled, lp.compression, lp.block) == ("PIXEL", True, "DEFLATE", (16, 16))
    assert (lb.interleave, lb.tiled) == ("BAND", True)
    assert lp.slow_for_row_blocks() and not lb.slow_for_row_blocks()
    monkeypatch.delenv("DEFORMCAST_CONVERT", raising=False)
    assert layout.should_convert(lp, min_mb=0.0) and not layout.should_convert(lp, min_mb=1e6)
    assert not layout.should_convert(lb, min_mb=0.0)
    monkeypatch.setenv("DEFORMCAST_CONVERT", "never")
    assert not layout.should_convert(lp, min_mb=0.0)


def test_conversion_once_reused_and_invalidated(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(cache))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")   # the file is tiny: convert whatever its size
    path = _translate(base, str(tmp_path / "user.tif"), LAYOUT_OPTS["tiled_pixel"])
    expected = _expected(base)

    info = raster.open_stack(path)
    assert info.read_path and os.path.dirname(info.read_path) == str(cache)
    assert "converted once" in info.layout_note and "user.tif" in info.layout_note
    assert info.path == path                          # the user's file stays the stack's name
    conv = gdal.Open(info.read_path)
    assert layout.describe(conv).interleave == "BAND" and not layout.describe(conv).tiled
    np.testing.assert_array_equal(raster.read_stack(info), expected)
    np.testing.assert_array_equal(raster.read_stack(info, rows=(7, 19)), expected[:, 7:19])
    first_mtime = os.stat(info.read_path).st_mtime_ns

    again = raster.open_stack(path)                  # reused, not converted again
    assert again.read_path == info.read_path
    assert os.stat(again.read_path).st_mtime_ns >= first_mtime
    assert "from its converted copy" in again.layout_note
    assert len([f for f in os.listdir(cache) if f.endswith(".tif")]) == 1

    # the user changes the file: a new copy with the new values, the stale one is gone
    v = gdal.Open(path, gdal.GA_Update)
    v.GetRasterBand(1).WriteArray(np.full((H, W), 100, np.int16))
    v = None
    os.utime(path, ns=(first_mtime + 10**9, first_mtime + 10**9))
    changed = raster.open_stack(path)
    assert changed.read_path != info.read_path and "converted once" in changed.layout_note
    assert not os.path.exists(info.read_path)
    got = raster.read_stack(changed)
    np.testing.assert_allclose(got[0], (100 * 0.1 - 2.0) * 10.0, rtol=1e-6)
    np.testing.assert_array_equal(got[1:], expected[1:])
    assert len([f for f in os.listdir(cache) if f.endswith(".tif")]) == 1


def test_no_conversion_for_fast_layouts_or_when_switched_off(base, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(cache))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    band = _translate(base, str(tmp_path / "band.tif"), LAYOUT_OPTS["tiled_band"])
    assert raster.open_stack(band).read_path is None
    pix = _translate(base, str(tmp_path / "pix.tif"), LAYOUT_OPTS["tiled_pixel"])
    assert raster.open_stack(pix, convert=False).read_path is None
    monkeypatch.setenv("DEFORMCAST_CONVERT", "auto")   # small: below CONVERT_MIN_MB
    info = raster.open_stack(pix)
    assert info.read_path is None and info.layout_note == ""
    assert not cache.exists()


def test_read_stack_sees_a_rewritten_file(tmp_path):
    """The dataset kept open between row blocks is reopened when the file is replaced."""
    grid = raster.make_grid(0.0, 0.0, 10.0, W, H)
    p = str(tmp_path / "s.tif")
    v = _values().astype(np.float32)
    raster.write_stack(p, v, DATES, grid)
    info = raster.open_stack(p)
    np.testing.assert_array_equal(raster.read_stack(info, rows=(0, 5)), v[:, :5])
    raster.write_stack(p, v + 1, DATES, grid)
    np.testing.assert_array_equal(raster.read_stack(info, rows=(0, 5)), v[:, :5] + 1)


def test_cache_is_raised_for_a_row_of_blocks():
    lay = layout.Layout("GTiff", "PIXEL", (256, 256), True, "DEFLATE", 150, 1000, 1000, 4, 1)
    assert lay.cache_bytes() == 2 * 4 * 256 * 256 * 150 * 4
    old = gdal.GetCacheMax()
    try:
        gdal.SetCacheMax(64 * 1024 * 1024)
        layout.ensure_cache(lay)
        assert gdal.GetCacheMax() >= min(lay.cache_bytes(), layout.CACHE_CAP_MB * 1024 * 1024)
    finally:
        gdal.SetCacheMax(old)



def test_the_conversion_copies_a_row_of_tiles_of_every_band_at_a_time(base, tmp_path, monkeypatch):
    """Session 28: GDAL copies a pixel-interleaved tiled file in swaths of a quarter of its block cache, so with a
    small cache each tile (all bands) was decompressed once per swath it straddles (the benchmark's 1000 x 1000 x 150
    stack: 21.3 s instead of 2.8 s with a 64 MB cache). The conversion sets ``GDAL_SWATH_SIZE`` to one row of tiles of
    every band (at most ``CACHE_CAP_MB``) for its own thread while it copies, never lowers a larger one, and leaves the
    option as it was; the copy holds the same values."""
    lay = layout.Layout("GTiff", "PIXEL", (256, 256), True, "DEFLATE", 150, 1000, 1000, 4, 1)
    assert layout.copy_swath_bytes(lay) == 4 * 256 * 256 * 150 * 4
    wide = layout.Layout("GTiff", "PIXEL", (256, 256), True, "DEFLATE", 300, 40000, 100, 4, 1)
    assert layout.copy_swath_bytes(wide) == layout.CACHE_CAP_MB << 20
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    path = _translate(base, str(tmp_path / "user.tif"), LAYOUT_OPTS["tiled_pixel"])
    want = layout.copy_swath_bytes(layout.describe(gdal.Open(path)))
    assert want == 5 * 16 * 16 * T * 2            # 70 columns: five 16 x 16 tiles of seven int16 bands
    seen = []
    translate = gdal.Translate

    def spy(*a, **k):
        seen.append(gdal.GetConfigOption("GDAL_SWATH_SIZE"))
        return translate(*a, **k)

    monkeypatch.setattr(gdal, "Translate", spy)
    before = gdal.GetConfigOption("GDAL_SWATH_SIZE")
    info = raster.open_stack(path)
    assert seen == [str(want)] and gdal.GetConfigOption("GDAL_SWATH_SIZE") == before
    np.testing.assert_array_equal(raster.read_stack(info), _expected(base))
    gdal.SetConfigOption("GDAL_SWATH_SIZE", str(want * 8))          # a larger swath the user set is kept
    try:
        os.remove(info.read_path)
        raster.open_stack(path)
        assert seen[-1] == str(want * 8) and gdal.GetConfigOption("GDAL_SWATH_SIZE") == str(want * 8)
    finally:
        gdal.SetConfigOption("GDAL_SWATH_SIZE", None)

def test_the_conversion_decompresses_tiles_on_every_core(base, tmp_path, monkeypatch):
    """Session 29: a compressed GeoTIFF is converted with its tiles decompressed by as many threads as the process
    has cores (at most 4; GDAL's ``NUM_THREADS`` open option), since ``predict``'s local processes only wait for the
    copy; an uncompressed file or a VRT by one. The copy holds the same values."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    assert layout.decode_threads(layout.Layout("GTiff", "PIXEL", (256, 256), True, "DEFLATE", 150, 1000, 1000, 4, 1)) == 4
    assert layout.decode_threads(layout.Layout("GTiff", "PIXEL", (256, 256), True, "", 150, 1000, 1000, 4, 1)) == 1
    assert layout.decode_threads(layout.Layout("VRT", "BAND", (128, 128), False, "", 150, 1000, 1000, 4, 150)) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    path = _translate(base, str(tmp_path / "user.tif"), LAYOUT_OPTS["tiled_pixel"])
    opened, open_ex = [], gdal.OpenEx

    def spy(*a, **k):
        opened.append(k.get("open_options"))
        return open_ex(*a, **k)

    monkeypatch.setattr(gdal, "OpenEx", spy)
    info = raster.open_stack(path)
    assert ["NUM_THREADS=2"] in opened
    np.testing.assert_array_equal(raster.read_stack(info), _expected(base))


def test_conversion_reports_progress_and_honours_cancel(base, tmp_path, monkeypatch):
    from deformcast.algorithms.progress import Cancelled, Progress

    cache = tmp_path / "cache"
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(cache))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    path = _translate(base, str(tmp_path / "user.tif"), LAYOUT_OPTS["tiled_pixel"])
    with pytest.raises(Cancelled):
        raster.open_stack(path, progress=Progress(is_cancelled=lambda: True))
    assert not [f for f in os.listdir(cache) if f.endswith(".tif")]       # no partial copy left behind
    seen, logged = [], []
    info = raster.open_stack(path, progress=Progress(on_progress=seen.append, on_log=logged.append))
    assert info.read_path and seen and max(seen) == pytest.approx(100.0)
    assert logged == [info.layout_note]
