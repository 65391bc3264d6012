"""Temporal EOFs of a scene: each pixel's history projected on the scene's leading temporal patterns.

Why. A classical forecast from one pixel's series inherits the noise of its last acquisitions; smoothed
persistence averages it over time and lags where the ground changes. Pixels of a scene share few
temporal patterns (trends, seasons, the laws of bowls, steps), while each date's atmosphere is its own.
Projected on the first ``k`` temporal EOFs of the scene (the left singular vectors of the epochs x pixels
matrix), a pixel's series keeps what it shares with the scene's patterns and loses most of each date's
noise, without lagging behind a pattern the scene holds. The family of classical forecasts computed on
the projected series are extra candidates of the gate's local track record (:mod:`anchors`), which
weighs them against the family on the raw series, neighbourhood by neighbourhood (session 13,
docs/skill.md; ``benchmarks/bench_denoise.py``).

No future. The patterns at origin ``o`` are fitted on the epochs up to ``o`` only, so the track record
from earlier origins scores them as they would have been at the time. They come from the Gram matrix
of a sample of the scene's pixels (at most :data:`MAX_PIXELS`, complete series only): the patterns of
every origin are the leading eigenvectors of one corner of one matrix, about a second for a stack.
A pixel with a gap in its history gets no projected series (NaN), hence no extra candidate. The
classical forecasts are linear in the series, so those of a projected series are combinations of the
forecasts of the ``k`` patterns (:func:`projected_forecasts`): the candidates cost little beside the
family itself. They use no step terms: a step the scene shares is one of its patterns.

The basis is a dict ``{origin: (origin + 1, k) float64}`` (plain numpy, so a Dask worker gets it as an
argument); :func:`stack_basis` builds it from a stack.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

#: the number of temporal EOFs kept. 20: against the later acquisitions never worse than without the
#: candidates by more than 0.5 % on 28 scenes of both generators; 10 gained a little more on ours and lost
#: up to 2 % on three of the second generator's (benchmarks/bench_denoise.py, docs/skill.md). 0: none.
EOF_RANK = 20
#: pixels sampled for the patterns (a regular lattice of complete series)
MAX_PIXELS = 20000
#: below this many complete series, or this many epochs, no basis
MIN_PIXELS, MIN_EPOCHS = 200, 20


def basis_from_sample(sample: np.ndarray, rank: int = EOF_RANK, first: int = MIN_EPOCHS - 1) -> Dict[int, np.ndarray]:
    """``{o: U_o}`` for every origin ``o`` from ``first`` to the last epoch of ``sample`` ((T, n), complete
    series): ``U_o`` (o + 1, k) the leading eigenvectors of the Gram matrix of the epochs up to ``o``."""
    s = np.asarray(sample, dtype=np.float64)
    gram = s @ s.T
    out = {}
    for o in range(int(first), s.shape[0]):
        k = min(int(rank), o + 1)
        vals, vecs = np.linalg.eigh(gram[:o + 1, :o + 1])
        out[o] = np.ascontiguousarray(vecs[:, ::-1][:, :k])
    return out


def sample_series(info, max_pixels: int = MAX_PIXELS, last: Optional[int] = None) -> np.ndarray:
    """Complete series (epochs up to ``last``) of pixels on a regular lattice of the stack: (last + 1, n)."""
    from ..io import raster

    H, W = info.grid.shape
    T = info.n_epochs if last is None else int(last) + 1
    stride = max(1, int(np.ceil(np.sqrt(H * W / float(max_pixels)))))
    cols = np.arange(0, W, stride)
    parts = []
    for r in range(0, H, stride):
        y = raster.read_stack(info, rows=(r, r + 1))[:T, 0][:, cols].astype(np.float64)
        parts.append(y[:, np.isfinite(y).all(axis=0)])
    return np.concatenate(parts, axis=1) if parts else np.zeros((T, 0))


def stack_basis(info, rank: int = EOF_RANK, last: Optional[int] = None) -> Optional[Dict[int, np.ndarray]]:
    """The basis of a stack for every origin up to ``last`` (default: the last epoch), or None when the
    stack has too few complete series or epochs."""
    s = sample_series(info, last=last)
    if s.shape[1] < MIN_PIXELS or s.shape[0] < MIN_EPOCHS:
        return None
    return basis_from_sample(s, rank)


def project(flat: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Each column of ``flat`` ((o + 1, n), the history up to the origin) projected on the columns of ``u``;
    NaN for a column with a gap."""
    y = np.asarray(flat, dtype=np.float64)
    ok = np.isfinite(y).all(axis=0)
    out = np.full(y.shape, np.nan)
    out[:, ok] = u @ (u.T @ y[:, ok])
    return out


def projected_forecasts(flat: np.ndarray, u: np.ndarray, basis_forecasts: np.ndarray) -> np.ndarray:
    """Linear forecasts of the projected series, (M, h, n): ``basis_forecasts`` (M, h, k) are the forecasts
    of the columns of ``u`` themselves. Every classical forecast of the family is linear in the series on a
    complete record (least-squares fits, means), so the forecast of ``u c`` is ``basis_forecasts @ c``, with
    ``c = u.T y`` the pixel's coefficients: the family is fitted on ``k`` series per origin, not on every
    pixel (equal to fitting the projected series to rounding, ``tests/test_eof.py``). NaN for a column of
    ``flat`` with a gap."""
    y = np.asarray(flat, dtype=np.float64)
    ok = np.isfinite(y).all(axis=0)
    M, h, k = basis_forecasts.shape
    out = (basis_forecasts.reshape(M * h, k) @ (u.T @ np.where(ok, y, 0.0))).reshape(M, h, y.shape[1])
    out[:, :, ~ok] = np.nan
    return out


def without_basis(gate: Optional[dict]) -> Optional[dict]:
    """The gate without the basis that ``predict`` attaches to it (for JSON)."""
    return None if gate is None else {k: v for k, v in gate.items() if k != "eof_basis"}
