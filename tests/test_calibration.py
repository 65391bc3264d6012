"""Calibration of the spread (algorithms/calibration.py): target coverage on known Gaussian errors,
monotone in lead time, spread where the errors are, coherent member paths, no test epoch used,
block-aligned contiguous reads."""
import os

import numpy as np
import pytest

from deformcast.algorithms.maps import calibration, ensemble
from deformcast.algorithms.data import dataset
from deformcast.algorithms.models import modelio
from deformcast.algorithms.io import raster
from deformcast.algorithms.learn.training import train_model

F = len(calibration.FEATURES)


def _known_errors(n, H, rng, grow=True):
    """Evidence and errors with a known law: sd² = base_h + (0.5 family)² + white, Gaussian."""
    fam = np.abs(rng.normal(0, 1, n))[None] * np.linspace(1, 3, H)[:, None]
    feats = np.zeros((F, H, n))
    feats[0] = np.maximum.accumulate(fam, axis=0)
    feats[1] = 1.0 + 0.1 * rng.random(n)[None]
    feats[2] = 0.2 * rng.random((H, n))
    feats[3] = np.maximum.accumulate(rng.random((H, n)), axis=0)
    base = np.linspace(1.0, 4.0, H) if grow else np.linspace(4.0, 1.0, H)
    sd = np.sqrt(base[:, None] + (0.5 * feats[0]) ** 2)
    # errors persistent along the lead (AR(1), rho 0.8) with the given marginal sd
    z = np.empty((H, n))
    z[0] = rng.standard_normal(n)
    for h in range(1, H):
        z[h] = 0.8 * z[h - 1] + 0.6 * rng.standard_normal(n)
    return feats, sd * z, sd


@pytest.mark.parametrize("method", calibration.METHODS)
def test_hits_target_coverage_on_known_gaussian_errors(method):
    rng = np.random.default_rng(0)
    feats, err, _ = _known_errors(6000, 8, rng)
    model = calibration.fit(err, feats, 10, method)
    # fresh errors of the same law: out-of-sample coverage of the members' P10-P90 band per step
    feats2, err2, _ = _known_errors(6000, 8, np.random.default_rng(1))
    ev = calibration.evaluate(model, err2, feats2)
    assert all(0.75 <= c <= 0.85 for c in ev["coverage"]), ev["coverage"]
    # the same band from the members that apply() writes
    M, H, n = 10, 8, 500
    out = np.zeros((M, H, 1, n), np.float32)
    valid = np.ones((1, n), bool)
    calibration.apply(model, out, valid, feats2[:, :, :n])
    p10, p90 = np.percentile(out[:, :, 0], [10, 90], axis=0)
    inside = (err2[:, :n] >= p10) & (err2[:, :n] <= p90)
    assert 0.7 <= inside.mean() <= 0.9
    # the evidence that drives the errors gets the weight, the unrelated gets (almost) none
    coef = dict(zip(model["features"], model["coef"]))
    assert coef["family"] == pytest.approx(0.25, rel=0.3)


def test_monotone_in_lead_time_even_when_validation_errors_shrink():
    rng = np.random.default_rng(2)
    feats, err, _ = _known_errors(4000, 10, rng, grow=False)
    model = calibration.fit(err, feats, 10, "dressing")
    lo, hi = calibration._band(np.asarray(model["shape"]))
    w = np.asarray(model["factor"]) * (hi - lo)
    assert np.all(np.diff(w) >= -1e-9)
    assert np.all(np.diff(model["base_var"]) >= 0)
    s = calibration.scale(model, feats)
    assert np.all(np.diff(s * w[:, None], axis=0) >= -1e-9)    # every pixel's band widens with lead
    ev = calibration.evaluate(model, err, feats)
    assert np.all(np.diff(ev["width_mm"]) >= -1e-9)
    # on errors that do grow, the widths follow them
    feats, err, _ = _known_errors(4000, 10, rng, grow=True)
    ev = calibration.evaluate(calibration.fit(err, feats, 10, "dressing"), err, feats)
    assert ev["width_mm"][-1] > 1.3 * ev["width_mm"][0]


def test_spread_larger_where_errors_larger():
    rng = np.random.default_rng(3)
    n, H = 6000, 6
    feats = np.zeros((F, H, n))
    hot = rng.random(n) < 0.15                                   # a "mining bowl": the family disagrees
    feats[0] = np.where(hot, 6.0, 0.5)[None] * np.linspace(1, 1.5, H)[:, None] * (1 + 0.2 * rng.random((H, n)))
    feats[0] = np.maximum.accumulate(feats[0], axis=0)
    feats[1] = 1.0
    feats[2] = 0.3
    feats[3] = np.maximum.accumulate(rng.random((H, n)), axis=0)
    sd = np.sqrt(1.0 + (0.8 * feats[0]) ** 2)
    err = sd * rng.standard_normal((H, n))
    model = calibration.fit(err, feats, 10, "conformal")
    s = calibration.scale(model, feats)
    assert s[-1][hot].mean() > 2.0 * s[-1][~hot].mean()
    ev = calibration.evaluate(model, err, feats)
    assert ev["rank_corr_last"] > 0.3
    # calibrated inside the bowl and outside it, not only on average
    lo, hi = calibration._band(np.asarray(model["shape"]))
    c = model["factor"][-1]
    inside = (err[-1] >= c * lo[-1] * s[-1]) & (err[-1] <= c * hi[-1] * s[-1])
    assert 0.7 <= inside[hot].mean() <= 0.9 and 0.7 <= inside[~hot].mean() <= 0.9


def test_members_are_continuous_paths_with_calibrated_marginals():
    rng = np.random.default_rng(4)
    feats, err, _ = _known_errors(3000, 12, rng)
    model = calibration.fit(err, feats, 10, "dressing")
    assert model["rho"] >= 0.5
    M, H, n = 10, 12, 400
    centre = rng.normal(0, 5, (H, n)).cumsum(axis=0).astype(np.float32)
    out = np.repeat(centre[None, :, None, :], M, axis=0) + rng.normal(0, 0.1, (M, H, 1, n)).astype(np.float32)
    valid = np.ones((1, n), bool)
    valid[0, :5] = False
    before = out.copy()
    med = calibration.apply(model, out, valid, feats[:, :H, : n - 5])
    np.testing.assert_array_equal(out[:, :, 0, :5], before[:, :, 0, :5])   # pixels not asked for stay
    np.testing.assert_allclose(np.median(out[:, :, 0, 5:], axis=0), med[:, 0, 5:], atol=1e-3)
    np.testing.assert_allclose(med[:, 0, 5:], np.median(before[:, :, 0, 5:], axis=0), atol=1e-4)
    dev = out[:, :, 0, 5:] - med[None, :, 0, 5:]
    a, b = dev[:, :-1], dev[:, 1:]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    r = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    assert np.nanmean(r) > 0.5
    # every step's marginal is the calibrated one: the sorted members are centre + c s shape
    s = calibration.scale(model, feats[:, :H, : n - 5])
    shape = np.asarray(model["shape"])
    want = med[None, :, 0, 5:] + (np.asarray(model["factor"])[None, :] * shape.T)[:, :, None] * s[None]
    np.testing.assert_allclose(np.sort(out[:, :, 0, 5:], axis=0), want, rtol=1e-4, atol=1e-3)
    # independent noise per step (the old dressing) would not be a path
    ranks = calibration.member_ranks(M, H, 0.0)
    assert np.mean(ranks[:, 1:] == ranks[:, :-1]) < 0.5


def test_read_spans_are_contiguous_and_block_aligned():
    for height, width, bh, halo in [(1000, 1000, 16, 2), (1000, 1000, 1, 0), (1000, 1000, 256, 3), (50, 9, 16, 1)]:
        spans = calibration.read_spans(height, width, bh, halo, 8000, 64000)
        assert spans
        for a0, a1, r0, r1 in spans:
            assert a0 % bh == 0 and (a1 % bh == 0 or a1 == height)
            assert a0 <= r0 < r1 <= a1 and a1 - a0 >= min(height, bh)
            assert (r0 - a0 >= halo or a0 == 0) and (a1 - r1 >= halo or a1 == height)
        assert sum(r1 - r0 for _, _, r0, r1 in spans) * width >= min(8000, height * width) * 0.9
    # a budget that needs every row: spread spans (6 of 16 rows, each read with 14 rows of halo on a 96-row
    # raster) would pool their halos again and again, so the raster is forecast in consecutive spans
    assert calibration.read_spans(96, 112, 1, 14, 10000, 64000) == [(0, 96, 0, 96)]
    # a budget of a few rows of a tall raster keeps the spread spans
    spread = calibration.read_spans(300, 112, 1, 14, 10000, 64000)
    assert len(spread) == 6 and sum(a1 - a0 for a0, a1, _, _ in spread) < 300


# ---------------------------------------------------------------------------------------------
# end to end: tiny models on a real GDAL stack
# ---------------------------------------------------------------------------------------------
W_, H_, T_ = 32, 40, 60


def _values(seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(T_, dtype=np.float32)[:, None, None]
    rate = rng.uniform(-0.8, 0.2, size=(1, H_, W_)).astype(np.float32)
    return (rate * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25)
            + rng.normal(0, 0.5, (T_, H_, W_))).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cal")
    g = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)
    dates = np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(12, "D")
    vals = _values()
    prep = train_tiny_members(vals, dates, g, str(tmp / "models"))
    return tmp, g, dates, vals, prep


def train_tiny_members(vals, dates, g, folder: str, n: int = 3):
    """``n`` tiny GRU members (temporal coding, window 8, horizon 3, one epoch) trained on ``vals`` and
    saved with a manifest in ``folder`` (also used by tests/test_dask.py); returns the prepared data."""
    prep = dataset.prepare(vals, dates, g, 8, 3, encodings=("temporal",), max_samples=300, seed=0)
    names = []
    for k in range(n):
        res = train_model(prep.train.X, prep.train.Y, prep.val.X, prep.val.Y, "gru", {"hidden": 8}, device="cpu",
                          seed=k, max_epochs=1)
        meta = {"architecture": "gru", "hparams": res.hparams, "n_features": prep.n_features, "window": res.window,
                "horizon": res.horizon, "feature_names": prep.feature_names, "encodings": ["temporal"],
                "normalisation": prep.norm, "data_config": prep.config, "grid": modelio.grid_to_dict(g),
                "validation": {"val_loss": res.best_val_loss}, "seed": k}
        modelio.save_model(os.path.join(folder, f"m{k}"), res.model, meta)
        names.append(f"m{k}")
    modelio.write_manifest(folder, names)
    return prep


def _calibrate(path, root, e=None):
    info = raster.open_stack(path)
    loaded = ensemble.load_members(root)
    configs = [m.meta["data_config"] for m in loaded]
    calibration._CACHE.clear()
    return calibration.calibrate(info, loaded, configs, {}, info.n_epochs - 1 if e is None else e, 3, "cpu", 2048)


def test_uses_no_test_epoch_and_nothing_after_the_origin(tiny):
    tmp, g, dates, vals, prep = tiny
    root = str(tmp / "models")
    clean = str(tmp / "clean.tif")
    raster.write_stack(clean, vals, dates, g)
    model, det = _calibrate(clean, root)
    assert det["calibrated"] and len(det["origins"]) >= 2
    test_start = prep.config["test_start"]
    for o in det["origins"]:
        assert int(np.searchsorted(dates, np.datetime64(o))) + 3 < test_start
    bad = vals.copy()
    bad[test_start:] = np.random.default_rng(9).normal(0, 500, bad[test_start:].shape)   # garbage test period
    garbage = str(tmp / "garbage.tif")
    raster.write_stack(garbage, bad, dates, g)
    model2, det2 = _calibrate(garbage, root)
    assert model2 == model
    assert det2["cross_validated"] == det["cross_validated"]
    # a backtest from an earlier origin: garbage after it changes nothing either
    e = test_start - 4
    bad2 = vals.copy()
    bad2[e + 1:] = 1e4
    after = str(tmp / "after.tif")
    raster.write_stack(after, bad2, dates, g)
    m_a, d_a = _calibrate(clean, root, e)
    m_b, d_b = _calibrate(after, root, e)
    assert d_a["calibrated"] and m_a == m_b


def test_reads_whole_aligned_row_blocks_of_a_tiled_stack(tiny, monkeypatch):
    from osgeo import gdal

    tmp, g, dates, vals, prep = tiny
    plain = str(tmp / "plain.tif")
    raster.write_stack(plain, vals, dates, g)
    tiled = str(tmp / "tiled.tif")
    gdal.Translate(tiled, plain, creationOptions=["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "INTERLEAVE=PIXEL"])
    assert calibration.block_height(tiled) == 16
    reads = []
    real = raster.read_stack

    def spy(info, rows=None, bands=None):
        reads.append(rows)
        return real(info, rows=rows, bands=bands)

    monkeypatch.setattr(raster, "read_stack", spy)
    info = raster.open_stack(tiled)
    loaded = ensemble.load_members(str(tmp / "models"))
    configs = [m.meta["data_config"] for m in loaded]
    data = calibration.collect(info, loaded, configs, {}, T_ - 1, 3, "cpu", 2048, max_pixels=3 * W_)
    assert data is not None and reads
    for a0, a1 in reads:
        assert a0 % 16 == 0 and (a1 % 16 == 0 or a1 == H_) and a1 - a0 >= 16
    full = calibration.collect(info, loaded, configs, {}, T_ - 1, 3, "cpu", 2048)
    assert full["err"].shape[1] > data["err"].shape[1] > 0


def test_predict_writes_calibrated_coherent_members(tiny):
    tmp, g, dates, vals, prep = tiny
    p = str(tmp / "clean.tif")
    raster.write_stack(p, vals, dates, g)
    calibration._CACHE.clear()
    res = {m: ensemble.predict_ensemble(p, str(tmp / "models"), str(tmp / f"{m}_med.tif"), None,
                                        str(tmp / f"{m}_mem.tif"), device="cpu", calibration=m)
           for m in calibration.METHODS}
    for m, r in res.items():
        cal = r["calibration"]
        assert cal["calibrated"] and cal["method"] == m
        assert set(cal["cross_validated"]) == set(calibration.METHODS)
        assert all(0.6 <= c <= 0.95 for c in cal["calibrated_coverage"])
        assert np.all(np.diff(cal["width_mm"]) >= -1e-9)
        mem = raster.read_raster(str(tmp / f"{m}_mem.tif"))[0].reshape(3, 3, H_, W_)
        med = raster.read_raster(str(tmp / f"{m}_med.tif"))[0]
        np.testing.assert_allclose(np.median(mem, axis=0), med, atol=1e-3)
    with pytest.raises(Exception, match="CALIBRATION"):
        ensemble.predict_ensemble(p, str(tmp / "models"), str(tmp / "x.tif"), device="cpu", calibration="bogus")
    # the seasonal acquisition noise: asked for, and the median is unchanged
    r = ensemble.predict_ensemble(p, str(tmp / "models"), str(tmp / "s_med.tif"), None, str(tmp / "s_mem.tif"),
                                  device="cpu", seasonal_noise=True)
    cal = r["calibration"]
    # this stack's validation targets span less than a year: the option is refused with the reason
    assert not cal["seasonal_noise"] and "calendar months" in cal["seasonal_note"]
    assert not set(calibration.NOISE_FEATURES) & set(cal["evidence"])
    assert not res["dressing"]["calibration"]["seasonal_noise"] and not res["dressing"]["calibration"]["seasonal_note"]
    np.testing.assert_allclose(raster.read_raster(str(tmp / "s_med.tif"))[0],
                               raster.read_raster(str(tmp / "dressing_med.tif"))[0], atol=1e-4)


def _dated_errors(rng, O=8, H=12, n=400, spacing=6):
    """Validation errors from ``O`` origins whose target dates each have their own atmosphere (a noise
    sd common to every pixel on that date, log-normal across dates) plus a part the evidence explains.
    The law does not depend on the lead: only which dates fall at a step does."""
    date_sd = 2.0 * np.exp(rng.normal(0.0, 0.7, O * spacing + H + 1))
    errs, fs, org = [], [], []
    for o in range(O):
        fam = np.maximum.accumulate(np.abs(rng.normal(0, 1, n))[None] * np.linspace(1, 2, H)[:, None], axis=0)
        feats = np.zeros((F, H, n))
        feats[0] = feats[3] = fam
        feats[1], feats[2] = 1.0, 0.1
        sd = np.sqrt(date_sd[o * spacing + 1:o * spacing + 1 + H, None] ** 2 + (0.7 * fam) ** 2)
        errs.append(sd * rng.standard_normal((H, n)))
        fs.append(feats)
        org.append(np.full(n, o))
    return np.concatenate(errs, 1), np.concatenate(fs, 2), np.concatenate(org)


def test_few_dates_per_step_do_not_ratchet_the_band():
    """With a few dates per step, a base spread fitted per step and made non-decreasing (running max)
    inherits every noisy date: narrow at the first steps, too wide later. The lead-pooled base chosen
    by leave-one-origin-out coverage holds the target at every step on fresh dates."""
    rng = np.random.default_rng(0)
    per_step, pooled, bases = [], [], set()
    for _ in range(10):
        err, feats, origin = _dated_errors(rng)
        model = calibration.fit(err, feats, 10, "dressing", origin=origin)
        bases.add(model["base"])
        assert set(model["base_scores"]) == set(calibration.CHOSEN_BASES)
        fresh_err, fresh_feats, _ = _dated_errors(rng, O=40)          # other dates, same law
        pooled.append(calibration.evaluate(model, fresh_err, fresh_feats)["coverage"])
        old = calibration.fit(err, feats, 10, "dressing", base="step")
        per_step.append(calibration.evaluate(old, fresh_err, fresh_feats)["coverage"])
    pooled, per_step = np.mean(pooled, axis=0), np.mean(per_step, axis=0)
    assert bases <= set(calibration.CHOSEN_BASES)
    assert np.all((pooled >= 0.76) & (pooled <= 0.86)), pooled
    assert np.ptp(pooled) <= 0.05, pooled
    # the per-step form shows the ratchet on the same data (what the pooled form removes)
    assert per_step[-1] - per_step[0] >= 0.08, per_step


def _seasonal_errors(rng, starts, H=15, n=300, step_days=12):
    """Errors whose acquisition noise follows the season of the target date (sd 1 mm in winter, 4 mm in
    summer, peak mid-July) plus a part the evidence explains; forecasts from ``starts`` (dates)."""
    errs, fs, org = [], [], []
    for o, t0 in enumerate(starts):
        td = np.datetime64(t0, "D") + np.arange(1, H + 1) * np.timedelta64(step_days, "D")
        doy = (td - td.astype("datetime64[Y]").astype("datetime64[D]")).astype(float)
        noise_sd = 2.5 + 1.5 * np.cos(2 * np.pi * (doy - 196) / 365.25)
        fam = np.maximum.accumulate(np.abs(rng.normal(0, 1, n))[None] * np.linspace(1, 2, H)[:, None], axis=0)
        feats = np.zeros((F, H, n))
        feats[0] = feats[3] = fam
        feats[1], feats[2] = 1.0, 0.1
        feats = np.concatenate([feats, np.broadcast_to(calibration.season_features(td)[:, :, None], (4, H, n))])
        sd = np.sqrt(noise_sd[:, None] ** 2 + (0.7 * fam) ** 2)
        errs.append(sd * rng.standard_normal((H, n)))
        fs.append(feats)
        org.append(np.full(n, o))
    return np.concatenate(errs, 1), np.concatenate(fs, 2), np.concatenate(org)


def test_seasonal_noise_follows_the_summer_and_holds_coverage_per_step():
    rng = np.random.default_rng(5)
    starts = [f"20{y}-{m:02d}-01" for y in (18, 19) for m in (1, 4, 7, 10)]          # 8 origins over two years
    err, feats, origin = _seasonal_errors(rng, starts)
    seasonal = calibration.fit(err, feats, 10, "dressing", origin=origin)
    plain = calibration.fit(err[:, :], feats[:len(calibration.FEATURES)], 10, "dressing", origin=origin)
    assert calibration.is_seasonal(seasonal) and not calibration.is_seasonal(plain)
    w = dict(zip(seasonal["features"], seasonal["coef"]))
    assert w["noise_jul"] == max(w[k] for k in calibration.NOISE_FEATURES) > 0      # the summer term carries it
    # a forecast issued in early June runs from summer into autumn: per step, the seasonal band holds
    # the target where the plain one (one width for every season) over-covers the quiet steps
    e2, f2, _ = _seasonal_errors(np.random.default_rng(6), ["2021-06-01"] * 20)
    cs = np.asarray(calibration.evaluate(seasonal, e2, f2)["coverage"])
    cp = np.asarray(calibration.evaluate(plain, e2, f2[:len(calibration.FEATURES)])["coverage"])
    assert np.all((cs >= 0.74) & (cs <= 0.86)), cs
    assert np.abs(cs - 0.8).max() < np.abs(cp - 0.8).max() - 0.03, (cs, cp)
    # the forecast part stays monotone in lead; only the noise of the target date makes the band narrow
    s = calibration.scale(seasonal, f2)
    no_noise = dict(seasonal, features=seasonal["features"][:len(calibration.FEATURES)],
                    coef=seasonal["coef"][:len(calibration.FEATURES)])
    assert np.all(np.diff(calibration.scale(no_noise, f2[:len(calibration.FEATURES)]), axis=0) >= -1e-9)
    assert np.any(np.diff(s, axis=0) < -1e-3)          # after the summer the band narrows again


def test_seasonal_noise_needs_a_whole_year_of_validation_targets():
    dates = np.datetime64("2019-01-05") + np.arange(120) * np.timedelta64(12, "D")
    assert len(calibration.months_covered(dates, [40, 50, 60, 70], 15)) == 12      # targets over 14 months
    half = calibration.months_covered(dates, [40, 45], 5)                        # targets over 4 months
    assert 3 <= len(half) <= 5 and half <= set(range(1, 13))


def test_season_features_and_evidence_rows():
    td = np.array(["2020-01-01", "2020-04-01", "2020-07-01", "2020-10-01"], dtype="datetime64[D]")
    sf = calibration.season_features(td)
    assert sf.shape == (4, 4)
    np.testing.assert_allclose(np.diag(sf), 1.0, atol=0.01)            # each term peaks in its season
    np.testing.assert_allclose((sf ** 2).sum(axis=0), 2.0, atol=1e-9)  # together: a constant
    rng = np.random.default_rng(7)
    T, R, W, M, H = 60, 4, 5, 3, 6
    dates = np.datetime64("2019-01-01") + np.arange(T) * np.timedelta64(12, "D")
    blk = np.cumsum(rng.normal(0, 1, (T, R, W)), axis=0).astype(np.float32)
    members = rng.normal(0, 1, (M, H, R, W))
    valid = np.ones((R, W), bool)
    plain = calibration.evidence(blk, 0, 0, R, 40, dates, members, valid, H)
    both = calibration.evidence(blk, 0, 0, R, 40, dates, members, valid, H, seasonal=True)
    assert both.shape == (len(calibration.FEATURES) + 4, H, R * W)
    np.testing.assert_array_equal(both[:len(calibration.FEATURES)], plain)
    np.testing.assert_allclose(both[len(calibration.FEATURES):, :, 0], calibration.season_features(dates[41:41 + H]))
