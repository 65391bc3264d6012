"""Susceptibility, ensemble spread, class ambiguity, confidence and exceedance probability.

Input: the ensemble members raster written by ``predict`` (member-major bands
``[m0 h1..hH, m1 h1..hH, ...]``, descriptions ``member<k> <ISO date>``, cumulative mm on the
stack's reference) and the displacement stack the forecast continues.

What is computed, per pixel (Liu et al. 2026 map the ensemble median forecast, its spread and
class ambiguity; where the paper is silent the choices below are ours):

* **Deformation over the horizon** of member ``m``: ``d_m = member_m(final horizon epoch) -
  stack(reference epoch)``. The reference epoch is the last acquisition of the stack *before the
  first forecast date*: for an ordinary forecast that is the stack's last acquisition; for a
  backtest (``predict`` run from an earlier date) it is the forecast origin, so the same stack
  can be given in both cases.
* **MODE** turns ``d`` into the value that is classified and thresholded:
  ``magnitude``: ``v = |d|``; ``subsidence``: ``v = -d`` (subsidence positive, uplift negative
  and therefore in the lowest class); ``uplift``: ``v = d``.
  A member **exceeds** a threshold ``t`` (mm over the horizon) when ``v >= t``, i.e.
  ``|d| >= t`` for magnitude, ``-d >= t`` for subsidence, ``d >= t`` for uplift.
* **Susceptibility**: class of ``v(median_m d_m)`` (the ensemble median is the central
  predictor). Class limits are the ``k/N`` quantiles (k = 1..N-1) of that value over the valid
  area (linear interpolation, ``numpy.quantile``), or the limits given by hand. A value equal to a
  limit goes to the upper class. Classes are 1..N (nodata 0).
* **Member classes** use the same limits on ``v(d_m)``; class probabilities are the shares of
  members per class.
* **Spread**: band 1 the standard deviation of ``d_m`` over members (population form, ddof=0),
  band 2 the inter-quantile range P90 - P10 of ``d_m`` (linear interpolation), both in mm.
* **Ambiguity**: normalised Shannon entropy of the members' class distribution,
  ``-sum_c p_c ln p_c / ln N`` (0 = all members in one class, 1 = spread evenly over all N
  classes; with fewer members than classes the maximum reachable is ``ln M / ln N``).
* **Confidence**: share of members whose class equals the median's class.
* **Exceedance probability**: per threshold, the probability that ``v(d) >= t`` with each member dressed by a
  Gaussian kernel that keeps the members' mean and variance (:mod:`exceedance`, session 33; until then the share of
  members with ``v(d_m) >= t``, a step of 1/M, which it remains where the members agree exactly or are fewer than 3).
  ``EXTREME_QUANTILES`` (e.g. 90,95,99) add thresholds at those percentiles of ``v(median)``
  over the valid area (the "extreme" deformation of this scene).

A pixel is valid when every member and the stack's reference epoch are finite there.

Memory: the work runs block by block over rows, reading only the final horizon epoch of every
member. Quantile class limits need the whole valid area, so a first pass collects ``v(median)``
on a regular sample of the grid: every pixel whose row-major index is a multiple of
``stride = ceil(H*W / MAX_SAMPLE)`` (``MAX_SAMPLE`` = 1 048 576 = 1024 x 1024). Up to that many
pixels the limits are therefore exact; above, they are exact quantiles of a regular 1-in-``stride``
sample, whose memory stays fixed (the sample's quantile error is of the order of 1/sqrt(sample
size), i.e. about 0.1 % in probability; a regular sample could only be biased by a pattern that
repeats exactly every ``stride`` pixels, which deformation fields do not). The sample does not depend on the block size, so the result
is the same whatever ``BLOCK_ROWS``. The second pass classifies and writes every output.
With ``BLOCK_ROWS`` = 0 the block height is chosen so a block holds about 262 144 pixels, which
keeps peak memory independent of the raster's width and height.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..order_stats import member_median
from ..io.crs import cell_area  # noqa: F401 - part of the uncertainty API
from ..errors import DeformCastError
from ..progress import Progress, silent
from ..io.raster import Grid, RasterWriter, crs_equal, iso, open_stack, parse_date, read_band
from . import distributed
from .exceedance import MODES, exceedance_probability, transform_value
from ..io import styles

MAX_SAMPLE = 1_048_576
BLOCK_PIXELS = 262_144

_MEMBER_RE = re.compile(r"^\s*member\s*(\d+)\s+(.+?)\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# small parsers
# --------------------------------------------------------------------------------------------
def parse_number_list(value, what: str) -> List[float]:
    """'10, 20 30' -> [10.0, 20.0, 30.0]; None/'' -> []."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        items = [str(v) for v in value]
    else:
        items = [t for t in re.split(r"[,;\s]+", str(value).strip()) if t]
    out = []
    for it in items:
        try:
            x = float(it)
        except ValueError:
            raise DeformCastError(f"{what}: '{it}' is not a number. Give a comma-separated list of numbers, "
                                  "e.g. 10,20,50.") from None
        if not math.isfinite(x):
            raise DeformCastError(f"{what}: '{it}' is not a finite number.")
        out.append(x)
    return out


@dataclass
class MembersInfo:
    path: str
    grid: Grid
    n_members: int
    horizon: int
    dates: Optional[np.ndarray]  # forecast dates (H,) or None when the bands carry no dates
    nodata: List[Optional[float]]


def open_members(path: str, horizon: int = 0) -> MembersInfo:
    """Read the layout of a MEMBERS raster (member-major, ``member<k> <date>`` descriptions)."""
    from osgeo import gdal

    gdal.UseExceptions()
    if not path or not os.path.exists(str(path)):
        raise DeformCastError(f"The ensemble members raster '{path}' does not exist. Give the "
                              "OUTPUT_MEMBERS raster written by 'predict'.")
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as e:
        raise DeformCastError(f"GDAL cannot open '{path}' as a raster: {e}") from None
    n = ds.RasterCount
    grid = Grid(tuple(ds.GetGeoTransform()), ds.GetProjection() or "", ds.RasterXSize, ds.RasterYSize)
    nod = [ds.GetRasterBand(i + 1).GetNoDataValue() for i in range(n)]
    parsed = []
    for i in range(n):
        m = _MEMBER_RE.match(ds.GetRasterBand(i + 1).GetDescription() or "")
        d = parse_date(m.group(2)) if m else None
        parsed.append((int(m.group(1)), d) if (m and d is not None) else None)
    dates = None
    if all(p is not None for p in parsed):
        members = [p[0] for p in parsed]
        first = members[0]
        h_desc = sum(1 for k in members if k == first)
        if horizon and horizon != h_desc:
            raise DeformCastError(
                f"HORIZON is {horizon} but the band descriptions of '{os.path.basename(str(path))}' "
                f"say {h_desc} forecast dates per member. Leave HORIZON at 0 to use the descriptions.")
        horizon = h_desc
        if n % horizon:
            raise DeformCastError(
                f"'{os.path.basename(str(path))}' has {n} bands, not a multiple of the horizon "
                f"({horizon}). Give the complete OUTPUT_MEMBERS raster of 'predict'.")
        dates = np.array([p[1] for p in parsed[:horizon]], dtype="datetime64[D]")
        for k in range(n // horizon):
            blk = parsed[k * horizon:(k + 1) * horizon]
            if len({p[0] for p in blk}) != 1 or not np.array_equal(
                    np.array([p[1] for p in blk], dtype="datetime64[D]"), dates):
                raise DeformCastError(
                    f"The bands of '{os.path.basename(str(path))}' are not member-major with the "
                    f"same {horizon} forecast dates per member (member block {k + 1} differs). "
                    "Use the OUTPUT_MEMBERS raster of 'predict' unchanged.")
    else:
        if not horizon or horizon < 1:
            raise DeformCastError(
                f"The bands of '{os.path.basename(str(path))}' are not described as "
                "'member<k> <date>', so the horizon is unknown. Give HORIZON (forecast epochs per "
                "member), or use the OUTPUT_MEMBERS raster of 'predict'.")
        if n % horizon:
            raise DeformCastError(
                f"'{os.path.basename(str(path))}' has {n} bands, not a multiple of HORIZON "
                f"({horizon}). Check HORIZON: the members raster holds HORIZON bands per member.")
    n_members = n // horizon
    if n_members < 2:
        raise DeformCastError(
            "The members raster holds a single member; uncertainty needs an ensemble of at least 2 "
            "members. Run 'predict' with a model folder holding several models (e.g. tune TOP_K=10).")
    return MembersInfo(str(path), grid, n_members, int(horizon), dates, nod)


def _read_band(ds, band_index0: int, r0: int, r1: int, width: int, nodata=None) -> np.ndarray:
    """Rows ``r0:r1`` of one displacement band in mm (float32, NaN nodata): the band's own nodata,
    scale/offset and length unit applied by :func:`raster.read_band` (``nodata`` is unused, kept for callers)."""
    return read_band(ds.GetRasterBand(band_index0 + 1), 0, r0, width, r1 - r0, to_mm=True)


def classify(v: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Classes 1..N for limits of length N-1 (a value equal to a limit goes to the upper class)."""
    return (np.searchsorted(np.asarray(limits, dtype=np.float64), v, side="right") + 1).astype(np.int16)


def block_stats(d: np.ndarray, limits: np.ndarray, mode: str, thresholds: Sequence[float]) -> Dict[str, np.ndarray]:
    """All per-pixel statistics for member deformations ``d`` of shape (M, ...) (all finite).

    Returns arrays over the trailing shape: ``median_d``, ``suscept`` (1..N), ``std``, ``iqr``,
    ``ambiguity``, ``confidence``, ``probs`` (N, ...), ``exceed`` (len(thresholds), ...).
    This is the formula reference that the block-wise driver and the tests share.
    """
    d = np.asarray(d, dtype=np.float64)
    m = d.shape[0]
    n_classes = len(limits) + 1
    med = member_median(d)
    susc = classify(transform_value(med, mode), limits)
    v = transform_value(d, mode)
    mcls = classify(v, limits)
    probs = np.stack([(mcls == c + 1).sum(axis=0) for c in range(n_classes)]).astype(np.float64) / m
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    amb = -plogp.sum(axis=0) / math.log(n_classes) if n_classes > 1 else np.zeros(med.shape)
    amb = np.clip(amb, 0.0, 1.0)
    conf = (mcls == susc[None]).sum(axis=0) / m
    p10, p90 = np.percentile(d, [10.0, 90.0], axis=0)
    exceed = exceedance_probability(d, thresholds, mode)
    return {"median_d": med, "suscept": susc, "std": d.std(axis=0), "iqr": p90 - p10,
            "ambiguity": amb, "confidence": conf, "probs": probs, "exceed": exceed}


def class_limits_from(values: np.ndarray, n_classes: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise DeformCastError("No valid pixel: every pixel has a missing member or a missing stack value. "
                              "Check that MEMBERS and INPUT cover the same area.")
    return np.quantile(v, np.arange(1, n_classes) / n_classes)


def exceed_label(t: float, mode: str, extreme_q: Optional[float] = None) -> str:
    expr = {"magnitude": "|d|", "subsidence": "-d (subsidence)", "uplift": "d (uplift)"}[mode]
    s = f"P({expr} >= {t:.6g} mm)"
    if extreme_q is not None:
        s += f" [P{extreme_q:g} of median]"
    return s


@dataclass
class UncertaintyResult:
    """The class limits and figures, and the paths of what was written (None = not written)."""
    limits: np.ndarray
    class_names: List[str]
    thresholds: List[float]
    threshold_labels: List[str]
    class_area: Dict[int, int] = field(default_factory=dict)
    n_valid: int = 0
    mean_exceedance: List[float] = field(default_factory=list)
    reference_date: Optional[str] = None
    final_date: Optional[str] = None
    susceptibility_path: Optional[str] = None
    spread_path: Optional[str] = None
    ambiguity_path: Optional[str] = None
    confidence_path: Optional[str] = None
    exceedance_path: Optional[str] = None
    class_probabilities_path: Optional[str] = None
    deformation_path: Optional[str] = None
    report_path: Optional[str] = None


def _auto_block_rows(block_rows: int, width: int) -> int:
    if block_rows and block_rows > 0:
        return int(block_rows)
    return max(1, BLOCK_PIXELS // max(1, width))


def run_uncertainty(members: str, stack: str, thresholds=None,
                    n_classes: int = 5, mode: str = "magnitude", class_limits=None, extreme_quantiles=None,
                    block_rows: int = 0, horizon: int = 0, dates=None,
                    progress: Optional[Progress] = None, scheduler: Optional[str] = None, *,
                    susceptibility_path: Optional[str] = None, spread_path: Optional[str] = None,
                    ambiguity_path: Optional[str] = None, confidence_path: Optional[str] = None,
                    exceedance_path: Optional[str] = None, class_probabilities_path: Optional[str] = None,
                    deformation_path: Optional[str] = None, report_path: Optional[str] = None) -> UncertaintyResult:
    """Compute every uncertainty layer block by block and write the requested rasters.

    ``*_path``: where to write the susceptibility classes, the spread, ambiguity, confidence,
    exceedance probability, class probabilities, the median deformation over the horizon and the
    HTML report (None/'' = not written); the result carries the paths written. ``scheduler``: a
    Dask scheduler address (``tcp://host:port``): both passes run their blocks on its workers
    (:mod:`distributed`), the rasters are written here in block order (the same files as without it).
    """
    paths = {"susceptibility": susceptibility_path, "spread": spread_path, "ambiguity": ambiguity_path,
             "confidence": confidence_path, "exceedance": exceedance_path,
             "class_probabilities": class_probabilities_path, "deformation": deformation_path}
    client = distributed.connect(scheduler, progress)
    try:
        return _run(members, stack, paths, report_path, thresholds, n_classes, mode, class_limits,
                    extreme_quantiles, block_rows, horizon, dates, progress or silent(), client)
    finally:
        if client is not None:
            client.close()


def _read_d(job: dict, r0: int, r1: int):
    """Member deformations over the horizon ``(M, rows, W)`` of rows ``r0:r1`` and where all are valid."""
    from osgeo import gdal

    gdal.UseExceptions()
    mds, sds, W = gdal.Open(job["members"]), gdal.Open(job["stack"]), job["width"]
    ref = _read_band(sds, job["ref_idx"], r0, r1, W)
    d = np.empty((len(job["last_bands"]), r1 - r0, W), dtype=np.float32)
    for k, b in enumerate(job["last_bands"]):
        d[k] = _read_band(mds, b, r0, r1, W)
    d -= ref[None]
    return d, np.isfinite(d).all(axis=0)


def _sample_block(job: dict, r0: int, r1: int):
    """Pass 1 of one block: v(median) and the members' std at the sampled pixels (or None)."""
    d, valid = _read_d(job, r0, r1)
    W = job["width"]
    flat = (np.arange(r0, r1, dtype=np.int64)[:, None] * W + np.arange(W, dtype=np.int64)[None])
    sel = valid & (flat % job["stride"] == 0)
    if not sel.any():
        return None
    ds_ = d[:, sel].astype(np.float64)
    return transform_value(member_median(ds_), job["mode"]), ds_.std(axis=0)


def _stats_block(job: dict, r0: int, r1: int) -> dict:
    """Pass 2 of one block: the rasters of every requested output (``bands``) and the block's counts."""
    d, valid = _read_d(job, r0, r1)
    n_classes, all_thr, h, W = job["n_classes"], job["thresholds"], r1 - r0, job["width"]
    st = block_stats(d[:, valid], np.asarray(job["limits"]), job["mode"], all_thr)

    def full(vals, nbands=None, fill=np.nan, dtype=np.float32):
        out = np.full((h, W) if nbands is None else (nbands, h, W), fill, dtype=dtype)
        out[..., valid] = vals
        return out

    make = {"susceptibility": lambda: full(st["suscept"], fill=0, dtype=np.uint8),
            "spread": lambda: full(np.stack([st["std"], st["iqr"]]), 2),
            "ambiguity": lambda: full(st["ambiguity"]),
            "confidence": lambda: full(st["confidence"]),
            "exceedance": lambda: full(st["exceed"], len(all_thr)),
            "class_probabilities": lambda: full(st["probs"], n_classes),
            "deformation": lambda: full(st["median_d"])}
    return {"bands": {k: make[k]() for k in job["keys"]}, "n_valid": int(valid.sum()),
            "area": np.bincount(st["suscept"], minlength=n_classes + 1)[: n_classes + 1],
            "exc": st["exceed"].sum(axis=1) if len(all_thr) else np.zeros(0)}


def _run(members, stack, outputs, report_path, thresholds, n_classes, mode, class_limits, extreme_quantiles,
         block_rows, horizon, dates, progress, client) -> UncertaintyResult:
    if mode not in MODES:
        raise DeformCastError(f"MODE: unknown value '{mode}'. Valid values: {', '.join(MODES)}.")
    thr = parse_number_list(thresholds, "THRESHOLDS")
    if any(t < 0 for t in thr) and mode == "magnitude":
        raise DeformCastError("THRESHOLDS: a magnitude threshold must be >= 0 mm.")
    ext_q = parse_number_list(extreme_quantiles, "EXTREME_QUANTILES")
    for q in ext_q:
        if not 0 < q < 100:
            raise DeformCastError(f"EXTREME_QUANTILES: {q:g} is not a percentile between 0 and 100 (e.g. 90,95,99).")
    hand = parse_number_list(class_limits, "CLASS_LIMITS")
    if hand:
        if any(b <= a for a, b in zip(hand, hand[1:])):
            raise DeformCastError("CLASS_LIMITS must increase strictly, e.g. 5,10,20,40 (mm over the horizon).")
        n_classes = len(hand) + 1
    n_classes = int(n_classes)
    if n_classes < 2 or n_classes > 12:
        raise DeformCastError(f"N_CLASSES is {n_classes}; use between 2 and 12 classes.")

    mi = open_members(members, int(horizon or 0))
    si = open_stack(stack, dates, progress=progress.sub(0.0, 0.02))
    if not mi.grid.same_as(si.grid):
        if (mi.grid.width, mi.grid.height) != (si.grid.width, si.grid.height):
            why = (f"MEMBERS is {mi.grid.width} x {mi.grid.height} pixels, INPUT is "
                   f"{si.grid.width} x {si.grid.height}")
        elif not crs_equal(mi.grid.crs_wkt, si.grid.crs_wkt):
            why = "their CRS differ"
        else:
            why = "their geotransforms differ"
        raise DeformCastError(f"MEMBERS and INPUT are not on the same grid ({why}). Give the stack that "
                              "'predict' was run on (same extent, cell size and CRS).")
    # reference epoch: last acquisition before the first forecast date
    ref_idx = si.n_epochs - 1
    if mi.dates is not None:
        before = np.nonzero(si.dates < mi.dates[0])[0]
        if before.size == 0:
            raise DeformCastError(
                f"The first forecast date ({iso(mi.dates[0])}) is not after any acquisition of INPUT "
                f"(first acquisition {iso(si.dates[0])}). Give the stack the forecast continues.")
        ref_idx = int(before[-1])
    grid = mi.grid
    H, W = grid.height, grid.width
    M, Hz = mi.n_members, mi.horizon
    br = _auto_block_rows(block_rows, W)
    last_bands = [m * Hz + Hz - 1 for m in range(M)]
    stride = max(1, math.ceil(H * W / MAX_SAMPLE))
    job = {"members": mi.path, "stack": si.source, "width": W, "ref_idx": ref_idx, "mode": mode, "stride": stride,
           "last_bands": last_bands}
    blocks = [(r0, min(H, r0 + br)) for r0 in range(0, H, br)]
    # ---- pass 1: sample of v(median) for quantile limits --------------------------------
    p1 = progress.sub(0.0, 0.35)
    samples, spread_samples = [], []
    p1.log(f"Uncertainty: {M} members x {Hz} epochs, {W} x {H} pixels, blocks of {br} rows; "
           f"reference epoch {iso(si.dates[ref_idx])}; quantile sample stride {stride}.")

    def take(i, got):
        if got is not None:
            samples.append(got[0])
            spread_samples.append(got[1])

    distributed.run_blocks(client, _sample_block, [(job, r0, r1) for r0, r1 in blocks], take, p1, what="block")
    vs = np.concatenate(samples) if samples else np.zeros(0)
    sp = np.concatenate(spread_samples) if spread_samples else np.zeros(0)
    if vs.size == 0:
        raise DeformCastError("No valid pixel: every pixel has a missing member or a missing stack value. "
                              "Check that MEMBERS and INPUT cover the same area and are not all nodata.")
    limits = np.asarray(hand, dtype=np.float64) if hand else class_limits_from(vs, n_classes)
    if not hand and np.any(np.diff(limits) <= 0):
        p1.log("Some quantile class limits coincide (many pixels share one value); the classes between "
               "equal limits stay empty. Give CLASS_LIMITS by hand for distinct classes.")
    ext_thr = [float(np.percentile(vs, q)) for q in ext_q]
    all_thr = list(thr) + ext_thr
    thr_labels = [exceed_label(t, mode) for t in thr] + [exceed_label(t, mode, q) for t, q in zip(ext_thr, ext_q)]
    names = styles.class_labels(n_classes)
    unit_lim = ["-inf"] + [f"{x:.3g}" for x in limits] + ["inf"]
    legend = [f"{names[c]} ({unit_lim[c]} to {unit_lim[c + 1]} mm)" for c in range(n_classes)]

    # ---- writers --------------------------------------------------------------------------
    meta = {"DEFORMCAST_MODE": mode, "DEFORMCAST_CLASS_LIMITS": ",".join(f"{x:.6g}" for x in limits),
            "DEFORMCAST_REFERENCE_DATE": iso(si.dates[ref_idx]), "DEFORMCAST_MEMBERS": str(M)}
    if mi.dates is not None:
        meta["DEFORMCAST_FINAL_DATE"] = iso(mi.dates[-1])
    spread_hi = float(np.percentile(sp, 98)) if sp.size else 1.0
    spec = {
        "susceptibility": (1, ["susceptibility class"], "uint8", 0, styles.class_style(legend)),
        "spread": (2, ["std of members (mm)", "P90 - P10 of members (mm)"], "float32", None,
                   styles.pseudocolor(0.0, max(spread_hi, 1e-6), "spread", 1, "mm")),
        "ambiguity": (1, ["class ambiguity (normalised entropy)"], "float32", None,
                      styles.pseudocolor(0.0, 1.0, "ambiguity", 1)),
        "confidence": (1, ["classification confidence"], "float32", None,
                       styles.pseudocolor(0.0, 1.0, "confidence", 1)),
        "exceedance": (len(all_thr), thr_labels, "float32", None, styles.probability_style(1)),
        "class_probabilities": (n_classes, [f"P(class {c + 1}: {legend[c]})" for c in range(n_classes)],
                                "float32", None, styles.probability_style(n_classes)),
        "deformation": (1, ["ensemble-median deformation over the horizon (mm)"], "float32", None, None),
    }
    if outputs.get("exceedance") and not all_thr:
        raise DeformCastError("OUTPUT_EXCEEDANCE needs at least one threshold: give THRESHOLDS (mm over the "
                              "horizon, e.g. 10,20) or EXTREME_QUANTILES (e.g. 90,95,99).")
    writers: Dict[str, RasterWriter] = {}
    written: Dict[str, str] = {}
    try:
        for key, (nbands, bnames, dtype, nod, qml) in spec.items():
            path = outputs.get(key)
            if not path:
                continue
            if key == "deformation":
                m98 = float(np.percentile(np.abs(vs), 98))
                qml = styles.pseudocolor(-max(m98, 1e-6), max(m98, 1e-6), "deformation", 1, "mm")
            writers[key] = RasterWriter(path, grid, nbands, bnames, dtype, nod, qml, meta, write_rows=br)
        # ---- pass 2 -----------------------------------------------------------------------
        p2 = progress.sub(0.35, 0.97)
        area = np.zeros(n_classes + 1, dtype=np.int64)
        exc_sum = np.zeros(len(all_thr))
        n_valid = 0
        job2 = dict(job, n_classes=n_classes, thresholds=[float(t) for t in all_thr],
                    limits=[float(x) for x in limits], keys=list(writers))

        def put(i, res):   # written here, in block order
            nonlocal n_valid, area, exc_sum
            n_valid += res["n_valid"]
            area += res["area"]
            if len(all_thr):
                exc_sum += res["exc"]
            for key, arr in res["bands"].items():
                writers[key].write(arr, blocks[i][0])

        distributed.run_blocks(client, _stats_block, [(job2, r0, r1) for r0, r1 in blocks], put, p2, what="block")
        for key, w in list(writers.items()):
            written[key] = w.close()
            writers.pop(key)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    res = UncertaintyResult(limits, names, all_thr, thr_labels,
                            {c: int(area[c]) for c in range(1, n_classes + 1)}, n_valid,
                            [float(s / n_valid) if n_valid else float("nan") for s in exc_sum],
                            iso(si.dates[ref_idx]), iso(mi.dates[-1]) if mi.dates is not None else None,
                            **{f"{key}_path": p for key, p in written.items()})
    if report_path:
        write_report(report_path, res, vs, mode, M, Hz, grid, bool(hand), ext_q, stride)
        res.report_path = report_path
    progress.set(1.0)
    return res


def write_report(path: str, res: UncertaintyResult, sample: np.ndarray, mode: str, n_members: int,
                 horizon: int, grid: Grid, by_hand: bool, ext_q: Sequence[float], stride: int) -> str:
    from ..report import Report, new_figure

    expr = {"magnitude": "|d|", "subsidence": "-d", "uplift": "d"}[mode]
    rep = Report("DeformCast – susceptibility and uncertainty")
    rep.paragraph(f"{n_members} ensemble members, {horizon} forecast epochs; deformation d over the horizon "
                  f"from {res.reference_date} to {res.final_date or 'the final forecast epoch'}. "
                  f"Mode '{mode}': classified value v = {expr}; a member exceeds threshold t when v >= t. "
                  f"{res.n_valid} valid pixels.")
    rep.heading("Class limits")
    src = ("given by hand (CLASS_LIMITS)" if by_hand else
           f"quantiles k/{len(res.class_names)} of v(ensemble median) over the valid area"
           + (" (exact)" if stride == 1 else f" (regular 1-in-{stride} sample of the grid)"))
    rep.paragraph("Limits " + src + ".")
    lims = [-np.inf] + list(res.limits) + [np.inf]
    ca = cell_area(grid)
    rows = []
    for c, name in enumerate(res.class_names):
        n = res.class_area.get(c + 1, 0)
        rows.append([f"{c + 1} {name}", float(lims[c]), float(lims[c + 1]), n,
                     100.0 * n / res.n_valid if res.n_valid else float("nan"),
                     n * ca / 1e6 if ca else float("nan")])
    rep.table(rows, ["class", "from (mm)", "to (mm)", "pixels", "% of valid", "area (km²)"])
    fig = new_figure(7, 3.5)
    ax = fig.add_subplot(111)
    ax.hist(sample, bins=80, color="#4393c3")
    for x in res.limits:
        ax.axvline(x, color="#d7191c", lw=1)
    ax.set_xlabel(f"v = {expr} of the ensemble median over the horizon (mm)")
    ax.set_ylabel("pixels" + ("" if stride == 1 else " (sample)"))
    rep.figure(fig, "Histogram of the classified value with the class limits (red).")
    rep.heading("Exceedance probability")
    if res.thresholds:
        rep.table([[lab, t, p] for lab, t, p in zip(res.threshold_labels, res.thresholds, res.mean_exceedance)],
                  ["band", "threshold (mm)", "mean probability over valid area"])
        if ext_q:
            rep.paragraph("Extreme thresholds are percentiles " + ", ".join(f"{q:g}" for q in ext_q)
                          + " of v(median) over the valid area.")
    else:
        rep.paragraph("No threshold given.")
    rep.heading("Definitions")
    rep.paragraph("Spread: band 1 standard deviation of the members' deformation (ddof=0), band 2 P90 - P10. "
                  "Ambiguity: -sum p_c ln p_c / ln N over the members' class shares. Confidence: share of "
                  "members in the median's class. Exceedance: probability that v >= t, each member dressed with "
                  "a Gaussian kernel that keeps the members' mean and variance (the share of members where they "
                  "agree exactly).")
    return rep.save(path)


