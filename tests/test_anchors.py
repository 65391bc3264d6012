"""The adaptive anchor (algorithms.data.anchors): each family member against an independent least-squares
fit, the simplex weights, and no test epoch in what training sees."""
import json

import numpy as np
import pytest
from test_dataset import DATES2, _arrays, _long_scene

from deformcast.algorithms.data import analog, anchors as A
from deformcast.algorithms.data import dataset as D
from deformcast.algorithms.data import family, flat_record
from deformcast.algorithms.data import pooling
from deformcast.algorithms.data.baselines import years_between

DATES = np.datetime64("2018-01-03") + np.arange(130) * 12


def _series(n=40, seed=0):
    rng = np.random.default_rng(seed)
    t = years_between(DATES, DATES[0])
    y = (rng.normal(-10, 5, n)[None] * t[:, None] + rng.normal(0, 2, n)[None] * t[:, None] ** 2
         + 3 * np.sin(2 * np.pi * t)[:, None] + rng.normal(0, 1.5, (t.size, n)))
    return y


def _lstsq_forecast(y, dates, start, end, tdates, full):
    """Independent fit: hand-built columns, numpy lstsq, per pixel."""
    t = (dates[start:end + 1] - dates[end]).astype(float) / 365.25
    tp = (tdates - dates[end]).astype(float) / 365.25
    span = t[-1] - t[0]

    def cols(x):
        c = [np.ones_like(x), x]
        if full and span >= 1.9:
            c.append(x * x / 2)
        if full and span >= 0.95:
            c += [np.cos(2 * np.pi * x), np.sin(2 * np.pi * x), np.cos(4 * np.pi * x), np.sin(4 * np.pi * x)]
        return np.stack(c, 1)

    out = np.empty((tp.size, y.shape[1]))
    for i in range(y.shape[1]):
        coef = np.linalg.lstsq(cols(t), y[start:end + 1, i], rcond=None)[0]
        out[:, i] = cols(tp) @ coef
    return out


def test_each_family_member_matches_an_independent_fit():
    y = _series()
    e = 119
    td = DATES[e] + np.arange(1, 16) * 12
    fam = A.family_forecasts(y[:e + 1], DATES[:e + 1], td)
    assert fam.shape == (len(A.FAMILY), 15, y.shape[1])
    d = DATES[:e + 1]

    def start(years):
        return 0 if years is None else int(np.searchsorted(d.astype(int), d[e].astype(int) - round(years * 365.25)))

    got = dict(zip(A.FAMILY_NAMES, fam))
    np.testing.assert_allclose(got["persistence"], np.broadcast_to(y[e], (15, y.shape[1])))
    np.testing.assert_allclose(got["mean_last_5"], np.broadcast_to(y[e - 4:e + 1].mean(0), (15, y.shape[1])))
    for name, full, yrs in (("linear", False, None), ("linear_1y", False, 1.0), ("linear_2y", False, 2.0),
                            ("trajectory_2y", True, 2.0), ("trajectory_3y", True, 3.0), ("trajectory", True, None)):
        np.testing.assert_allclose(got[name], _lstsq_forecast(y, DATES, start(yrs), e, td, full), atol=1e-6,
                                   err_msg=name)
    for name, yrs in (("trajectory_windows", (1.3, 1.8, 2.3, 2.8)), ("trajectory_ensemble", (1.0, 2.0, 3.0, None))):
        starts = sorted({start(v) for v in yrs})
        ref = np.mean([_lstsq_forecast(y, DATES, s, e, td, True) for s in starts], axis=0)
        np.testing.assert_allclose(got[name], ref, atol=1e-6, err_msg=name)
    # the local track record's extra candidate: the velocity of the last half year
    extra = A.family_forecasts(y[:e + 1], DATES[:e + 1], td, members=A.LOCAL_EXTRA)
    assert A.LOCAL_NAMES[len(A.FAMILY):] == ("linear_6m", "seasonal_linear_6m", "seasonal_quadratic_1y",
                                             "seasonal_mean_2m", "seasonal_decay_tau4m", "seasonal_decay_tau7m")
    assert extra.shape == (6, 15, y.shape[1])
    np.testing.assert_allclose(extra[0], _lstsq_forecast(y, DATES, start(0.5), e, td, False), atol=1e-6)
    # the half-year velocity of the series without the seasons of the whole record, the seasons added back
    tt = (DATES[:e + 1] - DATES[e]).astype(float) / 365.25
    tp = (td - DATES[e]).astype(float) / 365.25

    def seasons(t):
        return np.column_stack([np.cos(2 * np.pi * t), np.sin(2 * np.pi * t), np.cos(4 * np.pi * t), np.sin(4 * np.pi * t)])

    full = np.column_stack([np.ones_like(tt), tt, tt ** 2 / 2, seasons(tt)])
    coef = np.linalg.lstsq(full, y[:e + 1], rcond=None)[0][3:]
    s0 = start(0.5)
    ds = y[s0:e + 1] - seasons(tt[s0:]) @ coef
    line = np.linalg.lstsq(np.column_stack([np.ones(e + 1 - s0), tt[s0:]]), ds, rcond=None)[0]
    ref = np.column_stack([np.ones_like(tp), tp]) @ line + seasons(tp) @ coef
    np.testing.assert_allclose(extra[1], ref, atol=1e-6)
    # and a parabola through the last year of it
    s1 = start(1.0)
    ds = y[s1:e + 1] - seasons(tt[s1:]) @ coef
    par = np.linalg.lstsq(np.column_stack([np.ones(e + 1 - s1), tt[s1:], tt[s1:] ** 2 / 2]), ds, rcond=None)[0]
    ref = np.column_stack([np.ones_like(tp), tp, tp ** 2 / 2]) @ par + seasons(tp) @ coef
    np.testing.assert_allclose(extra[2], ref, atol=1e-5)
    # and the level of its last two months (smoothed persistence that keeps the seasons, session 34)
    s2 = start(1.0 / 6.0)
    assert 4 <= e + 1 - s2 <= 6                  # five or six 12-day epochs
    level = (y[s2:e + 1] - seasons(tt[s2:]) @ coef).mean(axis=0)
    np.testing.assert_allclose(extra[3], level[None] + seasons(tp) @ coef, atol=1e-6)
    # and a motion that dies out through its last year, a + b exp(-t / tau), tau 0.3 and 0.6 years (session 36)
    ds = y[s1:e + 1] - seasons(tt[s1:]) @ coef
    for k, tau in ((4, 0.3), (5, 0.6)):
        ab = np.linalg.lstsq(np.column_stack([np.ones(e + 1 - s1), np.exp(-tt[s1:] / tau)]), ds, rcond=None)[0]
        ref = np.column_stack([np.ones_like(tp), np.exp(-tp / tau)]) @ ab + seasons(tp) @ coef
        np.testing.assert_allclose(extra[k], ref, atol=1e-6, err_msg=str(tau))


def test_mean_last_skips_gaps_and_all_nan_pixels_stay_nan():
    y = np.array([[1.0, np.nan, 5.0], [2.0, np.nan, np.nan], [3.0, np.nan, 7.0], [np.nan, np.nan, 9.0]])
    np.testing.assert_allclose(A._mean_last(y, 2), [2.5, np.nan, 8.0])
    fam = A.family_forecasts(np.column_stack([_series(1)[:, 0], np.full(130, np.nan)]), DATES, DATES[-1:] + 12)
    assert np.isfinite(fam[:, :, 0]).all() and np.isnan(fam[:, :, 1]).all()


def test_fit_weights_recover_a_known_combination_on_the_simplex():
    rng = np.random.default_rng(1)
    N, C, Hh = 3000, len(A.FAMILY), 6
    F = rng.normal(0, 5, (N, C, Hh)) + rng.normal(0, 20, (N, 1, 1))  # a common level per window
    w = np.zeros(C)
    w[2], w[5] = 0.7, 0.3
    Y = np.einsum("c,nch->nh", w, F) + rng.normal(0, 0.05, (N, Hh))
    W = A.fit_weights(F, Y)
    assert W.shape == (C, Hh) and (W >= 0).all()
    np.testing.assert_allclose(W.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(W, np.repeat(w[:, None], Hh, 1), atol=0.02)
    # too few rows: equal weights, never a fit on noise
    np.testing.assert_allclose(A.fit_weights(F[:5], Y[:5]), A.default_weights(Hh))
    # recent_rows keeps the last two years of window ends
    ends = np.arange(30, 130)
    keep = A.recent_rows(ends, DATES, min_rows=10)
    assert DATES[ends[keep]].min() >= DATES[129] - 731 and ends[keep].max() == 129


def test_adaptive_prepare_and_forecast_inputs_agree_and_leave_the_test_period_unseen():
    st, grid = _long_scene(seed=3)
    kw = dict(encodings="trajectory,regime", target="residual", baseline="adaptive", max_samples=500,
              validation="space", seed=2)
    a = D.prepare(st, DATES2, grid, 6, 8, **kw)
    W = np.asarray(a.config["anchor_weights"])
    assert W.shape == (len(A.FAMILY), 8) and np.allclose(W.sum(0), 1.0, atol=1e-5)
    assert a.feature_names[-len(A.REGIME_FEATURES):] == A.REGIME_FEATURES
    # the fits weigh each acquisition by its noise (date_weights.py), estimated before the test period
    from deformcast.algorithms.data import date_weights as DW

    ts = a.config["test_start"]
    assert a.config["date_weights"] is True
    dw = DW.from_reader(lambda r0, r1: st[:, r0:r1], DATES2, grid.shape, DATES2.size, ts)
    assert dw and len(dw) == DATES2.size
    tf = DW.time_function(a.config["steps"], dw)
    # the training anchor is the combination of the family from each window's own history
    i = 7
    r, c = divmod(int(a.train.pixel[i]), grid.width)
    e = int(a.train.end[i])
    fam = A.family_forecasts(st[:e + 1, r, c][:, None], DATES2[:e + 1], D.target_dates(DATES2, e, 8), tf)
    np.testing.assert_allclose(a.train.anchor[i], A.combine(fam, W)[:, 0], rtol=1e-4, atol=1e-3)
    # forecast_inputs gives the same anchor and channels for a test window
    j = 3
    r, c = divmod(int(a.test.pixel[j]), grid.width)
    X, valid, anchor = D.forecast_inputs(st, DATES2, grid, 0, dict(a.config, steps=tf), a.norm,
                                         end_index=int(a.test.end[j]))
    k = int(np.cumsum(valid.ravel())[r * grid.width + c]) - 1
    np.testing.assert_allclose(anchor[k], a.test.anchor[j], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(X[k], a.test.X[j], rtol=1e-5, atol=1e-4)
    # garbage in the test period changes nothing training, validation or the anchor weights see
    bad = st.copy()
    bad[ts:] = np.random.default_rng(0).normal(0, 1e4, bad[ts:].shape).astype(np.float32)
    b = D.prepare(bad, DATES2, grid, 6, 8, **kw)
    assert a.config["anchor_weights"] == b.config["anchor_weights"]
    for split in ("train", "val"):
        for key, v in _arrays(getattr(a, split)).items():
            assert v.tobytes() == _arrays(getattr(b, split))[key].tobytes(), (split, key)
    assert json.dumps(a.norm, sort_keys=True) == json.dumps(b.norm, sort_keys=True)


def test_damaged_anchor_weights_are_refused():
    from deformcast.algorithms.errors import DeformCastError

    with pytest.raises(DeformCastError, match="retrain"):
        A.check_weights([[0.5, 0.5]], 3)


def test_known_steps_enter_every_fit_of_the_family():
    t = years_between(DATES, DATES[0])
    step_day = DATES[100]
    y = (-8.0 * t + 2.0 * np.cos(2 * np.pi * t) + 7.0 * (DATES >= step_day))[:, None]
    e = 119
    td = DATES[e] + np.arange(1, 9) * 12
    truth = (-8.0 * years_between(td, DATES[0]) + 2.0 * np.cos(2 * np.pi * years_between(td, DATES[0])) + 7.0)
    with_steps = A.family_forecasts(y[:e + 1], DATES[:e + 1], td, [str(step_day)])
    without = A.family_forecasts(y[:e + 1], DATES[:e + 1], td)
    for name in ("trajectory", "trajectory_2y", "trajectory_windows"):
        c = A.FAMILY_NAMES.index(name)
        np.testing.assert_allclose(with_steps[c, :, 0], truth, atol=1e-6, err_msg=name)
        assert np.abs(without[c, :, 0] - truth).max() > 0.3, name
    # the dates reach the data configuration and its family
    st, grid = _long_scene(seed=1)
    p = D.prepare(st, DATES2, grid, 6, 4, encodings="regime", target="residual", baseline="adaptive",
                  max_samples=200, validation="space", steps=f"{DATES2[40]}, {DATES2[70]}")
    assert p.config["steps"] == [str(DATES2[40]), str(DATES2[70])]


def test_local_forecast_weights_the_family_by_the_neighbourhood_track_record(monkeypatch):
    monkeypatch.setattr(analog, "ANALOG", True)       # its last candidate, off by default (session 49)
    rng = np.random.default_rng(5)
    T, R, Cc = 130, 5, 6
    t = years_between(DATES, DATES[0])
    # left half: a bowl that started a year ago (recent fits win); right half: steady motion + noise on the first two
    # rows, ground without a trend on the others (where the level candidate is offered)
    steady = np.where(np.arange(R)[:, None] < 2, -5.0, 0.0)[None]
    base = steady * t[:, None, None] + rng.normal(0, 1.0, (T, R, Cc))
    onset = np.clip(t - (t[-1] - 1.0), 0, None)[:, None, None]
    y = base + np.where(np.arange(Cc)[None, None] < 3, -40.0 * onset, 0.0)
    td = DATES[-1] + np.arange(1, 9) * 12
    got = A.local_forecast(y, DATES, td, 8)
    # independent: the same record, pooled by explicit loops
    flat = y.reshape(T, -1)
    # the candidates: the family and the extra ones (the velocity of the last half year), fitted per pixel
    # and, last, the spatial analog (session 49; data.analog, tested on its own in test_analog.py), kept in float32
    both = A.FAMILY + A.LOCAL_EXTRA

    def candidates(o, target_dates):
        f = A.family_forecasts(flat[:o + 1], DATES[:o + 1], target_dates, members=both)
        an = analog.analog_forecast(y[:o + 1], 8).astype(np.float32).astype(np.float64)
        return np.concatenate([f, an.reshape(1, 8, -1)[:, :target_dates.size]])

    fam = candidates(T - 1, td)
    nc = len(both) + 1
    # the candidates' origins (session 34): e - 10 (e = T - 1, lead 8, the ensemble's first origin e - 8 - 8 // 3)
    # up to e - 1 every 8 // 5 = 1 epoch, ten origins, each scored on at most 8 epochs up to e
    origins = list(range(T - 11, T - 1))
    assert A.candidate_origins(T - 1, 8) == origins
    h = A.LOCAL_BOX // 2
    # the neighbours weighted by the likeness of their velocity over the last two years (pooling module)
    tt = (DATES - DATES[-1]).astype(float) / 365.25
    m = tt >= -2.0
    vel, se = np.empty(R * Cc), np.empty(R * Cc)
    for j in range(R * Cc):
        (b, a), cov = np.polyfit(tt[m], flat[m, j], 1, cov="unscaled")
        res = flat[m, j] - a - b * tt[m]
        vel[j], se[j] = b, np.sqrt(res @ res / (m.sum() - 2) * cov[0, 0])
    vel, se = vel.reshape(R, Cc), se.reshape(R, Cc)

    def pooled_record(origins):
        err = np.zeros((nc, R * Cc))
        each = []
        for o in origins:
            f = candidates(o, DATES[o + 1:min(T, o + 9)])
            # each origin's record: the squared mean error over its scored epochs (session 41; the mean squared error
            # before)
            each.append(((f - flat[None, o + 1:min(T, o + 9)]).mean(axis=1) ** 2).reshape(-1, R, Cc))
            err += each[-1].reshape(nc, -1) / len(origins)
        err = err.reshape(-1, R, Cc)
        pooled = np.empty_like(err)
        for r in range(R):
            for c in range(Cc):
                # 'nearest' edges: the box clipped to the raster, edge values repeated
                rr = np.clip(np.arange(r - h, r + h + 1), 0, R - 1)
                cc = np.clip(np.arange(c - h, c + h + 1), 0, Cc - 1)
                k = pooling.GUIDE_K
                wn = np.exp(-0.5 * (vel[rr][:, cc] - vel[r, c]) ** 2 / (k * k * (se[rr][:, cc] ** 2 + se[r, c] ** 2)))
                pooled[:, r, c] = (err[:, rr][:, :, cc] * wn).sum(axis=(1, 2)) / wn.sum()
        # shrunk towards the mean record of its class of trend evidence (session 35): five quantile classes of
        # |v| / se; the sampling variance from each origin's record pooled over the plain box; l = s2 / (s2 + spread)
        plain = np.empty((len(origins),) + err.shape)
        for i, eo in enumerate(each):
            for r in range(R):
                for c in range(Cc):
                    rr = np.clip(np.arange(r - h, r + h + 1), 0, R - 1)
                    cc = np.clip(np.arange(c - h, c + h + 1), 0, Cc - 1)
                    plain[i, :, r, c] = eo[:, rr][:, :, cc].mean(axis=(1, 2))
        s2 = plain.var(axis=0, ddof=1).reshape(nc, -1) / len(origins)
        z = (np.abs(vel) / se).reshape(-1)
        edges = np.quantile(z, [0.2, 0.4, 0.6, 0.8])
        cls = np.array([sum(zz > ed for ed in edges) for zz in z])
        pooled = pooled.reshape(nc, -1)
        shrunk = pooled.copy()
        for b in range(5):
            sel = cls == b
            spread = np.maximum(pooled[:, sel].var(axis=1) - s2[:, sel].mean(axis=1), 0.0)
            lam = s2[:, sel] / (s2[:, sel] + spread[:, None])
            shrunk[:, sel] = (1 - lam) * pooled[:, sel] + lam * pooled[:, sel].mean(axis=1)[:, None]
        assert 0.05 < np.mean(np.abs(shrunk - pooled) / pooled) < 0.95      # shrunk, not replaced
        return shrunk

    pooled = pooled_record(origins)
    quiet = (np.abs(vel) < A.TREND_T * se).reshape(-1)
    level_ok = quiet.copy()                     # where the level candidate is offered: the two-year velocity only
    m6 = tt >= -flat_record.FLAT_RECENT_YEARS   # and the last half year's, for the longer record
    for j in np.flatnonzero(quiet):
        (b, a), cov = np.polyfit(tt[m6], flat[m6, j], 1, cov="unscaled")
        res = flat[m6, j] - a - b * tt[m6]
        quiet[j] = abs(b) < A.TREND_T * np.sqrt(res @ res / (m6.sum() - 2) * cov[0, 0])
    # on ground without a trend, the record of twice as many origins going further back (session 47, data.flat_record)
    longer = flat_record.flat_origins(origins, A.candidate_spacing(8))
    if longer:
        assert longer == list(range(T - 21, T - 11))
        pooled = np.where(quiet[None], pooled_record(longer + origins), pooled)
    w = pooled.reshape(nc, -1) ** -A.LOCAL_POWER
    # the level candidate (seasonal_mean_2m) only where the two-year velocity is within 2 standard errors of zero
    level = [i for i, c in enumerate(both) if c[0] in A.LEVEL_CANDIDATES]
    assert [both[i][0] for i in level] == ["seasonal_mean_2m"]
    trending = ~level_ok
    assert trending.any() and (~trending).any()          # both kinds of ground on this stack
    w[level, :] = np.where(trending, 0.0, w[level, :])
    # the analog only where a quarter of its 13 x 13 box holds values (data.analog.MIN_SHARE): not on 5 x 6 pixels
    assert R * Cc < analog.MIN_SHARE * (2 * analog.RADIUS + 1) ** 2
    w[-1] = 0.0
    w /= w.sum(0)
    ref = np.einsum("cn,chn->hn", w, fam).reshape(8, R, Cc)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    # too short a history for any earlier origin (each needs 10 epochs before it): no local forecast
    assert A.candidate_origins(10, 8) == [] and A.candidate_origins(11, 8) == [10]
    assert np.isnan(A.local_forecast(y[:11], DATES[:11], DATES[11:13], 8)).all()
    assert np.isfinite(A.local_forecast(y[:12], DATES[:12], DATES[12:14], 8)).all()


def test_the_family_fitted_in_chunks_of_pixels_is_the_family(monkeypatch):
    """``family_forecasts`` fits large blocks in chunks of pixels (memory, session 19): every pixel's fits are
    its own, with and without known steps."""
    y = _series(n=45, seed=3)
    y[60:, :20] -= 12.0                      # a step that 20 pixels show
    y[:30, 40] = np.nan                      # gaps
    td = DATES[-1] + np.arange(1, 7) * 12
    for steps in (None, [str(DATES[60])]):
        whole = A.family_forecasts(y, DATES, td, steps)
        monkeypatch.setattr(family, "FAMILY_CHUNK", 7)
        chunked = A.family_forecasts(y, DATES, td, steps)
        monkeypatch.undo()
        np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
        assert np.isfinite(whole[:, :, :20]).all()


def test_the_family_as_one_operator_is_the_family_fitted_fit_by_fit():
    """Gap-free pixels get the family as one matrix product (session 26): the members' operator times the series.
    It equals fitting each member (to 1e-9 mm), with gaps beside (fitted one by one), date weights, an exponential
    term, known steps, the extra candidates of the local forecast, and a history too short for some members (NaN
    alike); the members' operator is linear, so forecasting the identity's columns is the operator."""
    from deformcast.algorithms.data.baselines import TimeFunction

    y = _series(n=400, seed=5)
    y[60:, :40] -= 12.0                      # a step that 40 pixels show
    y[:30, 300] = np.nan                     # gaps at a few pixels
    y[-3, 310:315] = np.nan
    td = DATES[-1] + np.arange(1, 9) * 12
    weights = {str(DATES[i]): 0.2 + (i % 7) / 3 for i in range(0, 130, 3)}
    members = tuple(A.FAMILY) + tuple(A.LOCAL_EXTRA)
    for tf in (None, TimeFunction(date_weights=weights), TimeFunction(exp=((str(DATES[80]), 60.0),)),
               TimeFunction(step_dates=(str(DATES[60]),), date_weights=weights)):
        got = A.family_forecasts(y, DATES, td, tf, members)
        ref = np.full_like(got, np.nan)
        for j in range(y.shape[1]):          # each pixel fitted alone: no operator (one pixel is fewer than T)
            ref[:, :, j] = A.family_forecasts(y[:, j:j + 1], DATES, td, tf, members)[:, :, 0]
        np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-9)
        assert np.isfinite(got[:, :, :300]).all()
    for T in (1, 2, 25):                     # one epoch: no line through it (NaN members); two; a year
        short = A.family_forecasts(y[:T], DATES[:T], DATES[T:T + 6])
        alone = np.stack([A.family_forecasts(y[:T, j:j + 1], DATES[:T], DATES[T:T + 6])[:, :, 0]
                          for j in range(y.shape[1])], axis=2)
        np.testing.assert_allclose(short, alone, rtol=1e-11, atol=1e-9)
        np.testing.assert_array_equal(np.isnan(short), np.isnan(alone))
        assert np.isnan(short).all(axis=(1, 2)).any() == (T == 1)


def test_the_family_in_float32_is_the_float64_family_converted():
    """The cache asks for the family in float32 (session 27): the operator's product goes in pixel chunks straight
    into it. The values are those of the float64 family converted, bit for bit, with more pixels than one chunk,
    with and without gaps, with known steps (fitted per step pattern)."""
    from deformcast.algorithms.data import family as F
    from deformcast.algorithms.data.baselines import TimeFunction

    y = _series(n=2 * F.OPERATOR_CHUNK + 300, seed=6)
    td = DATES[-1] + np.arange(1, 7) * 12
    members = tuple(A.FAMILY) + tuple(A.LOCAL_EXTRA)
    gappy = y.copy()
    gappy[5:9, 100:130] = np.nan
    for arr, tf in ((y, None), (gappy, None), (y, TimeFunction(step_dates=(str(DATES[60]),)))):
        f64 = A.family_forecasts(arr, DATES, td, tf, members)
        f32 = A.family_forecasts(arr, DATES, td, tf, members, dtype=np.float32)
        assert f64.dtype == np.float64 and f32.dtype == np.float32
        np.testing.assert_array_equal(f32, f64.astype(np.float32))
    cache = A.FamilyCache(y.reshape(y.shape[0], 1, -1), DATES, 6)
    np.testing.assert_array_equal(cache(100), A.family_forecasts(y[:101], DATES[:101], DATES[101:107])
                                  .astype(np.float32))


def test_a_lean_cache_gives_the_track_records_errors_without_the_family():
    """``predict``'s blocks keep no family from the earlier origins (session 27): the lean cache's errors, made in
    chunks, are the errors of the float32 family every pixel at once, bit for bit (more pixels than a chunk, gaps,
    date weights, a step), and its family on a few pixels is the whole family's there. The local forecast and its
    blend with an ensemble come out the same from a lean cache and a full one."""
    from deformcast.algorithms.data import family as F, track_record as TR
    from deformcast.algorithms.data.baselines import TimeFunction

    y = _series(n=F.OPERATOR_CHUNK + 700, seed=7)
    y[40:44, 10:20] = np.nan
    members = tuple(A.FAMILY) + tuple(A.LOCAL_EXTRA)
    w = 0.5 + (np.arange(130) % 5) / 4
    for tf in (None, TimeFunction(step_dates=(str(DATES[60]),))):
        full = A.FamilyCache(y, DATES, 6, tf)
        lean = A.FamilyCache(y, DATES, 6, tf, lean=True)
        for o, m in ((100, 6), (110, 4)):
            ref = TR.squared_errors(full.both(o), y[o + 1:o + m + 1], w[o + 1:o + m + 1])
            fam = A.family_forecasts(y[:o + 1], DATES[:o + 1], DATES[o + 1:o + 7], tf, members, dtype=np.float32)
            by_record = TR.record(y[:o + m + 1], 6, [o], lambda _: fam, w)
            np.testing.assert_array_equal(by_record, ref)
            np.testing.assert_array_equal(lean.errors(o, m, w[o + 1:o + m + 1]), ref)
            assert full.errors(o, m) is None               # a full cache: the caller takes the family's errors
            px = np.arange(0, y.shape[1], 9)
            np.testing.assert_array_equal(lean.on(o, px), full.both(o)[:, :, px])
        assert not [k for k in lean._memo if k[1] == "both"]   # nothing of the earlier origins kept
    hist, e = y[:121].reshape(121, 1, -1), 120
    td = DATES[e + 1:e + 7]
    now = np.repeat(hist[-1].reshape(1, -1), 6, 0) - 1.0
    lattice = np.zeros(hist.shape[2], bool)
    lattice[::9] = True

    def past(o):
        p = y[o + 1:o + 7].copy()
        p[:, ~lattice] = np.nan
        return p + 0.3

    for lean_ in (False, True):
        c = A.FamilyCache(y[:121], DATES[:121], 6, lean=lean_)
        out = A.local_forecast(hist, DATES[:121], td, 6, past_family=c, ensemble=(now, past))
        if not lean_:
            ref_blend, ref_w = out
    np.testing.assert_array_equal(out[0], ref_blend)
    np.testing.assert_array_equal(out[1], ref_w)


def test_mean_last_takes_the_last_finite_values_across_gaps():
    rng = np.random.default_rng(11)
    y = rng.normal(size=(60, 400))
    y[rng.random(y.shape) < 0.4] = np.nan
    y[-30:, :20] = np.nan            # long gaps at the end: the tail holds fewer than k values
    y[:, 20:25] = np.nan             # never observed
    y[:-1, 25:30] = np.nan           # one value only
    for k in (1, 5, 8):
        ref = np.full(y.shape[1], np.nan)
        for j in range(y.shape[1]):
            v = y[:, j][np.isfinite(y[:, j])]
            if v.size:
                ref[j] = v[-k:].mean()
        np.testing.assert_allclose(A._mean_last(y, k), ref, rtol=1e-12, atol=1e-12)


def test_family_memo_shares_the_family_between_groups_without_changing_any_input():
    """Members with different windows ask for the family of one block in turn: inside family_memo it is
    fitted once and reused (a longer window's pixels are a subset, a new pixel is fitted and added), and so
    are the trajectory and regime channels (session 26); every input and anchor is what a fresh computation
    gives."""
    from deformcast.algorithms.data import features as F

    st, grid = _long_scene(seed=3)
    st = st.copy()
    st[-10:-5, 2, 3] = np.nan            # a gap inside the long window only: fewer pixels there
    preps = [D.prepare(st, DATES2, grid, w, 4, encodings="trajectory,regime", target="residual",
                       baseline="adaptive", max_samples=200, validation="space") for w in (4, 12)]
    assert all(set(p.config["encodings"]) == {"trajectory", "regime"} for p in preps)
    e = st.shape[0] - 1
    fresh = [D.forecast_inputs(st, DATES2, grid, 0, p.config, p.norm, end_index=e) for p in preps]
    calls = {"_family": [], "_trajectory_features": [], "_regime_features": []}
    real = {k: getattr(F, k) for k in calls}

    def counted(k):
        return lambda *a, **kw: calls[k].append(a[2].size) or real[k](*a, **kw)

    try:
        for k in calls:
            setattr(F, k, counted(k))
        with F.family_memo():
            shared = [D.forecast_inputs(st, DATES2, grid, 0, p.config, p.norm, end_index=e) for p in reversed(preps)]
            again = D.forecast_inputs(st, DATES2, grid, 0, preps[1].config, preps[1].norm, end_index=e)
    finally:
        for k, f in real.items():
            setattr(F, k, f)
    # the long window first (fewer pixels), then the short one computes only the pixel it lacks; then nothing
    n_long = fresh[1][2].shape[0]
    assert calls == {k: [n_long, 1] for k in calls}, calls
    for (X, v, a), (X2, v2, a2) in zip(fresh, reversed(shared)):
        assert np.array_equal(v, v2)
        np.testing.assert_array_equal(X, X2)
        np.testing.assert_array_equal(a, a2)
    np.testing.assert_array_equal(again[0], fresh[1][0])
    assert F._MEMO is None               # nothing kept once the memo closes


def test_local_forecast_follows_a_speed_up_of_the_last_months_with_the_half_year_velocity(monkeypatch):
    """A bowl that sped up 9 months before the origin: every window of the family holds the old rate too;
    the half-year velocity (LOCAL_EXTRA) holds only the new one, and the track record picks it. (The spatial analog,
    off here, follows it too: its own path a few epochs back has the new rate.)"""
    monkeypatch.setattr(analog, "ANALOG", False)
    rng = np.random.default_rng(11)
    T, R, Cc, L = 130, 6, 6, 10
    dates = np.datetime64("2018-01-03") + np.arange(T + L) * 12
    t = years_between(dates, dates[0])
    t_break = t[T - 1] - 9 / 12
    law = -10.0 * t - 60.0 * np.clip(t - t_break, 0, None)               # mm: 10 mm/yr, then 70 mm/yr
    truth = np.broadcast_to(law[:, None, None], (T + L, R, Cc))
    y = truth[:T] + rng.normal(0, 1.0, (T, R, Cc))
    td = dates[T:T + L]

    def rmse(f):
        return float(np.sqrt(np.mean((f - truth[T:]) ** 2)))

    with_extra = rmse(A.local_forecast(y, dates[:T], td, L))
    monkeypatch.setattr(A, "LOCAL_EXTRA", ())
    without = rmse(A.local_forecast(y, dates[:T], td, L))
    assert with_extra < 0.6 * without, (with_extra, without)


def test_local_forecast_follows_a_bowl_that_is_slowing_down_with_the_decay_candidates(monkeypatch):
    """A bowl whose motion has been dying out for two years (60 mm, time constant 0.8 years): every line and
    parabola of the family and of the short windows overshoots it at the horizon, persistence undershoots; the
    candidates ``a + b exp(-t / tau)`` through the last year follow it and the track record picks them."""
    rng = np.random.default_rng(3)
    T, R, Cc, L = 130, 6, 6, 15
    dates = np.datetime64("2018-01-03") + np.arange(T + L) * 12
    t = years_between(dates, dates[0])
    law = -3.0 * t - 60.0 * (1 - np.exp(-np.clip(t - (t[T - 1] - 2.0), 0, None) / 0.8))
    truth = np.broadcast_to(law[:, None, None], (T + L, R, Cc))
    y = truth[:T] + rng.normal(0, 1.0, (T, R, Cc))
    td = dates[T:T + L]

    def rmse(f):
        return float(np.sqrt(np.mean((f - truth[T:]) ** 2)))

    assert [c[0] for c in A.LOCAL_EXTRA if c[1] == family.SEASONAL_DECAY] == ["seasonal_decay_tau4m",
                                                                             "seasonal_decay_tau7m"]
    with_decay = rmse(A.local_forecast(y, dates[:T], td, L))
    monkeypatch.setattr(A, "LOCAL_EXTRA", tuple(c for c in A.LOCAL_EXTRA if c[1] != family.SEASONAL_DECAY))
    without = rmse(A.local_forecast(y, dates[:T], td, L))
    assert with_decay < 0.85 * without, (with_decay, without)


def test_an_extra_candidate_without_a_forecast_does_not_take_a_pixel_s_local_forecast_away(monkeypatch):
    """Gaps in the last half year leave the half-year velocity without a fit at a pixel: the local
    forecast there is the family's alone (as without the extra candidate), not NaN."""
    rng = np.random.default_rng(0)
    T = 130
    dates = np.datetime64("2018-01-03") + np.arange(T + 8) * 12
    y = -5.0 * np.arange(T)[:, None, None] / 30 + rng.normal(0, 1, (T, 4, 4))
    y[-16:-1, 0, 0] = np.nan            # one value left in the last half year
    y[-16:, 1, 1] = np.nan              # none
    # the half-year candidates (a year-long one still has values there)
    monkeypatch.setattr(A, "LOCAL_EXTRA", tuple(c for c in A.LOCAL_EXTRA if c[2] == 0.5))
    assert len(A.LOCAL_EXTRA) == 2
    extra = A.family_forecasts(y.reshape(T, -1), dates[:T], dates[T:], members=A.LOCAL_EXTRA)
    assert np.isnan(extra[:, :, [0, 5]]).all() and np.isfinite(extra[:, :, 2]).all()
    got = A.local_forecast(y, dates[:T], dates[T:], 8)
    assert np.isfinite(got).all()
    monkeypatch.setattr(A, "LOCAL_EXTRA", ())
    alone = A.local_forecast(y, dates[:T], dates[T:], 8)
    np.testing.assert_allclose(got[:, 0, 0], alone[:, 0, 0], rtol=1e-9)
    np.testing.assert_allclose(got[:, 1, 1], alone[:, 1, 1], rtol=1e-9)


def test_scattered_points_get_the_local_forecast_of_their_own_record():
    """Persistent scatterers imported onto a grid leave most pixels NaN at every date: a point with no
    neighbour inside the box pools its own track record only, so its local forecast is the one its series
    gets alone; the empty pixels stay NaN and nothing leaks between points."""
    rng = np.random.default_rng(11)
    T, R, Cc = 130, 20, 20
    y = np.full((T, R, Cc), np.nan)
    pts = [(0, 0), (0, 19), (19, 19), (9, 3), (10, 18), (17, 8)]      # corners, edges, inside; no two in a box
    series = _series(len(pts), seed=3)
    for j, (r, c) in enumerate(pts):
        y[:, r, c] = series[:, j] + rng.normal(0, 1.0)
    td = DATES[-1] + np.arange(1, 9) * 12
    got = A.local_forecast(y, DATES, td, 8)
    assert np.isfinite(got[:, [r for r, _ in pts], [c for _, c in pts]]).all()
    assert np.isnan(np.delete(got.reshape(8, -1), [r * Cc + c for r, c in pts], axis=1)).all()
    for r, c in pts:
        alone = A.local_forecast(y[:, r:r + 1, c:c + 1], DATES, td, 8)[:, 0, 0]
        np.testing.assert_allclose(got[:, r, c], alone, rtol=1e-9, atol=1e-9)


def test_the_season_origin_is_a_year_back_and_scores_the_candidates_not_the_ensemble(monkeypatch):
    """Session 32: the classical candidates' local track record also scores them from the acquisition nearest to a
    year before the origin (the season a half-year forecast covers); only where its whole lead lies in the history,
    its date is near a year back and it has 10 epochs of history. The ensemble's record keeps the recent origins:
    its training windows held the older targets. Off by default (measured, not taken): none then."""
    d12 = np.datetime64("2018-01-03") + np.arange(150) * 12
    assert A.LOCAL_SEASON_ORIGINS == 0 and A.season_origins(d12, 149, 15) == []
    monkeypatch.setattr(A, "LOCAL_SEASON_ORIGINS", 1)
    assert A.season_origins(d12, 149, 15) == [119]                 # 360 days back (372 days is farther)
    d6 = np.datetime64("2018-01-03") + np.arange(300) * 6
    assert A.season_origins(d6, 299, 15) == [238]                  # 366 days back
    assert A.season_origins(d12, 40, 15) == [10]                   # 10 epochs of history before it: enough
    assert A.season_origins(d12, 38, 15) == []                     # 8: too few
    assert A.season_origins(d12, 40, 35) == []                     # its lead would reach past the forecast origin
    gap = np.concatenate([d12[:100], d12[130:]])                   # no acquisition within 60 days of a year back
    assert A.season_origins(gap, gap.size - 1, 15) == []
    monkeypatch.setattr(A, "LOCAL_SEASON_ORIGINS", 2)
    assert A.season_origins(d12, 149, 15) == [114, 119]            # the second a spacing (15 // 3) further back
    monkeypatch.setattr(A, "LOCAL_SEASON_ORIGINS", 1)

    rng = np.random.default_rng(3)
    T, R, Cc, L = 130, 4, 5, 8
    t = years_between(DATES, DATES[0])
    y = (-8.0 * t + 4.0 * np.sin(2 * np.pi * t))[:, None, None] + rng.normal(0, 1.0, (T, R, Cc))
    td = DATES[-1] + np.arange(1, L + 1) * 12
    e = T - 1
    recent = A.local_origins(e, L)
    cands = A.candidate_origins(e, L)
    season = A.season_origins(DATES[:T], e, L)
    assert season == [e - 30] and not set(season) & set(cands)
    got = A.local_forecast(y, DATES[:T], td, L)
    np.testing.assert_allclose(got, A.local_forecast(y, DATES[:T], td, L, origins=cands + season), atol=1e-12)
    assert np.abs(got - A.local_forecast(y, DATES[:T], td, L, origins=cands)).max() > 1e-6   # it does weigh
    asked = []

    def past(o):
        asked.append(o)
        return A.local_forecast(y[:o + 1], DATES[:o + 1], DATES[o + 1:o + L + 1], L).reshape(L, -1)

    A.local_forecast(y, DATES[:T], td, L, ensemble=(got.reshape(L, -1), past))
    assert sorted(set(asked)) == sorted(recent)                     # the ensemble's record: the recent origins only
    monkeypatch.setattr(A, "LOCAL_SEASON_ORIGINS", 0)               # off (the default)
    np.testing.assert_allclose(A.local_forecast(y, DATES[:T], td, L),
                               A.local_forecast(y, DATES[:T], td, L, origins=cands), atol=1e-12)


def test_the_candidates_record_is_denser_over_the_recent_span_and_the_ensembles_keeps_its_origins(monkeypatch):
    """Session 34: the classical candidates are scored from every ``lead // 5`` epochs over the span of the ensemble's
    four origins (``e - lead - lead // 3`` .. ``e - 1``), never from the forecast origin or after it; the ensemble's
    blend weight keeps :func:`local_origins`; ``LOCAL_CANDIDATES = "recent"`` gives the record of sessions 4-33."""
    assert A.LOCAL_CANDIDATES == "dense"
    assert A.local_origins(149, 15) == [129, 134, 139, 144]
    assert A.candidate_origins(149, 15) == [129, 132, 135, 138, 141, 144, 147]
    assert A.candidate_origins(149, 30) == [109, 115, 121, 127, 133, 139, 145]
    assert A.candidate_origins(149, 3) == [145, 146, 147, 148]
    assert A.candidate_origins(14, 15) == [12]                     # at least 10 epochs of history before an origin
    for e, L in ((149, 15), (60, 30), (40, 8), (200, 1)):
        got = A.candidate_origins(e, L)
        assert got and all(10 <= o < e for o in got) and got[0] >= e - L - A.local_spacing(L)
    rng = np.random.default_rng(8)
    T, L = 120, 9
    t = years_between(DATES, DATES[0])[:T]
    onset = np.clip(t - (t[-1] - 0.7), 0, None)
    y = (-6.0 * t - 30.0 * onset)[:, None, None] + rng.normal(0, 1.5, (T, 3, 4))
    td = DATES[T - 1] + np.arange(1, L + 1) * 12
    e = T - 1
    dense = A.local_forecast(y, DATES[:T], td, L)
    np.testing.assert_allclose(dense, A.local_forecast(y, DATES[:T], td, L, origins=A.candidate_origins(e, L)),
                               atol=1e-12)
    asked = []

    def past(o):
        asked.append(o)
        return np.zeros((L, 12))

    A.local_forecast(y, DATES[:T], td, L, ensemble=(dense.reshape(L, -1), past))
    assert sorted(set(asked)) == A.local_origins(e, L)              # the ensemble's record: its four origins
    monkeypatch.setattr(A, "LOCAL_CANDIDATES", "recent")
    assert A.candidate_origins(e, L) == A.local_origins(e, L)
    recent = A.local_forecast(y, DATES[:T], td, L)
    np.testing.assert_allclose(recent, A.local_forecast(y, DATES[:T], td, L, origins=A.local_origins(e, L)),
                               atol=1e-12)
    assert np.abs(recent - dense).max() > 1e-6


def test_empty_cells_of_gridded_points_are_nan_and_never_fitted(monkeypatch):
    """Points gridded onto a raster leave most cells without any value (session 41: 442 of 138 000 cells). The
    family is NaN there without a fit; the cells with values get the family they get alone, gaps or not."""
    y = _series(n=30, seed=5)
    y[:40, :6] = np.nan                       # gaps: fitted one fit at a time
    grid = np.full((y.shape[0], 300), np.nan)
    cols = np.sort(np.random.default_rng(1).choice(300, 30, replace=False))
    grid[:, cols] = y
    td = DATES[-1] + np.arange(1, 7) * 12
    fitted = []
    chunk = family._family_chunk

    def spy(yy, *a, **k):
        fitted.append(yy.shape[1])
        return chunk(yy, *a, **k)

    monkeypatch.setattr(family, "_family_chunk", spy)
    got = A.family_forecasts(grid, DATES, td, members=A.FAMILY + A.LOCAL_EXTRA)
    alone = A.family_forecasts(y, DATES, td, members=A.FAMILY + A.LOCAL_EXTRA)
    np.testing.assert_allclose(got[:, :, cols], alone, rtol=1e-10, atol=1e-10)
    assert np.isfinite(alone).all() and np.isnan(np.delete(got, cols, axis=2)).all()
    assert sum(fitted) <= 2 * (y.shape[0] + y.shape[1])      # the identity's columns and the gapped pixels, no empty cell
