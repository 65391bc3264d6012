"""The targets' noise taken out of the local classical forecast's track record (session 40, data/record_noise.py):
the option of a record that is the mean squared error, off by default since session 41 (the squared mean error)."""
import numpy as np
import pytest

from deformcast.algorithms.data import anchors as A
from deformcast.algorithms.data import pooling
from deformcast.algorithms.data import record_noise as RN
from deformcast.algorithms.data import track_record as TR
from deformcast.algorithms.io import raster
from deformcast.algorithms.maps import gating

DATES = np.datetime64("2018-01-03") + np.arange(150) * 12


def _trend(seed, v=-10.0, sigma=4.0, shape=(10, 12), T=150):
    """A steady trend with white noise of ``sigma`` mm, independent per pixel and date."""
    rng = np.random.default_rng(seed)
    t = (DATES[:T] - DATES[0]).astype(float) / 365.25
    return v * t[:, None, None] + rng.normal(0.0, sigma, (T,) + shape)


@pytest.fixture(autouse=True)
def _session_40(monkeypatch):
    """Session 40's record (the mean squared error) with its choice of taking the noise out, as these tests check."""
    monkeypatch.setattr(TR, "RECORD_MEAN", False)
    monkeypatch.setattr(RN, "RECORD_NOISE", True)


def _choice(y, dates, cache=None):
    return RN.noise_choice(y, dates, 15, A.local_forecast, None, cache)


def test_the_records_lose_the_noise_and_keep_a_tenth(monkeypatch):
    y = _trend(0)
    td = DATES[150 - 1] + np.arange(1, 16) * 12
    seen = []
    shipped = A._combine

    def spy(pooled, family, offer=None, power=None):
        seen.append(pooled.copy())
        return shipped(pooled, family, offer, power)

    monkeypatch.setattr(A, "_combine", spy)
    plain = A.local_forecast(y, DATES, td, 15, record_noise=0.0)
    base = seen[-1]
    both = A.local_forecast(y, DATES, td, 15, record_noise=[0.0, 9.0, 1e6])
    got = seen[-3:]
    np.testing.assert_array_equal(got[0], base)
    np.testing.assert_allclose(got[1], np.maximum(base - 9.0, 0.1 * base))
    np.testing.assert_allclose(got[2], 0.1 * base)              # a noise above every record keeps its tenth
    np.testing.assert_array_equal(both[0], plain)
    # the tenth of each record is the record over ten: the inverse squared weights, and so the forecast, are the
    # plain ones
    np.testing.assert_allclose(both[2], plain, rtol=1e-10, atol=1e-10)
    assert not np.allclose(both[1], plain)
    alone = A.local_forecast(y, DATES, td, 15, record_noise=9.0)
    np.testing.assert_array_equal(alone, both[1])


def test_target_noise_follows_the_noise_of_the_records_last_dates():
    rng = np.random.default_rng(3)
    sigma = np.where(np.arange(150) >= 130, 4.0, 1.0)    # the last 20 dates four times as noisy
    t = (DATES - DATES[0]).astype(float) / 365.25
    y = (-8.0 * t[:, None] + sigma[:, None] * rng.normal(0.0, 1.0, (150, 3000)))
    got = RN.target_noise(y, DATES, 15)                   # the record's targets: the last 15 + 5 dates
    # date_spread removes each date's median and a running mean over a few dates, a small share of the variance
    assert 0.75 * 16.0 < got < 1.0 * 16.0
    assert RN.target_noise(y[:120], DATES[:120], 15) < 1.0     # before the noisy dates
    assert RN.target_noise(y[:, :20], DATES, 15) == 0.0        # too few series to tell


def test_the_choice_reads_nothing_after_the_origin():
    y = _trend(1)
    e = 119
    garbage = y.copy()
    garbage[e + 1:] = np.random.default_rng(9).normal(500.0, 300.0, garbage[e + 1:].shape)
    clean = _choice(y[:e + 1], DATES[:e + 1], A.FamilyCache(y, DATES, 15))
    dirty = _choice(garbage[:e + 1], DATES[:e + 1], A.FamilyCache(garbage, DATES, 15))
    lean = _choice(garbage[:e + 1], DATES[:e + 1], A.FamilyCache(garbage, DATES, 15, lean=True))
    assert clean["sse"] == pytest.approx(dirty["sse"], rel=1e-6) and clean["noise"] == dirty["noise"]
    assert clean["sse"] == pytest.approx(lean["sse"], rel=1e-6)
    assert clean["sse"] == pytest.approx(_choice(y[:e + 1], DATES[:e + 1])["sse"], rel=1e-5)


def test_white_noise_around_a_trend_takes_the_noise_out_and_forecasts_better():
    """Under white noise the record of every candidate holds the same noise variance: the long fits that are right
    and smoothed persistence, which lags the trend, differ by a few mm^2 in a record of about 20. Taken out, the
    weights follow the difference; the scene's own past shows the gain and the choice takes it."""
    for seed in range(3):
        y = _trend(seed)
        e = y.shape[0] - 16
        got = _choice(y[:e + 1], DATES[:e + 1])
        assert got["noise"] == got["target_noise"] > 8.0
        assert got["sse"][1] < 0.98 * got["sse"][0]
        td = DATES[e + 1:e + 16]
        truth = -10.0 * ((td - DATES[0]).astype(float) / 365.25)
        err = [np.sqrt(np.mean((f.reshape(15, -1) - truth[:, None]) ** 2)) for f in
               A.local_forecast(y[:e + 1], DATES[:e + 1], td, 15, record_noise=[0.0, got["noise"]])]
        assert err[1] < err[0]
        # "auto" is that choice; switched off, none
        np.testing.assert_array_equal(A.local_forecast(y[:e + 1], DATES[:e + 1], td, 15),
                                      A.local_forecast(y[:e + 1], DATES[:e + 1], td, 15, record_noise=got["noise"]))


def test_the_margin_and_a_history_too_short_keep_the_noise_in(monkeypatch):
    assert RN.noise_chosen([100.0, 98.9]) and not RN.noise_chosen([100.0, 99.1]) and not RN.noise_chosen([0.0, 0.0])
    y = _trend(2)
    short = _choice(y[:RN.NOISE_MIN_ORIGIN + 15], DATES[:RN.NOISE_MIN_ORIGIN + 15])
    assert short["sse"] == [0.0, 0.0] and short["noise"] == 0.0
    monkeypatch.setattr(RN, "RECORD_NOISE", False)
    td = DATES[150 - 1] + np.arange(1, 16) * 12
    np.testing.assert_array_equal(A.local_forecast(y, DATES, td, 15), A.local_forecast(y, DATES, td, 15,
                                                                                       record_noise=0.0))


def test_the_scenes_choice_from_bands_of_rows_is_the_whole_rasters(tmp_path, monkeypatch):
    """``predict`` on a raster of several blocks gives every block the scene's choice, made on bands of rows with
    their halo: where the bands cover the raster it is the choice of the raster as one block. Exactly so without
    the records' classes of trend evidence; with them each band's past forecasts shrink towards the band's classes,
    not the scene's, and the sums move by about a thousandth."""
    y = _trend(4, shape=(40, 12)).astype(np.float32)
    rng = np.random.default_rng(5)
    t = (DATES - DATES[0]).astype(float) / 365.25
    y[:, 10:25] += (-25.0 * np.clip(t - 4.0, 0.0, None))[:, None, None]   # a bowl that started a year before the end
    y += rng.normal(0.0, 2.0, (150, 1, 1)).astype(np.float32)             # each date's shared atmosphere
    p = str(tmp_path / "s.tif")
    raster.write_stack(p, y, DATES, raster.make_grid(0, 0, 20, y.shape[2], y.shape[1]))
    info = raster.open_stack(p)
    e, halo = 149, A.LOCAL_HALO
    bands = [(r0, r1, max(0, r0 - halo), min(40, r1 + halo)) for r0, r1 in ((0, 13), (13, 27), (27, 40))]
    cfg = {"horizon": 15}
    scene = gating.scene_record_noise(info, bands, e, 15, cfg, 15)
    whole = _choice(raster.read_stack(info).astype(np.float64), DATES)
    assert scene["sse"] == pytest.approx(whole["sse"], rel=5e-3)
    assert scene["target_noise"] == pytest.approx(whole["target_noise"], rel=1e-9)
    assert scene["noise"] == pytest.approx(whole["noise"], rel=1e-9)
    assert scene["noise"] > 0.0                        # this scene takes the noise out ...
    monkeypatch.setattr(RN, "RECORD_NOISE", False)
    assert gating.scene_record_noise(info, bands, e, 15, cfg, 15)["noise"] == 0.0     # ... unless switched off
    monkeypatch.setattr(RN, "RECORD_NOISE", True)
    monkeypatch.setattr(pooling, "EVIDENCE_CLASSES", 0)
    scene = gating.scene_record_noise(info, bands, e, 15, cfg, 15)
    whole = _choice(raster.read_stack(info).astype(np.float64), DATES)
    assert scene["sse"] == pytest.approx(whole["sse"], rel=1e-6)


def test_choices_from_origins_five_apart_share_an_earlier_origins_sums():
    """At lead 15 the choices from origins five epochs apart both forecast from one earlier origin: the block's cache
    keeps its sums, and the second choice is the one it makes alone."""
    y = _trend(6)
    cache = A.FamilyCache(y, DATES, 15)
    first = _choice(y[:120], DATES[:120], cache)
    assert (119 - 15, 15) in cache.noise_origins and (119 - 20, 15) in cache.noise_origins
    second = _choice(y[:125], DATES[:125], cache)      # its e - 20 is the first's e - 15
    alone = _choice(y[:125], DATES[:125], A.FamilyCache(y, DATES, 15))
    assert second["sse"] == pytest.approx(alone["sse"], rel=1e-12) and second["noise"] == alone["noise"]
    assert first["sse"] != second["sse"]
