"""Each acquisition's weight in the classical fits (algorithms.data.date_weights): the noise of each date found
on a stack with known noise levels, weighted fits against independent weighted least squares, no look-ahead
past the split, and the members of a model folder given the stack's weights only when trained with them."""
import os
import types

import numpy as np
import pytest

from deformcast.algorithms.data import anchors as A
from deformcast.algorithms.data import date_weights as DW
from deformcast.algorithms.data.baselines import TimeFunction, as_time_function, design_matrix, fit_predict, \
    fit_stats, years_between

T, H, W = 120, 30, 40
DATES = np.datetime64("2018-01-05") + np.arange(T) * 12
T_YEARS = years_between(DATES, DATES[0])


def _scene(seed=0):
    """Pixels with their own velocity, acceleration and season, a subsidence bowl that starts inside the record,
    and white noise whose level changes from date to date (1.5 mm, every seventh date 4-8 mm): the stack, the
    noise-free motion and each date's noise sd."""
    rng = np.random.default_rng(seed)
    t = T_YEARS
    vel = rng.normal(-6, 5, (H, W))
    acc = rng.normal(0, 1, (H, W))
    amp = rng.uniform(0, 3, (H, W))
    motion = (vel[None] * t[:, None, None] + 0.5 * acc[None] * t[:, None, None] ** 2
              + amp[None] * np.sin(2 * np.pi * t)[:, None, None])
    yy, xx = np.mgrid[0:H, 0:W]
    bowl = np.exp(-((yy - 15) ** 2 + (xx - 12) ** 2) / 30.0)
    motion += -40 * bowl[None] * np.clip(t - 2.0, 0, None)[:, None, None]
    sd = np.full(T, 1.5)
    bad = np.arange(3, T, 7)
    sd[bad] = rng.uniform(4, 8, bad.size)
    noise = rng.normal(0, 1, (T, H, W)) * sd[:, None, None]
    return (motion + noise).astype(np.float32), motion, sd


def _lattice(st, n):
    return st[:n].reshape(n, -1).astype(np.float64)


def test_each_dates_noise_is_found_and_weighs_it():
    st, _, sd = _scene()
    s = DW.date_spread(_lattice(st, T), DATES)
    assert s.shape == (T,)
    # the estimate follows the true noise of each date (bowl and seasons are not taken for noise)
    assert np.corrcoef(s, sd)[0, 1] > 0.95
    np.testing.assert_allclose(np.median(s[sd == 1.5]), 1.5, rtol=0.15)
    w = DW.weights_from_spread(s)
    assert np.median(w[sd == 1.5]) > 0.8 and (w[sd >= 4] < 0.3).all() and np.median(w[sd >= 4]) < 0.15
    assert w.max() <= 1.0 / DW.FLOOR ** 2 + 1e-9


def test_the_noisiest_dates_are_listed_for_the_report():
    st, _, sd = _scene()
    dw = DW.estimate(_lattice(st, T), DATES, T)
    listed = DW.noisiest(dw, top=5)
    assert len(listed) == 5 and all(w < DW.NOISY_WEIGHT for _, w in listed)
    assert [w for _, w in listed] == sorted(w for _, w in listed)
    assert all(sd[list(DATES).index(np.datetime64(d))] >= 4 for d, _ in listed)   # bad dates only
    assert DW.noisiest(None) == [] and DW.noisiest({DATES[0]: 1.0}) == []
    early = DW.noisiest(dw, before=DATES[40])
    assert early and all(np.datetime64(d) < DATES[40] for d, _ in early)


def test_no_estimate_from_too_few_pixels_or_epochs():
    st, _, _ = _scene()
    assert DW.date_spread(_lattice(st, T)[:, :10], DATES) is None
    assert DW.date_spread(_lattice(st, 8), DATES[:8]) is None
    assert DW.estimate(_lattice(st, T)[:, :10], DATES, T) is None


def test_dates_before_the_split_never_see_what_follows_it():
    st, _, _ = _scene()
    y = _lattice(st, T)
    split = 100
    a = DW.estimate(y, DATES, split)
    bad = y.copy()
    bad[split:] = np.random.default_rng(1).normal(0, 1e4, bad[split:].shape)
    bad[split + 3, :5] = np.nan          # and gaps there
    b = DW.estimate(bad, DATES, split)
    assert len(a) == len(b) == T
    for d in DATES[:split]:
        assert a[d] == b[d]
    assert not all(a[d] == b[d] for d in DATES[split:])
    # a date's weight never depends on later dates: the record cut after any date gives it the same
    for cut in (split + 1, split + 7, T - 1):
        c = DW.estimate(y[:cut], DATES[:cut], split)
        assert all(c[d] == a[d] for d in DATES[:cut])
    # the reader form takes a lattice of the stack (any block height: the same pixels)
    r = DW.from_reader(lambda r0, r1: st[:, r0:r1], DATES, (H, W), T, split, block_rows=7)
    assert r == DW.from_reader(lambda r0, r1: st[:, r0:r1], DATES, (H, W), T, split, block_rows=64)



def test_later_dates_take_the_pixels_complete_up_to_them():
    """The weights of dates after the split, from a stack with gaps before and after it, equal the definition
    taken date by date: each date's one-step spread over the pixels with a value at every date up to it, scaled by
    the median ratio of the two estimates over the last dates before the split (session 28 finds the complete
    pixels in one pass)."""
    st, _, _ = _scene(3)
    y = _lattice(st, T)
    rng = np.random.default_rng(5)
    split = 90
    for t, k in ((20, 30), (70, 40), (split + 2, 60), (split + 11, 90), (T - 1, 100)):
        y[t, rng.choice(y.shape[1], k, replace=False)] = np.nan      # gaps: pixels drop out from that date on
    got = DW.estimate(y, DATES, split)
    full = np.isfinite(y[:split]).all(axis=0)
    s_pre = DW.date_spread(y[:split][:, full], DATES[:split])
    scale = float(np.median(s_pre))
    k = int(min(DW.CALIBRATION_DATES, split - DW.MIN_EPOCHS))
    c = np.array([DW.one_step_spread(y[:t + 1][:, full], DATES, t) for t in range(split - k, split)])
    ratio = float(np.median(s_pre[split - k:] / c))
    for t in range(split, T):
        keep = np.isfinite(y[:t + 1]).all(axis=0)
        assert keep.sum() < full.sum() or t < split + 2
        want = DW.weights_from_spread(np.array([DW.one_step_spread(y[:t + 1][:, keep], DATES, t) * ratio]), scale)[0]
        assert got[DATES[t]] == pytest.approx(want, rel=1e-12), t
    for t in range(split):
        assert got[DATES[t]] == pytest.approx(DW.weights_from_spread(s_pre, scale)[t], rel=1e-12)

def _wls(y, A_, P, w):
    sw = np.sqrt(w)[:, None]
    out = P @ np.linalg.lstsq(A_ * sw, np.reshape(y, (len(y), -1)) * sw, rcond=None)[0]
    return out if np.ndim(y) == 2 else out[:, 0]


def test_weighted_fits_match_independent_weighted_least_squares():
    st, _, sd = _scene()
    e = 99
    y = st[:e + 1].reshape(e + 1, -1)[:, :50].astype(np.float64)
    y[[5, 40], 3] = np.nan                        # a pixel with gaps takes the per-pixel path
    d = DATES[:e + 1]
    w = 1.0 / sd[:e + 1] ** 2
    tf = TimeFunction(date_weights=dict(zip(d.tolist(), w.tolist())))
    assert bool(tf) and len(tf) == 0 and as_time_function(tf) is tf
    assert not TimeFunction() and as_time_function(TimeFunction()) is None
    t_fit = years_between(d, d[-1])
    td = DATES[e] + np.arange(1, 9) * 12
    t_pred = years_between(td, d[-1])
    got = fit_predict(y, t_fit, t_pred, 2, (1.0, 0.5), time_function=tf, ref=d[-1])
    A_, P = design_matrix(t_fit), design_matrix(t_pred)
    for p in (0, 3, 17):
        ok = np.isfinite(y[:, p])
        np.testing.assert_allclose(got[:, p], _wls(y[ok, p], A_[ok], P, w[ok]), atol=1e-8)
    coef = fit_stats(y, t_fit, t_pred, time_function=tf, ref=d[-1])[0]
    np.testing.assert_allclose(design_matrix(t_pred) @ coef[:, [0, 3]], got[:, [0, 3]], atol=1e-8)
    # unlisted dates weigh 1: the weights of the listed ones only
    assert tf.weights_at(d[-1], years_between(np.array([d[0], DATES[-1] + 36]), d[-1])).tolist() == [w[0], 1.0]
    # the family's trajectory on 3 years is the same weighted fit of its own window
    fam = A.family_forecasts(y[:, :5], d, td, tf)
    c = A.FAMILY_NAMES.index("trajectory_3y")
    s0 = A._start(d, e, 3.0)
    A3, P3 = design_matrix(years_between(d[s0:], d[-1])), design_matrix(t_pred)
    np.testing.assert_allclose(fam[c][:, 0], _wls(y[s0:, 0], A3, P3, w[s0:]), atol=1e-8)
    # without weights: ordinary least squares, as before
    np.testing.assert_allclose(fit_predict(y[:, :2], t_fit, t_pred, 2, (1.0, 0.5)),
                               _wls(y[:, :2], A_, P, np.ones(e + 1)), atol=1e-8)


def test_weighted_fits_forecast_better_where_dates_differ_in_noise():
    st, motion, _ = _scene()
    errs = {"ols": [], "wls": []}
    for e in range(90, T - 8, 4):
        y = st[:e + 1].reshape(e + 1, -1)
        dw = DW.estimate(y, DATES[:e + 1], e + 1)
        td = DATES[e + 1:e + 9]
        truth = motion[e + 1:e + 9].reshape(8, -1)
        for key, tf in (("ols", None), ("wls", DW.time_function([], dw))):
            f = A.family_forecasts(y, DATES[:e + 1], td, tf)[A.FAMILY_NAMES.index("trajectory_2y")]
            errs[key].append(np.sqrt(np.mean((f - truth) ** 2)))
    assert np.mean(errs["wls"]) < 0.9 * np.mean(errs["ols"])


def test_members_get_the_stacks_weights_only_when_trained_with_them(tmp_path):
    from deformcast.algorithms.io import raster

    st, _, _ = _scene()
    path = str(tmp_path / "stack.tif")
    raster.write_stack(path, st, DATES, raster.make_grid(500000.0, 5700000.0, 20.0, W, H))
    info = raster.open_stack(path)
    test = [raster.iso(DATES[100]), raster.iso(DATES[-1])]
    on = types.SimpleNamespace(meta={"data_config": {"date_weights": True, "steps": ["2019-06-01"],
                                                     "split_dates": {"test": test}}})
    off = types.SimpleNamespace(meta={"data_config": {"steps": []}})
    DW.bind([on, off], info)
    tf = on.meta["data_config"]["steps"]
    assert isinstance(tf, TimeFunction) and tf.step_dates == (np.datetime64("2019-06-01"),)
    assert len(tf.date_weights) == T
    assert off.meta["data_config"]["steps"] == []
    # the weights are those training saw
    y = raster.read_stack(info).reshape(T, -1)
    assert dict(tf.date_weights) == DW.estimate(y, DATES, 100)
    # a forecast from an earlier origin reads nothing after it
    DW.bind([on2 := types.SimpleNamespace(meta={"data_config": dict(on.meta["data_config"], steps=[])})], info, 109)
    assert len(on2.meta["data_config"]["steps"].date_weights) == 110


def test_each_training_target_weighs_as_its_date(monkeypatch):
    """The networks' loss weighs each target by the weight of its date (sample_weights), the dates of the test
    period never among them; switched off, every target alike."""
    from deformcast.algorithms.data.dataset import prepare

    st, _, sd = _scene()
    prep = prepare(st, DATES, None, window=12, horizon=6, encodings=("none",), validation="time")
    assert prep.date_weights
    w = {np.datetime64(k, "D"): v for k, v in prep.date_weights.items()}
    for split in ("train", "val"):
        s = getattr(prep, split)
        sw = DW.sample_weights(prep, split)
        assert sw.shape == s.Y.shape and sw.dtype == np.float32
        for i in np.linspace(0, len(s) - 1, 25).astype(int):
            for k in range(6):
                assert sw[i, k] == pytest.approx(w[DATES[s.end[i] + 1 + k]], rel=1e-6)
        # the noisy dates weigh little in the loss
        bad = sd[s.end[:, None] + 1 + np.arange(6)[None]] >= 4
        assert sw[bad].mean() < 0.2 < sw[~bad].mean()
    test_start = np.datetime64(prep.config["split_dates"]["test"][0], "D")
    assert max(DATES[e + 6] for e in prep.val.end) < test_start
    monkeypatch.setattr(DW, "LOSS_WEIGHTS", False)
    assert DW.sample_weights(prep, "train") is None


def test_the_track_record_weighs_each_target_date():
    """The local track record's errors weigh each target date by its date weight (track_record.record): a date
    of weight ~0 says nothing about which forecast tracks the ground, whatever it holds."""
    from deformcast.algorithms.data import track_record as TR

    rng = np.random.default_rng(4)
    T_, n = 40, 50
    flat = rng.normal(0, 1, (T_, n))
    w = np.ones(T_)
    w[[31, 34]] = 1e-9
    f = rng.normal(0, 1, (2, 10, n))
    origins = [25, 28, 30]

    def forecasts(o):
        return f

    rec = TR.record(flat, 10, origins, forecasts, w)
    spoiled = flat.copy()
    spoiled[[31, 34]] += 50.0
    np.testing.assert_allclose(TR.record(spoiled, 10, origins, forecasts, w), rec, atol=1e-6)
    # without weights the same dates move it, and with even weights it is the plain mean
    assert np.abs(TR.record(spoiled, 10, origins, forecasts) - rec).min() > 50   # 50 mm at two of ~10 dates
    np.testing.assert_allclose(TR.record(flat, 10, origins, forecasts, np.ones(T_)),
                               TR.record(flat, 10, origins, forecasts))
    # the weights come from the time function's date weights, one per epoch
    tf = TimeFunction(date_weights={DATES[3]: 0.25})
    tw = TR.target_weights(tf, DATES[:10])
    assert tw.shape == (10,) and tw[3] == 0.25 and (np.delete(tw, 3) == 1).all()
    assert TR.target_weights(None, DATES[:10]) is None


def test_predicts_processes_take_the_weights_estimated_once(tmp_path, monkeypatch):
    """Session 29: ``predict`` estimates the date weights once (:func:`date_weights.prefetch`, the members' splits read
    from their model.json), and its local processes and Dask workers take them with the stack's job
    (``distributed.stack_job`` / ``stack_info``) instead of each reading the whole stack again: the same weights,
    bound without a read."""
    from deformcast.algorithms.io import raster
    from deformcast.algorithms.maps import distributed

    st, _, _ = _scene()
    path = str(tmp_path / "stack.tif")
    raster.write_stack(path, st, DATES, raster.make_grid(500000.0, 5700000.0, 20.0, W, H))
    info = raster.open_stack(path)
    cfg = {"date_weights": True, "steps": [], "split_dates": {"test": [raster.iso(DATES[100]), raster.iso(DATES[-1])]}}
    DW._MEMO.clear()
    DW.prefetch(info, [cfg, dict(cfg), {"steps": []}], 109)     # one split among them: one estimate
    assert len(DW._MEMO) == 1
    job = distributed.stack_job(info)
    DW._MEMO.clear()                                             # another process: nothing estimated there

    def no_read(*a, **k):
        raise AssertionError("the stack was read again for its date weights")

    monkeypatch.setattr(raster, "read_stack", no_read)
    there = distributed.stack_info(job)
    m = types.SimpleNamespace(meta={"data_config": dict(cfg)})
    DW.bind([m], there, 109)
    monkeypatch.undo()
    y = raster.read_stack(info).reshape(T, -1)[:110]
    assert dict(m.meta["data_config"]["steps"].date_weights) == DW.estimate(y, DATES[:110], 100)
    # a stack changed since then is estimated afresh (its modification time is part of the key)
    DW._MEMO.clear()
    DW.remember(job["date_weights"])
    st2 = st.copy()
    st2[50] += 9.0
    raster.write_stack(path, st2, DATES, raster.make_grid(500000.0, 5700000.0, 20.0, W, H))
    os.utime(path, (1e9, 1e9))
    fresh = DW.for_stack(raster.open_stack(path), 100, 109)
    assert fresh != job["date_weights"][0][1]
