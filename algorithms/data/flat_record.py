"""A longer track record for the local forecast's candidates on quiet ground (session 47, docs/skill.md).

Why. On the third generator's quiet background the local forecast lost to the all-history fits on every scene
(``benchmarks/local_zone_replay.py``, session 46: 1.00-1.52 of the best family member there). Its candidates' record,
seven origins over the last 20 epochs (:func:`anchors.candidate_origins`), holds a few draws of each date's
atmosphere; there the candidates' records lay within a few tenths of a millimetre of each other and the weights were
nearly flat, the noisy short candidates included. Where the ground does not move, a record over a longer span holds
more independent dates and the regime it scores is the one that holds now. Where the ground moves the record must stay
recent (session 34: older origins for every pixel lost on six of ten scenes).

What. At pixels whose two-year velocity lies within ``anchors.TREND_T`` standard errors of zero (as the level
candidates are offered), and so does the velocity of the last half year (:data:`FLAT_RECENT_YEARS`), the candidates
are scored from twice as many origins (:data:`FLAT_RECORD_FACTOR`): the shipped ones and as many again before them,
:func:`anchors.candidate_spacing` apart (lead 15: e - 41, e - 38, ..., e - 2, fourteen). The longer record is pooled
and shrunk towards its class of trend evidence as the shipped one is, with its own class means (the scene's:
``record_prior["long"]``). Elsewhere the shipped record stays. ``DEFORMCAST_FLAT_RECORD`` sets the number of origins
in all for experiments (0: the shipped record everywhere, sessions 4-46), processes started by a run included.

Measured (session 47, docs/skill.md "Session 47"): the delivered forecast (the networks blended with the local
forecast) replayed from six origins with their own members on fourteen runs of the three generators
(``benchmarks/origin_replay.py``), geometric mean of the ratio to the best classical forecast at each origin against
the truth: the third generator's eight scenes 1.0046 -> 0.9962 (four better by more than 0.002, none worse; against the
later acquisitions 0.9855 -> 0.9807), the second's four 1.0321 -> 1.0320, ours 0.9206 -> 0.9207. With the two-year
test alone, one scene lost 2 % (1.058 -> 1.079): mining pixels quiet over two years that had started to move within
the last months, which the half-year test leaves with the shipped record.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from .pooling import EVIDENCE_CLASSES, class_prior, guided_box_mean, sampling_variance, shrink_to_class, velocity_guide
from .track_record import record

_ENV = os.environ.get("DEFORMCAST_FLAT_RECORD", "")
#: origins in all of the candidates' record at flat pixels: None, :data:`FLAT_RECORD_FACTOR` times the shipped
#: record's (session 47); 0, or no more than the shipped record holds: the shipped record everywhere (sessions 4-46)
FLAT_RECORD_ORIGINS = int(_ENV) if _ENV.strip() else None
FLAT_RECORD_FACTOR = 2
#: the second window (years) whose velocity must also lie within ``anchors.TREND_T`` standard errors of zero for the
#: longer record (session 47: a pixel quiet over two years may have started to move in the last months); 0: the
#: two-year velocity alone. ``DEFORMCAST_FLAT_RECENT`` sets it for experiments.
FLAT_RECENT_YEARS = float(os.environ.get("DEFORMCAST_FLAT_RECENT", "0.5") or 0.5)
#: the power of the candidates' inverse pooled record in the local forecast's weights at the quiet pixels
#: (:func:`quiet_ground`, :func:`candidate_power`; session 48); 0: ``anchors.LOCAL_POWER`` there as elsewhere.
#: ``DEFORMCAST_QUIET_POWER`` sets it for experiments
QUIET_POWER = float(os.environ.get("DEFORMCAST_QUIET_POWER", "0") or 0)


def flat_origins(base: List[int], spacing: int, n: Optional[int] = None) -> List[int]:
    """The origins before the shipped record's ``base`` (sorted) that complete it to ``n`` origins ``spacing`` epochs
    apart (default :data:`FLAT_RECORD_ORIGINS`, or :data:`FLAT_RECORD_FACTOR` times ``len(base)``), at least 10 epochs
    of history; [] when off."""
    n = (FLAT_RECORD_ORIGINS if n is None else n)
    n = FLAT_RECORD_FACTOR * len(base) if n is None else int(n)
    if n <= len(base) or not base:
        return []
    first = min(base)
    return sorted(o for o in (first - spacing * j for j in range(1, n - len(base) + 1)) if o >= 10)


def flat_two_years(guide, trend_t: float) -> np.ndarray:
    """(n,) bool: pixels whose two-year velocity (``guide``: ``pooling.velocity_guide``'s velocity and standard error)
    lies within ``trend_t`` standard errors of zero (False where unknown)."""
    v, se = (np.asarray(g, dtype=np.float64).reshape(-1) for g in guide)
    with np.errstate(invalid="ignore"):
        return np.abs(v) < trend_t * se


def level_offer(flat: np.ndarray, dates, shape, guide, level: List[int], C: int, trend_t: float):
    """(C, n) bool: where each of the local forecast's C candidates is offered, False for the level candidates
    (indices ``level``) where :func:`flat_two_years` is not; None when ``level`` is empty. ``guide``:
    ``pooling.velocity_guide``'s of the history ``flat`` (T, n), or None to make it here."""
    if not level:
        return None
    flat_ground = flat_two_years(guide if guide is not None else velocity_guide(flat, dates, shape), trend_t)
    offer = np.ones((C, flat_ground.size), bool)
    offer[level] = flat_ground
    return offer


def quiet_ground(flat: np.ndarray, dates, guide, shape, trend_t: float) -> np.ndarray:
    """(n,) bool: pixels whose two-year velocity (``guide``, ``pooling.velocity_guide``) and, with
    :data:`FLAT_RECENT_YEARS`, the velocity over that last span of the history ``flat`` (T, n) lie within ``trend_t``
    standard errors of zero."""
    quiet = flat_two_years(guide, trend_t)
    with np.errstate(invalid="ignore"):
        if FLAT_RECENT_YEARS > 0 and quiet.any():
            v2, se2 = (g.reshape(-1) for g in velocity_guide(flat, dates, shape, years=FLAT_RECENT_YEARS))
            quiet &= np.abs(v2) < trend_t * se2
    return quiet


def where_flat(pooled: np.ndarray, flat: np.ndarray, dates, lead: int, extra: List[int], forecasts, weights, errors,
               err: np.ndarray, per_origin: list, guide, shape, z: np.ndarray, trend_t: float, box: int,
               record_prior: Optional[dict] = None, evidence: Optional[dict] = None,
               quiet: Optional[np.ndarray] = None) -> np.ndarray:
    """``pooled`` (C, n), the shipped record pooled and shrunk, with the longer record at the flat pixels.

    ``extra``: the origins the longer record adds (:func:`flat_origins`); ``err`` and ``per_origin``: the shipped
    record (``track_record.record``) and each of its origins' errors; ``forecasts``, ``weights``, ``errors``: as
    ``record`` takes them; ``guide``: the two-year velocity and its standard error (``pooling.velocity_guide``); the
    flat pixels: :func:`quiet_ground`; ``z``: the trend evidence, |v| / se; ``box``: the pooling's
    (``anchors.LOCAL_BOX``). ``record_prior["long"]``: the scene's class means of the longer record (None: this call's
    pixels'); ``evidence["long"]`` receives its unshrunk pooled record and sampling variance. ``quiet``: the flat
    pixels, if found already."""
    if not extra:
        return pooled
    quiet = quiet_ground(flat, dates, guide, shape, trend_t) if quiet is None else quiet
    more = []
    err_x = record(flat, lead, extra, forecasts, weights, errors=errors, keep=more) if quiet.any() else None
    if err_x is None:
        if evidence is not None:
            evidence["long"] = None
        return pooled
    n1, n2 = len(per_origin), len(more)
    C = pooled.shape[0]
    longer = (err * n1 + err_x * n2) / (n1 + n2)
    longer = guided_box_mean(longer.reshape((C,) + tuple(shape)), box, guide).reshape(C, -1)
    s2 = sampling_variance(per_origin + more, shape, box)
    if evidence is not None:
        evidence["long"] = (longer, s2)
    if s2 is not None:
        prior = record_prior.get("long") if record_prior is not None else class_prior(longer, s2, z, EVIDENCE_CLASSES)
        longer = shrink_to_class(longer, s2, z, prior)
    return np.where(quiet[None], longer, pooled)


def scene_prior(ev_all: list) -> Optional[dict]:
    """The longer record's class means over a scene's bands (:func:`gating.scene_blend_prior`): ``ev_all`` holds
    ``(longer, s2, z)`` of each band that had one (at least one band)."""
    return class_prior(*(np.concatenate(x, axis=-1) for x in zip(*ev_all)), EVIDENCE_CLASSES)



def candidate_power(quiet: Optional[np.ndarray], power: float) -> Optional[np.ndarray]:
    """(n,) the power of the local forecast's weights per pixel: :data:`QUIET_POWER` at the ``quiet`` pixels
    (:func:`quiet_ground`), ``power`` elsewhere; None (``power`` everywhere) when :data:`QUIET_POWER` is off or no pixel
    is quiet."""
    if QUIET_POWER <= 0 or quiet is None or not quiet.any():
        return None
    return np.where(quiet, QUIET_POWER, float(power))
