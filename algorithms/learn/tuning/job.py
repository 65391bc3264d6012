"""``run_study`` and ``tune_job``: a study from inputs to the top-K model folder, manifest and report."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ...data.configs import DEFAULT_DATA, DataConfig
from ...errors import DeformCastError
from ...progress import Progress
from ..runtime import numeric_session
from . import local_workers
from .objective import DataCache, make_objective, retrain as retrain_member, split_scores
from .patience import DEFAULT_MIN_REL, DEFAULT_STUDY_PATIENCE
from .prior import enqueue_prior
from .report import baseline_scores, study_seconds, write_report, write_trials_csv
from .space import DEFAULT_WINDOW, build_search_space, default_config, encoding_key
from .storage import JOURNAL_NAME, open_storage, quiet_optuna
from .study import (check_identity, covariates_fingerprint, default_study_name, jsonable, make_pruner,
    open_study, stack_identity, study_folder)
from .topk import MANIFEST, FolderLock, manifest_study, prune_trial_folders, ranked_trials, trial_dir
from .worker import WorkerStats, counts, run_worker, stop_rule, wait_for_others

#: The data preparation of every entrance (tune, train, workflow): the configuration measured best
#: over varied physics (docs/skill.md). ``tune_job`` and ``run_training_job`` start from these.
MODEL_DEFAULTS = {k: v for k, v in DEFAULT_DATA.prepare_kwargs().items() if v is not None}


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


    stopped_by_patience: bool = False  # the study's best stopped improving (STUDY_PATIENCE)


def run_study(stack, dates, grid, architecture: str, horizon: int, output_folder: str, *,
              n_trials: int = 30, timeout: Optional[float] = None, top_k: int = 10,
              storage: Optional[str] = None, study_name: Optional[str] = None, seed: int = 42,
              pruner: str = "median", search_space=None, window: Optional[int] = None,
              encodings=None, covariates=None, max_epochs: int = 30, patience: int = 6,
              retrain: bool = False, device: str = "auto", threads: Optional[int] = None,
              report_path: Optional[str] = None, max_samples: int = 20000,
              prepare_kwargs: Optional[Mapping[str, Any]] = None, data: Optional[DataCache] = None,
              evaluate_test: bool = True, write_outputs: bool = True, start_from_defaults: bool = True,
              study_patience: int = 0, min_improvement: float = DEFAULT_MIN_REL, warm_start: bool = False,
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

    ``study_patience``: stop asking for trials once the best validation RMSE has not improved by
    ``min_improvement`` (relative) for that many finished trials (0: run all ``n_trials``; see
    :mod:`.patience`). ``warm_start``: enqueue the shipped prior configurations (:mod:`.prior`)
    after the hand-set defaults in a new study.
    """
    from ...errors import warn
    from ...models.modelio import grid_to_dict
    from ...models import get_spec
    from ..runtime import resolve_device

    quiet_optuna()
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
    from ...io.raster import few_pixels_message
    from ...io.covariates import unused_covariates_message

    for msg in (unused_covariates_message(list(data.covariates or {}), enc_choices),
                few_pixels_message(identity["n_valid_pixels"])):
        if msg:
            warn(msg)
    if uses_cov:
        identity["covariates_fingerprint"] = covariates_fingerprint(data.covariates)
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
                                jsonable(settings), n_trials=int(n_trials), compare=False)
    if not created:
        check_identity(study_name, study.user_attrs, identity, jsonable(config), grid_d, input_label or "")
    if created and start_from_defaults:
        # trial 0 is the hand-set configuration (Optuna's enqueue_trial): the search starts from
        # the defaults, and the report can say how much tuning gained over them
        cfg0 = default_config(spec.name, space, DEFAULT_WINDOW)
        params0 = {k: cfg0[k] for k, d in space.items() if d.kind != "fixed" and k in cfg0 and d.contains(cfg0[k])}
        study.enqueue_trial(params0, user_attrs={"hand_set_defaults": True}, skip_if_exists=True)
    if created and warm_start:
        n_prior = enqueue_prior(study, spec.name, space)
        if n_prior:
            progress.log(f"Warm start: {n_prior} configuration(s) that won before are tried first.")
        else:
            progress.log(f"Warm start: the shipped prior holds no configuration of {spec.name} inside this search "
                         "space; nothing is enqueued from it.")
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

    # patience never stops the study before the top-K ensemble is full (min_complete)
    wkw = dict(patience=int(study_patience or 0), min_rel=float(min_improvement), min_complete=min(top_k, int(n_trials)))
    # once patience has stopped the study, a trial still running (here or in another worker) stops at
    # its next epoch: the study asks for no more, and its ensemble is full without it
    objective = make_objective(data, space, spec.name, grid, folder, seed=seed, max_epochs=max_epochs,
                               patience=patience, device=device, threads=threads, model_extra=model_extra,
                               study_stopped=stop_rule(**wkw))

    # leave finished trials' models of an earlier, killed run alone; trials it left RUNNING are failed
    run_p = progress.sub(0.0, 0.85)
    stats = run_worker(study, objective, int(n_trials), timeout, run_p, **wkw)
    # trials other workers are still running belong in the top-K set: wait for them, so this worker
    # never writes a manifest without them (and join in again if one of them failed)
    while not (stats.stopped_by_timeout or stats.stopped_by_patience):
        wait_for_others(study, run_p)
        finished, running = counts(study)
        if finished >= int(n_trials) or running:
            break
        more = run_worker(study, objective, int(n_trials), timeout, run_p, **wkw)
        stats.add(more)
        if more.trials_run == 0:
            break
    if stats.stopped_by_timeout or stats.stopped_by_patience:
        wait_for_others(study, run_p)
    if stats.stopped_by_patience:
        progress.log(f"The best validation RMSE has not improved by {100 * float(min_improvement):.1f} % for "
                     f"{int(study_patience)} trials: the study stops (STUDY_PATIENCE).")

    # ---- finish: top-K set, manifest, CSV, report (whoever finishes; idempotent) ----------
    fin = progress.sub(0.85, 1.0)
    trials = study.get_trials(deepcopy=False)
    n_complete = sum(t.state == TrialState.COMPLETE for t in trials)
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    n_failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get("surplus") for t in trials)
    rel_folder = os.path.relpath(folder, root)
    top_path = os.path.join(root, MANIFEST)
    with FolderLock(folder), FolderLock(root):
        if os.path.exists(man_path):  # about to change the members: the old manifest goes first
            os.remove(man_path)
        if manifest_study(top_path) == rel_folder:  # the folder's manifest points at this study's members
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
                mfolder = retrain_member(t, data, spec.name, folder, grid, device, threads, seed, study_name,
                                   fin.sub(0.5 * i / len(ranked), 0.5 * (i + 1) / len(ranked)))
            members.append({"folder": mfolder, "trial": t.number, "val_rmse_mm": float(t.value),
                            "params": dict(t.params), "retrained": bool(retrain)})
        # test metrics of the members (after tuning; never fed back into the study)
        top_rows: List[Dict[str, Any]] = []
        bscores: Dict[str, Dict[str, float]] = {}
        if evaluate_test:
            from ...models.modelio import load_model

            ref_prep = None
            for i, m in enumerate(members):
                fin.sub(0.5, 0.8).set(i / max(1, len(members)))
                lm = load_model(os.path.join(folder, m["folder"]))
                prep = data.get(int(lm.meta["window"]), encoding_key(lm.meta.get("encodings")))
                s = split_scores(lm.model, prep.test, lm.meta.get("normalisation") or prep.norm)
                m.update({"test_rmse_mm": s["rmse"], "test_mae_mm": s["mae"], "test_r2": s["r2"]})
                ref_prep = ref_prep or prep
            # baselines on the test samples of the best member's preparation
            if ref_prep is not None:
                bscores = baseline_scores(data.stack, data.dates, grid.width, ref_prep.test,
                                          progress=fin.sub(0.8, 0.9))
        for rank, m in enumerate(members, start=1):
            top_rows.append(dict(m, rank=rank))
        from ...models.modelio import write_manifest

        extra = {"study_name": study_name, "storage": storage_desc, "objective": "validation RMSE (mm)",
                 "n_trials": len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]),
                 "top_k": top_k, "retrained": bool(retrain), "data_fingerprint": identity["data_fingerprint"],
                 "input": input_label or ""}
        if write_outputs:
            csv_path = write_trials_csv(study, os.path.join(folder, "trials.csv"))
        else:
            csv_path = None
        result = TuneResult(root, study_name, storage_desc, None, csv_path, None,
                            float(ranked[0].value), dict(ranked[0].params), int(ranked[0].number),
                            n_complete, n_pruned, n_failed, top_rows, bscores, stats,
                            time.time() - t_wall, study_seconds(study))
        result.stopped_by_patience = bool(stats.stopped_by_patience)
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




def load_inputs(stack_path: str, dates=None, covariate_paths: Sequence[str] = (), progress: Optional[Progress] = None):
    """``(StackInfo, covariates dict or None)`` from file paths (the Processing inputs)."""
    from ...io.raster import open_stack, parse_dates_param

    if not stack_path:
        raise DeformCastError("INPUT: give the displacement stack (a multiband raster, one band per date).")
    info = open_stack(stack_path, parse_dates_param(dates) if isinstance(dates, str) else dates, progress=progress)
    from ...data.features import log_cadence_warning

    log_cadence_warning(info.dates, progress)
    from ...io.raster import warn_training_stack

    warn_training_stack(info)
    cov = None
    if covariate_paths:
        from ...io.covariates import align_covariates

        cov = align_covariates(list(covariate_paths), info.grid, progress=progress)
    return info, cov


@numeric_session
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
    from ...data import dataset

    kw.setdefault("study_patience", DEFAULT_STUDY_PATIENCE)
    pk = DataConfig.from_mapping(kw.pop("prepare_kwargs", None)).prepare_kwargs()   # checked once, here
    if dataset.is_auto(kw.get("encodings")):
        kw["encodings"] = dataset.auto_encodings(info.dates, horizon, pk["validation"])
        progress.log(f"Coding strategy: {', '.join(kw['encodings'])}; anchor {pk['baseline']}; validation "
                     f"{pk['validation']}.")
    n_workers = int(kw.pop("local_workers", 1) or 0)
    if n_workers <= 0:
        n_workers = local_workers.auto_workers(kw.get("device") or "cpu")
    if n_workers > 1 and str(kw.get("device") or "auto") != "cpu":
        from ..runtime import resolve_device

        if resolve_device(kw.get("device") or "auto") != "cpu":
            n_workers = 1   # one GPU: one process drives it
    procs = []
    if n_workers > 1:
        job = {"stack_path": stack_path, "dates": dates, "covariates": list(covariates or ()),
               "architecture": architecture, "horizon": int(horizon), "output_folder": output_folder,
               "input_label": os.path.basename(stack_path),
               "kwargs": {k: v for k, v in dict(kw, prepare_kwargs=pk).items()
                          if k not in ("threads", "write_outputs", "evaluate_test", "retrain")}}
        procs = local_workers.start(n_workers - 1, job, output_folder)
        progress.log(f"{n_workers} worker processes share the study, one torch thread each (LOCAL_WORKERS).")
        kw["threads"] = 1
    try:
        res = run_study(info, info.dates, info.grid, architecture, horizon, output_folder, covariates=cov,
                        report_path=report_path, progress=progress.sub(0.02, 0.96 if gate else 1.0),
                        input_label=os.path.basename(stack_path), prepare_kwargs=pk, **kw)
    except BaseException:
        local_workers.stop(procs, wait=False)
        raise
    codes = local_workers.stop(procs, wait=True)
    if any(codes):
        progress.log(f"A worker process ended with an error (exit codes {codes}; its log: worker_<k>.log in "
                     f"{output_folder}); the study holds the trials it finished.")
    if gate and kw.get("write_outputs", True):
        from ...maps import gate_report, skill_gate

        res.gate = skill_gate.run_gate(stack_path, output_folder, dates=dates, covariates=covariates,
                                       device=kw.get("device", "auto"),
                                       csv_path=os.path.join(output_folder, "rolling_origins.csv"),
                                       progress=progress.sub(0.96, 1.0))
        if res.report and os.path.exists(res.report):
            gate_report.append_to_report(res.report, res.gate)
    return res


#: The data preparation of every entrance (tune, train, workflow): the configuration measured best
#: over varied physics (docs/skill.md). ``tune_job`` and ``run_training_job`` start from these.
