"""Ensemble prediction: members layout, median/quantiles, block-wise = whole, nodata, cancel, bad input."""
import os

import numpy as np
import pytest

from deformcast.algorithms import dataset, ensemble, modelio, raster
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress
from deformcast.algorithms.training import train_model

W_, H_, T_ = 9, 7, 60


def _stack(tmp_path):
    rng = np.random.default_rng(1)
    g = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)
    dates = np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(12, "D")
    t = np.arange(T_, dtype=np.float32)[:, None, None]
    rate = rng.uniform(-0.8, 0.2, size=(1, H_, W_)).astype(np.float32)
    vals = rate * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25) + rng.normal(0, 0.3, (T_, H_, W_)).astype(np.float32)
    vals = vals.astype(np.float32)
    vals[-3:, 0, 0] = np.nan      # one pixel invalid in the last window
    vals[:, 6, 8] = np.nan        # one pixel never valid
    p = str(tmp_path / "stack.tif")
    raster.write_stack(p, vals, dates, g)
    return p, vals, dates, g


def _model_folder(tmp_path, vals, dates, g, encodings=("temporal",), n_members=3, window=8, horizon=3):
    prep = dataset.prepare(vals, dates, g, window, horizon, encodings=encodings, max_samples=400, seed=0)
    root = tmp_path / "models"
    names = []
    for k in range(n_members):
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 16}, device="cpu",
                          seed=k, max_epochs=2, patience=2)
        meta = {"architecture": "gru", "hparams": res.hparams, "n_features": prep.n_features, "window": window,
                "horizon": horizon, "feature_names": prep.feature_names, "encodings": list(encodings),
                "normalisation": prep.norm, "data_config": prep.config, "grid": modelio.grid_to_dict(g),
                "validation": {"val_loss": res.best_val_loss}, "seed": k}
        name = f"m{k:02d}_gru"
        modelio.save_model(str(root / name), res.model, meta)
        names.append(name)
    modelio.write_manifest(str(root), names)
    return str(root), prep


def test_ensemble_outputs_block_equals_whole(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, prep = _model_folder(tmp_path, vals, dates, g)
    outs = {}
    for br in (2, 1000):
        d = tmp_path / f"out{br}"
        res = ensemble.predict_ensemble(p, root, str(d / "median.tif"), str(d / "q.tif"), str(d / "members.tif"),
                                        block_rows=br, device="cpu")
        outs[br] = {k: raster.read_raster(str(d / f"{k}.tif")) for k in ("median", "q", "members")}
        assert os.path.exists(str(d / "median.qml")) and os.path.exists(str(d / "members.qml"))
    for k in ("median", "q", "members"):
        np.testing.assert_array_equal(np.isnan(outs[2][k][0]), np.isnan(outs[1000][k][0]))
        np.testing.assert_allclose(np.nan_to_num(outs[2][k][0]), np.nan_to_num(outs[1000][k][0]), rtol=1e-5, atol=1e-4)
    med, _, med_names = outs[1000]["median"]
    mem, _, mem_names = outs[1000]["members"]
    q, _, q_names = outs[1000]["q"]
    assert res["forecast_dates"] == [str(dates[-1] + np.timedelta64(12 * (i + 1), "D")) for i in range(3)]
    assert med_names == res["forecast_dates"]
    assert mem_names[:4] == [f"member0 {res['forecast_dates'][i]}" for i in range(3)] + [f"member1 {res['forecast_dates'][0]}"]
    assert q_names == [f"P{x} {res['forecast_dates'][-1]}" for x in (10, 50, 90)]
    m = mem.reshape(3, 3, H_, W_)  # member-major
    np.testing.assert_allclose(med, np.median(m, axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(q[1], np.median(m[:, -1], axis=0), rtol=1e-6, atol=1e-5)
    assert np.all((q[0] <= q[1] + 1e-6)[np.isfinite(q[0])]) and np.all((q[1] <= q[2] + 1e-6)[np.isfinite(q[1])])
    # invalid pixels are nodata everywhere, valid ones are finite
    assert np.isnan(med[:, 0, 0]).all() and np.isnan(med[:, 6, 8]).all()
    assert np.isfinite(med[:, 3, 3]).all()
    # members differ (different seeds), forecasts continue the series (within a few mm of the last value)
    assert np.nanmax(np.abs(m[0] - m[1])) > 0
    assert np.nanmedian(np.abs(med[0] - vals[-1])) < 5.0


def test_backtest_end_date_and_member_subset(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, _ = _model_folder(tmp_path, vals, dates, g, n_members=2)
    res = ensemble.predict_ensemble(p, root, str(tmp_path / "bt.tif"), None, None, end_date=str(dates[40]),
                                    members=1, horizon=2, device="cpu")
    assert res["end_date"] == str(dates[40]) and res["members"] == ["m00_gru"]
    assert res["forecast_dates"] == [str(dates[41]), str(dates[42])]
    a, _, names = raster.read_raster(str(tmp_path / "bt.tif"))
    assert a.shape[0] == 2 and names == res["forecast_dates"]


def test_bad_inputs(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, _ = _model_folder(tmp_path, vals, dates, g, n_members=1)
    with pytest.raises(DeformCastError, match="HORIZON"):
        ensemble.predict_ensemble(p, root, str(tmp_path / "x.tif"), horizon=9, device="cpu")
    with pytest.raises(DeformCastError, match="does not exist"):
        ensemble.predict_ensemble(p, str(tmp_path / "nope"), str(tmp_path / "x.tif"), device="cpu")
    with pytest.raises(DeformCastError, match="manifest"):
        os.makedirs(tmp_path / "empty")
        ensemble.predict_ensemble(p, str(tmp_path / "empty"), str(tmp_path / "x.tif"), device="cpu")
    with pytest.raises(DeformCastError, match="No member named"):
        ensemble.predict_ensemble(p, root, str(tmp_path / "x.tif"), members="m07_lstm", device="cpu")
    assert not os.path.exists(tmp_path / "x.tif")


def test_cancel_leaves_no_outputs(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, _ = _model_folder(tmp_path, vals, dates, g, n_members=1)
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(Cancelled):
        ensemble.predict_ensemble(p, root, str(tmp_path / "o" / "med.tif"), str(tmp_path / "o" / "q.tif"),
                                  str(tmp_path / "o" / "mem.tif"), block_rows=1, device="cpu",
                                  progress=Progress(is_cancelled=cancelled))
    left = os.listdir(tmp_path / "o")
    assert not [f for f in left if f.endswith(".tif")], left


def test_dressing_keeps_median_and_order_and_reaches_target_coverage():
    rng = np.random.default_rng(0)
    n = 4000
    centre = rng.normal(0, 5, n)
    members = (centre[None] + rng.normal(0, 0.2, (10, n))).astype(np.float32)   # far too narrow
    obs = centre + rng.normal(0, 2.0, n)
    assert ensemble.coverage(members, obs, 0.0) < 0.3
    sigma = ensemble.dressing_sigma(members, obs, 0.8)
    assert 1.0 < sigma < 4.0                       # the unseen noise is 2 mm
    assert ensemble.coverage(members, obs, sigma) == pytest.approx(0.8, abs=0.01)
    d = ensemble.dress(members, sigma)
    np.testing.assert_allclose(np.median(d, axis=0), np.median(members, axis=0), atol=1e-4)
    np.testing.assert_array_equal(np.argsort(d, axis=0), np.argsort(members, axis=0))
    # total spread: sqrt(model spread^2 + sigma^2) as normal scores
    s_models = np.sqrt(np.mean((members - np.median(members, axis=0)) ** 2, axis=0))
    z = ensemble._normal_scores(10)
    np.testing.assert_allclose(d.max(axis=0) - np.median(d, axis=0), np.sqrt(s_models ** 2 + sigma ** 2) * z[-1],
                               rtol=1e-4)
    wide = centre[None] + rng.normal(0, 20.0, (10, n))        # already wide enough -> no extra sigma
    assert ensemble.dressing_sigma(wide, obs, 0.8) == 0.0


def test_calibration_uses_validation_period_only(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, prep = _model_folder(tmp_path, vals, dates, g, n_members=3)
    res = ensemble.predict_ensemble(p, root, str(tmp_path / "m.tif"), device="cpu")
    cal = res["calibration"]
    assert cal["calibrated"] and len(cal["sigma_mm"]) == 3
    tr_end, val_end = prep.config["train_end"], prep.config["val_end"]
    for o in cal["origins"]:
        i = int(np.searchsorted(dates, np.datetime64(o)))
        assert tr_end - 1 <= i and i + 3 <= val_end - 1   # targets inside the validation period
    assert all(abs(c - 0.8) < 0.1 for c in cal["calibrated_coverage"])
    # a backtest starting before the validation period has nothing to calibrate on: factors stay 1
    early = ensemble.predict_ensemble(p, root, str(tmp_path / "e.tif"), end_date=str(dates[tr_end - 2]), device="cpu")
    assert early["calibration"]["calibrated"] is False
    off = ensemble.predict_ensemble(p, root, str(tmp_path / "o.tif"), calibrate=False, device="cpu")
    assert off["calibration"]["calibrated"] is False
