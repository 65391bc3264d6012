"""Warm start: configurations that won before, shipped as a small JSON prior (``prior.json``).

``prior.json`` maps an architecture to a short list of configurations (search-space names). A new
study with ``warm_start`` enqueues them (``study.enqueue_trial``) right after the hand-set defaults,
so TPE starts from known-good regions. A parameter outside this study's space (another range, a
fixed value) is left out of the enqueued trial and sampled instead; a configuration already in
the queue or the study is not enqueued twice. Where the entries come from is written in
``prior.json`` itself (``_source``) and in docs/README_tuning.md.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping

PRIOR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prior.json")


def load_prior(path: str = "") -> Dict[str, List[Dict[str, Any]]]:
    try:
        with open(path or PRIOR_PATH, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return {k: list(v) for k, v in data.items() if not k.startswith("_") and isinstance(v, list)}


def prior_params(architecture: str, space: Mapping[str, Any], path: str = "") -> List[Dict[str, Any]]:
    """The prior configurations of ``architecture`` restricted to the searched dimensions of ``space``."""
    out = []
    for cfg in load_prior(path).get(architecture, []):
        params = {k: v for k, v in cfg.items()
                  if k in space and space[k].kind != "fixed" and space[k].contains(v)}
        if params and params not in out:
            out.append(params)
    return out


def enqueue_prior(study, architecture: str, space: Mapping[str, Any], path: str = "") -> int:
    """Enqueue the prior configurations into ``study``; returns how many."""
    params = prior_params(architecture, space, path)
    for p in params:
        study.enqueue_trial(p, user_attrs={"warm_start": True}, skip_if_exists=True)
    return len(params)
