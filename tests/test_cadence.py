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
