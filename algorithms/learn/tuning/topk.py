"""The top-K folder of a study: trial model folders, ranking, pruning folders that fell out."""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import List, Optional

MANIFEST = "manifest.json"
TRIALS_DIR = "trials"
RETRAINED_DIR = "retrained"


class FolderLock:
    """An exclusive lock file in the output folder (POSIX flock; no-op elsewhere)."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, ".topk.lock")
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a")
        try:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
        except ImportError:
            pass
        self.fh.close()


def trial_dir(output_folder: str, number: int) -> str:
    return os.path.join(output_folder, TRIALS_DIR, f"{int(number):06d}")


def ranked_trials(study, output_folder: Optional[str] = None):
    """COMPLETE trials sorted by value (best first); with a folder only those with a local model."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    done.sort(key=lambda t: (t.value, t.number))
    if output_folder is not None:
        done = [t for t in done if has_model(trial_dir(output_folder, t.number))]
    return done


def has_model(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.json"))


def prune_trial_folders(study, output_folder: str, top_k: int) -> List[int]:
    """Delete model folders of trials that can no longer enter the top K.

    Ranks only get worse as trials finish, so a COMPLETE trial ranked below K never comes back;
    PRUNED/FAIL trials never have a model. RUNNING trials (another worker) are never touched.
    """
    from optuna.trial import TrialState

    keep = {t.number for t in ranked_trials(study, output_folder)[:top_k]}
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    removed = []
    root = os.path.join(output_folder, TRIALS_DIR)
    if not os.path.isdir(root):
        return removed
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        n = int(name)
        st = states.get(n)
        if n in keep or st is None or st in (TrialState.RUNNING, TrialState.WAITING):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        shutil.rmtree(os.path.join(output_folder, RETRAINED_DIR, name), ignore_errors=True)
        removed.append(n)
    return removed




def manifest_study(path: str) -> Optional[str]:
    """The ``study_folder`` a manifest was written for (None: none, or not a tune manifest)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh).get("study_folder")
    except (OSError, ValueError, AttributeError):
        return None
