"""``import_timeseries``: any supported input -> the contract displacement stack GeoTIFF (QGIS-free).

Point inputs (EGMS CSV :mod:`.egms`, point layers :mod:`.points`) are gridded (:mod:`.gridding`);
gridded inputs (MintPy/LiCSBAS :mod:`.hdf5`, raster stacks through
:func:`algorithms.io.raster.open_stack`) are copied block by block, optionally regularised in time
(:mod:`algorithms.data.series`) and reprojected/resampled.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Tuple

import numpy as np

from ..errors import DeformCastError, warn
from .raster import (Grid, RasterWriter, _gdal, check_dates, declared_unit, iso, open_stack,
    parse_dates_param, read_stack, row_blocks, unit_to_mm, write_stack)
from .styles import deformation_style, sidecar_path
from .crs import crs_wkt_of, srs_from
from .egms import read_egms_csv
from .formats import detect_format
from .gridding import grid_points
from .hdf5 import read_licsbas_h5, read_mintpy_h5
from .points import read_point_layer, split_source, unit_factor


def all_nodata_error(what: str) -> DeformCastError:
    return DeformCastError(
        f"{what} holds no valid displacement value (every value is nodata/NaN). Check that the "
        "right file or layer was given and that its nodata value is not set to a real value.")


def _regularise_opts(regularise, dates):
    """``regularise``: False/None, True (median step) or a step in days."""
    from ..data.series import median_step_days, regular_dates

    if not regularise:
        return None
    step = median_step_days(dates) if regularise is True else int(regularise)
    return step, regular_dates(dates, step)


def _cadence_note(dates, reg, progress) -> None:
    """Log what a change of cadence within the record (6 -> 12 days) means for this import."""
    from ..data.features import cadence_warning, log_cadence_warning, recent_step_days

    if reg is None:
        log_cadence_warning(dates, progress)
        return
    recent = recent_step_days(dates)
    if progress is not None and reg[0] != recent and cadence_warning(dates):
        progress.log(f"Note: regularised at {reg[0]} days, but the last acquisitions are {recent} days apart: the "
                     f"recent record now holds interpolated epochs between acquired ones, and forecasts will step "
                     f"{reg[0]} days. STEP_DAYS={recent} keeps the recent acquisitions as they are and puts the earlier "
                     "record on that step too.")


def _write_gridded(output_path: str, grid: Grid, dates: np.ndarray, read_block: Callable[[int, int], np.ndarray],
                   progress, what: str, regularise=None, max_gap_days=None, block_rows: Optional[int] = None,
                   metadata: Optional[dict] = None, rereference: bool = False) -> Tuple[np.ndarray, float]:
    """Block-wise: read rows, optionally regularise, write the contract stack. Refuses all-nodata."""
    from ..data.series import regularise as _reg
    from ..data.series import rereference as _reref

    reg = _regularise_opts(regularise, dates)
    out_dates = dates if reg is None else reg[1]
    _cadence_note(dates, reg, progress)
    T = dates.size
    if block_rows is None:
        block_rows = max(1, int(32e6 // max(1, T * grid.width * 4)))
    last = np.full(grid.shape, np.nan, np.float32)
    n_valid = 0
    with RasterWriter(output_path, grid, out_dates.size, [iso(d) for d in out_dates], "float32",
                      float("nan"), None, metadata) as w:
        for r0, r1 in row_blocks(grid.height, block_rows):
            block = read_block(r0, r1)
            if reg is not None:
                block, _ = _reg(block, dates, step_days=reg[0], max_gap_days=max_gap_days)
            if rereference:
                block = _reref(block, 0)
            n_valid += int(np.count_nonzero(np.isfinite(block)))
            last[r0:r1] = block[-1]
            w.write(block, r0)
            progress.set(r1 / grid.height)
        if n_valid == 0:
            raise all_nodata_error(what)
        w.qml = deformation_style(last, band=int(out_dates.size))
    return out_dates, n_valid / float(out_dates.size * grid.width * grid.height)


def _warp_file(src_path: str, output_path: str, target_crs, cell_size, dates, progress, metadata=None):
    """Reproject/resample a written stack onto ``target_crs``/``cell_size`` (bilinear)."""
    gdal = _gdal()
    kw = dict(format="MEM", resampleAlg="bilinear", srcNodata=float("nan"), dstNodata=float("nan"),
              outputType=gdal.GDT_Float32)
    if target_crs:
        kw["dstSRS"] = crs_wkt_of(target_crs)
    if cell_size and float(cell_size) > 0:
        kw["xRes"] = kw["yRes"] = float(cell_size)
        kw["targetAlignedPixels"] = True
    w = gdal.Warp("", src_path, **kw)
    grid = Grid(tuple(w.GetGeoTransform()), w.GetProjection(), w.RasterXSize, w.RasterYSize)
    arr = w.ReadAsArray().astype(np.float32).reshape(-1, grid.height, grid.width)
    w = None
    if not np.any(np.isfinite(arr)):
        raise all_nodata_error("The reprojected stack")
    write_stack(output_path, arr, dates, grid, metadata=metadata)
    progress.set(1.0)
    return grid, float(np.mean(np.isfinite(arr)))


def import_timeseries(input_path: str, output_path: str, cell_size: Optional[float] = None, units: str = "mm",
                      target_crs=None, dates=None, layer=None, regularise=False, max_gap_days=None,
                      progress=None, chunk_rows: int = 2000, rereference: bool = False) -> dict:
    """Any supported InSAR product -> a contract displacement stack GeoTIFF (mm, ISO dates, NaN).

    ``cell_size`` is required for point inputs (CSV, point layers) and optional for gridded ones
    (then they are resampled to it). ``units`` applies to point fields and raster stacks; HDF5
    products carry their own (MintPy metres, LiCSBAS mm). ``target_crs`` reprojects (points exactly,
    grids bilinearly). ``dates`` (the DATES parameter) gives the dates of a raster stack.
    ``regularise``: False, True (median step) or a step in days (see :mod:`algorithms.data.series`).
    ``rereference``: refer every pixel to its first (regularised) epoch, which becomes 0 mm.
    Returns a summary dict (output, format, dates, grid size, CRS, valid fraction ...).
    """
    from ..progress import Progress

    progress = progress or Progress()
    output_path = str(output_path)
    fmt = detect_format(str(input_path))
    summary = {"input": str(input_path), "format": fmt}
    meta = {"DEFORMCAST_SOURCE": os.path.basename(split_source(str(input_path))[0]),
            "DEFORMCAST_SOURCE_FORMAT": fmt, "UNITS": "mm"}
    if fmt in ("csv", "vector"):
        if fmt == "csv":
            src = read_egms_csv(input_path, chunk_rows=chunk_rows, units=units)
        else:
            src = read_point_layer(input_path, units=units, layer=layer, chunk_rows=chunk_rows)
        summary["format"] = src.kind
        meta["DEFORMCAST_SOURCE_FORMAT"] = src.kind
        if dates is not None and str(dates).strip():
            progress.log("DATES is ignored for point data: the dates come from the field names.")
        if src.undated:
            warn(src.undated_message())
        stack, grid = grid_points(src, cell_size, target_crs, progress.sub(0.0, 0.8))
        summary["n_points"] = int(src.n_points)
        summary["n_skipped"] = int(src.n_skipped)
        summary["undated_columns"] = list(src.undated)
        if src.n_skipped:
            warn(src.skipped_message())
        progress.log(f"{src.n_points} points with coordinates" + (
            f", {src.n_skipped} skipped" if src.n_skipped else "") + (
            "; decimal commas read as decimal points" if getattr(src, "decimal_comma", False) else "") + ".")
        out_dates, frac = _write_gridded(output_path, grid, src.dates, lambda a, b: stack[:, a:b],
                                         progress.sub(0.8, 1.0), f"'{os.path.basename(src.path)}'",
                                         regularise, max_gap_days, metadata=meta, rereference=rereference)
    else:
        if fmt == "raster":
            info = open_stack(str(input_path), dates)
            f = unit_factor(units)
            declared = declared_unit(info.path)
            if declared and unit_to_mm(declared) is not None:
                # read_stack converts a declared length unit to mm: UNITS must not scale again
                if unit_to_mm(declared) != f and f != 1.0:
                    warn(f"The bands of '{os.path.basename(str(input_path))}' declare their unit ({declared}); it "
                         f"is used, and UNITS={units} is not applied. Set the band unit right (or remove it) if "
                         "the file is wrong.")
                else:
                    progress.log(f"The bands declare their unit ({declared}): converted to mm.")
                f = 1.0
            grid, src_dates = info.grid, info.dates

            def read_block(a, b, info=info, f=f):
                blk = read_stack(info, (a, b))
                if f != 1.0:
                    blk *= np.float32(f)
                return blk
        else:
            gs = read_mintpy_h5(str(input_path)) if fmt == "mintpy" else read_licsbas_h5(str(input_path))
            grid, src_dates = gs.grid, gs.dates
            explicit = parse_dates_param(dates)
            if explicit is not None:
                if explicit.size != src_dates.size:
                    raise DeformCastError(f"DATES lists {explicit.size} dates but the file has {src_dates.size} "
                                          "epochs. Give one date per epoch, or leave DATES empty.")
                src_dates = check_dates(explicit, "DATES")
            read_block = gs.read
        what = f"'{os.path.basename(str(input_path))}'"
        warp = bool(target_crs) or (cell_size is not None and float(cell_size) > 0)
        if warp:
            tmp = output_path + ".src.tif"
            try:
                out_dates, _ = _write_gridded(tmp, grid, src_dates, read_block, progress.sub(0.0, 0.6), what,
                                              regularise, max_gap_days, metadata=meta, rereference=rereference)
                grid, frac = _warp_file(tmp, output_path, target_crs, cell_size, out_dates,
                                        progress.sub(0.6, 1.0), meta)
            finally:
                for q in (tmp, sidecar_path(tmp)):
                    if os.path.exists(q):
                        os.remove(q)
        else:
            out_dates, frac = _write_gridded(output_path, grid, src_dates, read_block, progress, what,
                                             regularise, max_gap_days, metadata=meta, rereference=rereference)
    srs = srs_from(grid.crs_wkt) if grid.crs_wkt else None
    summary.update({
        "output": output_path,
        "dates": [iso(d) for d in out_dates],
        "n_epochs": int(out_dates.size),
        "width": grid.width, "height": grid.height,
        "geotransform": list(grid.geotransform),
        "crs": (srs.GetAuthorityName(None) + ":" + srs.GetAuthorityCode(None))
        if srs is not None and srs.GetAuthorityCode(None) else (grid.crs_wkt[:60] if grid.crs_wkt else ""),
        "valid_fraction": float(frac),
    })
    progress.log(f"Imported {summary['format']}: {grid.width} x {grid.height} cells, {out_dates.size} epochs "
                 f"({summary['dates'][0]} .. {summary['dates'][-1]}), {100 * frac:.1f}% valid.")
    from .raster import magnitude_warning

    looks = magnitude_warning(open_stack(output_path, convert=False))
    if looks and summary.get("format") in ("csv", "egms_l2", "egms_l3", "vector"):   # point values: UNITS says it
        looks += f" On import, UNITS (here '{units}') says what the point values are in: give UNITS=m (or cm)."
    if looks:
        warn(looks)
        summary["units_warning"] = looks
    return summary
