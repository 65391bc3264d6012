"""A Sentinel-1 record whose cadence changed (6 days while Sentinel-1B flew, 12 after its loss) through the main
job: the forecast calendar follows the recent 12-day step, and the log and the report say what changed and
name the fix (regularise). Small tuning budget: what is checked is the calendar and the words, not skill."""
import numpy as np
import pytest

from deformcast.algorithms.data.synthetic import write_scene
from deformcast.algorithms.io import raster
from deformcast.algorithms.progress import Progress
from deformcast.algorithms.workflow import run_workflow


@pytest.mark.slow
def test_main_job_on_a_record_whose_cadence_changed(tmp_path):
    files = write_scene(str(tmp_path / "scene"), seed=3, physics="varied", width=24, height=20, n_epochs=170,
                        n_future=4, step_days=6)
    info = raster.open_stack(files["stack"])
    keep = np.r_[np.arange(120), np.arange(120, 170, 2)]          # 120 acquisitions at 6 days, 25 at 12
    stack = str(tmp_path / "mixed.tif")
    raster.write_stack(stack, raster.read_stack(info)[keep], info.dates[keep], info.grid)
    logs = []
    s = run_workflow(str(tmp_path / "wf"), stack_path=stack, horizon=6, seed=3, n_trials=2, top_k=2, max_epochs=2,
                     max_samples=500, device="cpu", progress=Progress(on_log=logs.append))
    last = info.dates[keep][-1]
    fd = np.array(s["forecast"]["forecast_dates"], dtype="datetime64[D]")
    np.testing.assert_array_equal(fd, last + np.arange(1, 7) * 12)
    warned = [m for m in logs if "6 days apart over the record but 12 days apart" in m]
    assert len(warned) == 1 and "REGULARISE=true and STEP_DAYS=12" in warned[0]
    with open(s["report"], encoding="utf-8") as fh:
        assert "6 days apart over the record but 12 days apart" in fh.read()


@pytest.mark.slow
def test_main_job_puts_the_record_on_a_regular_step_when_asked(tmp_path):
    """REGULAR_STEP=12: the main job reads the stack put on 12-day epochs from the first acquisition (the
    6-day part thinned to them, nothing invented), says so in the report, and has nothing to warn about."""
    from deformcast.algorithms.data.series import regular_dates

    files = write_scene(str(tmp_path / "scene"), seed=4, physics="varied", width=20, height=16, n_epochs=170,
                        n_future=4, step_days=6)
    info = raster.open_stack(files["stack"])
    keep = np.r_[np.arange(120), np.arange(120, 170, 2)]
    stack = str(tmp_path / "mixed.tif")
    values = raster.read_stack(info)[keep]
    raster.write_stack(stack, values, info.dates[keep], info.grid)
    logs = []
    s = run_workflow(str(tmp_path / "wf"), stack_path=stack, horizon=6, seed=4, n_trials=2, top_k=2, max_epochs=2,
                     max_samples=500, device="cpu", regular_step_days=12, progress=Progress(on_log=logs.append))
    reg = raster.open_stack(s["paths"]["stack"])
    want = regular_dates(info.dates[keep], 12)
    np.testing.assert_array_equal(reg.dates, want)
    # every regular epoch falls on an acquisition here (6-day part: every other one): the values are those acquired
    idx = np.searchsorted(info.dates[keep], want)
    np.testing.assert_allclose(raster.read_stack(reg), values[idx], atol=1e-5, equal_nan=True)
    fd = np.array(s["forecast"]["forecast_dates"], dtype="datetime64[D]")
    np.testing.assert_array_equal(fd, want[-1] + np.arange(1, 7) * 12)
    assert not any("days apart over the record" in m for m in logs)
    with open(s["report"], encoding="utf-8") as fh:
        assert "Put on a regular 12-day step from mixed.tif" in fh.read()
