"""The acquisition date of a band from a longer description or the name of the file it comes from (QGIS-free).

A folder of one GeoTIFF per date (``disp_20200105.tif``, ``20200117_los.tif``, ...) stacked with
``gdalbuildvrt -separate`` (or *Build Virtual Raster* with "Place each input file into a separate band") gives
bands without descriptions: the dates are in the file names only. :func:`band_source_date` reads the band's
VRT source (``vrt_sources`` metadata) and takes the date from the file's name when it holds exactly one date
(``YYYYMMDD`` or ``YYYY-MM-DD`` between non-digits): an interferogram-like name with two dates
(``20200105_20200117.tif``) is ambiguous and gives none, as does a band with several sources.
:func:`text_date` reads a description that holds one date among other words (``timeseries-20200105``,
``S1A_20200105_VV``) the same way.
"""
from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np

_SOURCE = re.compile(r"<SourceFilename[^>]*>(.*?)</SourceFilename>", re.S)
_DATES = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def name_date(name: str) -> Optional[np.datetime64]:
    """The one date in a file name (its base name, extension dropped), else None."""
    return text_date(os.path.splitext(os.path.basename(str(name)))[0])


def text_date(text: str) -> Optional[np.datetime64]:
    """The one date (``YYYYMMDD`` or ``YYYY-MM-DD`` between non-digits) in a text, else None (none, or two
    different ones as in an interferogram's ``20200105_20200117``)."""
    found = set()
    for y, m, d in _DATES.findall(str(text or "")):
        if not 1990 <= int(y) <= 2100:   # an acquisition year (day-first digits such as 05012020 are not)
            continue
        try:
            found.add(np.datetime64(f"{y}-{m}-{d}", "D"))
        except ValueError:
            continue
    return found.pop() if len(found) == 1 else None


def band_source_date(band) -> Optional[np.datetime64]:
    """The date in the name of the one file a VRT band reads, else None (not a VRT band, several sources,
    no date or two dates in the name)."""
    try:
        items = band.GetMetadata_List("vrt_sources") or []
    except Exception:  # noqa: BLE001 - not a VRT band
        return None
    files = {m.strip() for it in items for m in _SOURCE.findall(it)}
    if len(files) != 1:
        return None
    return name_date(files.pop())
