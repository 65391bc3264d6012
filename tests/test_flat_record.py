"""The longer track record of the local forecast's candidates on quiet ground (``data.flat_record``, session 47)."""
import json

import numpy as np

from deformcast.algorithms.data import anchors as A
from deformcast.algorithms.data import flat_record as FR
from deformcast.algorithms.data import pooling
from deformcast.algorithms.data.baselines import years_between

DATES = np.datetime64("2018-01-03") + np.arange(150) * 12


def test_the_longer_record_adds_origins_before_the_shipped_ones(monkeypatch):
    base = A.candidate_origins(149, 15)
    assert base == [129, 132, 135, 138, 141, 144, 147]
    assert FR.flat_origins(base, 3, 14) == [108, 111, 114, 117, 120, 123, 126]
    assert FR.flat_origins(base, 3, 10) == [120, 123, 126]
    assert FR.flat_origins(base, 3, 7) == [] and FR.flat_origins([], 3, 14) == []
    assert FR.flat_origins([14, 17], 3, 6) == [11]                  # at least 10 epochs of history
    monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", None)
    assert FR.flat_origins(base, 3) == FR.flat_origins(base, 3, 14)  # the default: twice the shipped record
    monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", 0)
    assert FR.flat_origins(base, 3) == []                            # off


def _scene(seed=4, T=140, R=6, C=8):
    """Flat ground in the left half (noise only), a steady -25 mm/yr bowl with seasons in the right half."""
    rng = np.random.default_rng(seed)
    t = years_between(DATES[:T], DATES[0])
    y = np.zeros((T, R, C))
    y[:, :, C // 2:] += (-25.0 * t + 3.0 * np.sin(2 * np.pi * t))[:, None, None]
    return y + rng.normal(0, 1.5, y.shape)


def test_flat_pixels_take_the_longer_record_and_moving_pixels_keep_the_shipped_one(monkeypatch):
    """Where the two-year velocity lies within ``TREND_T`` standard errors of zero, the forecast is the one scored from
    the shipped origins and as many before them (``origins=`` given explicitly, an independent path through
    ``local_forecast``); elsewhere it is the shipped forecast, to the last bit."""
    y = _scene()
    T, R, C = y.shape
    L, e = 15, y.shape[0] - 1
    td = DATES[-1] + np.arange(1, L + 1) * 12
    d = DATES[:T]
    monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", 0)
    shipped = A.local_forecast(y, d, td, L, record_noise=0.0)
    monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", 14)
    got = A.local_forecast(y, d, td, L, record_noise=0.0)
    cands = A.candidate_origins(e, L)
    longer = FR.flat_origins(cands, A.candidate_spacing(L)) + cands
    assert len(longer) == 14 and min(longer) == e - 41
    explicit = A.local_forecast(y, d, td, L, origins=longer, record_noise=0.0)
    quiet = np.ones((R, C), bool)
    for years in (2.0, 0.5):        # the two-year velocity and the last half year's within TREND_T se of zero
        v, se = pooling.velocity_guide(y.reshape(T, -1), d, (R, C), years=years)
        quiet &= np.abs(v) < A.TREND_T * se
    np.testing.assert_array_equal(FR.quiet_ground(y.reshape(T, -1), d, pooling.velocity_guide(y.reshape(T, -1), d, (R, C)),
                                                  (R, C), A.TREND_T), quiet.reshape(-1))
    assert quiet[:, : C // 2].sum() >= 5 and not quiet[:, C // 2:].any()      # flat pixels only
    np.testing.assert_allclose(got[:, quiet], explicit[:, quiet], atol=1e-9)
    np.testing.assert_array_equal(got[:, ~quiet], shipped[:, ~quiet])
    assert np.abs(got[:, quiet] - shipped[:, quiet]).max() > 1e-6      # it does change the flat pixels


def test_the_scenes_class_means_of_the_longer_record_are_used_and_reported(monkeypatch):
    """``evidence["long"]`` receives the unshrunk longer record and its sampling variance; given back as the scene's
    ``record_prior["long"]`` (what ``gating.scene_blend_prior`` estimates over bands), a block is the whole's."""
    monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", 14)
    y = _scene(seed=9)
    T, R, C = y.shape
    L = 15
    td = DATES[-1] + np.arange(1, L + 1) * 12
    d = DATES[:T]
    ev = {}
    whole = A.local_forecast(y, d, td, L, record_noise=0.0, evidence=ev)
    longer, s2 = ev["long"]
    assert longer.shape == s2.shape == ev["pooled"].shape and np.isfinite(longer).all()
    assert not np.allclose(longer, ev["pooled"])
    prior = pooling.class_prior(ev["pooled"], ev["s2"], ev["z"], pooling.EVIDENCE_CLASSES)
    prior["long"] = FR.scene_prior([(longer, s2, ev["z"])])
    again = A.local_forecast(y, d, td, L, record_noise=0.0, record_prior=prior)
    np.testing.assert_allclose(again, whole, atol=1e-9)
    other = dict(prior, long=None)                                   # no class means: the longer record unshrunk
    assert np.abs(A.local_forecast(y, d, td, L, record_noise=0.0, record_prior=other) - whole).max() > 1e-9


def test_predict_in_blocks_gives_the_whole_rasters_forecast_with_the_longer_record(tmp_path, monkeypatch):
    """``predict`` in blocks of 3 rows gives the whole raster's local blend with the longer record on quiet ground:
    the scene's class means of the longer record travel with the scene's prior (``gating.scene_blend_prior``)."""
    from deformcast.algorithms.io import raster
    from deformcast.algorithms.learn import tuning
    from deformcast.algorithms.maps.ensemble import predict_ensemble
    from deformcast.algorithms.data.synthetic import write_scene

    files = write_scene(str(tmp_path / "scene"), seed=2, width=18, height=16, n_epochs=100, n_future=6)
    folder = str(tmp_path / "models")
    tuning.tune_job(files["stack"], folder, "gru", 6, n_trials=2, top_k=2, max_epochs=2, max_samples=600, seed=1,
                    device="cpu", search_space={"hidden": 16, "layers": 1, "window": 8})
    man_path = tmp_path / "models" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["gate"]["local_blend"] = True
    man["gate"]["weights"] = np.ones_like(np.asarray(man["gate"]["weights"])).tolist()
    man_path.write_text(json.dumps(man))
    out = {}
    for n, on, rows in (("off", 0, None), ("whole", 14, None), ("blocks", 14, 3)):
        monkeypatch.setattr(FR, "FLAT_RECORD_ORIGINS", on)
        p = str(tmp_path / f"{n}.tif")
        predict_ensemble(files["stack"], folder, p, calibrate=False, block_rows=rows)
        out[n] = raster.read_raster(p)[0]
    ok = np.isfinite(out["off"])                                        # the scene has gaps
    assert ok.mean() > 0.8
    np.testing.assert_array_equal(np.isfinite(out["whole"]), ok)
    assert np.abs(out["whole"][ok] - out["off"][ok]).max() > 1e-4  # the longer record moved the forecast
    np.testing.assert_allclose(out["blocks"], out["whole"], atol=1e-4, equal_nan=True)


def test_a_sharper_power_applies_at_the_quiet_pixels_only(monkeypatch):
    """With ``QUIET_POWER`` the quiet pixels take the forecast made with that power everywhere (``LOCAL_POWER`` set,
    another path), the moving pixels the shipped one, to the last bit; off (0), nothing changes."""
    y = _scene(seed=7)
    T, R, C = y.shape
    L = 15
    td = DATES[-1] + np.arange(1, L + 1) * 12
    d = DATES[:T]
    monkeypatch.setattr(FR, "QUIET_POWER", 0.0)
    shipped = A.local_forecast(y, d, td, L, record_noise=0.0)
    assert FR.candidate_power(np.ones(4, bool), 2.0) is None
    monkeypatch.setattr(A, "LOCAL_POWER", 4.0)
    everywhere = A.local_forecast(y, d, td, L, record_noise=0.0)
    monkeypatch.setattr(A, "LOCAL_POWER", 2.0)
    monkeypatch.setattr(FR, "QUIET_POWER", 4.0)
    got = A.local_forecast(y, d, td, L, record_noise=0.0)
    flat = y.reshape(T, -1)
    quiet = FR.quiet_ground(flat, d, pooling.velocity_guide(flat, d, (R, C)), (R, C), A.TREND_T).reshape(R, C)
    assert quiet.sum() >= 5 and (~quiet).sum() >= 5
    assert np.array_equal(got[:, quiet], everywhere[:, quiet])
    assert np.array_equal(got[:, ~quiet], shipped[:, ~quiet])
    assert not np.allclose(everywhere[:, quiet], shipped[:, quiet])    # the power changes the quiet pixels' forecast
    np.testing.assert_array_equal(FR.candidate_power(quiet.reshape(-1), 2.0), np.where(quiet.reshape(-1), 4.0, 2.0))
