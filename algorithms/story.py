"""The plain-language front of the main job's report (report.html) and its JSON twin.

:func:`build_summary` gathers, from the run's files, what a non-expert needs first: the area of
each control tier in hectares and where it lies (largest zone's direction and distance from the
centre of the area, bounding box, the named zones it overlaps), the skill verdict in one
sentence, the main uncertainty, the residual zones by name, the two example pixels (most and
least certain) and the links to the sub-reports and files. :func:`write_front` writes it as the
report's first sections (summary, tiers and actions, example time series with P10-P90 fans, glossary,
links); ``report_summary.json`` holds the same numbers for tests and scripts. QGIS-free.
"""
from __future__ import annotations

import html
import math
import os
from typing import Dict, List, Optional

import numpy as np

from .report import fmt, new_figure

#: Terms the report uses, in plain words.
GLOSSARY = [
    ("Control tier", "The action class of a place: 1 immediate control, 2 verify and densify monitoring, "
     "3 enhanced monitoring, 4 routine monitoring (see the table of tiers and actions)."),
    ("Exceedance probability", "The chance that the ground moves by more than a threshold (e.g. 10 mm) over the "
     "forecast period, read from the ensemble's forecasts smoothed into a distribution: 0.7 means about 7 in 10 "
     "plausible futures exceed it."),
    ("P10 / P90, P10-P90 band", "The values below which 10 % and 90 % of the ensemble's forecasts lie; 8 in 10 "
     "later observations should fall between them if the forecast's uncertainty is right."),
    ("Brier skill score", "How much better the exceedance probabilities predict what happened than always "
     "quoting the base rate (how often the threshold was exceeded): 1 is perfect, 0 no better, below 0 worse."),
    ("Moran's I", "How strongly the forecast errors cluster in space: near 0 they are scattered like noise; "
     "clearly above 0 they form patches where the model misses something (a fault, a mining front)."),
    ("Gi* hot spot", "The Getis-Ord Gi* statistic: a z-score that is high where a pixel and its neighbours all "
     "have large errors of the same sign; z above 1.96 is a hot spot at the 95 % level."),
    ("Normalised entropy (class ambiguity)", "How much the ensemble disagrees about a pixel's susceptibility "
     "class: 0 all forecasts give the same class, 1 they are spread evenly over all classes."),
    ("Skill gate", "A check on many past forecast dates of whether the networks beat the best classical "
     "forecast; where they do not, the delivered forecast falls back to (or blends with) the classical one."),
    ("Rolling origins", "Past dates from which the forecast is re-run and compared with what was later observed, "
     "so the verdict rests on many forecasts, not one."),
    ("Minimum mapping unit (MMU)", "The smallest zone the decision map shows: smaller patches are merged into "
     "the surrounding tier (never a Tier-1 patch)."),
    ("Phase-unwrapping error", "InSAR measures the phase of the radar echo modulo one cycle (27.73 mm of "
     "line-of-sight movement for Sentinel-1); where the processing adds or drops whole cycles over a patch from one "
     "date on, the patch seems to jump by that much although the ground did not move."),
]

_COMPASS = ["east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east"]


def _cell_m(grid):
    from .decision.discontinuities import _cell_size_m

    return _cell_size_m(grid)


def _xy(grid, row: float, col: float):
    gt = grid.geotransform
    return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]


def direction(grid, row: float, col: float) -> Dict[str, object]:
    """Compass direction and distance (km) of pixel (row, col) (fractional) from the raster's centre."""
    dy_m, dx_m = _cell_m(grid)
    east = (col + 0.5 - grid.width / 2.0) * dx_m
    north = -(row + 0.5 - grid.height / 2.0) * dy_m
    dist = math.hypot(east, north)
    half_diag = 0.5 * math.hypot(grid.width * dx_m, grid.height * dy_m)
    if dist < 0.1 * half_diag:
        return {"direction": "centre", "distance_km": dist / 1000.0, "text": "at the centre of the area"}
    k = int(round(math.degrees(math.atan2(north, east)) / 45.0)) % 8
    return {"direction": _COMPASS[k], "distance_km": dist / 1000.0,
            "text": f"{dist / 1000.0:.1f} km {_COMPASS[k]} of the centre of the area"}


def tier_summary(tiers: np.ndarray, grid, pixel_area: np.ndarray, tier_info: dict, eight_connected: bool = False,
                 named: Optional[np.ndarray] = None, names: Optional[Dict[int, str]] = None) -> List[dict]:
    """Per tier: area (ha), pixels, zones, the largest zone's place, bounding box, named zones overlapped."""
    from .decision.sieve import label_zones

    labels, n = label_zones(tiers, eight_connected)
    parea = np.broadcast_to(pixel_area, tiers.shape)
    area = np.bincount(labels.ravel(), weights=parea.ravel(), minlength=n + 1)
    out = []
    for t, (name, _colour, action) in tier_info.items():
        m = tiers == t
        row = {"tier": int(t), "name": name, "action": action, "pixels": int(m.sum()),
               "area_ha": float(parea[m].sum() / 1e4), "n_zones": 0, "where": None, "where_text": "none"}
        if m.any():
            zl = np.unique(labels[m])
            row["n_zones"] = int(zl.size)
            big = int(zl[np.argmax(area[zl])])
            rr, cc = np.nonzero(labels == big)
            d = direction(grid, float(rr.mean()), float(cc.mean()))
            r_all, c_all = np.nonzero(m)
            x0, y0 = _xy(grid, r_all.min(), c_all.min())
            x1, y1 = _xy(grid, r_all.max() + 1, c_all.max() + 1)
            where = {"largest_zone_ha": float(area[big] / 1e4), "direction": d["direction"],
                     "distance_km": d["distance_km"],
                     "bbox": [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], "named_zones": {}}
            text = f"largest zone {area[big] / 1e4:.1f} ha, {d['text']}"
            if named is not None and names:
                vals, cnt = np.unique(named[m], return_counts=True)
                share = {names[int(v)]: float(c / m.sum()) for v, c in zip(vals, cnt) if int(v) in names}
                where["named_zones"] = dict(sorted(share.items(), key=lambda kv: -kv[1]))
                top = [f"{k} {100 * v:.0f} %" for k, v in where["named_zones"].items() if v >= 0.1][:2]
                if top:
                    text += "; mostly " + ", ".join(top)
            row["where"] = where
            row["where_text"] = text
        out.append(row)
    return out


def example_pixels(width: np.ndarray) -> Dict[str, dict]:
    """The most and least certain pixels: smallest and largest P90-P10 width of the members."""
    ok = np.isfinite(width)
    if not ok.any():
        return {}
    w = np.where(ok, width, np.nan)
    out = {}
    for role, idx in (("most certain", np.nanargmin(w)), ("least certain", np.nanargmax(w))):
        r, c = np.unravel_index(int(idx), w.shape)
        out[role] = {"row": int(r), "col": int(c), "width_mm": float(w[r, c])}
    return out


def pixel_members(path: str, row: int, col: int):
    """(dates as str, members x dates array) of one pixel of a member file ('member<k> <date>' bands)."""
    from osgeo import gdal

    from .io.raster import read_band

    ds = gdal.Open(str(path))
    by: Dict[str, Dict[str, float]] = {}
    for i in range(ds.RasterCount):
        b = ds.GetRasterBand(i + 1)
        desc = (b.GetDescription() or "").split()
        member, date = (desc[0], desc[-1]) if len(desc) >= 2 else ("member0", str(i))
        by.setdefault(date, {})[member] = float(read_band(b, col, row, 1, 1, to_mm=True)[0, 0])
    dates = sorted(by)
    members = sorted({m for d in by.values() for m in d})
    return dates, np.array([[by[d].get(m, np.nan) for d in dates] for m in members])


def pixel_series(path: str, row: int, col: int, dates=None):
    """(dates as datetime64[D], values in mm) of one pixel of a stack (``dates``: the stack's dates,
    else read from the file), read as every stack is read (fills as no data, :mod:`io.fill`)."""
    from .io.raster import open_stack, read_stack

    info = open_stack(path, dates, convert=False)
    vals = read_stack(info, rows=(int(row), int(row) + 1))[:, 0, int(col)].astype(float)
    return np.asarray(info.dates, dtype="datetime64[D]"), vals


def fan_figure(examples: Dict[str, dict], stack: str, members: str, later: Optional[str], n_history: int = 60,
               stack_dates=None):
    """Observed history, the members' P10-P90 fan and median, later observations: one panel per pixel."""
    fig = new_figure(9.5, 3.6)
    for i, (role, ex) in enumerate(examples.items()):
        ax = fig.add_subplot(1, len(examples), i + 1)
        r, c = ex["row"], ex["col"]
        hd, hv = pixel_series(stack, r, c, stack_dates)
        hd, hv = hd[-n_history:], hv[-n_history:]
        ax.plot(hd, hv, ".", color="#555555", ms=3, label="observed")
        fd, mem = pixel_members(members, r, c)
        fd = np.array(fd, dtype="datetime64[D]")
        p10, p50, p90 = np.nanpercentile(mem, [10, 50, 90], axis=0)
        ax.fill_between(fd, p10, p90, color="#2c7bb6", alpha=0.3, lw=0, label="P10-P90")
        ax.plot(fd, p50, color="#2c7bb6", lw=1.5, label="median forecast")
        if later and os.path.exists(later):
            ld, lv = pixel_series(later, r, c)
            ax.plot(ld, lv, "x", color="#d7191c", ms=4, label="later observations")
        ax.set_title(f"{role} pixel (row {r}, col {c}): P90-P10 {ex['width_mm']:.1f} mm", fontsize=9)
        ax.set_ylabel("displacement (mm)")
        ax.tick_params(labelsize=7)
        for lab in ax.get_xticklabels():
            lab.set_rotation(30)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def uncertainty_summary(width: np.ndarray, ambiguity: Optional[np.ndarray], coverage: Optional[float],
                        least: Optional[dict], grid) -> dict:
    """The main uncertainty in numbers and one sentence."""
    w = width[np.isfinite(width)]
    out = {"median_width_mm": float(np.median(w)) if w.size else None,
           "p95_width_mm": float(np.percentile(w, 95)) if w.size else None,
           "coverage_p10_p90": None if coverage is None else float(coverage),
           "ambiguous_share": None}
    if ambiguity is not None and np.isfinite(ambiguity).any():
        a = ambiguity[np.isfinite(ambiguity)]
        out["ambiguous_share"] = float(np.mean(a > 0.5))
    parts = []
    if coverage is not None and abs(coverage - 0.8) > 0.1:
        parts.append(f"On the held-out test period the P10-P90 band held {100 * coverage:.0f} % of the later "
                     "observations instead of 80 %: the band is " + ("too narrow" if coverage < 0.8 else "too wide")
                     + ", so read the exceedance probabilities as indicative.")
    if out["median_width_mm"] is not None:
        s = (f"The forecast's P10-P90 band at the end of the horizon is {out['median_width_mm']:.1f} mm wide at the "
             f"median pixel and over {out['p95_width_mm']:.1f} mm on the widest 5 % of the area")
        if least:
            s += f" (widest {direction(grid, least['row'], least['col'])['text']})"
        parts.append(s + ".")
    if out["ambiguous_share"] is not None:
        parts.append(f"The ensemble disagrees on the susceptibility class (normalised entropy above 0.5) on "
                     f"{100 * out['ambiguous_share']:.0f} % of the area.")
    if coverage is not None and abs(coverage - 0.8) <= 0.1:
        parts.append(f"The P10-P90 band held {100 * coverage:.0f} % of the later observations on the test period "
                     "(80 % expected).")
    out["sentence"] = " ".join(parts)
    return out


def link_list(s: dict, tune_reports: List[str]) -> List[dict]:
    """Sub-reports and files of the run, as links relative to the output folder (existing files only)."""
    root = s["output_folder"]
    items = [("Tuning report" + (f" ({os.path.basename(p)})" if len(tune_reports) > 1 else ""), p)
             for p in tune_reports if p]
    items += [("Uncertainty report", os.path.join(root, "uncertainty_report.html")),
              ("Residuals report", os.path.join(root, "residuals_report.html")),
              ("Zoning report (rule table, minimum mapping unit)", os.path.join(root, "zoning_report.html")),
              ("Rolling-origin scores (CSV)", s["paths"].get("rolling_origins_csv", "")),
              ("Control zones (GeoPackage)", s["paths"].get("zones_polygons", "")),
              ("Control tiers (raster)", s["paths"].get("tiers", "")),
              ("QGIS project with every layer", os.path.join(root, "deformcast.qgz")),
              ("Run summary (JSON)", os.path.join(root, "workflow.json"))]
    out, seen = [], set()
    for label, p in items:
        if not p:
            continue
        rel = os.path.relpath(p, root).replace(os.sep, "/")
        if rel in seen:
            continue
        seen.add(rel)
        out.append({"label": label, "href": rel, "exists": os.path.exists(p)})
    return out


def write_front(rep, story: dict, fig=None) -> None:
    """The report's first sections from :func:`build_summary`'s dict (no markup in the text)."""
    rep.heading("Summary")
    items = []
    for t in story["tiers"]:
        if t["tier"] == 4:
            items.append(f"{t['name']}: the remaining {t['area_ha']:.1f} ha.")
        elif t["pixels"]:
            items.append(f"{t['name']}: {t['area_ha']:.1f} ha in {t['n_zones']} zone(s); {t['where_text']}.")
        else:
            items.append(f"{t['name']}: none.")
    items.append("Skill: " + story["verdict_sentence"])
    if story["uncertainty"]["sentence"]:
        items.append("Main uncertainty: " + story["uncertainty"]["sentence"])
    if story.get("discontinuity_sentence"):
        items.append(story["discontinuity_sentence"])
    if story.get("unwrapping_sentence"):
        items.append(story["unwrapping_sentence"])
    rep.html("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in items) + "</ul>")
    rep.paragraph(f"Zones smaller than {story['mmu_m2']:g} m² (the minimum mapping unit) are merged into their "
                  f"surroundings, except Tier 1; the map has {story['n_zone_polygons']} zone polygon(s). Words in "
                  "this report are explained in the glossary below.", cls="muted")
    rep.heading("Tiers and what to do")
    rep.table([[t["name"], t["area_ha"], t["n_zones"], t["where_text"], t["action"]] for t in story["tiers"]],
              ["tier", "area (ha)", "zones", "where", "action"], digits=1)
    if story.get("residual_zones"):
        rep.heading("Forecast errors by named zone")
        rep.table([[z["name"], z["pixels"], z["bias_mm"], z["rmse_mm"]] for z in story["residual_zones"]],
                  ["zone", "pixels", "mean error (mm)", "RMSE (mm)"], digits=2)
    if fig is not None:
        rep.heading("Example time series")
        rep.figure(fig, "Grey: observed; blue line and band: median forecast and the P10-P90 range of the ensemble "
                        "at every forecast date; red crosses: later observations (when available). Left: the pixel "
                        "with the narrowest band (most certain); right: the widest (least certain).")
    rep.heading("Glossary")
    rep.html("<dl>" + "".join(f"<dt><strong>{html.escape(k)}</strong></dt><dd>{html.escape(v)}</dd>"
                              for k, v in GLOSSARY) + "</dl>")
    rep.heading("Sub-reports and files")
    rep.html("<ul>" + "".join(f"<li><a href='{html.escape(x['href'], quote=True)}'>{html.escape(x['label'])}</a> "
                              f"<code>{html.escape(x['href'])}</code></li>" for x in story["links"]) + "</ul>")


def clean(o):
    """``o`` with non-finite floats as None (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def build_summary(s: dict, info, unc, zon, resid, back, gate, tune_reports: List[str]) -> dict:
    """The plain-language summary as a JSON-serialisable dict (see the module doc)."""
    from .io.raster import read_raster
    from .decision.zoning import TIERS, pixel_area

    tiers_arr, grid, _ = read_raster(zon.tiers_path)
    tiers = np.nan_to_num(tiers_arr[0], nan=0).astype(np.uint8)
    named = names = None
    zpath = s["paths"].get("zones")
    if zpath and os.path.exists(zpath):
        from .maps.residuals import zones_array

        named, names = zones_array(zpath, grid)
    ts = tier_summary(tiers, grid, pixel_area(grid), TIERS, named=named, names=names)
    spread = read_raster(unc.spread_path)[0]
    width = spread[1] if spread.shape[0] > 1 else 2.5631 * spread[0]  # P90 - P10 (Gaussian: 2.563 sd)
    amb = read_raster(unc.ambiguity_path)[0][0] if unc.ambiguity_path else None
    ex = example_pixels(width)
    for e in ex.values():
        e["x"], e["y"] = _xy(grid, e["row"] + 0.5, e["col"] + 0.5)
    cov = back.get("coverage_p10_p90") if back else None
    unc_s = uncertainty_summary(width, amb, cov, ex.get("least certain"), grid)
    sentence = (s.get("gate") or {}).get("sentence")
    if not sentence and gate:
        from .maps.gate_report import gate_sentence

        sentence = gate_sentence(gate)
    story = {"tiers": ts, "total_valid_ha": float(sum(t["area_ha"] for t in ts)),
             "verdict": (gate or {}).get("verdict"), "gate_action": (gate or {}).get("action"),
             "verdict_delivered": ((gate or {}).get("held_out") or {}).get("verdict_delivered"),
             "verdict_sentence": sentence or "No rolling-origin verdict (no skill gate in this run).",
             "uncertainty": unc_s, "mmu_m2": float(zon.sieve.get("mmu_m2", 0.0)), "sieve": dict(zon.sieve),
             "n_zone_polygons": int(zon.n_zones), "examples": ex,
             "morans_i": None if resid is None else float(resid.morans_i),
             "residual_zones": [], "links": link_list(s, tune_reports),
             "glossary": [k for k, _ in GLOSSARY]}
    if resid is not None:
        story["residual_zones"] = [{"name": str(r[0]), "pixels": int(r[1]), "bias_mm": float(r[2]),
                                    "rmse_mm": float(r[4])} for r in resid.zone_rows]
    cyc = [x for x in ((s.get("modelling") or {}).get("steps_detected") or []) if x.get("cycles")]
    if cyc:     # step_detect: a patch that jumped by whole phase cycles at one date
        def _where(x):
            if x.get("row") is None:
                return ""
            ex, ny = _xy(grid, x["row"] + 0.5, x["col"] + 0.5)
            return f" around x {ex:.0f}, y {ny:.0f}, {direction(grid, x['row'], x['col'])['text']}"

        dates = ", ".join(f"{x['date']} ({x['pixels']} pixels, {x['step_mm']:+.1f} mm{_where(x)})" for x in cyc)
        story["unwrapping_sentence"] = (
            f"Check the input: part of the stack jumps by a whole Sentinel-1 phase cycle at {dates}, the mark of a "
            "phase-unwrapping error rather than of ground movement. The forecast follows the jump; if the "
            "interferograms of that date confirm it, correct the unwrapping and run again.")
    d = zon.discontinuity
    if d.get("applied") and d.get("trace_pixels"):
        story["discontinuity_sentence"] = (
            f"Differential movement: {d['trace_pixels']} pixel(s) lie on sharp steps in the forecast ground movement "
            f"(largest {fmt(d.get('max_step_mm'), 1)} mm); the ground within {zon.rules['discontinuity_buffer_m']:g} m "
            "of them is at least Tier 2: inspect buildings, pipes and roads that cross them.")
    return clean(story)
