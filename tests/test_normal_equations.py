"""The per-pixel least-squares fits of series with gaps (session 48): normal equations solved by inversion where they
are well conditioned, by the pseudo-inverse elsewhere; fits that several family members share made once."""
import numpy as np

from deformcast.algorithms.data import anchors as anc
from deformcast.algorithms.data import baselines as bl
from deformcast.algorithms.data.family import family_forecasts

DATES = np.datetime64("2018-01-05") + np.arange(110) * 12


def _design(T=110, p=7, seed=0):
    rng = np.random.default_rng(seed)
    t = bl.years_between(DATES[:T], DATES[T - 1])
    return bl.design_matrix(t, 2, (1.0, 0.5)), rng


def _normal(A, w):
    return np.einsum("tp,tn,tq->npq", A, w, A)


def test_inverse_equals_the_pseudo_inverse_and_each_pixel_is_its_own():
    A, rng = _design()
    w = (rng.random((A.shape[0], 300)) > 0.3) * rng.uniform(0.5, 2.0, (A.shape[0], 300))
    inv = bl.normal_inverse(A, w)
    ref = np.linalg.pinv(_normal(A, w))
    np.testing.assert_allclose(inv, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    for a, b in ((0, 1), (17, 120), (120, 300)):     # any chunk of pixels gives the same bits
        assert np.array_equal(bl.normal_inverse(A, w[:, a:b]), inv[a:b])


def test_singular_and_ill_conditioned_pixels_take_the_pseudo_inverse():
    A, rng = _design()
    p = A.shape[1]
    w = np.ones((A.shape[0], 4))
    w[:, 1] = 0.0
    w[:p - 2, 1] = 1.0                       # fewer epochs than parameters: exactly singular
    ata0 = _normal(A, w)
    got = bl.normal_inverse(A, w)            # that pixel by the pseudo-inverse, the others by their inverse
    assert np.array_equal(got[1], np.linalg.pinv(ata0[1:2])[0])
    np.testing.assert_allclose(got[[0, 2, 3]], np.linalg.inv(ata0[[0, 2, 3]]), rtol=1e-12)
    assert np.isfinite(got).all()
    w[:, 3] = 0.0                 # no epoch at all: exactly singular, LU fails; the others keep their inverse
    with np.testing.assert_raises(np.linalg.LinAlgError):
        np.linalg.inv(_normal(A, w))
    got = bl.normal_inverse(A, w)
    assert np.array_equal(got[3], np.zeros((p, p)))
    np.testing.assert_allclose(got[[0, 2]], np.linalg.inv(ata0[[0, 2]]), rtol=1e-12)
    assert np.array_equal(got[1], np.linalg.pinv(ata0[1:2])[0])
    # nearly singular: two epochs a hair apart carry a pixel's whole weight beside tiny others
    w2 = np.full((A.shape[0], 3), 1.0)
    w2[:, 2] = 1e-13
    w2[[5, 60], 2] = 1.0
    ata = _normal(A, w2)
    cond = np.linalg.cond(ata[2], 1)
    assert cond > bl.COND_MAX > np.linalg.cond(ata[0], 1)
    got = bl.normal_inverse(A, w2)
    assert np.array_equal(got[2], np.linalg.pinv(ata[2:3])[0])
    np.testing.assert_allclose(got[:2], np.linalg.inv(ata[:2]), rtol=1e-12)


def test_gappy_fits_match_an_independent_least_squares_fit():
    A, rng = _design()
    T = A.shape[0]
    y = rng.normal(0, 5, (T, 60)) + np.linspace(0, -40, T)[:, None]
    y[rng.random(y.shape) < 0.25] = np.nan
    t = bl.years_between(DATES[:T], DATES[T - 1])
    tp = bl.years_between(DATES[T - 1] + np.arange(1, 6) * 12, DATES[T - 1])
    got = bl.fit_predict(y, t, tp, 2, (1.0, 0.5))
    coef, se, sigma, pred = bl.fit_stats(y, t, tp, 2, (1.0, 0.5))
    P = bl.design_matrix(tp, 2, (1.0, 0.5))
    for i in range(y.shape[1]):
        ok = np.isfinite(y[:, i])
        c, res, *_ = np.linalg.lstsq(A[ok], y[ok, i], rcond=None)
        np.testing.assert_allclose(got[:, i], P @ c, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(coef[:, i], c, rtol=1e-9, atol=1e-9)
        s = np.sqrt(res[0] / (ok.sum() - A.shape[1]))
        np.testing.assert_allclose(sigma[i], s, rtol=1e-9)
        np.testing.assert_allclose(se[:, i], s * np.sqrt(np.diag(np.linalg.inv(A[ok].T @ A[ok]))), rtol=1e-7)


def test_shared_fits_give_each_member_its_own_values():
    """The family made at once (fits shared between members) equals each member made alone, to the bit."""
    rng = np.random.default_rng(5)
    T = 110
    y = np.cumsum(rng.normal(0, 1, (T, 50)), axis=0) + 3 * np.sin(2 * np.pi * np.arange(T) * 12 / 365.25)[:, None]
    y[rng.random(y.shape) < 0.15] = np.nan
    members = tuple(anc.FAMILY) + tuple(anc.LOCAL_EXTRA)
    td = DATES[T - 1] + np.arange(1, 16) * 12
    allm = family_forecasts(y, DATES[:T], td, None, members)
    assert np.isfinite(allm).all()
    for j, m in enumerate(members):
        assert np.array_equal(family_forecasts(y, DATES[:T], td, None, (m,))[0], allm[j]), m[0]
