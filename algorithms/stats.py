"""Statistics for comparing forecasting set-ups: Welch's t-test, Benjamini-Hochberg, Hedges' g.

The comparison (``compare``) asks questions such as "does TPE tuning give a lower test RMSE
than the hand-set defaults for the LSTM?" from a few independent repeats per set-up. The tools:

* **Welch's t-test** (two-sided, unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``).
  Repeats of different set-ups have visibly different spreads (a tuned model is often less
  variable than a default one), so the pooled-variance Student test is not used.
  ``t = (mean_a - mean_b) / sqrt(s_a²/n_a + s_b²/n_b)`` with the Welch–Satterthwaite degrees of
  freedom ``df = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``.
* **95 % confidence interval of the mean difference** ``mean_a - mean_b ± t_{0.975, df} · SE``
  with the same Welch SE and df (the interval that matches the test: it excludes 0 exactly when
  the unadjusted p < 0.05).
* **Hedges' g**: Cohen's d with the pooled SD, ``d = (mean_a - mean_b) / s_p``,
  ``s_p = sqrt(((n_a-1)s_a² + (n_b-1)s_b²)/(n_a+n_b-2))``, times the exact small-sample
  correction ``J = Γ(m/2) / (sqrt(m/2) Γ((m-1)/2))`` with ``m = n_a+n_b-2`` (the usual
  approximation ``1 - 3/(4m-1)`` differs from it by < 0.5 % once m >= 4). Sign convention: a
  negative g means set-up *a* has the lower value (for RMSE: *a* is better).
* **Benjamini–Hochberg** false-discovery-rate control over all pairwise tests of one
  comparison (``statsmodels.stats.multitest.multipletests(method="fdr_bh")``). The paper
  (Liu et al. 2026) reports t-tests per architecture but does not say how it handles the many
  pairs; we control the FDR at ``ALPHA`` over the whole family (TPE-vs-manual per architecture
  plus all between-architecture pairs), which is the less conservative of the standard choices
  and suits an exploratory comparison. Tests whose p-value is undefined (both groups constant)
  are left out of the family and reported as "not testable".

All functions are plain numpy/scipy/statsmodels; nothing here touches QGIS or torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .errors import DeformCastError


@dataclass
class WelchResult:
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    diff: float  #: mean_a - mean_b
    t: float
    df: float
    p: float
    ci_low: float  #: 95 % CI (or ``1 - ci`` as asked) of mean_a - mean_b, Welch df
    ci_high: float
    hedges_g: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def _clean(x: Sequence[float], what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if a.size < 2:
        raise DeformCastError(
            f"{what}: needs at least 2 finite values for a t-test, got {a.size}. "
            "Increase REPEATS to 2 or more (3-5 give useful power).")
    return a


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g of ``a`` minus ``b`` (pooled SD, exact small-sample correction)."""
    a = _clean(a, "Hedges' g (first group)")
    b = _clean(b, "Hedges' g (second group)")
    na, nb = a.size, b.size
    m = na + nb - 2
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / m
    diff = a.mean() - b.mean()
    if sp2 <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    d = diff / math.sqrt(sp2)
    j = math.exp(math.lgamma(m / 2.0) - math.lgamma((m - 1) / 2.0)) / math.sqrt(m / 2.0)
    return float(j * d)


def welch(a: Sequence[float], b: Sequence[float], ci: float = 0.95) -> WelchResult:
    """Welch's two-sided t-test of ``a`` vs ``b`` with the CI of the mean difference and Hedges' g."""
    from scipy import stats as sst

    a = _clean(a, "Welch test (first group)")
    b = _clean(b, "Welch test (second group)")
    na, nb = a.size, b.size
    va, vb = a.var(ddof=1), b.var(ddof=1)
    diff = float(a.mean() - b.mean())
    se2 = va / na + vb / nb
    if se2 > 0:
        res = sst.ttest_ind(a, b, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
        df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        half = float(sst.t.ppf(0.5 + ci / 2.0, df)) * math.sqrt(se2)
        lo, hi = diff - half, diff + half
    else:  # both groups constant: no test possible
        t = p = df = float("nan")
        lo = hi = diff
    return WelchResult(na, nb, float(a.mean()), float(b.mean()), float(math.sqrt(va)), float(math.sqrt(vb)),
                       diff, t, float(df), p, float(lo), float(hi), hedges_g(a, b))


def bh_adjust(pvalues: Sequence[float], alpha: float = 0.05) -> Tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg over the finite p-values: ``(reject, p_adjusted)``.

    NaN p-values (untestable pairs) stay NaN and are never rejected; they do not count in the
    family size.
    """
    if not (0.0 < float(alpha) < 1.0):
        raise DeformCastError(f"ALPHA must be between 0 and 1 (e.g. 0.05), got {alpha}.")
    p = np.asarray(pvalues, dtype=float).ravel()
    reject = np.zeros(p.size, dtype=bool)
    adj = np.full(p.size, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        rej, padj, _, _ = multipletests(p[ok], alpha=float(alpha), method="fdr_bh")
        reject[ok] = rej
        adj[ok] = padj
    return reject, adj


def pairwise(groups: Dict[str, Sequence[float]], pairs: Sequence[Tuple[str, str]], alpha: float = 0.05,
             family: str = "") -> List[Dict[str, object]]:
    """Welch tests for ``pairs`` of named groups, BH-adjusted together; one row dict per pair."""
    rows: List[Dict[str, object]] = []
    for ga, gb in pairs:
        r = welch(groups[ga], groups[gb])
        row: Dict[str, object] = {"family": family, "group_a": ga, "group_b": gb}
        row.update(r.as_dict())
        rows.append(row)
    reject, adj = bh_adjust([r["p"] for r in rows], alpha) if rows else (np.array([]), np.array([]))
    for i, row in enumerate(rows):
        row["p_bh"] = float(adj[i])
        row["significant_bh"] = bool(reject[i])
    return rows


def describe(row: Dict[str, object], metric: str = "test RMSE", unit: str = "mm", alpha: float = 0.05) -> str:
    """One sentence in words for a pairwise row of :func:`pairwise`."""
    a, b = row["group_a"], row["group_b"]
    diff = float(row["diff"])
    if not np.isfinite(float(row["p"])):
        return (f"{a} vs {b}: not testable (both groups have no spread); means "
                f"{row['mean_a']:.3f} and {row['mean_b']:.3f} {unit}.")
    better = a if diff < 0 else b
    verdict = ("survives" if row["significant_bh"] else "does not survive")
    return (f"{a} vs {b}: mean {metric} {row['mean_a']:.3f} vs {row['mean_b']:.3f} {unit} "
            f"(difference {diff:+.3f} {unit}, 95% CI [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], "
            f"Hedges' g {row['hedges_g']:+.2f}); lower for {better}; Welch p = {row['p']:.3g}, "
            f"BH-adjusted p = {row['p_bh']:.3g}: the difference {verdict} FDR control at "
            f"alpha = {alpha:g}.")
