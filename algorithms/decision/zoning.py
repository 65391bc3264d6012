"""Tiered control zones: the engineering decision layer.

Combines, per pixel, the susceptibility class (from ``uncertainty``), one uncertainty layer
(``spread``: band 1 of OUTPUT_SPREAD, the members' standard deviation in mm; or ``ambiguity``:
the normalised class entropy, 0..1), the exceedance probability of one threshold (one band of
OUTPUT_EXCEEDANCE) and optionally the residual hot spots (the Gi* z-scores written by
``residuals`` as OUTPUT_HOTSPOTS) into four tiers. Liu et al. (2026) motivate a tiered
strategy (control where the forecast is severe and reliable, verification where it is severe but
uncertain or where errors cluster, e.g. along faults); the rule table below is our concrete
reading of it and is a parameter (``RULES``, a JSON object overriding any of these keys):

=========================  =========  ==================================================
key                        default    meaning
=========================  =========  ==================================================
``high_class_min``         N - 1      class >= this is "high susceptibility" (N = number
                                      of classes in the susceptibility legend: 4 of 5)
``moderate_class_min``     ceil(N/2)  class >= this is "moderate" (3 of 5)
``exceedance_high``        0.5        P(exceed) >= this is "high exceedance probability"
``exceedance_moderate``    0.2        P(exceed) >= this counts for enhanced monitoring
``uncertainty_max``        null       uncertainty <= this is "confident"; null = 0.5 for
                                      ambiguity, the median spread over the valid area
                                      for spread
``hotspot_z``              1.96       Gi* z >= this is a residual hot spot (95 %)
``step_mm``                1.0        |step| (mm) across a discontinuity trace >= this
``step_z``                 5.0        calibrated step statistic >= this anchors a trace
``step_link_z``            4.0        calibrated step statistic >= this continues it
``discontinuity_buffer_m`` 150        pixels within this distance (m) of a trace: tier 2
=========================  =========  ==================================================

Tiers (the first rule that holds wins):

1. **Immediate control**: high susceptibility AND P(exceed) >= exceedance_high AND confident.
2. **Verify & densify monitoring**: (high susceptibility AND NOT confident AND P(exceed) >=
   exceedance_moderate) OR (residual hot spot AND (class >= moderate_class_min OR P(exceed) >=
   exceedance_moderate)) OR within ``discontinuity_buffer_m`` of a differential-movement
   discontinuity (below; needs FORECAST).
3. **Enhanced monitoring**: P(exceed) >= exceedance_moderate (this includes high, confident pixels
   whose exceedance probability is not high).
4. **Routine monitoring**: everything else that is valid.

A pixel is valid where susceptibility, uncertainty and exceedance are all valid (a missing
optional hot-spot value counts as "no hot spot"). The tier raster holds 1..4 (nodata 0).

Differential movement (discontinuities): the step rule of tier 2 lives in :mod:`discontinuities`
(its module doc gives the test, the defaults and why); its names are re-exported here.

Minimum mapping unit (``MMU``, m², default ``sieve.DEFAULT_MMU_M2`` = 1 ha): before anything is
written, contiguous zones of one tier smaller than the MMU are merged into the tier that holds most
of their boundary (a tie: the more severe tier); Tier-1 zones are never merged away. The rule, the
default and why: :mod:`sieve`. The tier raster, the areas and the polygons are those of the
generalised map; the report's rule table gives the MMU, the zones before/after and the pixels moved.

Zones: contiguous pixels of one tier (4-connected, i.e. sharing an edge; ``EIGHT_CONNECTED``
joins diagonal neighbours too) are labelled with ``scipy.ndimage.label`` and turned into
polygons with ``gdal.Polygonize`` using the same connectivity, so every polygon is exactly one
labelled zone; zones smaller than ``MIN_AREA`` (m²) get no polygon (they keep their tier in the
raster). Areas are pixel counts x cell area (for a geographic CRS, cell area from the WGS84
radius at each row's latitude). Attributes: tier, tier_name, area_m2, n_pixels, mean_def_mm and
max_abs_def_mm (the signed value of largest magnitude, from the optional FORECAST raster's last
band, e.g. ``uncertainty``'s OUTPUT_DEFORMATION), max_exceed_p, mean_uncert, max_step_mm (the
signed step of largest magnitude on a discontinuity trace in the zone), action (with
``DISCONTINUITY_ACTION`` appended where the zone holds a discontinuity's buffer). Optional
OUTPUT_DISCONTINUITY: step (mm), calibrated statistic and 2 trace / 1 buffer / 0 none.

Memory: the layers are held whole (a handful of bytes per pixel): labelling contiguous zones
needs the whole map. The step test runs in row blocks; its results (step, statistic, orientation)
add about 20 bytes per pixel.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..io.crs import pixel_area  # noqa: F401 - part of the zoning API (one area rule)
from ..errors import DeformCastError, warn
from ..progress import Progress, silent
from ..io.raster import Grid, crs_equal, open_raster, parse_date, read_band, write_raster
from ..io import styles
# the differential-movement rule (re-exported: zoning.step_statistics etc. stay valid)
from .discontinuities import (DISCONTINUITY_ACTION, STEP_HALF_LENGTH, STEP_HALF_WIDTH, STEP_NOISE_FLOOR_MM,  # noqa: F401 - re-exported
    STEP_NULL_MEDIAN_T, StepField, discontinuity_band, discontinuity_traces, n_step_orientations,
    step_statistics)
from .sieve import DEFAULT_MMU_M2, label_zones, sieve_tiers

UNCERTAINTY_TYPES = ["ambiguity", "spread"]
TIERS = {
    1: ("Tier 1 – immediate control", "#d7191c",
        "Immediate control: plan mitigation (e.g. restrict groundwater/mining extraction, reinforce "
        "structures), inspect assets and monitor at high frequency."),
    2: ("Tier 2 – verify & densify monitoring", "#fdae61",
        "Verify the forecast: densify monitoring (levelling, GNSS, corner reflectors), check faults "
        "and local causes before committing to control measures."),
    3: ("Tier 3 – enhanced monitoring", "#ffffbf",
        "Enhanced monitoring: shorten the InSAR update interval and review at each new acquisition."),
    4: ("Tier 4 – routine monitoring", "#1a9641", "Routine monitoring at the standard interval."),
}
RULE_DOC = {
    "high_class_min": "susceptibility class >= this is high",
    "moderate_class_min": "susceptibility class >= this is moderate",
    "exceedance_high": "P(exceed) >= this is high",
    "exceedance_moderate": "P(exceed) >= this is needed for tiers 2 (uncertain) and 3",
    "uncertainty_max": "uncertainty <= this is confident",
    "hotspot_z": "Gi* z >= this is a residual hot spot",
    "step_mm": "|step| (mm) across a discontinuity trace >= this counts (differential movement)",
    "step_z": "calibrated step statistic >= this anchors a discontinuity trace",
    "step_link_z": "calibrated step statistic >= this continues an anchored trace",
    "discontinuity_buffer_m": "pixels within this distance (m) of a trace go to tier 2",
}


def default_rules(n_classes: int) -> dict:
    return {"high_class_min": max(2, n_classes - 1), "moderate_class_min": max(1, math.ceil(n_classes / 2)),
            "exceedance_high": 0.5, "exceedance_moderate": 0.2, "uncertainty_max": None, "hotspot_z": 1.96,
            "step_mm": 1.0, "step_z": 5.0, "step_link_z": 4.0, "discontinuity_buffer_m": 150.0}


def parse_rules(text, n_classes: int) -> dict:
    rules = default_rules(n_classes)
    if text is None or (isinstance(text, str) and not text.strip()):
        return rules
    if isinstance(text, dict):
        given = text
    else:
        try:
            given = json.loads(str(text))
        except json.JSONDecodeError as e:
            raise DeformCastError(f"RULES is not valid JSON ({e.msg} at character {e.pos}). Give an object such as "
                                  '{"exceedance_high": 0.6, "hotspot_z": 2.576}.') from None
    if not isinstance(given, dict):
        raise DeformCastError('RULES must be a JSON object, e.g. {"exceedance_high": 0.6}.')
    for k, v in given.items():
        if k not in rules:
            raise DeformCastError(f"RULES: unknown key '{k}'. Valid keys: {', '.join(rules)}.")
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)):
            raise DeformCastError(f"RULES: '{k}' must be a number (or null for uncertainty_max).")
        if v is None and k != "uncertainty_max":
            raise DeformCastError(f"RULES: '{k}' must be a number.")
        rules[k] = v
    for k in ("exceedance_high", "exceedance_moderate"):
        if not 0 <= rules[k] <= 1:
            raise DeformCastError(f"RULES: '{k}' is a probability between 0 and 1.")
    for k in ("step_mm", "discontinuity_buffer_m"):
        if rules[k] < 0:
            raise DeformCastError(f"RULES: '{k}' must be >= 0.")
    if rules["step_z"] <= 0 or rules["step_link_z"] <= 0:
        raise DeformCastError("RULES: 'step_z' and 'step_link_z' must be > 0.")
    if rules["step_link_z"] > rules["step_z"]:
        raise DeformCastError("RULES: 'step_link_z' (continues a trace) must not exceed 'step_z' (anchors it).")
    return rules


def assign_tiers(suscept, uncert, exceed, rules: dict, hot_z=None, discontinuity=None) -> np.ndarray:
    """Tier 1..4 per pixel (0 where invalid); ``rules`` fully resolved (uncertainty_max a number).

    ``discontinuity``: optional bool mask of the pixels within ``discontinuity_buffer_m`` of a
    discontinuity trace (:func:`discontinuity_band`); they go to tier 2 unless tier 1 holds.
    """
    s = np.asarray(suscept, dtype=np.float64)
    u = np.asarray(uncert, dtype=np.float64)
    p = np.asarray(exceed, dtype=np.float64)
    valid = np.isfinite(s) & (s >= 1) & np.isfinite(u) & np.isfinite(p)
    high = s >= rules["high_class_min"]
    moderate = s >= rules["moderate_class_min"]
    confident = u <= rules["uncertainty_max"]
    hot = np.zeros(s.shape, bool) if hot_z is None else np.nan_to_num(np.asarray(hot_z, np.float64), nan=-np.inf) >= rules["hotspot_z"]
    # Susceptibility classes are relative (quantiles of the area), so every map has "high" classes,
    # even where nothing moves. The exceedance probability is absolute evidence: tiers 1-3 need it.
    likely = p >= rules["exceedance_moderate"]
    t1 = high & (p >= rules["exceedance_high"]) & confident
    t2 = (high & ~confident & likely) | (hot & (moderate | likely))
    if discontinuity is not None:
        # a significant step is absolute evidence (mm) by itself: no class or exceedance needed
        t2 = t2 | np.asarray(discontinuity, bool)
    t3 = likely
    tiers = np.select([t1, t2, t3], [1, 2, 3], default=4).astype(np.uint8)
    tiers[~valid] = 0
    return tiers


def _read1(path: str, band: int, what: str, to_mm: bool = False):
    ds, grid = open_raster(path, what)
    if band < 1 or band > ds.RasterCount:
        raise DeformCastError(f"{what} has {ds.RasterCount} band(s); band {band} does not exist. "
                              + ("Bands: " + "; ".join(f"{i + 1}: {ds.GetRasterBand(i + 1).GetDescription()}"
                                                       for i in range(ds.RasterCount))))
    # nodata, band scale/offset (and, for displacement, the length unit) as GDAL declares them
    a = read_band(ds.GetRasterBand(band), to_mm=to_mm).astype(np.float64)
    return a, grid, ds


_EXCEED_FIX = ("Give the OUTPUT_EXCEEDANCE raster of 'uncertainty' (one band 'P(... >= t mm)' per threshold) and "
               "pick the threshold with EXCEEDANCE_BAND.")


def _check_exceedance(ds, p: np.ndarray, band: int, path: str) -> None:
    """Refuse an EXCEEDANCE raster that holds no probabilities: a dated band (a stack or forecast), another
    output of 'uncertainty', or values outside 0..1 in any band (a stack's first band, all 0, passed alone)."""
    name = os.path.basename(str(path))
    desc = (ds.GetRasterBand(band).GetDescription() or "").strip()
    if parse_date(desc) is not None:
        raise DeformCastError(f"EXCEEDANCE '{name}': band {band} is the date {desc}, so it is a displacement stack "
                              f"or forecast, not exceedance probabilities. {_EXCEED_FIX}")
    if (ds.GetMetadata() or {}).get("DEFORMCAST_CLASS_LIMITS") and not re.match(r"P\(.* >= .*\)", desc):
        raise DeformCastError(f"EXCEEDANCE '{name}' is another output of 'uncertainty' (band {band}: "
                              f"'{desc}'), not its exceedance probabilities. {_EXCEED_FIX}")
    for b in [band] + [k for k in range(1, ds.RasterCount + 1) if k != band]:
        a = p if b == band else read_band(ds.GetRasterBand(b))
        if np.isfinite(a).any() and (np.nanmin(a) < -1e-6 or np.nanmax(a) > 1 + 1e-6):
            raise DeformCastError(
                f"EXCEEDANCE '{name}': band {b} holds values from {float(np.nanmin(a)):.4g} to "
                f"{float(np.nanmax(a)):.4g}, not probabilities (0..1); every band of an exceedance raster is one. "
                + _EXCEED_FIX)


def _n_classes_of(ds, arr) -> int:
    md = ds.GetMetadata() or {}
    lim = md.get("DEFORMCAST_CLASS_LIMITS")
    if lim:
        return len([x for x in lim.split(",") if x.strip()]) + 1
    return int(np.nanmax(arr)) if np.isfinite(arr).any() else 5


def zone_style_qml(field_name: str = "tier") -> str:
    """Categorized polygon style (QGIS renderer-v2) by tier, with the tier names as legend."""
    from xml.sax.saxutils import escape

    cats, syms = [], []
    for i, (t, (name, colour, _)) in enumerate(TIERS.items()):
        cats.append(f'<category render="true" symbol="{i}" value="{t}" label="{escape(name)}"/>')
        r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
        syms.append(
            f'<symbol alpha="0.75" type="fill" name="{i}" clip_to_extent="1" force_rhr="0">'
            '<layer class="SimpleFill" enabled="1" pass="0" locked="0">'
            f'<prop k="color" v="{r},{g},{b},255"/><prop k="outline_color" v="60,60,60,255"/>'
            '<prop k="outline_style" v="solid"/><prop k="outline_width" v="0.26"/>'
            '<prop k="outline_width_unit" v="MM"/><prop k="style" v="solid"/></layer></symbol>')
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="AllStyleCategories">\n'
            f'<renderer-v2 type="categorizedSymbol" attr="{field_name}" forceraster="0" symbollevels="0" '
            'enableorderby="0" referencescale="-1">'
            f"<categories>{''.join(cats)}</categories><symbols>{''.join(syms)}</symbols>"
            "</renderer-v2>\n<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode>\n"
            "<layerGeometryType>2</layerGeometryType>\n</qgis>\n")


@dataclass
class ZoningResult:
    """The rules applied, area and zone counts, and the paths of what was written (None = not written)."""
    rules: dict
    tier_area_m2: Dict[int, float]
    tier_pixels: Dict[int, int]
    n_zones: int
    n_zones_dropped: int
    zone_rows: List[list] = field(default_factory=list)
    #: the differential-movement rule: applied (bool), why not (note), trace/buffer pixels, the noise
    #: inflation factor, the largest step (mm, signed) on a trace, the FORECAST band used
    discontinuity: dict = field(default_factory=dict)
    #: the minimum mapping unit's sieve (:class:`sieve.SieveStats` as a dict)
    sieve: dict = field(default_factory=dict)
    tiers_path: Optional[str] = None
    zones_path: Optional[str] = None
    discontinuity_path: Optional[str] = None
    report_path: Optional[str] = None


def run_zoning(susceptibility: str, uncertainty: str, exceedance: str,
               uncertainty_type: str = "ambiguity", exceedance_band: int = 1, hotspots: Optional[str] = None,
               forecast: Optional[str] = None, rules=None, min_area: float = 0.0, eight_connected: bool = False,
               progress: Optional[Progress] = None, discontinuities: bool = True,
               known_faults: Optional[str] = None, mmu: float = DEFAULT_MMU_M2, *,
               tiers_path: Optional[str] = None, zones_path: Optional[str] = None,
               discontinuity_path: Optional[str] = None, report_path: Optional[str] = None) -> ZoningResult:
    """Tier raster, zone polygons (GeoPackage + .qml) and report; see the module doc.

    ``mmu``: minimum mapping unit (m²): zones smaller than it merge into their neighbours before
    anything is written (:mod:`sieve`; Tier 1 is never merged away); 0 keeps the pixel tiers.

    ``*_path``: where to write the tier raster, the zone polygons (.gpkg), the discontinuity raster
    and the HTML report (None/'' = not written); the result carries the paths written.
    ``discontinuities``: apply the differential-movement rule (needs ``forecast``); ``known_faults``:
    optional raster of the distance (m, sign ignored) to mapped faults that restricts the traces.
    """
    progress = progress or silent()
    if uncertainty_type not in UNCERTAINTY_TYPES:
        raise DeformCastError(f"UNCERTAINTY_TYPE: unknown value '{uncertainty_type}'. Valid values: "
                              + ", ".join(UNCERTAINTY_TYPES) + ".")
    if min_area is None or min_area < 0:
        raise DeformCastError("MIN_AREA must be >= 0 m².")
    if mmu is None or not math.isfinite(mmu) or mmu < 0:
        raise DeformCastError("MMU (minimum mapping unit) must be >= 0 m²; 0 keeps the pixel-level tiers.")
    s, grid, sds = _read1(susceptibility, 1, "SUSCEPTIBILITY")
    n_classes = _n_classes_of(sds, s)
    u, ug, _ = _read1(uncertainty, 1, "The uncertainty layer (SPREAD/AMBIGUITY)",
                     to_mm=uncertainty_type == "spread")
    p, pg, pds = _read1(exceedance, int(exceedance_band), "EXCEEDANCE")
    _check_exceedance(pds, p, int(exceedance_band), exceedance)
    layers = [("the uncertainty layer", ug), ("EXCEEDANCE", pg)]
    hz = None
    if hotspots:
        hz, hg, hds = _read1(hotspots, 1, "HOTSPOTS")
        if (hds.GetMetadata() or {}).get("DEFORMCAST_KIND") == "hotspot_classes":
            raise DeformCastError("HOTSPOTS is the hot/cold-spot class raster of 'residuals'; give its Gi* z-score "
                                  "raster (OUTPUT_HOTSPOTS) instead: the rule compares z with hotspot_z.")
        layers.append(("HOTSPOTS", hg))
    fc = None
    if forecast:
        fds_path = forecast
        from osgeo import gdal

        nb = gdal.Open(str(fds_path)).RasterCount if os.path.exists(str(fds_path)) else 1
        fc, fg, fcds = _read1(forecast, nb, "FORECAST", to_mm=True)
        layers.append(("FORECAST", fg))
        fc_band = fcds.GetRasterBand(nb).GetDescription() or f"band {nb}"
    kf = None
    if known_faults:
        kf, kg, _ = _read1(known_faults, 1, "KNOWN_FAULTS")
        layers.append(("KNOWN_FAULTS", kg))
    for what, g in layers:
        if not g.same_as(grid):
            why = (f"{g.width} x {g.height} vs {grid.width} x {grid.height} pixels"
                   if (g.width, g.height) != (grid.width, grid.height) else
                   ("different CRS" if not crs_equal(g.crs_wkt, grid.crs_wkt) else "different geotransform"))
            raise DeformCastError(f"{what} is not on the grid of SUSCEPTIBILITY ({why}). Use the layers "
                                  "written by 'uncertainty' (and 'residuals') for the same stack.")
    if uncertainty_type == "ambiguity" and np.nanmax(u) > 1.0 + 1e-6:
        raise DeformCastError("UNCERTAINTY_TYPE is 'ambiguity' but the layer has values above 1: it looks like a "
                              "spread layer (mm). Set UNCERTAINTY_TYPE to 'spread'.")
    rules = parse_rules(rules, n_classes)
    if rules["uncertainty_max"] is None:
        if uncertainty_type == "ambiguity":
            rules["uncertainty_max"] = 0.5
        else:
            vv = u[np.isfinite(u) & np.isfinite(s)]
            rules["uncertainty_max"] = float(np.median(vv)) if vv.size else 0.0
        rules["uncertainty_max_source"] = ("default for ambiguity" if uncertainty_type == "ambiguity"
                                           else "median spread over the valid area")
    progress.set(0.1)
    disc = {"applied": False}
    band = traces = stepf = None
    if not discontinuities:
        disc["note"] = "switched off"
    elif fc is None:
        disc["note"] = "no FORECAST raster was given"
    else:
        stepf = step_statistics(fc, progress=progress.sub(0.1, 0.2))
        fvalid = np.isfinite(fc)
        traces = discontinuity_traces(stepf, rules["step_mm"], rules["step_z"], fvalid, link_z=rules["step_link_z"])
        if kf is not None:
            traces &= np.isfinite(kf) & (np.abs(np.nan_to_num(kf, nan=np.inf)) <= rules["discontinuity_buffer_m"])
        band = discontinuity_band(traces, rules["discontinuity_buffer_m"], grid)
        ts = stepf.step[traces]
        disc.update({"applied": True, "trace_pixels": int(traces.sum()), "inflation": stepf.inflation,
                     "forecast_band": fc_band, "known_faults": bool(known_faults),
                     "max_step_mm": float(ts[np.argmax(np.abs(ts))]) if ts.size else None})
    progress.set(0.2)
    tiers = assign_tiers(s, u, p, rules, hz, band)
    valid = tiers > 0
    if not valid.any():
        raise DeformCastError("No pixel is valid in all of SUSCEPTIBILITY, the uncertainty layer and EXCEEDANCE.")
    if not grid.crs_wkt:
        gt = grid.geotransform
        warn(f"The layers have no coordinate reference system: areas (MIN_AREA, MMU, the tier areas) take their "
             f"pixel size, {abs(gt[1]):g} x {abs(gt[5]):g} map units, as metres. Assign the stack's CRS (e.g. "
             "gdal_edit.py -a_srs EPSG:xxxx stack.tif) and run again for areas you can trust.")
    parea = np.broadcast_to(pixel_area(grid), tiers.shape)
    # minimum mapping unit: the decision map is made of zones, not pixels (Tier 1 never merged away)
    tiers, sv = sieve_tiers(tiers, parea, mmu, eight_connected, progress=progress.sub(0.2, 0.25))
    if band is not None:
        disc["buffer_pixels"] = int((band & valid).sum())
        disc["buffer_tier2_pixels"] = int((band & (tiers == 2)).sum())
    tier_pixels = {t: int((tiers == t).sum()) for t in TIERS}
    tier_area = {t: float(parea[tiers == t].sum()) for t in TIERS}
    written: Dict[str, str] = {}
    if discontinuity_path:
        if stepf is None:
            raise DeformCastError("OUTPUT_DISCONTINUITY needs the differential-movement rule: give FORECAST "
                                  "(e.g. uncertainty's OUTPUT_DEFORMATION) and leave DISCONTINUITIES on.")
        cls = np.where(traces, 2.0, np.where(band, 1.0, 0.0)).astype(np.float32)
        cls[~np.isfinite(fc)] = np.nan
        m = float(np.nanmax(np.abs(stepf.step))) if np.isfinite(stepf.step).any() else 1.0
        written["discontinuity_path"] = write_raster(
            discontinuity_path, np.stack([stepf.step, stepf.z, cls]).astype(np.float32), grid,
            ["step across the best-oriented line (mm)", "calibrated step statistic t / inflation",
             "discontinuity: 2 trace, 1 within discontinuity_buffer_m, 0 none"], "float32", None,
            styles.pseudocolor(-max(m, 1e-6), max(m, 1e-6), "residual", 1, "mm"),
            {"DEFORMCAST_KIND": "discontinuity", "DEFORMCAST_STEP_INFLATION": f"{stepf.inflation:.4f}"})
    if tiers_path:
        written["tiers_path"] = write_raster(
            tiers_path, tiers, grid, ["control tier"], "uint8", 0,
            styles.categorical([(t, v[0], v[1]) for t, v in TIERS.items()]),
            {"DEFORMCAST_KIND": "tiers", "DEFORMCAST_RULES": json.dumps(rules), "DEFORMCAST_MMU_M2": f"{mmu:g}",
             "DEFORMCAST_SIEVE": json.dumps(sv.as_dict())})
    # ---- zones ---------------------------------------------------------------------------
    labels, n_lab = label_zones(tiers, eight_connected)
    progress.check()
    flat = labels.ravel()
    nl = n_lab + 1
    cnt = np.bincount(flat, minlength=nl)
    area = np.bincount(flat, weights=parea.ravel(), minlength=nl)
    tier_of = np.zeros(nl, np.int64)
    tier_of[flat] = tiers.ravel()
    up = np.nan_to_num(u, nan=0.0).ravel()
    mean_u = np.bincount(flat, weights=up, minlength=nl) / np.maximum(cnt, 1)
    pp = np.nan_to_num(p, nan=-np.inf).ravel()
    max_p = np.full(nl, -np.inf)
    np.maximum.at(max_p, flat, pp)
    if fc is not None:
        fv = np.isfinite(fc).ravel()
        f0 = np.nan_to_num(fc, nan=0.0).ravel()
        fcount = np.bincount(flat, weights=fv.astype(float), minlength=nl)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_f = np.bincount(flat, weights=f0, minlength=nl) / fcount
        absf = np.where(fv, np.abs(f0), -1.0)
        order = np.lexsort((absf, flat))  # by label, then |value|: each label's last entry is its max
        sf = flat[order]
        ends = np.nonzero(np.r_[sf[1:] != sf[:-1], True])[0]
        okv = absf[order][ends] >= 0
        max_f = np.full(nl, np.nan)
        max_f[sf[ends][okv]] = f0[order][ends][okv]
    in_band = np.zeros(nl, bool)
    max_step = np.full(nl, np.nan)
    if band is not None:
        in_band[flat[band.ravel()]] = True
        tl = flat[traces.ravel()]
        tv = stepf.step.ravel()[traces.ravel()]
        order = np.lexsort((np.abs(tv), tl))
        ends = np.nonzero(np.r_[tl[order][1:] != tl[order][:-1], True])[0] if tl.size else np.array([], int)
        max_step[tl[order][ends]] = tv[order][ends]
    keep = [int(k) for k in np.nonzero(area[1:] >= min_area)[0] + 1]
    dropped = n_lab - len(keep)
    progress.set(0.4)
    zone_rows = []
    if zones_path:
        rows_by_label = {}
        for k in keep:
            t = int(tier_of[k])
            rows_by_label[k] = {
                "tier": t, "tier_name": TIERS[t][0], "area_m2": float(area[k]), "n_pixels": int(cnt[k]),
                "mean_def_mm": float(mean_f[k]) if fc is not None and np.isfinite(mean_f[k]) else None,
                "max_abs_def_mm": float(max_f[k]) if fc is not None and np.isfinite(max_f[k]) else None,
                "max_exceed_p": float(max_p[k]), "mean_uncert": float(mean_u[k]),
                "max_step_mm": float(max_step[k]) if np.isfinite(max_step[k]) else None,
                "action": TIERS[t][2] + (" " + DISCONTINUITY_ACTION if in_band[k] else "")}
        written["zones_path"] = _write_zones(zones_path, labels, set(keep), rows_by_label, grid, eight_connected,
                                               progress.sub(0.4, 0.9))
        zone_rows = [[r["tier"], k, r["area_m2"], r["max_exceed_p"]] for k, r in rows_by_label.items()]
    res = ZoningResult(rules, tier_area, tier_pixels, len(keep), dropped, zone_rows, disc, sv.as_dict(), **written)
    if report_path:
        from .zoning_report import write_report

        res.report_path = write_report(report_path, res, uncertainty_type, min_area, tiers, bool(hotspots), TIERS,
                                       RULE_DOC)
    progress.set(1.0)
    return res


def _write_zones(path: str, labels: np.ndarray, keep: set, attrs: Dict[int, dict], grid: Grid,
                 eight_connected: bool, progress: Progress) -> str:
    from osgeo import gdal, ogr, osr

    gdal.UseExceptions()
    path = str(path)
    if not path.lower().endswith(".gpkg"):
        path = os.path.splitext(path)[0] + ".gpkg"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".part.gpkg"
    if os.path.exists(tmp):
        os.remove(tmp)
    lab = np.where(np.isin(labels, np.fromiter(keep, dtype=np.int64, count=len(keep))), labels, 0).astype(np.int32)
    mem = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(grid.geotransform)
    srs = None
    if grid.crs_wkt:
        mem.SetProjection(grid.crs_wkt)
        srs = osr.SpatialReference()
        srs.ImportFromWkt(grid.crs_wkt)
    band = mem.GetRasterBand(1)
    band.WriteArray(lab)
    band.SetNoDataValue(0)
    try:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
        lyr = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
        fields = [("label", ogr.OFTInteger), ("tier", ogr.OFTInteger), ("tier_name", ogr.OFTString),
                  ("area_m2", ogr.OFTReal), ("n_pixels", ogr.OFTInteger), ("mean_def_mm", ogr.OFTReal),
                  ("max_abs_def_mm", ogr.OFTReal), ("max_exceed_p", ogr.OFTReal), ("mean_uncert", ogr.OFTReal),
                  ("max_step_mm", ogr.OFTReal), ("action", ogr.OFTString)]
        for name, kind in fields:
            lyr.CreateField(ogr.FieldDefn(name, kind))
        opts = ["8CONNECTED=8"] if eight_connected else []

        def cb(frac, msg, data):
            try:
                progress.set(0.8 * frac)
            except BaseException:
                return 0
            return 1

        try:
            gdal.Polygonize(band, band, lyr, 0, opts, callback=cb)
        except RuntimeError as e:
            progress.check()  # a Cancel stops Polygonize through its callback: report it as Cancel
            raise DeformCastError(f"GDAL could not turn the zones into polygons: {e}") from None
        progress.check()
        lyr.StartTransaction()
        lyr.ResetReading()
        for f in lyr:
            a = attrs.get(int(f.GetField("label")))
            if a is None:
                continue
            for k, v in a.items():
                if v is not None:
                    f.SetField(k, v)
            lyr.SetFeature(f)
        lyr.CommitTransaction()
        ds = None
        progress.check()
    except BaseException:
        ds = None
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".qml", "w", encoding="utf-8") as fh:
        fh.write(zone_style_qml())
    return path
