"""Acquisition dates: parsing (band descriptions, ``DATES``, field names) and their checks (QGIS-free).

Year first only: ``YYYY-MM-DD`` (or ``/`` or ``.`` between, one-digit month and day too, a time after a ``T``
or a space ignored), ``YYYYMMDD``, ``DYYYYMMDD`` or ``D_YYYYMMDD``. Day-first and month-first forms are
ambiguous and refused.
"""
from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np

from ..errors import DeformCastError

_DATE_PATTERNS = [   # year first: 2020-01-05, 2020/01/05, 2020.1.5 (a time after a T or a space is ignored)
    re.compile(r"^\s*(?P<y>\d{4})(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})(?:[T ].*)?$"),
    re.compile(r"^\s*[Dd]?_?(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})\s*$"),
]


def parse_date(text) -> Optional[np.datetime64]:
    """``YYYY-MM-DD`` (or ``/`` or ``.`` between, one-digit month and day too), ``YYYYMMDD``, ``DYYYYMMDD`` or
    ``D_YYYYMMDD`` -> datetime64[D]; else None (day-first or month-first forms are ambiguous: refused)."""
    if text is None:
        return None
    s = str(text).strip()
    for pat in _DATE_PATTERNS:
        m = pat.match(s)
        if m:
            y, mo, d = int(m.group("y")), int(m.group("m")), int(m.group("d"))
            try:
                return np.datetime64(f"{y:04d}-{mo:02d}-{d:02d}", "D")
            except ValueError:
                return None
    return None


def parse_dates_param(value) -> Optional[np.ndarray]:
    """The ``DATES`` parameter: a text file (one date per line) or a comma/space list."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [str(v) for v in value]
    else:
        s = str(value).strip()
        if not s:
            return None
        if os.path.isfile(s):
            with open(s, encoding="utf-8") as fh:
                items = [ln.strip() for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
        else:
            items = [t for t in re.split(r"[,;\s]+", s) if t]
    out = []
    for it in items:
        d = parse_date(it)
        if d is None:
            raise DeformCastError(
                f"DATES: '{it}' is not a date. Give dates as YYYY-MM-DD or YYYYMMDD, one per "
                "line in a text file or as a comma-separated list.")
        out.append(d)
    return np.array(out, dtype="datetime64[D]")


def check_dates(dates: np.ndarray, what: str = "the stack") -> np.ndarray:
    dates = np.asarray(dates, dtype="datetime64[D]")
    if dates.size >= 2:
        diffs = np.diff(dates).astype(int)
        if np.any(diffs == 0):
            dup = dates[1:][diffs == 0][0]
            raise DeformCastError(
                f"{what} has the acquisition date {dup} twice. Remove or merge the duplicated "
                "band (or fix the DATES list) and run again.")
        if np.any(diffs < 0):
            raise DeformCastError(
                f"The dates of {what} are not in time order (e.g. {dates[1:][diffs < 0][0]} "
                "comes after a later date). Sort the bands by date, or give DATES in band order "
                "if the band descriptions are wrong.")
    return dates
