"""Training one forecasting model, batched prediction, and the whole ``train`` job (QGIS-free).

API (stable; tuning, comparison and ensemble prediction build on it)
--------------------------------------------------------------------

``train_model(train_X, train_Y, val_X, val_Y, architecture, hparams=None, device="auto", seed=0,
max_epochs=60, patience=8, progress=None, epoch_callback=None, threads=None) -> TrainResult``

* ``*_X`` float32 ``(N, window, F)``, ``*_Y`` float32 ``(N, horizon)`` (numpy or torch; finite).
* ``hparams``: partial dict, completed by :func:`algorithms.models.resolve_hparams` (unknown keys
  refused). Shared keys: ``lr``, ``weight_decay``, ``batch_size``, ``dropout``, ``grad_clip``,
  ``samples_per_epoch``, ``loss``; plus the architecture's own (see ``get_spec(name).defaults``).
* ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"`` (refused with a
  clear message when no CUDA device is visible).
* ``epoch_callback(epoch, val_loss)``: called after every epoch (0-based) with the validation
  MSE; it may raise (e.g. ``optuna.TrialPruned``) to stop the run — the exception propagates.
* ``progress``: :class:`algorithms.progress.Progress`; checked every batch, so Cancel stops within
  one batch by raising :class:`Cancelled`.
* ``threads``: torch CPU threads for the run (default :func:`default_threads`: the environment
  variable ``DEFORMCAST_THREADS``, else ``min(2, cores)``); restored afterwards. Bit-for-bit
  repeatability holds for the same thread count (recorded in the result).

``TrainResult``: ``model`` (on the CPU, eval mode, best weights restored), ``architecture``,
``hparams`` (complete), ``history`` (list of ``{"epoch", "train_loss", "val_loss", "lr",
"seconds"}``), ``best_val_loss``, ``best_epoch``, ``epochs_run``, ``stopped_early``, ``seconds``,
``n_parameters``, ``device``, ``seed``, ``n_features``, ``window``, ``horizon``, ``n_train``,
``n_val``, ``threads``.

``predict_array(model, X, batch_size=PREDICT_BATCH, device="cpu", progress=None) -> float32 (N, horizon)``:
batched inference under ``torch.inference_mode`` (no Python loop per pixel). ``PREDICT_BATCH`` =
2048: on a 2-core CPU, batches of 1-2k windows keep the activations in cache and run about 1.5x
faster than 8k and 3x faster than 64k (measured with benchmarks/bench_models.py).

``resolve_device(device) -> "cpu" | "cuda"``; ``default_threads() -> int``.

``run_training_job(stack_path, output_folder, architecture, ...) -> TrainJobResult``: the ``train``
Processing algorithm without QGIS (data preparation, training, model folder, test-period forecast
and residual rasters, metrics with the classical baselines, HTML report). See its docstring.

Training choices (where Liu et al. 2026 is silent)
--------------------------------------------------
* Loss: mean squared error on the normalised targets (the metric the paper ranks by is RMSE);
  ``loss="huber"`` (delta 1) is available for noisy data. Early stopping always watches the
  validation MSE.
* Optimiser AdamW (decoupled weight decay), learning rate warmed up linearly over the first
  epoch, then cosine-annealed to 5 % of ``lr`` over ``max_epochs`` (per batch). Cosine needs no
  extra hyperparameter and, unlike ReduceLROnPlateau, never reacts to validation noise.
* Gradient norm clipped at ``grad_clip`` (recurrent nets on long windows otherwise spike).
* Early stopping: stop after ``patience`` epochs without a validation improvement of at least
  0.1 %; the weights of the best epoch are restored.
* Repeatability: the seed fixes weight initialisation, dropout and the shuffling (a private
  ``torch.Generator``); deterministic algorithms are switched on and the global RNG state is
  restored afterwards (``torch.random.fork_rng``). On the CPU with the same thread count a run
  repeats bit for bit. No DataLoader: the windows are indexed in memory, which is faster for
  these small tensors and has no worker processes to seed.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..errors import DeformCastError
from ..progress import Progress
from .runtime import (PREDICT_BATCH, default_threads, predict_array, resolve_device,  # noqa: F401 - re-exported
    torch_session as _torch_session, torch_threads)

DEFAULT_MAX_EPOCHS = 60
DEFAULT_PATIENCE = 8
MIN_REL_IMPROVEMENT = 1e-3


@dataclass
class TrainResult:
    model: Any
    architecture: str
    hparams: Dict[str, Any]
    history: List[Dict[str, float]] = field(default_factory=list)
    best_val_loss: float = float("inf")
    best_epoch: int = -1
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    n_parameters: int = 0
    device: str = "cpu"
    seed: int = 0
    n_features: int = 0
    window: int = 0
    horizon: int = 0
    n_train: int = 0
    n_val: int = 0
    threads: int = 1


def _as_tensor(a, name: str, ndim: int):
    import torch

    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    t = t.float()
    if t.ndim != ndim:
        raise DeformCastError(f"{name} must have {ndim} dimensions, got shape {tuple(t.shape)}.")
    if t.shape[0] == 0:
        raise DeformCastError(
            f"{name} holds no samples. The stack has too few valid windows for this WINDOW/HORIZON "
            "and split; use a shorter WINDOW or HORIZON, or a longer stack.")
    if not bool(torch.isfinite(t).all()):
        raise DeformCastError(f"{name} contains NaN or infinite values; drop windows with nodata first.")
    return t


def _lr_factor(step: int, steps_per_epoch: int, total_steps: int) -> float:
    warm = max(1, steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    frac = min(1.0, (step - warm) / max(1, total_steps - warm))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac))


def _evaluate(model, X, Y, batch_size: int, W=None) -> float:
    """Mean squared error over the windows, each target weighted by ``W`` (same shape as ``Y``) or alike."""
    import torch

    model.eval()
    total, n = 0.0, 0.0
    with torch.inference_mode():
        for i in range(0, X.shape[0], batch_size):
            se = (model(X[i:i + batch_size]) - Y[i:i + batch_size]) ** 2
            if W is None:
                total += float(se.sum())
                n += se.numel()
            else:
                w = W[i:i + batch_size]
                total += float((se * w).sum())
                n += float(w.sum())
    return total / max(1e-12, n)


def _loss(loss_fn, pred, y, w=None):
    """The batch loss: the mean of ``loss_fn`` (reduction "none") over the targets, weighted by ``w``."""
    el = loss_fn(pred, y)
    return el.mean() if w is None else (el * w).sum() / w.sum().clamp_min(1e-12)


def train_model(train_X, train_Y, val_X, val_Y, architecture: str, hparams: Optional[Dict[str, Any]] = None,
                device: str = "auto", seed: int = 0, max_epochs: int = DEFAULT_MAX_EPOCHS,
                patience: int = DEFAULT_PATIENCE, progress: Optional[Progress] = None,
                epoch_callback: Optional[Callable[[int, float], None]] = None,
                threads: Optional[int] = None, train_W=None, val_W=None) -> TrainResult:
    """Train one model with early stopping on the validation windows. See the module doc.
    ``train_W``, ``val_W``: the weight of each target (shaped as the targets; ``date_weights.sample_weights``)
    in the training loss and the validation loss, or None (alike)."""
    import torch

    from ..models import build_model, count_parameters, get_spec, resolve_hparams

    spec = get_spec(architecture)
    hp = resolve_hparams(spec.name, hparams)
    progress = progress or Progress()
    if int(max_epochs) < 1:
        raise DeformCastError(f"MAX_EPOCHS must be at least 1 (got {max_epochs}).")
    patience = max(1, int(patience))
    dev = resolve_device(device)
    Xtr = _as_tensor(train_X, "Training inputs", 3)
    Ytr = _as_tensor(train_Y, "Training targets", 2)
    Xva = _as_tensor(val_X, "Validation inputs", 3)
    Yva = _as_tensor(val_Y, "Validation targets", 2)
    Wtr = None if train_W is None else _as_tensor(train_W, "Training weights", 2)
    Wva = None if val_W is None else _as_tensor(val_W, "Validation weights", 2)
    if (Wtr is not None and Wtr.shape != Ytr.shape) or (Wva is not None and Wva.shape != Yva.shape):
        raise DeformCastError("Target weights must have the shape of the targets.")
    if Xtr.shape[0] != Ytr.shape[0] or Xva.shape[0] != Yva.shape[0]:
        raise DeformCastError("Inputs and targets hold different numbers of samples.")
    if Xtr.shape[1:] != Xva.shape[1:] or Ytr.shape[1] != Yva.shape[1]:
        raise DeformCastError("Training and validation samples have different window/channel/horizon sizes.")
    n, window, n_feat = (int(s) for s in Xtr.shape)
    horizon = int(Ytr.shape[1])
    bs = int(hp["batch_size"])
    per_epoch = n if not hp["samples_per_epoch"] else min(n, int(hp["samples_per_epoch"]))
    steps_per_epoch = max(1, math.ceil(per_epoch / bs))
    total_steps = steps_per_epoch * int(max_epochs)
    t0 = time.perf_counter()

    with _torch_session(seed, threads, dev):
        gen = torch.Generator().manual_seed(int(seed))
        model = build_model(spec.name, n_feat, window, horizon, hp).to(dev)
        Xtr, Ytr, Xva, Yva = (t.to(dev) for t in (Xtr, Ytr, Xva, Yva))
        Wtr, Wva = (None if t is None else t.to(dev) for t in (Wtr, Wva))
        opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps_per_epoch, total_steps))
        loss_fn = (torch.nn.MSELoss(reduction="none") if hp["loss"] == "mse"
                   else torch.nn.HuberLoss(reduction="none", delta=1.0))
        res = TrainResult(model=None, architecture=spec.name, hparams=hp, device=dev, seed=int(seed),
                          n_features=n_feat, window=window, horizon=horizon, n_train=n, n_val=int(Xva.shape[0]),
                          n_parameters=count_parameters(model), threads=torch.get_num_threads())
        best_state = None
        bad_epochs = 0
        for epoch in range(int(max_epochs)):
            te = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen)[:per_epoch].to(dev)
            run_loss, seen = 0.0, 0
            for b in range(steps_per_epoch):
                progress.check()
                idx = perm[b * bs:(b + 1) * bs]
                xb, yb = Xtr[idx], Ytr[idx]
                opt.zero_grad(set_to_none=True)
                loss = _loss(loss_fn, model(xb), yb, None if Wtr is None else Wtr[idx])
                if not bool(torch.isfinite(loss)):
                    raise DeformCastError(
                        f"Training of {spec.name} diverged (loss became {float(loss)}) in epoch {epoch + 1}. "
                        "Lower the learning rate (hyperparameter 'lr') or 'grad_clip'.")
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])
                opt.step()
                sched.step()
                run_loss += float(loss.detach()) * idx.numel()
                seen += idx.numel()
                progress.set((epoch + (b + 1) / steps_per_epoch) / max_epochs)
            progress.check()
            val = _evaluate(model, Xva, Yva, max(bs, PREDICT_BATCH), Wva)
            res.history.append({"epoch": epoch, "train_loss": run_loss / max(1, seen), "val_loss": val,
                                "lr": float(opt.param_groups[0]["lr"]), "seconds": time.perf_counter() - te})
            res.epochs_run = epoch + 1
            progress.log(f"{spec.name} epoch {epoch + 1}/{max_epochs}: train loss {run_loss / max(1, seen):.4f}, "
                         f"validation MSE {val:.4f}")
            if val < res.best_val_loss * (1.0 - MIN_REL_IMPROVEMENT) or best_state is None:
                res.best_val_loss, res.best_epoch, bad_epochs = val, epoch, 0
                best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                bad_epochs += 1
            if epoch_callback is not None:
                epoch_callback(epoch, val)
            if bad_epochs >= patience:
                res.stopped_early = True
                break
        model.load_state_dict(best_state)
        model.to("cpu").eval()
    res.model = model
    res.seconds = time.perf_counter() - t0
    return res


def evaluate_samples(model, samples, norm: dict, batch_size: int = PREDICT_BATCH) -> Dict[str, Any]:
    """Scores in mm of ``model`` on a :class:`dataset.Samples` split (e.g. ``prepared.val``).

    Returns :func:`metrics.evaluate` of the forecast in mm against ``samples.truth``. Tuners use
    ``evaluate_samples(model, prepared.val, prepared.norm)["overall"]["rmse"]``.
    """
    from ..data.dataset import to_mm
    from ..metrics import evaluate

    pred = to_mm(predict_array(model, samples.X, batch_size), samples.anchor, norm)
    return evaluate(pred, samples.truth)


def correction_weight(model, samples, norm: dict, config: Optional[dict] = None,
                      batch_size: int = PREDICT_BATCH) -> Optional[List[float]]:
    """Weight of a residual network's correction per horizon step, fitted on validation windows.

    With ``target="residual"`` the forecast is ``anchor + c`` (``c`` = the network's correction to
    the classical forecast, in mm). The weight ``w_h`` minimises the squared error of
    ``anchor + w_h c`` over the validation windows ``samples`` at step ``h``:
    ``w_h = sum(c r) / sum(c^2)`` with ``r = truth - anchor``, clipped to [0, 1]. A network whose
    correction does not help on the validation period is thus switched off (``w`` = 0: the
    forecast is its classical anchor) instead of adding its noise; one that helps keeps its
    correction. Returns None for the increment target (nothing to fall back on).
    Never fitted on test windows; the validation windows are the early-stopping ones.
    """
    if config is not None and config.get("target") != "residual":
        return None
    if len(samples) == 0:
        return None
    raw = {k: v for k, v in norm.items() if k != "correction_weight"}
    from ..data.dataset import to_mm

    pred = to_mm(predict_array(model, samples.X, batch_size), samples.anchor, raw).astype(np.float64)
    c = pred - samples.anchor.astype(np.float64)
    r = samples.truth.astype(np.float64) - samples.anchor.astype(np.float64)
    num = (c * r).sum(axis=0)
    den = (c * c).sum(axis=0)
    w = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return [round(float(v), 6) for v in np.clip(w, 0.0, 1.0)]


def weighted_norm(model, samples, norm: dict, config: Optional[dict] = None) -> dict:
    """A copy of ``norm`` with :func:`correction_weight` (unchanged for the increment target)."""
    out = {k: v for k, v in norm.items() if k != "correction_weight"}
    w = correction_weight(model, samples, out, config)
    if w is not None:
        out["correction_weight"] = w
    return out


# ------------------------------------------------------------------------------------------------
# the train job (what the Processing algorithm runs)
# ------------------------------------------------------------------------------------------------
