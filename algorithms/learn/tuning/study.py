"""A study: its name, folder and data identity, the sampler and pruner, created or joined.

Sampler and pruner are built once and handed to ``optuna.create_study`` / ``optuna.load_study``.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ...errors import DeformCastError
from .space import json_text
from .storage import quiet_optuna

PRUNERS = ("median", "hyperband", "none")
STUDIES_DIR = "studies"
SETTINGS_DONE = "settings_complete"


def make_pruner(name: str, max_epochs: int):
    """The pruner object of ``PRUNER`` (median, hyperband, none)."""
    optuna = quiet_optuna()
    key = (name or "median").strip().lower()
    if key == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(5, max(0, max_epochs // 4)))
    if key == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, int(max_epochs)), reduction_factor=3)
    if key == "none":
        return optuna.pruners.NopPruner()
    raise DeformCastError(f"PRUNER: unknown value '{name}'. Valid values: {', '.join(PRUNERS)}.")


def startup_trials(n_trials: int) -> int:
    """Random start-up trials of the TPE sampler: ``min(10, max(3, n_trials // 3))``."""
    return min(10, max(3, int(n_trials) // 3))


def make_sampler(seed: int, n_trials: int):
    """The seeded multivariate TPE sampler (constant liar: parallel workers see running trials)."""
    optuna = quiet_optuna()
    return optuna.samplers.TPESampler(seed=int(seed) % (2 ** 31), multivariate=True, constant_liar=True,
                                      n_startup_trials=startup_trials(n_trials))


def joiner_seed(seed: int, n_before: int) -> int:
    """Sampler seed of a worker that joins or resumes a study: never replays another's proposals."""
    return (int(seed) * 1_000_003 + 7919 * int(n_before) + os.getpid()) % (2 ** 31)


def _existing_trials(storage_obj, study_name: str) -> Optional[int]:
    """Number of trials of ``study_name`` in the storage, None when there is no such study."""
    optuna = quiet_optuna()
    for s in optuna.study.get_all_study_summaries(storage_obj, include_best_trial=False):
        if s.study_name == study_name:
            return int(s.n_trials)
    return None


def open_study(storage_obj, study_name: str, seed: int, pruner, settings: Mapping[str, Any], n_trials: int = 30,
               compare: bool = True):
    """Create or load the study; refuse to mix settings that make trials incomparable.

    Returns ``(study, created)``; ``created`` is False when another run made it first. With
    ``compare=False`` the caller checks an existing study's settings (``run_study`` does, with
    messages about the data identity). The creator's sampler is seeded with ``seed`` (a study run
    start to finish by one worker is reproducible); a worker that joins gets :func:`joiner_seed`.
    """
    optuna = quiet_optuna()
    n_before = _existing_trials(storage_obj, study_name)
    created = False
    if n_before is None:
        try:
            study = optuna.create_study(storage=storage_obj, study_name=study_name, direction="minimize",
                                        sampler=make_sampler(seed, n_trials), pruner=pruner)
            created = True
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it in between
            n_before = 0
    if created:
        for k, v in settings.items():
            study.set_user_attr(k, v)
        study.set_user_attr(SETTINGS_DONE, True)   # last: a worker that loads the study waits for it
        return study, True
    study = optuna.load_study(study_name=study_name, storage=storage_obj, pruner=pruner,
                              sampler=make_sampler(joiner_seed(seed, n_before), n_trials))
    old = study.user_attrs
    # the creator may still be writing its settings (two workers started together): wait for the
    # marker it writes last, as long as the study has no trial yet (an older study never gets one)
    for _ in range(100):
        if SETTINGS_DONE in old or study.get_trials(deepcopy=False):
            break
        time.sleep(0.1)
        old = study.user_attrs
    diffs = [f"{k}: study has {old[k]!r}, this run {v!r}" for k, v in settings.items()
             if k in old and old[k] != v] if compare else []
    if diffs:
        raise DeformCastError(
            f"The study '{study_name}' already exists in this storage with other settings ("
            + "; ".join(diffs) + "). Trials with different settings are not comparable: use a new "
            "STUDY_NAME or OUTPUT_FOLDER, or run with the study's settings to continue it.")
    return study, False


def default_study_name(architecture: str, horizon: int, encoding: str = "", fingerprint: str = "") -> str:
    """``deformcast-<architecture>-h<horizon>[-<encoding>][-<data fingerprint, 10 hex>]``."""
    name = f"deformcast-{architecture}-h{int(horizon)}"
    if encoding:
        name += "-" + encoding.replace(",", "+")
    if fingerprint:
        name += "-" + fingerprint.split(":", 1)[-1][:10]
    return name


def study_folder(output_folder: str, study_name: str) -> str:
    """The study's own folder: ``<OUTPUT_FOLDER>/studies/<study name>`` (name made file-safe)."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", str(study_name)).strip("._") or "study"
    return os.path.join(os.path.abspath(output_folder), STUDIES_DIR, safe)


def stack_identity(stack, dates, grid) -> Dict[str, Any]:
    """The data identity of a study: ``{"data_fingerprint", "n_pixels", "n_valid_pixels", "n_epochs",
    "first", "last"}``. The fingerprint is :class:`modelio.DataFingerprint` over every value (the
    same as ``train`` records), read block by block from a file."""
    from ...models.modelio import DataFingerprint
    from ...io.raster import StackInfo, iso, read_stack, row_blocks

    if isinstance(stack, StackInfo):
        dates = stack.dates
        T, H, W = stack.n_epochs, stack.grid.height, stack.grid.width
        fp = DataFingerprint((T, H, W), dates, grid)
        valid = 0
        for r0, r1 in row_blocks(H, max(1, int((1 << 23) // max(1, T * W)))):
            blk = read_stack(stack, rows=(r0, r1))
            fp.add_rows(blk)
            valid += int(np.isfinite(blk).any(axis=0).sum())
    else:
        a = np.asarray(stack, dtype=np.float32)
        T, H, W = a.shape
        fp = DataFingerprint(a.shape, dates, grid)
        fp.add_rows(a)
        valid = int(np.isfinite(a).any(axis=0).sum())
    d = np.asarray(dates, dtype="datetime64[D]")
    return {"data_fingerprint": fp.hexdigest(), "n_pixels": int(H * W), "n_valid_pixels": valid,
            "n_epochs": int(T), "first": iso(d[0]), "last": iso(d[-1])}


def covariates_fingerprint(covariates) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(covariates or {}):
        h.update(name.encode())
        h.update(np.nan_to_num(np.asarray(covariates[name], np.float32), nan=-9.87654e30).tobytes())
    return "sha256:" + h.hexdigest()


def jsonable(v):
    import json

    return json.loads(json.dumps(v, default=str, sort_keys=True))


def check_identity(study_name: str, old: Mapping[str, Any], identity: Mapping[str, Any],
                   config: Mapping[str, Any], grid_d: Mapping[str, Any], input_label: str) -> None:
    """Refuse to continue a study on other data, another grid or another configuration."""
    fix_new = ("Leave STUDY_NAME empty (each input then gets its own study), use a new "
               "OUTPUT_FOLDER, or give the study's own input and settings to continue it.")
    if int(old.get("deformcast_study", 0) or 0) < 2 or not old.get("data_fingerprint"):
        raise DeformCastError(
            f"The study '{study_name}' in this storage was made by an earlier DeformCast without a data "
            "fingerprint, so this run cannot check that it continues on the same data. " + fix_new)
    if old.get("grid") and jsonable(old["grid"]) != jsonable(grid_d):
        og, ng = old["grid"], grid_d
        raise DeformCastError(
            f"The study '{study_name}' was run on a {og.get('width')} x {og.get('height')} grid (origin "
            f"{og.get('geotransform', [0])[0]:.6g}, {og.get('geotransform', [0, 0, 0, 0])[3]:.6g}), but this input is "
            f"a {ng['width']} x {ng['height']} grid (origin {ng['geotransform'][0]:.6g}, {ng['geotransform'][3]:.6g}). "
            "Its trials and models belong to the other grid. " + fix_new)
    if old["data_fingerprint"] != identity["data_fingerprint"]:
        raise DeformCastError(
            f"The study '{study_name}' was run on other data: its stack '{old.get('input', '?')}' ({old.get('n_epochs')} "
            f"epochs {old.get('first')} .. {old.get('last')}, fingerprint {str(old['data_fingerprint'])[7:19]}) is not "
            f"this input '{input_label}' ({identity['n_epochs']} epochs {identity['first']} .. {identity['last']}, "
            f"fingerprint {identity['data_fingerprint'][7:19]}). Models trained on different stacks cannot be ranked "
            "together. " + fix_new)
    diffs = [f"{k}: study has {json_text(old.get(k))}, this run {json_text(v)}" for k, v in config.items()
             if jsonable(old.get(k)) != jsonable(v)]
    if diffs:
        raise DeformCastError(
            f"The study '{study_name}' already exists in this storage with other settings (" + "; ".join(diffs)
            + "). Trials with different settings are not comparable: use a new STUDY_NAME or OUTPUT_FOLDER, or "
            "run with the study's settings to continue it.")
