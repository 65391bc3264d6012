"""Windows, splits, encodings and block-wise inputs of algorithms.data.dataset (no leakage)."""
import json

import numpy as np
import pytest

from deformcast.algorithms.data import dataset as D
from deformcast.algorithms.data.baselines import forecast_baselines, years_between
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress
from deformcast.algorithms.io.raster import make_grid, open_stack, write_stack

T, H, W = 60, 14, 17
DATES = np.datetime64("2020-01-05") + np.arange(T) * 12
GRID = make_grid(500000.0, 5700000.0, 20.0, W, H)
ALL_ENC = "temporal,spatial,neighbourhood,covariates"


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    t = years_between(DATES, DATES[0])
    vel = rng.normal(-15, 6, (H, W))
    st = vel[None] * t[:, None, None] + 4 * np.sin(2 * np.pi * t)[:, None, None] + rng.normal(0, 0.7, (T, H, W))
    st = st.astype(np.float32)
    st[:, 2, 3] = np.nan  # dead pixel
    st[10:14, 5, 6] = np.nan  # gap
    cov = {"dem": rng.normal(300, 40, (H, W)), "fault_dist": rng.uniform(0, 1000, (H, W))}
    return st, cov


def _arrays(s):
    return {k: getattr(s, k) for k in ("X", "Y", "anchor", "truth", "pixel", "end", "holdout")}


@pytest.mark.parametrize("target", ["increment", "residual"])
def test_test_epochs_as_garbage_change_nothing_seen_by_training(target):
    st, cov = _scene()
    kw = dict(encodings=ALL_ENC, covariates=cov, target=target, max_samples=300, spatial_holdout=0.25,
              holdout_block=4, fourier=1, seed=3)
    a = D.prepare(st, DATES, GRID, 10, 3, **kw)
    bad = st.copy()
    ts = a.config["test_start"]
    rng = np.random.default_rng(9)
    bad[ts:] = rng.normal(0, 1e4, bad[ts:].shape).astype(np.float32)
    bad[ts:, ::3] = np.nan
    b = D.prepare(bad, DATES, GRID, 10, 3, **kw)
    for split in ("train", "val"):
        for k, v in _arrays(getattr(a, split)).items():
            assert v.tobytes() == _arrays(getattr(b, split))[k].tobytes(), (split, k)
    assert json.dumps(a.norm, sort_keys=True) == json.dumps(b.norm, sort_keys=True)
    assert a.config == b.config
    assert not np.array_equal(a.test.truth, b.test.truth)  # the garbage did reach the test split


def test_split_boundaries_and_exhaustive_sampling(monkeypatch):
    # the targets as the stack holds them (each date's common noise out of them: tests/test_common_mode.py)
    monkeypatch.setattr(D.common_mode, "TARGET_COMMON_MODE", False)
    st, _ = _scene()
    window, horizon = 8, 4
    p = D.prepare(st, DATES, GRID, window, horizon, max_samples=10 ** 6)
    c = p.config
    # defaults: 10 % of 60 = 6 epochs each for validation and test
    assert (c["n_val"], c["n_test"], c["train_end"], c["val_end"], c["test_start"]) == (6, 6, 48, 54, 54)
    assert c["split_dates"]["test"] == [str(DATES[54]), str(DATES[59])]
    tr, va, te = p.train, p.val, p.test
    assert (tr.end - window + 1).min() >= 0
    assert (tr.end + horizon).max() == 47  # all training targets < train_end
    assert (va.end + 1).min() == 48 and (va.end + horizon).max() == 53
    assert (te.end + 1).min() == 54 and (te.end + horizon).max() == 59
    # every valid (pixel, end) pair is present exactly once
    finite = np.isfinite(st.reshape(T, -1))
    expected = 0
    for e in range(window - 1, 48 - horizon):
        expected += int(finite[e - window + 1:e + horizon + 1].all(axis=0).sum())
    assert len(tr) == expected
    assert len(set(zip(tr.pixel.tolist(), tr.end.tolist()))) == expected
    dead = 2 * W + 3
    assert dead not in set(tr.pixel.tolist())
    gap = 5 * W + 6
    ends_gap = tr.end[tr.pixel == gap]
    assert not np.any((ends_gap - window + 1 <= 13) & (ends_gap + horizon >= 10))
    # targets are the true displacements, anchors the last input, Y the scaled increment
    r, col = tr.rows_cols(W)
    np.testing.assert_array_equal(tr.truth[:, 0], st[tr.end + 1, r, col])
    np.testing.assert_array_equal(tr.anchor[:, 0], st[tr.end, r, col])
    np.testing.assert_allclose(D.to_mm(tr.Y, tr.anchor, p.norm), tr.truth, atol=1e-4)
    assert tr.X.shape == (len(tr), window, 1) and tr.X.dtype == np.float32 and tr.Y.shape == (len(tr), horizon)
    json.dumps(p.norm), json.dumps(p.config)


def test_sampling_cap_seed_and_stride():
    st, _ = _scene()
    a = D.prepare(st, DATES, GRID, 8, 2, max_samples=200, seed=1)
    b = D.prepare(st, DATES, GRID, 8, 2, max_samples=200, seed=1)
    c = D.prepare(st, DATES, GRID, 8, 2, max_samples=200, seed=2)
    assert len(a.train) == 200 and len(a.val) == 200
    assert a.train.X.tobytes() == b.train.X.tobytes()
    assert not np.array_equal(a.train.pixel, c.train.pixel)
    # the sample is a subset of the exhaustive one and spread over pixels and times
    full = D.prepare(st, DATES, GRID, 8, 2, max_samples=10 ** 6, seed=1)
    allp = set(zip(full.train.pixel.tolist(), full.train.end.tolist()))
    assert set(zip(a.train.pixel.tolist(), a.train.end.tolist())) <= allp
    assert len(np.unique(a.train.pixel)) > 100 and len(np.unique(a.train.end)) > 20
    s = D.prepare(st, DATES, GRID, 8, 2, max_samples=10 ** 6, stride=5)
    assert set(((s.train.end - 7) % 5).tolist()) == {0}


def test_independent_of_block_size_and_reads_geotiff_blockwise(tmp_path):
    st, cov = _scene()
    path = str(tmp_path / "stack.tif")
    write_stack(path, st, DATES, GRID)
    kw = dict(encodings=ALL_ENC, covariates=cov, max_samples=250, target="residual", seed=5)
    mem = D.prepare(st, DATES, GRID, 9, 3, block_rows=100, **kw)
    disk = D.prepare(open_stack(path), None, None, 9, 3, block_rows=3, **kw)
    for split in ("train", "val", "test"):
        for k, v in _arrays(getattr(mem, split)).items():
            np.testing.assert_array_equal(v, _arrays(getattr(disk, split))[k], err_msg=f"{split} {k}")


def test_encoding_channels_content():
    st, cov = _scene()
    p = D.prepare(st, DATES, GRID, 6, 2, encodings=ALL_ENC, covariates=cov, max_samples=400, fourier=1)
    names = p.feature_names
    assert names == ["disp", "t", "doy_sin", "doy_cos", "x", "y", "x_sin0", "x_cos0", "y_sin0", "y_cos0",
                     "nb_mean", "nb_dx", "nb_dy", "cov:dem", "cov:fault_dist"]
    s = p.train
    X = s.X
    assert X.shape == (len(s), 6, len(names))
    r, c = s.rows_cols(W)
    i = {n: k for k, n in enumerate(names)}
    tt = s.end[:, None] - 5 + np.arange(6)
    win = st[tt, r[:, None], c[:, None]]
    np.testing.assert_allclose(X[:, :, 0], (win - win[:, -1:]) / p.norm["disp_scale"], rtol=1e-5, atol=1e-6)
    assert np.all(X[:, -1, 0] == 0)
    ty = years_between(DATES[tt], DATES[0]) / p.norm["time_scale_years"]
    np.testing.assert_allclose(X[:, :, i["t"]], ty, rtol=1e-5)
    assert abs(p.norm["time_scale_years"] - years_between(DATES[p.config["train_end"] - 1:p.config["train_end"]], DATES[0])[0]) < 1e-9
    doy = (DATES[tt] - DATES[tt].astype("datetime64[Y]")).astype(int)
    np.testing.assert_allclose(X[:, :, i["doy_sin"]], np.sin(2 * np.pi * doy / 365.25), atol=1e-6)
    np.testing.assert_allclose(X[:, :, i["x"]], np.repeat((2 * (c + 0.5) / W - 1)[:, None], 6, 1), atol=1e-6)
    np.testing.assert_allclose(X[:, :, i["y"]], np.repeat((1 - 2 * (r + 0.5) / H)[:, None], 6, 1), atol=1e-6)
    np.testing.assert_allclose(X[:, 0, i["x_sin0"]], np.sin(np.pi * (2 * (c + 0.5) / W - 1)), atol=1e-6)
    dem = (cov["dem"] - cov["dem"].mean()) / cov["dem"].std()
    np.testing.assert_allclose(X[:, 3, i["cov:dem"]], dem[r, c], rtol=1e-5)
    # neighbourhood of an interior pixel with a complete 3x3 patch, by hand
    k = np.flatnonzero((r > 0) & (r < H - 1) & (c > 0) & (c < W - 1)
                       & np.array([np.isfinite(st[tt[j]][:, r[j] - 1:r[j] + 2, c[j] - 1:c[j] + 2]).all() for j in range(len(s))]))[0]
    patch = st[tt[k]][:, r[k] - 1:r[k] + 2, c[k] - 1:c[k] + 2].astype(np.float64)
    rel = patch - patch[-1:]
    ds = p.norm["disp_scale"]
    np.testing.assert_allclose(X[k, :, i["nb_mean"]], rel.mean(axis=(1, 2)) / ds, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(X[k, :, i["nb_dx"]], (rel[:, :, 2].mean(1) - rel[:, :, 0].mean(1)) / 2 / ds, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(X[k, :, i["nb_dy"]], (rel[:, 0, :].mean(1) - rel[:, 2, :].mean(1)) / 2 / ds, rtol=1e-4, atol=1e-5)
    # none alone -> one channel; combinations keep canonical order
    assert D.parse_encodings("none") == ()
    assert D.parse_encodings(["covariates", "none", "temporal"]) == ("temporal", "covariates")


def test_residual_target_is_truth_minus_classical_forecast():
    st, _ = _scene()
    # default: MintPy-style trajectory on all history up to the last input epoch
    p = D.prepare(st, DATES, GRID, 10, 3, target="residual", max_samples=50, seed=2)
    for s in (p.train, p.test):
        j = int(np.argmax(s.end))
        e, r, c = int(s.end[j]), s.pixel[j] // W, s.pixel[j] % W
        f = forecast_baselines(st[:e + 1, r, c][:, None], DATES[:e + 1], e, DATES[e + 1:e + 4],
                               names=["trajectory"])["trajectory"][:, 0]
        np.testing.assert_allclose(s.anchor[j], f, rtol=1e-6)
        np.testing.assert_allclose(s.Y[j] * np.array(p.norm["target_scale"]) + f, s.truth[j], atol=1e-4)
    # another baseline with a capped memory
    q = D.prepare(st, DATES, GRID, 10, 3, target="residual", baseline="trajectory_ensemble", baseline_years=1.0,
                  max_samples=50, seed=2)
    s = q.train
    j = int(np.argmax(s.end))
    e, r, c = int(s.end[j]), s.pixel[j] // W, s.pixel[j] % W
    start = int(np.searchsorted(DATES, DATES[e] - int(round(1.0 * 365.25))))
    assert start > 0
    f = forecast_baselines(st[:e + 1, r, c][:, None], DATES[:e + 1], e, DATES[e + 1:e + 4],
                           names=["trajectory_ensemble"], fit_start_index=start)["trajectory_ensemble"][:, 0]
    np.testing.assert_allclose(s.anchor[j], f, rtol=1e-6)
    assert q.config["baseline_years"] == 1.0 and p.config["baseline_years"] is None


def test_spatial_holdout_blocks():
    st, _ = _scene()
    p = D.prepare(st, DATES, GRID, 8, 2, max_samples=10 ** 6, spatial_holdout=0.3, holdout_block=4, seed=4)
    m = p.holdout_mask
    assert m.shape == (H, W) and 0 < m.mean() < 0.7
    flat = m.reshape(-1)
    assert not flat[p.train.pixel].any() and not flat[p.val.pixel].any()
    assert p.test.holdout.any() and (~p.test.holdout).any()
    np.testing.assert_array_equal(p.test.holdout, flat[p.test.pixel])
    # blocks are square 4x4 tiles
    assert all(len(np.unique(m[i:i + 4, j:j + 4])) == 1 for i in range(0, 12, 4) for j in range(0, 16, 4))


def test_forecast_inputs_blockwise_equals_whole_and_matches_training_features():
    st, cov = _scene()
    p = D.prepare(st, DATES, GRID, 7, 3, encodings=ALL_ENC, covariates=cov, target="residual", max_samples=300)
    cfg, norm = p.config, p.norm
    for end_index in (None, cfg["test_start"] - 1):
        Xw, vw, aw = D.forecast_inputs(st, DATES, GRID, 0, cfg, norm, cov, end_index=end_index)
        assert Xw.shape == (int(vw.sum()), 7, p.n_features) and aw.shape == (int(vw.sum()), 3)
        xs, vs, ans = [], [], []
        for r0 in range(0, H, 4):
            r1 = min(H, r0 + 4)
            a0, a1 = D.read_rows(r0, r1, H, cfg)
            cb = {k: v[a0:a1] for k, v in cov.items()}
            X, v, a = D.forecast_inputs(st[:, a0:a1], DATES, GRID, a0, cfg, norm, cb, end_index=end_index, out_rows=(r0, r1))
            xs.append(X), vs.append(v), ans.append(a)
        np.testing.assert_array_equal(np.concatenate(xs), Xw)
        np.testing.assert_array_equal(np.concatenate(vs), vw)
        np.testing.assert_array_equal(np.concatenate(ans), aw)
    # the backtest inputs equal the test samples that start the test period
    e = cfg["test_start"] - 1
    Xw, vw, aw = D.forecast_inputs(st, DATES, GRID, 0, cfg, norm, cov, end_index=e)
    pix = np.flatnonzero(vw.reshape(-1))
    sel = np.flatnonzero(p.test.end == e)
    assert sel.size
    where = np.searchsorted(pix, p.test.pixel[sel])
    np.testing.assert_allclose(Xw[where], p.test.X[sel], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(aw[where], p.test.anchor[sel], rtol=1e-6)
    # beyond the stack: dates continue at the recent step (here every step)
    np.testing.assert_array_equal(D.target_dates(DATES, T - 1, 2), [DATES[-1] + 12, DATES[-1] + 24])


def test_bad_inputs_name_the_fix():
    st, cov = _scene()
    with pytest.raises(DeformCastError, match="lower WINDOW or HORIZON|Lower WINDOW or HORIZON"):
        D.prepare(st[:20], DATES[:20], None, 15, 4)
    with pytest.raises(DeformCastError, match="at least 4 validation epochs or lower HORIZON"):
        D.validate_inputs(30, 12, 4, n_val=2)
    assert D.validate_inputs(40, 20, 2) == (4, 4)  # 10 % of 40 epochs each
    assert D.validate_inputs(40, 31, 2) == (2, 2)  # 10 % would leave no training window: one HORIZON each
    with pytest.raises(DeformCastError, match="valid names: none, temporal, spatial, neighbourhood, covariates"):
        D.prepare(st, DATES, GRID, 8, 2, encodings="temporal,wavelet")
    with pytest.raises(DeformCastError, match="all nodata"):
        D.validate_inputs(T, 8, 2, stack=np.full((T, 2, 2), np.nan))
    with pytest.raises(DeformCastError, match="all nodata"):
        D.prepare(np.full((T, 3, 3), np.nan, np.float32), DATES, None, 8, 2)
    sparse = np.full((T, 3, 3), np.nan, np.float32)
    sparse[::2] = 1.0  # data, but never WINDOW + HORIZON consecutive valid epochs
    with pytest.raises(DeformCastError, match="No training window.*lower WINDOW"):
        D.prepare(sparse, DATES, None, 8, 2)
    with pytest.raises(DeformCastError, match="no COVARIATES"):
        D.prepare(st, DATES, GRID, 8, 2, encodings="covariates")
    with pytest.raises(DeformCastError, match="align it"):
        D.prepare(st, DATES, GRID, 8, 2, encodings="covariates", covariates={"dem": np.zeros((3, 3))})
    with pytest.raises(DeformCastError, match="overlaps"):
        D.prepare(st, DATES, GRID, 8, 2, encodings="covariates", covariates={"dem": np.full((H, W), np.nan)})
    with pytest.raises(DeformCastError, match="twice"):
        D.prepare(st, np.concatenate([DATES[:1], DATES[:-1]]), GRID, 8, 2)
    with pytest.raises(DeformCastError, match="odd"):
        D.prepare(st, DATES, GRID, 8, 2, encodings="neighbourhood", neighbourhood_k=4)
    with pytest.raises(Cancelled):
        D.prepare(st, DATES, GRID, 8, 2, progress=Progress(is_cancelled=lambda: True))


# ---- the trajectory encoding and spatial validation ---------------------------------------------
T2 = 120  # ~3.9 years at 12 days: long enough for the full trajectory model before training windows
DATES2 = np.datetime64("2018-01-03") + np.arange(T2) * 12


def _long_scene(seed=0, h=12, w=13):
    rng = np.random.default_rng(seed)
    t = years_between(DATES2, DATES2[0])
    vel = rng.normal(0, 8, (h, w))
    vel[:4] = 0.0  # a quiet strip: only seasonal motion and noise
    acc = rng.normal(0, 3, (h, w))
    acc[:4] = 0.0
    st = (vel[None] * t[:, None, None] + acc[None] * t[:, None, None] ** 2 / 2
          + 3 * np.cos(2 * np.pi * t)[:, None, None] + rng.normal(0, 1.0, (T2, h, w)))
    st = st.astype(np.float32)
    st[30:33, 7, 8] = np.nan  # a gap
    return st, make_grid(500000.0, 5700000.0, 20.0, w, h)


def _hand_features(series, dates, end, horizon):
    """The 20 trajectory channels computed independently with numpy's lstsq."""
    ok = np.isfinite(series[:end + 1])
    t = (dates[:end + 1] - dates[end]).astype(np.float64) / 365.25
    tp = (D.target_dates(dates, end, horizon) - dates[end]).astype(np.float64) / 365.25

    def cols(x):
        return np.stack([np.ones_like(x), x, x ** 2 / 2, np.cos(2 * np.pi * x), np.sin(2 * np.pi * x),
                         np.cos(4 * np.pi * x), np.sin(4 * np.pi * x)], axis=1)

    A = cols(t)[ok]
    y = series[:end + 1][ok].astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ coef
    sigma = np.sqrt(r @ r / (len(y) - 7))
    se = np.sqrt(np.diag(np.linalg.inv(A.T @ A))) * sigma
    a_e = cols(np.array([0.0]))[0]
    mid = (horizon + 1) // 2 - 1
    p_end, p_mid = cols(tp[[-1]])[0] - a_e, cols(tp[[mid]])[0] - a_e
    f = np.concatenate([coef[1:] / se[1:], p_end[1:] * coef[1:], p_mid[1:] * coef[1:], [sigma],
                        [series[end] - a_e @ coef]])
    return np.arcsinh(f)


def test_trajectory_encoding_is_the_classical_fit_and_needs_full_history():
    st, grid = _long_scene()
    p = D.prepare(st, DATES2, grid, 6, 8, encodings="trajectory", target="residual", max_samples=400,
                  validation="space", seed=1)
    names = p.feature_names
    assert names[0] == "disp" and names[1:] == D.TRAJECTORY_FEATURES and p.n_features == 21
    first = D.first_full_end(DATES2)
    assert years_between(DATES2[first:first + 1], DATES2[0])[0] >= D.FULL_MODEL_YEARS
    assert years_between(DATES2[first - 1:first], DATES2[0])[0] < D.FULL_MODEL_YEARS
    for split in ("train", "val"):
        assert getattr(p, split).end.min() >= first
    s = p.train
    rows, cols = s.rows_cols(grid.width)
    for i in range(0, len(s), 37):
        series = st[:, rows[i], cols[i]]
        want = _hand_features(series, DATES2, int(s.end[i]), 8)
        assert np.allclose(s.X[i, 0, 1:], want, rtol=1e-4, atol=1e-4), i
        assert np.array_equal(s.X[i, 0, 1:], s.X[i, -1, 1:])  # static along the window
    # quiet pixels (rows 0-3) have small velocity t-values, moving ones mostly large
    zv = np.sinh(s.X[:, 0, 1])
    assert np.median(np.abs(zv[rows < 4])) < 3 < np.median(np.abs(zv[rows >= 4]))
    # the forecast inputs carry the same channels, block by block
    e = p.config["test_start"] - 1
    Xw, vw, _ = D.forecast_inputs(st, DATES2, grid, 0, p.config, p.norm, end_index=e)
    parts = []
    for r0 in range(0, grid.height, 5):
        r1 = min(grid.height, r0 + 5)
        Xb, vb, _ = D.forecast_inputs(st[:, r0:r1], DATES2, grid, r0, p.config, p.norm, end_index=e)
        parts.append(Xb)
    assert np.allclose(np.concatenate(parts), Xw, atol=1e-5)
    r, c = np.argwhere(vw)[3]
    assert np.allclose(Xw[3, 0, 1:], _hand_features(st[:, r, c], DATES2, e, 8), atol=1e-4)
    # too little history for the first forecast origin: not forecast (nodata), no error
    X0, v0, a0 = D.forecast_inputs(st, DATES2, grid, 0, p.config, p.norm, end_index=first - 5)
    assert X0.shape[0] == 0 and not v0.any() and a0.shape[0] == 0


def test_space_validation_pixels_disjoint_and_test_period_unseen():
    st, grid = _long_scene(seed=2)
    kw = dict(encodings="trajectory", target="residual", max_samples=500, validation="space", seed=4)
    a = D.prepare(st, DATES2, grid, 6, 8, **kw)
    ts = a.config["test_start"]
    assert a.config["validation"] == "space"
    for split in ("train", "val"):
        s = getattr(a, split)
        assert (s.end + 8 < ts).all()  # every target before the test period
    assert a.train.end.max() > a.config["train_end"] - 1 - 8  # training reaches the validation epochs
    vmask = D.validation_mask(grid.shape, 0.2, 16, 4)
    assert 0.05 < vmask.mean() < 0.5
    assert vmask.ravel()[a.val.pixel].all() and not vmask.ravel()[a.train.pixel].any()
    # the test period as garbage changes nothing seen by training or validation
    bad = st.copy()
    bad[ts:] = np.random.default_rng(0).normal(0, 1e4, bad[ts:].shape).astype(np.float32)
    b = D.prepare(bad, DATES2, grid, 6, 8, **kw)
    for split in ("train", "val"):
        for k, v in _arrays(getattr(a, split)).items():
            assert v.tobytes() == _arrays(getattr(b, split))[k].tobytes(), (split, k)
    assert json.dumps(a.norm, sort_keys=True) == json.dumps(b.norm, sort_keys=True)
    # the test windows do not depend on the validation scheme
    t = D.prepare(st, DATES2, grid, 6, 8, encodings="trajectory", target="residual", max_samples=500, seed=4)
    for k in ("pixel", "end", "truth", "anchor"):
        assert np.array_equal(getattr(t.test, k), getattr(a.test, k)), k
    assert np.array_equal(t.test.X[:, :, 1:], a.test.X[:, :, 1:])  # disp is scaled by the training windows


def test_trajectory_on_too_short_a_series_names_the_fix():
    st, _ = _scene()  # 60 epochs, under two years
    with pytest.raises(DeformCastError, match="VALIDATION 'space'.*shorter HORIZON"):
        D.prepare(st, DATES, GRID, 6, 3, encodings="trajectory")
    with pytest.raises(DeformCastError, match="Unknown VALIDATION 'spatial'; valid: time, space"):
        D.prepare(st, DATES, GRID, 6, 3, validation="spatial")
    assert D.trajectory_ends(DATES, 3) == 0 and D.trajectory_ends(DATES2, 8) > 10


def test_recent_windows_are_drawn_more_often(monkeypatch):
    """Session 11: training and validation windows ending in the last RECENT_WEIGHT_YEARS are drawn
    2^RECENT_SHIFT times as often as older ones when the sample is capped; uncapped, every window is kept
    once; the test windows are drawn uniformly."""
    T2 = 150
    dates = np.datetime64("2018-01-05") + np.arange(T2) * 12
    rng = np.random.default_rng(3)
    st = (rng.normal(0, 1, (T2, 30, 30)) + np.arange(T2)[:, None, None] * 0.05).astype(np.float32)

    def share(prep, split):
        ends = getattr(prep, split).end
        last = dates[int(ends.max())]
        recent = dates[ends] > last - np.timedelta64(365, "D")
        return recent.mean(), recent.sum(), (~recent).sum()

    full = D.prepare(st, dates, None, 8, 5, max_samples=10 ** 6, seed=1, validation="space")
    capped = D.prepare(st, dates, None, 8, 5, max_samples=3000, seed=1, validation="space")
    monkeypatch.setattr(D, "RECENT_SHIFT", 0)
    uniform = D.prepare(st, dates, None, 8, 5, max_samples=3000, seed=1, validation="space")
    for split in ("train", "val"):
        f_share, f_new, f_old = share(full, split)
        u_share = share(uniform, split)[0]
        c_share, c_new, c_old = share(capped, split)
        assert abs(u_share - f_share) < 0.05                       # uniform draw: the population's share
        odds = (c_new / c_old) / (f_new / f_old)                    # how much more often a recent window is drawn
        assert 3.0 < odds < 5.0, odds
    # uncapped, every window is kept once whatever the weight; the test windows ignore it
    full_uniform = D.prepare(st, dates, None, 8, 5, max_samples=10 ** 6, seed=1, validation="space")
    pairs = lambda s: sorted(zip(s.pixel.tolist(), s.end.tolist()))   # noqa: E731
    assert pairs(full_uniform.train) == pairs(full.train)
    assert pairs(uniform.test) == pairs(capped.test)


def test_forecast_epochs_follow_the_recent_cadence_and_a_change_of_cadence_is_reported():
    """A record at 6 days that went on at 12 (Sentinel-1B's loss): the forecast epochs continue at 12 days,
    the whole record's median (6) would put a year's horizon half a year ahead; the change is reported with
    the fix. A regular record (or one with a few missing acquisitions) is left as before and not reported."""
    six = np.datetime64("2017-01-01") + np.arange(200) * 6
    twelve = six[-1] + np.arange(1, 41) * 12
    dates = np.concatenate([six, twelve])
    np.testing.assert_array_equal(D.target_dates(dates, dates.size - 1, 3), dates[-1] + np.array([12, 24, 36]))
    msg = D.cadence_warning(dates)
    assert msg is not None and "6 days apart over the record but 12 days" in msg and "STEP_DAYS=12" in msg
    # inside the stack the dates are the acquisitions' own
    np.testing.assert_array_equal(D.target_dates(dates, 10, 3), dates[11:14])
    regular = np.datetime64("2017-01-01") + np.arange(150) * 12
    gappy = np.delete(regular, [100, 120, 140])                     # three missing acquisitions
    for d in (regular, gappy):
        assert D.cadence_warning(d) is None
        np.testing.assert_array_equal(D.target_dates(d, d.size - 1, 2), d[-1] + np.array([12, 24]))
