"""benchmarks/bench_pair.py (session 29): the paired, ABBA-ordered timing of two revisions. Its pure parts: the run
order cancels a steady drift of the machine, the interval of the paired difference agrees with a paired t-test, the
command's JSON is found among its other output, and only ``{side}`` / ``{run}`` are filled in."""
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_pair as bp  # noqa: E402


def test_abba_order_cancels_a_steady_drift():
    order = bp.abba(4)
    assert order[:4] == [(1, "old"), (1, "new"), (2, "new"), (2, "old")]
    assert sorted(order) == sorted((i, s) for i in range(1, 5) for s in ("old", "new"))
    # each slot 0.7 s slower than the one before, the new code 2 s faster: the mean paired difference is -2 exactly
    slot = {key: k for k, key in enumerate(order)}
    old = [100 + 0.7 * slot[(i, "old")] for i in range(1, 5)]
    new = [98 + 0.7 * slot[(i, "new")] for i in range(1, 5)]
    s = bp.summary(old, new)
    assert math.isclose(s["diff_mean"], -2.0) and s["n"] == 4


def test_the_interval_excludes_zero_exactly_where_a_paired_t_test_rejects():
    rng = np.random.default_rng(0)
    for k in range(40):
        old = rng.normal(120, 5, 6)
        new = old + rng.normal(-1.5, 2.0, 6)
        s = bp.summary(list(old), list(new))
        shown = s["diff_lo"] > 0 or s["diff_hi"] < 0
        assert shown == (ttest_rel(new, old).pvalue < 0.05), k
        assert math.isclose(s["old_mean"], float(np.mean(old))) and math.isclose(s["new_sd"], float(np.std(new, ddof=1)))
    one = bp.summary([1.0, float("nan")], [2.0, 3.0])      # a pair with a missing value is left out
    assert one["n"] == 1 and math.isnan(one["diff_lo"])


def test_the_commands_json_and_the_placeholders():
    out = 'Reading the stack...\n{"not": "this"}\nwarning: {braces}\n{"predict_s": 121.5, "phases": {"gate": 90.1}}\n'
    got = bp.last_json(out)
    assert bp.pick(got, "predict_s") == 121.5 and bp.pick(got, "phases.gate") == 90.1
    assert math.isnan(bp.pick(got, "phases.missing")) and math.isnan(bp.pick(None, "predict_s"))
    assert bp.last_json("no json here") is None
    assert bp.fill_in("/tmp/c_{side}_{run} {'x': 1}", {"side": "old", "run": "3"}) == "/tmp/c_old_3 {'x': 1}"
