"""A longer track record for the local forecast's candidates on quiet ground (session 47, docs/skill.md).

Why. On the third generator's quiet background the local forecast lost to the all-history fits on every scene
(``benchmarks/local_zone_replay.py``, session 46: 1.00-1.52 of the best family member there). Its candidates' record,
seven origins over the last 20 epochs (:func:`anchors.candidate_origins`), holds a few draws of each date's
atmosphere; there the candidates' records lay within a few tenths of a millimetre of each other and the weights were
nearly flat, the noisy short candidates included. Where the ground does not move, a record over a longer span holds
more independent dates and the regime it scores is the one that holds now. Where the ground moves the record must stay
recent (session 34: older origins for every pixel lost on six of ten scenes).

What. At pixels whose two-year velocity lies within ``anchors.TREND_T`` standard errors of zero (as the level
candidates are offered), the candidates are scored from :data:`FLAT_RECORD_ORIGINS` origins: the shipped ones and as
many again before them, :func:`anchors.candidate_spacing` apart (lead 15: e - 41, e - 38, ..., e - 2). The longer
record is pooled and shrunk towards its class of trend evidence as the shipped one is, with its own class means (the
scene's: ``record_prior["long"]``). Elsewhere the shipped record stays. 0 (the default until measured end to end)
leaves every pixel with the shipped record; ``DEFORMCAST_FLAT_RECORD`` sets it for experiments, processes started by a
run included.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from .pooling import EVIDENCE_CLASSES, class_prior, guided_box_mean, sampling_variance, shrink_to_class
from .track_record import record

#: origins of the candidates' record at flat pixels (0: the shipped record everywhere)
FLAT_RECORD_ORIGINS = int(os.environ.get("DEFORMCAST_FLAT_RECORD", "0"))


def flat_origins(base: List[int], spacing: int, n: Optional[int] = None) -> List[int]:
    """The origins before the shipped record's ``base`` (sorted) that complete it to ``n`` (default
    :data:`FLAT_RECORD_ORIGINS`) origins ``spacing`` epochs apart, at least 10 epochs of history; [] when off."""
    n = FLAT_RECORD_ORIGINS if n is None else int(n)
    if n <= len(base) or not base:
        return []
    first = min(base)
    return sorted(o for o in (first - spacing * j for j in range(1, n - len(base) + 1)) if o >= 10)


def where_flat(pooled: np.ndarray, flat: np.ndarray, lead: int, extra: List[int], forecasts, weights, errors,
               err: np.ndarray, per_origin: list, guide, shape, z: np.ndarray, trend_t: float,
               record_prior: Optional[dict] = None, evidence: Optional[dict] = None) -> np.ndarray:
    """``pooled`` (C, n), the shipped record pooled and shrunk, with the longer record at the flat pixels.

    ``extra``: the origins the longer record adds (:func:`flat_origins`); ``err`` and ``per_origin``: the shipped
    record (``track_record.record``) and each of its origins' errors; ``forecasts``, ``weights``, ``errors``: as
    ``record`` takes them; ``guide``: the two-year velocity and its standard error (``pooling.velocity_guide``);
    ``z``: the trend evidence, |v| / se. ``record_prior["long"]``: the scene's class means of the longer record
    (None: this call's pixels'); ``evidence["long"]`` receives its unshrunk pooled record and sampling variance."""
    v, se = (np.asarray(g, dtype=np.float64).reshape(-1) for g in guide)
    with np.errstate(invalid="ignore"):
        quiet = np.abs(v) < trend_t * se
    if not extra or not quiet.any():
        if evidence is not None and extra:
            evidence["long"] = None
        return pooled
    more = []
    err_x = record(flat, lead, extra, forecasts, weights, errors=errors, keep=more)
    if err_x is None:
        if evidence is not None:
            evidence["long"] = None
        return pooled
    n1, n2 = len(per_origin), len(more)
    C = pooled.shape[0]
    longer = (err * n1 + err_x * n2) / (n1 + n2)
    longer = guided_box_mean(longer.reshape((C,) + tuple(shape)), _box(), guide).reshape(C, -1)
    s2 = sampling_variance(per_origin + more, shape, _box())
    if evidence is not None:
        evidence["long"] = (longer, s2)
    if s2 is not None:
        prior = record_prior.get("long") if record_prior is not None else class_prior(longer, s2, z, EVIDENCE_CLASSES)
        longer = shrink_to_class(longer, s2, z, prior)
    return np.where(quiet[None], longer, pooled)


def scene_prior(ev_all: list) -> Optional[dict]:
    """The longer record's class means over a scene's bands (:func:`gating.scene_blend_prior`): ``ev_all`` holds
    ``(longer, s2, z)`` per band (``longer`` None where a band had none)."""
    got = [x for x in ev_all if x[0] is not None and x[1] is not None]
    if not got:
        return None
    return class_prior(*(np.concatenate(x, axis=-1) for x in zip(*got)), EVIDENCE_CLASSES)


def _box() -> int:
    from .anchors import LOCAL_BOX
    return LOCAL_BOX
