"""GDAL raster I/O for displacement stacks and map outputs (QGIS-free).

Conventions (docs/interface.md): one band per acquisition, millimetres, band description
= ISO date; nodata (band nodata value or NaN) marks decorrelated pixels. In memory a stack is a
float32 array (T, H, W) with NaN for nodata.

Reading honours what GDAL says about the values: the band's **scale and offset** (an int16 stack
stored as mm x 10 with scale 0.1 reads as mm) wherever a raster is read (:func:`read_band`), and,
for displacement stacks, the band **unit** (``m``, ``cm``, ``mm`` and their spelled-out names) is
converted to mm. Nodata is compared with the stored (raw) values, as GDAL defines it.

Outputs are written to a temporary file beside the target and renamed when complete, so a
failed or cancelled run never leaves a file that looks finished. A QGIS style (``.qml``) is
written next to every raster output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import DeformCastError, warn
from .dates import check_dates, parse_date, parse_dates_param  # noqa: F401 - part of the raster API
from .units import LENGTH_UNITS, band_unit, unit_to_mm  # noqa: F401 - part of the raster API
from .units import SAMPLE_ROWS, magnitude_message, median_step

def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


@dataclass(frozen=True)
class Grid:
    """Georeferencing of a north-up raster."""

    geotransform: Tuple[float, float, float, float, float, float]
    crs_wkt: str
    width: int
    height: int

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.height, self.width)

    @property
    def cell_size(self) -> Tuple[float, float]:
        return (abs(self.geotransform[1]), abs(self.geotransform[5]))

    def pixel_centres(self, rows=None, cols=None) -> Tuple[np.ndarray, np.ndarray]:
        """Map coordinates (x, y) of pixel centres, each (H, W) (or of the given rows/cols)."""
        gt = self.geotransform
        r = np.arange(self.height) if rows is None else np.asarray(rows)
        c = np.arange(self.width) if cols is None else np.asarray(cols)
        cc, rr = np.meshgrid(c + 0.5, r + 0.5)
        x = gt[0] + cc * gt[1] + rr * gt[2]
        y = gt[3] + cc * gt[4] + rr * gt[5]
        return x, y

    def same_as(self, other: "Grid", tol: float = 1e-6) -> bool:
        return (self.width == other.width and self.height == other.height
                and np.allclose(self.geotransform, other.geotransform, atol=tol * max(1.0, abs(self.geotransform[1])))
                and crs_equal(self.crs_wkt, other.crs_wkt))


def crs_equal(a: str, b: str) -> bool:
    if not a or not b:
        return (a or "") == (b or "")
    from osgeo import osr

    sa, sb = osr.SpatialReference(), osr.SpatialReference()
    sa.ImportFromWkt(a)
    sb.ImportFromWkt(b)
    return bool(sa.IsSame(sb))


@dataclass
class StackInfo:
    """A displacement stack on disk: where, which grid, which dates."""

    path: str
    grid: Grid
    dates: np.ndarray  # datetime64[D], one per band
    nodata: Optional[float]
    #: the file pixels are read from: ``path`` itself, or its converted copy (:func:`layout.fast_copy`)
    read_path: Optional[str] = None
    #: what :func:`open_stack` did about the file's layout ('' when nothing): a line for the log
    layout_note: str = ""
    #: pixels that hold one value at every date (:mod:`fill`), read as no data; None when there is none
    fill: Optional[np.ndarray] = None
    #: what :mod:`fill` found ('' when nothing): a warning for the entrances that read the stack
    fill_note: str = ""
    #: fill values scattered over dates (:func:`fill.fill_values`), read as no data
    fill_values: Tuple[float, ...] = ()
    #: set when every pixel with data is constant (:func:`refuse_constant`): the refusal's message
    constant_note: str = ""
    #: (thread, file key, dataset, layout) kept open by :func:`read_stack` between row blocks

    @property
    def source(self) -> str:
        """The file to read pixels from."""
        return self.read_path or self.path

    @property
    def n_epochs(self) -> int:
        return int(self.dates.size)


def band_date(band, ds_meta: Optional[dict] = None, index: int = 0):
    """The acquisition date of a band: its description, its DATE metadata, the one date among other words of its
    description, or the date in the name of the one file a VRT band reads (:mod:`source_dates`); None when none
    holds one."""
    d = parse_date(band.GetDescription())
    if d is not None:
        return d
    md = band.GetMetadata() or {}
    for key in ("DATE", "date", "ACQUISITION_DATE", "acquisition_date", "TIME", "time"):
        if key in md:
            d = parse_date(md[key])
            if d is not None:
                return d
    from .source_dates import band_source_date, text_date

    # one date among other words of the description ("timeseries-20200105"), else a VRT of one file per date
    return text_date(band.GetDescription()) or band_source_date(band)


def read_band(band, xoff: int = 0, yoff: int = 0, xsize: Optional[int] = None, ysize: Optional[int] = None,
              to_mm: bool = False) -> np.ndarray:
    """One band (or a window of it) as float32 with NaN for nodata, **scale and offset applied**.

    Nodata is matched on the stored values (before scaling), as GDAL defines it. ``to_mm``: also
    convert a declared length unit (m, cm) to mm (displacement stacks).
    """
    xsize = band.XSize if xsize is None else int(xsize)
    ysize = band.YSize if ysize is None else int(ysize)
    raw = band.ReadAsArray(int(xoff), int(yoff), xsize, ysize)
    arr = raw.astype(np.float32, copy=False)   # float32 bands: the same array (it is ours)
    nod = band.GetNoDataValue()
    if nod is not None and not np.isnan(nod):
        arr[raw == nod] = np.nan   # the mask is taken on the stored values before any change
    scale, offset = band.GetScale(), band.GetOffset()
    f = unit_to_mm(band_unit(band)) if to_mm else None
    if f is not None and f != 1.0:
        scale = (1.0 if scale is None else scale) * f
        offset = (0.0 if offset is None else offset) * f
    if scale is not None and scale != 1.0:
        arr *= np.float32(scale)
    if offset is not None and offset != 0.0:
        arr += np.float32(offset)
    return arr


def declared_unit(path_or_ds) -> str:
    """The length unit the bands of a raster declare ("" when none)."""
    ds = _gdal().Open(str(path_or_ds)) if isinstance(path_or_ds, str) else path_or_ds
    units = {band_unit(ds.GetRasterBand(i + 1)) for i in range(ds.RasterCount)}
    units.discard("")
    return units.pop() if len(units) == 1 else (", ".join(sorted(units)) if units else "")


def grid_shape(path: str) -> Optional[Tuple[int, int]]:
    """(rows, cols) of a raster from its header, or None where GDAL cannot open it (:func:`open_stack` says why)."""
    gdal = _gdal()
    try:
        ds = gdal.Open(str(path)) if path and (os.path.exists(str(path)) or str(path).startswith("/vsi")) else None
    except RuntimeError:
        return None
    return None if ds is None else (int(ds.RasterYSize), int(ds.RasterXSize))


def open_stack(path: str, dates=None, convert: bool = True, progress=None) -> StackInfo:
    """Open a displacement stack and find one date per band.

    Dates come from ``dates`` (the DATES parameter) when given, else band descriptions, else
    band metadata (DATE / ACQUISITION_DATE), else a dataset metadata item ``DATES`` listing one
    date per band. A stack whose dates cannot be found is refused, saying how to give them.

    ``convert``: a large stack in a layout that is slow to read in row blocks (tiled, compressed and
    pixel-interleaved, or a VRT of many files) is converted once into a cached band-interleaved copy
    (:func:`layout.fast_copy`); ``StackInfo.read_path`` then names the copy and ``layout_note`` says so
    (a line for the caller's log). ``progress`` sees (and may cancel) that conversion and logs the note.
    """
    gdal = _gdal()
    if not path or not os.path.exists(str(path)) and not str(path).startswith("/vsi"):
        raise DeformCastError(f"The displacement stack '{path}' does not exist.")
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as e:
        raise DeformCastError(f"GDAL cannot open '{path}' as a raster: {e}") from None
    n = ds.RasterCount
    if n < 1:
        raise DeformCastError(f"'{path}' has no raster bands.")
    cplx = next((b for b in range(n) if gdal.DataTypeIsComplex(ds.GetRasterBand(b + 1).DataType)), None)
    if cplx is not None:   # reading them as real drops the imaginary part: a silently wrong stack
        raise DeformCastError(
            f"Band {cplx + 1} of '{os.path.basename(str(path))}' holds complex numbers (e.g. interferograms or "
            "wrapped phase), not displacement. Unwrap and convert the phase to displacement in mm first (e.g. MintPy "
            "or LiCSBAS, then import their time series), and give that stack.")
    grid = Grid(tuple(ds.GetGeoTransform()), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize)
    explicit = parse_dates_param(dates)
    if explicit is not None:
        if explicit.size != n:
            raise DeformCastError(
                f"DATES lists {explicit.size} dates but '{os.path.basename(str(path))}' has {n} "
                "bands. Give exactly one date per band, in band order.")
        found = explicit
    else:
        ds_meta = ds.GetMetadata() or {}
        found = [band_date(ds.GetRasterBand(i + 1), ds_meta, i) for i in range(n)]
        if any(d is None for d in found):
            listed = ds_meta.get("DATES") or ds_meta.get("dates")
            alt = parse_dates_param(listed) if listed else None
            if alt is not None and alt.size == n:
                found = list(alt)
            else:
                missing_band = next(i + 1 for i, d in enumerate(found) if d is None)
                raise DeformCastError(
                    f"Cannot find the acquisition date of band {missing_band} of "
                    f"'{os.path.basename(str(path))}'. Set each band's description to its date "
                    "(YYYY-MM-DD or YYYYMMDD, alone or as the one date among other words; for a VRT of one file "
                    "per date, a date in each file's name is enough), or give the DATES parameter: a text file with one "
                    "date per line, or a comma-separated list, in band order.")
        found = np.array(found, dtype="datetime64[D]")
    found = check_dates(found, f"'{os.path.basename(str(path))}'")
    nod = ds.GetRasterBand(1).GetNoDataValue()
    units = {band_unit(ds.GetRasterBand(i + 1)) for i in range(n)} - {""}
    odd = sorted(u for u in units if unit_to_mm(u) is None)
    if odd:
        warn(f"The bands of '{os.path.basename(str(path))}' declare the unit '{odd[0]}', which is not a length "
             "DeformCast knows (mm, cm, m): the values are read as millimetres. If they are not displacement in mm, "
             "convert the stack first (or set the band unit to mm, cm or m).")
    read_path, note = None, ""
    if convert:
        from . import layout

        notes = []
        read_path = layout.fast_copy(str(path), layout.describe(ds), progress=progress, log=notes.append)
        note = " ".join(notes)
        if note and progress is not None:
            progress.log(note)
    info = StackInfo(str(path), grid, found, nod, read_path, note)
    _find_fill(info)
    _warn_zero_nodata(info)
    return info


def _warn_zero_nodata(info) -> None:
    """Say so when a stack declares 0 as NoData and its first acquisition (0 mm, the reference) reads as empty."""
    if info.nodata is None or float(info.nodata) != 0.0 or np.isfinite(middle_strip(info, bands=[0])).any():
        return
    name = os.path.basename(str(info.path))
    warn(f"'{name}' declares 0 as its NoData value, but its first acquisition holds 0 mm (the reference date): "
         "that acquisition and every other value of exactly 0 mm are read as no data. If 0 does not mark missing "
         f"pixels, unset the NoData value (e.g. gdal_edit.py -unsetnodata '{name}') or set it to a value the data "
         "cannot take (e.g. -9999 or NaN where pixels are missing).")


def _find_fill(info: StackInfo) -> None:
    """Set ``info.fill``, ``info.fill_values`` and ``info.fill_note`` (:mod:`fill`), or ``info.constant_note``
    when every pixel is constant."""
    from . import fill

    sc = fill.scan(lambda rows, bands: read_stack(info, rows=rows, bands=bands), info.n_epochs, info.grid.height,
                   key=fill.file_key(info.source))
    f = fill.found(sc, os.path.basename(str(info.path)))
    info.fill, info.fill_values, info.fill_note, info.constant_note = f.mask, f.values, f.note, f.constant_note


def refuse_constant(info) -> None:
    """Refuse a stack whose every pixel holds one value at every date (:mod:`fill`): what learns from a stack
    or forecasts it calls this before any work."""
    if info.constant_note:
        raise DeformCastError(info.constant_note)


def magnitude_warning(info) -> str:
    """:func:`units.magnitude_message` of a stack (a :class:`StackInfo`): a strip of at most
    ``units.SAMPLE_ROWS`` rows at its middle is read ('' when its values look like displacement in mm)."""
    return magnitude_message(median_step(middle_strip(info)), os.path.basename(str(info.path)))


def middle_strip(info, bands=None) -> np.ndarray:
    """The stack's (or ``bands``') ``units.SAMPLE_ROWS`` rows at its middle: what the cheap checks of a stack read."""
    H = int(info.grid.height)
    r0 = max(0, H // 2 - SAMPLE_ROWS // 2)
    return read_stack(info, rows=(r0, min(H, r0 + SAMPLE_ROWS)), bands=bands)


def empty_bands_at(info, end: Optional[int] = None, limit: int = 50) -> int:
    """How many consecutive bands ending at ``end`` (default the last) hold no value at any pixel (at most
    ``limit`` are read, one band at a time)."""
    e = int(info.n_epochs) - 1 if end is None else int(end)
    n = 0
    while n < limit and e - n >= 0 and not np.isfinite(read_stack(info, bands=[e - n])).any():
        n += 1
    return n


def empty_origin(info, end: Optional[int] = None) -> str:
    """:func:`empty_origin_message` for the empty bands up to ``end`` (default the last) ('' when there is none)."""
    return empty_origin_message(info, empty_bands_at(info, end), end)


def empty_origin_message(info, n: int, end: Optional[int] = None) -> str:
    """The message for ``n`` empty bands up to the forecast origin ``end`` ('' when ``n`` is 0)."""
    if n <= 0:
        return ""
    e = int(info.n_epochs) - 1 if end is None else int(end)
    which = (f"its acquisition of {iso(info.dates[e])}" if n == 1 else
             f"its {n} acquisitions from {iso(info.dates[e - n + 1])} to {iso(info.dates[e])}")
    return (f"'{os.path.basename(str(info.path))}' holds no value at any pixel in {which}, and a forecast starts "
            f"from that acquisition. Remove the empty band(s) from the stack (e.g. gdal_translate with -b for the "
            f"bands to keep), or forecast from the last acquisition with data (predict END_DATE="
            f"{iso(info.dates[e - n]) if e - n >= 0 else '...'}).")


def warn_magnitude(info) -> str:
    """:func:`magnitude_warning` given to the user as a warning (:func:`errors.warn`), and the pixels read as no
    data because they hold one value at every date (``info.fill_note``); returns the magnitude warning."""
    msg = magnitude_warning(info)
    for m in (msg, info.fill_note):
        if m:
            warn(m)
    return msg


def warn_training_stack(info) -> None:
    """What ``tune`` and ``train`` say about a stack before they start (a stack of constant pixels is refused,
    :func:`refuse_constant`): values that do not look like mm
    (:func:`warn_magnitude`) and empty last acquisitions (:func:`empty_origin_message`: models can be trained,
    but no forecast can start from there)."""
    refuse_constant(info)
    warn_magnitude(info)
    empty = empty_origin(info)
    if empty:
        warn(empty)


#: fewer pixels with data than this in a training stack are warned about
MIN_TRAINING_PIXELS = 10


def few_pixels_message(n_valid: int) -> str:
    """The warning for a training stack with fewer than :data:`MIN_TRAINING_PIXELS` pixels with
    data ('' when it has enough): ``tune`` (and ``train``) say it before they start."""
    if n_valid >= MIN_TRAINING_PIXELS:
        return ""
    return (f"The stack has only {n_valid} pixel(s) with data: the models learn from so few series that their "
            "validation and test scores say little, and a model trained on them is unlikely to hold elsewhere. Use "
            "a stack with more pixels (e.g. a larger area, or a smaller CELL_SIZE on import).")


def read_stack(info, rows: Optional[Tuple[int, int]] = None, bands: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a stack (or rows ``r0:r1`` of it) as float32 (T, h, W) mm, nodata as NaN (band scale,
    offset and length unit applied, see :func:`read_band`).

    The read follows the file's layout (:func:`layout.read_window`): all bands in one call where a block
    holds all bands (pixel interleave), band by band otherwise, with a GDAL block cache that holds a row
    of blocks of all bands. The file is opened for each call and closed after it: a dataset kept open on
    a long-lived ``StackInfo`` crashed the process when QGIS tore GDAL down at exit (a large unfriendly
    file is read from its converted copy instead, where reopening costs nothing). A converted copy
    (``info.read_path``) is read when there is one."""
    from . import layout

    if isinstance(info, str):
        info = open_stack(info)
    path = info.source if isinstance(info, StackInfo) else info.path
    ds, lay = layout.open_cached(path)
    r0, r1 = (0, info.grid.height) if rows is None else (int(rows[0]), int(rows[1]))
    idx = range(ds.RasterCount) if bands is None else bands
    out = layout.read_window(ds, idx, 0, r0, info.grid.width, r1 - r0, to_mm=True, layout=lay)
    mask, values = getattr(info, "fill", None), getattr(info, "fill_values", ())
    if mask is not None or values:
        from .fill import blank

        blank(out, None if mask is None else mask[r0:r1], values)
    return out


def open_raster(path: str, what: str = "The raster"):
    """``(gdal.Dataset, Grid)`` of an existing raster, or DeformCastError naming ``what``."""
    gdal = _gdal()
    if not path or not os.path.exists(str(path)):
        raise DeformCastError(f"{what} '{path}' does not exist.")
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as e:
        raise DeformCastError(f"GDAL cannot open {what} '{path}' as a raster: {e}") from None
    return ds, Grid(tuple(ds.GetGeoTransform()), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize)


def read_raster(path: str) -> Tuple[np.ndarray, Grid, List[str]]:
    """Any raster -> (float32 (B, H, W) with NaN nodata, scale/offset applied, grid, band descriptions)."""
    gdal = _gdal()
    if not path or not os.path.exists(str(path)):
        raise DeformCastError(f"The raster '{path}' does not exist.")
    ds = gdal.Open(str(path))
    grid = Grid(tuple(ds.GetGeoTransform()), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize)
    out = np.empty((ds.RasterCount, grid.height, grid.width), dtype=np.float32)
    names = []
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        out[i] = read_band(band)
        names.append(band.GetDescription())
    return out, grid, names


def row_blocks(height: int, block_rows: int) -> Iterator[Tuple[int, int]]:
    for r0 in range(0, height, max(1, int(block_rows))):
        yield r0, min(height, r0 + block_rows)


#: the last round of :func:`balanced_row_blocks` is not cut into blocks of fewer rows than this
MIN_BALANCED_ROWS = 8


def balanced_row_blocks(height: int, block_rows: int, workers: int) -> List[Tuple[int, int]]:
    """:func:`row_blocks`, but the rows of the last round (the blocks that ``workers`` processes, taking the blocks
    in order, start together at the end) shared evenly among the processes: 1000 rows in blocks of 64 on two
    processes end in two blocks of 52 rows instead of 64 and 40, so neither process waits for the other at the end
    (session 29: one core sat idle for 5 s of a 2-minute ``predict``). The last round is not cut into blocks of fewer
    than :data:`MIN_BALANCED_ROWS` rows nor of more than ``block_rows``; the rounds before are untouched (their starts
    stay on the output's tiles). ``workers`` below 2: the plain :func:`row_blocks`."""
    blocks = list(row_blocks(height, block_rows))
    n, k, most = int(workers), len(blocks), max(1, int(block_rows))
    if n < 2 or k < 2:
        return blocks
    first = ((k - 1) // n) * n                  # the first block of the last round
    r0 = blocks[first][0]
    rows = int(height) - r0
    m = max(1, min(n, rows // MIN_BALANCED_ROWS), -(-rows // most))     # none under 8 rows nor over block_rows
    cuts = [r0 + (rows * i) // m for i in range(m + 1)]
    return blocks[:first] + list(zip(cuts[:-1], cuts[1:]))


def iso(d) -> str:
    return str(np.datetime64(d, "D"))


#: threads that compress the tiles of a written GeoTIFF (GDAL's ``NUM_THREADS``; compression is the slow part)
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))


def write_compression() -> List[str]:
    """GeoTIFF creation options of the compression of every raster DeformCast writes: ZSTD at level 1 where GDAL
    offers it, else DEFLATE; ``DEFORMCAST_COMPRESS`` names another (``DEFLATE`` for software older than GDAL 2.3, which
    cannot read ZSTD; ``NONE``). Forecasts of noisy float32 values hardly compress (members of 1 000 x 128 pixels x
    300 bands: 154 MB raw, 141 MB either way), while nodata areas (gridded points) do: ZSTD 1 compressed them in 0.34 s
    of CPU against 1.60 s for DEFLATE, time the calling process took from the forecast's processes on two cores
    (session 27, docs/benchmarks.md)."""
    want = os.environ.get("DEFORMCAST_COMPRESS", "").strip().upper()
    gdal = _gdal()
    offered = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    if want and want != "ZSTD":
        return [f"COMPRESS={want}"]
    if "ZSTD" in offered:
        return ["COMPRESS=ZSTD", "ZSTD_LEVEL=1"]
    return ["COMPRESS=DEFLATE"]


def tile_rows(write_rows: int) -> int:
    """The tile height of a GeoTIFF written in blocks of ``write_rows`` rows: the largest of 256, 128, 64,
    32 and 16 that divides it (16 when none does), so a block fills whole tiles. A 256-row tile written by
    64-row blocks stayed half-filled in GDAL's cache across blocks (every band of the members raster: 300
    MB at 1000 columns) or, with a smaller cache, was compressed, flushed, read back and compressed again:
    a 500 x 500 x 300-band members raster took 9.3 s and 421 MB instead of 4.2 s and 278 MB with 16-row tiles
    (GDAL cache 64 MB)."""
    for h in (256, 128, 64, 32):
        if write_rows % h == 0:
            return h
    return 16


class RasterWriter:
    """Block-wise GeoTIFF writer: write to ``<path>.part.tif``, rename on :meth:`close`.

    Use as a context manager; on an exception the partial file is deleted. ``write_rows``: the rows of
    each :meth:`write` call where the raster is written in blocks; the tiles are cut to fit them
    (:func:`tile_rows`).
    """

    def __init__(self, path: str, grid: Grid, n_bands: int, band_names: Optional[Sequence[str]] = None,
                 dtype: str = "float32", nodata: Optional[float] = None, qml: Optional[str] = None,
                 metadata: Optional[dict] = None, write_rows: Optional[int] = None):
        gdal = _gdal()
        self.path = str(path)
        self.qml = qml
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        self.tmp = self.path + ".part.tif"
        gdt = {"float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64, "uint8": gdal.GDT_Byte,
               "int16": gdal.GDT_Int16, "int32": gdal.GDT_Int32, "uint16": gdal.GDT_UInt16}[dtype]
        opts = write_compression() + ["TILED=YES", "BIGTIFF=IF_SAFER", f"NUM_THREADS={WRITE_THREADS}"]
        if n_bands > 1:
            opts.append("INTERLEAVE=BAND")
        if write_rows and 0 < int(write_rows) < grid.height:
            opts.append(f"BLOCKYSIZE={tile_rows(int(write_rows))}")
        drv = gdal.GetDriverByName("GTiff")
        self.ds = drv.Create(self.tmp, grid.width, grid.height, n_bands, gdt, opts)
        self.ds.SetGeoTransform(grid.geotransform)
        if grid.crs_wkt:
            self.ds.SetProjection(grid.crs_wkt)
        if nodata is None and dtype.startswith("float"):
            nodata = float("nan")
        self.nodata = nodata
        for i in range(n_bands):
            b = self.ds.GetRasterBand(i + 1)
            if nodata is not None:
                b.SetNoDataValue(float(nodata))
            if band_names is not None:
                b.SetDescription(str(band_names[i]))
        if metadata:
            self.ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        self.dtype = dtype

    def write(self, array: np.ndarray, row0: int = 0) -> None:
        """Write (B, h, W) or (h, W) starting at row ``row0``. NaN becomes nodata for ints."""
        a = np.asarray(array)
        if a.ndim == 2:
            a = a[None]
        for i in range(a.shape[0]):
            block = a[i]
            if not self.dtype.startswith("float") and self.nodata is not None:
                block = np.where(np.isfinite(block), block, self.nodata)
            self.ds.GetRasterBand(i + 1).WriteArray(block.astype(self.dtype, copy=False), 0, int(row0))

    def close(self) -> str:
        self.ds.FlushCache()
        self.ds = None
        for ext in (".aux.xml",):
            if os.path.exists(self.tmp + ext):
                os.remove(self.tmp + ext)
        os.replace(self.tmp, self.path)
        if self.qml is not None:
            write_qml(self.path, self.qml)
        return self.path

    def abort(self) -> None:
        self.ds = None
        for p in (self.tmp, self.tmp + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_raster(path: str, array: np.ndarray, grid: Grid, band_names: Optional[Sequence[str]] = None,
                 dtype: str = "float32", nodata: Optional[float] = None, qml: Optional[str] = None,
                 metadata: Optional[dict] = None) -> str:
    """Write a whole (B, H, W) or (H, W) array as a GeoTIFF with its ``.qml`` style."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[None]
    if a.shape[1:] != grid.shape:
        raise ValueError(f"array shape {a.shape[1:]} does not match grid {grid.shape}")
    with RasterWriter(path, grid, a.shape[0], band_names, dtype, nodata, qml, metadata) as w:
        w.write(a, 0)
    return path


def write_stack(path: str, values: np.ndarray, dates: Sequence, grid: Grid, qml: Optional[str] = None,
                metadata: Optional[dict] = None) -> str:
    """A displacement stack per the contract: float32 mm, NaN nodata, band description = ISO date."""
    names = [iso(d) for d in dates]
    if qml is None:
        from .styles import stack_style

        qml = stack_style(values)
    return write_raster(path, values, grid, names, "float32", float("nan"), qml, metadata)


def write_qml(raster_path: str, qml: str) -> str:
    """Write ``qml`` as the style sidecar QGIS loads with the file (:func:`styles.sidecar_path`)."""
    from .styles import sidecar_path

    p = sidecar_path(raster_path)
    with open(p, "w", encoding="utf-8") as fh:
        fh.write(qml)
    return p


def make_grid(x0: float, y0: float, cell: float, width: int, height: int, epsg: int = 25832) -> Grid:
    """North-up grid with its top-left corner at (x0, y0)."""
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(int(epsg))
    return Grid((float(x0), float(cell), 0.0, float(y0), 0.0, -float(cell)), srs.ExportToWkt(), int(width), int(height))
