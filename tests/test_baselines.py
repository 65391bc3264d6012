"""Classical baselines against exact values on synthetic series with known physics."""
import numpy as np
import pytest

from deformcast.algorithms.baselines import BASELINES, design_matrix, fit_predict, forecast_baselines, years_between
from deformcast.algorithms.errors import DeformCastError

DATES = np.datetime64("2019-01-03") + np.arange(120) * 12  # ~3.9 years, 12-day step


def _truth(dates, v, acc, a1, b1, a2, b2, c0):
    t = years_between(dates, DATES[0])
    return (c0[None] + v[None] * t[:, None] + 0.5 * acc[None] * t[:, None] ** 2
            + a1[None] * np.cos(2 * np.pi * t)[:, None] + b1[None] * np.sin(2 * np.pi * t)[:, None]
            + a2[None] * np.cos(4 * np.pi * t)[:, None] + b2[None] * np.sin(4 * np.pi * t)[:, None])


def _params(n, rng, acc=True):
    p = [rng.normal(-20, 10, n), rng.normal(0, 3, n) if acc else np.zeros(n)]
    p += [rng.normal(0, 4, n) for _ in range(4)] + [rng.normal(0, 5, n)]
    return p


def test_trajectory_recovers_exact_model_and_future():
    rng = np.random.default_rng(1)
    n = 50
    full = _truth(DATES, *_params(n, rng))
    fit_end = 99
    hd = DATES[fit_end + 1:fit_end + 7]
    f = forecast_baselines(full[:fit_end + 1].astype(np.float64), DATES[:fit_end + 1], fit_end, hd,
                           names=["trajectory", "trajectory_recent"])
    np.testing.assert_allclose(f["trajectory"], full[fit_end + 1:fit_end + 7], atol=2e-3)
    np.testing.assert_allclose(f["trajectory_recent"], full[fit_end + 1:fit_end + 7], atol=2e-3)
    # beyond the stack too (dates not in the stack)
    later = np.array(["2023-06-01", "2024-01-15"], dtype="datetime64[D]")
    g = forecast_baselines(full, DATES, 119, later, names=["trajectory"])["trajectory"]
    exact = _truth(later, *_params(n, np.random.default_rng(1)))
    np.testing.assert_allclose(g, exact, atol=5e-3)


def test_linear_seasonal_ensemble_exact_and_linear_persistence_values():
    rng = np.random.default_rng(2)
    n = 30
    full = _truth(DATES, *_params(n, rng, acc=False))  # linear + annual + semi-annual: every member exact
    fit_end = 90
    hd = DATES[fit_end + 1:fit_end + 5]
    f = forecast_baselines(full[:fit_end + 1], DATES[:fit_end + 1], fit_end, hd)
    np.testing.assert_allclose(f["trajectory_ensemble"], full[fit_end + 1:fit_end + 5], atol=2e-3)
    # persistence = last value, repeated
    np.testing.assert_array_equal(f["persistence"], np.repeat(full[fit_end][None].astype(np.float32), 4, 0))
    # linear: exactly the least-squares line through the fit epochs, evaluated at the horizon
    t = years_between(DATES[:fit_end + 1], DATES[fit_end])
    A = np.stack([np.ones_like(t), t], 1)
    coef = np.linalg.lstsq(A, full[:fit_end + 1], rcond=None)[0]
    th = years_between(hd, DATES[fit_end])
    np.testing.assert_allclose(f["linear"], coef[0] + th[:, None] * coef[1], rtol=1e-5, atol=1e-3)
    # pure linear series: linear and linear_recent reproduce it exactly
    lin = 5.0 - 12.0 * years_between(DATES, DATES[0])[:, None] * np.ones((1, 3))
    g = forecast_baselines(lin[:fit_end + 1], DATES[:fit_end + 1], fit_end, hd, names=["linear", "linear_recent"])
    np.testing.assert_allclose(g["linear"], lin[fit_end + 1:fit_end + 5], atol=1e-4)
    np.testing.assert_allclose(g["linear_recent"], lin[fit_end + 1:fit_end + 5], atol=1e-4)


def test_gaps_use_the_masked_path_and_stay_exact():
    rng = np.random.default_rng(3)
    full = _truth(DATES, *_params(40, rng))
    gappy = full.copy()
    gappy[rng.random(gappy.shape) < 0.2] = np.nan
    gappy[:, 0] = np.nan  # one pixel all nodata -> NaN forecast
    gappy[95:, 1] = np.nan  # persistence falls back to the last valid value
    fit_end = 99
    hd = DATES[fit_end + 1:fit_end + 4]
    f = forecast_baselines(gappy[:fit_end + 1], DATES[:fit_end + 1], fit_end, hd, names=["trajectory", "persistence"])
    assert np.isnan(f["trajectory"][:, 0]).all() and np.isnan(f["persistence"][:, 0]).all()
    np.testing.assert_allclose(f["trajectory"][:, 1:], full[fit_end + 1:fit_end + 4, 1:], atol=5e-3)
    assert np.allclose(f["persistence"][:, 1], gappy[94, 1])


def test_raster_shape_and_vectorised_over_pixels():
    rng = np.random.default_rng(4)
    full = _truth(DATES, *_params(6 * 7, rng)).reshape(len(DATES), 6, 7).astype(np.float32)
    f = forecast_baselines(full, DATES, 80, DATES[81:84])
    assert set(f) == set(BASELINES)
    for v in f.values():
        assert v.shape == (3, 6, 7) and v.dtype == np.float32


def test_short_fit_period_drops_terms():
    # 20 epochs (~0.6 years): trajectory falls back to a line, so a linear series is exact
    d = DATES[:20]
    lin = (2.0 + 30.0 * years_between(d, d[0]))[:, None]
    f = forecast_baselines(lin[:15], d[:15], 14, d[15:20], names=["trajectory", "trajectory_ensemble"])
    np.testing.assert_allclose(f["trajectory"][:, 0], lin[15:20, 0], atol=1e-4)
    np.testing.assert_allclose(f["trajectory_ensemble"][:, 0], lin[15:20, 0], atol=1e-4)


def test_design_matrix_is_mintpy_style():
    A = design_matrix(np.array([0.0, 0.5, 2.0]), 2, (1.0,))
    np.testing.assert_allclose(A[2], [1.0, 2.0, 2.0, 1.0, 0.0], atol=1e-12)  # t^2/2! = 2
    y = fit_predict(np.array([[1.0], [np.nan]]), np.array([0.0, 1.0]), np.array([2.0]), 1, ())
    assert np.isnan(y).all()  # one valid epoch cannot fix offset + velocity


def test_bad_inputs():
    with pytest.raises(DeformCastError, match="valid names"):
        forecast_baselines(np.zeros((5, 2)), DATES[:5], 4, DATES[5:6], names=["arima"])
    with pytest.raises(DeformCastError, match="epochs"):
        forecast_baselines(np.zeros((5, 2)), DATES[:6], 4, DATES[5:6])
    with pytest.raises(DeformCastError, match="outside"):
        forecast_baselines(np.zeros((5, 2)), DATES[:5], 7, DATES[5:6])
