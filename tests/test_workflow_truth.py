"""Issue 7 target, checked against the demo scene's known physics: the control tiers of the main job
cover the subsidence bowls and the creeping fault (Tier 1-2) and leave the quiet background to routine
monitoring (Tier 4).

Stated tolerances (set from what a planner needs, before running): at least 70 % of the bowl pixels in
Tier 1 or 2, at least 70 % of the quiet background in Tier 4.

Fault zone (|distance to the fault| <= 240 m): its creep (about 5 mm/yr) stays under the 10 mm
threshold over the one-year horizon, so only the differential-movement rule flags it: a trace of
significant steps along the fault and a 150 m buffer either side. Even a trace found along the whole
fault puts at most about 175/240 = 73 % of the zone in that buffer, so the tolerance is at least 50 %
of the zone in Tier 1 or 2 (the trace must be found along most of the fault). The rule must not
invent discontinuities: at most 2 % of the quiet background within a discontinuity's buffer.
The minimum mapping unit (1 ha) must at least halve the number of zones of the pixel-level map (the
issue: 745 polygons on 96 x 112 pixels; the seed-42 demo: 179 -> 38). Small tuning budget: the tiers come from the ensemble's exceedance probabilities and the forecast's
spatial pattern, not its fine skill.
"""
import numpy as np
import pytest

from deformcast.algorithms.io.raster import read_raster
from deformcast.algorithms.workflow import run_workflow


@pytest.mark.slow
def test_tiers_cover_bowls_and_fault_and_leave_background_routine(tmp_path):
    s = run_workflow(str(tmp_path / "wf"), seed=42, n_trials=2, top_k=2, max_epochs=3, max_samples=2000,
                     device="cpu")
    tiers = read_raster(s["paths"]["tiers"])[0][0]
    zones = read_raster(s["paths"]["zones"])[0][0]
    ok = np.isfinite(tiers) & (tiers > 0)
    bowls = ok & (zones == 1)
    fault = ok & (zones == 2)
    quiet = ok & (zones == 0)
    share_bowls_12 = float(np.mean(np.isin(tiers[bowls], (1, 2))))
    share_fault_12 = float(np.mean(np.isin(tiers[fault], (1, 2))))
    share_quiet_4 = float(np.mean(tiers[quiet] == 4))
    disc = read_raster(s["paths"]["OUTPUT_DISCONTINUITY"])[0][2]  # 2 trace, 1 buffer, 0 none
    share_quiet_disc = float(np.mean(np.nan_to_num(disc[quiet]) > 0))
    assert share_bowls_12 >= 0.7, share_bowls_12
    assert share_fault_12 >= 0.5, share_fault_12
    assert share_quiet_4 >= 0.7, share_quiet_4
    assert share_quiet_disc <= 0.02, share_quiet_disc
    # the decision map reads as zones: the minimum mapping unit at least halves the pixel-level zones
    sv = s["story"]["sieve"]
    assert sv["zones_after"] <= sv["zones_before"] / 2, sv
