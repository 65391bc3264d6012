"""Pixels that hold one value at every date (QGIS-free).

A displacement series is never exactly constant over a record of acquisitions: each one carries its own
noise. A pixel that holds the same value at every date is either a mask written as a value where the file
declares no nodata (0 or -9999 over an area outside the processed frame, a water body, a cropped corner),
or the stack's reference point (0 at every date by construction). Neither carries displacement to learn
from or to forecast: read as values, a -9999 fill became a -9999 mm "forecast" in the highest tier, and a
0 fill left pixels without a forecast under a message that blamed gaps. :func:`constant_mask` finds them on
:data:`SAMPLE_BANDS` bands spread over the record (a real series equal at twelve dates spread over years
does not occur, even stored as integer millimetres), :func:`raster.read_stack` reads them as no data, and
:func:`fill_message` says so with the fix (declare the value as the file's nodata).
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Tuple

import numpy as np

#: bands read to find constant pixels, spread evenly over the record (the first and last among them)
SAMPLE_BANDS = 12
#: values a pixel must have among the sampled bands to be judged (fewer: left as it is)
MIN_VALUES = 6
#: rows read at a time
BLOCK_ROWS = 256

_CACHE: dict = {}


def sample_bands(n_epochs: int) -> np.ndarray:
    """The bands (0-based) read by :func:`constant_mask`: at most :data:`SAMPLE_BANDS`, evenly spread."""
    return np.unique(np.linspace(0, int(n_epochs) - 1, min(int(n_epochs), SAMPLE_BANDS)).round().astype(int))


def constant_mask(read: Callable, n_epochs: int, height: int, key=None) -> Tuple[Optional[np.ndarray], int, float]:
    """``(mask, n_with_data, value)``: pixels whose values at the sampled bands (at least
    ``min(MIN_VALUES, bands)`` of them, and at least 3) are all equal, as a (H, W) bool array (None when
    there is none); how many pixels have a value at any sampled band; the value most of the constant pixels
    hold (NaN when none). ``read(rows, bands) -> (len(bands), h, W)`` reads the stack as mm with NaN for
    nodata. ``key``: a hashable that names the file's state; a second call with it returns the first answer."""
    if key is not None and key in _CACHE:
        return _CACHE[key]
    bands = sample_bands(n_epochs)
    need = max(3, min(MIN_VALUES, bands.size))
    if bands.size < 3:
        return None, 0, float("nan")
    masks, n_data, vals = [], 0, []
    for r0 in range(0, int(height), BLOCK_ROWS):
        a = read((r0, min(int(height), r0 + BLOCK_ROWS)), list(bands))
        fin = np.isfinite(a)
        n_data += int(fin.any(axis=0).sum())
        cnt = fin.sum(axis=0)
        hi = np.where(fin, a, -np.inf).max(axis=0)
        lo = np.where(fin, a, np.inf).min(axis=0)
        m = (cnt >= need) & (hi == lo)
        masks.append(m)
        if m.any():
            vals.append(hi[m])
    mask = np.concatenate(masks, axis=0) if masks else None
    if mask is None or not mask.any():
        out = (None, n_data, float("nan"))
    else:
        v, c = np.unique(np.concatenate(vals), return_counts=True)
        out = (mask, n_data, float(v[np.argmax(c)]))
    if key is not None:
        _CACHE[key] = out
    return out


def file_key(path: str):
    """A key that names a file's state (path, size, modification time), for :func:`constant_mask`."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _value(v: float) -> str:
    return f"{v:g}"


def fill_message(name: str, n_const: int, n_data: int, value: float) -> str:
    """The warning for ``n_const`` constant pixels among ``n_data`` with data ('' when none)."""
    if n_const <= 0:
        return ""
    share = 100.0 * n_const / max(1, n_data)
    if value == 0:   # 0 cannot be a displacement stack's nodata: the reference acquisition is 0 at every pixel
        fix = ("Nothing needs doing if they are masked pixels or the reference point (0 cannot serve as the nodata "
               "value of a displacement stack, whose reference acquisition is 0 everywhere; NaN can).")
    else:
        fix = (f"If {_value(value)} marks pixels without data, declare it as the bands' nodata "
               f"(gdal_edit.py -a_nodata {_value(value)} {name}) and this warning goes.")
    return (f"{n_const} pixel(s) of '{name}' ({share:.1f} % of those with data) hold the same value at every date "
            f"(most of them {_value(value)}): a mask written as a value where the file declares no nodata, or the "
            "stack's reference point. They carry no displacement to learn from or forecast and are read as no data "
            f"(their maps stay empty). " + fix)


def all_constant_message(name: str, value: float) -> str:
    return (f"Every pixel of '{name}' that has data holds the same value at every date (most of them "
            f"{_value(value)}): the stack holds no displacement to learn from or forecast. Check that it is a "
            "displacement time series (one band per acquisition, in mm) and that its nodata value is declared.")
