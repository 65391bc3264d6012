"""The spatial analog (session 49): gap filling, the lead-lag forecast of a moving front, and its place among the local
forecast's candidates."""
import numpy as np
import pytest

from deformcast.algorithms.data import analog as an
from deformcast.algorithms.data import anchors as A

DATES = np.datetime64("2020-01-01") + 12 * np.arange(200)


def front(T=120, R=9, C=40, speed=1, noise=0.0, seed=0):
    """A subsidence front moving ``speed`` columns per epoch from column 0: pixel (i, c) sinks along
    ``-40 (1 - exp(-(t - t_c) / 8))`` mm after ``t_c = 40 + c / speed``; rows alike."""
    t = np.arange(T)[:, None, None]
    tc = 40 + np.arange(C)[None, None, :] / speed
    s = np.where(t >= tc, -40.0 * (1 - np.exp(-(t - tc) / 8.0)), 0.0)
    y = np.broadcast_to(s, (T, R, C)).astype(np.float64).copy()
    if noise:
        y += np.random.default_rng(seed).normal(0, noise, y.shape)
    return y


def test_fill_gaps_against_interp():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(30, 4, 5))
    y[rng.random(y.shape) < 0.3] = np.nan
    y[:, 0, 0] = np.nan                     # no value at all: stays NaN
    y[:, 0, 1] = np.nan
    y[7, 0, 1] = 2.5                        # one value: held everywhere
    got = an.fill_gaps(y)
    t = np.arange(30)
    for i in range(4):
        for j in range(5):
            g = np.isfinite(y[:, i, j])
            if not g.any():
                assert np.isnan(got[:, i, j]).all()
                continue
            want = np.interp(t, t[g], y[g, i, j])     # holds the end values beyond the first and last
            np.testing.assert_allclose(got[:, i, j], want, rtol=0, atol=1e-12)
    assert np.isnan(y).any() and not np.isnan(got[:, 1:]).any()


def test_front_followed_exactly():
    """Noise-free front: the pixels ahead of it start sinking within the horizon, and the analog forecasts their
    future exactly (the chained lead-lag follows the front back along the pixels it crossed); persistence and the
    pixel's own line do not."""
    T, H = 120, 15
    y = front(T + H, C=100)
    o = T - 1
    got = an.analog_forecast(y[:T], H)
    truth = y[T:]
    cols = slice(66, 79)            # the front reached them within the matched window before the origin (column 79)
    assert np.abs(truth[:, :, cols] - y[o][None, :, cols]).max() > 10      # they move within the horizon
    np.testing.assert_allclose(got[:, :, cols], truth[:, :, cols], atol=1e-9)


def test_short_history_and_empty_pixel():
    y = front(12, R=3, C=4)
    y[:, 1, 1] = np.nan
    got = an.analog_forecast(y, 5)                   # 12 epochs < window + 2: persistence
    assert got.shape == (5, 3, 4)
    assert np.isnan(got[:, 1, 1]).all()
    np.testing.assert_array_equal(got[:, 0, 0], np.repeat(y[-1, 0, 0], 5))
    y = front(60, R=5, C=6)
    y[:, 2, 3] = np.nan
    got = an.analog_forecast(y, 5)
    assert np.isnan(got[:, 2, 3]).all() and np.isfinite(np.delete(got.reshape(5, -1), 2 * 6 + 3, axis=1)).all()


@pytest.mark.parametrize("share", [1.0, 0.3])
def test_scattered_points_path_is_the_dense_path(monkeypatch, share):
    """A block searched at its pixels with a value only (a raster of scattered points) gets the forecast the whole
    block's search gives."""
    rng = np.random.default_rng(2)
    y = front(90, R=12, C=50, noise=0.5)
    y[:, rng.random((12, 50)) > share] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan                  # gaps
    monkeypatch.setattr(an, "DENSE", 0.0)
    whole = an.analog_forecast(y, 12)
    monkeypatch.setattr(an, "DENSE", 1.01)
    points = an.analog_forecast(y, 12)
    np.testing.assert_allclose(points, whole, rtol=0, atol=1e-9)
    assert np.isfinite(whole).sum() > 0


def test_uses_the_history_only():
    """The forecast from the origin is the same whatever follows it in the stack (it receives the history only, and
    the chunk of pixels it is made for does not matter: every pixel's neighbours are in the block)."""
    y = front(100, noise=0.5)
    a = an.analog_forecast(y[:80], 10)
    z = y.copy()
    z[80:] = 1e6
    b = an.analog_forecast(z[:80], 10)
    np.testing.assert_array_equal(a, b)


def test_local_forecast_takes_the_analog_at_a_front(monkeypatch):
    """With the analog among its candidates the local forecast behind a noisy moving front is far better than without
    it (no fit through a pixel's own past knows how the sinking slows down); on ground that keeps a steady velocity it
    changes little. Pixels the front has not reached cannot know it is coming, from their own path or a neighbour's."""
    T, H = 120, 15
    y = front(T + H, R=20, C=100, noise=0.7, seed=3)
    d = DATES[:T + H]
    truth = front(T + H, R=20, C=100)[T:]

    def rmse(on):       # behind the front (crossed 10-30 epochs before the origin): still sinking, slower and slower
        monkeypatch.setattr(an, "ANALOG", on)
        f = A.local_forecast(y[:T], d[:T], d[T:], H)
        return float(np.sqrt(np.mean((f - truth)[:, :, 50:70] ** 2)))

    with_analog, without = rmse(True), rmse(False)
    assert with_analog < 0.5 * without, (with_analog, without)
    rng = np.random.default_rng(5)
    t = np.arange(T + H)[:, None, None]
    steady = -0.3 * t * np.ones((1, 20, 30)) + rng.normal(0, 1.0, (T + H, 20, 30))
    monkeypatch.setattr(an, "ANALOG", True)
    a = A.local_forecast(steady[:T], d[:T], d[T:], H)
    monkeypatch.setattr(an, "ANALOG", False)
    b = A.local_forecast(steady[:T], d[:T], d[T:], H)
    truth = -0.3 * t[T:] * np.ones((1, 20, 30))
    ra, rb = (float(np.sqrt(np.mean((f - truth) ** 2))) for f in (a, b))
    assert ra < 1.1 * rb, (ra, rb)


def test_offer_only_near_moving_ground(monkeypatch):
    z_field = np.zeros((30, 30))
    z_field[5, 5] = 10.0                               # one moving pixel
    guide = (z_field, np.ones_like(z_field))          # velocity, standard error: |v| / se = the field
    monkeypatch.setattr(an, "OFFER_T", 4.0)
    got = an.offer(None, guide, (30, 30), 3)
    assert got[:2].all()
    near = got[-1].reshape(30, 30)
    assert near[5 - an.RADIUS:5 + an.RADIUS + 1, 5 - an.RADIUS:5 + an.RADIUS + 1].all()
    assert near.sum() == (an.RADIUS + 1 + 5) ** 2      # clipped at the raster's corner
    monkeypatch.setattr(an, "OFFER_T", 0.0)
    assert an.offer(None, guide, (30, 30), 3).all()
    lev = np.zeros((2, 900), bool)
    assert not an.offer(lev, guide, (30, 30), 3)[:2].any()
    last = np.where(np.arange(900) % 5 == 0, 1.0, np.nan)     # a fifth of the pixels: scattered points
    got = an.offer(None, guide, (30, 30), 3, last)
    assert got[:2].all() and not got[-1].any()
    assert an.offer(None, guide, (30, 30), 3, np.ones(900)).all()     # dense: everywhere, corners included
    one = an.offer(None, None, (1, 1), 3, np.ones(1))                  # a lone pixel: no neighbour to follow
    assert one[:2].all() and not one[-1].any()
    cluster = np.full((30, 30), np.nan)
    cluster[10:20, 10:20] = 1.0                   # a dense cluster of points in a block of scattered points: not there
    assert not an.offer(None, None, (30, 30), 3, cluster.ravel())[-1].any()
    cluster[:, :16] = 1.0                         # a dense block (53 % of its pixels) with an empty side
    got = an.offer(None, None, (30, 30), 3, cluster.ravel())[-1].reshape(30, 30)
    assert got[15, 5] and got[0, 0] and not got[0, 29] and not got[29, 29]


def test_scattered_points_leave_the_local_forecast_as_it_was(monkeypatch):
    """On a block of scattered points the analog takes no weight: the local forecast is the one without it."""
    rng = np.random.default_rng(4)
    T, H = 100, 10
    y = front(T, R=20, C=40, noise=0.6)
    y[:, rng.random((20, 40)) > 0.12] = np.nan             # 12 % of the pixels, as the Doñana points' 8 %
    d, td = DATES[:T], DATES[T:T + H]
    monkeypatch.setattr(an, "ANALOG", True)
    a = A.local_forecast(y, d, td, H)
    monkeypatch.setattr(an, "ANALOG", False)
    b = A.local_forecast(y, d, td, H)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert np.isfinite(a).any()


def test_off_by_default():
    """Off unless ``DEFORMCAST_ANALOG=1`` (its cost, docs/skill.md "Session 49"); the halo grows only with it."""
    import os
    assert an.ANALOG == (os.environ.get("DEFORMCAST_ANALOG") == "1")
    assert A.LOCAL_HALO == 2 * (A.LOCAL_BOX // 2) + (2 * an.RADIUS if an.ANALOG else 0)


@pytest.mark.parametrize("lean", [False, True])
def test_cache_paths_agree(lean, monkeypatch):
    """The local forecast with a block's FamilyCache (the path of ``predict`` and the gate, lean or not) equals the one
    that fits every origin itself: the analog appended to the cached families, errors and pixel subsets alike."""
    T, H = 110, 15
    y = front(T, R=16, C=30, noise=0.5, seed=7)
    d = DATES[:T]
    td = DATES[T:T + H]
    monkeypatch.setattr(an, "ANALOG", True)
    a = A.local_forecast(y, d, td, H)
    cache = A.FamilyCache(y, d, H, lean=lean)
    b = A.local_forecast(y, d, td, H, past_family=cache)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert any(k[1] == "analog" for k in cache._memo)
