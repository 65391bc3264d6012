"""Each date's common noise out of the training targets (algorithms.data.common_mode): the estimate against a
known common noise, the slow part kept, and the dataset's targets with it (no leakage of the test period)."""
import numpy as np
import pytest

from deformcast.algorithms.data import common_mode as CM
from deformcast.algorithms.data import dataset as D
from deformcast.algorithms.data.baselines import years_between
from deformcast.algorithms.errors import Cancelled
from deformcast.algorithms.io.raster import make_grid
from deformcast.algorithms.progress import Progress

T, H, W = 90, 30, 40
DATES = np.datetime64("2019-03-01") + np.arange(T) * 12
GRID = make_grid(500000.0, 5700000.0, 20.0, W, H)


def _scene(seed=0, common_sd=3.0):
    """Pixels with their own velocity and season, a common noise white in time (the reference area's), a slow
    common drift (a reference that creeps back and forth) and pixel noise: the stack, the white and slow parts."""
    rng = np.random.default_rng(seed)
    t = years_between(DATES, DATES[0])
    vel = rng.normal(-10, 8, (H, W))
    amp = rng.uniform(0, 4, (H, W))
    white = rng.normal(0, common_sd, T)
    slow = 2.5 * np.sin(2 * np.pi * t / 2.7)
    st = (vel[None] * t[:, None, None] + amp[None] * np.sin(2 * np.pi * t)[:, None, None]
          + (white + slow)[:, None, None] + rng.normal(0, 1.0, (T, H, W)))
    return st.astype(np.float32), white, slow


def _read(st):
    return lambda r0, r1: st[:, r0:r1]


def test_the_date_to_date_common_noise_is_found_and_the_slow_part_kept():
    st, white, slow = _scene()
    n_fit = 75
    cw = CM.date_noise(_read(st), n_fit, DATES, (H, W), T, block_rows=7)
    assert cw.shape == (T,)
    assert np.all(cw[n_fit:] == 0)                      # nothing from the epochs it was not given
    want = white[:n_fit] - CM.running_mean(white[:n_fit])
    got = cw[:n_fit]
    assert np.corrcoef(got, want)[0, 1] > 0.97
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.35 * np.std(want)
    # the slow common drift stays in the series: what is taken out hardly follows it
    assert abs(np.corrcoef(got, slow[:n_fit])[0, 1]) < 0.3


def test_no_common_noise_gives_almost_nothing_and_few_pixels_give_none():
    st, _, _ = _scene(seed=1, common_sd=0.0)
    cw = CM.date_noise(_read(st), 75, DATES, (H, W), T)
    assert np.sqrt(np.mean(cw ** 2)) < 0.15              # the pixels' own noise averages out over 1200 pixels
    few = np.full_like(st, np.nan)
    few[:, 0, :10] = st[:, 0, :10]
    assert CM.date_noise(_read(few), 75, DATES, (H, W), T) is None


def test_only_a_spread_sample_of_pixels_is_used(monkeypatch):
    st, white, _ = _scene(seed=2)
    monkeypatch.setattr(CM, "MAX_PIXELS", 300)           # a lattice of every 2nd row and column
    cw = CM.date_noise(_read(st), 75, DATES, (H, W), T)
    want = white[:75] - CM.running_mean(white[:75])
    assert np.corrcoef(cw[:75], want)[0, 1] > 0.95


@pytest.mark.parametrize("validation,spatial", [("space", False), ("time", False), ("space", True)])
def test_training_and_validation_targets_lose_it_test_targets_keep_it_and_the_test_period_stays_unseen(
        monkeypatch, validation, spatial):
    monkeypatch.setattr(CM, "TARGET_COMMON_MODE", True)
    monkeypatch.setattr(CM, "TARGET_SPATIAL", spatial)
    st, _, _ = _scene(seed=3)
    st = st + _smooth_noise(seed=3)
    kw = dict(encodings="none", target="increment", max_samples=400, seed=1, validation=validation)
    a = D.prepare(st, DATES, GRID, 10, 4, **kw)
    val_end = a.config["val_end"]
    cw = CM.date_noise(_read(st), val_end, DATES, (H, W), T, spatial=spatial)
    dn = cw if spatial else CM.DateNoise(cw)
    assert a.config["target_common_mode"] == pytest.approx(np.sqrt(np.mean(dn.common[:val_end] ** 2)), abs=1e-4)
    assert (a.config["target_spatial_noise"] is not None) == spatial
    for s in (a.train, a.val):
        r, c = s.rows_cols(W)
        tt = s.end[:, None] + 1 + np.arange(4)[None]
        np.testing.assert_allclose(s.truth, st[tt, r[:, None], c[:, None]] - dn.at(tt, r, c), atol=1e-4)
    r, c = a.test.rows_cols(W)
    tt = a.test.end[:, None] + 1 + np.arange(4)[None]
    np.testing.assert_array_equal(a.test.truth, st[tt, r[:, None], c[:, None]])
    # garbage in the test epochs changes nothing that training or validation sees
    g = st.copy()
    g[val_end:] = np.random.default_rng(9).normal(0, 500, g[val_end:].shape)
    b = D.prepare(g, DATES, GRID, 10, 4, **kw)
    for s1, s2 in ((a.train, b.train), (a.val, b.val)):
        for k in ("X", "Y", "anchor", "truth", "pixel", "end"):
            np.testing.assert_array_equal(getattr(s1, k), getattr(s2, k))
    assert a.config["target_common_mode"] == b.config["target_common_mode"]
    assert a.config["target_spatial_noise"] == b.config["target_spatial_noise"]


def _smooth_noise(seed=0, sd=3.0, scale=4.0):
    """A spatially smooth noise, white in time (an atmosphere): (T, H, W)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(100 + seed)
    f = np.stack([gaussian_filter(rng.normal(0, 1, (H, W)), scale, mode="wrap") for _ in range(T)])
    return (f / f.std() * sd).astype(np.float32)


def _high_pass(x):
    """Each pixel's series less its centred running mean (the date-to-date part)."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float64)
    return (flat - np.stack([CM.running_mean(flat[:, i]) for i in range(flat.shape[1])], 1)).reshape(x.shape)


@pytest.mark.parametrize("max_field", [None, 300])
def test_the_spatially_smooth_noise_is_found_on_a_full_or_sparse_lattice(monkeypatch, max_field):
    if max_field:
        monkeypatch.setattr(CM, "MAX_FIELD_PIXELS", max_field)  # every 2nd row and column
    st, white, _ = _scene(seed=5)
    atm = _smooth_noise(seed=5)
    n_fit = 75
    dn = CM.date_noise(_read(st + atm), n_fit, DATES, (H, W), T, block_rows=7, spatial=True)
    assert isinstance(dn, CM.DateNoise) and dn.step == (2 if max_field else 1)
    assert np.all(dn.field[n_fit:] == 0) and np.all(dn.common[n_fit:] == 0)
    rr, cc = np.divmod(np.arange(H * W), W)
    got = dn.at(np.arange(n_fit)[None].repeat(H * W, 0), rr, cc).T.reshape(n_fit, H, W)
    want = _high_pass(atm[:n_fit] + white[:n_fit, None, None])
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9
    # the common estimate alone leaves most of the smooth noise: the spatial part earns its keep
    common_only = np.broadcast_to(dn.common[:n_fit, None, None], want.shape)
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.5 * np.sqrt(np.mean((common_only - want) ** 2))
    # the pixels' own motion (velocity and season) is not taken for noise
    assert dn.rms(n_fit)["spatial"] < 1.2 * np.sqrt(np.mean(_high_pass(atm[:n_fit]) ** 2))


def test_a_known_step_is_not_taken_for_noise():
    st, _, _ = _scene(seed=6, common_sd=0.0)
    k = 40
    st[k:, 5:20, 5:20] -= 25.0                           # a patch that drops 25 mm at one date
    n_fit = 75
    with_step = CM.date_noise(_read(st), n_fit, DATES, (H, W), T, spatial=True, steps=[str(DATES[k])])
    without = CM.date_noise(_read(st), n_fit, DATES, (H, W), T, spatial=True)
    patch = (slice(k - 3, k + 4), slice(8, 17), slice(8, 17))
    assert np.sqrt(np.mean(without.field[patch] ** 2)) > 4.0   # an unknown step looks like a noise burst
    assert np.sqrt(np.mean(with_step.field[patch] ** 2)) < 1.0


def test_off_the_targets_are_the_stack(monkeypatch):
    monkeypatch.setattr(CM, "TARGET_COMMON_MODE", False)
    st, _, _ = _scene(seed=3)
    a = D.prepare(st, DATES, GRID, 10, 4, encodings="none", max_samples=300, seed=1)
    assert a.config["target_common_mode"] is None and a.config["target_spatial_noise"] is None
    r, c = a.train.rows_cols(W)
    tt = a.train.end[:, None] + 1 + np.arange(4)[None]
    np.testing.assert_array_equal(a.train.truth, st[tt, r[:, None], c[:, None]])


def test_cancel_is_honoured_while_the_common_mode_is_read():
    st, _, _ = _scene(seed=4)
    reads = []

    def read(r0, r1):
        reads.append(r0)
        return st[:, r0:r1]

    progress = Progress(is_cancelled=lambda: len(reads) >= 2)
    with pytest.raises(Cancelled):
        CM.date_noise(read, 75, DATES, (H, W), T, block_rows=5, check=progress.check)
    assert len(reads) == 2                               # stopped after the block that saw Cancel
