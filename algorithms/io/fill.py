"""Pixels that hold one value at every date, and fill values where the file declares no nodata (QGIS-free).

A displacement series is never exactly constant over a record of acquisitions: each one carries its own
noise. A pixel that holds the same value at every date is either a mask written as a value where the file
declares no nodata (0 or -9999 over an area outside the processed frame, a water body, a cropped corner),
or the stack's reference point (0 at every date by construction). Neither carries displacement to learn
from or to forecast: read as values, a -9999 fill became a -9999 mm "forecast" mapped as routine ground, and a
0 fill left pixels without a forecast under a message that blamed gaps. :func:`scan` finds them on
:data:`SAMPLE_BANDS` bands spread over the record (a real series equal at twelve dates spread over years
does not occur, even stored as integer millimetres), :func:`raster.read_stack` reads them as no data, and
:func:`fill_message` says so with the fix (declare the value as the file's nodata).

The same fill may be written only at the dates a pixel was masked (-9999, -32768 or float32's lowest value for
a decorrelated acquisition). Read as values they wreck every fit of those pixels. :func:`fill_values` finds such
a value among the sampled values of the other pixels (it repeats exactly, far beyond all the data) and
:func:`raster.read_stack` reads it as no data too (:func:`sentinel_message`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

#: bands read to find constant pixels, spread evenly over the record (the first and last among them)
SAMPLE_BANDS = 12
#: values a pixel must have among the sampled bands to be judged (fewer: left as it is; a raster of fewer bands,
#: such as a few later observations, is not judged: three equal whole millimetres happen)
MIN_VALUES = 6
#: rows read at a time
BLOCK_ROWS = 256
#: at most this many fill values are looked for
MAX_FILLS = 3
#: at most this many values of the non-constant pixels are looked at for a scattered fill value
SAMPLE_VALUES = 2_000_000
#: a scattered fill value is at least this far from 0 (mm) ...
FILL_MIN_MM = 1000.0
#: ... this many times beyond the 99.9th percentile of the other values ...
FILL_FACTOR = 5.0
#: ... and this common among the sampled values
FILL_MIN_SHARE = 0.001

#: scans kept per process (one H x W mask each), the latest files
CACHE_FILES = 8
_CACHE: dict = {}


def sample_bands(n_epochs: int) -> np.ndarray:
    """The bands (0-based) read by :func:`scan`: at most :data:`SAMPLE_BANDS`, evenly spread."""
    return np.unique(np.linspace(0, int(n_epochs) - 1, min(int(n_epochs), SAMPLE_BANDS)).round().astype(int))


@dataclass
class Scan:
    """What :func:`scan` found in a stack."""

    #: (H, W) pixels with one value at every sampled band, or None when there is none
    mask: Optional[np.ndarray]
    #: pixels with a value at any sampled band
    n_data: int
    #: the value most of the constant pixels hold (NaN when none)
    value: float = float("nan")
    #: fill values scattered over the other pixels' dates (none: empty), see :func:`fill_values`
    sentinels: Tuple[float, ...] = ()
    #: how often each was met among the sampled values, how many values were sampled, and the largest |value|
    #: of the rest (99.9th percentile)
    counts: Tuple[int, ...] = ()
    n_sampled: int = 0
    typical: float = float("nan")
    #: how many bands were read
    n_bands: int = 0


def fill_values(sample: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[int, ...], float]:
    """``(values, counts, typical)``: the values of ``sample`` (finite mm values) that are fills where the file
    declares no nodata (at most :data:`MAX_FILLS`; none: empty tuples). A fill repeats exactly (real float
    displacements almost never do, but 0 at the reference acquisition), is common (at least
    :data:`FILL_MIN_SHARE` of the values, and 20 of them) and lies far beyond the data (|v| >= :data:`FILL_MIN_MM`
    and over :data:`FILL_FACTOR` times the 99.9th percentile of the |v| of the values that are not candidates):
    -9999 or -32768 written for a masked date, or float32's lowest value. ``typical`` is that percentile."""
    nz = sample[sample != 0]
    if nz.size == 0:
        return (), (), float("nan")
    u, c = np.unique(nz, return_counts=True)
    top = np.argsort(c, kind="stable")[::-1][:MAX_FILLS]
    cand = [k for k in top if c[k] >= max(20, FILL_MIN_SHARE * sample.size) and abs(u[k]) >= FILL_MIN_MM]
    rest = np.abs(nz[~np.isin(nz, u[cand])]) if cand else np.abs(nz)
    typical = float(np.percentile(rest, 99.9)) if rest.size else 0.0
    ok = [k for k in cand if abs(u[k]) > FILL_FACTOR * typical]
    return tuple(float(u[k]) for k in ok), tuple(int(c[k]) for k in ok), typical


def _pass(read: Callable, bands: np.ndarray, height: int, need: int, drop: Tuple[float, ...] = ()):
    """One read of the sampled bands: ``(mask, n_data, values of the constant pixels, sample of the others)``,
    the values in ``drop`` read as no data."""
    masks, n_data, vals, sample, stride = [], 0, [], [], 0
    drop_a = np.asarray(drop, np.float32)
    for r0 in range(0, int(height), BLOCK_ROWS):
        a = read((r0, min(int(height), r0 + BLOCK_ROWS)), list(bands))
        if drop:
            a[np.isin(a, drop_a)] = np.nan
        if not stride:
            stride = max(1, int(height) * a.shape[2] * bands.size // SAMPLE_VALUES)
        fin = np.isfinite(a)
        n_data += int(fin.any(axis=0).sum())
        cnt = fin.sum(axis=0)
        hi = np.where(fin, a, -np.inf).max(axis=0)
        lo = np.where(fin, a, np.inf).min(axis=0)
        m = (cnt >= need) & (hi == lo)
        masks.append(m)
        if m.any():
            vals.append(hi[m])
        rest = a[:, ~m]
        sample.append(rest[np.isfinite(rest)][::stride])
    mask = np.concatenate(masks, axis=0) if masks else None
    smp = np.concatenate(sample) if sample else np.zeros(0, np.float32)
    return mask, n_data, vals, smp


def scan(read: Callable, n_epochs: int, height: int, key=None) -> Scan:
    """Fill values scattered over the stack (:func:`fill_values`, on at most :data:`SAMPLE_VALUES` values of
    the pixels that are not constant) and, with them read as no data, the pixels whose values at the sampled
    bands (at least :data:`MIN_VALUES` of them; a raster of fewer bands has none) are all equal.
    ``read(rows, bands) -> (len(bands), h, W)`` reads the stack as mm with NaN for nodata (the bands are read a second time only when
    a fill value was found). ``key``: a hashable that names the file's state; a second call with it returns
    the first answer."""
    if key is not None and key in _CACHE:
        return _CACHE[key]
    bands = sample_bands(n_epochs)
    need = MIN_VALUES if bands.size >= MIN_VALUES else bands.size + 1   # fewer bands: no pixel is judged constant
    if bands.size < 1:
        return Scan(None, 0)
    mask, n_data, vals, smp = _pass(read, bands, height, need)
    sentinels, counts, typical = fill_values(smp)
    if sentinels:
        mask, n_data, vals, _ = _pass(read, bands, height, need, sentinels)
    out = Scan(None, n_data, sentinels=sentinels, counts=counts, n_sampled=int(smp.size), typical=typical,
               n_bands=int(bands.size))
    if mask is not None and mask.any():
        v, c = np.unique(np.concatenate(vals), return_counts=True)
        out.mask, out.value = mask, float(v[np.argmax(c)])
    if key is not None:
        while len(_CACHE) >= CACHE_FILES:   # the oldest first: a session that opens many stacks keeps the last few
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = out
    return out


def file_key(path: str):
    """A key that names a file's state (path, size, modification time), for :func:`scan`."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def value_text(v: float) -> str:
    """``v`` short (``-9999``), with every digit a float32 needs to be matched as nodata (``-3.4028235e+38``)."""
    short = f"{v:g}"
    return short if np.float32(short) == np.float32(v) else str(np.float32(v))


def fill_message(name: str, n_const: int, n_data: int, value: float) -> str:
    """The warning for ``n_const`` constant pixels among ``n_data`` with data ('' when none)."""
    if n_const <= 0:
        return ""
    share = 100.0 * n_const / max(1, n_data)
    if value == 0:   # 0 cannot be a displacement stack's nodata: the reference acquisition is 0 at every pixel
        fix = ("Nothing needs doing if they are masked pixels or the reference point (0 cannot serve as the nodata "
               "value of a displacement stack, whose reference acquisition is 0 everywhere; NaN can).")
    else:
        fix = (f"If {value_text(value)} marks pixels without data, declare it as the bands' nodata "
               f"(gdal_edit.py -a_nodata {value_text(value)} {name}) and this warning goes.")
    return (f"{n_const} pixel(s) of '{name}' ({share:.1f} % of those with data) hold the same value at every date "
            f"(most of them {value_text(value)}): a mask written as a value where the file declares no nodata, or the "
            "stack's reference point. They carry no displacement to learn from or forecast and are read as no data "
            f"(their maps stay empty). " + fix)


def values_message(what: str, values, counts, n_sampled: int, typical: float, why: str) -> str:
    """The warning for fill values (:func:`fill_values`) among ``n_sampled`` values of ``what``; ``why``: what
    they are taken for, what is done and the fix ('' when there is none)."""
    if not values:
        return ""
    share = 100.0 * sum(counts) / max(1, n_sampled)
    v = " or ".join(value_text(x) for x in values)
    return (f"{share:.2g} % of the values of {what} equal {v}, far beyond all others (99.9 % of them within "
            f"+-{typical:.0f} mm): {why}")


def sentinel_message(name: str, sc: Scan) -> str:
    """The warning for fill values scattered over the stack (:func:`fill_values`; '' when none)."""
    fix = "; ".join(f"gdal_edit.py -a_nodata {value_text(x)} {name}" for x in sc.sentinels)
    return values_message(f"'{name}' (sampled at {sc.n_bands} dates)", sc.sentinels, sc.counts, sc.n_sampled,
                          sc.typical, "a fill value for masked dates where the file declares no nodata. They are "
                          f"read as no data. Declare it as the bands' nodata ({fix}) and this warning goes.")


@dataclass
class Found:
    """What a :class:`Scan` means for reading a stack (:func:`found`)."""

    #: (H, W) pixels read as no data, or None
    mask: Optional[np.ndarray]
    #: fill values read as no data wherever they occur
    values: Tuple[float, ...]
    #: the warning ('' when nothing is read as no data)
    note: str
    #: the refusal's message when every pixel with data is constant ('' otherwise); nothing is masked then
    constant_note: str = ""


def found(sc: Scan, name: str) -> Found:
    """How a stack named ``name`` is read after ``sc``: the constant pixels and fill values as no data, said in one
    note; a stack of nothing but constant pixels reads as it is, with the message that refuses it."""
    n = 0 if sc.mask is None else int(sc.mask.sum())
    if n and n >= sc.n_data:
        return Found(None, (), "", all_constant_message(name, sc.value))
    note = " ".join(m for m in (fill_message(name, n, sc.n_data, sc.value), sentinel_message(name, sc)) if m)
    return Found(sc.mask, sc.sentinels, note)


def blank(arr: np.ndarray, mask: Optional[np.ndarray], values: Tuple[float, ...]) -> np.ndarray:
    """``arr`` (..., h, W) in place: the fill ``values`` (float32 values, matched in ``arr``'s float type) and the
    pixels of ``mask`` (h, W) set to NaN; returns it."""
    if values:
        arr[np.isin(arr, np.asarray(values, np.float32).astype(arr.dtype))] = np.nan
    if mask is not None:
        arr[..., mask] = np.nan
    return arr


def all_constant_message(name: str, value: float) -> str:
    return (f"Every pixel of '{name}' that has data holds the same value at every date (most of them "
            f"{value_text(value)}): the stack holds no displacement to learn from or forecast. Check that it is a "
            "displacement time series (one band per acquisition, in mm) and that its nodata value is declared.")
