"""Reads that follow a raster's layout on disk, and the one-time conversion of an unfriendly stack.

A displacement stack is read in row blocks of all epochs (``raster.read_stack``). How cheap that
is depends on how the file stores its pixels:

* **band-interleaved** (``INTERLEAVE=BAND``, DeformCast's own outputs, most stacks written band by
  band): each band has its own blocks, so a row block is read band by band and costs only the
  blocks it touches;
* **pixel-interleaved** (``INTERLEAVE=PIXEL``, GDAL's default for a multiband GeoTIFF): one block
  holds *all* bands, so a band-by-band read decompresses every tile once per band (150 times for
  150 epochs). Here all bands are read in **one** ``ReadAsArray`` call, and GDAL's block cache is
  made large enough to hold one row of blocks of all bands, so a block decompressed for one read
  serves the next (halo rows);
* **VRT of single-date files**: one file per band; read band by band from the VRT (a per-band read
  opens each source once per row block).

:func:`read_window` does the reading with the value handling of :func:`raster.read_band` (nodata
matched on the stored values, then scale, offset and the length unit, band by band).

:func:`fast_copy` converts a large stack whose layout is slow for row-block reads (tiled and
compressed pixel-interleaved, or a VRT of more files than GDAL keeps open) **once** into a
band-interleaved, striped GeoTIFF in a cache folder, keyed by the source's path, size and
modification time; later runs reuse it, a changed source gets a fresh copy. The decision rule and
the measurements behind it are in ``docs/README_data.md`` ("File layouts and speed").
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

#: stacks at least this large (uncompressed, MB) in a slow layout are converted once
CONVERT_MIN_MB = float(os.environ.get("DEFORMCAST_CONVERT_MIN_MB", "64"))
#: the GDAL block cache is raised to hold one row of blocks of all bands, up to this many MB
CACHE_CAP_MB = 1024
#: the cache folder keeps at most this many MB of converted stacks (oldest used first out)
CACHE_KEEP_MB = float(os.environ.get("DEFORMCAST_LAYOUT_CACHE_MB", "20000"))
#: rows per strip of a converted stack (a row block of ``ensemble`` is ~64 rows on a 1000-pixel-wide raster)
STRIP_ROWS = 16


def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


@dataclass(frozen=True)
class Layout:
    """How a raster stores its pixels (what decides the cheapest read)."""

    driver: str
    interleave: str          # "PIXEL" or "BAND" ("BAND" for one band and for VRTs of single-band files)
    block: tuple             # (block width, block height) of band 1
    tiled: bool              # blocks narrower than the raster
    compression: str         # "" when none
    n_bands: int
    width: int
    height: int
    dtype_bytes: int
    n_files: int             # source files behind a VRT (1 otherwise)

    @property
    def mb(self) -> float:
        """Uncompressed size in MB."""
        return self.width * self.height * self.n_bands * self.dtype_bytes / 1e6

    @property
    def all_bands_at_once(self) -> bool:
        """One ``ReadAsArray`` for all bands (pixel interleave); else band by band."""
        return self.interleave == "PIXEL" and self.n_bands > 1

    def cache_bytes(self) -> int:
        """GDAL block cache that holds one row of blocks of every band (plus one more row for the halo)."""
        bx, by = self.block
        nx = -(-self.width // max(1, bx))
        return int(2 * nx * bx * by * self.n_bands * self.dtype_bytes)

    def slow_for_row_blocks(self) -> str:
        """Why row-block reads of this layout are slow ('' when they are not)."""
        if self.all_bands_at_once and self.tiled and self.compression:
            return (f"tiled ({self.block[0]} x {self.block[1]}), {self.compression}-compressed and pixel-interleaved: "
                    "every tile holds all bands")
        if self.driver == "VRT" and self.n_files > 1:
            return f"a VRT of {self.n_files} files"
        return ""

    def describe(self) -> str:
        what = "VRT of %d files" % self.n_files if self.driver == "VRT" else self.driver
        return (f"{what}, {self.interleave.lower()}-interleaved, {'tiled' if self.tiled else 'striped'} "
                f"{self.block[0]} x {self.block[1]}, {self.compression or 'uncompressed'}")


def describe(ds) -> Layout:
    """The :class:`Layout` of an open GDAL dataset."""
    gdal = _gdal()
    drv = ds.GetDriver().ShortName if ds.GetDriver() is not None else ""
    img = ds.GetMetadata("IMAGE_STRUCTURE") or {}
    b1 = ds.GetRasterBand(1)
    bx, by = b1.GetBlockSize()
    n_files = 1
    interleave = (img.get("INTERLEAVE") or "BAND").upper()
    if drv == "VRT":
        files = set(ds.GetFileList() or [])
        files.discard(ds.GetDescription())
        n_files = max(1, len(files))
        interleave = "BAND" if n_files > 1 else interleave
    if ds.RasterCount == 1:
        interleave = "BAND"
    return Layout(drv, interleave, (int(bx), int(by)), int(bx) < ds.RasterXSize and drv != "VRT",
                  (img.get("COMPRESSION") or "").upper(), ds.RasterCount, ds.RasterXSize, ds.RasterYSize,
                  gdal.GetDataTypeSize(b1.DataType) // 8, n_files)


def ensure_cache(layout: Layout) -> None:
    """Raise GDAL's block cache (process-wide) to hold one row of blocks of all bands (at most
    :data:`CACHE_CAP_MB`); never lowers it. Row blocks read one after the other then decompress each
    block once, halo rows included."""
    gdal = _gdal()
    need = min(layout.cache_bytes(), CACHE_CAP_MB * 1024 * 1024)
    if gdal.GetCacheMax() < need:
        gdal.SetCacheMax(int(need))


def _scale_offset(band, to_mm: bool):
    from .units import band_unit, unit_to_mm

    scale, offset = band.GetScale(), band.GetOffset()
    f = unit_to_mm(band_unit(band)) if to_mm else None
    if f is not None and f != 1.0:
        scale = (1.0 if scale is None else scale) * f
        offset = (0.0 if offset is None else offset) * f
    return scale, offset


def _finish(arr: np.ndarray, raw: np.ndarray, band, to_mm: bool) -> None:
    """In place, as :func:`raster.read_band`: NaN where the stored value is nodata, then scale and offset."""
    nod = band.GetNoDataValue()
    if nod is not None and not np.isnan(nod):
        arr[raw == nod] = np.nan
    scale, offset = _scale_offset(band, to_mm)
    if scale is not None and scale != 1.0:
        arr *= np.float32(scale)
    if offset is not None and offset != 0.0:
        arr += np.float32(offset)


def read_window(ds, bands: Sequence[int], xoff: int, yoff: int, xsize: int, ysize: int, to_mm: bool = False,
                layout: Optional[Layout] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Bands ``bands`` (0-based) of a window as float32 ``(len(bands), ysize, xsize)``, NaN for nodata, scale,
    offset (and with ``to_mm`` the length unit) applied band by band as :func:`raster.read_band` does.

    Pixel-interleaved files are read with one ``ReadAsArray`` for all bands; band-interleaved ones band by band.
    """
    layout = layout or describe(ds)
    ensure_cache(layout)
    bands = [int(b) for b in bands]
    if out is None:
        out = np.empty((len(bands), int(ysize), int(xsize)), dtype=np.float32)
    if not bands:
        return out
    gbands = [ds.GetRasterBand(b + 1) for b in bands]
    xoff, yoff, xsize, ysize = int(xoff), int(yoff), int(xsize), int(ysize)
    if layout.all_bands_at_once and len(bands) > 1:
        gdal = _gdal()
        dtypes = {gb.DataType for gb in gbands}
        if dtypes == {gdal.GDT_Float32}:
            ds.ReadAsArray(xoff, yoff, xsize, ysize, buf_obj=out, band_list=[b + 1 for b in bands])
            raw = out
            for k, gb in enumerate(gbands):
                _finish(out[k], raw[k], gb, to_mm)
        else:
            raw = ds.ReadAsArray(xoff, yoff, xsize, ysize, band_list=[b + 1 for b in bands])
            for k, gb in enumerate(gbands):
                out[k] = raw[k]
                _finish(out[k], raw[k], gb, to_mm)
            del raw
        return out
    for k, gb in enumerate(gbands):
        if gb.DataType == _gdal().GDT_Float32:
            gb.ReadAsArray(xoff, yoff, xsize, ysize, buf_obj=out[k])
            _finish(out[k], out[k], gb, to_mm)
        else:
            raw = gb.ReadAsArray(xoff, yoff, xsize, ysize)
            out[k] = raw
            _finish(out[k], raw, gb, to_mm)
    return out


# --------------------------------------------------------------------------------------------------
# the open dataset of a stack, kept between row-block reads


def open_cached(path: str):
    """``(dataset, Layout)`` of ``path``, opened afresh. Nothing is kept open between calls, neither at
    module level nor on a :class:`raster.StackInfo`: QGIS tears GDAL down on exit, and a dataset still
    open then (a StackInfo alive in a cache or a test fixture) crashes the process."""
    ds = _gdal().Open(str(path))
    return ds, describe(ds)


# --------------------------------------------------------------------------------------------------
# one-time conversion into a fast layout


def cache_dir() -> str:
    """``DEFORMCAST_CACHE_DIR``, else ``$XDG_CACHE_HOME/deformcast/layout`` (``~/.cache/...``)."""
    d = os.environ.get("DEFORMCAST_CACHE_DIR", "").strip()
    if not d:
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "deformcast", "layout")
    return d


def _sources(path: str, ds) -> list:
    files = [path]
    if ds is not None and ds.GetDriver() is not None and ds.GetDriver().ShortName == "VRT":
        files = sorted(set(ds.GetFileList() or [path]))
    return files


def cache_key(path: str, ds=None) -> str:
    """Key of a converted copy: the absolute path, size and modification time of the file (and of every
    file behind a VRT)."""
    parts = []
    for f in _sources(os.path.abspath(path), ds):
        try:
            st = os.stat(f)
            parts.append(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{f}|?")
    return hashlib.sha1("\n".join(parts).encode("utf-8")).hexdigest()[:20]


def should_convert(layout: Layout, min_mb: Optional[float] = None) -> str:
    """The reason to convert (``''`` = read the file as it is): a slow layout and at least ``min_mb``
    (default :data:`CONVERT_MIN_MB`) MB uncompressed. ``DEFORMCAST_CONVERT=never`` / ``always`` override."""
    mode = os.environ.get("DEFORMCAST_CONVERT", "auto").strip().lower()
    if mode in ("never", "no", "off", "0"):
        return ""
    why = layout.slow_for_row_blocks()
    if not why:
        return ""
    if mode not in ("always", "yes", "on", "1"):
        lim = CONVERT_MIN_MB if min_mb is None else float(min_mb)
        if layout.mb < lim:
            return ""
    return why


def copy_swath_bytes(layout: Layout) -> int:
    """The rows GDAL copies at a time when converting (``GDAL_SWATH_SIZE``, bytes): one row of blocks of every band,
    at most :data:`CACHE_CAP_MB`. GDAL's own swath is a quarter of its block cache: with a 64 MB cache that is 26
    rows of a 1000-pixel-wide, 150-band stack, so each 256-row tile of a pixel-interleaved file was decompressed
    about ten times; converting the benchmark's tiled stack took 21.3 s instead of 2.8 s (session 28)."""
    bx, by = layout.block
    nx = -(-layout.width // max(1, bx))
    return int(min(nx * bx * by * layout.n_bands * layout.dtype_bytes, CACHE_CAP_MB << 20))


def decode_threads(layout: Layout) -> int:
    """Threads that decompress a compressed GeoTIFF's tiles while it is converted (GDAL's ``NUM_THREADS`` open option,
    GDAL 3.6 and later; earlier versions ignore it): the cores this process may use, at most 4, else 1. The local
    processes of ``predict`` only wait for the copy, so the conversion may take every core (session 29)."""
    from ..learn.runtime import usable_cores

    if layout.driver != "GTiff" or not layout.compression:
        return 1
    return max(1, min(4, usable_cores()))


class _swath:
    """``GDAL_SWATH_SIZE`` set for this thread while converting (never lowered), then as it was."""

    def __init__(self, gdal, size: int):
        self.gdal, self.size = gdal, int(size)
        self.set = getattr(gdal, "SetThreadLocalConfigOption", None) or gdal.SetConfigOption
        self.get = getattr(gdal, "GetThreadLocalConfigOption", None) or gdal.GetConfigOption

    def __enter__(self):
        self.old = self.get("GDAL_SWATH_SIZE", None)                 # this thread's own value, restored after
        now = self.gdal.GetConfigOption("GDAL_SWATH_SIZE", None)     # the one in effect (this thread's or global)
        try:
            self.changed = now is None or int(now) < self.size
        except ValueError:
            self.changed = True
        if self.changed:
            self.set("GDAL_SWATH_SIZE", str(self.size))
        return self

    def __exit__(self, *exc):
        if self.changed:
            self.set("GDAL_SWATH_SIZE", self.old)
        return False


def fast_copy(path: str, layout: Optional[Layout] = None, progress=None,
              log: Optional[Callable[[str], None]] = None) -> Optional[str]:
    """The cached band-interleaved striped copy of ``path`` when its layout is slow for row-block reads and it is
    large (:func:`should_convert`), converting it on first use; ``None`` to read the file as it is.

    The copy keeps every band's values, data type, nodata, scale, offset, unit and description, so reading it
    gives exactly what reading ``path`` gives. ``progress`` (:class:`progress.Progress`) sees the conversion and
    may cancel it; ``log`` receives one line saying what was done.
    """
    gdal = _gdal()
    ds = gdal.Open(str(path))
    layout = layout or describe(ds)
    why = should_convert(layout)
    if not why:
        return None
    folder = cache_dir()
    key = cache_key(str(path), ds)
    target = os.path.join(folder, f"{key}.tif")
    if os.path.exists(target):
        os.utime(target)            # most recently used: pruned last
        if log:
            log(f"Reading '{os.path.basename(str(path))}' ({why}) from its converted copy {target}.")
        return target
    os.makedirs(folder, exist_ok=True)
    _drop_stale(folder, os.path.abspath(str(path)))
    _prune(folder, keep_mb=CACHE_KEEP_MB - layout.mb)
    tmp = f"{target}.{os.getpid()}.part.tif"
    t0 = time.perf_counter()

    stop = []

    def cb(frac, *_):
        if progress is not None:
            try:
                progress.set(frac)     # raises Cancelled on cancel
            except BaseException as e:  # noqa: BLE001 - handed back to the caller after GDAL has stopped
                stop.append(e)
                return 0               # GDAL stops; the partial file is removed below
        return 1

    opts = ["INTERLEAVE=BAND", "TILED=NO", f"BLOCKYSIZE={STRIP_ROWS}", "BIGTIFF=IF_SAFER", "COMPRESS=NONE"]
    threads = decode_threads(layout)
    src = ds if threads < 2 else gdal.OpenEx(str(path), gdal.OF_RASTER, open_options=[f"NUM_THREADS={threads}"])
    try:
        try:
            with _swath(gdal, copy_swath_bytes(layout)):
                gdal.Translate(tmp, src, format="GTiff", creationOptions=opts, callback=cb)
        except RuntimeError:
            if stop:
                raise stop[0] from None
            raise
        if stop:
            raise stop[0]
        # gdal_translate keeps nodata, scale/offset, unit and descriptions; write the source's name down too
        out = gdal.Open(tmp, gdal.GA_Update)
        out.SetMetadataItem("DEFORMCAST_CONVERTED_FROM", os.path.abspath(str(path)))
        out = None
        os.replace(tmp, target)
    except BaseException:
        for p in (tmp, tmp + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)
        raise
    finally:
        src = ds = None
        if threads > 1:
            # GDAL's decoding threads keep the buffers of the tiles they decompressed in malloc arenas of their own,
            # which the kept heap (runtime.heap_reuse) would hold for the whole forecast (session 29: 0.24 GB)
            from ..learn.runtime import trim_heap

            trim_heap()
    with open(os.path.join(folder, f"{key}.json"), "w", encoding="utf-8") as fh:
        json.dump({"source": os.path.abspath(str(path)), "layout": layout.describe(), "reason": why}, fh)
    if log:
        log(f"'{os.path.basename(str(path))}' is {why}; reading it in row blocks is slow, so it was converted once "
            f"({layout.mb:.0f} MB, {time.perf_counter() - t0:.1f} s) into a band-interleaved striped copy {target} "
            "that later runs reuse (set DEFORMCAST_CONVERT=never to read the file as it is).")
    return target


def _drop_stale(folder: str, source: str) -> None:
    """Delete the copies made of ``source`` before it changed."""
    for f in os.listdir(folder):
        if not f.endswith(".json"):
            continue
        j = os.path.join(folder, f)
        try:
            with open(j, encoding="utf-8") as fh:
                src = json.load(fh).get("source")
        except (OSError, ValueError):
            continue
        if src == source:
            for q in (j[:-5] + ".tif", j):
                try:
                    os.remove(q)
                except OSError:
                    pass


def _prune(folder: str, keep_mb: float) -> None:
    """Delete the least recently used converted copies until those left take at most ``keep_mb`` MB."""
    try:
        items = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".tif") and ".part" not in f]
    except OSError:
        return
    items.sort(key=lambda p: os.stat(p).st_mtime, reverse=True)
    total = 0.0
    for p in items:
        total += os.path.getsize(p) / 1e6
        if total > max(0.0, keep_mb):
            for q in (p, p[:-4] + ".json"):
                try:
                    os.remove(q)
                except OSError:
                    pass
