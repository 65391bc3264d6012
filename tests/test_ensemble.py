"""Ensemble prediction: members layout, median/quantiles, block-wise = whole, nodata, cancel, bad input."""
import os

import numpy as np
import pytest

from deformcast.algorithms.data import dataset
from deformcast.algorithms.maps import ensemble, member_forecasts
from deformcast.algorithms.models import modelio
from deformcast.algorithms.io import raster
from deformcast.algorithms.learn import runtime
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress
from deformcast.algorithms.learn.training import train_model

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


def _save_member(root, res, prep, g, encodings, seed) -> str:
    """Save a trained GRU as member ``m<seed>_gru`` of the folder ``root``; returns its name."""
    meta = {"architecture": "gru", "hparams": res.hparams, "n_features": prep.n_features, "window": res.window,
            "horizon": res.horizon, "feature_names": prep.feature_names, "encodings": list(encodings),
            "normalisation": prep.norm, "data_config": prep.config, "grid": modelio.grid_to_dict(g),
            "validation": {"val_loss": res.best_val_loss}, "seed": seed}
    name = f"m{seed:02d}_gru"
    modelio.save_model(str(root / name), res.model, meta)
    return name


def _model_folder(tmp_path, vals, dates, g, encodings=("temporal",), n_members=3, window=8, horizon=3):
    prep = dataset.prepare(vals, dates, g, window, horizon, encodings=encodings, max_samples=400, seed=0)
    root = tmp_path / "models"
    names = []
    for k in range(n_members):
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 16}, device="cpu",
                          seed=k, max_epochs=2, patience=2)
        names.append(_save_member(root, res, prep, g, encodings, k))
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


def test_calibration_uses_validation_period_only(tmp_path):
    p, vals, dates, g = _stack(tmp_path)
    root, prep = _model_folder(tmp_path, vals, dates, g, n_members=3)
    res = ensemble.predict_ensemble(p, root, str(tmp_path / "m.tif"), device="cpu")
    cal = res["calibration"]
    assert cal["calibrated"] and len(cal["sigma_mm"]) == 3 and len(cal["width_mm"]) == 3
    tr_end, test_start = prep.config["train_end"], prep.config["test_start"]
    for o in cal["origins"]:
        i = int(np.searchsorted(dates, np.datetime64(o)))
        assert tr_end - 1 <= i and i + 3 <= test_start - 1   # targets after training, before the test period
    assert all(0.6 <= c <= 0.95 for c in cal["calibrated_coverage"])
    # a backtest starting before the validation period has nothing to calibrate on
    early = ensemble.predict_ensemble(p, root, str(tmp_path / "e.tif"), end_date=str(dates[tr_end - 2]), device="cpu")
    assert early["calibration"]["calibrated"] is False
    off = ensemble.predict_ensemble(p, root, str(tmp_path / "o.tif"), calibrate=False, device="cpu")
    assert off["calibration"]["calibrated"] is False


def _gappy_stack():
    """The test stack with gaps that make the shared-input logic matter: sparse NaNs, and pixels whose
    only valid epochs are the last 6 or 7 (too few for the 7-parameter trajectory anchor with 6)."""
    rng = np.random.default_rng(5)
    g = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)
    dates = np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(12, "D")
    t = np.arange(T_, dtype=np.float32)[:, None, None]
    vals = (rng.uniform(-0.8, 0.2, size=(1, H_, W_)) * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25)
            + rng.normal(0, 0.3, (T_, H_, W_))).astype(np.float32)
    vals[rng.random(vals.shape) < 0.02] = np.nan
    vals[:-6, 1, 1] = np.nan      # 6 valid epochs: window 6 sees it, the trajectory fit (7 terms) cannot
    vals[-6:, 1, 1] = 1.0
    vals[:-7, 2, 2] = np.nan      # 7 valid epochs: window 6 forecasts it, window 8 cannot
    vals[-7:, 2, 2] = 1.0
    return vals, dates, g


def _mixed_members(tmp_path, vals, dates, g, horizon=3):
    """Five residual-target members: two on one data config (they share their inputs), others with
    other windows / encodings (they share only the trajectory anchor)."""
    specs = [(6, ("temporal",), 0), (6, ("temporal",), 1), (8, ("neighbourhood",), 2), (10, ("none",), 3),
             (6, ("none",), 4)]
    root = tmp_path / "mixed"
    preps, names = {}, []
    for window, enc, seed in specs:
        key = (window, enc)
        if key not in preps:
            preps[key] = dataset.prepare(vals, dates, g, window, horizon, encodings=enc, target="residual",
                                         max_samples=300, seed=0)
        prep = preps[key]
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 8}, device="cpu",
                          seed=seed, max_epochs=1)
        names.append(_save_member(root, res, prep, g, enc, seed))
    modelio.write_manifest(str(root), names)
    return str(root)


def _per_member_reference(blk, dates, g, a0, r0, r1, loaded, e, H):
    """The forecast as each member alone makes it (the original algorithm): its own forecast_inputs."""
    out = np.full((len(loaded), H, r1 - r0, blk.shape[2]), np.nan, np.float32)
    valid_all = np.ones((r1 - r0, blk.shape[2]), bool)
    for k, m in enumerate(loaded):
        X, valid, anchor = dataset.forecast_inputs(blk, dates, g, a0, m.meta["data_config"], m.meta["normalisation"],
                                                   end_index=e, out_rows=(r0, r1))
        if X.shape[0]:
            out[k][:, valid] = dataset.to_mm(m.predict(X), anchor, m.meta["normalisation"])[:, :H].T
        valid_all &= valid
    out[:, :, ~valid_all] = np.nan
    return out, valid_all


def test_shared_inputs_equal_each_members_own_inputs(tmp_path):
    vals, dates, g = _gappy_stack()
    root = _mixed_members(tmp_path, vals, dates, g)
    loaded = ensemble.load_members(root)
    configs = [m.meta["data_config"] for m in loaded]
    plan = member_forecasts.Plan(loaded, configs)
    assert sorted(len(gr.members) for gr in plan.groups) == [1, 1, 1, 2]   # the two window-6 temporal members
    assert len(plan.anchor_keys) == 1                                      # one trajectory anchor for all
    for e, (a0, r0, r1) in [(T_ - 1, (0, 0, H_)), (T_ - 1, (0, 1, 4)), (45, (1, 2, 6))]:
        blk = vals[:, a0:min(H_, r1 + 1)]
        ref, ref_valid = _per_member_reference(blk, dates, g, a0, r0, r1, loaded, e, 3)
        ((out, valid),) = member_forecasts.forecast_items([(blk, a0, r0, r1, {}, e)], dates, g, loaded, plan, 3, "cpu", 2048)
        np.testing.assert_array_equal(valid, ref_valid)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_allclose(np.nan_to_num(out), np.nan_to_num(ref), rtol=1e-6, atol=1e-5)
    # the gap pixels: (1, 1) has no anchor, so nobody forecasts it; (2, 2) is too short for window 8
    ((out, valid),) = member_forecasts.forecast_items([(vals, 0, 0, H_, {}, T_ - 1)], dates, g, loaded, plan, 3, "cpu", 2048)
    assert not valid[1, 1] and not valid[2, 2] and valid.sum() > 0.5 * valid.size
    # the window-6 members alone: (1, 1) is inside all their windows but has no anchor, (2, 2) has one
    six = [loaded[i] for i in (0, 1, 4)]
    ref, ref_valid = _per_member_reference(vals, dates, g, 0, 0, H_, six, T_ - 1, 3)
    ((out, valid),) = member_forecasts.forecast_items([(vals, 0, 0, H_, {}, T_ - 1)], dates, g, six,
                                               member_forecasts.Plan(six, [m.meta["data_config"] for m in six]), 3, "cpu", 2048)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_allclose(np.nan_to_num(out), np.nan_to_num(ref), rtol=1e-6, atol=1e-5)
    assert not valid[1, 1] and valid[2, 2]
    # several items at once (the calibration's stacking) = each item alone
    items = [(vals, 0, 0, 3, {}, 40), (vals, 0, 3, H_, {}, 40), (vals, 0, 0, H_, {}, 50)]
    together = member_forecasts.forecast_items(items, dates, g, loaded, plan, 3, "cpu", 2048)
    for it, (out, valid) in zip(items, together):
        ((o1, v1),) = member_forecasts.forecast_items([it], dates, g, loaded, plan, 3, "cpu", 2048)
        np.testing.assert_array_equal(valid, v1)
        np.testing.assert_allclose(out, o1, rtol=1e-6, atol=1e-5)
    # large items are forecast in pieces of whole rows (memory, session 19): the same forecasts
    for small in (10, 25):
        member_forecasts.INPUT_PIXELS = small
        try:
            pieces = member_forecasts.forecast_items(items, dates, g, loaded, plan, 3, "cpu", 2048)
        finally:
            member_forecasts.INPUT_PIXELS = 16384
        for (o1, v1), (o2, v2) in zip(together, pieces):
            np.testing.assert_array_equal(v1, v2)
            np.testing.assert_allclose(o1, o2, rtol=1e-6, atol=1e-5)
    # members that read the pixel's own history alone forecast any set of pixels apart (the gate's and the
    # calibration's scored pixels, session 19): the same values there, nothing elsewhere
    assert not member_forecasts.own_history(plan)                      # the neighbourhood member reads around
    plan6 = member_forecasts.Plan(six, [m.meta["data_config"] for m in six])
    assert member_forecasts.own_history(plan6)
    need = np.random.default_rng(1).random((H_, W_)) < 0.3
    items = [(vals, 0, 0, H_, {}, 40), (vals, 0, 0, H_, {}, T_ - 1), (vals, 0, 2, 5, {}, 50), (vals, 0, 0, 2, {}, 50)]
    needs = [need, need, need[2:5], np.zeros((2, W_), bool)]           # the last: nothing wanted
    for it, nd, (out, valid) in zip(items, needs, member_forecasts.forecast_items_on(items, needs, dates, g, six, plan6, 3,
                                                                                      "cpu", 2048)):
        ((o1, v1),) = member_forecasts.forecast_items([it], dates, g, six, plan6, 3, "cpu", 2048)
        np.testing.assert_array_equal(valid, v1 & nd)
        assert valid.sum() >= 0.5 * nd.sum() and np.isnan(out[:, :, ~nd]).all()
        np.testing.assert_allclose(out[:, :, nd], o1[:, :, nd], rtol=1e-6, atol=1e-5)


def test_calibration_independent_of_chunking(tmp_path, monkeypatch):
    from deformcast.algorithms.maps import calibration

    vals, dates, g = _gappy_stack()
    p = str(tmp_path / "gappy.tif")
    raster.write_stack(p, vals, dates, g)
    root = _mixed_members(tmp_path, vals, dates, g)
    loaded = ensemble.load_members(root)
    configs = [m.meta["data_config"] for m in loaded]
    info = raster.open_stack(p)
    one = calibration.collect(info, loaded, configs, {}, T_ - 1, 3, "cpu", 2048)
    monkeypatch.setattr(ensemble, "BLOCK_PIXELS", W_)       # one row per block and per chunk
    many = calibration.collect(info, loaded, configs, {}, T_ - 1, 3, "cpu", 2048)
    assert one is not None and one["err"].shape == many["err"].shape and one["err"].shape[1] > 20
    order_one = np.lexsort(np.vstack([one["err"], one["origin"][None]]))
    order_many = np.lexsort(np.vstack([many["err"], many["origin"][None]]))
    np.testing.assert_allclose(many["err"][:, order_many], one["err"][:, order_one], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(many["feats"][:, :, order_many], one["feats"][:, :, order_one], rtol=1e-5, atol=1e-5)


def test_inference_threads_follow_deformcast_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("DEFORMCAST_THREADS", "1")
    with runtime.inference_threads():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.delenv("DEFORMCAST_THREADS")
    with runtime.inference_threads():
        assert torch.get_num_threads() == before


def test_the_main_job_keeps_numpy_blas_to_one_thread_and_restores_it():
    """Idle OpenBLAS threads spin on sched_yield: the main job and tune run with one (runtime.blas_threads)."""
    from threadpoolctl import threadpool_info

    def blas():
        return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]

    before = blas()
    assert before, "numpy has no BLAS that threadpoolctl can see"
    seen = []

    @runtime.numeric_session
    def job(x):
        seen.extend(blas())
        return x + 1

    assert job(1) == 2 and set(seen) == {1}
    assert blas() == before
    from deformcast.algorithms.learn.tuning.job import tune_job
    from deformcast.algorithms.workflow import run_workflow
    assert tune_job.__wrapped__ and run_workflow.__wrapped__ and ensemble.predict_ensemble.__wrapped__   # the entrances


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(runtime.glibc() is None, reason="glibc's mallopt only (Linux)")
def test_the_entrances_keep_freed_memory_for_the_next_arrays_and_give_it_back_at_the_end(monkeypatch):
    """Inside heap_reuse an array freed stays with the process and the next one of its size takes its pages (no
    fresh mapping to fault in); at the end the memory goes back to the system, as it does without heap_reuse
    and with DEFORMCAST_MALLOC=default."""
    monkeypatch.delenv("DEFORMCAST_MALLOC", raising=False)
    n = 300 * 2 ** 20 // 8       # 300 MB of float64

    def cycle():
        """RSS growth (MB) after one array of n values is written and freed, and while a second one is written."""
        base = _rss_mb()
        a = np.empty(n)
        a.fill(1.0)
        del a
        kept = _rss_mb() - base
        b = np.empty(n)
        b.fill(2.0)
        during = _rss_mb() - base
        del b
        return kept, during

    assert cycle()[0] < 50                     # glibc as it is: a large array is a mapping, unmapped when freed
    with runtime.heap_reuse():
        with runtime.heap_reuse():             # nested entrances (the main job calls predict)
            kept, during = cycle()
        assert kept > 250 and during < kept + 50, (kept, during)
        base = _rss_mb()
    assert _rss_mb() < base - 250              # given back when the outermost block ends
    assert cycle()[0] < 50                     # and glibc's defaults are back
    first, second = runtime.heap_reuse(), runtime.heap_reuse()   # two jobs in two QGIS task threads, overlapping
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)           # the first job ends while the second still runs: still kept
    assert cycle()[0] > 250
    second.__exit__(None, None, None)          # the last one out restores glibc's defaults
    assert cycle()[0] < 50
    monkeypatch.setenv("DEFORMCAST_MALLOC", "default")
    with runtime.heap_reuse():
        assert cycle()[0] < 50


@pytest.mark.skipif("trajectory" not in dataset.ENCODINGS, reason="no trajectory encoding in dataset.py")
def test_shared_trajectory_channels_equal_each_members_own_inputs(tmp_path):
    T = 110                                                     # 3.6 years: room for the 1.9-year history
    rng = np.random.default_rng(8)
    g = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)
    dates = np.datetime64("2019-01-01") + np.arange(T) * np.timedelta64(12, "D")
    t = np.arange(T, dtype=np.float32)[:, None, None]
    vals = (rng.uniform(-0.8, 0.2, size=(1, H_, W_)) * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25)
            + rng.normal(0, 0.3, (T, H_, W_))).astype(np.float32)
    vals[rng.random(vals.shape) < 0.02] = np.nan
    vals[:-7, 1, 1] = np.nan      # 7 valid epochs: an anchor (7 terms) but no trajectory statistics (needs 8)
    vals[-7:, 1, 1] = 1.0
    specs = [(6, ("trajectory",)), (10, ("trajectory",)), (8, ("temporal", "trajectory")), (6, ("none",))]
    root = tmp_path / "traj"
    names = []
    for seed, (window, enc) in enumerate(specs):
        prep = dataset.prepare(vals, dates, g, window, 3, encodings=enc, target="residual", validation="space",
                               max_samples=300, seed=0)
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 8}, device="cpu",
                          seed=seed, max_epochs=1)
        meta = {"architecture": "gru", "hparams": res.hparams, "n_features": prep.n_features, "window": window,
                "horizon": 3, "feature_names": prep.feature_names, "encodings": list(enc), "normalisation": prep.norm,
                "data_config": prep.config, "grid": modelio.grid_to_dict(g),
                "validation": {"val_loss": res.best_val_loss}, "seed": seed}
        modelio.save_model(str(root / f"m{seed}"), res.model, meta)
        names.append(f"m{seed}")
    modelio.write_manifest(str(root), names)
    loaded = ensemble.load_members(str(root))
    plan = member_forecasts.Plan(loaded, [m.meta["data_config"] for m in loaded])
    assert len(plan.groups) == 4 and len(plan.anchor_keys) == 1
    assert sorted(k[1] for k in plan.shared_inputs) == [False, True]   # trajectory channels computed once
    for e in (T - 1, 95):
        ref, ref_valid = _per_member_reference(vals, dates, g, 0, 0, H_, loaded, e, 3)
        ((out, valid),) = member_forecasts.forecast_items([(vals, 0, 0, H_, {}, e)], dates, g, loaded, plan, 3, "cpu", 2048)
        np.testing.assert_array_equal(valid, ref_valid)
        np.testing.assert_allclose(np.nan_to_num(out), np.nan_to_num(ref), rtol=1e-5, atol=1e-5)
        assert not valid[1, 1] and valid.sum() > 0.5 * valid.size
