"""compare: repeated manual vs TPE runs, Welch + BH table and report, on a tiny real setup."""
import csv
import json

import numpy as np
import pytest

from deformcast.algorithms.learn import compare
from deformcast.algorithms import stats
from deformcast.algorithms.errors import DeformCastError

SPACE = {"samples_per_epoch": 128, "hidden": [4, 8], "layers": 1, "batch_size": 64}


@pytest.fixture(scope="module")
def scene():
    from deformcast.algorithms.data import synthetic

    return synthetic.make_scene(seed=4, width=16, height=16, n_epochs=40)


def _run(scene, tmp_path, **kw):
    args = dict(repeats=2, n_trials=2, window=6, search_space=SPACE, max_epochs=2, patience=2, max_samples=300,
                threads=1)
    args.update(kw)
    return compare.run_comparison(scene.observed, scene.dates, scene.grid, ["lstm", "gru"], 2,
                                  str(tmp_path / "tests.csv"), str(tmp_path / "compare.html"), **args)


def test_compare_end_to_end(scene, tmp_path):
    res = _run(scene, tmp_path)
    # 2 architectures x 2 methods x 2 repeats, every one scored on the test period
    assert len(res.runs) == 8
    assert all(np.isfinite(r["test_rmse_mm"]) and np.isfinite(r["val_rmse_mm"]) for r in res.runs)
    assert {(r["architecture"], r["method"]) for r in res.runs} == {
        (a, m) for a in ("lstm", "gru") for m in ("manual", "tpe")}
    # manual runs differ only by seed; TPE runs use other seeds
    seeds = {(r["architecture"], r["method"]): set() for r in res.runs}
    for r in res.runs:
        seeds[(r["architecture"], r["method"])].add(r["seed"])
    assert all(len(s) == 2 for s in seeds.values())
    # tests: TPE vs manual per architecture + between architectures per method = 4
    with open(tmp_path / "tests.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    fams = [r["family"] for r in rows]
    assert fams.count("TPE vs manual") == 2
    # the table's numbers are the Welch/BH of the runs, recomputed here independently
    groups = {}
    for r in res.runs:
        groups.setdefault(f"{r['architecture']} {r['method']}", []).append(r["test_rmse_mm"])
    ps = []
    for row in rows:
        w = stats.welch(groups[row["group_a"]], groups[row["group_b"]])
        assert float(row["p"]) == pytest.approx(w.p)
        assert float(row["diff"]) == pytest.approx(w.diff)
        ps.append(w.p)
    from statsmodels.stats.multitest import multipletests

    rej, adj, _, _ = multipletests(ps, alpha=0.05, method="fdr_bh")
    assert [float(r["p_bh"]) for r in rows] == pytest.approx(list(adj))
    assert [r["significant_bh"] == "True" for r in rows] == list(rej)
    html = (tmp_path / "compare.html").read_text()
    assert "survive Benjamini" in html and "<img" in html and "baseline" in html
    assert len(res.sentences) == 4 and all("FDR" in s or "not testable" in s for s in res.sentences)
    with open(tmp_path / "tests_runs.csv") as fh:
        runs = list(csv.DictReader(fh))
    assert len(runs) == 8 and json.loads(runs[0]["config"])

    # a second run reuses the finished runs (same numbers, no retraining)
    logs = []
    from deformcast.algorithms.progress import Progress

    res2 = _run(scene, tmp_path, progress=Progress(on_log=logs.append))
    assert [r["test_rmse_mm"] for r in res2.runs] == [r["test_rmse_mm"] for r in res.runs]
    assert sum("reusing" in m for m in logs) == 8


def test_compare_refuses_bad_settings(scene, tmp_path):
    with pytest.raises(DeformCastError, match="REPEATS"):
        _run(scene, tmp_path, repeats=1)
    with pytest.raises(DeformCastError, match="ALPHA"):
        _run(scene, tmp_path, alpha=0)
    with pytest.raises(DeformCastError, match="ENCODING"):
        _run(scene, tmp_path, strategies="temporal;bogus")
    with pytest.raises(DeformCastError, match="Valid architectures"):
        compare.run_comparison(scene.observed, scene.dates, scene.grid, ["nope"], 2, str(tmp_path / "t.csv"))


def test_parse_strategies():
    assert compare.parse_strategies("none; temporal ;spatial,temporal") == ["none", "temporal", "spatial,temporal"]
    assert compare.parse_strategies(None) == ["temporal"]
