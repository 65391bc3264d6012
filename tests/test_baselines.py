"""Classical baselines against exact values on synthetic series with known physics."""
import numpy as np
import pytest

from deformcast.algorithms.data.baselines import (BASELINES, TimeFunction, as_time_function, design_matrix,
    fit_predict, fit_stats, forecast_baselines, parse_steps, years_between)
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


# ----------------------------------------------------------------- event time functions (steps, exp, log)

def test_design_matrix_event_columns_hand_values():
    t = np.array([0.0, 0.2, 0.5, 0.8])
    A = design_matrix(t, 1, (), steps=(0.5,), exps=((0.2, 0.3),), logs=((0.2, 0.3),))
    assert A.shape == (4, 5)  # 1, t, step, exp, log
    np.testing.assert_array_equal(A[:, 0], 1.0)
    np.testing.assert_array_equal(A[:, 1], t)
    np.testing.assert_array_equal(A[:, 2], [0.0, 0.0, 1.0, 1.0])  # 1 at and after the step
    np.testing.assert_allclose(A[:, 3], [0.0, 0.0, 1 - np.exp(-1.0), 1 - np.exp(-2.0)], rtol=1e-14, atol=0)
    np.testing.assert_allclose(A[:, 4], [0.0, 0.0, np.log(2.0), np.log(3.0)], rtol=1e-14, atol=0)
    # column order polynomial, periodic, steps, exps, logs; defaults are the plain matrix, bit for bit
    B = design_matrix(t, 2, (1.0, 0.5), steps=(0.5,), exps=((0.2, 0.3),), logs=((0.2, 0.3),))
    np.testing.assert_array_equal(B[:, :7], design_matrix(t))
    np.testing.assert_array_equal(B[:, 7:], A[:, 2:])
    np.testing.assert_array_equal(design_matrix(t, steps=(), exps=(), logs=()), design_matrix(t))
    # far before a fast exp onset: no overflow, exact zeros
    with np.errstate(all="raise"):
        assert not design_matrix(np.array([-50.0]), 0, (), exps=((0.0, 1e-3),))[0, 1]
    with pytest.raises(DeformCastError, match="tau"):
        design_matrix(t, 1, (), exps=((0.2, 0.0),))


STEP = np.datetime64("2020-04-20")   # between two epochs of DATES
EXP_ON = np.datetime64("2021-01-10")
EXP_TAU = 90.0                       # days


def _events(dates, c0, v, step, amp):
    t = years_between(dates, DATES[0])[:, None]
    ts = years_between(STEP, DATES[0])
    te = years_between(EXP_ON, DATES[0])
    dt = np.maximum(t - te, 0.0)
    return c0 + v * t + step * (t >= ts) + amp * (1 - np.exp(-dt / (EXP_TAU / 365.25)))


def test_fit_with_step_and_exp_recovers_amplitudes_and_forecast():
    rng = np.random.default_rng(5)
    n = 25
    c0, v, amp = rng.normal(0, 5, n), rng.normal(-10, 5, n), rng.normal(15, 5, n)
    step = np.full(n, 7.0)
    full = _events(DATES, c0, v, step, amp)
    fit_end = 99
    fd, hd = DATES[:fit_end + 1], DATES[fit_end + 1:fit_end + 7]
    y = full[:fit_end + 1].copy()
    y[rng.random(y.shape) < 0.15] = np.nan  # most pixels take the masked (gappy) path
    y[:, :5] = full[:fit_end + 1, :5]       # a few take the complete-series path
    tf = TimeFunction(step_dates=[str(STEP)], exp={str(EXP_ON): [EXP_TAU]})
    # independent least squares, built from the dates without design_matrix
    t = (fd - fd[-1]).astype(float) / 365.25
    ts, te = (STEP - fd[-1]).astype(float) / 365.25, (EXP_ON - fd[-1]).astype(float) / 365.25
    A = np.stack([np.ones_like(t), t, (t >= ts).astype(float),
                  np.where(t > te, 1 - np.exp(-(t - te) * 365.25 / EXP_TAU), 0.0)], 1)
    ref = np.stack([np.linalg.lstsq(A[np.isfinite(y[:, j])], y[np.isfinite(y[:, j]), j], rcond=None)[0]
                    for j in range(n)], 1)
    coef, se, sigma, pred = fit_stats(y, t, (hd - fd[-1]).astype(float) / 365.25, 1, (),
                                      time_function=tf, ref=fd[-1])
    assert coef.shape == (4, n)
    np.testing.assert_allclose(coef, ref, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(coef[2], 7.0, atol=1e-8)   # the 7 mm step
    np.testing.assert_allclose(coef[3], amp, atol=1e-8)   # the exp amplitude
    np.testing.assert_allclose(coef[1], v, atol=1e-8)
    np.testing.assert_allclose(sigma, 0.0, atol=1e-8)
    np.testing.assert_allclose(pred, full[fit_end + 1:fit_end + 7], atol=1e-8)
    # the baselines: the linear ones are exact, the trajectories (plus zero acceleration / seasons) too;
    # both events lie inside the 2-year window (the ensemble's 1-year member drops the exp term, whose
    # onset precedes it, so the ensemble is not exact here)
    f = forecast_baselines(y, fd, fit_end, hd, names=["linear", "linear_recent", "trajectory", "trajectory_recent"],
                           time_function=tf)
    for name in f:
        np.testing.assert_allclose(f[name], full[fit_end + 1:fit_end + 7], atol=2e-3, err_msg=name)
    # without the terms the linear forecast is biased: the terms matter
    g = forecast_baselines(y, fd, fit_end, hd, names=["linear"])
    assert np.abs(g["linear"] - full[fit_end + 1:fit_end + 7]).max() > 1.0
    # a MintPy model dict (YYYYMMDD) is the same time function
    mp = {"polynomial": 1, "stepDate": [str(STEP).replace("-", "")], "exp": {str(EXP_ON).replace("-", ""): [EXP_TAU]}}
    assert as_time_function(mp) == tf == TimeFunction.from_mintpy(mp)
    h = forecast_baselines(y, fd, fit_end, hd, names=["linear"], time_function=mp)
    np.testing.assert_array_equal(h["linear"], f["linear"])


def test_terms_outside_the_fit_period_are_dropped():
    rng = np.random.default_rng(6)
    full = _truth(DATES, *_params(12, rng))
    fit_end = 99
    fd, hd = DATES[:fit_end + 1], DATES[fit_end + 1:fit_end + 10]
    outside = TimeFunction(step_dates=[fd[0], fd[-1] + 5, hd[3]],        # on the first epoch; in the forecast
                           exp=[(fd[0] - 30, 60.0), (fd[-1], 20.0)],     # before the fit; on the last epoch
                           log=[(fd[-1] + 1, 10.0), (fd[0] - 1, 5.0)])
    t_fit = years_between(fd, fd[-1])
    assert outside.terms(fd[-1], t_fit) == {"steps": (), "exps": (), "logs": ()}
    assert len(outside.terms(fd[-1])["steps"]) == 3  # without t_fit nothing is dropped
    base = forecast_baselines(full[:fit_end + 1], fd, fit_end, hd)
    got = forecast_baselines(full[:fit_end + 1], fd, fit_end, hd, time_function=outside)
    for name in BASELINES:
        assert np.isfinite(got[name]).all()
        np.testing.assert_array_equal(got[name], base[name])  # bit-identical to no time function
    # kept at the edges: a step on the last epoch, an exp on the first one
    edge = TimeFunction(step_dates=[fd[-1]], exp=[(fd[0], 60.0)])
    kept = edge.terms(fd[-1], t_fit)
    assert kept["steps"] == (0.0,) and len(kept["exps"]) == 1
    # each window applies the rule itself: a step 3 years back is in the full fit, not the 2-year one
    # (a step the data hold: a date enters a pixel's fits only where its history shows the step)
    noisy = full[:fit_end + 1] + rng.normal(0, 1.0, (fit_end + 1, full.shape[1]))
    noisy = noisy + 15.0 * (fd >= fd[-1] - 3 * 365)[:, None]
    old = TimeFunction(step_dates=[fd[-1] - 3 * 365])
    names = ["trajectory", "trajectory_recent"]
    r = forecast_baselines(noisy, fd, fit_end, hd, names=names, time_function=old)
    b = forecast_baselines(noisy, fd, fit_end, hd, names=names)
    np.testing.assert_array_equal(r["trajectory_recent"], b["trajectory_recent"])
    assert not np.array_equal(r["trajectory"], b["trajectory"]) and np.isfinite(r["trajectory"]).all()
    # None / empty: the default, bit for bit
    for tf in (None, TimeFunction(), {}, []):
        same = forecast_baselines(full[:fit_end + 1], fd, fit_end, hd, time_function=tf)
        assert all(np.array_equal(same[k], base[k]) for k in BASELINES)


def test_parse_steps_text_and_files(tmp_path):
    want = np.array(["2019-05-01", "2020-01-15"], dtype="datetime64[D]")
    np.testing.assert_array_equal(parse_steps("2019-05-01, 2020-01-15"), want)
    np.testing.assert_array_equal(parse_steps(" 2020-01-15;2019-05-01 2019-05-01 "), want)  # sorted, unique
    np.testing.assert_array_equal(parse_steps("20190501,2020-01-15"), want)  # MintPy YYYYMMDD
    assert parse_steps("").size == 0 and parse_steps("").dtype == np.dtype("datetime64[D]")
    csv = tmp_path / "steps.csv"
    csv.write_text("# earthquakes\ndate,label\n2019-05-01,M6.1  # mainshock\n\n2020-01-15,aftershock\n")
    np.testing.assert_array_equal(parse_steps(str(csv)), want)
    np.testing.assert_array_equal(parse_steps(csv), want)  # a Path works too
    txt = tmp_path / "steps.txt"
    txt.write_text("2020-01-15\n2019-05-01\n")
    np.testing.assert_array_equal(parse_steps(str(txt)), want)
    assert TimeFunction(step_dates=str(txt)) == TimeFunction(step_dates=want)
    with pytest.raises(DeformCastError, match=r"'2019-13-01' is not a date: use YYYY-MM-DD"):
        parse_steps("2019-05-01, 2019-13-01")
    with pytest.raises(DeformCastError, match=r"'2019/05/01' is not a date: use YYYY-MM-DD"):
        parse_steps("2019/05/01")
    bad = tmp_path / "bad.txt"
    bad.write_text("date\n2019-05-01\n2019-02-30\n")
    with pytest.raises(DeformCastError, match=r"'2019-02-30' is not a date \(line 3 of .*bad.txt\): use YYYY-MM-DD"):
        parse_steps(str(bad))
    with pytest.raises(DeformCastError, match="not found"):
        parse_steps(str(tmp_path / "missing.csv"))
    with pytest.raises(DeformCastError, match="tau"):
        TimeFunction(exp={"2019-05-01": [0]})
    with pytest.raises(DeformCastError, match="Unknown time-function key"):
        as_time_function({"steps": ["2019-05-01"]})
