"""Patience on the study: stop asking for trials once the best value has stopped improving.

A finished trial (COMPLETE or PRUNED, in trial-number order) *improves* the study when it is
COMPLETE and its value is below ``best * (1 - min_rel)``; ``min_rel`` is 0.5 % by default, about
the seed-to-seed spread of one configuration's validation RMSE on the demo scene. The study is
patient for ``patience`` finished trials after its last improvement (pruned trials count: they
spent budget without improving). ``patience`` 0 switches it off (the study runs all its trials).
The rule depends on the stored trials only, so every worker of a shared study reaches the same
decision, and a resumed study that had stopped stays stopped (raise ``STUDY_PATIENCE`` or set it
to 0 to continue it).
"""
from __future__ import annotations

import math
from typing import Iterable, Tuple

DEFAULT_MIN_REL = 0.005  #: an improvement smaller than 0.5 % of the best value does not count
#: default patience of ``tune`` / the main job, measured on the demo scene (docs/README_tuning.md)
DEFAULT_STUDY_PATIENCE = 8


def finished_values(trials) -> list:
    """Values of the finished trials in trial-number order (None for a PRUNED trial)."""
    from optuna.trial import TrialState

    done = sorted((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
                  key=lambda t: t.number)
    return [t.value if t.state == TrialState.COMPLETE else None for t in done]


def _walk(values, min_rel: float):
    """``(best, trials since the last improvement)`` after each value of ``values``."""
    best, since = math.inf, 0
    for v in values:
        ok = v is not None and math.isfinite(v)
        if ok and (not math.isfinite(best) or v < best * (1.0 - float(min_rel))):
            best, since = float(v), 0
        else:
            best = min(best, float(v)) if ok else best
            since += 1
        yield best, since


def trials_since_improvement(trials: Iterable, min_rel: float = DEFAULT_MIN_REL) -> Tuple[int, float]:
    """``(finished trials since the last improvement, best value)`` of Optuna ``trials``."""
    best, since = math.inf, 0
    for best, since in _walk(finished_values(trials), min_rel):
        pass
    return since, best


def stop_trial(values, patience: int, min_rel: float = DEFAULT_MIN_REL) -> Tuple[int, float]:
    """For finished-trial values in order (None = pruned): how many trials run before patience
    stops the study, and the best value then (used to measure the default)."""
    best = math.inf
    for i, (best, since) in enumerate(_walk(values, min_rel)):
        if patience and math.isfinite(best) and since >= patience:
            return i + 1, best
    return len(values), best
