"""Regularisation and re-referencing of displacement series (algorithms.data.series)."""
from __future__ import annotations

import numpy as np
import pytest

from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.data.series import median_step_days, regular_dates, regularise, rereference

D0 = np.datetime64("2016-01-01")


def _egms_like_dates():
    """12-day sampling, then 6-day (Sentinel-1B joins), as in EGMS L2 products."""
    return np.concatenate([D0 + 12 * np.arange(10), D0 + 108 + 6 * np.arange(1, 31)])


def test_irregular_12_then_6_days_onto_6_day_step():
    d = _egms_like_dates()
    t = (d - D0).astype(int).astype(float)
    vals = np.stack([-0.1 * t, 0.05 * t + 3.0], axis=1).astype(np.float32)  # (T, 2) linear
    assert median_step_days(d) == 6
    out, od = regularise(vals, d)
    assert np.all(np.diff(od).astype(int) == 6) and od[0] == d[0] and od[-1] == d[-1]
    tt = (od - D0).astype(int)
    # linear series are reproduced exactly, including the interpolated epochs in the 12-day part
    np.testing.assert_allclose(out[:, 0], -0.1 * tt, atol=1e-4)
    np.testing.assert_allclose(out[:, 1], 0.05 * tt + 3.0, atol=1e-4)
    assert not np.isnan(out).any()


def test_explicit_step_and_exact_epochs_kept():
    d = D0 + np.array([0, 12, 24, 30, 36])
    v = np.array([0.0, 5.0, 7.0, 9.0, 4.0], np.float32)[:, None]
    out, od = regularise(v, d, step_days=12)
    np.testing.assert_array_equal(od, D0 + np.array([0, 12, 24, 36]))
    np.testing.assert_allclose(out[:, 0], [0, 5, 7, 4])  # acquisitions on the grid keep their value
    out6, _ = regularise(v, d, step_days=6)
    np.testing.assert_allclose(out6[:, 0], [0, 2.5, 5, 6, 7, 9, 4])


def test_gaps_longer_than_limit_stay_nan_and_no_extrapolation():
    d = D0 + 6 * np.arange(20)
    v = np.tile(np.arange(20, dtype=np.float32)[:, None], (1, 3))
    v[5:7, 0] = np.nan      # 18-day interval between valid values: bridged (limit 3 x 6 = 18)
    v[5:10, 1] = np.nan     # 36-day interval: left as a gap
    v[:3, 2] = np.nan       # leading NaN: nothing is extrapolated
    out, od = regularise(v, d)
    assert od.size == 20
    np.testing.assert_allclose(out[:, 0], np.arange(20))
    assert np.isnan(out[5:10, 1]).all() and np.isfinite(out[[4, 10], 1]).all()
    assert np.isnan(out[:3, 2]).all() and np.isfinite(out[3:, 2]).all()
    out2, _ = regularise(v, d, max_gap_days=36)
    np.testing.assert_allclose(out2[:, 1], np.arange(20))


def test_stack_shape_and_chunking_agree():
    rng = np.random.default_rng(3)
    d = D0 + np.cumsum(np.r_[0, rng.choice([6, 12], 24)])
    v = rng.normal(size=(d.size, 5, 7)).astype(np.float32)
    v[rng.random(v.shape) < 0.1] = np.nan
    a, da = regularise(v, d, step_days=6)
    b, db = regularise(v.reshape(d.size, -1), d, step_days=6, chunk=4)
    assert a.shape == (da.size, 5, 7)
    np.testing.assert_array_equal(da, db)
    np.testing.assert_allclose(a.reshape(da.size, -1), b, equal_nan=True)


def test_bad_dates_refused():
    d = D0 + np.array([0, 12, 12, 24])
    with pytest.raises(DeformCastError, match="twice"):
        regularise(np.zeros((4, 2)), d)
    with pytest.raises(DeformCastError, match="not in time order"):
        regularise(np.zeros((3, 2)), D0 + np.array([0, 24, 12]))
    with pytest.raises(DeformCastError, match="one date per epoch"):
        regularise(np.zeros((5, 2)), D0 + np.array([0, 12, 24]))


def test_regular_dates_and_rereference():
    np.testing.assert_array_equal(regular_dates(D0 + np.array([0, 5, 13]), 6), D0 + np.array([0, 6, 12]))
    v = np.array([[1.0, np.nan], [3.0, 2.0], [6.0, 4.0]], np.float32)
    r = rereference(v)
    np.testing.assert_allclose(r[:, 0], [0, 2, 5])
    assert np.isnan(r[:, 1]).all()  # no value at the reference epoch -> cannot be referenced
    np.testing.assert_allclose(rereference(v, 1)[:, 1], [np.nan, 0, 2], equal_nan=True)
    with pytest.raises(DeformCastError, match="does not exist"):
        rereference(v, 5)


def test_fill_window_gaps_fills_short_gaps_inside_the_window_only():
    from deformcast.algorithms.data.series import fill_window_gaps

    d = np.datetime64("2020-01-01") + np.arange(20) * np.timedelta64(12, "D")
    d[15:] += 6                                           # an irregular step: interpolation is in time
    t = (d - d[0]).astype(float)
    a = np.stack([t / 6.0, 2.0 * t, 3.0 - t, t / 6.0, np.sin(t)], axis=1).astype(np.float32)
    b = a.copy()
    b[16:18, 0] = np.nan          # gap of 2 inside the 8-epoch window, across the irregular step
    b[12, 1] = np.nan             # at the window's first epoch: its left neighbour lies before the window
    b[18:, 2] = np.nan            # the record ends before the origin: nothing invented
    b[12:16, 3] = np.nan          # a gap of 4: too long
    b[5, 4] = np.nan              # before the window: left alone
    f = fill_window_gaps(b, d, 8)
    np.testing.assert_allclose(f[:, 0], a[:, 0], rtol=1e-6)
    np.testing.assert_allclose(f[:, 1], a[:, 1], rtol=1e-6)
    assert np.isnan(f[18:, 2]).all() and np.isnan(f[12:16, 3]).all() and np.isnan(f[5, 4])
    np.testing.assert_array_equal(np.isnan(f[:, 2:]), np.isnan(b[:, 2:]))
    assert fill_window_gaps(a, d, 8) is a                 # nothing to fill: the same array, no copy
    c = b.reshape(20, 1, 5)                               # any trailing shape (a block of rows)
    np.testing.assert_allclose(fill_window_gaps(c, d, 8).reshape(20, 5)[:, :2], a[:, :2], rtol=1e-6)
