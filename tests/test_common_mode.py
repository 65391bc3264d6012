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


@pytest.mark.parametrize("validation", ["space", "time"])
def test_training_and_validation_targets_lose_it_test_targets_keep_it_and_the_test_period_stays_unseen(
        monkeypatch, validation):
    monkeypatch.setattr(CM, "TARGET_COMMON_MODE", True)
    st, _, _ = _scene(seed=3)
    kw = dict(encodings="none", target="increment", max_samples=400, seed=1, validation=validation)
    a = D.prepare(st, DATES, GRID, 10, 4, **kw)
    val_end = a.config["val_end"]
    cw = CM.date_noise(_read(st), val_end, DATES, (H, W), T)
    assert a.config["target_common_mode"] == pytest.approx(np.sqrt(np.mean(cw[:val_end] ** 2)), abs=1e-4)
    for s in (a.train, a.val):
        r, c = s.rows_cols(W)
        tt = s.end[:, None] + 1 + np.arange(4)[None]
        np.testing.assert_allclose(s.truth, st[tt, r[:, None], c[:, None]] - cw[tt], atol=1e-4)
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


def test_off_the_targets_are_the_stack(monkeypatch):
    monkeypatch.setattr(CM, "TARGET_COMMON_MODE", False)
    st, _, _ = _scene(seed=3)
    a = D.prepare(st, DATES, GRID, 10, 4, encodings="none", max_samples=300, seed=1)
    assert a.config["target_common_mode"] is None
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
