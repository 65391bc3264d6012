"""Network inputs of a window, shared by training samples and forecasts (one code path): the
coding strategies (channels), the classical family and anchor of the residual target, and the
conversion of the network output to mm. The meaning of each channel: :mod:`dataset`."""
from __future__ import annotations

import contextlib
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import anchors as anc
from .baselines import BASELINES, design_matrix, fit_stats, forecast_baselines, years_between
from ..errors import DeformCastError

ENCODINGS = ("none", "temporal", "spatial", "neighbourhood", "covariates", "trajectory", "regime")
#: anchors of the residual target: a classical baseline, or ``adaptive`` (:mod:`anchors`)
ANCHORS = BASELINES + ("adaptive",)
VALIDATIONS = ("time", "space")
#: history (years) the ``trajectory`` encoding needs before a window's last epoch: the span from
#: which :func:`baselines.terms_for_span` fits the full model (acceleration + seasonal terms)
FULL_MODEL_YEARS = 1.9
_TRAJ_TERMS = ("v", "a", "c1", "s1", "c2", "s2")
TRAJECTORY_FEATURES = ([f"trj:z_{t}" for t in _TRAJ_TERMS] + [f"trj:end_{t}" for t in _TRAJ_TERMS]
                       + [f"trj:mid_{t}" for t in _TRAJ_TERMS] + ["trj:sigma", "trj:last"])
TARGETS = ("increment", "residual")
SPLITS = ("train", "val", "test")
_MIN_SCALE = 1e-3  # mm: floor of the robust scales (a perfectly flat training set stays finite)
_BLOCK_VALUES = 1 << 23  # about 32 MB of float32 per row block read
_CHUNK = 4096  # samples whose features are built at once



# --------------------------------------------------------------------------------------------
# checks and small helpers
# --------------------------------------------------------------------------------------------
def parse_encodings(encodings) -> Tuple[str, ...]:
    """``"temporal,spatial"`` or a list -> canonical tuple (ENCODINGS order, no ``none``)."""
    if encodings is None:
        items: List[str] = []
    elif isinstance(encodings, str):
        items = [s for s in (t.strip().lower() for t in encodings.replace(";", ",").split(",")) if s]
    else:
        items = [str(t).strip().lower() for t in encodings]
    bad = [t for t in items if t not in ENCODINGS]
    if bad:
        raise DeformCastError(
            f"Unknown ENCODING {', '.join(repr(b) for b in bad)}; valid names: {', '.join(ENCODINGS)} "
            "(several may be combined).")
    return tuple(e for e in ENCODINGS[1:] if e in items)


def default_period(T: int, horizon: int) -> int:
    return max(int(horizon), int(math.ceil(0.1 * T)))


def validate_inputs(T: int, window: int, horizon: int, n_val: Optional[int] = None,
                    n_test: Optional[int] = None, stack: Optional[np.ndarray] = None) -> Tuple[int, int]:
    """Check that the series can be split; returns ``(n_val, n_test)`` with defaults resolved.

    Defaults are ``max(horizon, ceil(0.1 T))`` each, shrunk to ``horizon`` when the series is
    too short for 10 %. ``stack`` (optional, in memory) is also checked for being all nodata.
    """
    T, window, horizon = int(T), int(window), int(horizon)
    if window < 1:
        raise DeformCastError(f"WINDOW must be at least 1 epoch (got {window}).")
    if horizon < 1:
        raise DeformCastError(f"HORIZON must be at least 1 epoch (got {horizon}).")
    for name, v in (("validation", n_val), ("test", n_test)):
        if v is not None and int(v) < horizon:
            raise DeformCastError(
                f"The {name} period of {int(v)} epochs cannot hold one forecast of HORIZON {horizon} "
                f"epochs; give at least {horizon} {name} epochs or lower HORIZON.")
    nv = default_period(T, horizon) if n_val is None else int(n_val)
    nt = default_period(T, horizon) if n_test is None else int(n_test)
    if T - nv - nt < window + horizon:
        if n_val is None:
            nv = horizon
        if n_test is None:
            nt = horizon
    need = window + horizon + nv + nt
    if T < need:
        raise DeformCastError(
            f"Too few epochs: training needs at least {need} epochs (WINDOW {window} + HORIZON "
            f"{horizon} for one training window, + {nv} validation + {nt} test epochs); the stack "
            f"has {T}. Lower WINDOW or HORIZON, or use a longer time series.")
    if stack is not None and not np.isfinite(np.asarray(stack)).any():
        raise DeformCastError("The displacement stack is all nodata: every value is NaN or the "
                              "nodata value. Check the input file and its nodata setting.")
    return nv, nt


#: the acquisitions past the stack follow the median spacing of its last this many intervals
RECENT_INTERVALS = 30


def recent_step_days(dates) -> int:
    """The median spacing (whole days, at least 1) of the last :data:`RECENT_INTERVALS` intervals of
    ``dates``; 12 with fewer than two dates. The cadence the next acquisitions will have: a record that
    went from 6 to 12 days (Sentinel-1B's loss in December 2021) continues at 12, although 6 is the
    median of the whole record."""
    from .series import median_step_days

    d = np.asarray(dates, dtype="datetime64[D]")
    return 12 if d.size < 2 else median_step_days(d[-(RECENT_INTERVALS + 1):])


def cadence_warning(dates, tol: float = 0.25) -> Optional[str]:
    """A sentence for the log where the spacing of the acquisitions changes within the record (the
    median of its last :data:`RECENT_INTERVALS` intervals and the whole record's differ by more than
    ``tol``), None otherwise. The networks count epochs: a window and the horizon then span other
    durations in the two parts of the record."""
    d = np.asarray(dates, dtype="datetime64[D]")
    if d.size < RECENT_INTERVALS + 2:
        return None
    whole = float(np.median(np.diff(d).astype(np.int64)))
    recent = float(recent_step_days(d))
    if whole <= 0 or abs(recent / whole - 1.0) <= tol:
        return None
    return (f"The acquisitions are {whole:.0f} days apart over the record but {recent:.0f} days apart over its last "
            f"{RECENT_INTERVALS} intervals (e.g. Sentinel-1 before and after the loss of Sentinel-1B in December "
            "2021). The networks count epochs, so a window and the horizon span other durations in the two parts; "
            f"the forecast epochs follow the recent {recent:.0f}-day step. For a consistent record, regularise the "
            f"stack first (import_timeseries with REGULARISE=true and STEP_DAYS={recent:.0f}, or the main job's "
            f"REGULAR_STEP={recent:.0f}).")


def log_cadence_warning(dates, progress) -> Optional[str]:
    """:func:`cadence_warning` logged as a warning through ``progress`` (when given); returns it."""
    msg = cadence_warning(dates)
    if msg and progress is not None:
        progress.log("Warning: " + msg)
    return msg


def target_dates(dates, end_index: int, horizon: int) -> np.ndarray:
    """Dates of epochs end_index+1 .. end_index+horizon; past the stack at the recent step
    (:func:`recent_step_days`; before session 21 the whole record's median step)."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    idx = np.arange(int(end_index) + 1, int(end_index) + 1 + int(horizon))
    inside = idx < dates.size
    out = np.empty(idx.size, dtype="datetime64[D]")
    out[inside] = dates[idx[inside]]
    if (~inside).any():
        step = recent_step_days(dates)
        k = idx[~inside] - (dates.size - 1)
        out[~inside] = dates[-1] + (k * step).astype("timedelta64[D]")
    return out


def halo(config: dict) -> int:
    return int(config["neighbourhood_k"]) // 2 if "neighbourhood" in config["encodings"] else 0


def read_rows(r0: int, r1: int, height: int, config: dict) -> Tuple[int, int]:
    """Rows to read (with the neighbourhood halo) to forecast rows ``r0..r1``."""
    h = halo(config)
    return max(0, int(r0) - h), min(int(height), int(r1) + h)


def feature_names(config: dict) -> List[str]:
    enc = config["encodings"]
    names = ["disp"]
    if "temporal" in enc:
        names += ["t", "doy_sin", "doy_cos"]
    if "spatial" in enc:
        names += ["x", "y"]
        for k in range(int(config.get("fourier", 0))):
            names += [f"x_sin{k}", f"x_cos{k}", f"y_sin{k}", f"y_cos{k}"]
    if "neighbourhood" in enc:
        names += ["nb_mean", "nb_dx", "nb_dy"]
    if "covariates" in enc:
        names += [f"cov:{n}" for n in config["covariate_names"]]
    if "trajectory" in enc:
        names += list(TRAJECTORY_FEATURES)
    if "regime" in enc:
        names += list(anc.REGIME_FEATURES)
    return names


_DISP_CHANNELS = ("disp", "nb_mean", "nb_dx", "nb_dy")

def _robust_scale(a: np.ndarray, axis=None):
    a = np.abs(np.asarray(a, dtype=np.float64))
    s = 1.4826 * np.median(a, axis=axis)
    return np.maximum(np.nan_to_num(s, nan=_MIN_SCALE), _MIN_SCALE)

# --------------------------------------------------------------------------------------------
# features of windows (shared by prepare and forecast_inputs: one code path)
# --------------------------------------------------------------------------------------------
def _day_of_year(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype="datetime64[D]")
    return (d - d.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)


def _neigh_gather(block, a0, rows, cols, tt, grid_shape, k, mask_block):
    """Patch mean and gradients (n, window) by gathering each sample's k x k patch."""
    H, W = grid_shape
    r = k // 2
    off = np.arange(-r, r + 1)
    ra = rows[:, None] + off[None, :]  # absolute rows (n, k)
    ca = cols[:, None] + off[None, :]
    rin = (ra >= 0) & (ra < H) & (ra - a0 >= 0) & (ra - a0 < block.shape[1])
    cin = (ca >= 0) & (ca < W)
    rl = np.clip(ra - a0, 0, block.shape[1] - 1)
    cl = np.clip(ca, 0, W - 1)
    patch = block[tt[:, :, None, None], rl[:, None, :, None], cl[:, None, None, :]].astype(np.float32)
    hide = ~(rin[:, :, None] & cin[:, None, :])
    if mask_block is not None:
        hide = hide | mask_block[rl[:, :, None], cl[:, None, :]]
    patch[np.broadcast_to(hide[:, None, :, :], patch.shape)] = np.nan
    rel = patch - patch[:, -1:, :, :]
    ok = np.isfinite(rel)
    relz = np.where(ok, rel, np.float32(0))
    return _nb_from_sums(relz.sum(axis=(2, 3), dtype=np.float32), ok.sum(axis=(2, 3)),
                         relz[:, :, :, -1].sum(axis=2, dtype=np.float32), ok[:, :, :, -1].sum(axis=2),
                         relz[:, :, :, 0].sum(axis=2, dtype=np.float32), ok[:, :, :, 0].sum(axis=2),
                         relz[:, :, 0, :].sum(axis=2, dtype=np.float32), ok[:, :, 0, :].sum(axis=2),
                         relz[:, :, -1, :].sum(axis=2, dtype=np.float32), ok[:, :, -1, :].sum(axis=2), k)


def _neigh_block(block, a0, rows, cols, e, window, k, mask_block):
    """Same as :func:`_neigh_gather` for one end epoch, with shifted sums over the block."""
    r = k // 2
    wb = block[e - window + 1:e + 1].astype(np.float32, copy=True)  # (window, hb, W)
    if mask_block is not None:
        wb[:, mask_block] = np.nan
    rel = wb - wb[-1:]
    ok = np.isfinite(rel)
    relz = np.zeros((rel.shape[0], rel.shape[1] + 2 * r, rel.shape[2] + 2 * r), np.float32)
    okp = np.zeros(relz.shape, np.int16)
    relz[:, r:r + rel.shape[1], r:r + rel.shape[2]] = np.where(ok, rel, np.float32(0))
    okp[:, r:r + rel.shape[1], r:r + rel.shape[2]] = ok
    hb, W = rel.shape[1], rel.shape[2]

    def sh(a, dr, dc):  # a shifted so that [.., i, j] is the value at (i + dr, j + dc)
        return a[:, r + dr:r + dr + hb, r + dc:r + dc + W]

    def total(a, offsets):
        out = None
        for dr, dc in offsets:
            out = sh(a, dr, dc).copy() if out is None else out.__iadd__(sh(a, dr, dc))
        return out

    offs = range(-r, r + 1)
    groups = {"all": [(dr, dc) for dr in offs for dc in offs], "right": [(o, r) for o in offs],
              "left": [(o, -r) for o in offs], "top": [(-r, o) for o in offs], "bot": [(r, o) for o in offs]}
    lr, lc = rows - a0, cols
    res = []
    for g in ("all", "right", "left", "top", "bot"):
        res.append(total(relz, groups[g])[:, lr, lc].T)
        res.append(total(okp, groups[g])[:, lr, lc].T)
    return _nb_from_sums(*res, k)


def _nb_from_sums(s_all, c_all, s_r, c_r, s_l, c_l, s_t, c_t, s_b, c_b, k):
    def mean(s, c):
        return np.where(c > 0, s / np.maximum(c, 1).astype(np.float32), np.float32(0)), c > 0

    m, _ = mean(s_all, c_all)
    right, okr = mean(s_r, c_r)
    left, okl = mean(s_l, c_l)
    top, okt = mean(s_t, c_t)
    bot, okb = mean(s_b, c_b)
    dx = np.where(okr & okl, (right - left) / np.float32(k - 1), np.float32(0))
    dy = np.where(okt & okb, (top - bot) / np.float32(k - 1), np.float32(0))
    return m.astype(np.float32), dx.astype(np.float32), dy.astype(np.float32)


def _features(block: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, ends: np.ndarray,
              dates: np.ndarray, grid_shape: Tuple[int, int], config: dict, norm: dict,
              cov_block: Optional[Dict[str, np.ndarray]], mask_block: Optional[np.ndarray],
              same_end: bool = False, family: Optional[np.ndarray] = None, block_obj=None) -> np.ndarray:
    """X float32 (n, window, F) for pixels (rows, cols absolute) and last-input indices ``ends``.

    ``block`` holds rows ``a0..`` of the stack (all epochs needed); ``mask_block`` (same rows)
    True where neighbour values must be hidden (spatial hold-out during training).
    ``same_end``: all ``ends`` are equal (forecasting a block): the neighbourhood is computed
    with shifted sums over the whole block instead of a gather per pixel (same values up to
    float32 summation order, much faster for many pixels). ``block_obj`` (with ``same_end``): the array
    ``block`` was cut from; inside :func:`family_memo` the trajectory and regime channels of its pixels are then
    computed once for all members (:func:`_memo_at`).
    """
    window = int(config["window"])
    enc = config["encodings"]
    H, W = grid_shape
    n = rows.size
    tt = ends[:, None] - window + 1 + np.arange(window)[None, :]  # (n, window)
    lr = rows - a0
    win = block[tt, lr[:, None], cols[:, None]]  # (n, window)
    ds = np.float32(norm["disp_scale"])
    chans = [((win - win[:, -1:]) / ds)[..., None]]
    if "temporal" in enc:
        ue, inv = np.unique(ends, return_inverse=True)
        d = dates[ue[:, None] - window + 1 + np.arange(window)[None, :]]  # (n_unique, window)
        t = (years_between(d, np.datetime64(norm["date0"])) / float(norm["time_scale_years"]))
        ang = 2.0 * np.pi * _day_of_year(d) / 365.25
        tf = np.stack([t, np.sin(ang), np.cos(ang)], axis=2).astype(np.float32)
        chans.append(tf[inv])
    if "spatial" in enc:
        xn = 2.0 * (cols + 0.5) / W - 1.0
        yn = 1.0 - 2.0 * (rows + 0.5) / H
        sp = [xn, yn]
        for k in range(int(config.get("fourier", 0))):
            f = np.pi * (2.0 ** k)
            sp += [np.sin(f * xn), np.cos(f * xn), np.sin(f * yn), np.cos(f * yn)]
        sp = np.stack(sp, axis=1)  # (n, S)
        chans.append(np.broadcast_to(sp[:, None, :], (n, window, sp.shape[1])))
    if "neighbourhood" in enc:
        k = int(config["neighbourhood_k"])
        if same_end and n:
            mean, dx, dy = _neigh_block(block, a0, rows, cols, int(ends[0]), window, k, mask_block)
        else:
            mean, dx, dy = _neigh_gather(block, a0, rows, cols, tt, grid_shape, k, mask_block)
        chans += [(mean / ds)[..., None], (dx / ds)[..., None], (dy / ds)[..., None]]
    if "covariates" in enc:
        cv = []
        for name in config["covariate_names"]:
            st = norm["covariates"][name]
            v = cov_block[name][lr, cols].astype(np.float64)
            v = (v - st["mean"]) / st["std"]
            cv.append(np.where(np.isfinite(v), v, 0.0))
        cv = np.stack(cv, axis=1)
        chans.append(np.broadcast_to(cv[:, None, :], (n, window, cv.shape[1])))
    hz, st = int(config["horizon"]), config.get("steps")
    memo = same_end and n and block_obj is not None
    if "trajectory" in enc:
        if memo:
            tf = _memo_at("trajectory", lambda s: _trajectory_features(block, a0, rows[s], cols[s], ends[s], dates, hz),
                          block_obj, block, a0, rows, cols, int(ends[0]), hz)
        else:
            tf = _trajectory_features(block, a0, rows, cols, ends, dates, hz)
        chans.append(np.broadcast_to(tf[:, None, :], (n, window, tf.shape[1])))
    if "regime" in enc:
        if memo:
            rf = _memo_at("regime", lambda s: _regime_features(block, a0, rows[s], cols[s], ends[s], dates, hz,
                                                               None if family is None else family[s], st),
                          block_obj, block, a0, rows, cols, int(ends[0]), hz, st)
        else:
            rf = _regime_features(block, a0, rows, cols, ends, dates, hz, family, st)
        chans.append(np.broadcast_to(rf[:, None, :], (n, window, rf.shape[1])))
    return np.concatenate([np.asarray(c, dtype=np.float32) for c in chans], axis=2)


def auto_encodings(dates, horizon: int, validation: str = "space") -> List[str]:
    """The measured-best coding strategy for a series (issue 12): ``trajectory`` + ``regime`` where
    the series leaves at least 10 training end epochs with ``FULL_MODEL_YEARS`` of history, else
    ``regime`` alone (its classical family needs no minimum history)."""
    return ["trajectory", "regime"] if trajectory_ends(dates, horizon, validation) >= 10 else ["regime"]


def is_auto(encodings) -> bool:
    """True for an empty / ``auto`` encoding choice (the default of every entrance)."""
    if encodings is None:
        return True
    if isinstance(encodings, str):
        return encodings.strip().lower() in ("", "auto")
    return len(list(encodings)) == 0


def trajectory_ends(dates, horizon: int, validation: str = "space", n_val: Optional[int] = None,
                    n_test: Optional[int] = None) -> int:
    """How many training end epochs the ``trajectory`` encoding leaves (0: the series is too short)."""
    T = int(np.asarray(dates).size)
    nv = default_period(T, horizon) if n_val is None else int(n_val)
    nt = default_period(T, horizon) if n_test is None else int(n_test)
    last = (T - nt if validation == "space" else T - nt - nv) - 1 - int(horizon)
    return max(0, last - first_full_end(dates) + 1)


def first_full_end(dates) -> int:
    """First epoch index whose history (from the first epoch) spans FULL_MODEL_YEARS."""
    span = years_between(np.asarray(dates, dtype="datetime64[D]"), np.asarray(dates, dtype="datetime64[D]")[0])
    return int(np.searchsorted(span, FULL_MODEL_YEARS - 1e-9, side="left"))


def _trajectory_features(block: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, ends: np.ndarray,
                         dates: np.ndarray, horizon: int) -> np.ndarray:
    """The classical trajectory fit of each sample as static channels (n, 20), see the module doc.

    Full MintPy-style model (offset, velocity, acceleration, annual and semi-annual cos/sin) fitted
    on all epochs up to the sample's last input epoch; NaN where that history is shorter than
    FULL_MODEL_YEARS or has too few valid epochs (such samples are dropped / not forecast).
    """
    out = np.full((rows.size, len(TRAJECTORY_FEATURES)), np.nan, dtype=np.float32)
    lr = rows - a0
    full_from = first_full_end(dates)
    mid = max(0, (int(horizon) + 1) // 2 - 1)
    for e in np.unique(ends):
        if e < full_from:
            continue
        sel = np.flatnonzero(ends == e)
        hist = block[: e + 1, lr[sel], cols[sel]]
        t_fit = years_between(dates[: e + 1], dates[e])
        t_pred = years_between(target_dates(dates, int(e), int(horizon)), dates[e])
        coef, se, sigma, _ = fit_stats(hist, t_fit, t_pred)
        A_e = design_matrix(t_fit[-1:], 2, (1.0, 0.5))[0]          # (p,) at the last input epoch
        P = design_matrix(t_pred[[-1, mid]], 2, (1.0, 0.5)) - A_e[None]  # increments from fit(e)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = coef[1:] / se[1:]
        end_c = P[0, 1:, None] * coef[1:]                          # mm each term adds by the end
        mid_c = P[1, 1:, None] * coef[1:]
        last = hist[-1] - A_e @ coef                               # last value minus the fit there
        f = np.concatenate([z, end_c, mid_c, sigma[None], last[None]], axis=0).T
        out[sel] = np.arcsinh(f).astype(np.float32)
    return out


def _family(block: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, ends: np.ndarray,
            dates: np.ndarray, horizon: int, steps=None) -> np.ndarray:
    """The classical family of :mod:`anchors` for each sample: float32 (n, C, horizon) mm; ``steps``
    known step dates (ISO strings, ``config["steps"]``) added to its fits."""
    lr = rows - a0
    out = np.full((rows.size, len(anc.FAMILY), int(horizon)), np.nan, dtype=np.float32)
    for e in np.unique(ends):
        sel = np.flatnonzero(ends == e)
        hist = block[: e + 1, lr[sel], cols[sel]]
        f = anc.family_forecasts(hist, dates[: e + 1], target_dates(dates, int(e), int(horizon)), steps or None)
        out[sel] = np.transpose(f, (2, 0, 1))
    return out


#: the classical family per (block, origin) while :func:`family_memo` is open (None: not kept)
_MEMO: Optional[dict] = None


@contextlib.contextmanager
def family_memo():
    """Within it, :func:`family_at` keeps the classical family of each block object and origin it
    computed: the members' groups of one block (different windows and encodings, the same pixels'
    family for the regime channels and the adaptive anchor) then fit it once, not once per group.
    The blocks must not change while it is open (``member_forecasts.forecast_items`` opens it)."""
    global _MEMO
    outer = _MEMO
    if outer is None:
        _MEMO = {}
    try:
        yield
    finally:
        if outer is None:
            _MEMO = None


def family_at(block_obj, vis: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, e: int, dates: np.ndarray,
              horizon: int, steps=None) -> np.ndarray:
    """:func:`_family` of the pixels ``rows, cols`` from origin ``e`` (``vis`` = ``block_obj[:e + 1]``),
    from :func:`family_memo`'s store where it holds them (the missing pixels are fitted and added)."""
    ends = np.full(rows.size, int(e), np.int64)
    return _memo_at("family", lambda sel: _family(vis, a0, rows[sel], cols[sel], ends[sel], dates, horizon, steps),
                    block_obj, vis, a0, rows, cols, e, horizon, steps)


def _memo_at(kind: str, compute, block_obj, vis: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, e: int,
             horizon: int, steps=None) -> np.ndarray:
    """Per-pixel values ``compute(sel)`` (``sel`` indexes ``rows, cols``; (n, ...) arrays) that depend on the
    pixel's history up to origin ``e`` alone, kept in :func:`family_memo`'s store per block object, origin and
    ``kind`` while it is open: the members' groups of one block ask for the same pixels (their classical family, the
    trajectory and regime channels; session 26: the channels were computed once per member, 14 % of a gated
    ``predict``). Pixels the store lacks are computed and added."""
    everyone = np.arange(rows.size)
    if _MEMO is None or block_obj is None:
        return compute(everyone)
    key = (kind, id(block_obj), int(a0), int(e), int(horizon),
           steps if not isinstance(steps, (list, tuple)) else tuple(steps), vis.shape)
    flat = (np.asarray(rows, np.int64) - int(a0)) * vis.shape[2] + np.asarray(cols, np.int64)
    ent = _MEMO.get(key)
    if ent is None or ent[0] is not block_obj or ent[1].size == 0:
        val = compute(everyone)
        o = np.argsort(flat, kind="stable")
        _MEMO[key] = (block_obj, flat[o], val[o])   # the block is referenced: its id cannot be reused
        return val
    _, cflat, cval = ent
    pos = np.minimum(np.searchsorted(cflat, flat), cflat.size - 1)
    hit = cflat[pos] == flat
    if hit.all():
        return cval[pos]
    out = np.empty((flat.size,) + cval.shape[1:], cval.dtype)
    out[hit] = cval[pos[hit]]
    miss = ~hit
    out[miss] = compute(np.flatnonzero(miss))
    allflat, allval = np.concatenate([cflat, flat[miss]]), np.concatenate([cval, out[miss]])
    o = np.argsort(allflat, kind="stable")
    _MEMO[key] = (block_obj, allflat[o], allval[o])
    return out


def _regime_features(block: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, ends: np.ndarray,
                     dates: np.ndarray, horizon: int, family: Optional[np.ndarray] = None, steps=None) -> np.ndarray:
    """Channels of the ``regime`` encoding (n, len(anchors.REGIME_FEATURES)), asinh of mm (see
    :func:`anchors.regime_features`)."""
    if family is None:
        family = _family(block, a0, rows, cols, ends, dates, horizon, steps)
    lr = rows - a0
    out = np.full((rows.size, len(anc.REGIME_FEATURES)), np.nan, dtype=np.float32)
    mid = max(0, (int(horizon) + 1) // 2 - 1)
    for e in np.unique(ends):
        sel = np.flatnonzero(ends == e)
        hist = block[: e + 1, lr[sel], cols[sel]]
        f = anc.regime_features(hist, dates[: e + 1], np.transpose(family[sel], (1, 2, 0)), mid)
        out[sel] = np.arcsinh(f).astype(np.float32)
    return out


def _anchors(block: np.ndarray, a0: int, rows: np.ndarray, cols: np.ndarray, ends: np.ndarray,
             dates: np.ndarray, config: dict, family: Optional[np.ndarray] = None) -> np.ndarray:
    """anchor (n, horizon) mm: last input value (increment) or the classical forecast (residual):
    a baseline of :mod:`baselines`, or the ``adaptive`` combination of :mod:`anchors` with the
    weights of ``config["anchor_weights"]`` (equal weights while they are being fitted)."""
    horizon = int(config["horizon"])
    lr = rows - a0
    if config["target"] == "increment":
        last = block[ends, lr, cols]
        return np.repeat(last[:, None], horizon, axis=1).astype(np.float32)
    if config["baseline"] == "adaptive":
        if family is None:
            family = _family(block, a0, rows, cols, ends, dates, horizon, config.get("steps"))
        w = config.get("anchor_weights")
        W = anc.default_weights(horizon) if w is None else anc.check_weights(w, horizon)
        return np.einsum("ch,nch->nh", W, family.astype(np.float64)).astype(np.float32)
    out = np.full((rows.size, horizon), np.nan, dtype=np.float32)
    for e in np.unique(ends):
        sel = np.flatnonzero(ends == e)
        hist = block[: e + 1, lr[sel], cols[sel]]  # (e+1, n_e)
        yrs = config.get("baseline_years")
        start = 0 if yrs is None else int(np.searchsorted(
            dates.astype(np.int64), dates[e].astype(np.int64) - int(round(float(yrs) * 365.25))))
        f = forecast_baselines(hist, dates[: e + 1], int(e), target_dates(dates, e, horizon),
                               names=[config["baseline"]], fit_start_index=start)[config["baseline"]]
        out[sel] = f.T
    return out


#: STEPS value for dates detected in the stack (:mod:`step_detect`; the default of every entrance)
AUTO_STEPS = "auto"


def _steps(steps) -> np.ndarray:
    """Known step dates (STEPS: comma list, a CSV/TXT file of dates, or a sequence) -> datetime64[D];
    ``none`` and ``auto`` (resolved by :func:`dataset.prepare` before) give none."""
    from .baselines import parse_steps

    if steps is None or (isinstance(steps, str) and steps.strip().lower() in ("", "none", AUTO_STEPS)):
        return np.zeros(0, dtype="datetime64[D]")
    if isinstance(steps, str) or hasattr(steps, "__fspath__"):
        try:
            return parse_steps(steps)
        except DeformCastError as exc:
            raise DeformCastError(f"STEPS: {exc} Or give '{AUTO_STEPS}' (steps found in the stack) or 'none'.") from None
    return np.unique(np.asarray([np.datetime64(str(s)[:10], "D") for s in steps], dtype="datetime64[D]"))


def to_mm(y_net, anchor, norm: dict) -> np.ndarray:
    """Network output (n, horizon) -> cumulative displacement in mm (n, horizon).

    ``mm = y * target_scale * w + anchor``; ``w`` is ``norm["correction_weight"]`` (one value per
    horizon step in [0, 1], fitted on the validation windows by
    :func:`algorithms.learn.training.correction_weight` for the residual target), 1 when absent.
    """
    s = np.asarray(norm["target_scale"], dtype=np.float32)
    w = norm.get("correction_weight")
    if w is not None:
        s = s * np.asarray(w, dtype=np.float32)
    return np.asarray(y_net, dtype=np.float32) * s[None, :] + np.asarray(anchor, dtype=np.float32)


def to_net(truth_mm, anchor, norm: dict) -> np.ndarray:
    """Inverse of :func:`to_mm` without the correction weight: mm at the target epochs -> the
    network's training target."""
    s = np.asarray(norm["target_scale"], dtype=np.float32)
    return ((np.asarray(truth_mm, dtype=np.float32) - np.asarray(anchor, dtype=np.float32)) / s[None, :])


