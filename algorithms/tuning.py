"""Hyperparameter search with Optuna TPE: resumable, multi-worker, keeps the top-K models.

What ``tune`` does
------------------
1. Prepares the training/validation/test windows of the stack (:mod:`algorithms.dataset`; one
   preparation per window length/encoding the search visits, cached).
2. Runs an Optuna study: a seeded multivariate TPE sampler (``TPESampler(seed, multivariate=True,
   constant_liar=True)``) proposes hyperparameters, each trial trains one model
   (:func:`algorithms.training.train_model`) and reports its per-epoch validation loss to a
   pruner that stops unpromising trials early. The objective is the **validation RMSE in mm**
   of the early-stopped model, nothing else: the test period is never seen while tuning.
   Trial 0 of a new study is the hand-set default configuration (``study.enqueue_trial``; the
   parameters whose default lies outside an overridden range are sampled instead), so the search
   starts from the defaults and the report shows how much tuning gained over them.
3. Each finished trial saves its model under ``trials/<number>/`` of the study's folder.
4. When the study has its ``N_TRIALS`` finished trials (or ``TIMEOUT`` is reached), the worker
   that finishes (re)builds the top-K set from the study: ``manifest.json`` lists the ``TOP_K``
   best trials' models in rank order (written last, so a folder with a manifest is complete),
   folders of trials that fell out of the top K are deleted, a trials CSV and an HTML report
   (optimisation history, parameter importances, best parameters, the top-K models' **test**
   metrics next to the classical baselines on the same pixels and epochs, wall time) are written.
   A worker that runs out of trials while others still run some waits for them first, so no
   manifest ever lists a partial top-K set.

Study identity
--------------
Every study has its own folder ``<OUTPUT_FOLDER>/studies/<study name>/`` holding its journal,
``trials/``, ``retrained/``, ``manifest.json``, ``trials.csv`` and (by default) its report. The
study name is ``deformcast-<architecture>-h<horizon>-<encoding>-<data fingerprint>`` (the encoding
set, or ``searched``; the first hex digits of the SHA-256 of the stack's values, dates and grid,
:class:`modelio.DataFingerprint`, the same ``train`` records), so tuning another architecture,
horizon, encoding or input into one OUTPUT_FOLDER starts a new study beside the others instead of
mixing models. ``<OUTPUT_FOLDER>/manifest.json`` lists the members of the study that finished
last (paths into its folder): the folder ``predict`` reads. Each study stores its data
fingerprint, grid, epochs and configuration (max epochs, patience, samples, search space, data
preparation, covariates) in the storage; resuming a study (same name, e.g. an explicit
STUDY_NAME or a shared database) with other data, another grid or another configuration is
refused with a message naming the fix. Every model.json records ``data_fingerprint``, the
stack's ``dates`` and path. COVARIATES that no coding strategy of the study uses are warned about
(they would be ignored), and so is a stack with fewer than 10 pixels with data.

Search space
------------
From the model registry (:mod:`algorithms.models`): the architecture's ranges
(``spec.space``: width, depth, heads, kernel size ...), the shared training ranges
(``TRAINING_SPACE``: learning rate, weight decay, batch size, dropout, gradient clipping) and,
unless ``WINDOW`` is fixed, the window length (``DATA_SPACE``). ``SEARCH_SPACE`` (JSON) overrides
entries: a scalar fixes a value (``{"layers": 1}``), a list is a categorical choice
(``{"batch_size": [64, 128]}``), an object is a range (``{"lr": {"low": 1e-4, "high": 3e-3,
"log": true}}``, ``{"hidden": {"type": "int", "low": 8, "high": 64, "step": 8}}``). Keys are the
architecture's hyperparameters (``resolve_hparams`` names), ``window`` and ``encoding`` (a list of
encoding sets, e.g. ``{"encoding": ["none", "temporal", "temporal,neighbourhood"]}``).

Pruning
-------
``median`` (default): ``MedianPruner(n_startup_trials=5, n_warmup_steps=min(5, MAX_EPOCHS // 4))``
stops a trial whose best validation loss so far is worse than the median of earlier trials at the
same epoch. ``hyperband``: ``HyperbandPruner(min_resource=1, max_resource=MAX_EPOCHS,
reduction_factor=3)``. ``none``: every trial runs to early stopping. See docs/README_tuning.md for
the measurement on the demo scene behind the default. The paper (Liu et al. 2026) uses TPE but
says nothing about pruning; pruning is our addition to spend the budget on promising trials.

Storage, resuming and several workers
-------------------------------------
Default storage: an Optuna journal file ``study.journal`` in the study's folder
(``JournalStorage(JournalFileBackend(path, JournalFileOpenLock(path)))``). Every trial state
change is appended and flushed, so a run killed or cancelled mid-study loses only the trial in
progress: starting ``tune`` again with the same OUTPUT_FOLDER and STUDY_NAME continues the
study until it has N_TRIALS finished (complete or pruned) trials. Several processes on one
machine may run ``tune`` on the same folder at the same time: the journal is locked per write,
every worker asks the shared study for its next trial, and workers stop when the study has
N_TRIALS finished trials between them (a worker that asks for a surplus trial marks it FAIL,
``user_attrs.surplus``, and stops; the lower trial number wins ties, so the total is exact).
``STORAGE`` accepts an Optuna RDB URL (``postgresql://user:pw@host/db``, ``mysql+pymysql://...``,
``sqlite:///path.db``) for workers on several machines, or a path to a journal file on a shared
file system. RDB storages get a heartbeat (60 s; trials silent for 180 s are marked FAIL). Give
the URL without its password (QGIS prints every parameter in the run log): the password comes from
the environment variable ``DEFORMCAST_STORAGE_PASSWORD`` or a pgpass-style file
(``DEFORMCAST_PGPASS``, ``PGPASSFILE`` or ``~/.pgpass``; ``host:port:database:user:password``).
A URL with a password still works and is warned about; logs, reports and manifests show it masked.

Trials left RUNNING by a killed local process are detected by the worker id stored with each
trial (host name + process id): a trial of this host whose process no longer exists is marked
FAIL when a worker starts, so it is neither counted as finished nor waited for.

Reproducibility: a study run start-to-finish by one worker is reproducible from ``SEED`` (sampler
seed ``SEED``, trial ``n`` trains with seed ``SEED + n``). A worker that joins or resumes an
existing study seeds its sampler from ``SEED``, the number of trials already in the study and
its process id, so two workers never replay the same proposals; resumed or parallel studies are
therefore not bit-reproducible (no parallel TPE is).

Top-K and retraining
--------------------
The top-K members are the K complete trials with the lowest validation RMSE whose model folder
exists in this output folder (workers on other machines keep their models in their own output
folders unless OUTPUT_FOLDER is shared). With ``RETRAIN`` the K members are trained again on
train + validation windows with the trial's hyperparameters for the number of epochs at which
the trial's validation loss was best (no early stopping is possible once validation is in the
training set), stored under ``retrained/<number>/``, and the manifest lists those. The validation
RMSE in the manifest stays the trial's (the retrained model has no held-out validation score);
test metrics in the report are those of the models the manifest lists.
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import Cancelled, DeformCastError
from .progress import Progress

PRUNERS = ("median", "hyperband", "none")
DEFAULT_WINDOW = 12  #: the hand-set window of ``train`` (used by default configurations)
JOURNAL_NAME = "study.journal"
MANIFEST = "manifest.json"
TRIALS_DIR = "trials"
RETRAINED_DIR = "retrained"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
ORPHAN_SECONDS = 20.0  #: a RUNNING trial without a worker name older than this is an orphan


# ------------------------------------------------------------------------------------------
# search space
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dim:
    """One dimension of the search space: ``fixed`` value, ``categorical`` choices or a range."""

    name: str
    kind: str  # "fixed" | "categorical" | "int" | "float"
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None
    value: Any = None

    def contains(self, value) -> bool:
        if self.kind == "fixed":
            return value == self.value
        if self.kind == "categorical":
            return value in self.choices
        try:
            return self.low <= float(value) <= self.high
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.value!r} (fixed)"
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        s = f"{self.kind} {self.low:g} .. {self.high:g}"
        if self.log:
            s += " (log)"
        if self.step:
            s += f" step {self.step:g}"
        return s


def _encoding_key(value) -> str:
    """An encoding set as a canonical comma string ("none" for nothing)."""
    if value is None:
        return "none"
    items = value if isinstance(value, (list, tuple)) else str(value).replace("+", ",").split(",")
    items = sorted({str(i).strip().lower() for i in items if str(i).strip()} - {"none"})
    return ",".join(items) if items else "none"


def build_search_space(architecture: str, overrides=None, window: Optional[int] = None,
                 encodings=None, max_window: Optional[int] = None) -> Dict[str, Dim]:
    """The TPE search space of ``architecture`` (registry ranges + ``overrides``).

    ``window``: a fixed window length (else the registry's ``DATA_SPACE`` range, capped at
    ``max_window``); ``encodings``: the fixed encoding set (else ``none``); ``overrides``: a dict
    or JSON text (see module doc). Unknown names are refused with the list of valid ones.
    """
    from .models import DATA_SPACE, get_spec

    spec = get_spec(architecture)
    defaults = spec.all_defaults()
    space: Dict[str, Dim] = {}
    for p in spec.all_space():
        if p.kind == "categorical":
            space[p.name] = Dim(p.name, "categorical", choices=tuple(p.choices))
        else:
            space[p.name] = Dim(p.name, p.kind, float(p.low), float(p.high), bool(p.log))
    if window:
        space["window"] = Dim("window", "fixed", value=int(window))
    else:
        for p in DATA_SPACE:
            if p.name == "window":
                hi = float(p.high) if max_window is None else float(max(min(p.high, max_window), p.low))
                space["window"] = Dim("window", "int", float(p.low), hi)
    space["encoding"] = Dim("encoding", "fixed", value=_encoding_key(encodings))
    ov = parse_search_space(overrides)
    valid = sorted(set(defaults) | {"window", "encoding"})
    for name, spec_v in ov.items():
        if name not in valid:
            raise DeformCastError(
                f"SEARCH_SPACE: unknown name '{name}' for {spec.name}. Valid names: {', '.join(valid)}.")
        space[name] = _dim_from_json(name, spec_v, defaults.get(name))
    if "window" in space and space["window"].kind in ("int", "float") and max_window is not None:
        d = space["window"]
        if d.low > max_window:
            raise DeformCastError(
                f"SEARCH_SPACE: window range starts at {d.low:g} epochs but the stack allows at most "
                f"{max_window}; lower the window range or use a longer stack.")
    if space["encoding"].kind == "categorical":
        space["encoding"] = Dim("encoding", "categorical",
                                choices=tuple(_encoding_key(c) for c in space["encoding"].choices))
    elif space["encoding"].kind == "fixed":
        space["encoding"] = Dim("encoding", "fixed", value=_encoding_key(space["encoding"].value))
    return space


def parse_search_space(value) -> Dict[str, Any]:
    from .jsonparam import json_object_param

    return json_object_param(
        value, "SEARCH_SPACE",
        'Example: {"lr": {"low": 0.0001, "high": 0.01, "log": true}, "layers": 1, "batch_size": [64, 128]}',
        "SEARCH_SPACE must be a JSON object {name: value | [choices] | {low, high}}.")


def _dim_from_json(name: str, v, default) -> Dim:
    if isinstance(v, list):
        if not v:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' has an empty list of choices.")
        return Dim(name, "categorical", choices=tuple(v))
    if isinstance(v, dict):
        if "choices" in v:
            return _dim_from_json(name, list(v["choices"]), default)
        if "value" in v:
            return Dim(name, "fixed", value=v["value"])
        if "low" not in v or "high" not in v:
            raise DeformCastError(
                f"SEARCH_SPACE: '{name}' needs 'low' and 'high' (or 'choices', or a plain value).")
        unknown = sorted(set(v) - {"low", "high", "log", "step", "type"})
        if unknown:
            raise DeformCastError(
                f"SEARCH_SPACE: '{name}' has the unknown key(s) {', '.join(unknown)}; a range takes low, high, "
                "and optionally log, step and type.")
        lo, hi = _range_number(name, "low", v["low"]), _range_number(name, "high", v["high"])
        if not lo <= hi:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' has low {lo:g} > high {hi:g}.")
        kind = v.get("type") or ("int" if isinstance(default, int) and not isinstance(default, bool)
                                 and float(lo).is_integer() and float(hi).is_integer() else "float")
        if name == "window":
            kind = "int"
        if kind not in ("int", "float"):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' type must be 'int' or 'float', not '{kind}'.")
        log = v.get("log", False)
        if not isinstance(log, bool):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' log must be true or false, not {log!r}.")
        if log and lo <= 0:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' log range needs low > 0.")
        step = v.get("step")
        if step is not None:
            step = _range_number(name, "step", step)
            if step <= 0 or step > hi - lo and hi > lo:
                raise DeformCastError(
                    f"SEARCH_SPACE: '{name}' step {step:g} must be positive and at most high - low ({hi - lo:g}).")
        if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' is a whole number; give whole low and high values.")
        return Dim(name, kind, lo, hi, log, float(step) if step else None)
    return Dim(name, "fixed", value=v)


def _range_number(name: str, key: str, v) -> float:
    """A finite number of a SEARCH_SPACE range (booleans and text refused, naming the entry)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise DeformCastError(
            f"SEARCH_SPACE: '{name}' {key} is {json_text(v)}, not a number. Example: "
            f'{{"{name}": {{"low": 0.0001, "high": 0.01}}}}.')
    return float(v)


def json_text(v) -> str:
    import json

    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def suggest(trial, space: Mapping[str, Dim]) -> Dict[str, Any]:
    """Draw one configuration from ``space`` through the Optuna ``trial``."""
    out: Dict[str, Any] = {}
    for name, d in space.items():
        if d.kind == "fixed":
            out[name] = d.value
        elif d.kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(d.choices))
        elif d.kind == "int":
            step = int(d.step) if d.step else 1
            if d.log:
                out[name] = trial.suggest_int(name, int(d.low), int(d.high), log=True)
            else:
                out[name] = trial.suggest_int(name, int(d.low), int(d.high), step=step)
        else:
            if d.step and not d.log:
                out[name] = trial.suggest_float(name, d.low, d.high, step=d.step)
            else:
                out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def default_config(architecture: str, space: Mapping[str, Dim], window_default: int) -> Dict[str, Any]:
    """The hand-set configuration of ``architecture`` expressed in the space's names."""
    from .models import get_spec

    cfg = dict(get_spec(architecture).all_defaults())
    w = space.get("window")
    cfg["window"] = w.value if (w is not None and w.kind == "fixed") else int(window_default)
    e = space.get("encoding")
    cfg["encoding"] = e.value if (e is not None and e.kind == "fixed") else "none"
    for name, d in space.items():
        if d.kind == "fixed":
            cfg[name] = d.value
    return cfg


def split_config(architecture: str, cfg: Mapping[str, Any]) -> Tuple[int, str, Dict[str, Any]]:
    """``(window, encoding key, model hyperparameters)`` of a flat configuration."""
    from .models import resolve_hparams

    hp = {k: v for k, v in cfg.items() if k not in ("window", "encoding")}
    return int(cfg["window"]), _encoding_key(cfg.get("encoding")), resolve_hparams(architecture, hp)


# ------------------------------------------------------------------------------------------
# storage, study, workers
# ------------------------------------------------------------------------------------------
def _quiet_optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # we run Optuna's ask/tell loop with our own heartbeat thread (see _Heartbeat)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def _no_log(p: Progress) -> Progress:
    """The same progress range and Cancel, without the per-epoch log lines of training."""
    return Progress(p._on_progress, p._is_cancelled, None, p.start, p.end)


def open_storage(storage: Optional[str], output_folder: str):
    """``(storage object, description)`` for ``STORAGE`` (empty: journal file in the folder)."""
    optuna = _quiet_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    s = (storage or "").strip()
    if not s:
        os.makedirs(output_folder, exist_ok=True)
        s = os.path.join(output_folder, JOURNAL_NAME)
    if "://" in s:
        if not s.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "mysql", "sqlite", "oracle", "mssql"):
            raise DeformCastError(
                f"STORAGE '{_mask(s)}' is not a database URL Optuna knows. Give postgresql://user@host/db, "
                "mysql+pymysql://user@host/db, sqlite:///path/to/file.db, a journal file path, "
                "or leave it empty for a journal file in OUTPUT_FOLDER.")
        full, secret = storage_url(s)
        masked = _mask(s)

        def clean(text) -> str:
            t = str(text).strip().splitlines()[0] if str(text).strip() else type(text).__name__
            return t.replace(secret, "***") if secret else t

        try:
            st = optuna.storages.RDBStorage(full, heartbeat_interval=60, grace_period=180)
        except ImportError as e:
            raise DeformCastError(
                f"STORAGE '{masked}' needs a database driver that is not installed ({clean(e)}). Install it "
                "(e.g. python3 -m pip install psycopg2-binary or pymysql) or use a journal file.") from None
        except Exception as e:  # noqa: BLE001 - database errors come in many types
            raise DeformCastError(
                f"Cannot open the Optuna storage '{masked}': {clean(e)}. Check the URL, the password (environment "
                f"variable {PASSWORD_ENV} or a pgpass file), that the database server is reachable and the "
                "database exists.") from None
        return st, masked
    path = os.path.abspath(s)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        raise DeformCastError(f"STORAGE: the folder of '{path}' does not exist. Create it or choose another path.")
    try:
        backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        return JournalStorage(backend), path
    except Exception as e:  # noqa: BLE001
        raise DeformCastError(f"Cannot open the journal file '{path}' as an Optuna study storage: {e}. "
                              "Use a new OUTPUT_FOLDER or delete the damaged file.") from None


#: environment variable holding the password of a database STORAGE (so it never is a parameter:
#: QGIS prints every parameter in the run log)
PASSWORD_ENV = "DEFORMCAST_STORAGE_PASSWORD"
#: pgpass-style file (``host:port:database:user:password`` per line, ``*`` matches anything); else
#: PGPASSFILE, else ~/.pgpass
PGPASS_ENV = "DEFORMCAST_PGPASS"


def _pgpass_lookup(path: str, host: str, port: str, database: str, user: str) -> Optional[str]:
    """The password of the first matching line of a pgpass-style file (libpq's rules)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for ln in lines:
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        fields, cur, esc = [], "", False
        for ch in ln:
            if esc:
                cur += ch
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == ":" and len(fields) < 4:
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        if len(fields) != 5:
            continue
        want = (host, port, database, user)
        if all(f == "*" or f == w for f, w in zip(fields[:4], want)):
            return fields[4]
    return None


def storage_url(url: str) -> Tuple[str, str]:
    """``(URL to connect with, password)`` of a database STORAGE URL.

    A URL without a password takes it from the environment variable ``DEFORMCAST_STORAGE_PASSWORD``,
    else from a pgpass-style file (``DEFORMCAST_PGPASS``, ``PGPASSFILE`` or ``~/.pgpass``; lines
    ``host:port:database:user:password``). A URL with a password still works but is warned about:
    QGIS prints every parameter, so the password would be in the run log.
    """
    if url.startswith("sqlite"):
        return url, ""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:  # noqa: BLE001 - let the storage report a malformed URL
        return url, ""
    if u.password:
        from .errors import warn

        warn("The STORAGE URL contains a password, and QGIS prints every parameter in the run log. Give the URL "
             f"without it (e.g. {u.drivername}://{u.username}@{u.host}/{u.database}) and put the password in the "
             f"environment variable {PASSWORD_ENV} or in a pgpass-style file (~/.pgpass, or the file named by "
             f"{PGPASS_ENV}: host:port:database:user:password).")
        return url, str(u.password)
    pw = os.environ.get(PASSWORD_ENV) or None
    if pw is None and u.username:
        default_port = {"postgresql": 5432, "mysql": 3306}.get(u.drivername.split("+", 1)[0], 0)
        for path in (os.environ.get(PGPASS_ENV), os.environ.get("PGPASSFILE"), os.path.expanduser("~/.pgpass")):
            if path and os.path.isfile(path):
                pw = _pgpass_lookup(path, u.host or "localhost", str(u.port or default_port), u.database or "",
                                    u.username)
                if pw is not None:
                    break
    if pw is None:
        return url, ""
    return u.set(password=pw).render_as_string(hide_password=False), pw


def _mask(url: str) -> str:
    """A database URL with its password hidden (for logs and reports)."""
    if "://" not in url or "@" not in url:
        return url
    head, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{head}://{user}:***@{host}"


def make_pruner(name: str, max_epochs: int):
    optuna = _quiet_optuna()
    key = (name or "median").strip().lower()
    if key == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=min(5, max(0, max_epochs // 4)))
    if key == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, int(max_epochs)), reduction_factor=3)
    if key == "none":
        return optuna.pruners.NopPruner()
    raise DeformCastError(f"PRUNER: unknown value '{name}'. Valid values: {', '.join(PRUNERS)}.")


_SETTINGS_DONE = "settings_complete"


def open_study(storage_obj, study_name: str, seed: int, pruner, settings: Mapping[str, Any], n_trials: int = 30,
               compare: bool = True):
    """Create or load the study; refuse to mix settings that make trials incomparable.

    Returns ``(study, created)``; ``created`` is False when another run made it first. With
    ``compare=False`` the caller checks an existing study's settings (``run_study`` does, with
    messages about the data identity).
    """
    optuna = _quiet_optuna()
    created = True
    try:
        study = optuna.create_study(storage=storage_obj, study_name=study_name, direction="minimize",
                                    load_if_exists=False, sampler=optuna.samplers.RandomSampler(seed), pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    if created:
        for k, v in settings.items():
            study.set_user_attr(k, v)
        study.set_user_attr(_SETTINGS_DONE, True)   # last: a worker that loads the study waits for it
    study = optuna.load_study(study_name=study_name, storage=storage_obj, pruner=pruner,
                              sampler=optuna.samplers.RandomSampler(seed))
    if not created:
        old = study.user_attrs
        # the creator may still be writing its settings (two workers started together): wait for the
        # marker it writes last, as long as the study has no trial yet (an older study never gets one)
        for _ in range(100):
            if _SETTINGS_DONE in old or study.get_trials(deepcopy=False):
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
    n_before = len(study.get_trials(deepcopy=False))
    sampler_seed = int(seed) if created else (int(seed) * 1_000_003 + 7919 * n_before + os.getpid()) % (2 ** 31)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed, multivariate=True, constant_liar=True,
                                               n_startup_trials=min(10, max(3, int(n_trials) // 3)))
    return study, created


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study) -> List[int]:
    """Mark FAIL the RUNNING trials of dead processes on this host; returns their numbers."""
    from optuna.trial import TrialState

    import datetime as _dt

    host = socket.gethostname()
    failed = []
    now = _dt.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = str(t.user_attrs.get("worker", ""))
        if ":" not in w:
            # a live worker names its trial right after asking; a nameless trial older than
            # ORPHAN_SECONDS belongs to a worker killed between the two calls
            dead = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > ORPHAN_SECONDS
        else:
            h, pid = w.rsplit(":", 1)
            dead = h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))
        if dead:
            try:
                study._storage.set_trial_user_attr(t._trial_id, "failed_reason", "worker process died")
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed.append(t.number)
            except Exception:  # noqa: BLE001 - another worker got there first
                pass
    try:
        import optuna

        optuna.storages.fail_stale_trials(study)  # RDB heartbeat (no-op for journal files)
    except Exception:  # noqa: BLE001
        pass
    return failed


class _Heartbeat:
    """Heartbeat thread for RDB storages (Optuna's own only runs inside study.optimize)."""

    def __init__(self, study, trial):
        self._stop = threading.Event()
        self._thread = None
        st = study._storage
        try:
            from optuna.storages._heartbeat import BaseHeartbeat

            ok = isinstance(st, BaseHeartbeat) and st.get_heartbeat_interval()
        except Exception:  # noqa: BLE001
            ok = False
        if ok:
            interval = st.get_heartbeat_interval()
            tid = trial._trial_id

            def beat():
                while not self._stop.is_set():
                    try:
                        st.record_heartbeat(tid)
                    except Exception:  # noqa: BLE001
                        pass
                    self._stop.wait(interval)

            self._thread = threading.Thread(target=beat, daemon=True)
            self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _counts(study) -> Tuple[int, list]:
    """``(finished trials, RUNNING trials)`` of the study."""
    from optuna.trial import TrialState

    finished = 0
    running = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished += 1
        elif t.state == TrialState.RUNNING:
            running.append(t)
    return finished, running


@dataclass
class WorkerStats:
    trials_run: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    surplus: bool = False
    stopped_by_timeout: bool = False
    seconds: float = 0.0
    errors: List[str] = field(default_factory=list)


def run_worker(study, objective: Callable, n_trials: int, timeout: Optional[float] = None,
               progress: Optional[Progress] = None, max_consecutive_failures: int = 3) -> WorkerStats:
    """Run trials of ``study`` until it has ``n_trials`` finished ones (all workers together).

    ``objective(trial, progress)`` returns the value to minimise or raises
    ``optuna.TrialPruned``; ``Cancelled`` marks the trial FAIL and is re-raised (finished trials
    stay in the storage); a :class:`DeformCastError` or other exception marks it FAIL and the
    worker goes on, unless ``max_consecutive_failures`` trials in a row failed (then the last
    error is raised so a broken configuration does not burn the budget).
    """
    optuna = _quiet_optuna()
    from optuna.trial import TrialState

    progress = progress or Progress()
    stats = WorkerStats()
    t0 = time.time()
    consecutive = 0
    while True:
        progress.check()
        fail_dead_local_trials(study)
        finished, running = _counts(study)
        progress.set(min(1.0, finished / max(1, n_trials)))
        if finished >= n_trials:
            break
        if finished + len(running) >= n_trials:
            if any(not t.user_attrs.get("worker") for t in running):
                # a trial being named by its worker right now, or one orphaned by a worker killed
                # between asking and naming it (failed after ORPHAN_SECONDS): look again shortly
                time.sleep(1.0)
                continue
            break
        if timeout and time.time() - t0 >= timeout:
            stats.stopped_by_timeout = True
            break
        trial = study.ask()
        trial.set_user_attr("worker", WORKER_ID)
        finished, running = _counts(study)
        ahead = [t for t in running if t.number < trial.number]
        if finished + len(ahead) >= n_trials:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            stats.surplus = True
            break
        stats.trials_run += 1
        base = min(finished, n_trials - 1) / max(1, n_trials)
        sub = progress.sub(base, min(1.0, base + 1.0 / max(1, n_trials)))
        hb = _Heartbeat(study, trial)
        t_start = time.time()
        try:
            value = objective(trial, sub)
        except optuna.TrialPruned:
            hb.stop()
            trial.set_user_attr("seconds", time.time() - t_start)
            study.tell(trial, state=TrialState.PRUNED)
            stats.pruned += 1
            consecutive = 0
            progress.log(f"Trial {trial.number}: pruned after {trial.user_attrs.get('epochs_run', '?')} epoch(s) "
                         f"({time.time() - t_start:.1f} s)")
            continue
        except Cancelled:
            hb.stop()
            _tell_fail(study, trial, "cancelled by the user")
            raise
        except (DeformCastError, RuntimeError, ValueError, FloatingPointError) as e:
            hb.stop()
            _tell_fail(study, trial, str(e))
            stats.failed += 1
            stats.errors.append(f"trial {trial.number}: {e}")
            progress.log(f"Trial {trial.number} failed: {e}")
            consecutive += 1
            if consecutive >= max_consecutive_failures:
                raise DeformCastError(
                    f"{consecutive} trials in a row failed; the last error: {e}. Check SEARCH_SPACE, "
                    "WINDOW and the input stack.") from None
            continue
        except BaseException:
            hb.stop()
            _tell_fail(study, trial, "interrupted")
            raise
        hb.stop()
        trial.set_user_attr("seconds", time.time() - t_start)
        if value is None or not math.isfinite(float(value)):
            _tell_fail(study, trial, "the validation score is not a finite number (training diverged)")
            stats.failed += 1
            consecutive += 1
            if consecutive >= max_consecutive_failures:
                raise DeformCastError(
                    f"{consecutive} trials in a row diverged (validation score not finite). Lower the "
                    "learning-rate range in SEARCH_SPACE.")
            continue
        study.tell(trial, float(value))
        stats.complete += 1
        consecutive = 0
        progress.log(f"Trial {trial.number}: validation RMSE {float(value):.4g} mm "
                     f"({time.time() - t_start:.1f} s)")
    stats.seconds = time.time() - t0
    return stats


def _tell_fail(study, trial, reason: str) -> None:
    from optuna.trial import TrialState

    try:
        trial.set_user_attr("failed_reason", reason[:500])
        study.tell(trial, state=TrialState.FAIL)
    except Exception:  # noqa: BLE001 - storage already closed the trial
        pass


# ------------------------------------------------------------------------------------------
# top-K folder
# ------------------------------------------------------------------------------------------
class _FolderLock:
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
        done = [t for t in done if _has_model(trial_dir(output_folder, t.number))]
    return done


def _has_model(path: str) -> bool:
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


# ------------------------------------------------------------------------------------------
# data + training glue
# ------------------------------------------------------------------------------------------
class DataCache:
    """Prepared datasets keyed by (window, encoding); the stack is split once per key."""

    def __init__(self, stack, dates, grid, horizon: int, covariates=None, seed: int = 0,
                 max_samples: int = 20000, prepare_kwargs: Optional[Mapping[str, Any]] = None):
        self.stack, self.dates, self.grid = stack, dates, grid
        if getattr(stack, "dates", None) is not None:  # a StackInfo knows its dates
            self.dates = stack.dates
        self.horizon = int(horizon)
        self.covariates = covariates
        self.seed = int(seed)
        self.max_samples = int(max_samples)
        self.kw = dict(prepare_kwargs or {})
        self._cache: Dict[Tuple[int, str], Any] = {}
        self._identity: Optional[Dict[str, Any]] = None  # stack_identity, computed once (run_study)

    def get(self, window: int, encoding: str, progress: Optional[Progress] = None):
        key = (int(window), _encoding_key(encoding))
        if key not in self._cache:
            from . import dataset

            self._fix_periods()
            enc = tuple(key[1].split(",")) if key[1] != "none" else ("none",)
            if "covariates" in enc and not self.covariates:
                raise DeformCastError(
                    "The encoding 'covariates' needs COVARIATES rasters; add them or remove 'covariates' "
                    "from ENCODING / the SEARCH_SPACE encoding choices.")
            self._cache[key] = dataset.prepare(
                self.stack, self.dates, self.grid, key[0], self.horizon, encodings=enc,
                covariates=self.covariates, max_samples=self.max_samples, seed=self.seed,
                progress=progress, **self.kw)
        return self._cache[key]

    def _T(self) -> int:
        return int(self.stack.n_epochs if hasattr(self.stack, "n_epochs") else np.asarray(self.stack).shape[0])

    def _fix_periods(self) -> None:
        """Fix the validation/test lengths once, so every window length sees the same periods."""
        if "n_val" in self.kw and "n_test" in self.kw:
            return
        from . import dataset

        nv, nt = dataset.validate_inputs(self._T(), 2, self.horizon, self.kw.get("n_val"), self.kw.get("n_test"))
        self.kw["n_val"], self.kw["n_test"] = nv, nt

    def max_window(self) -> int:
        """The longest window that leaves one training window before the validation period."""
        self._fix_periods()
        return max(2, self._T() - self.kw["n_val"] - self.kw["n_test"] - self.horizon)


def split_scores(model, samples, norm) -> Dict[str, float]:
    """Overall scores in mm (rmse, mae, r2, bias, n) of ``model`` on a split of windows."""
    from .training import evaluate_samples

    return evaluate_samples(model, samples, norm)["overall"]


def rmse_mm(model, samples, norm, device="cpu") -> float:
    """RMSE in mm of ``model`` on ``samples`` (the objective on the validation windows)."""
    return float(split_scores(model, samples, norm)["rmse"])


def _read_pixels(stack, pixel: np.ndarray, width: int) -> np.ndarray:
    """``(T, n)`` series of the flat pixel indices ``pixel`` from an array or a StackInfo."""
    from .raster import StackInfo, open_stack, read_stack, row_blocks

    if isinstance(stack, str):
        stack = open_stack(stack)
    if isinstance(stack, StackInfo):
        upix = np.unique(pixel)
        rows = upix // width
        out = np.full((stack.n_epochs, upix.size), np.nan, np.float32)
        for r0, r1 in row_blocks(stack.grid.height, 256):
            sel = (rows >= r0) & (rows < r1)
            if not sel.any():
                continue
            block = read_stack(stack, rows=(r0, r1))
            p = upix[sel]
            out[:, sel] = block.reshape(block.shape[0], -1)[:, p - r0 * width]
        return out[:, np.searchsorted(upix, pixel)]
    a = np.asarray(stack)
    return a.reshape(a.shape[0], -1)[:, pixel]


def baseline_scores(stack, dates, width: int, samples, names: Sequence[str] = None,
                    progress: Optional[Progress] = None) -> Dict[str, Dict[str, float]]:
    """Classical forecasts on exactly the (pixel, end epoch) pairs of ``samples``, scored.

    Each baseline is fitted per pixel on the history up to the sample's last input epoch and
    evaluated at the same target epochs the networks forecast, so the table compares like with
    like. Returns ``{baseline: metrics.scores}``.
    """
    from . import baselines as bl
    from .metrics import scores

    names = list(names or bl.BASELINES)
    dates = np.asarray(dates, dtype="datetime64[D]")
    truth = np.asarray(samples.truth, dtype=np.float64)
    horizon = truth.shape[1]
    series = _read_pixels(stack, np.asarray(samples.pixel), width)
    preds = {n: np.full(truth.shape, np.nan) for n in names}
    ends = np.asarray(samples.end)
    uends = np.unique(ends)
    for i, e in enumerate(uends):
        if progress is not None:
            progress.set(i / max(1, uends.size))
        sel = np.nonzero(ends == e)[0]
        hd = dates[int(e) + 1:int(e) + 1 + horizon]
        fc = bl.forecast_baselines(series[:, sel], dates, int(e), hd, names=names)
        for n in names:
            preds[n][sel, :hd.size] = fc[n].T
    return {n: scores(preds[n], truth) for n in names}


def _model_meta(res, prep, grid, encoding_key: str, cfg: Mapping[str, Any], val_rmse: float,
                seed: int, extra: Optional[Mapping[str, Any]] = None, norm: Optional[dict] = None) -> Dict[str, Any]:
    from .modelio import grid_to_dict

    meta = {
        "architecture": res.architecture, "hparams": dict(res.hparams), "n_features": int(res.n_features),
        "window": int(res.window), "horizon": int(res.horizon),
        "feature_names": list(getattr(prep, "feature_names", []) or []),
        "encodings": list(encoding_key.split(",")) if encoding_key != "none" else ["none"],
        "normalisation": prep.norm if norm is None else norm, "data_config": prep.config, "grid": grid_to_dict(grid),
        "validation": {"val_loss": float(res.best_val_loss), "val_rmse_mm": float(val_rmse),
                       "best_epoch": int(res.best_epoch), "epochs_run": int(res.epochs_run)},
        "seed": int(seed), "search_config": {k: v for k, v in cfg.items()},
    }
    if extra:
        meta.update(extra)
    return meta


# ------------------------------------------------------------------------------------------
# the study
# ------------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    output_folder: str
    study_name: str
    storage: str
    manifest: Optional[str]
    trials_csv: Optional[str]
    report: Optional[str]
    best_value: float
    best_params: Dict[str, Any]
    best_trial: int
    n_complete: int
    n_pruned: int
    n_failed: int
    top: List[Dict[str, Any]]
    baselines: Dict[str, Dict[str, float]]
    worker: WorkerStats
    wall_seconds: float
    study_seconds: float
    default_val_rmse: Optional[float] = None
    gate: Optional[Dict[str, Any]] = None  # rolling-origin evaluation and skill gate (skill_gate.run_gate)
    study_folder: Optional[str] = None  # <output_folder>/studies/<study name>


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
    from .modelio import DataFingerprint
    from .raster import StackInfo, iso, read_stack, row_blocks

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


def _covariates_fingerprint(covariates) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(covariates or {}):
        h.update(name.encode())
        h.update(np.nan_to_num(np.asarray(covariates[name], np.float32), nan=-9.87654e30).tobytes())
    return "sha256:" + h.hexdigest()


def _jsonable(v):
    import json

    return json.loads(json.dumps(v, default=str, sort_keys=True))


#: a RUNNING trial of another worker is waited for at most this long (s) before the top-K folder
#: is built without it (that worker rebuilds the folder when it finishes)
WAIT_OTHERS_SECONDS = 900.0
STUDIES_DIR = "studies"


def _check_identity(study_name: str, old: Mapping[str, Any], identity: Mapping[str, Any],
                    config: Mapping[str, Any], grid_d: Mapping[str, Any], input_label: str) -> None:
    """Refuse to continue a study on other data, another grid or another configuration."""
    fix_new = ("Leave STUDY_NAME empty (each input then gets its own study), use a new "
               "OUTPUT_FOLDER, or give the study's own input and settings to continue it.")
    if int(old.get("deformcast_study", 0) or 0) < 2 or not old.get("data_fingerprint"):
        raise DeformCastError(
            f"The study '{study_name}' in this storage was made by an earlier DeformCast without a data "
            "fingerprint, so this run cannot check that it continues on the same data. " + fix_new)
    if old.get("grid") and _jsonable(old["grid"]) != _jsonable(grid_d):
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
             if _jsonable(old.get(k)) != _jsonable(v)]
    if diffs:
        raise DeformCastError(
            f"The study '{study_name}' already exists in this storage with other settings (" + "; ".join(diffs)
            + "). Trials with different settings are not comparable: use a new STUDY_NAME or OUTPUT_FOLDER, or "
            "run with the study's settings to continue it.")


def run_study(stack, dates, grid, architecture: str, horizon: int, output_folder: str, *,
              n_trials: int = 30, timeout: Optional[float] = None, top_k: int = 10,
              storage: Optional[str] = None, study_name: Optional[str] = None, seed: int = 42,
              pruner: str = "median", search_space=None, window: Optional[int] = None,
              encodings=None, covariates=None, max_epochs: int = 30, patience: int = 6,
              retrain: bool = False, device: str = "auto", threads: Optional[int] = None,
              report_path: Optional[str] = None, max_samples: int = 20000,
              prepare_kwargs: Optional[Mapping[str, Any]] = None, data: Optional[DataCache] = None,
              evaluate_test: bool = True, write_outputs: bool = True, start_from_defaults: bool = True,
              progress: Optional[Progress] = None, input_label: str = "") -> TuneResult:
    """Run (or continue, or join) a TPE study and build the top-K model folder. See module doc.

    ``stack``: float32 ``(T, H, W)`` mm (NaN nodata) or a :class:`raster.StackInfo`;
    ``dates``: datetime64[D] ``(T,)``; ``grid``: :class:`raster.Grid`. Returns :class:`TuneResult`.
    With ``write_outputs=False`` (used by ``compare``) no trials CSV/report is written but the
    top-K folder is still built.

    The study lives in its own folder ``<output_folder>/studies/<study name>/`` (journal, trials,
    manifest, trials CSV, default report); the study name is made of the architecture, horizon,
    encoding and data fingerprint unless ``study_name`` is given. ``<output_folder>/manifest.json``
    lists the members of the study that finished last (paths into its folder): what ``predict``
    reads when given ``output_folder``.
    """
    from .errors import warn
    from .modelio import grid_to_dict
    from .models import get_spec
    from .training import resolve_device, train_model

    optuna = _quiet_optuna()
    from optuna.trial import TrialState

    t_wall = time.time()
    progress = progress or Progress()
    spec = get_spec(architecture)
    horizon = int(horizon)
    if horizon < 1:
        raise DeformCastError(f"HORIZON must be at least 1 epoch (got {horizon}).")
    if int(n_trials) < 1:
        raise DeformCastError(f"N_TRIALS must be at least 1 (got {n_trials}).")
    top_k = int(top_k)
    if top_k < 1:
        raise DeformCastError(f"TOP_K must be at least 1 (got {top_k}).")
    if int(max_epochs) < 1:
        raise DeformCastError(f"MAX_EPOCHS must be at least 1 (got {max_epochs}).")
    if timeout is not None and float(timeout) <= 0:
        timeout = None
    device = resolve_device(device)
    root = os.path.abspath(output_folder)
    if os.path.isfile(root):
        raise DeformCastError(f"OUTPUT_FOLDER '{root}' is a file; give a folder path.")
    os.makedirs(root, exist_ok=True)

    data = data or DataCache(stack, dates, grid, horizon, covariates=covariates, seed=seed,
                             max_samples=max_samples, prepare_kwargs=prepare_kwargs)
    space = build_search_space(spec.name, search_space, window=window, encodings=encodings,
                               max_window=data.max_window())
    # --- what the study is: data, grid and configuration --------------------------------------
    if getattr(data, "_identity", None) is None:
        data._identity = stack_identity(data.stack, data.dates, grid)
    identity = dict(data._identity)
    enc_dim = space["encoding"]
    enc_choices = [enc_dim.value] if enc_dim.kind == "fixed" else list(enc_dim.choices or ())
    uses_cov = any("covariates" in str(c).split(",") for c in enc_choices)
    from .raster import few_pixels_message
    from .readers import unused_covariates_message

    for msg in (unused_covariates_message(list(data.covariates or {}), enc_choices),
                few_pixels_message(identity["n_valid_pixels"])):
        if msg:
            warn(msg)
    if uses_cov:
        identity["covariates_fingerprint"] = _covariates_fingerprint(data.covariates)
    enc_label = enc_dim.value if enc_dim.kind == "fixed" else "searched"
    given_name = (study_name or "").strip()
    study_name = given_name or default_study_name(spec.name, horizon, enc_label, identity["data_fingerprint"])
    folder = study_folder(root, study_name)
    os.makedirs(folder, exist_ok=True)
    grid_d = grid_to_dict(grid)
    config = {"architecture": spec.name, "horizon": horizon, "max_epochs": int(max_epochs),
              "patience": int(patience), "max_samples": int(data.max_samples),
              "space": {k: d.describe() for k, d in space.items()},
              "data_preparation": {k: v for k, v in data.kw.items()},
              "covariates_fingerprint": identity.get("covariates_fingerprint")}
    settings = dict(config, deformcast_study=2, grid=grid_d, input=input_label or "",
                    **{k: identity[k] for k in ("data_fingerprint", "n_epochs", "first", "last")})
    if os.path.isfile(os.path.join(root, JOURNAL_NAME)):
        progress.log(f"'{root}' holds a study of an earlier DeformCast ({JOURNAL_NAME} and trials/ at its top, models "
                     f"without a data fingerprint); it is left as it is, and this study works in {folder}.")
    storage_obj, storage_desc = open_storage(storage, folder)
    study, created = open_study(storage_obj, study_name, seed, make_pruner(pruner, int(max_epochs)),
                                _jsonable(settings), n_trials=int(n_trials), compare=False)
    if not created:
        _check_identity(study_name, study.user_attrs, identity, _jsonable(config), grid_d, input_label or "")
    if created and start_from_defaults:
        # trial 0 is the hand-set configuration (Optuna's enqueue_trial): the search starts from
        # the defaults, and the report can say how much tuning gained over them
        cfg0 = default_config(spec.name, space, DEFAULT_WINDOW)
        params0 = {k: cfg0[k] for k, d in space.items() if d.kind != "fixed" and k in cfg0 and d.contains(cfg0[k])}
        study.enqueue_trial(params0, user_attrs={"hand_set_defaults": True}, skip_if_exists=True)
    progress.log(f"Study '{study_name}' in {storage_desc}: "
                 f"{'created' if created else 'continuing with ' + str(len(study.trials)) + ' trials'} "
                 f"(data fingerprint {identity['data_fingerprint'][7:19]}, {identity['n_epochs']} epochs "
                 f"{identity['first']} .. {identity['last']}).")
    man_path = os.path.join(folder, MANIFEST)
    stack_path = os.path.abspath(data.stack.path) if hasattr(data.stack, "path") else ""
    model_extra = {"data_fingerprint": identity["data_fingerprint"], "dates": [str(d) for d in
                   np.asarray(data.dates, dtype="datetime64[D]")], "study_name": study_name}
    if stack_path:
        model_extra["stack"] = stack_path
    if identity.get("covariates_fingerprint"):
        model_extra["covariates_fingerprint"] = identity["covariates_fingerprint"]

    def objective(trial, sub: Progress):
        cfg = suggest(trial, space)
        w, enc, hp = split_config(spec.name, cfg)
        prep = data.get(w, enc)

        def on_epoch(epoch, val_loss):
            trial.report(float(val_loss), int(epoch))
            if trial.should_prune():
                trial.set_user_attr("epochs_run", int(epoch) + 1)
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, spec.name, hp, device=device,
                          seed=int(seed) + trial.number, max_epochs=int(max_epochs), patience=int(patience),
                          progress=_no_log(sub.sub(0.0, 0.97)), epoch_callback=on_epoch, threads=threads)
        val_rmse = rmse_mm(res.model, prep.val, prep.norm)
        trial.set_user_attr("epochs_run", int(res.epochs_run))
        trial.set_user_attr("best_epoch", int(res.best_epoch))
        trial.set_user_attr("val_loss", float(res.best_val_loss))
        trial.set_user_attr("n_parameters", int(res.n_parameters))
        if math.isfinite(val_rmse):
            from .modelio import save_model
            from .training import weighted_norm

            # the saved member carries the weight of its correction fitted on the validation
            # windows (see training.correction_weight); the objective stays the network's own RMSE
            norm_m = weighted_norm(res.model, prep.val, prep.norm, prep.config)
            extra = dict(model_extra, trial=trial.number)
            if "correction_weight" in norm_m:
                trial.set_user_attr("correction_weight_mean", float(np.mean(norm_m["correction_weight"])))
            save_model(trial_dir(folder, trial.number), res.model,
                       _model_meta(res, prep, grid, enc, cfg, val_rmse, int(seed) + trial.number, extra,
                                   norm=norm_m))
        sub.set(1.0)
        return val_rmse

    # leave finished trials' models of an earlier, killed run alone; trials it left RUNNING are failed
    run_p = progress.sub(0.0, 0.85)
    stats = run_worker(study, objective, int(n_trials), timeout, run_p)
    # trials other workers are still running belong in the top-K set: wait for them, so this worker
    # never writes a manifest without them (and join in again if one of them failed)
    while not stats.stopped_by_timeout:
        _wait_for_others(study, run_p)
        finished, running = _counts(study)
        if finished >= int(n_trials) or running:
            break
        more = run_worker(study, objective, int(n_trials), timeout, run_p)
        for f in ("trials_run", "complete", "pruned", "failed"):
            setattr(stats, f, getattr(stats, f) + getattr(more, f))
        stats.errors += more.errors
        stats.surplus |= more.surplus
        stats.stopped_by_timeout |= more.stopped_by_timeout
        if more.trials_run == 0:
            break
    if stats.stopped_by_timeout:
        _wait_for_others(study, run_p)

    # ---- finish: top-K set, manifest, CSV, report (whoever finishes; idempotent) ----------
    fin = progress.sub(0.85, 1.0)
    trials = study.get_trials(deepcopy=False)
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    n_failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials)
    rel_folder = os.path.relpath(folder, root)
    top_path = os.path.join(root, MANIFEST)
    with _FolderLock(folder), _FolderLock(root):
        if os.path.exists(man_path):  # about to change the members: the old manifest goes first
            os.remove(man_path)
        if _manifest_study(top_path) == rel_folder:  # the folder's manifest points at this study's members
            os.remove(top_path)
        prune_trial_folders(study, folder, top_k)
        ranked = ranked_trials(study, folder)[:top_k]
        if not ranked:
            reasons = sorted({str(t.user_attrs.get("failed_reason")) for t in trials
                              if t.state == TrialState.FAIL and t.user_attrs.get("failed_reason")})
            raise DeformCastError(
                f"The study '{study_name}' has no complete trial with a saved model in this folder "
                f"({n_pruned} pruned, {n_failed} failed"
                + (f"; e.g. {reasons[0]}" if reasons else "") + "). Increase N_TRIALS or TIMEOUT, use "
                "PRUNER none, or check SEARCH_SPACE.")
        members = []
        for i, t in enumerate(ranked):
            fin.sub(0.0, 0.5).set(i / max(1, len(ranked)))
            mfolder = os.path.relpath(trial_dir(folder, t.number), folder)
            if retrain:
                mfolder = _retrain(t, data, spec.name, folder, grid, device, threads, seed, study_name,
                                   fin.sub(0.5 * i / len(ranked), 0.5 * (i + 1) / len(ranked)))
            members.append({"folder": mfolder, "trial": t.number, "val_rmse_mm": float(t.value),
                            "params": dict(t.params), "retrained": bool(retrain)})
        # test metrics of the members (after tuning; never fed back into the study)
        top_rows: List[Dict[str, Any]] = []
        bscores: Dict[str, Dict[str, float]] = {}
        if evaluate_test:
            from .modelio import load_model

            ref_prep = None
            for i, m in enumerate(members):
                fin.sub(0.5, 0.8).set(i / max(1, len(members)))
                lm = load_model(os.path.join(folder, m["folder"]))
                prep = data.get(int(lm.meta["window"]), _encoding_key(lm.meta.get("encodings")))
                s = split_scores(lm.model, prep.test, lm.meta.get("normalisation") or prep.norm)
                m.update({"test_rmse_mm": s["rmse"], "test_mae_mm": s["mae"], "test_r2": s["r2"]})
                ref_prep = ref_prep or prep
            # baselines on the test samples of the best member's preparation
            if ref_prep is not None:
                bscores = baseline_scores(data.stack, data.dates, grid.width, ref_prep.test,
                                          progress=fin.sub(0.8, 0.9))
        for rank, m in enumerate(members, start=1):
            top_rows.append(dict(m, rank=rank))
        from .modelio import write_manifest

        extra = {"study_name": study_name, "storage": storage_desc, "objective": "validation RMSE (mm)",
                 "n_trials": len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]),
                 "top_k": top_k, "retrained": bool(retrain), "data_fingerprint": identity["data_fingerprint"],
                 "input": input_label or ""}
        if write_outputs:
            csv_path = write_trials_csv(study, os.path.join(folder, "trials.csv"))
        else:
            csv_path = None
        study_seconds = _study_seconds(study)
        result = TuneResult(root, study_name, storage_desc, None, csv_path, None,
                            float(ranked[0].value), dict(ranked[0].params), int(ranked[0].number),
                            n_complete, n_pruned, n_failed, top_rows, bscores, stats,
                            time.time() - t_wall, study_seconds)
        result.study_folder = folder
        d0 = [t for t in trials if t.user_attrs.get("hand_set_defaults") and t.state == TrialState.COMPLETE]
        result.default_val_rmse = float(d0[0].value) if d0 else None
        if write_outputs:
            rp = report_path or os.path.join(folder, "tune_report.html")
            result.report = write_report(result, study, space, rp, spec.name, horizon, pruner)
        write_manifest(folder, members, extra)  # last: the study folder is complete
        # the output folder's manifest: this study's members (paths into its folder)
        result.manifest = write_manifest(
            root, [dict(m, folder=os.path.join(rel_folder, m["folder"])) for m in members],
            dict(extra, study_folder=rel_folder))
    fin.set(1.0)
    result.wall_seconds = time.time() - t_wall
    return result


def _manifest_study(path: str) -> Optional[str]:
    """The ``study_folder`` a manifest was written for (None: none, or not a tune manifest)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh).get("study_folder")
    except (OSError, ValueError, AttributeError):
        return None


def _wait_for_others(study, progress: Progress, limit: Optional[float] = None) -> None:
    """Wait until the trials other workers are running now have finished (or failed)."""
    from optuna.trial import TrialState

    limit = WAIT_OTHERS_SECONDS if limit is None else float(limit)
    _, running = _counts(study)
    waiting = {t.number for t in running}
    if not waiting:
        return
    progress.log(f"Waiting for trial(s) {', '.join(map(str, sorted(waiting)))} of other workers to finish before the "
                 "top-K models are chosen ...")
    t0 = time.time()
    while waiting:
        progress.check()
        fail_dead_local_trials(study)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        waiting = {n for n in waiting if states.get(n) in (TrialState.RUNNING, TrialState.WAITING)}
        if not waiting:
            break
        if time.time() - t0 > limit:
            progress.log(f"Trial(s) {', '.join(map(str, sorted(waiting)))} still run after {limit:.0f} s; the top-K "
                         "models are chosen without them (their worker rebuilds the folder when it finishes).")
            break
        time.sleep(0.5)


def _retrain(t, data: DataCache, architecture: str, output_folder: str, grid, device, threads, seed,
             study_name: str, progress: Progress) -> str:
    """Train trial ``t``'s configuration on train + validation for its best epoch count."""
    from .modelio import read_meta, save_model
    from .training import train_model

    rel = os.path.join(RETRAINED_DIR, f"{t.number:06d}")
    dest = os.path.join(output_folder, rel)
    if _has_model(dest):
        return rel
    meta = read_meta(trial_dir(output_folder, t.number))
    cfg = dict(meta["search_config"])
    w, enc, hp = split_config(architecture, cfg)
    prep = data.get(w, enc)
    epochs = int(meta["validation"]["best_epoch"]) + 1
    X = np.concatenate([prep.train.X, prep.val.X])
    Y = np.concatenate([prep.train.Y, prep.val.Y])
    # validation windows are now training data: the validation loss is only monitored (patience
    # larger than the run, so it never stops early) and the run lasts the trial's best epoch count
    res = train_model(X, Y, prep.val.X, prep.val.Y, architecture, hp, device=device, seed=int(seed) + t.number,
                      max_epochs=epochs, patience=epochs + 1, progress=_no_log(progress), threads=threads)
    # the validation windows are training data now: keep the correction weight the trial fitted
    # on them while they were held out
    norm = dict(prep.norm)
    if "correction_weight" in (meta.get("normalisation") or {}):
        norm["correction_weight"] = meta["normalisation"]["correction_weight"]
    ident = {k: meta[k] for k in ("data_fingerprint", "dates", "stack", "covariates_fingerprint") if k in meta}
    save_model(dest, res.model, _model_meta(res, prep, grid, enc, cfg, float(t.value), int(seed) + t.number,
                                            dict(ident, trial=t.number, study_name=study_name,
                                                 retrained_on="train+validation", epochs=epochs), norm=norm))
    return rel


def _study_seconds(study) -> float:
    """Wall time of the study: first trial start to last trial end (all workers, all runs)."""
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    ends = [t.datetime_complete for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    if not starts or not ends:
        return 0.0
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def write_trials_csv(study, path: str) -> str:
    """One row per trial: number, state, value, duration, worker, epochs, parameters."""
    trials = study.get_trials(deepcopy=False)
    pnames = sorted({k for t in trials for k in t.params})
    cols = ["number", "state", "val_rmse_mm", "seconds", "epochs_run", "best_epoch", "n_parameters",
            "worker", "note"] + pnames
    tmp = path + ".part"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for t in trials:
            dur = (t.datetime_complete - t.datetime_start).total_seconds() if (
                t.datetime_complete and t.datetime_start) else ""
            note = ("surplus (study already full)" if t.user_attrs.get("surplus")
                    else "hand-set defaults" if t.user_attrs.get("hand_set_defaults")
                    else t.user_attrs.get("failed_reason", ""))
            w.writerow([t.number, t.state.name, "" if t.value is None else t.value, dur,
                        t.user_attrs.get("epochs_run", ""), t.user_attrs.get("best_epoch", ""),
                        t.user_attrs.get("n_parameters", ""), t.user_attrs.get("worker", ""), note]
                       + [t.params.get(k, "") for k in pnames])
    os.replace(tmp, path)
    return path


def param_importances(study) -> Tuple[Dict[str, float], str]:
    """``(importances, method)``; graceful with few trials (empty dict and the reason)."""
    optuna = _quiet_optuna()
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varying = [k for k in {k for t in done for k in t.params} if len({repr(t.params.get(k)) for t in done}) > 1]
    if len(done) < 4 or not varying:
        return {}, (f"Parameter importances need at least 4 complete trials with varying parameters "
                    f"(this study has {len(done)}).")
    try:
        from optuna.importance import PedAnovaImportanceEvaluator

        imp = optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        if imp and all(math.isfinite(v) for v in imp.values()) and sum(imp.values()) > 0:
            return dict(imp), "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
    except Exception:  # noqa: BLE001 - fall back below
        pass
    try:
        imp = optuna.importance.get_param_importances(study)
        return dict(imp), "fANOVA (optuna.importance default)"
    except Exception:  # noqa: BLE001 - fANOVA needs scikit-learn
        pass
    # fallback: |Spearman rank correlation| between parameter and validation RMSE, normalised
    from scipy.stats import spearmanr

    vals = np.array([t.value for t in done], dtype=float)
    imp = {}
    for k in varying:
        raw = [t.params.get(k) for t in done]
        try:
            x = np.array([float(v) for v in raw])
        except (TypeError, ValueError):
            cats = sorted({repr(v) for v in raw})
            x = np.array([cats.index(repr(v)) for v in raw], dtype=float)
        r = spearmanr(x, vals).correlation if np.ptp(x) > 0 else 0.0
        imp[k] = abs(float(r)) if r == r else 0.0
    tot = sum(imp.values()) or 1.0
    return ({k: v / tot for k, v in sorted(imp.items(), key=lambda kv: -kv[1])},
            "normalised |Spearman rank correlation| with the validation RMSE (fallback)")


def write_report(result: TuneResult, study, space: Mapping[str, Dim], path: str, architecture: str,
                 horizon: int, pruner: str) -> str:
    """The HTML report: history, importances, best parameters, top-K with test metrics, baselines."""
    from optuna.trial import TrialState

    from .report import Report, new_figure

    rep = Report(f"Hyperparameter tuning: {architecture}, horizon {horizon}")
    rep.paragraph(
        f"Study '{result.study_name}' in {result.storage}. Sampler: TPE (multivariate, seeded); pruner: "
        f"{pruner}. {result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed trials. "
        f"Objective: validation RMSE in mm (the test period was not used for tuning). Study wall time "
        f"{result.study_seconds:.1f} s (first trial start to last trial end, all workers); this run "
        f"{result.wall_seconds:.1f} s, {result.worker.trials_run} trial(s) run by this worker.")
    trials = study.get_trials(deepcopy=False)
    # --- optimisation history
    comp = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if comp:
        fig = new_figure(7.5, 3.6)
        ax = fig.add_subplot(111)
        xs = [t.number for t in comp]
        ys = [t.value for t in comp]
        ax.scatter(xs, ys, s=18, color="#1f77b4", label="complete trial")
        pr = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
        if pr:
            ax2 = ax.twinx()
            ax2.scatter([t.number for t in pr], [min(t.intermediate_values.values()) for t in pr], s=14,
                        marker="x", color="#999999", label="pruned (best val. loss, right axis)")
            ax2.set_ylabel("val. loss (normalised)", color="#777777")
            ax2.legend(loc="upper center", fontsize=8)
        order = sorted(comp, key=lambda t: t.number)
        best, bx, by = math.inf, [], []
        for t in order:
            best = min(best, t.value)
            bx.append(t.number)
            by.append(best)
        ax.step(bx, by, where="post", color="#d62728", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("validation RMSE (mm)")
        ax.legend(loc="upper right", fontsize=8)
        rep.heading("Optimisation history")
        rep.figure(fig, "Validation RMSE of each complete trial and the best so far.")
    # --- importances
    rep.heading("Parameter importances")
    imp, method = param_importances(study)
    if imp:
        fig = new_figure(6.5, 0.4 * len(imp) + 1.0)
        ax = fig.add_subplot(111)
        names = list(imp)[::-1]
        ax.barh(names, [imp[k] for k in names], color="#2a7ab0")
        ax.set_xlabel("importance (sums to 1)")
        rep.figure(fig, f"Method: {method}.")
    else:
        rep.note(method)
    # --- best params
    rep.heading("Best parameters")
    rep.table([[k, v] for k, v in sorted(result.best_params.items())], ["parameter", "value"], digits=4)
    rep.paragraph(f"Best trial {result.best_trial}: validation RMSE {result.best_value:.4g} mm.")
    if result.default_val_rmse is not None:
        gain = 100.0 * (1.0 - result.best_value / result.default_val_rmse) if result.default_val_rmse > 0 else float("nan")
        rep.paragraph(f"Trial 0 ran the hand-set defaults: validation RMSE {result.default_val_rmse:.4g} mm; the best "
                      f"trial is {gain:.1f} % lower (one seed each, so part of a small difference is seed noise).")
    rep.heading("Search space")
    rep.table([[k, d.describe()] for k, d in space.items()], ["parameter", "range"])
    # --- top-K with test metrics and baselines
    rep.heading(f"Top {len(result.top)} models and the classical baselines (test period)")
    rows = []
    for m in result.top:
        rows.append([f"#{m['rank']} trial {m['trial']}" + (" (retrained)" if m.get("retrained") else ""),
                     m.get("val_rmse_mm"), m.get("test_rmse_mm"), m.get("test_mae_mm"), m.get("test_r2")])
    for name, s in sorted(result.baselines.items(), key=lambda kv: kv[1].get("rmse", math.inf)):
        rows.append([f"baseline: {name}", None, s.get("rmse"), s.get("mae"), s.get("r2")])
    rep.table(rows, ["model", "val. RMSE (mm)", "test RMSE (mm)", "test MAE (mm)", "test R²"], highlight=0)
    if result.baselines:
        best_b = min(result.baselines.items(), key=lambda kv: kv[1].get("rmse", math.inf))
        if result.top and result.top[0].get("test_rmse_mm") is not None:
            d = result.top[0]["test_rmse_mm"] - best_b[1]["rmse"]
            rep.paragraph(
                f"Best tuned model vs best baseline ({best_b[0]}) on the same test pixels and epochs: "
                f"{result.top[0]['test_rmse_mm']:.4g} vs {best_b[1]['rmse']:.4g} mm "
                f"({'lower' if d < 0 else 'higher'} by {abs(d):.3g} mm).")
    rep.paragraph("Baselines are fitted per pixel on the history up to each test window's last input epoch "
                  "and scored at the same target epochs as the networks.", "muted")
    if result.worker.errors:
        rep.heading("Failed trials (this worker)")
        for e in result.worker.errors[:20]:
            rep.paragraph(e, "muted")
    return rep.save(path)


def load_inputs(stack_path: str, dates=None, covariate_paths: Sequence[str] = (), progress: Optional[Progress] = None):
    """``(StackInfo, covariates dict or None)`` from file paths (the Processing inputs)."""
    from .raster import open_stack, parse_dates_param

    if not stack_path:
        raise DeformCastError("INPUT: give the displacement stack (a multiband raster, one band per date).")
    info = open_stack(stack_path, parse_dates_param(dates) if isinstance(dates, str) else dates)
    cov = None
    if covariate_paths:
        from .readers import align_covariates

        cov = align_covariates(list(covariate_paths), info.grid, progress=progress)
    return info, cov


def tune_job(stack_path: str, output_folder: str, architecture: str, horizon: int, *, dates=None,
             covariates: Sequence[str] = (), report_path: Optional[str] = None,
             progress: Optional[Progress] = None, gate: bool = True, **kw) -> TuneResult:
    """The ``tune`` Processing algorithm without QGIS: read the inputs, run :func:`run_study`, then
    (``gate``) the rolling-origin evaluation and skill gate of :mod:`skill_gate` on the top-K folder
    (``rolling_origins.csv`` beside the manifest; ``predict`` applies the gate).

    Defaults are the measured-best configuration (issue 12): empty ``encodings`` = trajectory +
    regime where the series allows it, and ``prepare_kwargs`` default to the residual target, the
    ``adaptive`` anchor and spatial validation."""
    progress = progress or Progress()
    info, cov = load_inputs(stack_path, dates, covariates, progress.sub(0.0, 0.02))
    from . import dataset

    pk = dict(MODEL_DEFAULTS)
    pk.update(kw.pop("prepare_kwargs", None) or {})
    if dataset.is_auto(kw.get("encodings")):
        kw["encodings"] = dataset.auto_encodings(info.dates, horizon, pk["validation"])
        progress.log(f"Coding strategy: {', '.join(kw['encodings'])}; anchor {pk['baseline']}; validation "
                     f"{pk['validation']}.")
    res = run_study(info, info.dates, info.grid, architecture, horizon, output_folder, covariates=cov,
                    report_path=report_path, progress=progress.sub(0.02, 0.96 if gate else 1.0),
                    input_label=os.path.basename(stack_path), prepare_kwargs=pk, **kw)
    if gate and kw.get("write_outputs", True):
        from . import skill_gate

        res.gate = skill_gate.run_gate(stack_path, output_folder, dates=dates, covariates=covariates,
                                       device=kw.get("device", "auto"),
                                       csv_path=os.path.join(output_folder, "rolling_origins.csv"),
                                       progress=progress.sub(0.96, 1.0))
        if res.report and os.path.exists(res.report):
            skill_gate.append_to_report(res.report, res.gate)
    return res


#: The data preparation of every entrance (tune, train, workflow): the configuration measured best
#: over varied physics (docs/skill.md). ``tune_job`` and ``run_training_job`` start from these.
MODEL_DEFAULTS = {"target": "residual", "baseline": "adaptive", "validation": "space"}
