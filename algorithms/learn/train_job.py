"""``train`` without QGIS: one model with hand-set hyperparameters, its test-period metrics against
the classical baselines, rolling-origin scores and the HTML report (``run_training_job``); the
training loop itself is :mod:`training`."""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

import numpy as np

from ..errors import DeformCastError
from ..progress import Progress
from ..io.styles import palette_labels, sidecar_path
from .runtime import (PREDICT_BATCH, default_threads, predict_array, resolve_device,  # noqa: F401 - re-exported
    torch_session as _torch_session, torch_threads)

from .training import (DEFAULT_MAX_EPOCHS, DEFAULT_PATIENCE, evaluate_samples, correction_weight,  # noqa: F401 - re-exported
    train_model, weighted_norm)


MEMBER_FOLDER = "m01_{arch}"
_METRIC_PIXELS = 250_000  # pixels kept for the test metrics (all of them below this many)
_EVAL_SAMPLES = 10_000  # validation windows scored after every epoch


def _parse_hparams(text) -> Dict[str, Any]:
    from ..jsonparam import json_object_param

    return json_object_param(
        text, "HPARAMS", 'Give an object such as {"lr": 0.001, "batch_size": 128}, or leave it empty for the defaults.',
        'HPARAMS must be a JSON object such as {"lr": 0.001}, not a list or number.')


def _rolling_origins(test_start: int, T: int, horizon: int, window: int) -> List[int]:
    """Forecast origins (index of the last input epoch) covering the test period without overlap."""
    return [e for e in range(test_start - 1, T - 1, horizon) if e >= window - 1]


def run_training_job(stack_path: str, output_folder: str, architecture: str = "resnet_transformer",
                     horizon: int = 6, window: int = 12, encodings=None,
                     covariate_paths: Optional[List[str]] = None, hparams=None, max_epochs: int = 40,
                     patience: int = DEFAULT_PATIENCE, seed: int = 42, device: str = "auto", dates=None,
                     forecast_path: Optional[str] = None, residuals_path: Optional[str] = None,
                     report_path: Optional[str] = None, truth_path: Optional[str] = None,
                     zones_path: Optional[str] = None, max_samples: int = 20000, target: str = "residual",
                     threads: Optional[int] = None, block_rows: int = 256, validation: str = "space",
                     baseline: str = "adaptive", steps=None, progress: Optional[Progress] = None) -> Dict[str, Any]:
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
    descriptions, styled) and the HTML report. Returns a dict with the paths, the metrics and the
    :class:`TrainResult` (key ``result``).
    """

    from ..io import styles
    from ..data.baselines import BASELINES, forecast_baselines
    from ..data.dataset import forecast_inputs, prepare, read_rows, to_mm
    from ..metrics import evaluate
    from ..models.modelio import MANIFEST, DataFingerprint, grid_to_dict, save_model, write_manifest
    from ..models import get_spec, resolve_hparams
    from ..io.raster import RasterWriter, iso, open_stack, read_raster, read_stack, row_blocks

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
                      threads=threads)
    model = res.model
    norm = weighted_norm(model, prep.val, norm, cfg)
    if "correction_weight" in norm:
        cw = norm["correction_weight"]
        progress.log(f"Weight of the network's correction to the {cfg['baseline']} forecast, fitted on the "
                     f"validation windows: {min(cw):.2f}..{max(cw):.2f} over the horizon (mean {np.mean(cw):.2f}; "
                     "0 = the classical forecast alone).")
    val_scores = evaluate_samples(model, prep.val, norm)

    # --- backtest of the test period, block by block ---------------------------------------
    test_start = int(cfg["test_start"])
    origins = _rolling_origins(test_start, T, horizon, window)
    test_idx = np.arange(test_start, T)
    lead = np.zeros(test_idx.size, np.int64)
    origin_of = np.zeros(test_idx.size, np.int64)
    for e in origins:
        for k in range(1, horizon + 1):
            if e + k < T:
                lead[e + k - test_start] = k
                origin_of[e + k - test_start] = e
    n_b = test_idx.size
    test_names = [iso(d) for d in sdates[test_idx]]

    truth_info, truth_band = None, None
    if truth_path:
        truth_info = open_stack(truth_path)
        if not truth_info.grid.same_as(grid):
            raise DeformCastError("The TRUTH stack is on another grid than INPUT; give the noise-free stack "
                                  "of the same scene.")
        pos = {str(d): i for i, d in enumerate(truth_info.dates)}
        missing = [n for n in test_names if n not in pos]
        if missing:
            raise DeformCastError(f"The TRUTH stack has no band for the test date(s) {', '.join(missing[:3])}.")
        truth_band = [pos[n] for n in test_names]
    zones, zone_labels = None, None
    if zones_path:
        z, zg, _ = read_raster(zones_path)
        if not zg.same_as(grid):
            raise DeformCastError("The ZONES raster must be on the grid of INPUT (same size, extent and CRS).")
        zones = z[0]
        zone_labels = palette_labels(sidecar_path(zones_path)) or None

    rng = np.random.default_rng(seed)
    n_pix = grid.width * grid.height
    keep_mask = None if n_pix <= _METRIC_PIXELS else (rng.random(grid.shape) < _METRIC_PIXELS / n_pix)
    methods = [spec.name] + list(BASELINES)
    acc = {m: [] for m in methods}
    acc_obs, acc_truth, acc_zone = [], [], []
    fp = DataFingerprint((T, grid.height, grid.width), sdates, grid)
    fc_w = rs_w = None
    sample_fc, sample_rs = [], []
    bp = progress.sub(0.8, 0.97)
    blocks = list(row_blocks(grid.height, block_rows))
    thread_scope = torch_threads(threads)
    thread_scope.__enter__()
    try:
        if forecast_path:
            fc_w = RasterWriter(forecast_path, grid, n_b, test_names, metadata={"CONTENT": "test-period forecast, mm"})
        if residuals_path:
            rs_w = RasterWriter(residuals_path, grid, n_b, test_names,
                                metadata={"CONTENT": "forecast minus observed, mm"})
        for bi, (r0, r1) in enumerate(blocks):
            a0, a1 = read_rows(r0, r1, grid.height, cfg)
            blk = read_stack(info, rows=(a0, a1))
            centre = blk[:, r0 - a0:r1 - a0]
            fp.add_rows(centre)
            cov_blk = {n: covs[n][a0:a1] for n in cfg.get("covariate_names", [])}
            h, w = centre.shape[1:]
            pred = {m: np.full((n_b, h, w), np.nan, np.float32) for m in methods}
            for e in origins:
                ks = [k for k in range(1, horizon + 1) if e + k < T]
                bands = [e + k - test_start for k in ks]
                X, valid, anchor = forecast_inputs(blk, sdates, grid, a0, cfg, norm, cov_blk, end_index=e,
                                                   out_rows=(r0, r1))
                if X.shape[0]:
                    y = to_mm(predict_array(model, X, device=dev), anchor, norm)  # (n, horizon)
                    for j, k in enumerate(ks):
                        pred[spec.name][bands[j]][valid] = y[:, k - 1]
                tdates = sdates[[e + k for k in ks]]
                fb = forecast_baselines(centre[: e + 1], sdates[: e + 1], e, tdates)
                for name, f in fb.items():
                    f = np.where(valid[None], f, np.nan)  # the same pixels as the model
                    pred[name][bands] = f
                bp.set((bi + (origins.index(e) + 1) / len(origins)) / len(blocks))
            obs = centre[test_idx]
            if fc_w is not None:
                fc_w.write(pred[spec.name], r0)
                sample_fc.append(pred[spec.name][:, ::7, ::7])
            if rs_w is not None:
                rs = pred[spec.name] - obs
                rs_w.write(rs, r0)
                sample_rs.append(rs[:, ::7, ::7])
            km = np.ones((h, w), bool) if keep_mask is None else keep_mask[r0:r1]
            for m in methods:
                acc[m].append(pred[m][:, km])
            acc_obs.append(obs[:, km])
            if truth_info is not None:
                tb = read_stack(truth_info, rows=(r0, r1), bands=truth_band)
                acc_truth.append(tb[:, km])
            if zones is not None:
                acc_zone.append(zones[r0:r1][km])
        if fc_w is not None:
            fc_w.qml = styles.deformation_style(np.concatenate([s.ravel() for s in sample_fc]))
            fc_w.close()
            fc_w = None
        if rs_w is not None:
            rs_w.qml = styles.residual_style(np.concatenate([s.ravel() for s in sample_rs]))
            rs_w.close()
            rs_w = None
    finally:
        thread_scope.__exit__(None, None, None)
        for wtr in (fc_w, rs_w):
            if wtr is not None:
                wtr.abort()

    # --- metrics: same pixels and epochs for every method -----------------------------------
    P = {m: np.concatenate(acc[m], axis=1) for m in methods}  # (n_b, n_pix_kept)
    O = np.concatenate(acc_obs, axis=1)
    common = np.isfinite(O)
    for m in methods:
        common &= np.isfinite(P[m])
    refs = {"observed": O}
    if acc_truth:
        Tr = np.concatenate(acc_truth, axis=1)
        common &= np.isfinite(Tr)
        refs["truth"] = Tr
    if not common.any():
        raise DeformCastError("No test pixel has a forecast from the model and every baseline and an "
                              "observation; the test period may be all nodata.")
    Z = np.concatenate(acc_zone) if acc_zone else None
    metrics: Dict[str, Any] = {}
    for ref_name, R in refs.items():
        metrics[ref_name] = {}
        for m in methods:
            pm = np.where(common, P[m], np.nan)
            # per lead: regroup bands by lead -> columns of an (N, horizon) table
            ev = evaluate(pm.ravel()[:, None], R.ravel()[:, None], None if Z is None else np.tile(Z, n_b),
                          zone_labels)
            ev["per_step"] = [evaluate(pm[lead == k].ravel()[:, None], R[lead == k].ravel()[:, None])["overall"]
                              for k in range(1, horizon + 1)]
            metrics[ref_name][m] = ev
    n_pairs = int(common.sum())

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
    out = {"OUTPUT_FOLDER": output_folder, "model": os.path.join(output_folder, member), "metrics": metrics,
           "result": res, "prepared_config": cfg, "test_dates": test_names}
    if report_path:
        out["OUTPUT_REPORT"] = _write_report(report_path, spec, res, prep, info, metrics, methods, horizon,
                                             lead, origins, sdates, n_pairs, time.perf_counter() - t_start,
                                             hp_over, zones is not None)
    if forecast_path:
        out["OUTPUT_FORECAST"] = forecast_path
    if residuals_path:
        out["OUTPUT_RESIDUALS"] = residuals_path
    write_manifest(output_folder, [{"folder": member, "val_rmse_mm": meta["validation"]["val_rmse_mm"]}],
                   extra={"created_by": "train", "stack": os.path.abspath(info.path)})
    progress.set(1.0)
    out["seconds"] = time.perf_counter() - t_start
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
