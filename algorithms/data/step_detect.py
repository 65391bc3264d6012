"""Steps at dates nobody gave: detection on the stack, and the per-pixel test of a step date.

A step (a coseismic offset, an unwrapping error of a patch, a sudden collapse) breaks every trajectory
fit whose window holds it: the fit bends to join the two levels and extrapolates the bend. MintPy's
answer is a step term at a known date (``STEPS``). Where nobody knows the date, :func:`detect_steps`
finds it: at each candidate epoch ``k`` every pixel gets a windowed test (``a + b t + c H(t - t_k)``
fitted on the ``STEP_HALF`` epochs before and after it; ``t = c / se(c)``). A symmetric window makes the
test blind to a smooth bend or a kink of the velocity at ``k`` (symmetric about ``k``, while the step is
not), and to one noisy acquisition (it moves ``c`` by a sixteenth of its size). A date is kept where at
least ``STEP_MIN_PIXELS`` pixels show a step of at least ``STEP_MIN_MM`` with ``|t| >= STEP_T`` that
neighbours confirm (a spatially coherent patch: the atmosphere of one date is spatially correlated too,
but it does not stay for eight epochs), at the epoch where most pixels show it. Where pixel noise hides a
step from the per-pixel test, the patch still stands out: a pixel also passes when its step averaged over
its 7 x 7 neighbourhood is ``STEP_Z`` robust standard deviations away from that epoch's field (session 7).

:func:`pixel_steps` is the test a fit makes: a step date enters a pixel's classical fits only where
the pixel's own history up to the forecast origin shows the step (``|t| >= STEP_T_PIXEL`` with at least
``STEP_MIN_POST`` epochs after it, in a window of up to ``STEP_HALF_PIXEL`` epochs on each side). Elsewhere the step term would only add variance: with a date 20
epochs before the end applied to every pixel, the two-year trajectory of one benchmark scene's background
went from 3.41 to 3.92 mm (docs/skill.md).

Each date found carries the median step of the pixels that show it (``step_mm``, fitted on the whole series with the
all-history terms, :func:`step_sums`) and ``cycles``: 1 or 2 where that
step is a whole number of Sentinel-1 phase cycles (``CYCLE_MM``, lambda / 2 = 27.73 mm of line-of-sight motion)
within ``UNWRAP_TOL`` and most of its pixels agree, else 0. Such a step is the signature of a phase-unwrapping
error of a patch, not of ground motion (session 45; the third generator's scenes hold such errors as noise): the
forecast follows the level the stack records, so the log and the report name the date and say what to check
(:func:`describe`).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import numpy as np

from .baselines import normal_inverse

#: epochs on each side of a candidate step date in the windowed test
STEP_HALF = 8
#: |t| of a pixel's step for the detection of a date (strict: many epochs x many pixels are tested)
STEP_T = 6.0
#: |t| of a pixel's step for the step term to enter its fits at a known or detected date
STEP_T_PIXEL = 3.0
#: epochs on each side of a known date in the per-pixel test (:func:`pixel_steps`): as many after the date
#: as the history holds, up to this, and as many before (at least ``STEP_HALF``), so the window is
#: symmetric (blind to a kink or a bend, as the scan) wherever the history allows. Session 10: 24 instead
#: of ``STEP_HALF`` (8). The date is already known here, so the test can afford a longer window than the
#: scan; three times the epochs roughly double |t| for a step hidden in pixel noise. Replayed on 70 scenes
#: (benchmarks/gate_replay.py): step areas 1.049 -> 1.034 of the zone's best classical forecast on average.
STEP_HALF_PIXEL = 24
#: epochs after the date a fit's history needs before the pixel test can see the step
STEP_MIN_POST = 3
#: smallest step (mm) worth a date, and the patch of pixels that must show it
STEP_MIN_MM, STEP_MIN_PIXELS = 4.0, 20
#: the second test of a pixel (session 7): its step averaged over a STEP_BOX x STEP_BOX neighbourhood, as
#: a z-score against the spread of that average over the scene (or the block read) at the same epoch
#: (median and MAD). A patch that stepped stands out of its own epoch's field, while an epoch whose
#: atmosphere or noise is strong everywhere raises the spread with it. A pixel passes with
#: ``|z| >= STEP_Z`` and ``|t| >= STEP_T_PIXEL``, or with ``|t| >= STEP_T`` as before. Chosen on the 45
#: scenes of bench_skill.py (seeds 0-44: 17 of 20 steps dated against 16, no false date; z >= 5 would
#: date 18, z >= 4 gives 7 false dates) and confirmed on 100 scenes never looked at before (seeds 45-144,
#: benchmarks/bench_steps.py: 43 of 51 against 39, no false date).
STEP_BOX, STEP_Z = 7, 6.0
#: the line-of-sight displacement of one phase cycle (mm): half the Sentinel-1 C-band wavelength (5.405 GHz)
CYCLE_MM = 27.73
#: a date's step is called a whole number of cycles when its median over the pixels that show it lies within this
#: share of a cycle of one or two cycles and at least half of those pixels do (session 45: two unwrapping errors of
#: the third generator's scenes read -28.05 and -28.3 mm, a collapse beside one of them -24.8 mm;
#: benchmarks/bench_unwrap_flag.py)
UNWRAP_TOL = 0.1
#: the bins of the histogram of a date's steps (:func:`step_sums`): width and half span (mm)
HIST_MM, HIST_SPAN_MM = 0.25, 4 * CYCLE_MM


def _window_fit(y: np.ndarray, k: int, n_pre: int, n_post: int):
    """``(c, t)`` of ``a + b j + c H(j >= 0)`` fitted on epochs ``k - n_pre .. k + n_post - 1`` of ``y``
    (T, N) per pixel, NaN gaps allowed (NaN where fewer than 2 epochs on a side)."""
    seg = np.asarray(y[k - n_pre:k + n_post], dtype=np.float64)
    j = np.arange(-n_pre, n_post, dtype=np.float64)
    A = np.stack([np.ones_like(j), j / max(1, n_pre), (j >= 0).astype(np.float64)], axis=1)   # (m, 3)
    ok = np.isfinite(seg)
    w = ok.astype(np.float64)
    yy = np.where(ok, seg, 0.0)
    pre = ok[:n_pre].sum(axis=0)
    post = ok[n_pre:].sum(axis=0)
    aty = np.einsum("tp,tn->np", A, yy)
    good = (pre >= 2) & (post >= 2)
    c = np.full(seg.shape[1], np.nan)
    t = np.full(seg.shape[1], np.nan)
    if not good.any():
        return c, t
    inv = normal_inverse(A, w[:, good])
    coef = np.einsum("npq,nq->np", inv, aty[good])
    res = (yy[:, good] - A @ coef.T) * w[:, good]
    dof = np.maximum(w[:, good].sum(axis=0) - 3, 1)
    sig = np.sqrt((res * res).sum(axis=0) / dof)
    se = sig * np.sqrt(np.clip(inv[:, 2, 2], 0, None))
    c[good] = coef[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        t[good] = coef[:, 2] / np.maximum(se, 1e-9)
    return c, t


def _detrended(y: np.ndarray, dates) -> np.ndarray:
    """``y`` (T, n) minus its all-history fit (quadratic, annual and semi-annual terms) where the span
    allows them: seasonal motion is not linear over a 16-epoch window and would leak into the step."""
    from .baselines import fit_stats, terms_for_span, years_between

    d = np.asarray(dates, dtype="datetime64[D]")
    t = years_between(d, d[-1])
    deg, periods = terms_for_span(float(t[-1] - t[0]) if t.size else 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        coef, _, _, fit = fit_stats(y, t, t, deg, periods)
    return np.where(np.isfinite(fit), y - fit, y)


def pixel_steps(hist: np.ndarray, dates, step_dates) -> np.ndarray:
    """(len(step_dates), n) bool: where the history ``hist`` (e + 1, n) up to the origin shows each step
    (``|t| >= STEP_T_PIXEL`` in the windowed test, at least ``STEP_MIN_POST`` epochs after the date and
    ``STEP_HALF // 2`` before it). A date outside the history, or too close to its end, is False."""
    y = np.asarray(hist, dtype=np.float64)
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.zeros((len(step_dates), y.shape[1]), dtype=bool)
    r = None
    for i, sd in enumerate(step_dates):
        k = int(np.searchsorted(d, np.datetime64(sd, "D"), side="left"))   # first epoch on/after the date
        n_post = min(STEP_HALF_PIXEL, d.size - k)
        n_pre = min(k, max(n_post, STEP_HALF))
        if n_post < STEP_MIN_POST or n_pre < STEP_HALF // 2:
            continue
        r = _detrended(y, d) if r is None else r
        c, t = _window_fit(r, k, n_pre, n_post)
        out[i] = (np.abs(np.nan_to_num(t)) >= STEP_T_PIXEL) & (np.abs(np.nan_to_num(c)) >= STEP_MIN_MM)
    return out


def step_scan(block: np.ndarray, dates, end: Optional[int] = None) -> Dict[str, np.ndarray]:
    """The windowed test at every candidate epoch of a block (T, rows, cols): ``{"k": (K,) epochs,
    "c": (K, rows, cols) step mm, "t": (K, rows, cols)}`` with full windows up to ``end``, NaN for pixels
    with fewer than half their epochs. Every epoch at once: the test is one linear filter of the series."""
    y = np.asarray(block, dtype=np.float64)
    T = y.shape[0] if end is None else int(end) + 1
    ks = np.arange(STEP_HALF, T - STEP_HALF + 1)
    flat = _detrended(y.reshape(y.shape[0], -1)[:T], np.asarray(dates, dtype="datetime64[D]")[:T])
    n = flat.shape[1]
    c_all = np.full((ks.size, n), np.nan)
    t_all = np.full((ks.size, n), np.nan)
    ok = np.isfinite(flat)
    full = ok.all(axis=0)
    gappy = ~full & (ok.mean(axis=0) >= 0.5)
    if gappy.any():
        # a pixel with gaps (but at least half its epochs) is screened with each gap filled by the value
        # before it: a flat stretch, never a step the data do not hold (the fits themselves keep the gaps)
        sub = flat[:, gappy]
        idx = np.where(np.isfinite(sub), np.arange(sub.shape[0])[:, None], 0)
        idx = np.maximum.accumulate(idx, axis=0)
        filled = np.take_along_axis(sub, idx, axis=0)
        first = np.argmax(np.isfinite(sub), axis=0)
        filled = np.where(np.isfinite(filled), filled, sub[first, np.arange(sub.shape[1])][None])
        flat = flat.copy()
        flat[:, gappy] = filled
        full = full | gappy
    if ks.size and full.any():
        m = 2 * STEP_HALF
        j = np.arange(-STEP_HALF, STEP_HALF, dtype=np.float64)
        A = np.stack([np.ones_like(j), j / STEP_HALF, (j >= 0).astype(np.float64)], axis=1)
        inv = np.linalg.inv(A.T @ A)
        g = (inv @ A.T)[2]                                   # c = g . window
        Q, _ = np.linalg.qr(A)
        idx = np.flatnonzero(full)
        for s0 in range(0, idx.size, 8192):
            cols = idx[s0:s0 + 8192]
            sub = np.ascontiguousarray(flat[:, cols])
            K = ks.size
            c = np.zeros((K, cols.size))
            proj = np.zeros((3, K, cols.size))
            for jj in range(m):                                 # the window filters, tap by tap
                seg = sub[jj:jj + K]
                c += g[jj] * seg
                for q in range(3):
                    proj[q] += Q[jj, q] * seg
            cs2 = np.concatenate([np.zeros((1, cols.size)), np.cumsum(sub * sub, axis=0)])
            ss = cs2[m:m + K] - cs2[:K]                                                 # sum of squares per window
            rss = np.maximum(ss - (proj ** 2).sum(axis=0), 0.0)
            se = np.sqrt(rss / (m - 3)) * np.sqrt(inv[2, 2])
            c_all[:, cols] = c
            with np.errstate(invalid="ignore", divide="ignore"):
                t_all[:, cols] = c / np.maximum(se, 1e-9)
    shp = (ks.size,) + y.shape[1:]
    # the detrended series, gaps filled, and its times (years): :func:`step_sums` fits each found step on it
    from .baselines import years_between

    dd = np.asarray(dates, dtype="datetime64[D]")[:T]
    years = years_between(dd, dd[0])
    return {"k": ks, "c": c_all.reshape(shp), "t": t_all.reshape(shp), "r": np.nan_to_num(flat), "years": years}


def coherent_counts(scan: Dict[str, np.ndarray]) -> np.ndarray:
    """(K,) pixels per candidate epoch whose step passes ``STEP_T`` and ``STEP_MIN_MM`` and at least 4 of
    whose 8 neighbours pass too."""
    return _coherent_flags(scan).sum(axis=(1, 2))


def pick_dates(counts: np.ndarray, ks: np.ndarray, dates, sums: Optional[np.ndarray] = None) -> List[dict]:
    """Dates from the coherent counts of candidate epochs ``ks``: each run's epoch with the most pixels
    (no other kept epoch within ``STEP_HALF``), where at least ``STEP_MIN_PIXELS`` show the step. ``sums``:
    :func:`step_sums` of the same flags, for each date's median step ``step_mm``, ``cycles`` (module doc) and the
    centre (``row``, ``col``) of its pixels."""
    d = np.asarray(dates, dtype="datetime64[D]")
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    kept: List[int] = []
    for i in order:
        if counts[i] < STEP_MIN_PIXELS:
            break
        if all(abs(int(ks[i]) - int(ks[j])) > STEP_HALF for j in kept):
            kept.append(int(i))
    out = []
    for i in sorted(kept, key=lambda i: int(ks[i])):
        row = {"date": str(d[int(ks[i])]), "epoch": int(ks[i]), "pixels": int(counts[i])}
        n = 0.0 if sums is None else float(sums[i][:-2].sum())
        if n > 0:
            med, m = _median_and_cycles(sums[i][:-2])
            row.update(step_mm=round(med, 2), cycles=m, row=round(float(sums[i][-2]) / n, 1),
                       col=round(float(sums[i][-1]) / n, 1))
        out.append(row)
    return out


def step_sums(scan: Dict[str, np.ndarray], flags: np.ndarray, rows: Optional[tuple] = None,
              row0: int = 0) -> np.ndarray:
    """(K, bins + 2): per candidate epoch, the histogram (``HIST_MM`` bins over +-``HIST_SPAN_MM``, the ends open) of
    the steps of the pixels ``flags`` marks (:func:`_coherent_flags`; ``rows``: the scan's rows they cover, the first
    of them row ``row0`` of the raster), then the sums of their rows and columns; sums of blocks add up, and a date's
    median step, the share of its pixels near whole cycles and the patch's centre come from them
    (:func:`pick_dates`). Each step is fitted on the whole series, jointly with the all-history terms
    (:func:`_detrended`'s polynomial and seasons) and a step at that epoch, as MintPy fits a step at a known date: the
    16-epoch window of the scan sees half a year, where the seasons of the detrending (which bend to join the two
    levels) and the noise of a few dates move the step by several per cent."""
    from .baselines import design_matrix, terms_for_span

    r, years, ks = scan["r"], scan["years"], scan["k"]
    f = np.asarray(flags, dtype=bool)
    W = f.shape[2]
    off = 0 if rows is None else int(rows[0]) * W
    deg, periods = terms_for_span(float(years[-1] - years[0]))
    nb = _n_bins()
    hist = np.zeros((ks.size, nb + 2))
    kk, rr, cc = np.nonzero(f)
    hist[:, nb] = np.bincount(kk, weights=rr + float(row0), minlength=ks.size)
    hist[:, nb + 1] = np.bincount(kk, weights=cc.astype(np.float64), minlength=ks.size)
    for i in np.flatnonzero(f.any(axis=(1, 2))):
        pix = off + np.flatnonzero(f[i].ravel())
        A = design_matrix(years, deg, periods, steps=(float(years[int(ks[i])]),))
        c = np.linalg.lstsq(A, r[:, pix], rcond=None)[0][-1]
        b = np.clip(np.floor((np.nan_to_num(c) + HIST_SPAN_MM) / HIST_MM), 0, nb - 1).astype(np.int64)
        hist[i, :nb] = np.bincount(b, minlength=nb)
    return hist


def _n_bins() -> int:
    return int(round(2 * HIST_SPAN_MM / HIST_MM))


def _median_and_cycles(hist: np.ndarray):
    """A date's median step (mm) from its histogram (:func:`step_sums`) and the whole cycles it amounts to (1 or 2,
    else 0: module doc)."""
    n = hist.sum()
    centres = -HIST_SPAN_MM + (np.arange(hist.size) + 0.5) * HIST_MM
    med = float(centres[int(np.searchsorted(np.cumsum(hist), 0.5 * n))])
    m = int(round(abs(med) / CYCLE_MM))
    if not 1 <= m <= 2 or abs(abs(med) - m * CYCLE_MM) > UNWRAP_TOL * CYCLE_MM:
        return med, 0
    near = np.abs(np.abs(centres) - m * CYCLE_MM) <= UNWRAP_TOL * CYCLE_MM
    return med, m if hist[near].sum() >= 0.5 * n else 0


def describe(found: List[dict], notes: bool = True) -> str:
    """The dates :func:`detect_steps` found, for a log or a report: each with its pixels and its median step, and
    (``notes``) a note on those of whole phase cycles (possible unwrapping errors, what to check); 'none' where none."""
    if not found:
        return "none"
    parts = []
    for x in found:
        mm = f", {x['step_mm']:+.1f} mm" if x.get("step_mm") is not None else ""
        cyc = int(x.get("cycles") or 0)
        note = (f": the size of {'one' if cyc == 1 else 'two'} Sentinel-1 phase cycle{'s' if cyc > 1 else ''} "
                f"({cyc * CYCLE_MM:.2f} mm), the mark of a phase-unwrapping error of that patch rather than of ground "
                "motion; check that date's interferograms and correct the unwrapping (e.g. MintPy's "
                "unwrap_error_bridging or unwrap_error_phase_closure) before forecasting: until then the forecast "
                "follows the jump as if the ground had moved" if cyc and notes else "")
        at = f" around row {x['row']:.0f}, column {x['col']:.0f}" if x.get("row") is not None else ""
        parts.append(f"{x['date']} ({x['pixels']} pixels{at}{mm}{note})")
    return "; ".join(parts)


def report_steps(found: List[dict], progress) -> None:
    """Log the dates found (:func:`describe`) on ``progress`` and warn (:func:`errors.warn`: a warning of the
    Processing run) of those of whole phase cycles, which the user should check before trusting the forecast: the
    note on them is in the warning only."""
    from ..errors import warn

    progress.log("Steps detected: " + describe(found, notes=False) + ".")
    cyc = [x for x in found if x.get("cycles")]
    if cyc:
        warn("Possible phase-unwrapping error in the stack: " + describe(cyc) + ".")


def detect_steps(stack: np.ndarray, dates, end: Optional[int] = None) -> List[dict]:
    """Step dates in a stack (T, rows, cols) mm, from its epochs up to ``end`` (default: all):
    ``[{"date", "epoch", "pixels", "step_mm", "cycles", "row", "col"}]`` (module doc)."""
    scan = step_scan(stack, dates, end)
    flags = _coherent_flags(scan)
    return pick_dates(flags.sum(axis=(1, 2)), scan["k"], dates, step_sums(scan, flags))


def detect_in_source(source, dates, rows_per_block: int = 128) -> List[dict]:
    """:func:`detect_steps` over a stack array (T, rows, cols) or a :class:`raster.StackInfo` read in
    blocks of rows (halo rows each side for the box average and the neighbour test; the z-score's
    spread is the block's): the counts of every block add up."""
    d = np.asarray(dates, dtype="datetime64[D]")
    if not hasattr(source, "grid"):
        return detect_steps(np.asarray(source), d)
    from ..io import raster

    Hh = int(source.grid.shape[0])
    total, sums, ks = None, None, None
    halo = STEP_BOX // 2 + 1
    for r0 in range(0, Hh, int(rows_per_block)):
        r1 = min(Hh, r0 + int(rows_per_block))
        a0, a1 = max(0, r0 - halo), min(Hh, r1 + halo)
        scan = step_scan(raster.read_stack(source, rows=(a0, a1)), d)
        flags = _coherent_flags(scan)[:, r0 - a0:r1 - a0]
        counts_all, s_all = flags.sum(axis=(1, 2)), step_sums(scan, flags, rows=(r0 - a0, r1 - a0), row0=r0)
        total = counts_all if total is None else total + counts_all
        sums = s_all if sums is None else sums + s_all
        ks = scan["k"]
    return [] if total is None else pick_dates(total, ks, d, sums)


def _box_z(c: np.ndarray) -> np.ndarray:
    """(K, rows, cols): the step averaged over STEP_BOX x STEP_BOX pixels (no value: 0), as a z-score
    against its median and MAD over the pixels at each epoch."""
    from scipy.ndimage import uniform_filter

    cs = uniform_filter(c, size=(1, STEP_BOX, STEP_BOX), mode="nearest")
    med = np.median(cs, axis=(1, 2), keepdims=True)
    mad = 1.4826 * np.median(np.abs(cs - med), axis=(1, 2), keepdims=True)
    return (cs - med) / np.maximum(mad, 1e-6)


def _coherent_flags(scan: Dict[str, np.ndarray]) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    c, t = np.nan_to_num(scan["c"]), np.abs(np.nan_to_num(scan["t"]))
    strong = (t >= STEP_T) | ((t >= STEP_T_PIXEL) & (np.abs(_box_z(c)) >= STEP_Z))
    flag = strong & (np.abs(c) >= STEP_MIN_MM)
    nb = uniform_filter(flag.astype(np.float64), size=(1, 3, 3), mode="constant") * 9.0 - flag
    return flag & (nb >= 4 - 1e-9)


def groups_by_steps(hist: np.ndarray, dates, tf):
    """The pixels of ``hist`` (e + 1, n) grouped by the step dates of the time function ``tf`` that
    their history shows (:func:`pixel_steps`): ``[(columns, time function of that group or None)]``,
    each group's time function holding only those dates (and ``tf``'s exp / log terms)."""
    from .baselines import TimeFunction

    shows = pixel_steps(hist, dates, tf.step_dates)                   # (S, n)
    patterns, inverse = np.unique(shows.T, axis=0, return_inverse=True)
    out = []
    for i, pat in enumerate(patterns):
        sub = TimeFunction(step_dates=tuple(sd for sd, on in zip(tf.step_dates, pat) if on), exp=tf.exp, log=tf.log,
                           date_weights=tf.date_weights)
        out.append((np.flatnonzero(inverse.ravel() == i), sub if sub else None))
    return out


def baselines_where_steps_show(stack: np.ndarray, dates, fit_end_index: int, horizon_dates, time_function=None,
                               **kw) -> Dict[str, np.ndarray]:
    """:func:`baselines.forecast_baselines` with each step date of ``time_function`` only in the fits of
    the pixels whose history up to ``fit_end_index`` shows the step (:func:`pixel_steps`), as in the
    classical family (``anchors.family_forecasts``): pixels are grouped by the steps they show."""
    from .baselines import as_time_function, forecast_baselines

    tf = as_time_function(time_function)
    a = np.asarray(stack)
    if tf is None or not tf.step_dates:
        return forecast_baselines(a, dates, fit_end_index, horizon_dates, time_function=tf, **kw)
    d = np.asarray(dates, dtype="datetime64[D]")
    end = int(fit_end_index)
    y = a.reshape(a.shape[0], -1)
    hd = np.atleast_1d(np.asarray(horizon_dates, dtype="datetime64[D]"))
    out: Dict[str, np.ndarray] = {}
    for cols, sub in groups_by_steps(y[:end + 1], d[:end + 1], tf):
        part = forecast_baselines(y[:, cols], d, end, hd, time_function=sub, **kw)
        for n, v in part.items():
            out.setdefault(n, np.full((hd.size, y.shape[1]), np.nan, np.float32))[:, cols] = v
    return {n: v.reshape((hd.size,) + a.shape[1:]) for n, v in out.items()}
