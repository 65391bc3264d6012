"""Exceedance probabilities by kernel dressing: hand values, the modes, the members' moments kept, and a better
Brier score than the share of members where the members are a sample of a known distribution (session 33)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from deformcast.algorithms.maps import exceedance as X


def phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def by_hand(members, t: float, mode: str) -> float:
    """The kernel-dressed probability of one pixel, written out with math.erf."""
    m = len(members)
    mu = sum(members) / m
    s = math.sqrt(sum((x - mu) ** 2 for x in members) / m)
    b = 1.06 * m ** -0.2
    h = b * s
    p = 0.0
    for x in members:
        c = mu + math.sqrt(1 - b * b) * (x - mu)
        if mode == "magnitude":
            p += phi((c - t) / h) + phi((-t - c) / h)
        elif mode == "subsidence":
            p += phi((-t - c) / h)
        else:
            p += phi((c - t) / h)
    return p / m


def test_hand_values_in_every_mode():
    d = np.array([[-12.0, 2.5], [-8.0, 2.5], [5.0, 2.6], [15.0, 2.9]])
    for mode in ("magnitude", "subsidence", "uplift"):
        got = X.exceedance_probability(d, [2.55, 10.0], mode)
        for k, t in enumerate((2.55, 10.0)):
            for j in range(2):
                assert got[k, j] == pytest.approx(by_hand(list(d[:, j]), t, mode), abs=1e-6)
    # the modes split the magnitude: P(|D| >= t) = P(-D >= t) + P(D >= t) for t > 0
    mag, sub, upl = (X.exceedance_probability(d, [10.0], m)[0] for m in ("magnitude", "subsidence", "uplift"))
    np.testing.assert_allclose(mag, sub + upl, atol=1e-6)
    assert X.bandwidth_factor(10) == pytest.approx(1.06 / 10 ** 0.2)


def test_agreeing_or_too_few_members_give_the_share():
    d = np.array([[4.0, 1.0], [4.0, 9.0]])          # two members: no kernel
    np.testing.assert_array_equal(X.exceedance_probability(d, [3.9, 5.0]), [[1.0, 0.5], [0.0, 0.5]])
    same = np.full((5, 3), 4.0)                       # five identical members: the share, 1 or 0
    np.testing.assert_array_equal(X.exceedance_probability(same, [3.9, 4.1]), [[1, 1, 1], [0, 0, 0]])
    assert X.exceedance_probability(np.ones((4, 2)), []).shape == (0, 2)
    # a magnitude threshold at or below 0 is always reached
    np.testing.assert_array_equal(X.exceedance_probability(np.array([[1.0], [-3.0], [2.0]]), [0.0]), [[1.0]])


def test_probabilities_are_smooth_bounded_and_fall_with_the_threshold():
    rng = np.random.default_rng(3)
    d = rng.normal(-8.0, 4.0, size=(10, 500))
    p = X.exceedance_probability(d, np.arange(0.0, 30.0, 1.0), "magnitude")
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=0) <= 1e-6)
    share = (np.abs(d)[None] >= np.arange(0.0, 30.0, 1.0)[:, None, None]).mean(axis=1)
    # the share takes 11 values; the dressed probability almost as many as there are pixels
    assert np.unique(share).size <= 11 and np.unique(np.round(p, 9)).size > 5000


def test_the_dressed_members_keep_their_mean_and_variance():
    """The mixture of the shrunk members' kernels has the members' mean and (population) variance, where a kernel on
    the members as they are would add h^2."""
    d = np.array([1.0, 4.0, 2.0, 9.0, -3.0, 5.5, 0.5])
    m = d.size
    b = X.bandwidth_factor(m)
    c = d.mean() + math.sqrt(1 - b * b) * (d - d.mean())
    h = b * d.std()
    assert c.mean() == pytest.approx(d.mean())
    assert np.mean(c ** 2) - c.mean() ** 2 + h ** 2 == pytest.approx(d.var())
    # and the probability is that mixture's: integrate its density numerically beyond t
    x = np.linspace(-60, 60, 240001)
    dens = np.mean([np.exp(-0.5 * ((x - ci) / h) ** 2) / (h * math.sqrt(2 * math.pi)) for ci in c], axis=0)
    t = 6.0
    numeric = np.trapz(np.where(np.abs(x) >= t, dens, 0.0), x)
    assert X.exceedance_probability(d[:, None], [t])[0, 0] == pytest.approx(numeric, abs=1e-4)


def test_nearer_the_true_probability_than_the_share_on_a_known_distribution():
    """Ten members drawn from each pixel's predictive distribution N(mu, sigma^2), the outcome drawn from the same.
    Against the true probability ``P(|D| >= t)`` the dressed probability's squared error is well under the share's
    (a share of ten members has the binomial variance p (1 - p) / 10; the dressed one about two thirds of it: 0.59-0.68
    over five seeds of this set-up), its Brier score against the outcomes is lower, and it is unbiased."""
    from scipy.special import ndtr

    rng = np.random.default_rng(11)
    n, m = 40000, 10
    mu = rng.normal(-5.0, 6.0, n)
    sigma = rng.uniform(1.0, 4.0, n)
    members = mu[None] + sigma[None] * rng.standard_normal((m, n))
    outcome = mu + sigma * rng.standard_normal(n)
    for t in (10.0, 20.0):
        true = ndtr((mu - t) / sigma) + ndtr((-t - mu) / sigma)
        o = (np.abs(outcome) >= t).astype(float)
        share = (np.abs(members) >= t).mean(axis=0)
        kern = X.exceedance_probability(members, [t])[0]
        assert np.mean((kern - true) ** 2) < 0.8 * np.mean((share - true) ** 2)
        assert np.mean((kern - o) ** 2) < np.mean((share - o) ** 2)
        assert abs(kern.mean() - true.mean()) < 0.005
