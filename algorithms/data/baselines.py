"""Classical per-pixel forecasts: the honest baselines every model is compared with.

All baselines are fitted per pixel by least squares on the epochs up to ``fit_end_index``
(inclusive) and evaluated at the forecast dates; everything is vectorised over pixels (one
pseudo-inverse for the pixels with complete series, batched normal equations for pixels with
gaps), no Python loop per pixel.

Baselines (``BASELINES``):

* ``persistence``: the last valid value before or at ``fit_end_index`` (no motion).
* ``linear``: offset + velocity fitted on all fit epochs.
* ``linear_recent``: the same on the last ``recent_years`` (default 2) years only.
* ``trajectory``: the MintPy-style time function (``mintpy.utils.time_func``, model
  ``{'polynomial': 2, 'periodic': [1.0, 0.5]}``): offset + velocity + acceleration (polynomial
  terms t^i / i!, t in years) + annual and semi-annual cos/sin, fitted on all fit epochs.
* ``trajectory_recent``: the same on the last ``recent_years`` years only.
* ``trajectory_ensemble``: the mean of trajectory fits on the last 1, 2 and 3 years (and all
  epochs); averaging fits with different memory cuts the variance of the extrapolated
  acceleration and seasonal terms. On the built-in synthetic scene (seeds 0-2, the 12 epochs
  after the last acquisition, RMSE against the noise-free truth) it scored 2.16 / 2.12 / 2.30 mm,
  behind ``trajectory`` on all epochs (2.00 / 1.87 / 2.03 mm): that scene's motions follow
  smooth laws over the whole record, where the longest fit wins. Real series with changes of
  regime may favour the ensemble; both are always reported.

Terms are dropped when the fit period is too short to determine them (our choice; MintPy
leaves this to the user): a fit spanning < 0.95 years is linear only (annual terms alias with
the trend); 0.95 to < 1.9 years adds annual + semi-annual but no acceleration; >= 1.9 years is
the full model. A pixel with fewer valid epochs than parameters gets NaN. Time is in years
(365.25 days) from the last fit epoch, which keeps the normal equations well conditioned.

Optional event terms (``time_function=``, a :class:`TimeFunction`; MintPy's ``stepDate``,
``exp`` and ``log`` model keys, onsets given as dates, ``tau`` in days) are added to every fitted
baseline (``linear*`` and ``trajectory*``; ``persistence`` is unchanged), after the polynomial and
periodic columns: a step ``H(t - t_s)`` (1 on and after the step date, 0 before), an exponential
relaxation ``(1 - exp(-(t - T)/tau)) H(t - T)`` and a logarithmic one ``log(1 + (t - T)/tau)
H(t - T)``. Each fit keeps only the terms its epochs can determine, i.e. whose column is zero on
at least one fit epoch and non-zero on at least one: a step needs a fit epoch before its date and
one on/after it, an exp/log term an epoch on/before its onset and one after it. A term with all
its fit epochs on one side (onset before the first fit epoch or at/after the last one) is dropped
from that fit (our choice: a step's column would be constant, confounded with the offset, or all
zero; an exp/log term begun before the fit window is dropped too, although its decaying tail
still bends the series there: give the fit a window that contains the onset). In particular an event after the last fit epoch contributes nothing to the forecast, even when it
falls inside the forecast period (its amplitude is unknown). Each member of a recent-window fit
and of ``trajectory_ensemble`` applies the rule to its own epochs; a pixel whose gaps leave a
kept term undetermined gets the pseudo-inverse's minimum-norm fit (e.g. a step with no valid
epoch after it adds 0). ``time_function=None`` (or one without terms) gives bit-identical
results to the fit without it.

A time function may also weigh the acquisitions (``TimeFunction.date_weights``: ``(date, weight)`` pairs,
unlisted dates weigh 1): every fit is then weighted least squares. The classical family of
:mod:`anchors` takes the inverse noise variance of each date measured on the stack
(:mod:`date_weights`); the baselines of the reports keep ordinary least squares.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DeformCastError

BASELINES = ("persistence", "linear", "linear_recent", "trajectory", "trajectory_recent",
             "trajectory_ensemble")
ENSEMBLE_YEARS = (1.0, 2.0, 3.0, None)  # None = all fit epochs
_PIXEL_CHUNK = 65536
#: each pixel's normal equations are solved with their inverse where its 1-norm condition number stays below this
#: (:func:`normal_inverse`); the others, singular ones included, with the pseudo-inverse
COND_MAX = 1e8


def years_between(dates, ref) -> np.ndarray:
    """(dates - ref) in years of 365.25 days, float64."""
    d = np.asarray(dates, dtype="datetime64[D]").astype("int64")
    return (d - np.datetime64(ref, "D").astype("int64")) / 365.25


def design_matrix(t_years: np.ndarray, polynomial: int = 2, periods: Sequence[float] = (1.0, 0.5),
                  steps: Sequence[float] = (), exps: Sequence[Tuple[float, float]] = (),
                  logs: Sequence[Tuple[float, float]] = ()) -> np.ndarray:
    """MintPy-style design matrix, columns in this order:
    ``[1, t, t^2/2!, ..., cos(2 pi t/P), sin(2 pi t/P) ..., steps ..., exps ..., logs ...]``.

    ``steps``: step times (years, same origin as ``t_years``), column ``H(t - t_s)`` (1 at and
    after the step). ``exps`` / ``logs``: ``(onset_years, tau_years)`` pairs, columns
    ``(1 - exp(-(t - onset)/tau)) H(t - onset)`` and ``log(1 + (t - onset)/tau) H(t - onset)``
    (both 0 at and before the onset). No term is dropped here (see :meth:`TimeFunction.terms`).
    """
    t = np.asarray(t_years, dtype=np.float64)
    cols = [np.ones_like(t)]
    fact = 1.0
    for i in range(1, int(polynomial) + 1):
        fact *= i
        cols.append(t ** i / fact)
    for p in periods:
        w = 2.0 * np.pi / float(p)
        cols.append(np.cos(w * t))
        cols.append(np.sin(w * t))
    for ts in steps:
        cols.append((t >= float(ts)).astype(np.float64))
    for onset, tau in exps:
        dt = np.maximum(t - float(onset), 0.0)  # 0 before the onset: no overflow, no H needed
        cols.append(-np.expm1(-dt / _positive_tau(tau)))
    for onset, tau in logs:
        dt = np.maximum(t - float(onset), 0.0)
        cols.append(np.log1p(dt / _positive_tau(tau)))
    return np.stack(cols, axis=1)


def _positive_tau(tau) -> float:
    tau = float(tau)
    if not (np.isfinite(tau) and tau > 0):
        raise DeformCastError(f"The characteristic time tau of an exp/log term must be > 0, got {tau}.")
    return tau


# --------------------------------------------------------------------------- event time functions

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YYYYMMDD = re.compile(r"^\d{8}$")


def _to_day(x, where: str = "") -> np.datetime64:
    """One date (datetime64, datetime.date, 'YYYY-MM-DD' or MintPy's 'YYYYMMDD') -> datetime64[D]."""
    if isinstance(x, np.datetime64):
        if np.isnat(x):
            raise DeformCastError(f"NaT is not a date{where}: use YYYY-MM-DD.")
        return x.astype("datetime64[D]")
    if isinstance(x, bytes):
        x = x.decode("utf-8", "replace")
    if isinstance(x, str):
        txt = x.strip()
        if _YYYYMMDD.match(txt):
            txt = f"{txt[:4]}-{txt[4:6]}-{txt[6:]}"
        if _ISO.match(txt):
            try:
                return np.datetime64(txt, "D")
            except ValueError:
                pass
        raise DeformCastError(f"'{x}' is not a date{where}: use YYYY-MM-DD (e.g. 2019-05-01).")
    try:
        d = np.datetime64(x, "D")
    except (TypeError, ValueError):
        raise DeformCastError(f"{x!r} is not a date{where}: use YYYY-MM-DD (e.g. 2019-05-01).") from None
    if np.isnat(d):
        raise DeformCastError(f"NaT is not a date{where}: use YYYY-MM-DD.")
    return d


def _onset_taus(spec, what: str) -> Tuple[Tuple[np.datetime64, float], ...]:
    """{onset: tau_days or [tau_days, ...]} (MintPy) or [(onset, tau_days), ...] -> sorted unique pairs."""
    if spec is None:
        return ()
    pairs = []
    items = spec.items() if isinstance(spec, dict) else spec
    for item in items:
        try:
            onset, taus = item
        except (TypeError, ValueError):
            raise DeformCastError(f"Each {what} term needs an onset date and a tau in days, e.g. "
                                  f"{{'2019-05-01': [60]}} or [('2019-05-01', 60)]; got {item!r}.") from None
        for tau in np.atleast_1d(np.asarray(taus, dtype=np.float64)).ravel():
            if not (np.isfinite(tau) and tau > 0):
                raise DeformCastError(f"The tau of the {what} term at {onset} must be > 0 days, got {tau}.")
            pairs.append((_to_day(onset, f" ({what} onset)"), float(tau)))
    return tuple(sorted(set(pairs)))


@dataclass(frozen=True)
class TimeFunction:
    """Event terms of the MintPy time function, in dates (see the module doc).

    ``step_dates``: dates of steps (MintPy ``stepDate``; a string goes through
    :func:`parse_steps`); ``exp`` / ``log``: ``(onset date, tau
    days)`` pairs or MintPy's ``{onset: [tau_days, ...]}``. Dates may be datetime64, date objects,
    'YYYY-MM-DD' or 'YYYYMMDD' strings; all are normalised to sorted, de-duplicated tuples of
    datetime64[D] (and float tau), so the column order is: steps, exps, logs, each by date.
    """

    step_dates: Tuple[np.datetime64, ...] = ()
    exp: Tuple[Tuple[np.datetime64, float], ...] = ()
    log: Tuple[Tuple[np.datetime64, float], ...] = ()
    #: ``(date, weight)`` pairs: each acquisition's weight in every fit (inverse noise variance,
    #: :mod:`date_weights`); dates not listed weigh 1. Empty: ordinary least squares.
    date_weights: Tuple[Tuple[np.datetime64, float], ...] = ()

    def __post_init__(self):
        steps = self.step_dates
        if steps is None:
            steps = ()
        elif isinstance(steps, (str, os.PathLike)):
            steps = parse_steps(steps)  # "2019-05-01, 2020-01-15" or a file of dates
        elif isinstance(steps, (bytes, np.datetime64)):
            steps = (steps,)
        steps = tuple(sorted({_to_day(d, " (step date)") for d in np.asarray(steps, dtype=object).ravel()}))
        object.__setattr__(self, "step_dates", steps)
        object.__setattr__(self, "exp", _onset_taus(self.exp, "exp"))
        object.__setattr__(self, "log", _onset_taus(self.log, "log"))
        dw = self.date_weights
        pairs = dw.items() if isinstance(dw, dict) else (dw or ())
        clean = {}
        for d, w in pairs:
            w = float(w)
            if not (np.isfinite(w) and w > 0):
                raise DeformCastError(f"Date weight {w!r} at {d}: weights must be positive numbers.")
            clean[_to_day(d, " (date weight)")] = w
        object.__setattr__(self, "date_weights", tuple(sorted(clean.items())))

    def __bool__(self) -> bool:
        """True when the time function changes a fit: event terms or date weights."""
        return bool(len(self)) or bool(self.date_weights)

    def weights_at(self, ref, t_fit: np.ndarray) -> Optional[np.ndarray]:
        """The weight of each fit epoch (``t_fit`` in years from ``ref``), or None without date weights."""
        if not self.date_weights:
            return None
        ref = _to_day(ref, " (reference date)")
        days = ref + np.rint(np.asarray(t_fit, dtype=np.float64) * 365.25).astype("timedelta64[D]")
        keys = np.array([d for d, _ in self.date_weights], dtype="datetime64[D]")
        vals = np.array([w for _, w in self.date_weights], dtype=np.float64)
        i = np.clip(np.searchsorted(keys, days), 0, keys.size - 1)
        return np.where(keys[i] == days, vals[i], 1.0)

    def with_date_weights(self, pairs) -> "TimeFunction":
        """The same event terms with ``pairs`` (``(date, weight)`` or a dict) as date weights."""
        return TimeFunction(step_dates=self.step_dates, exp=self.exp, log=self.log, date_weights=pairs or ())

    @classmethod
    def from_mintpy(cls, model: dict) -> "TimeFunction":
        """From a MintPy model dict (``stepDate``, ``exp``, ``log``; ``polynomial`` and
        ``periodic`` are ignored: the baselines choose those from the fit span)."""
        return cls(step_dates=model.get("stepDate", ()) or (), exp=model.get("exp") or (),
                   log=model.get("log") or ())

    def __len__(self) -> int:
        """Number of event terms (columns) before dropping."""
        return len(self.step_dates) + len(self.exp) + len(self.log)

    def terms(self, ref, t_fit: Optional[np.ndarray] = None) -> Dict[str, tuple]:
        """The terms in years relative to ``ref`` as ``design_matrix`` keywords
        ``{'steps': ..., 'exps': ..., 'logs': ...}``; with ``t_fit`` (fit epochs, years from
        ``ref``) only those that fit can determine (the dropping rule of the module doc)."""
        ref = _to_day(ref, " (reference date)")
        steps = [float(years_between(d, ref)) for d in self.step_dates]
        exps = [(float(years_between(d, ref)), tau / 365.25) for d, tau in self.exp]
        logs = [(float(years_between(d, ref)), tau / 365.25) for d, tau in self.log]
        if t_fit is not None:
            t = np.asarray(t_fit, dtype=np.float64)
            if t.size == 0:
                steps, exps, logs = [], [], []
            else:
                lo, hi = float(t.min()), float(t.max())
                steps = [s for s in steps if lo < s <= hi]              # an epoch before and one on/after
                exps = [(o, tau) for o, tau in exps if lo <= o < hi]    # an epoch on/before and one after
                logs = [(o, tau) for o, tau in logs if lo <= o < hi]
        return {"steps": tuple(steps), "exps": tuple(exps), "logs": tuple(logs)}


TimeFunctionLike = Union[None, TimeFunction, dict, Sequence]


def as_time_function(spec: TimeFunctionLike) -> Optional[TimeFunction]:
    """None / TimeFunction / MintPy model dict (``stepDate``, ``exp``, ``log``; or the field names
    ``step_dates``, ``exp``, ``log``) / a sequence of step dates -> TimeFunction or None (no terms)."""
    if spec is None:
        return None
    if isinstance(spec, TimeFunction):
        tf = spec
    elif isinstance(spec, dict):
        unknown = set(spec) - {"stepDate", "step_dates", "exp", "log", "polynomial", "periodic"}
        if unknown:
            raise DeformCastError(f"Unknown time-function key(s) {sorted(unknown)}; use stepDate, exp, log.")
        tf = TimeFunction(step_dates=spec.get("stepDate", spec.get("step_dates", ())) or (),
                          exp=spec.get("exp") or (), log=spec.get("log") or ())
    else:
        tf = TimeFunction(step_dates=spec)
    return tf if tf else None


def _event_terms(time_function: TimeFunctionLike, ref, t_fit: np.ndarray) -> Dict[str, tuple]:
    tf = as_time_function(time_function)
    if tf is None:
        return {}
    if ref is None:
        raise DeformCastError("A time function needs ref, the date where t_fit / t_pred are 0.")
    return tf.terms(ref, t_fit)


def parse_steps(text) -> np.ndarray:
    """Step dates from ``"2019-05-01, 2020-01-15"`` (commas, semicolons or blanks) or from the
    path of a CSV/TXT file with one date per line (first field of each line; an optional header
    line; '#' starts a comment). Dates are YYYY-MM-DD (MintPy's YYYYMMDD is accepted too).
    Returns sorted unique datetime64[D] (empty for empty text)."""
    if text is None:
        return np.array([], dtype="datetime64[D]")
    src = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    stripped = src.strip()
    looks_like_file = isinstance(text, os.PathLike) or stripped.lower().endswith((".csv", ".txt"))
    days = []
    if stripped and (looks_like_file or os.path.isfile(stripped)):
        if not os.path.isfile(stripped):
            raise DeformCastError(f"Step-date file '{stripped}' not found: give an existing CSV/TXT file "
                                  "or the dates themselves, e.g. 2019-05-01, 2020-01-15.")
        try:
            with open(stripped, encoding="utf-8-sig") as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DeformCastError(f"Cannot read step-date file '{stripped}' ({exc}): give a text file "
                                  "with one YYYY-MM-DD date per line.") from None
        first = True
        for no, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            field = re.split(r"[,;\t ]", line, maxsplit=1)[0].strip().strip('"\'')
            if first and not field[:1].isdigit():
                first = False
                continue  # header line (e.g. "date")
            first = False
            days.append(_to_day(field, f" (line {no} of {stripped})"))
    else:
        for tok in re.split(r"[,;\s]+", stripped):
            tok = tok.strip().strip('"\'')
            if tok:
                days.append(_to_day(tok))
    return np.unique(np.array(days, dtype="datetime64[D]"))


def terms_for_span(span_years: float, full: bool = True) -> Tuple[int, Tuple[float, ...]]:
    """(polynomial degree, periods) the fit period can determine (see module doc)."""
    if not full or span_years < 0.95:
        return 1, ()
    if span_years < 1.9:
        return 1, (1.0, 0.5)
    return 2, (1.0, 0.5)


def epoch_weights(time_function: TimeFunctionLike, ref, t_fit: np.ndarray) -> Optional[np.ndarray]:
    """Each fit epoch's weight from the time function's date weights (None: ordinary least squares)."""
    tf = as_time_function(time_function)
    if tf is None or not tf.date_weights:
        return None
    if ref is None:
        raise DeformCastError("Date weights need ref, the date where t_fit / t_pred are 0.")
    return tf.weights_at(ref, t_fit)


def fit_operator(A: np.ndarray, wt: Optional[np.ndarray]) -> np.ndarray:
    """The (p, T) least-squares operator of design ``A``: ``pinv(A)``, or with epoch weights ``wt``
    ``pinv(sqrt(W) A) sqrt(W)`` (the weights folded into it, not into the series)."""
    if wt is None:
        return np.linalg.pinv(A)
    sw = np.sqrt(wt)
    return np.linalg.pinv(A * sw[:, None]) * sw[None]


def normal_inverse(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(n, p, p): the inverse of each pixel's normal matrix ``A' diag(w[:, i]) A`` (``A`` (T, p), ``w`` (T, n) the
    epochs' weights, 0 at gaps), or its pseudo-inverse where the matrix is singular or its 1-norm condition number is
    :data:`COND_MAX` or more (a pixel whose gaps leave a term of the design undetermined). Session 48: the
    three-operand ``einsum`` and the batched SVD of ``pinv`` took 190 of the 309 s of a re-gated run on a stack with
    gaps at 70 % of its pixels; the normal matrices from a two-operand product and their inverses by LU take a
    twentieth of that (docs/benchmarks.md, "Session 48"). Each pixel's values are its own: the same in any chunk of
    pixels."""
    p = A.shape[1]
    pairs = (A[:, :, None] * A[:, None, :]).reshape(A.shape[0], p * p)
    ata = np.einsum("tn,tk->nk", w, pairs).reshape(-1, p, p)
    inv = np.full_like(ata, np.nan)
    try:
        inv[:] = np.linalg.inv(ata)
    except np.linalg.LinAlgError:       # exactly singular matrices in the chunk (a pixel's gaps): those by pinv
        regular = np.abs(np.linalg.det(ata)) > 0
        try:
            inv[regular] = np.linalg.inv(ata[regular])
        except np.linalg.LinAlgError:
            return np.linalg.pinv(ata)
    with np.errstate(invalid="ignore", over="ignore"):
        cond = np.abs(ata).sum(axis=1).max(axis=-1) * np.abs(inv).sum(axis=1).max(axis=-1)
    bad = ~(cond < COND_MAX)        # NaN (the singular ones) included
    if bad.any():
        inv[bad] = np.linalg.pinv(ata[bad])
    return inv


def _system(values, t_fit, t_pred, polynomial: int, periods, time_function, ref):
    """``(values float64 (T, N), design at t_fit, design at t_pred)`` of a per-pixel fit, with the event
    terms the fit epochs can determine."""
    ev = _event_terms(time_function, ref, t_fit)
    return (np.asarray(values, dtype=np.float64), design_matrix(t_fit, polynomial, periods, **ev),
            design_matrix(t_pred, polynomial, periods, **ev))


def fit_predict(values: np.ndarray, t_fit: np.ndarray, t_pred: np.ndarray, polynomial: int,
                periods: Sequence[float], time_function: TimeFunctionLike = None, ref=None) -> np.ndarray:
    """Least-squares fit of the time function per pixel and its value at ``t_pred``.

    ``values`` (T, N) with NaN gaps; returns float64 (len(t_pred), N), NaN where a pixel has
    fewer valid epochs than parameters. ``time_function`` adds the event terms the fit epochs can
    determine (module doc); ``ref`` is then the date where ``t_fit`` / ``t_pred`` are 0.
    """
    y, A, P = _system(values, t_fit, t_pred, polynomial, periods, time_function, ref)
    wt = epoch_weights(time_function, ref, t_fit)
    p = A.shape[1]
    n = y.shape[1]
    out = np.full((P.shape[0], n), np.nan)
    if n == 0 or y.shape[0] == 0:
        return out
    finite = np.isfinite(y)
    full = finite.all(axis=0)
    if full.all() and y.shape[0] >= p:     # no gap (the usual case): no copy of the series
        out[:] = P @ (fit_operator(A, wt) @ y)
        return out
    if full.any() and y.shape[0] >= p:
        coef = fit_operator(A, wt) @ y[:, full]
        out[:, full] = P @ coef
    part = np.flatnonzero(~full)
    if part.size:
        for s in range(0, part.size, _PIXEL_CHUNK):
            idx = part[s:s + _PIXEL_CHUNK]
            w = finite[:, idx].astype(np.float64)
            if wt is not None:
                w *= wt[:, None]
            yy = np.where(finite[:, idx], y[:, idx], 0.0)
            ok = finite[:, idx].sum(axis=0) >= p
            if not ok.any():
                continue
            idx, w, yy = idx[ok], w[:, ok], yy[:, ok]
            aty = np.einsum("tp,tn->np", A, yy * w)
            coef = np.einsum("npq,nq->np", normal_inverse(A, w), aty)
            out[:, idx] = P @ coef.T
    return out


def fit_stats(values: np.ndarray, t_fit: np.ndarray, t_pred: np.ndarray, polynomial: int = 2,
              periods: Sequence[float] = (1.0, 0.5), time_function: TimeFunctionLike = None, ref=None):
    """Least-squares fit per pixel with its statistics: ``(coef (p, N), se (p, N), sigma (N,),
    pred (len(t_pred), N))``, float64. ``sigma`` is the residual standard deviation (n - p degrees
    of freedom), ``se`` the coefficients' standard errors ``sigma sqrt(diag((A'WA)^-1))``. NaN for
    pixels with fewer than ``p + 1`` valid epochs. With ``time_function`` (and ``ref``, the date
    where ``t_fit`` is 0) the rows of the kept event terms, ``TimeFunction.terms(ref, t_fit)``,
    follow the polynomial and periodic rows."""
    y, A, P = _system(values, t_fit, t_pred, polynomial, periods, time_function, ref)
    wt = epoch_weights(time_function, ref, t_fit)
    if wt is not None:     # weights of mean 1, so sigma is in the series' units
        wt = wt / wt.mean()
    p = A.shape[1]
    n = y.shape[1]
    coef = np.full((p, n), np.nan)
    se = np.full((p, n), np.nan)
    sigma = np.full(n, np.nan)
    finite = np.isfinite(y)
    full = finite.all(axis=0)
    if full.any() and y.shape[0] > p:
        Aw = A if wt is None else A * wt[:, None]
        inv = np.linalg.pinv(Aw.T @ A)
        yf = y if full.all() else y[:, full]       # no gap (the usual case): no copy of the series
        c = inv @ (Aw.T @ yf)
        r = yf - A @ c
        rw = r * r if wt is None else r * r * wt[:, None]
        sg = np.sqrt(rw.sum(axis=0) / (y.shape[0] - p))
        coef[:, full], sigma[full] = c, sg
        se[:, full] = np.sqrt(np.clip(np.diag(inv), 0, None))[:, None] * sg[None]
    part = np.flatnonzero(~full)
    for s0 in range(0, part.size, _PIXEL_CHUNK):
        idx = part[s0:s0 + _PIXEL_CHUNK]
        m = finite[:, idx].astype(np.float64)
        nv = m.sum(axis=0)
        ok = nv > p
        if not ok.any():
            continue
        idx, m, nv = idx[ok], m[:, ok], nv[ok]
        w = m if wt is None else m * wt[:, None]
        yy = np.where(finite[:, idx], y[:, idx], 0.0)
        inv = normal_inverse(A, w)
        c = np.einsum("npq,nq->np", inv, np.einsum("tp,tn->np", A, yy * w))  # (n, p)
        r = (yy - (A @ c.T)) * m
        r = r * r if wt is None else r * r * w
        sg = np.sqrt(r.sum(axis=0) / (nv - p))
        coef[:, idx], sigma[idx] = c.T, sg
        se[:, idx] = (np.sqrt(np.clip(np.einsum("npp->np", inv), 0, None)) * sg[:, None]).T
    return coef, se, sigma, P @ coef


def last_valid(values: np.ndarray) -> np.ndarray:
    """Last finite value along axis 0 of (T, N); NaN where none."""
    y = np.asarray(values)
    finite = np.isfinite(y)
    T = y.shape[0]
    idx = T - 1 - np.argmax(finite[::-1], axis=0)
    out = y[idx, np.arange(y.shape[1])].astype(np.float64)
    out[~finite.any(axis=0)] = np.nan
    return out


def _nanmean0(a: np.ndarray) -> np.ndarray:
    """NaN-mean over axis 0 without the empty-slice warning (all NaN -> NaN)."""
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    tot = np.where(ok, a, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, tot / np.maximum(n, 1), np.nan)


def _recent_start(dates: np.ndarray, fit_end_index: int, years: Optional[float], fit_start_index: int) -> int:
    if years is None:
        return fit_start_index
    cutoff = dates[fit_end_index].astype("int64") - int(round(years * 365.25))
    start = int(np.searchsorted(dates.astype("int64"), cutoff, side="left"))
    return max(fit_start_index, start)


def _trajectory(values, dates, start, end, horizon_dates, full=True, time_function=None):
    fd = dates[start:end + 1]
    t_fit = years_between(fd, dates[end])
    t_pred = years_between(horizon_dates, dates[end])
    span = float(t_fit[-1] - t_fit[0]) if t_fit.size else 0.0
    deg, periods = terms_for_span(span, full)
    return fit_predict(values[start:end + 1], t_fit, t_pred, deg, periods, time_function, dates[end])


def forecast_baselines(stack: np.ndarray, dates, fit_end_index: int, horizon_dates,
                       names: Optional[Iterable[str]] = None, recent_years: float = 2.0,
                       fit_start_index: int = 0,
                       time_function: TimeFunctionLike = None) -> Dict[str, np.ndarray]:
    """Classical forecasts per pixel.

    ``stack`` (T, N) or (T, H, W) mm with NaN gaps; fitted on epochs
    ``fit_start_index..fit_end_index`` (inclusive); returns ``{name: float32 (H_f, ...)}`` with
    the pixel shape of ``stack`` and ``H_f = len(horizon_dates)``. ``time_function``
    (:class:`TimeFunction`, a MintPy model dict or a sequence of step dates; None = none) adds
    step / exp / log terms to every fitted baseline of every pixel, see the module doc
    (:func:`step_detect.baselines_where_steps_show`: a step date only where a pixel shows the step).
    """
    tf = as_time_function(time_function)
    names = list(BASELINES if names is None else names)
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise DeformCastError(f"Unknown baseline(s) {bad}; valid names: {', '.join(BASELINES)}.")
    a = np.asarray(stack)
    dates = np.asarray(dates, dtype="datetime64[D]")
    if a.shape[0] != dates.size:
        raise DeformCastError(f"The stack has {a.shape[0]} epochs but {dates.size} dates were given.")
    end = int(fit_end_index)
    if not 0 <= end < dates.size:
        raise DeformCastError(f"fit_end_index {end} is outside the {dates.size} epochs of the stack.")
    hd = np.atleast_1d(np.asarray(horizon_dates, dtype="datetime64[D]"))
    pix_shape = a.shape[1:]
    y = a.reshape(a.shape[0], -1)
    return {n: v.reshape((hd.size,) + pix_shape)
            for n, v in _baselines(y, dates, end, hd, names, recent_years, fit_start_index, tf).items()}


def _baselines(y: np.ndarray, dates, end: int, hd, names, recent_years, fit_start_index, tf) -> Dict[str, np.ndarray]:
    """The forecasts of :func:`forecast_baselines` for (T, N) values, one time function for every pixel."""
    out: Dict[str, np.ndarray] = {}
    for name in names:
        if name == "persistence":
            lv = last_valid(y[fit_start_index:end + 1])
            f = np.broadcast_to(lv, (hd.size, y.shape[1]))
        elif name in ("linear", "linear_recent"):
            s = _recent_start(dates, end, recent_years if name.endswith("recent") else None, fit_start_index)
            f = _trajectory(y, dates, s, end, hd, full=False, time_function=tf)
        elif name in ("trajectory", "trajectory_recent"):
            s = _recent_start(dates, end, recent_years if name.endswith("recent") else None, fit_start_index)
            f = _trajectory(y, dates, s, end, hd, time_function=tf)
        else:  # trajectory_ensemble
            starts = sorted({_recent_start(dates, end, yrs, fit_start_index) for yrs in ENSEMBLE_YEARS})
            members = [_trajectory(y, dates, s, end, hd, time_function=tf) for s in starts]
            f = _nanmean0(np.stack(members))
        out[name] = np.asarray(f, dtype=np.float32).reshape(hd.size, y.shape[1])
    return out
