"""``train`` without QGIS: one model with hand-set hyperparameters, its test-period metrics against
the classical baselines, rolling-origin scores and the HTML report (``run_training_job``); the
training loop itself is :mod:`training`."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import DeformCastError
from ..data.date_weights import sample_weights
from ..progress import Progress
from ..models import DEFAULT_ARCHITECTURE
from .runtime import (PREDICT_BATCH, default_threads, predict_array, resolve_device,  # noqa: F401 - re-exported
    torch_session as _torch_session, torch_threads)

from .training import (DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, evaluate_samples, correction_weight,  # noqa: F401 - re-exported
    train_model, weighted_norm)


MEMBER_FOLDER = "m01_{arch}"
_EVAL_SAMPLES = 10_000  # validation windows scored after every epoch


@dataclass
class TrainJobResult:
    """What ``run_training_job`` wrote and measured. ``folder``: the model folder (absolute);
    ``model_path``: its member folder; ``metrics``: test-period scores per reference and method;
    ``training``: the :class:`training.TrainResult`; ``report_path`` / ``forecast_path`` /
    ``residuals_path``: the files written (None = not asked for)."""
    folder: str
    model_path: str
    metrics: Dict[str, Any]
    training: Any
    prepared_config: Dict[str, Any]
    test_dates: List[str]
    report_path: Optional[str] = None
    forecast_path: Optional[str] = None
    residuals_path: Optional[str] = None
    seconds: float = 0.0


def _parse_hparams(text) -> Dict[str, Any]:
    from ..jsonparam import json_object_param

    return json_object_param(
        text, "HPARAMS", 'Give an object such as {"lr": 0.001, "batch_size": 128}, or leave it empty for the defaults.',
        'HPARAMS must be a JSON object such as {"lr": 0.001}, not a list or number.')


def run_training_job(stack_path: str, output_folder: str, architecture: str = DEFAULT_ARCHITECTURE,
                     horizon: int = 6, window: int = 12, encodings=None,
                     covariate_paths: Optional[List[str]] = None, hparams=None, max_epochs: int = 40,
                     patience: int = DEFAULT_PATIENCE, seed: int = 42, device: str = "auto", dates=None,
                     forecast_path: Optional[str] = None, residuals_path: Optional[str] = None,
                     report_path: Optional[str] = None, truth_path: Optional[str] = None,
                     zones_path: Optional[str] = None, max_samples: int = 20000, target: str = "residual",
                     threads: Optional[int] = None, block_rows: int = 256, validation: str = "space",
                     baseline: str = "adaptive", steps="auto", progress: Optional[Progress] = None) -> TrainJobResult:
    """Train one model on a displacement stack and evaluate it on the held-out test period.

    Steps: read the stack (dates from the bands or ``dates``), align ``covariate_paths``, build
    leak-free windows (:func:`dataset.prepare`; the last ``n_test`` epochs are never seen by
    training, normalisation or early stopping; ``target`` "residual" by default: the network learns
    the correction to the classical trajectory forecast — on the synthetic scene an
    increment-target model with a 12-epoch window cannot recover the seasonal and acceleration
    terms that the trajectory fit takes from the whole history, and loses to it), train (:func:`train_model`), then backtest the
    test period block by block: forecasts start from rolling origins (the last input epoch before
    the test period, then every ``horizon`` epochs), each origin forecasting the next ``horizon``
    epochs from observations up to the origin only, so every test epoch gets exactly one forecast
    (lead 1..horizon). The classical baselines (:mod:`baselines`) forecast from the very same
    origins, and all methods are scored on the same pixels and epochs (where every method and the
    observation are finite): RMSE, MAE, R² overall and per lead (horizon step), per zone when
    ``zones_path`` is given, and against a noise-free ``truth_path`` stack (matched by date) when
    given (the synthetic scene writes one).

    Writes ``output_folder`` (replaced): ``m01_<arch>/`` (model, :mod:`modelio`), ``metrics.json``,
    ``metrics.csv``, ``history.csv`` and ``manifest.json`` LAST (a cancelled or failed run leaves
    no manifest); optionally the forecast and residual rasters (one band per test date, ISO
    descriptions, styled) and the HTML report. Returns a :class:`TrainJobResult` (the paths written,
    the metrics and the :class:`TrainResult`).
    """

    from ..data.dataset import prepare
    from ..models.modelio import MANIFEST, DataFingerprint, grid_to_dict, save_model, write_manifest
    from ..models import get_spec, resolve_hparams
    from ..io.raster import iso, open_stack

    progress = progress or Progress()
    from ..data.configs import DataConfig

    data_cfg = DataConfig(target=target, baseline=baseline if target == "residual" else "trajectory",
                          validation=validation, steps=steps)   # checked once, at the edge
    t_start = time.perf_counter()
    spec = get_spec(architecture)
    hp_over = _parse_hparams(hparams)
    hp = resolve_hparams(spec.name, hp_over)
    dev = resolve_device(device)
    if not output_folder:
        raise DeformCastError("OUTPUT_FOLDER is empty; give a folder for the model.")
    output_folder = os.path.abspath(str(output_folder))
    if os.path.isfile(output_folder):
        raise DeformCastError(f"OUTPUT_FOLDER '{output_folder}' is a file; give a folder path.")

    info = open_stack(stack_path, dates, progress=progress)
    from ..data.features import log_cadence_warning

    log_cadence_warning(info.dates, progress)
    from ..io.raster import warn_training_stack

    warn_training_stack(info)
    grid, sdates = info.grid, info.dates
    T = int(sdates.size)
    covs = {}
    if covariate_paths:
        from ..io.covariates import align_covariates

        covs = align_covariates(list(covariate_paths), grid, progress.sub(0.0, 0.02))
    from ..data.dataset import auto_encodings, is_auto

    enc = auto_encodings(sdates, horizon, validation) if is_auto(encodings) else list(encodings)
    from ..errors import warn
    from ..io.raster import few_pixels_message
    from ..io.covariates import unused_covariates_message

    m = unused_covariates_message(list(covs), enc)
    if m:
        warn(m)
    prep = prepare(info, None, grid, window, horizon, enc, covariates=covs or None, max_samples=max_samples,
                   max_eval_samples=min(int(max_samples), _EVAL_SAMPLES), seed=seed,
                   progress=progress.sub(0.02, 0.1), **data_cfg.prepare_kwargs())
    cfg, norm = prep.config, prep.norm
    m = few_pixels_message(int(np.unique(np.concatenate([prep.train.pixel, prep.val.pixel])).size))
    if m:
        warn(m)
    progress.log(f"{len(prep.train)} training, {len(prep.val)} validation, {len(prep.test)} test windows; "
                 f"{prep.n_features} input channels ({', '.join(prep.feature_names)}).")

    # nothing of an earlier run may look complete while this one works
    os.makedirs(output_folder, exist_ok=True)
    if os.path.exists(os.path.join(output_folder, MANIFEST)):
        os.remove(os.path.join(output_folder, MANIFEST))

    res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, spec.name, hp, device=dev, seed=seed,
                      max_epochs=max_epochs, patience=patience, progress=progress.sub(0.1, 0.8),
                      threads=threads, train_W=sample_weights(prep, "train"), val_W=sample_weights(prep, "val"))
    model = res.model
    norm = weighted_norm(model, prep.val, norm, cfg)
    if "correction_weight" in norm:
        cw = norm["correction_weight"]
        progress.log(f"Weight of the network's correction to the {cfg['baseline']} forecast, fitted on the "
                     f"validation windows: {min(cw):.2f}..{max(cw):.2f} over the horizon (mean {np.mean(cw):.2f}; "
                     "0 = the classical forecast alone).")
    val_scores = evaluate_samples(model, prep.val, norm)

    # --- backtest of the test period from rolling origins (maps.backtest) -------------------
    from ..data.date_weights import bound
    from ..maps.backtest import score_origins
    from ..models.modelio import LoadedModel

    fp = DataFingerprint((T, grid.height, grid.width), sdates, grid)
    # the classical fits of the test-period forecast weigh each date as predict will (date_weights.py)
    trained = LoadedModel(model, {"data_config": bound(cfg, info), "normalisation": norm, "horizon": horizon},
                          output_folder)
    with torch_threads(threads):
        bt = score_origins(info, [trained], [spec.name], int(cfg["test_start"]), horizon,
                           covariates={n: covs[n] for n in cfg.get("covariate_names", [])}, truth_path=truth_path,
                           zones_path=zones_path, forecast_path=forecast_path, residuals_path=residuals_path,
                           block_rows=block_rows, device=dev, seed=seed, on_rows=fp.add_rows,
                           progress=progress.sub(0.8, 0.97))
    metrics, methods, origins, lead = bt["metrics"], bt["methods"], bt["origins"], bt["lead"]
    refs, n_pairs, test_names = list(metrics), bt["n_pairs"], bt["test_dates"]

    # --- save the model, tables, report; manifest last ---------------------------------------
    member = MEMBER_FOLDER.format(arch=spec.name)
    meta = {
        "architecture": spec.name, "hparams": res.hparams, "n_features": res.n_features, "window": res.window,
        "horizon": res.horizon, "feature_names": prep.feature_names, "encodings": cfg["encodings"],
        "normalisation": norm, "data_config": cfg, "grid": grid_to_dict(grid),
        "data_fingerprint": fp.hexdigest(), "stack": os.path.abspath(info.path),
        "dates": [iso(d) for d in sdates], "seed": int(seed), "device": dev,
        "validation": {"val_loss": res.best_val_loss, "best_epoch": res.best_epoch, "epochs_run": res.epochs_run,
                       "val_rmse_mm": val_scores["overall"]["rmse"], "val_mae_mm": val_scores["overall"]["mae"]},
        "test": {m: metrics["observed"][m]["overall"] for m in methods},
        "train_seconds": res.seconds, "n_train": res.n_train, "n_val": res.n_val, "threads": res.threads,
    }
    progress.check()
    save_model(os.path.join(output_folder, member), model, meta)
    rows = []
    for ref_name in refs:
        for m in methods:
            o = metrics[ref_name][m]["overall"]
            rows.append({"reference": ref_name, "method": m, "step": "all", "rmse": o["rmse"], "mae": o["mae"],
                         "r2": o["r2"], "n": o["n"]})
            for k, s in enumerate(metrics[ref_name][m]["per_step"], start=1):
                rows.append({"reference": ref_name, "method": m, "step": k, "rmse": s["rmse"], "mae": s["mae"],
                             "r2": s["r2"], "n": s["n"]})
    with open(os.path.join(output_folder, "metrics.csv.part"), "w", encoding="utf-8") as fh:
        fh.write("reference,method,step,rmse_mm,mae_mm,r2,n\n")
        for r in rows:
            fh.write(f"{r['reference']},{r['method']},{r['step']},{r['rmse']:.6g},{r['mae']:.6g},{r['r2']:.6g},{r['n']}\n")
    os.replace(os.path.join(output_folder, "metrics.csv.part"), os.path.join(output_folder, "metrics.csv"))
    with open(os.path.join(output_folder, "history.csv.part"), "w", encoding="utf-8") as fh:
        fh.write("epoch,train_loss,val_loss,lr,seconds\n")
        for hrow in res.history:
            fh.write(f"{hrow['epoch'] + 1},{hrow['train_loss']:.6g},{hrow['val_loss']:.6g},{hrow['lr']:.6g},"
                     f"{hrow['seconds']:.4g}\n")
    os.replace(os.path.join(output_folder, "history.csv.part"), os.path.join(output_folder, "history.csv"))
    from ..models.modelio import _write_json

    summary = {"architecture": spec.name, "metrics": metrics, "validation": meta["validation"],
               "test_dates": test_names, "lead": lead.tolist(), "origins": [iso(sdates[e]) for e in origins],
               "n_pairs": n_pairs, "split_dates": cfg["split_dates"]}
    _write_json(os.path.join(output_folder, "metrics.json"), summary)
    out = TrainJobResult(output_folder, os.path.join(output_folder, member), metrics, res, cfg, test_names,
                         forecast_path=forecast_path or None, residuals_path=residuals_path or None)
    if report_path:
        out.report_path = _write_report(report_path, spec, res, prep, info, metrics, methods, horizon,
                                        lead, origins, sdates, n_pairs, time.perf_counter() - t_start,
                                        hp_over, bt["with_zones"])
    write_manifest(output_folder, [{"folder": member, "val_rmse_mm": meta["validation"]["val_rmse_mm"]}],
                   extra={"created_by": "train", "stack": os.path.abspath(info.path)})
    progress.set(1.0)
    out.seconds = time.perf_counter() - t_start
    return out


def _write_report(path, spec, res, prep, info, metrics, methods, horizon, lead, origins, sdates, n_pairs,
                  seconds, hp_over, with_zones):
    from ..io.raster import iso
    from ..report import Report, new_figure

    from ..data.anchors import describe as anchor_description

    cfg = prep.config
    rep = Report(f"DeformCast training report: {spec.label}")
    rep.paragraph(
        f"Stack {os.path.basename(info.path)}: {info.grid.width} x {info.grid.height} pixels, {sdates.size} "
        f"epochs {iso(sdates[0])} .. {iso(sdates[-1])}. WINDOW {cfg['window']} epochs, HORIZON {horizon} epochs, "
        f"encodings: {', '.join(cfg['encodings'])}; input channels: {', '.join(prep.feature_names)}. The network "
        + ("learns the change from the last input epoch." if cfg["target"] == "increment" else
           f"learns the correction to the classical {cfg['baseline']} forecast"
           + (f" (a combination of classical forecasts fitted on the training windows: "
              f"{anchor_description(cfg['anchor_weights'])})." if cfg.get("anchor_weights") else ".")))
    sd = cfg["split_dates"]
    rep.paragraph(f"Training period {sd['train'][0]} .. {sd['train'][1]} ({res.n_train} windows), validation "
                  f"{sd['val'][0]} .. {sd['val'][1]} ({res.n_val} windows), test {sd['test'][0]} .. "
                  f"{sd['test'][1]} (never seen by training, normalisation or early stopping).")
    rep.heading("Test-period scores (mm)")
    rep.paragraph(
        f"Backtest: forecasts start from {len(origins)} origin(s) ({', '.join(iso(sdates[e]) for e in origins)}), "
        f"each forecasting the next {horizon} epochs from observations up to the origin, so every test epoch has "
        "one forecast. The classical baselines forecast from the same origins, fitted per pixel on the same "
        f"history, and every method is scored on the same {n_pairs} pixel-epochs.")
    for ref_name, label in (("observed", "against the observations"), ("truth", "against the noise-free truth")):
        if ref_name not in metrics:
            continue
        rows = [[m] + [metrics[ref_name][m]["overall"][k] for k in ("rmse", "mae", "r2")] +
                [metrics[ref_name][m]["overall"]["n"]] for m in methods]
        best = int(np.nanargmin([r[1] for r in rows]))
        rep.heading(f"Overall, {label}", 3)
        rep.table(rows, ["method", "RMSE (mm)", "MAE (mm)", "R²", "n"], highlight=best)
        rep.heading(f"RMSE (mm) per horizon step, {label}", 3)
        rep.table([[m] + [s["rmse"] for s in metrics[ref_name][m]["per_step"]] for m in methods],
                  ["method"] + [f"step {k}" for k in range(1, horizon + 1)])
        if with_zones and metrics[ref_name][methods[0]]["per_zone"]:
            zn = list(metrics[ref_name][methods[0]]["per_zone"])
            rep.heading(f"RMSE (mm) per zone, {label}", 3)
            rep.table([[m] + [metrics[ref_name][m]["per_zone"][z]["overall"]["rmse"] for z in zn] for m in methods],
                      ["method"] + zn)
    m0 = metrics["observed"]
    better = [b for b in methods[1:] if m0[spec.name]["overall"]["rmse"] < m0[b]["overall"]["rmse"]]
    if len(better) == len(methods) - 1:
        rep.note(f"{spec.label} beats every classical baseline in test RMSE against the observations.")
    else:
        worse = [b for b in methods[1:] if b not in better]
        rep.note(f"{spec.label} does NOT beat these baselines in test RMSE against the observations: "
                 f"{', '.join(worse)}. Consider more epochs, other hyperparameters (tune), other encodings, "
                 "or keep the classical forecast for this area.")
    rep.heading("Training")
    fig = new_figure(7, 3.6)
    ax = fig.add_subplot(111)
    ep = [h["epoch"] + 1 for h in res.history]
    ax.plot(ep, [h["train_loss"] for h in res.history], label="training loss")
    ax.plot(ep, [h["val_loss"] for h in res.history], label="validation MSE")
    ax.axvline(res.best_epoch + 1, color="grey", ls="--", lw=1, label=f"best epoch ({res.best_epoch + 1})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised units)")
    ax.set_yscale("log")
    ax.legend()
    rep.figure(fig, "Loss curves; the weights of the best validation epoch are kept.")
    rep.paragraph(f"{res.epochs_run} epochs ({'stopped early' if res.stopped_early else 'epoch limit'}), best "
                  f"epoch {res.best_epoch + 1}, {res.n_parameters} parameters, {res.seconds:.1f} s on {res.device}; "
                  f"whole run {seconds:.1f} s.")
    rep.heading("Hyperparameters", 3)
    rep.table([[k, v if not isinstance(v, bool) else str(v), "given" if k in hp_over else "default"]
               for k, v in res.hparams.items()], ["name", "value", "source"], digits=6)
    return rep.save(path)
