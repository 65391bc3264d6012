"""Welch / Benjamini-Hochberg / Hedges' g checked against formulas written out by hand."""
import math

import numpy as np
import pytest

from deformcast.algorithms import stats
from deformcast.algorithms.errors import DeformCastError

A = [2.31, 2.05, 2.48, 2.20, 2.39]
B = [1.71, 1.92, 1.64, 1.88]


def _hand_welch(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se = math.sqrt(va / na + vb / nb)
    t = (ma - mb) / se
    # Welch–Satterthwaite
    df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    # two-sided p from the Student t CDF via the regularised incomplete beta function:
    # P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2)
    from scipy.special import betainc

    p = betainc(df / 2.0, 0.5, df / (df + t * t))
    return ma - mb, t, df, p, se


def test_welch_matches_hand_formulas():
    diff, t, df, p, se = _hand_welch(A, B)
    r = stats.welch(A, B)
    assert r.diff == pytest.approx(diff, rel=1e-12)
    assert r.t == pytest.approx(t, rel=1e-10)
    assert r.df == pytest.approx(df, rel=1e-10)
    assert r.p == pytest.approx(p, rel=1e-8)
    # hand numbers for this fixed input (computed once from the formulas above)
    # mean A = 11.43/5 = 2.286, mean B = 7.15/4 = 1.7875; s²_A = 0.02803, s²_B = 0.0179583
    assert r.diff == pytest.approx(0.4985, abs=1e-12)
    assert r.df == pytest.approx(6.9926, abs=1e-4)
    assert r.t == pytest.approx(4.9613, abs=1e-4)
    assert r.p == pytest.approx(0.0016402, abs=1e-7)
    # 95% CI with the Welch df: diff ± t_{0.975,df} * SE
    from scipy.stats import t as tdist

    q = tdist.ppf(0.975, df)
    assert r.ci_low == pytest.approx(diff - q * se, rel=1e-10)
    assert r.ci_high == pytest.approx(diff + q * se, rel=1e-10)
    # scipy's own Welch test agrees
    from scipy.stats import ttest_ind

    ref = ttest_ind(A, B, equal_var=False)
    assert r.t == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)


def test_ci_excludes_zero_iff_p_below_005():
    rng = np.random.default_rng(3)
    for _ in range(30):
        a = rng.normal(0, 1, 4)
        b = rng.normal(rng.uniform(-2, 2), rng.uniform(0.3, 3), 5)
        r = stats.welch(a, b)
        assert (r.ci_low > 0 or r.ci_high < 0) == (r.p < 0.05)


def test_hedges_g_hand():
    a, b = np.array(A), np.array(B)
    na, nb = len(a), len(b)
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    d = (a.mean() - b.mean()) / sp
    m = na + nb - 2
    j = math.gamma(m / 2) / (math.sqrt(m / 2) * math.gamma((m - 1) / 2))
    assert stats.hedges_g(A, B) == pytest.approx(j * d, rel=1e-12)
    # the exact J is close to the textbook approximation 1 - 3/(4m - 1)
    assert j == pytest.approx(1 - 3 / (4 * m - 1), rel=5e-3)
    assert stats.hedges_g(B, A) == pytest.approx(-j * d)


def test_bh_matches_hand_and_statsmodels():
    p = [0.010, 0.040, 0.030, 0.200, 0.005, float("nan")]
    reject, adj = stats.bh_adjust(p, alpha=0.05)
    # by hand over the 5 finite p: sort ascending, p_(i) * m / i, then running minimum from the top
    finite = [0.010, 0.040, 0.030, 0.200, 0.005]
    m = len(finite)
    order = sorted(range(m), key=lambda i: finite[i])
    raw = [finite[i] * m / (k + 1) for k, i in enumerate(order)]
    mins = raw[:]
    for k in range(m - 2, -1, -1):
        mins[k] = min(mins[k], mins[k + 1])
    hand = [0.0] * m
    for k, i in enumerate(order):
        hand[i] = min(1.0, mins[k])
    np.testing.assert_allclose(adj[:5], hand, rtol=1e-12)
    # hand values: 0.005->0.025, 0.010->0.025, 0.030->0.05, 0.040->0.05, 0.200->0.2
    np.testing.assert_allclose(adj[:5], [0.025, 0.05, 0.05, 0.2, 0.025], rtol=1e-12)
    # BH rejects p_(i) <= i/m * alpha for the largest such i: 0.040 <= 4/5*0.05=0.04 -> all four smallest
    assert list(reject[:5]) == [True, True, True, False, True]
    assert np.isnan(adj[5]) and not reject[5]
    from statsmodels.stats.multitest import multipletests

    ref = multipletests(finite, alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(adj[:5], ref[1])


def test_pairwise_and_words():
    rows = stats.pairwise({"tpe": B, "manual": A, "flat": [1.0, 1.0]},
                          [("tpe", "manual"), ("flat", "flat")], alpha=0.05, family="x")
    assert rows[0]["significant_bh"] and rows[0]["diff"] < 0
    assert math.isnan(rows[1]["p"]) and not rows[1]["significant_bh"]
    text = stats.describe(rows[0])
    assert "survives" in text and "tpe" in text
    assert "not testable" in stats.describe(rows[1])


def test_bad_input_named():
    with pytest.raises(DeformCastError, match="REPEATS"):
        stats.welch([1.0], [2.0, 3.0])
    with pytest.raises(DeformCastError, match="ALPHA"):
        stats.bh_adjust([0.1], alpha=1.5)
