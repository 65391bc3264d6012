"""Hyperparameter search with Optuna TPE: resumable, multi-worker, keeps the top-K models.

The package: :mod:`.space` (search space), :mod:`.storage` (journal/RDB, credentials),
:mod:`.study` (name, identity, sampler, pruner), :mod:`.worker` (``study.optimize`` loop, exact
totals, orphans), :mod:`.patience`, :mod:`.prior` (warm start), :mod:`.objective` (data cache,
one trial, retraining), :mod:`.topk` (top-K folders), :mod:`.report` (CSV, HTML, baselines) and
:mod:`.job` (``run_study``, ``tune_job``). Only Optuna's public API is used.

What ``tune`` does
------------------
1. Prepares the training/validation/test windows of the stack (:mod:`algorithms.data.dataset`; one
   preparation per window length/encoding the search visits, cached).
2. Runs an Optuna study: a seeded multivariate TPE sampler (``TPESampler(seed, multivariate=True,
   constant_liar=True)``) proposes hyperparameters, each trial trains one model
   (:func:`algorithms.learn.training.train_model`) and reports its per-epoch validation loss to a
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
``STORAGE`` accepts an Optuna RDB URL (``postgresql://user@host/db``, ``mysql+pymysql://...``,
``sqlite:///path.db``) for workers on several machines, or a path to a journal file on a shared
file system. RDB storages are ``RDBStorage(heartbeat_interval=60, grace_period=180,
heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))``: ``study.optimize``
beats for every running trial, and a trial silent for 180 s is failed and queued again once with
its parameters. Give the URL without its password (QGIS prints every parameter in the run log):
the password comes from the environment variable ``DEFORMCAST_STORAGE_PASSWORD`` or a
pgpass-style file (``DEFORMCAST_PGPASS``, ``PGPASSFILE`` or ``~/.pgpass``;
``host:port:database:user:password``). A URL with a password still works and is warned about;
logs, reports and manifests show it masked.

Trials left RUNNING by a killed local process (journal files have no heartbeat) are detected by
the worker id stored with each trial (host name + process id): a trial of this host whose process
no longer exists is failed (``study.tell(number, state=FAIL)``) when a worker starts a trial, so it
is neither counted as finished nor waited for.

Patience and warm start
-----------------------
``study_patience`` (``tune_job`` default :data:`patience.DEFAULT_STUDY_PATIENCE`; 0 = off): no new
trial once the best validation RMSE has not improved by 0.5 % for that many finished trials
(:mod:`.patience`). ``warm_start``: the shipped prior configurations (:mod:`.prior`) are enqueued
after the hand-set defaults.

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

from . import job, objective, patience, prior, report, space, storage, study, topk, worker  # noqa: F401
from .job import MODEL_DEFAULTS, TuneResult, load_inputs, run_study, tune_job
from .objective import DataCache, make_objective, model_meta, no_log, retrain, rmse_mm, split_scores
from .patience import DEFAULT_MIN_REL, DEFAULT_STUDY_PATIENCE, trials_since_improvement
from .report import (baseline_scores, param_importances, read_pixels, study_seconds, write_report,
    write_trials_csv)
from .space import (DEFAULT_WINDOW, Dim, build_search_space, default_config, encoding_key, json_text,
    parse_search_space, split_config, suggest)
from .storage import JOURNAL_NAME, PASSWORD_ENV, PGPASS_ENV, mask_url, open_storage, quiet_optuna, storage_url
from .study import (PRUNERS, STUDIES_DIR, default_study_name, make_pruner, make_sampler, open_study,
    stack_identity, study_folder)
from .topk import MANIFEST, RETRAINED_DIR, TRIALS_DIR, prune_trial_folders, ranked_trials, trial_dir
from .worker import (ORPHAN_SECONDS, WAIT_OTHERS_SECONDS, WORKER_ID, WorkerStats, fail_orphan_trials,
    plateaued, run_worker, stop_rule, worker_id)

# names older callers imported (private helpers of the former single module)
_encoding_key = encoding_key
_no_log = no_log
_mask = mask_url
_study_seconds = study_seconds
_quiet_optuna = quiet_optuna

__all__ = ['MODEL_DEFAULTS', 'TuneResult', 'load_inputs', 'run_study', 'tune_job', 'DataCache',
           'make_objective', 'model_meta', 'no_log', 'retrain', 'rmse_mm', 'split_scores', 'DEFAULT_MIN_REL',
           'DEFAULT_STUDY_PATIENCE', 'trials_since_improvement', 'baseline_scores', 'param_importances',
           'read_pixels', 'study_seconds', 'write_report', 'write_trials_csv', 'DEFAULT_WINDOW', 'Dim',
           'build_search_space', 'default_config', 'encoding_key', 'json_text', 'parse_search_space',
           'split_config', 'suggest', 'JOURNAL_NAME', 'PASSWORD_ENV', 'PGPASS_ENV', 'mask_url',
           'open_storage', 'quiet_optuna', 'storage_url', 'PRUNERS', 'STUDIES_DIR', 'default_study_name',
           'make_pruner', 'make_sampler', 'open_study', 'stack_identity', 'study_folder', 'MANIFEST',
           'RETRAINED_DIR', 'TRIALS_DIR', 'prune_trial_folders', 'ranked_trials', 'trial_dir',
           'ORPHAN_SECONDS', 'WAIT_OTHERS_SECONDS', 'WORKER_ID', 'WorkerStats', 'fail_orphan_trials',
           'run_worker', 'plateaued', 'stop_rule', 'worker_id', '_encoding_key', '_no_log', '_mask', '_study_seconds', '_quiet_optuna']
