"""A trial: prepared data (once per window length and encoding per study), training, scoring, saving."""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from ...errors import DeformCastError
from ...data.date_weights import sample_weights
from ...progress import Progress
from .space import encoding_key, split_config, suggest
from .topk import RETRAINED_DIR, has_model, trial_dir


#: torch CPU threads of one trial unless DEFORMCAST_THREADS says otherwise. The models a study trains
#: are small (batches of 64-512 windows, widths 16-64): every torch op is a parallel region too short
#: to share, so a second thread only adds waiting. Measured on the demo scene (2 cores, shared; one
#: ResNet+Transformer, 5000 windows, 3 epochs): 1 thread 7.3-8.4 s wall and 3.4 s CPU, 2 threads
#: 45-91 s wall and 24-37 s CPU (docs/README_tuning.md, "Speed").
TRIAL_THREADS = 1


def trial_threads(threads: Optional[int] = None) -> int:
    """Threads of a trial: ``threads`` when given, else ``DEFORMCAST_THREADS``, else :data:`TRIAL_THREADS`."""
    if threads:
        return int(threads)
    env = os.environ.get("DEFORMCAST_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise DeformCastError(f"DEFORMCAST_THREADS='{env}' is not a whole number of threads.") from None
    return TRIAL_THREADS


def no_log(p: Progress) -> Progress:
    """The same progress range and Cancel, without the per-epoch log lines of training."""
    return Progress(p._on_progress, p._is_cancelled, None, p.start, p.end)


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
        key = (int(window), encoding_key(encoding))
        if key not in self._cache:
            from ...data import dataset

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
        from ...data import dataset

        nv, nt = dataset.validate_inputs(self._T(), 2, self.horizon, self.kw.get("n_val"), self.kw.get("n_test"))
        self.kw["n_val"], self.kw["n_test"] = nv, nt

    def max_window(self) -> int:
        """The longest window that leaves one training window before the validation period."""
        self._fix_periods()
        return max(2, self._T() - self.kw["n_val"] - self.kw["n_test"] - self.horizon)


def split_scores(model, samples, norm) -> Dict[str, float]:
    """Overall scores in mm (rmse, mae, r2, bias, n) of ``model`` on a split of windows."""
    from ..training import evaluate_samples

    return evaluate_samples(model, samples, norm)["overall"]


def rmse_mm(model, samples, norm, device="cpu") -> float:
    """RMSE in mm of ``model`` on ``samples`` (the objective on the validation windows)."""
    return float(split_scores(model, samples, norm)["rmse"])


def model_meta(res, prep, grid, encoding_key: str, cfg: Mapping[str, Any], val_rmse: float,
                seed: int, extra: Optional[Mapping[str, Any]] = None, norm: Optional[dict] = None) -> Dict[str, Any]:
    from ...models.modelio import grid_to_dict

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




def make_objective(data: "DataCache", space, architecture: str, grid, folder: str, *, seed: int, max_epochs: int,
                   patience: int, device: str, threads: Optional[int], model_extra: Mapping[str, Any],
                   study_stopped: Optional[Callable[[Any], bool]] = None) -> Callable:
    """``objective(trial, progress) -> validation RMSE (mm)``: train, report epochs to the pruner,
    save the model under ``trials/<number>/`` of ``folder``.

    ``study_stopped(study)``: asked after every epoch; when it says the study has stopped (patience on
    the study, with the top-K ensemble already full), the running trial is pruned there
    (``user_attrs.stopped_by_study``) instead of training to its end for a study that asks no more."""
    import optuna

    from ...models.modelio import save_model
    from ..training import train_model, weighted_norm

    threads = trial_threads(threads)

    def objective(trial, sub: Progress):
        cfg = suggest(trial, space)
        w, enc, hp = split_config(architecture, cfg)
        prep = data.get(w, enc)

        def on_epoch(epoch, val_loss):
            trial.report(float(val_loss), int(epoch))
            # never pruned after its last epoch: the model is trained by then, and a COMPLETE trial
            # ranks below the better ones anyway (pruning it there threw the work away)
            if int(epoch) + 1 >= int(max_epochs):
                return
            if trial.should_prune():
                trial.set_user_attr("epochs_run", int(epoch) + 1)
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")
            if study_stopped is not None and study_stopped(trial.study):
                trial.set_user_attr("epochs_run", int(epoch) + 1)
                trial.set_user_attr("stopped_by_study", True)
                raise optuna.TrialPruned(f"the study stopped (patience) at epoch {epoch + 1}")

        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, architecture, hp, device=device,
                          seed=int(seed) + trial.number, max_epochs=int(max_epochs), patience=int(patience),
                          progress=no_log(sub.sub(0.0, 0.97)), epoch_callback=on_epoch, threads=threads,
                          train_W=sample_weights(prep, "train"), val_W=sample_weights(prep, "val"))
        val_rmse = rmse_mm(res.model, prep.val, prep.norm)
        trial.set_user_attr("epochs_run", int(res.epochs_run))
        trial.set_user_attr("best_epoch", int(res.best_epoch))
        trial.set_user_attr("val_loss", float(res.best_val_loss))
        trial.set_user_attr("n_parameters", int(res.n_parameters))
        if math.isfinite(val_rmse):
            # the saved member carries the weight of its correction fitted on the validation
            # windows (see training.correction_weight); the objective stays the network's own RMSE
            norm_m = weighted_norm(res.model, prep.val, prep.norm, prep.config)
            extra = dict(model_extra, trial=trial.number)
            if "correction_weight" in norm_m:
                trial.set_user_attr("correction_weight_mean", float(np.mean(norm_m["correction_weight"])))
            save_model(trial_dir(folder, trial.number), res.model,
                       model_meta(res, prep, grid, enc, cfg, val_rmse, int(seed) + trial.number, extra, norm=norm_m))
        sub.set(1.0)
        return val_rmse

    return objective


def retrain(t, data: DataCache, architecture: str, output_folder: str, grid, device, threads, seed,
             study_name: str, progress: Progress) -> str:
    """Train trial ``t``'s configuration on train + validation for its best epoch count."""
    from ...models.modelio import read_meta, save_model
    from ..training import train_model

    rel = os.path.join(RETRAINED_DIR, f"{t.number:06d}")
    dest = os.path.join(output_folder, rel)
    if has_model(dest):
        return rel
    meta = read_meta(trial_dir(output_folder, t.number))
    cfg = dict(meta["search_config"])
    w, enc, hp = split_config(architecture, cfg)
    prep = data.get(w, enc)
    threads = trial_threads(threads)
    epochs = int(meta["validation"]["best_epoch"]) + 1
    X = np.concatenate([prep.train.X, prep.val.X])
    Y = np.concatenate([prep.train.Y, prep.val.Y])
    Wtr, Wva = sample_weights(prep, "train"), sample_weights(prep, "val")
    # validation windows are now training data: the validation loss is only monitored (patience
    # larger than the run, so it never stops early) and the run lasts the trial's best epoch count
    res = train_model(X, Y, prep.val.X, prep.val.Y, architecture, hp, device=device, seed=int(seed) + t.number,
                      max_epochs=epochs, patience=epochs + 1, progress=no_log(progress), threads=threads,
                      train_W=None if Wtr is None else np.concatenate([Wtr, Wva]), val_W=Wva)
    # the validation windows are training data now: keep the correction weight the trial fitted
    # on them while they were held out
    norm = dict(prep.norm)
    if "correction_weight" in (meta.get("normalisation") or {}):
        norm["correction_weight"] = meta["normalisation"]["correction_weight"]
    ident = {k: meta[k] for k in ("data_fingerprint", "dates", "stack", "covariates_fingerprint") if k in meta}
    save_model(dest, res.model, model_meta(res, prep, grid, enc, cfg, float(t.value), int(seed) + t.number,
                                            dict(ident, trial=t.number, study_name=study_name,
                                                 retrained_on="train+validation", epochs=epochs), norm=norm))
    return rel


