"""EGMS CSV files (European Ground Motion Service) as streamed point sources (QGIS-free).

L2a / L2b (``pid, mp_type, latitude, longitude, easting, northing, height, ..., mean_velocity, ...,
20160110, 20160122, ...``) and L3 Ortho (``pid, easting, northing, height, rmse, mean_velocity, ...,
dates``). Date columns are recognised by their name: ``YYYYMMDD``, ``DYYYYMMDD``, ``D_YYYYMMDD``
(or ``YYYY-MM-DD``). ``easting/northing`` are EPSG:3035 (ETRS89-LAEA) in every EGMS level and are
preferred; a file with only ``latitude/longitude`` is read as EPSG:4326. Values are mm. A ``.zip``
holding one CSV (as EGMS downloads come) is read without unpacking. Files are **streamed**: read
line by line in chunks of ``chunk_rows`` rows (default 2000), never whole, so files of hundreds of
MB work; memory is set by the output grid, not by the number of points. ``;``-separated files with
decimal commas (European locales) are read too.
"""
from __future__ import annotations

import csv
import math
import operator
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..errors import DeformCastError
from .crs import crs_wkt_of
from .points import PointSource, date_columns, ordered_dates, undated_columns, unit_factor

EGMS_EPSG = 3035
_NA_STRINGS = {"", "na", "nan", "null", "none", "-", "n/a"}
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")


class _CountingLines:
    """Iterate decoded lines of a binary stream, counting bytes for progress."""

    def __init__(self, fh):
        self.fh = fh
        self.nbytes = 0
        self.first = True

    def __iter__(self):
        for raw in self.fh:
            self.nbytes += len(raw)
            line = raw.decode("utf-8-sig" if self.first else "utf-8", errors="replace")
            self.first = False
            yield line


@dataclass
class CsvPointSource(PointSource):
    ix: int = -1
    iy: int = -1
    date_idx: List[int] = field(default_factory=list)
    delimiter: str = ","
    chunk_rows: int = 2000
    member: Optional[str] = None
    size: int = 0
    #: numbers are written with a decimal comma (';'-separated CSV from a European locale)
    decimal_comma: bool = False

    row_word = "row(s)"
    column_word = "column(s)"

    def _open(self):
        if self.member is not None:
            zf = zipfile.ZipFile(self.path)
            return zf, zf.open(self.member, "r")
        fh = open(self.path, "rb")
        return None, fh

    def chunks(self, with_values=True, progress=None, with_ids=False):
        T = len(self.date_idx)
        low = [c.lower() for c in self.columns]
        ipid = next((low.index(k) for k in ("pid", "id") if k in low), None)
        ids: List[str] = []
        get_vals = (operator.itemgetter(*self.date_idx) if T > 1 else
                    (lambda r, i=self.date_idx[0]: (r[i],)) if T else (lambda r: ()))
        ix, iy = self.ix, self.iy
        ncol = len(self.columns)
        zf, fh = self._open()
        try:
            lines = _CountingLines(fh)
            reader = csv.reader(iter(lines), delimiter=self.delimiter)
            next(reader, None)  # header
            xy = np.empty((self.chunk_rows, 2), np.float64)
            vals = np.empty((self.chunk_rows, T), np.float32) if with_values else None
            n = 0
            skipped = 0
            first = ""
            dc = self.decimal_comma
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != ncol:
                    raise DeformCastError(
                        f"Line {lineno} of '{os.path.basename(self.path)}' has {len(row)} columns, the "
                        f"header has {ncol}. The file is damaged or not one CSV table; re-export it.")
                if dc:
                    row = [f.replace(",", ".") for f in row]
                try:
                    x, y = float(row[ix]), float(row[iy])
                    if not (math.isfinite(x) and math.isfinite(y)):
                        raise ValueError
                    xy[n, 0], xy[n, 1] = x, y
                except ValueError:
                    skipped += 1
                    if not first:
                        first = (f"line {lineno}, {self.columns[ix]} = '{row[ix]}', "
                                 f"{self.columns[iy]} = '{row[iy]}'")
                    continue
                if with_ids:
                    ids.append(row[ipid] if ipid is not None else str(lineno - 1))
                if with_values:
                    fields = get_vals(row)
                    try:
                        vals[n] = np.array(fields, dtype=np.float64)
                    except ValueError:
                        vals[n] = [_to_float(s) for s in fields]
                n += 1
                if n == self.chunk_rows:
                    yield self._emit(xy, vals, n, ids if with_ids else None)
                    n, ids = 0, []
                    if progress is not None and self.size:
                        progress.set(min(1.0, lines.nbytes / self.size))
            if n:
                yield self._emit(xy, vals, n, ids if with_ids else None)
            self.n_skipped = skipped
            self.first_skipped = first
            if progress is not None:
                progress.set(1.0)
        finally:
            fh.close()
            if zf is not None:
                zf.close()


#: column names read as the longitude beside a "lat" column (EPSG:4326)
LON_ALIASES = ("lon", "long", "lng")


def _to_float(s: str) -> float:
    t = s.strip()
    if t.lower() in _NA_STRINGS:
        return float("nan")
    try:
        return float(t)
    except ValueError:
        raise DeformCastError(f"'{s}' in a date column is not a number. Date columns must hold "
                              "displacement values (empty for no value).") from None


def _csv_member(path: str) -> Tuple[Optional[str], int]:
    if not path.lower().endswith(".zip"):
        return None, os.path.getsize(path)
    with zipfile.ZipFile(path) as zf:
        members = [i for i in zf.infolist() if i.filename.lower().endswith(".csv")]
        if len(members) != 1:
            raise DeformCastError(
                f"'{os.path.basename(path)}' holds {len(members)} CSV files; DeformCast reads a zip "
                "with exactly one CSV (as EGMS downloads come). Unpack it and give the CSV itself.")
        return members[0].filename, members[0].file_size


def read_egms_csv(path: str, progress=None, chunk_rows: int = 2000, units: str = "mm",
                  need_dates: bool = True) -> CsvPointSource:
    """Open an EGMS L2a/L2b/L3 CSV (or a zip holding one) for streaming.

    Reads only the header here; the rows are read chunk by chunk by ``.chunks()`` (and by
    :func:`grid_points`). Coordinates: ``easting/northing`` (EPSG:3035) when present, else
    ``longitude/latitude`` (EPSG:4326). Values in ``units`` (EGMS: mm) are converted to mm.
    ``need_dates=False``: a file of points only (ids and coordinates, no date columns) is read too.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DeformCastError(f"The file '{path}' does not exist.")
    member, size = _csv_member(path)

    def first_lines(fh, n=21):
        out = []
        for _ in range(n):
            ln = fh.readline()
            if not ln:
                break
            out.append(ln.decode("utf-8-sig" if not out else "utf-8", errors="replace"))
        return out

    if member is not None:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            lines = first_lines(fh)
    else:
        with open(path, "rb") as fh:
            lines = first_lines(fh)
    head = lines[0] if lines else ""
    delim = ","
    if head.count(";") > head.count(","):
        delim = ";"
    elif head.count("\t") > head.count(","):
        delim = "\t"
    names = next(csv.reader([head], delimiter=delim), [])
    names = [n.strip().strip('"') for n in names]
    low = [n.lower() for n in names]
    sample = [r for r in csv.reader(lines[1:], delimiter=delim) if r]
    # ';'-separated files from European locales write decimal commas ("4321000,5")
    decimal_comma = delim != "," and any(_DECIMAL_COMMA.match(f.strip()) for r in sample for f in r)
    dcols = date_columns(names)
    cols, dates = ordered_dates(dcols, f"'{os.path.basename(path)}'", required=need_dates)
    undated = undated_columns(names, [c[0] for c in dcols], sample, decimal_comma)
    lon = next((a for a in LON_ALIASES if a in low), None)
    if "easting" in low and "northing" in low:
        ix, iy, crs = low.index("easting"), low.index("northing"), crs_wkt_of(EGMS_EPSG)
    elif "longitude" in low and "latitude" in low:
        ix, iy, crs = low.index("longitude"), low.index("latitude"), crs_wkt_of(4326)
    elif "lat" in low and lon is not None:
        ix, iy, crs = low.index(lon), low.index("lat"), crs_wkt_of(4326)
    else:
        raise DeformCastError(
            f"'{os.path.basename(path)}' has no coordinate columns. An EGMS CSV has 'easting' and "
            "'northing' (EPSG:3035) and/or 'latitude' and 'longitude' (EPSG:4326; also 'lat' with 'lon', 'long' or "
            "'lng'); add them, or load "
            "the points as a layer in QGIS and give that layer instead.")
    if "easting" in low and "latitude" not in low:
        kind = "egms_l3"
    elif "easting" in low and "latitude" in low:
        kind = "egms_l2"
    else:
        kind = "csv"
    return CsvPointSource(path=path, kind=kind, dates=dates, crs_wkt=crs, factor=unit_factor(units),
                          columns=names, ix=ix, iy=iy, date_idx=[c[0] for c in cols], delimiter=delim,
                          chunk_rows=max(1, int(chunk_rows)), member=member, size=size,
                          decimal_comma=decimal_comma, undated=undated)
