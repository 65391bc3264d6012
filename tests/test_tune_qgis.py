"""tune and compare through processing.run (QGIS), on a tiny real GeoTIFF stack."""
import csv
import json
import os

import pytest


@pytest.fixture(scope="module")
def stack_path(tmp_path_factory):
    from deformcast.algorithms.data import synthetic

    folder = tmp_path_factory.mktemp("scene")
    files = synthetic.write_scene(str(folder), seed=2, width=16, height=16, n_epochs=40, n_future=4)
    return files["stack"]


SPACE = json.dumps({"samples_per_epoch": 128, "hidden": [4, 8], "layers": 1, "batch_size": 64,
                    "window": {"low": 4, "high": 8}})


def test_tune_through_processing(run_alg, stack_path, tmp_path):
    from qgis.core import QgsProcessingFeedback

    msgs = []

    class FB(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            msgs.append(info)
            super().pushInfo(info)

    out = tmp_path / "tuned"
    res = run_alg("tune", {"INPUT": stack_path, "ARCHITECTURE": "lstm", "HORIZON": 2, "N_TRIALS": 3, "TOP_K": 2,
                           "SEARCH_SPACE": SPACE, "MAX_EPOCHS": 2, "MAX_SAMPLES": 300, "PRUNER": "hyperband",
                           "ENCODING": ["temporal"], "SEED": 3, "DEVICE": "cpu", "OUTPUT_FOLDER": str(out),
                           "OUTPUT_REPORT": str(tmp_path / "tune.html")}, feedback=FB())
    assert res["OUTPUT_FOLDER"] == str(out)
    man = json.loads((out / "manifest.json").read_text())
    # hyperband may prune some of the 3 trials; every complete one (at most TOP_K) is kept in rank order
    n = len(man["members"])
    assert 1 <= n <= 2 and [m["rank"] for m in man["members"]] == list(range(1, n + 1))
    assert man["study_name"].startswith("deformcast-lstm-h2-temporal-")  # + data fingerprint
    assert os.path.isfile(res["OUTPUT_REPORT"]) and os.path.isfile(res["OUTPUT_TRIALS"])
    assert res["BEST_VALUE"] == pytest.approx(man["members"][0]["val_rmse_mm"])
    with open(res["OUTPUT_TRIALS"]) as fh:
        trials = list(csv.DictReader(fh))
    assert len(trials) == 3 and {t["state"] for t in trials} <= {"COMPLETE", "PRUNED"}
    assert min(2, sum(t["state"] == "COMPLETE" for t in trials)) == n   # the best TOP_K of the complete ones
    assert any(m.startswith("Trial ") for m in msgs)
    # the model folder is what predict reads
    from deformcast.algorithms.models.modelio import member_paths

    assert len(member_paths(str(out))) == n


def test_tune_refuses_bad_input(run_alg, stack_path, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="SEARCH_SPACE"):
        run_alg("tune", {"INPUT": stack_path, "ARCHITECTURE": "lstm", "HORIZON": 2, "N_TRIALS": 1,
                         "SEARCH_SPACE": "{bad json", "OUTPUT_FOLDER": str(tmp_path / "x")})
    with pytest.raises(QgsProcessingException):
        run_alg("tune", {"INPUT": stack_path, "ARCHITECTURE": "lstm", "HORIZON": 2, "N_TRIALS": 1,
                         "PRUNER": "bogus", "OUTPUT_FOLDER": str(tmp_path / "y")})


def test_compare_through_processing(run_alg, stack_path, tmp_path):
    res = run_alg("compare", {"INPUT": stack_path, "ARCHITECTURES": ["lstm", "tcn"], "REPEATS": 2, "ALPHA": 0.1,
                              "N_TRIALS": 1, "HORIZON": 2, "WINDOW": 6,
                              "SEARCH_SPACE": json.dumps({"samples_per_epoch": 128, "batch_size": 64}),
                              "MAX_EPOCHS": 1, "MAX_SAMPLES": 300, "SEED": 1, "DEVICE": "cpu",
                              "OUTPUT_TABLE": str(tmp_path / "tests.csv"),
                              "OUTPUT_REPORT": str(tmp_path / "compare.html")})
    with open(res["OUTPUT_TABLE"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["family"] for r in rows} == {"TPE vs manual", "between set-ups (TPE)",
                                                              "between set-ups (manual)"}
    assert os.path.isfile(res["OUTPUT_REPORT"]) and os.path.isfile(res["OUTPUT_RUNS"])
    with open(res["OUTPUT_REPORT"]) as fh:
        assert "alpha = 0.1" in fh.read()
