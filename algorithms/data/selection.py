"""Which windows a dataset keeps: seeded keys per (pixel, end epoch), spatial hold-out and
validation blocks, and the bounded reservoir of the smallest keys (see :mod:`dataset`)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ..errors import DeformCastError


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _keys(seed: int, salt: int, pixel: np.ndarray, end: np.ndarray) -> np.ndarray:
    base = _mix64(np.array([(int(seed) & 0xFFFFFFFF) * 8 + int(salt)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        x = pixel.astype(np.uint64) * np.uint64(1 << 20) + end.astype(np.uint64)
        return _mix64(x ^ base)


def holdout_mask(shape: Tuple[int, int], fraction: float, block: int, seed: int) -> Optional[np.ndarray]:
    """Square blocks of ``block`` pixels, about ``fraction`` of them True (seeded)."""
    if not fraction or fraction <= 0:
        return None
    if fraction >= 1:
        raise DeformCastError("SPATIAL_HOLDOUT must be below 1 (a fraction of the area, e.g. 0.2).")
    H, W = shape
    b = max(1, int(block))
    nby, nbx = -(-H // b), -(-W // b)
    ids = np.arange(nby * nbx, dtype=np.uint64)
    u = (_keys(seed, 7, ids, np.zeros_like(ids)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    held = (u < fraction).reshape(nby, nbx)
    if not held.any():  # a tiny raster: hold out at least one block
        held.flat[int(np.argmin(u))] = True
    if held.all():
        held.flat[int(np.argmax(u))] = False
    return np.repeat(np.repeat(held, b, 0), b, 1)[:H, :W]


def validation_mask(shape: Tuple[int, int], fraction: float, block: int, seed: int) -> np.ndarray:
    """Pixels of the spatial validation (``validation="space"``): square blocks, about ``fraction``
    of them (seeded, independent of the spatial hold-out); the blocks shrink on small rasters so that
    there are at least four along each side."""
    b = max(1, min(int(block), min(int(shape[0]), int(shape[1])) // 4))
    return holdout_mask(shape, fraction, b, int(seed) + 101)

# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
class _Reservoir:
    """Keeps the ``cap`` samples with the smallest keys seen so far (memory: at most 2 x cap)."""

    def __init__(self, cap: int):
        self.cap = int(cap)
        self.parts: List[dict] = []
        self.n = 0
        self.threshold = None  # largest kept key, once ``cap`` samples are held

    def add(self, part: dict) -> None:
        if part["key"].size == 0:
            return
        self.parts.append(part)
        self.n += part["key"].size
        if self.n >= self.cap:
            self._compact()

    def _compact(self) -> None:
        keys = np.concatenate([p["key"] for p in self.parts])
        if keys.size > self.cap:
            keep = np.sort(np.argpartition(keys, self.cap - 1)[: self.cap])
        else:
            keep = np.arange(keys.size)
        bounds = np.cumsum([0] + [p["key"].size for p in self.parts])
        merged = {}
        for k in self.parts[0]:
            first = self.parts[0][k]
            out = np.empty((keep.size,) + first.shape[1:], dtype=first.dtype)
            for i, p in enumerate(self.parts):  # gather part by part: no full concatenation
                lo, hi = np.searchsorted(keep, [bounds[i], bounds[i + 1]])
                out[lo:hi] = p[k][keep[lo:hi] - bounds[i]]
            merged[k] = out
        for p in self.parts:
            p.clear()
        self.parts = [merged]
        self.n = keep.size
        if self.n >= self.cap:
            self.threshold = merged["key"].max()

    def result(self) -> Optional[dict]:
        if not self.parts:
            return None
        self._compact()
        m = self.parts[0]
        self.parts = []
        order = np.argsort(m["key"], kind="stable")
        for k in list(m):  # one array at a time: the unsorted copy is freed as we go
            m[k] = m[k][order]
        return m


