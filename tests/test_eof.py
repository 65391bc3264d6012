"""Temporal EOFs of a scene (algorithms.data.eof) as candidates of the local track record: the patterns use
no epoch after their origin, the projection is a least-squares fit on them, and on a scene whose pixels
share their laws under heavy noise of their own the local forecast gains from them."""
import numpy as np

from deformcast.algorithms.data import anchors as A
from deformcast.algorithms.data import eof, family_cache
from deformcast.algorithms.data.family_cache import FamilyCache
from deformcast.algorithms.data.baselines import years_between


def _scene(T=130, L=10, R=16, C=16, seed=3):
    """Pixels sharing two laws (a steady trend and a subsidence that starts 8 months before the origin)
    with their own amplitudes, under white noise of 3 mm."""
    rng = np.random.default_rng(seed)
    dates = np.datetime64("2018-01-03") + np.arange(T + L) * 12
    t = years_between(dates, dates[0])
    onset = t[T - 1] - 8 / 12
    a, b = rng.uniform(-8, 8, (R, C)), rng.uniform(0, 40, (R, C))
    truth = a[None] * t[:, None, None] - b[None] * np.clip(t - onset, 0, None)[:, None, None]
    noise = rng.normal(0, 3.0, (T, R, C))
    return dates, truth, truth[:T] + noise


def test_patterns_at_an_origin_use_no_later_epoch():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(60, 500)) + np.linspace(0, 5, 60)[:, None] * rng.normal(size=500)
    garbage = s.copy()
    garbage[41:] = rng.normal(0, 1e3, garbage[41:].shape)
    b1, b2 = eof.basis_from_sample(s, 5), eof.basis_from_sample(garbage, 5)
    for o in range(eof.MIN_EPOCHS - 1, 41):
        p1, p2 = b1[o] @ b1[o].T, b2[o] @ b2[o].T   # the projector: free of the eigenvectors' signs
        assert np.allclose(p1, p2, atol=1e-8), o
    assert not np.allclose(b1[50] @ b1[50].T, b2[50] @ b2[50].T)
    assert min(b1) == eof.MIN_EPOCHS - 1 and max(b1) == 59 and b1[59].shape == (60, 5)


def test_projection_is_the_least_squares_fit_on_the_patterns_and_gaps_give_nan():
    rng = np.random.default_rng(1)
    u = np.linalg.qr(rng.normal(size=(40, 4)))[0]
    y = rng.normal(size=(40, 30))
    y[7, 3] = np.nan
    p = eof.project(y, u)
    for i in range(30):
        if i == 3:
            assert np.isnan(p[:, i]).all()
            continue
        coef = np.linalg.lstsq(u, y[:, i], rcond=None)[0]
        assert np.allclose(p[:, i], u @ coef)


def test_the_candidates_are_the_family_of_the_projected_series():
    """The family is linear in the series: the candidates from the patterns' own forecasts equal the family
    fitted on every projected series (and pixels with a gap get none)."""
    dates, truth, y = _scene(R=6, C=7)
    T, L = y.shape[0], truth.shape[0] - y.shape[0]
    flat = y.reshape(T, -1).copy()
    flat[50, 4] = np.nan
    u = eof.basis_from_sample(flat[:, np.isfinite(flat).all(axis=0)], 6)[T - 1]
    direct = A.family_forecasts(eof.project(flat, u), dates[:T], dates[T:], None, family_cache.EOF_MEMBERS)
    cache = FamilyCache(flat, dates[:T], L, basis={T - 1: u})
    got = cache.eof(T - 1, dates[T:])
    assert got.shape == (len(family_cache.EOF_MEMBERS), L, flat.shape[1])
    assert np.isnan(got[:, :, 4]).all() and np.isfinite(np.delete(got, 4, axis=2)).all()
    np.testing.assert_allclose(np.delete(got, 4, axis=2), np.delete(direct, 4, axis=2), atol=1e-9)


def test_the_local_forecast_gains_from_the_scene_s_patterns_under_pixel_noise():
    dates, truth, y = _scene()
    T, L = y.shape[0], truth.shape[0] - y.shape[0]
    td = dates[T:]
    basis = eof.basis_from_sample(y.reshape(T, -1), eof.EOF_RANK)

    def rmse(f):
        return float(np.sqrt(np.mean((f - truth[T:]) ** 2)))

    plain = A.local_forecast(y, dates[:T], td, L, past_family=FamilyCache(y, dates[:T], L))
    with_eof = A.local_forecast(y, dates[:T], td, L, past_family=FamilyCache(y, dates[:T], L, basis=basis))
    assert rmse(with_eof) < 0.9 * rmse(plain), (rmse(with_eof), rmse(plain))


def test_without_a_basis_nothing_changes_and_a_missing_origin_gives_no_candidate():
    dates, truth, y = _scene(R=8, C=8)
    T, L = y.shape[0], truth.shape[0] - y.shape[0]
    td = dates[T:]
    ref = A.local_forecast(y, dates[:T], td, L)
    assert np.array_equal(ref, A.local_forecast(y, dates[:T], td, L, past_family=FamilyCache(y, dates[:T], L)))
    # a basis that holds no origin the record asks for: every EOF candidate is NaN and weighs nothing
    empty = A.local_forecast(y, dates[:T], td, L, past_family=FamilyCache(y, dates[:T], L, basis={0: None}))
    assert np.allclose(empty, ref)


def test_stack_basis_reads_complete_series_on_a_lattice(tmp_path):
    from deformcast.algorithms.io import raster

    dates, truth, y = _scene(R=30, C=40)
    y = y.astype(np.float32)
    y[:, 0, :] = np.nan                      # a row of holes
    path = str(tmp_path / "s.tif")
    raster.write_stack(path, y, dates[:y.shape[0]], raster.Grid((0.0, 10.0, 0.0, 300.0, 0.0, -10.0), "", 40, 30))
    info = raster.open_stack(path)
    s = eof.sample_series(info, max_pixels=300)
    assert np.isfinite(s).all() and s.shape[0] == y.shape[0] and 200 <= s.shape[1] <= 300
    b = eof.stack_basis(info, 4, last=99)
    assert max(b) == 99 and b[99].shape == (100, 4)
    assert eof.stack_basis(info, 4, last=10) is None        # too few epochs
