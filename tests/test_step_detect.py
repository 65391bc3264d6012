"""Steps nobody gave (algorithms.data.step_detect): a step of a patch is dated from the stack, a smooth
bend, a kink of the velocity or seasonal motion is not taken for one, and a step date enters only the
fits of the pixels whose history up to the origin shows it."""
import numpy as np

from deformcast.algorithms.data import anchors, step_detect
from deformcast.algorithms.data.dataset import prepare


def _stack(step_mm=20.0, k_step=110, T=150, R=30, W=40, seed=0, common=1.5):
    """A stack (T, R, W) mm with seasonal motion, an accelerating bowl with an onset (a kink), white
    noise of 2 mm, noise shared by all pixels of a date (``common`` mm), and (``step_mm``) a step at epoch ``k_step`` in a patch."""
    rng = np.random.default_rng(seed)
    d = np.datetime64("2016-01-01") + np.arange(T) * np.timedelta64(12, "D")
    t = np.arange(T) * 12 / 365.25
    yy, xx = np.mgrid[0:R, 0:W]
    y = np.zeros((T, R, W))
    y += 4.0 * np.sin(2 * np.pi * t)[:, None, None] * (1 + xx / W)[None]
    bowl = np.exp(-((yy - 15) ** 2 + (xx - 30) ** 2) / 30.0)
    on = t[70]
    y -= (30.0 * np.clip(t - on, 0, None) ** 2)[:, None, None] * bowl[None]          # onset + acceleration
    y += rng.normal(0, 2.0, y.shape) + rng.normal(0, common, (T, 1, 1))
    patch = ((yy - 10) ** 2 + (xx - 10) ** 2) <= 36
    if step_mm:
        y[k_step:, patch] += step_mm
    return y.astype(np.float32), d, patch


def test_a_patch_step_is_dated_and_nothing_else_is():
    y, d, _ = _stack(step_mm=20.0, k_step=110)
    got = step_detect.detect_steps(y, d)
    assert [g["epoch"] for g in got] == [110]
    assert got[0]["date"] == str(d[110]) and got[0]["pixels"] >= step_detect.STEP_MIN_PIXELS
    y0, d0, _ = _stack(step_mm=0.0)
    assert step_detect.detect_steps(y0, d0) == []          # bend, kink, seasonal motion, noise: no step


def test_block_reading_adds_up_to_the_whole(tmp_path):
    from deformcast.algorithms.io import raster

    y, d, _ = _stack(step_mm=15.0, k_step=95)
    p = str(tmp_path / "s.tif")
    raster.write_stack(p, y, d, raster.make_grid(0, 0, 20, y.shape[2], y.shape[1]))
    info = raster.open_stack(p)
    blocks, whole = step_detect.detect_in_source(info, info.dates, rows_per_block=7), step_detect.detect_steps(y, d)
    key = ("date", "epoch", "pixels", "cycles", "row", "col")      # the patch centre in raster rows, block or whole
    assert [[g[k] for k in key] for g in blocks] == [[g[k] for k in key] for g in whole] and whole
    # each block fits the steps of its own pixels: the same median up to the histogram's bins
    np.testing.assert_allclose([g["step_mm"] for g in blocks], [g["step_mm"] for g in whole], atol=0.3)


def test_pixel_test_uses_the_history_only_and_the_family_changes_only_where_the_step_is():
    y, d, patch = _stack(step_mm=20.0, k_step=110)
    flat = y.reshape(y.shape[0], -1).astype(np.float64)
    date = str(d[110])
    # before the step and right after it (fewer than STEP_MIN_POST epochs) the history cannot show it
    assert not step_detect.pixel_steps(flat[:110], d[:110], [date]).any()
    assert not step_detect.pixel_steps(flat[:112], d[:112], [date]).any()
    shows = step_detect.pixel_steps(flat[:130], d[:130], [date])[0]
    # every pixel of the patch; outside it, only where the noise shared by all pixels of the dates
    # around the step mimics one (no more than a few per cent without that noise)
    assert shows[patch.ravel()].mean() > 0.95 and shows[~patch.ravel()].mean() < 0.3
    yw, _, _ = _stack(step_mm=20.0, k_step=110, common=0.0)
    white = step_detect.pixel_steps(yw.reshape(yw.shape[0], -1)[:130], d[:130], [date])[0]
    assert white[patch.ravel()].mean() > 0.95 and white[~patch.ravel()].mean() < 0.02
    e = 129
    td = d[e] + np.arange(1, 11) * np.timedelta64(12, "D")
    plain = anchors.family_forecasts(flat[:e + 1], d[:e + 1], td)
    stepped = anchors.family_forecasts(flat[:e + 1], d[:e + 1], td, [date])
    np.testing.assert_allclose(stepped[:, :, ~shows], plain[:, :, ~shows], rtol=1e-9, atol=1e-9)   # unchanged elsewhere
    # where the step is, the trajectory fits no longer bend to join the two levels
    i = anchors.FAMILY_NAMES.index("trajectory_2y")
    level = np.nanmean(flat[e - 9:e + 1][:, patch.ravel()], axis=0)
    err_plain = np.abs(plain[i][-1][patch.ravel()] - level).mean()
    err_step = np.abs(stepped[i][-1][patch.ravel()] - level).mean()
    assert err_step < 0.5 * err_plain, (err_step, err_plain)


def test_prepare_resolves_auto_steps_and_records_them():
    y, d, _ = _stack(step_mm=20.0, k_step=110)
    p = prepare(y, d, None, 8, 6, target="residual", baseline="adaptive", max_samples=300, steps="auto",
                validation="space")
    assert p.config["steps"] == [str(d[110])]
    assert [x["epoch"] for x in p.config["steps_detected"]] == [110]
    p0 = prepare(y, d, None, 8, 6, target="residual", baseline="adaptive", max_samples=300, steps=None,
                 validation="space")
    assert p0.config["steps"] == [] and p0.config["steps_detected"] is None


def test_the_scan_of_whole_series_equals_the_fit_of_each_window_and_gaps_do_not_hide_a_step():
    y, d, patch = _stack(step_mm=20.0, k_step=110, R=12, W=15)
    scan = step_detect.step_scan(y, d)
    r = step_detect._detrended(y.reshape(y.shape[0], -1).astype(np.float64), d)
    for i, k in enumerate(scan["k"]):
        c, t = step_detect._window_fit(r, int(k), step_detect.STEP_HALF, step_detect.STEP_HALF)
        np.testing.assert_allclose(scan["c"][i].ravel(), c, atol=1e-9)
        np.testing.assert_allclose(scan["t"][i].ravel(), t, atol=1e-8)
    # a fifth of the epochs missing at random in every pixel (and a pixel with too few epochs)
    y, d, patch = _stack(step_mm=20.0, k_step=110)
    rng = np.random.default_rng(3)
    y[rng.random(y.shape) < 0.2] = np.nan
    y[:100, 0, 0] = np.nan
    scan = step_detect.step_scan(y, d)
    assert np.isnan(scan["t"][:, 0, 0]).all()
    assert [g["epoch"] for g in step_detect.pick_dates(step_detect.coherent_counts(scan), scan["k"], d)] == [110]


def test_the_classical_baselines_take_a_step_date_where_the_family_does():
    from deformcast.algorithms.data.baselines import forecast_baselines
    from deformcast.algorithms.data.step_detect import baselines_where_steps_show

    y, d, patch = _stack(step_mm=20.0, k_step=110)
    flat = y.reshape(y.shape[0], -1).astype(np.float64)
    e, date = 129, str(d[110])
    td = d[e] + np.arange(1, 11) * np.timedelta64(12, "D")
    shows = step_detect.pixel_steps(flat[:e + 1], d[:e + 1], [date])[0]
    plain = forecast_baselines(flat[:e + 1], d[:e + 1], e, td)
    stepped = baselines_where_steps_show(flat[:e + 1], d[:e + 1], e, td, time_function=[date])
    glob = forecast_baselines(flat[:e + 1, shows], d[:e + 1], e, td, time_function=[date])   # every pixel
    for n in plain:
        np.testing.assert_allclose(stepped[n][:, ~shows], plain[n][:, ~shows], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(stepped[n][:, shows], glob[n], rtol=1e-5, atol=1e-4)


def test_a_wrong_steps_value_names_the_choices():
    import pytest

    from deformcast.algorithms.errors import DeformCastError

    y, d, _ = _stack(step_mm=0.0, R=6, W=6)
    with pytest.raises(DeformCastError, match="STEPS: 'autoo' is not a date.*'auto'.*'none'"):
        prepare(y, d, None, 8, 6, target="residual", baseline="adaptive", max_samples=100, steps="autoo")


def test_a_coherent_step_hidden_in_pixel_noise_is_dated_by_its_neighbourhood():
    """Pixel noise (6 mm) hides a 20 mm step from the per-pixel test (|t| about 2-3 in the patch), but
    the patch's 7 x 7 average stands out of its epoch's field (STEP_Z): dated at its epoch. The same noise
    without the step gives no date, and without the neighbourhood test the step is missed."""
    from scipy.ndimage import gaussian_filter

    for seed in (0, 3):
        rng = np.random.default_rng(seed)
        T, n, k = 120, 60, 60
        atm = np.stack([gaussian_filter(rng.normal(0, 1, (n, n)), 6) for _ in range(T)])
        noise = rng.normal(0, 6.0, (T, n, n)) + atm / atm.std()
        d = np.datetime64("2018-01-03") + np.arange(T) * 12
        y = noise.copy()
        y[k:, 15:40, 15:40] += 20.0
        assert [f["epoch"] for f in step_detect.detect_steps(y, d)] == [k]
        assert step_detect.detect_steps(noise, d) == []
        saved = step_detect.STEP_Z
        try:
            step_detect.STEP_Z = float("inf")
            assert step_detect.detect_steps(y, d) == []
        finally:
            step_detect.STEP_Z = saved


def test_a_step_of_whole_phase_cycles_is_flagged_as_a_likely_unwrapping_error_and_other_steps_are_not():
    cyc = step_detect.CYCLE_MM
    got = {}
    for label, mm in (("one", -cyc), ("two", 2 * cyc), ("collapse", -20.0), ("heave", 15.0)):
        found = step_detect.detect_steps(*_stack(step_mm=mm, k_step=110)[:2])
        assert [g["epoch"] for g in found] == [110], label
        got[label] = found[0]
        assert abs(found[0]["step_mm"] - mm) < 1.5, (label, found[0])       # the patch's median step
    assert [got[k]["cycles"] for k in ("one", "two", "collapse", "heave")] == [1, 2, 0, 0]
    assert abs(got["one"]["row"] - 10) < 1 and abs(got["one"]["col"] - 10) < 1         # the patch's centre
    text = step_detect.describe([got["one"], got["collapse"]])
    assert text.count("unwrapping") == 2 and "MintPy" in text          # the note and the fix, for the cycle only
    first, second = text.split("; ", 1)[0], text.split(f"; {got['collapse']['date']}")[-1]
    assert "phase-unwrapping error" in first and "unwrapping" not in second
    assert step_detect.describe([]) == "none"
    # a step of the same size as a cycle in only some of its pixels (a wide spread around the mean) is not flagged
    y, d, patch = _stack(step_mm=0.0)
    ramp = np.linspace(-1.6, -0.4, int(patch.sum())) * cyc            # mean one cycle, most pixels far from it
    y[110:, patch] += ramp[None].astype(np.float32)
    found = step_detect.detect_steps(y, d)
    assert [g["epoch"] for g in found] == [110] and found[0]["cycles"] == 0


def test_preparing_a_stack_with_a_whole_cycle_step_warns_the_user_and_an_ordinary_step_does_not():
    import warnings

    import pytest

    from deformcast.algorithms.errors import DeformCastWarning

    y, d, _ = _stack(step_mm=-step_detect.CYCLE_MM, k_step=110)
    with pytest.warns(DeformCastWarning, match="Possible phase-unwrapping error in the stack: " + str(d[110])):
        p = prepare(y, d, None, 8, 6, target="residual", baseline="adaptive", max_samples=300, steps="auto",
                    validation="space")
    assert p.config["steps_detected"][0]["cycles"] == 1
    y, d, _ = _stack(step_mm=20.0, k_step=110)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeformCastWarning)
        p = prepare(y, d, None, 8, 6, target="residual", baseline="adaptive", max_samples=300, steps="auto",
                    validation="space")
    assert p.config["steps_detected"][0]["cycles"] == 0
