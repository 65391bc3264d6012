"""The neighbourhood means of the local track record (algorithms.data.pooling): the guided mean keeps the
two sides of a boundary that the velocities resolve apart, equals the plain box where every neighbour is
alike, and does not depend on how a raster is cut into blocks."""
import numpy as np

from deformcast.algorithms.data import pooling


def _two_regimes(seed=0, R=24, W=30, T=90, v_east=-8.0, noise=2.0):
    """A stack (T, R, W) whose east half (columns >= W // 2) subsides at ``v_east`` mm/yr, with white
    noise; dates every 12 days."""
    rng = np.random.default_rng(seed)
    d = np.datetime64("2019-01-01") + np.arange(T) * np.timedelta64(12, "D")
    t = np.arange(T) * 12 / 365.25
    v = np.where(np.arange(W) >= W // 2, v_east, 0.0)
    y = t[:, None, None] * v[None, None, :] + rng.normal(0, noise, (T, R, W))
    return y, d


def test_the_velocity_and_its_error_match_a_least_squares_line():
    y, d = _two_regimes()
    flat = y.reshape(y.shape[0], -1)
    flat[5, 7] = np.nan
    v, se = pooling.velocity_guide(flat, d, y.shape[1:], years=2.0)
    t = (d - d[-1]).astype(float) / 365.25
    for j in (0, 7, 29, 400):
        m = (t >= -2.0) & np.isfinite(flat[:, j])
        (b, a), cov = np.polyfit(t[m], flat[m, j], 1, cov="unscaled")
        res = flat[m, j] - (a + b * t[m])
        s2 = (res @ res) / (m.sum() - 2)
        assert np.isclose(v.ravel()[j], b) and np.isclose(se.ravel()[j], np.sqrt(s2 * cov[0, 0]))


def test_a_boundary_the_velocities_resolve_is_not_pooled_across():
    y, d = _two_regimes()
    R, W = y.shape[1:]
    guide = pooling.velocity_guide(y.reshape(y.shape[0], -1), d, (R, W))
    side = np.where(np.arange(W) >= W // 2, 1.0, 0.0)[None, None, :] * np.ones((1, R, W))   # a record by side
    plain = pooling.box_mean(side, 9)[0]
    guided = pooling.guided_box_mean(side, 9, guide)[0]
    edge = [W // 2 - 1, W // 2]                                    # the columns next to the boundary
    assert np.abs(plain[:, edge] - side[0][:, edge]).min() > 0.4   # the box mixes the two sides
    assert np.abs(guided[:, edge] - side[0][:, edge]).max() < 0.1
    # where all neighbours are alike (no boundary, velocities differing by noise only) it stays a box mean
    y0, d0 = _two_regimes(v_east=0.0)
    g0 = pooling.velocity_guide(y0.reshape(y0.shape[0], -1), d0, (R, W))
    val = np.random.default_rng(1).normal(size=(2, R, W))
    assert np.abs(pooling.guided_box_mean(val, 9, g0) - pooling.box_mean(val, 9)).mean() < 0.1
    np.testing.assert_allclose(pooling.guided_box_mean(val, 9, guide, k=1e12), pooling.box_mean(val, 9), atol=1e-12)
    np.testing.assert_allclose(pooling.guided_box_mean(val, 9, None), pooling.box_mean(val, 9))


def test_blocks_with_a_halo_give_the_whole_raster_result():
    y, d = _two_regimes(R=30)
    R, W = y.shape[1:]
    flat = y.reshape(y.shape[0], -1)
    val = np.random.default_rng(2).normal(size=(3, R, W))
    val[1, 4, 5] = np.nan
    whole = pooling.guided_box_mean(val, 9, pooling.velocity_guide(flat, d, (R, W)))
    h = 4
    for r0, r1 in ((0, 10), (10, 20), (20, 30)):
        a0, a1 = max(0, r0 - h), min(R, r1 + h)
        sub = y[:, a0:a1].reshape(y.shape[0], -1)
        part = pooling.guided_box_mean(val[:, a0:a1], 9, pooling.velocity_guide(sub, d, (a1 - a0, W)))
        np.testing.assert_allclose(part[:, r0 - a0:r1 - a0], whole[:, r0:r1], rtol=1e-12, atol=1e-12)


def test_the_record_leans_on_its_class_by_the_share_of_its_variance_that_is_noise():
    rng = np.random.default_rng(3)
    n, C = 400, 3
    z = np.concatenate([rng.uniform(0, 1, n // 2), rng.uniform(5, 9, n // 2)])     # flat ground, then trending
    true = np.where(z < 2, 1.0, 4.0)[None] * np.array([1.0, 2.0, 3.0])[:, None]  # the classes differ, pixels not
    s2 = np.full((C, n), 0.25)
    pooled = true + rng.normal(0, 0.5, (C, n))          # the spread between pixels is all sampling noise
    prior = pooling.class_prior(pooled, s2, z, 2)
    assert np.allclose(prior["edges"], [np.median(z)])
    np.testing.assert_allclose(prior["mean"], [[1, 2, 3], [4, 8, 12]], atol=0.15)
    assert np.max(prior["spread"]) < 0.1                 # noise only: nothing left to tell pixels apart
    got = pooling.shrink_to_class(pooled, s2, z, prior)
    assert np.abs(got - true).mean() < 0.3 * np.abs(pooled - true).mean()
    # regimes the record tells apart within a class: each pixel keeps most of its own record
    apart = true + np.where(np.arange(n) % 2 == 0, 3.0, -3.0)[None] * (z < 2)[None] + rng.normal(0, 0.5, (C, n))
    prior = pooling.class_prior(apart, s2, z, 2)
    kept = pooling.shrink_to_class(apart, s2, z, prior)
    flat_ground = z < 2
    assert np.abs(kept - apart)[:, flat_ground].mean() < 0.05 * np.abs(apart[:, flat_ground] - 1).mean()
    # no sampling variance: the record itself; no class (unknown evidence): the record itself
    np.testing.assert_array_equal(pooling.shrink_to_class(pooled, np.zeros_like(s2), z, prior), pooled)
    z_nan = z.copy()
    z_nan[:5] = np.nan
    out = pooling.shrink_to_class(pooled, s2, z_nan, pooling.class_prior(pooled, s2, z, 2))
    np.testing.assert_array_equal(out[:, :5], pooled[:, :5])
    assert not np.array_equal(out[:, 5:], pooled[:, 5:])
    assert pooling.class_prior(pooled[:, :9], s2[:, :9], z[:9], 2) is None       # too few pixels to estimate


def test_the_sampling_variance_is_the_spread_of_the_origins_pooled_records():
    rng = np.random.default_rng(4)
    per = [rng.normal(0, 1, (2, 5 * 6)) for _ in range(4)]
    got = pooling.sampling_variance(per, (5, 6), 3)
    ref = np.empty((4, 2, 5, 6))
    for i, p in enumerate(per):
        p = p.reshape(2, 5, 6)
        for r in range(5):
            for c in range(6):
                rr, cc = np.clip(np.arange(r - 1, r + 2), 0, 4), np.clip(np.arange(c - 1, c + 2), 0, 5)
                ref[i, :, r, c] = p[:, rr][:, :, cc].mean(axis=(1, 2))
    np.testing.assert_allclose(got, ref.var(axis=0, ddof=1).reshape(2, -1) / 4, rtol=1e-6)
    assert pooling.sampling_variance(per[:1], (5, 6), 3) is None


def test_trimmed_records_and_the_local_weights_without_them(monkeypatch):
    """``LOCAL_TRIM``: candidates whose pooled record exceeds k times the pixel's best take no weight; the others keep
    their inverse-squared-record weights, renormalised (hand values); 0 (shipped) changes nothing."""
    from deformcast.algorithms.data import anchors as A
    from deformcast.algorithms.data import pooling as P

    rec = np.array([[1.0, 4.0, np.nan], [1.5, 1.0, np.nan], [2.5, 9.0, np.nan]])     # (C=3, n=3)
    assert P.trimmed(rec, 0) is rec
    got = P.trimmed(rec, 2.0)
    np.testing.assert_array_equal(np.isnan(got), [[False, True, True], [False, False, True], [True, True, True]])
    fam = np.stack([np.full((2, 3), v) for v in (10.0, 20.0, 40.0)])                  # (C, h=2, n)
    monkeypatch.setattr(P, "LOCAL_TRIM", 0.0)
    w0, out0, has0 = A._combine(rec, fam)
    monkeypatch.setattr(P, "LOCAL_TRIM", 2.0)
    w, out, has = A._combine(rec, fam)
    assert np.array_equal(has, has0)                                                   # validity untouched
    a, b = 1.0 ** -2, 1.5 ** -2                                                        # pixel 0: the third withheld
    np.testing.assert_allclose(out[:, 0], (a * 10 + b * 20) / (a + b))
    np.testing.assert_allclose(out[:, 1], 20.0)                                        # pixel 1: the best alone
    c = 2.5 ** -2
    np.testing.assert_allclose(out0[:, 0], (a * 10 + b * 20 + c * 40) / (a + b + c))  # untrimmed: all three
    assert np.isnan(out[:, 2]).all() == np.isnan(out0[:, 2]).all()


def test_records_trimmed_by_their_sampling_error_hand_values(monkeypatch):
    """``SE_TRIM``: a candidate's record is set out of reach (1e30) where it exceeds the pixel's best by more than z
    standard errors of the difference; close records (noise) keep their weight; 0 (shipped) or no variance: as is."""
    from deformcast.algorithms.data import pooling as P

    rec = np.array([[1.0, 4.0, np.nan], [2.0, 1.0, np.nan], [5.0, 1.5, np.nan]])
    s2 = np.array([[0.04, 1.0, np.nan], [0.5, 1.0, np.nan], [1.0, 1.0, np.nan]])
    assert P.se_trimmed(rec, s2, 0) is rec and P.se_trimmed(rec, None, 2.0) is rec
    got = P.se_trimmed(rec, s2, 2.0)
    # pixel 0: best 1.0 (s2 0.04); candidate 1: 1.0 > 2 sqrt(0.54) = 1.47? no, kept; candidate 2: 4.0 > 2 sqrt(1.04),
    # trimmed
    # pixel 1: best 1.0; candidate 0: 3.0 > 2 sqrt(2) = 2.83, trimmed; candidate 2: 0.5, kept; pixel 2: no record
    expect = np.array([[1.0, 1e30, np.nan], [2.0, 1.0, np.nan], [1e30, 1.5, np.nan]])
    np.testing.assert_array_equal(got, expect)
    monkeypatch.setattr(P, "SE_TRIM", 1.0)
    assert P.se_trimmed(rec, s2)[1, 0] == 1e30          # the default z: one standard error
