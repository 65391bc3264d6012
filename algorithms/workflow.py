"""The full DeformCast chain in one call: data -> TPE tuning -> backtest against baselines ->
ensemble forecast -> uncertainty -> residuals -> zoning -> one HTML report that tells the story.

QGIS-free. The ``workflow`` Processing algorithm (the README's main job) calls
:func:`run_workflow` and adds a QGIS project (.qgz) with every layer grouped and styled.

Without a stack the built-in synthetic scene (:mod:`synthetic`) is written first; its noise-free
truth and its later observations then score the backtest and the residual analysis. With a user's
stack, later observations (``observed``) are optional: without them the residual step is skipped.

Horizon: 30 epochs by default (a year at Sentinel-1's 12-day step). Over a few weeks the seasonal
swing (several mm) dominates the deformation a pixel undergoes, everywhere; over a year it cancels
and the maps show where the ground keeps moving, which is what a control decision is about.

Budget: the defaults (one architecture, up to 20 trials of at most 20 epochs on 5000 sampled windows,
one trial process per core with one torch thread each (``local_workers``), study patience, early
stopping and median pruning) keep the demo under 5 minutes on 2 CPU cores (tuning about half of it,
docs/benchmarks.md); raise ``n_trials``/``max_epochs``/``max_samples`` for real studies.

The networks learn the correction to a classical forecast (``target="residual"``): by default the
``adaptive`` combination of classical forecasts of :mod:`anchors` (``baseline="adaptive"``), read
through the ``trajectory`` and ``regime`` encodings (``encodings=None`` -> ``dataset.auto_encodings``)
with spatial validation (``validation="space"``). After tuning, the rolling-origin evaluation and
skill gate of :mod:`skill_gate` are fitted and stored with the ensemble; the forecast, the backtest's
delivered row and every map use the gated forecast. Measurements and the alternatives: docs/skill.md.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional, Sequence

import numpy as np

from .data import dataset, step_detect
from .models import DEFAULT_ARCHITECTURE, modelio
from .io import raster, styles
from .data.configs import DataConfig
from .errors import DeformCastError
from .progress import Progress, silent
from .report import Report, fmt, new_figure
from .decision.sieve import DEFAULT_MMU_M2
from .learn.runtime import numeric_session

#: The compact search space of each architecture: the registry's ranges, capped so that 20 trials fit the
#: 10-minute budget of the demo on 2 CPU cores (the largest networks of the full space took up to two
#: minutes per trial there without scoring better). ``search_space={}`` searches the full space.
#: ``lstm`` (the default since session 24): hidden size at most 64 and at most two layers, the ranges
#: measured on eight scenes (docs/skill.md, "Session 24"): the full range's 128 x 3 networks cost up to
#: three times the tuning time for no gain in the delivered forecast.
COMPACT_SPACES = {
    "resnet_transformer": {"d_model": [16, 32], "layers": {"type": "int", "low": 1, "high": 2},
                           "res_blocks": {"type": "int", "low": 1, "high": 3}, "batch_size": [128, 256, 512],
                           "window": {"type": "int", "low": 8, "high": 24}},
    "lstm": {"hidden": [16, 32, 64], "layers": {"type": "int", "low": 1, "high": 2}, "batch_size": [128, 256, 512],
             "window": {"type": "int", "low": 8, "high": 24}},
}
COMPACT_SPACE = COMPACT_SPACES["resnet_transformer"]


def compact_space(architectures: Sequence[str]) -> Optional[dict]:
    """The compact search space of a single architecture that has one (None: the registry's full space)."""
    archs = list(architectures)
    return COMPACT_SPACES.get(archs[0]) if len(archs) == 1 else None


STEPS = [("scene", 0.03), ("tune", 0.58), ("gate", 0.04), ("backtest", 0.10), ("predict", 0.08), ("uncertainty", 0.06),
         ("residuals", 0.05), ("zoning", 0.03), ("report", 0.03)]


def _plan(progress: Progress) -> Dict[str, Progress]:
    out, a = {}, 0.0
    for name, w in STEPS:
        out[name] = progress.sub(a, a + w)
        a += w
    return out


def merge_members(model_root: str, study_folders: Sequence[str], top_k: int) -> str:
    """One ensemble manifest over several studies: the ``top_k`` best by validation loss."""
    cands = []
    for f in study_folders:
        for m in modelio.read_manifest(f)["members"]:
            vl = m.get("val_loss")
            if vl is None:
                vl = (modelio.read_meta(m["path"]).get("validation") or {}).get("val_loss")
            cands.append((float(vl) if vl is not None else float("inf"), os.path.relpath(m["path"], model_root)))
    cands.sort(key=lambda c: c[0])
    chosen = [{"folder": p, "val_loss": v} for v, p in cands[: int(top_k)]]
    return modelio.write_manifest(model_root, chosen, extra={"merged_from": [os.path.relpath(f, model_root)
                                                                             for f in study_folders]})


def _cmap(name: str):
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(name, styles.RAMPS[name])


def map_figure(arr: np.ndarray, title: str, ramp: str, vmin=None, vmax=None, labels=None, colours=None, unit=""):
    fig = new_figure(5.2, 4.0)
    ax = fig.add_subplot(111)
    if labels is not None:
        from matplotlib.colors import BoundaryNorm, ListedColormap

        n = len(labels)
        cmap = ListedColormap(list(colours)[:n])
        im = ax.imshow(np.ma.masked_invalid(arr), cmap=cmap, norm=BoundaryNorm(np.arange(0.5, n + 1.5), n),
                       interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, ticks=np.arange(1, n + 1), shrink=0.85)
        cb.ax.set_yticklabels(labels, fontsize=7)
    else:
        im = ax.imshow(np.ma.masked_invalid(arr), cmap=_cmap(ramp), vmin=vmin, vmax=vmax, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85)
        if unit:
            cb.set_label(unit)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


@numeric_session
def run_workflow(output_folder: str, stack_path: Optional[str] = None, covariates: Sequence[str] = (),
                 observed_path: Optional[str] = None, dates=None, seed: int = 0,
                 architectures: Sequence[str] = (DEFAULT_ARCHITECTURE,), horizon: int = 30, n_trials: int = 20,
                 top_k: int = 10, max_epochs: int = 20, window: Optional[int] = None, encodings=None,
                 thresholds: Sequence[float] = (10.0, 20.0), n_classes: int = 5, min_area: float = 0.0,
                 mmu: float = DEFAULT_MMU_M2,
                 device: str = "auto", max_samples: int = 5000, target: str = "residual", search_space="compact",
                 validation: str = "space", baseline: str = "adaptive", steps="auto", local_workers: int = 0,
                 regular_step_days: int = 0, scene_kwargs: Optional[dict] = None,
                 progress: Optional[Progress] = None) -> Dict[str, object]:
    """Run the whole chain into ``output_folder``; returns a dict of paths and headline figures.

    ``regular_step_days`` > 0: a user's stack is first put on that regular time step
    (``import_timeseries`` with ``REGULARISE``: linear interpolation in time, long gaps left empty;
    ``stack_regular.tif`` in the output folder), e.g. 12 for a Sentinel-1 record whose 6-day part ended
    with Sentinel-1B; 0 keeps the stack's own dates."""
    from .maps import backtest as bt
    from .maps import residuals as res_mod
    from .learn import tuning
    from .maps import uncertainty
    from .decision import zoning
    from .maps.ensemble import predict_ensemble

    progress = progress or silent()
    stage = _plan(progress)
    t0 = time.time()
    out = os.path.abspath(output_folder)
    os.makedirs(out, exist_ok=True)
    marker = os.path.join(out, "workflow.json")
    if os.path.exists(marker):
        os.remove(marker)  # the marker is written last: a folder without it is unfinished
    timings: Dict[str, float] = {}
    paths: Dict[str, str] = {}
    truth_path = None
    scene = None

    # 1. data ------------------------------------------------------------------------------
    ts = time.time()
    if not stack_path:
        from .data.synthetic import write_scene

        progress.log("Writing the built-in synthetic scene (known physics) ...")
        files = write_scene(os.path.join(out, "scene"), seed=seed, progress=stage["scene"], **(scene_kwargs or {}))
        stack_path = files["stack"]
        truth_path = files["truth"]
        observed_path = observed_path or files["future_observed"]
        from .data.synthetic import COVARIATE_NAMES

        covariates = list(covariates) or [files[n] for n in COVARIATE_NAMES]
        paths.update({"stack": stack_path, "truth": truth_path, "future_observed": files["future_observed"],
                      "zones": files["zones"]})
        with open(files["scene_json"], encoding="utf-8") as fh:
            scene = json.load(fh)
    else:
        if int(regular_step_days or 0) > 0:
            from .io.importer import import_timeseries

            progress.log(f"Putting the stack on a regular {int(regular_step_days)}-day step (REGULAR_STEP) ...")
            paths["stack_input"] = stack_path
            stack_path = import_timeseries(stack_path, os.path.join(out, "stack_regular.tif"), dates=dates,
                                           regularise=int(regular_step_days), progress=stage["scene"])["output"]
            dates = None                                   # the regular stack carries its dates
        paths["stack"] = stack_path
    info = raster.open_stack(stack_path, dates, progress=progress)
    raster.refuse_constant(info)
    empty = raster.empty_origin(info)
    if empty:   # found before tuning, not after it: the job forecasts from the last acquisition
        raise DeformCastError(empty)
    timings["data"] = time.time() - ts
    stage["scene"].set(1.0)

    # 2. tuning ----------------------------------------------------------------------------
    ts = time.time()
    if isinstance(search_space, str) and search_space == "compact":
        search_space = compact_space(architectures)
    archs = list(architectures)
    if not archs:
        raise DeformCastError("Choose at least one architecture.")
    if dataset.is_auto(encodings):
        # trajectory + regime where the series allows it (>= 10 training end epochs with 1.9 years of
        # history before them), else regime alone
        encodings = dataset.auto_encodings(info.dates, horizon, validation)
        progress.log(f"Coding strategy: {', '.join(encodings)}" + (
            "" if "trajectory" in encodings else " (the series is too short for 'trajectory': it needs 10 "
            "training end epochs with 1.9 years of history)") + f"; validation: {validation}; anchor: {baseline}.")
    if covariates and "covariates" not in encodings:
        progress.log("The covariates are not used by the coding strategy (" + ", ".join(encodings) + "); add "
                     "'covariates' to ENCODING to give them to the networks.")
        model_covariates = []
    else:
        model_covariates = list(covariates)
    data_cfg = DataConfig(target=target, baseline=baseline, validation=validation, steps=steps)
    tune_results = {}
    study_folders = []
    for i, arch in enumerate(archs):
        sub = stage["tune"].sub(i / len(archs), (i + 1) / len(archs))
        folder = os.path.join(out, "models", arch) if len(archs) > 1 else os.path.join(out, "models")
        progress.log(f"TPE tuning of {arch}: {n_trials} trials ...")
        r = tuning.tune_job(stack_path, folder, arch, horizon, dates=dates, covariates=model_covariates, gate=False,
                            report_path=os.path.join(out, f"tuning_report_{arch}.html"), progress=sub,
                            n_trials=n_trials, top_k=top_k, seed=seed, max_epochs=max_epochs, window=window,
                            encodings=encodings, device=device, max_samples=max_samples,
                            prepare_kwargs=data_cfg.prepare_kwargs(),
                            search_space=search_space, local_workers=local_workers)
        tune_results[arch] = r
        study_folders.append(folder)
    model_root = os.path.join(out, "models")
    if len(archs) > 1:
        merge_members(model_root, study_folders, top_k)
    paths["models"] = model_root
    timings["tune"] = time.time() - ts

    # 2b. rolling-origin evaluation and skill gate (written into the manifest, applied by predict)
    ts = time.time()
    from .maps import gate_report, skill_gate

    paths["rolling_origins_csv"] = os.path.join(out, "rolling_origins.csv")
    gate = skill_gate.run_gate(stack_path, model_root, dates=dates, covariates=model_covariates, device=device,
                               csv_path=paths["rolling_origins_csv"], progress=stage["gate"])
    timings["gate"] = time.time() - ts

    # 3. backtest on the models' test period -------------------------------------------------
    ts = time.time()
    progress.log("Backtest on the held-out test period, beside the classical baselines ...")
    back = bt.run_backtest(stack_path, model_root, os.path.join(out, "backtest"), truth_path=truth_path,
                           thresholds=thresholds, dates=dates, covariates=model_covariates, device=device,
                           progress=stage["backtest"])
    timings["backtest"] = time.time() - ts
    gate = gate_report.with_held_out(gate, back)   # the verdict: rolling origins and the held-out test period

    # 4. forecast after the last acquisition ----------------------------------------------
    ts = time.time()
    progress.log("Ensemble forecast after the last acquisition ...")
    for k in ("median", "quantiles", "members"):
        paths[f"forecast_{k}"] = os.path.join(out, f"forecast_{k}.tif")
    fc = predict_ensemble(stack_path, model_root, paths["forecast_median"], paths["forecast_quantiles"],
                          paths["forecast_members"], dates=dates, covariates=model_covariates, device=device,
                          progress=stage["predict"])
    timings["predict"] = time.time() - ts

    # 5. uncertainty -------------------------------------------------------------------------
    ts = time.time()
    unc = uncertainty.run_uncertainty(
        paths["forecast_members"], stack_path, thresholds=list(thresholds), n_classes=n_classes, dates=dates,
        progress=stage["uncertainty"], report_path=os.path.join(out, "uncertainty_report.html"),
        **{f"{k}_path": os.path.join(out, f"{k}.tif")
           for k in ("susceptibility", "spread", "ambiguity", "confidence", "exceedance", "deformation")})
    paths.update(_summary_paths(unc, _UNCERTAINTY_KEYS))
    timings["uncertainty"] = time.time() - ts

    # 6. residuals against later observations ---------------------------------------------
    ts = time.time()
    resid = None
    if observed_path:
        progress.log("Spatial residual analysis against later observations ...")
        resid = res_mod.run_residuals(paths["forecast_median"], observed_path, zones=paths.get("zones"),
                                      uncertainty=[unc.spread_path, unc.ambiguity_path, unc.confidence_path],
                                      seed=seed, progress=stage["residuals"],
                                      residuals_path=os.path.join(out, "residuals.tif"),
                                      hotspots_path=os.path.join(out, "hotspots_gi.tif"),
                                      hotspot_classes_path=os.path.join(out, "hotspot_classes.tif"),
                                      report_path=os.path.join(out, "residuals_report.html"))
        paths.update(_summary_paths(resid, _RESIDUALS_KEYS))
    stage["residuals"].set(1.0)
    timings["residuals"] = time.time() - ts

    # 7. zoning --------------------------------------------------------------------------------
    ts = time.time()
    zon = zoning.run_zoning(unc.susceptibility_path, unc.ambiguity_path, unc.exceedance_path,
                            uncertainty_type="ambiguity", exceedance_band=1,
                            hotspots=(resid.hotspots_path if resid else None),
                            # deformation over the horizon: the zone attributes and the differential-
                            # movement (step) rule both refer to the forecast period
                            forecast=unc.deformation_path, min_area=min_area, mmu=mmu,
                            progress=stage["zoning"], tiers_path=os.path.join(out, "tiers.tif"),
                            zones_path=os.path.join(out, "zones.gpkg"),
                            discontinuity_path=os.path.join(out, "discontinuities.tif"),
                            report_path=os.path.join(out, "zoning_report.html"))
    paths.update(_summary_paths(zon, _ZONING_KEYS))
    paths["tiers"] = zon.tiers_path
    paths["zones_polygons"] = zon.zones_path
    timings["zoning"] = time.time() - ts

    # 8. the story ------------------------------------------------------------------------------
    report_path = os.path.join(out, "report.html")
    summary = {"output_folder": out, "report": report_path, "paths": paths, "timings_s": timings,
               "backtest": {k: back[k] for k in ("rows", "coverage_p10_p90", "exceedance", "n_pixels",
                                                  "forecast_start", "forecast_dates", "score_key", "n_members")},
               "forecast": {k: fc.get(k) for k in ("members", "forecast_dates", "end_date", "valid_pixels",
                                                   "unforecast", "unforecast_note")},
               "modelling": {"encodings": list(encodings or ["none"]), "validation": validation, "target": target,
                             "baseline": baseline} | _steps_of(paths["models"]),
               "gate": {k: gate[k] for k in ("reference", "references", "classifier", "verdict", "verdict_rolling",
                                             "held_out", "action", "ratio", "ratio_pooled", "aggregation",
                                             "mean_weight", "origin_dates", "per_class",
                                             "weights", "class_limits_mm")}
               | {"scores": {k: {a: b for a, b in v.items() if a != "per_origin"} for k, v in gate["scores"].items()},
                  "sentence": gate_report.gate_sentence(gate)} | ({"held": gate["held"]} if gate.get("held") else {}),
               "tuning": {a: {"best_val_rmse": r.best_value, "default_val_rmse": r.default_val_rmse,
                              "n_complete": r.n_complete, "n_pruned": r.n_pruned, "best_params": r.best_params,
                              "stopped_by_patience": bool(getattr(r.worker, "stopped_by_patience", False)),
                              "report": r.report} for a, r in tune_results.items()},
               "susceptibility_limits": [float(x) for x in unc.limits], "class_names": unc.class_names,
               "thresholds": list(unc.threshold_labels),
               "residuals": ({"morans_i": resid.morans_i, "morans_p": resid.morans_p} if resid else None),
               "tier_area_m2": {int(k): float(v) for k, v in zon.tier_area_m2.items()},
               "scene": bool(scene)}
    write_story(report_path, summary, info, scene, unc, zon, resid, tune_results, back, stage["report"], gate)
    summary["timings_s"]["total"] = time.time() - t0
    tmp = marker + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1, default=str)
    os.replace(tmp, marker)
    progress.set(1.0)
    return summary


#: keys of the summary's ``paths`` (workflow.json; :mod:`chain` builds the layer tree from them) for the
#: files each stage wrote, in the order they are written: (result field, key)
_UNCERTAINTY_KEYS = (("susceptibility_path", "OUTPUT_SUSCEPTIBILITY"), ("spread_path", "OUTPUT_SPREAD"),
                     ("ambiguity_path", "OUTPUT_AMBIGUITY"), ("confidence_path", "OUTPUT_CONFIDENCE"),
                     ("exceedance_path", "OUTPUT_EXCEEDANCE"), ("deformation_path", "OUTPUT_DEFORMATION"),
                     ("report_path", "OUTPUT_REPORT"))
_RESIDUALS_KEYS = (("hotspots_path", "OUTPUT_HOTSPOTS"), ("hotspot_classes_path", "OUTPUT_HOTSPOT_CLASSES"),
                   ("residuals_path", "OUTPUT_RESIDUALS"), ("report_path", "OUTPUT_REPORT"))
_ZONING_KEYS = (("discontinuity_path", "OUTPUT_DISCONTINUITY"), ("tiers_path", "OUTPUT_TIERS"),
                ("zones_path", "tier_zones"), ("report_path", "OUTPUT_REPORT"))


def _steps_of(models_folder: str) -> dict:
    """The step dates the members' classical fits used (``steps``) and those found in the stack when
    STEPS was auto (``steps_detected``), from the first member's data configuration."""
    try:
        cfg = modelio.read_meta(modelio.member_paths(models_folder)[0]).get("data_config") or {}
    except (DeformCastError, OSError, IndexError, ValueError):
        return {}
    return {"steps": list(cfg.get("steps") or []), "steps_detected": cfg.get("steps_detected"),
            "date_weights": bool(cfg.get("date_weights")), "noisy_dates": cfg.get("noisy_dates") or []}


def _summary_paths(res, keys) -> dict:
    return {key: getattr(res, field) for field, key in keys if getattr(res, field)}


def _band(path: str, band: int = 1) -> np.ndarray:
    return raster.read_raster(path)[0][band - 1]


def _file_link(key: str, p: str, root: str) -> str:
    import html

    rel = os.path.relpath(p, root).replace(os.sep, "/")
    return (f"<li>{html.escape(key)}: <a href='{html.escape(rel, quote=True)}'><code>{html.escape(rel)}</code>"
            "</a></li>")


def _front(rep, path, s, info, unc, zon, resid, tune_results, back, gate) -> dict:
    """The plain-language front (:mod:`story`): summary, tiers and actions, example series, glossary,
    links; also written as ``report_summary.json`` beside the report and kept in ``s['story']``."""
    from . import story as st

    story = st.build_summary(s, info, unc, zon, resid, back, gate,
                             [getattr(r, "report", None) for r in tune_results.values()])
    fig = None
    if story.get("examples") and s["paths"].get("forecast_members"):
        try:
            fig = st.fan_figure(story["examples"], info.path, s["paths"]["forecast_members"],
                                s["paths"].get("future_observed"), stack_dates=info.dates)
        except (OSError, RuntimeError, ValueError, IndexError) as e:  # a figure never costs the report
            story["examples_error"] = str(e)
    st.write_front(rep, story, fig)
    s["story"] = story
    s["report_summary"] = os.path.join(os.path.dirname(os.path.abspath(path)), "report_summary.json")
    tmp = s["report_summary"] + ".part"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(story, fh, indent=1)
    os.replace(tmp, s["report_summary"])
    return story


def write_story(path, s, info, scene, unc, zon, resid, tune_results, back, progress, gate=None) -> str:
    from .maps import gate_report

    from .decision.zoning import TIERS

    rep = Report("DeformCast: deformation forecast, uncertainty and control zones")
    rep.paragraph(f"Output folder: {s['output_folder']}. Open deformcast.qgz in QGIS for every layer, grouped "
                  "and styled. Method after Liu et al. (2026), Remote Sensing 18(2):234; choices where the paper "
                  "is silent are documented in the README.", cls="muted")
    _front(rep, path, s, info, unc, zon, resid, tune_results, back, gate)
    rep.heading("Technical detail")
    # data
    rep.heading("1. Data")
    d = info.dates
    rep.paragraph(f"Displacement stack {os.path.basename(info.path)}: {info.grid.width} x {info.grid.height} pixels, "
                  f"{info.n_epochs} acquisitions from {d[0]} to {d[-1]}."
                  + (" This is the built-in synthetic scene (two accelerating mining subsidence bowls, a creeping "
                     "fault, a groundwater-rebound uplift, lithology-dependent seasonality, power-law atmospheric "
                     "noise), so forecasts are also scored against the noise-free truth." if scene else ""))
    if s["paths"].get("stack_input"):
        rep.paragraph(f"Put on a regular {int(np.median(np.diff(d).astype(np.int64)))}-day step from "
                      f"{os.path.basename(s['paths']['stack_input'])} (REGULAR_STEP: linear interpolation in time, "
                      "gaps longer than 3 steps left empty).")
    for msg in (dataset.cadence_warning(d), raster.magnitude_warning(info), info.fill_note,
                (s.get("forecast") or {}).get("unforecast_note")):
        if msg:
            rep.note("Warning: " + msg)
    # tuning
    rep.heading("2. TPE tuning")
    trows = []
    for a, r in tune_results.items():
        gain = (1 - r.best_value / r.default_val_rmse) * 100 if r.default_val_rmse else float("nan")
        trows.append([a, r.n_complete, r.n_pruned, r.default_val_rmse, r.best_value, gain,
                      os.path.basename(r.report or "")])
    rep.table(trows, ["architecture", "trials complete", "pruned", "val RMSE hand-set defaults (mm)",
                      "val RMSE best TPE (mm)", "improvement %", "details"])
    mo = s.get("modelling") or {}
    if mo:
        rep.paragraph(f"What the networks learn: target {mo.get('target')} (the correction to a per-pixel classical "
                      f"forecast when 'residual'), coding {', '.join(mo.get('encodings') or ['none'])}, "
                      f"validation {mo.get('validation')} (early stopping, the TPE objective and each model's "
                      "correction weight; 'space' = 20 % of the pixels in blocks, over the epochs before the test period).")
    if mo.get("steps_detected"):
        rep.paragraph("Steps found in the stack (STEPS auto): " + step_detect.describe(mo["steps_detected"])
                      + ". Each date enters the classical fits (and so the anchor and the networks' classical channels) "
                      "of the pixels whose own history shows the step; give the dates in STEPS when you know them, or "
                      "STEPS none to switch this off.")
    elif mo.get("steps"):
        rep.paragraph("Known step dates (STEPS): " + ", ".join(mo["steps"]) + "; each enters the classical fits of "
                      "the pixels whose history shows the step.")
    if mo.get("date_weights"):
        noisy = mo.get("noisy_dates") or []
        rep.paragraph("Each acquisition weighs in the classical fits by the inverse of its noise variance, measured on "
                      "the stack (a bad date no longer bends every fit). " + (
                          "The noisiest dates (noise at least twice the median date's; weight in brackets): "
                          + ", ".join(f"{d} ({w:.2f})" for d, w in noisy) + ". Check them in the interferograms."
                          if noisy else "No date is noisier than twice the median date."))
    if mo.get("baseline") == "adaptive":
        rep.paragraph("The classical anchor the networks correct is the adaptive combination of classical forecasts "
                      "(persistence, smoothed persistence, linear and trajectory fits over several windows) fitted on "
                      "the training windows; see docs/skill.md.")
    progress.set(0.2)
    if gate:
        rep.heading("3. Skill over rolling origins and the skill gate")
        gate_report.report_section(rep, gate)
    # backtest
    rep.heading("3b. Skill on the held-out test period (one origin)")
    key = back["score_key"]
    rep.paragraph(f"Forecast from {back['forecast_start']} over {len(back['forecast_dates'])} epochs the models never "
                  f"saw in training, tuning or early stopping, on {back['n_pixels']} pixels. Every row is scored on "
                  "the same pixels and epochs. Classical per-pixel fits are strong on InSAR: they are the bar to clear.")
    cols = ["forecast", "RMSE vs observed (mm)", "MAE vs observed (mm)"] + (
        ["RMSE vs truth (mm)", "MAE vs truth (mm)"] if key == "rmse_truth" else [])
    shown = [back["rows"][0]] + ([back["raw_ensemble"]] if back.get("raw_ensemble") is not back["rows"][0] else []) \
        + [back["best_member"]] + [r for r in back["rows"] if r["model"].startswith("baseline")]
    trs = []
    for r in shown:
        name = r["model"] if r is not back["best_member"] else f"best single member: {r['model']}"
        row = [name, r["rmse_observed"], r["mae_observed"]]
        if key == "rmse_truth":
            row += [r["rmse_truth"], r["mae_truth"]]
        trs.append(row)
    rep.table(trs, cols, highlight=0)
    ens, bb, bm = back["ensemble"][key], back["best_baseline"][key], back["best_member"][key]
    verdict = ("From this one origin, the delivered forecast beats every classical baseline" if ens < bb else
               "From this one origin, the delivered forecast does NOT beat the best classical baseline") + \
        f" ({fmt(ens)} vs {fmt(bb)} mm, {back['best_baseline']['model']}) and " + \
        ("beats" if ens < bm else "does not beat") + f" the best single member ({fmt(bm)} mm). One origin is one " \
        "draw of the atmosphere: the verdict needs the rolling origins (section 3) to agree with it."
    rep.note(verdict)
    rep.paragraph(f"The P10-P90 band of the calibrated members covers {back['coverage_p10_p90'] * 100:.1f}% of the "
                  "later observations (a calibrated 80% band would cover 80%; the members were calibrated on the "
                  "validation origins to cover 80% there, see docs/README_calibration.md).")
    rep.table([[e["threshold_mm"], e["base_rate"], e["brier"], e["brier_ref"], e["bss"]] for e in back["exceedance"]],
              ["threshold |d| (mm over the horizon)", "observed base rate", "Brier score", "Brier (base rate)",
               "Brier skill score"])
    progress.set(0.4)
    # forecast maps
    rep.heading("4. Forecast")
    dpath = unc.deformation_path
    if dpath and os.path.exists(dpath):
        dd = _band(dpath)
        m = styles.symmetric_range(dd)
        rep.figure(map_figure(dd, f"Median forecast deformation {s['forecast']['end_date']} -> "
                              f"{s['forecast']['forecast_dates'][-1]}", "deformation", -m, m, unit="mm"),
                   "Ensemble median of the top models; red = subsidence, blue = uplift.")
    # uncertainty
    rep.heading("5. Susceptibility and uncertainty")
    lim = s["susceptibility_limits"]
    rep.paragraph("Class limits (quantiles of the median deformation magnitude over the valid area, mm): "
                  + ", ".join(fmt(x, 2) for x in lim) + ".")
    sus = _band(unc.susceptibility_path)
    rep.figure(map_figure(sus, "Susceptibility", "viridis", labels=unc.class_names, colours=styles.CLASS_COLOURS))
    for p, title, ramp in ((unc.ambiguity_path, "Class ambiguity (normalised entropy)", "ambiguity"),
                           (unc.confidence_path, "Classification confidence", "confidence"),
                           (unc.exceedance_path, f"Exceedance probability ({unc.threshold_labels[0]})",
                            "probability")):
        if p and os.path.exists(p):
            rep.figure(map_figure(_band(p), title, ramp, 0, 1))
    progress.set(0.7)
    # residuals
    if resid is not None:
        rep.heading("6. Residuals against later observations")
        rep.paragraph(f"Global Moran's I of the residuals: {fmt(resid.morans_i)} (permutation p = {fmt(resid.morans_p)}). "
                      "Clustered residuals mark where the models miss physics (faults, mining fronts).")
        if resid.zone_rows:
            rep.table(resid.zone_rows, ["zone", "pixels", "bias (mm)", "MAE (mm)", "RMSE (mm)", "P90 |residual| (mm)"])
        hp = resid.hotspots_path
        if hp and os.path.exists(hp):
            z = _band(hp)
            rep.figure(map_figure(z, "Residual hot spots (Getis-Ord Gi* z)", "residual", -4, 4))
    # zoning
    rep.heading("7. Tiered control zones")
    tiers = _band(zon.tiers_path)
    rep.figure(map_figure(tiers, "Control tiers", "viridis", labels=[TIERS[k][0] for k in sorted(TIERS)],
                          colours=[TIERS[k][1] for k in sorted(TIERS)]))
    rep.table([[TIERS[k][0], zon.tier_pixels.get(k, 0), zon.tier_area_m2.get(k, 0.0) / 1e4] for k in sorted(TIERS)],
              ["tier", "pixels", "area (ha)"])
    dsc = zon.discontinuity
    if dsc.get("applied"):
        ms = dsc.get("max_step_mm")
        rep.paragraph(f"Differential movement: {dsc['trace_pixels']} pixel(s) on discontinuity traces (sharp, "
                      f"significant steps in the forecast deformation, |step| >= {zon.rules['step_mm']:g} mm"
                      + (f", largest {ms:+.1f} mm" if ms is not None else "") + f"); {dsc.get('buffer_pixels', 0)} "
                      f"pixel(s) within {zon.rules['discontinuity_buffer_m']:g} m of them are at least tier 2 "
                      "(discontinuities.tif: step, statistic, trace/buffer).")
    rep.paragraph("Rule table and zone polygons: zoning_report.html and zones.gpkg.")
    rep.heading("Files")
    rep.html("<ul>" + "".join(_file_link(k, v, s["output_folder"]) for k, v in sorted(s["paths"].items())
                              if isinstance(v, str)) + "</ul>")
    rep.paragraph("Run times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in s["timings_s"].items()), cls="muted")
    progress.set(1.0)
    return rep.save(path)
