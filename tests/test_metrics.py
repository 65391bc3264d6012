"""Metrics against hand-computed numbers."""
import math

import numpy as np
import pytest

from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.metrics import evaluate, evaluate_maps, mae, r2, rmse, scores, table


def test_scores_hand_computed():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 3.0, 2.0, 6.0])
    # errors 0, 1, -1, 2 -> SSE 6, MAE 1, bias 0.5; SST about mean 2.5 = 5 -> R2 = 1 - 6/5 = -0.2
    assert rmse(pred, truth) == pytest.approx(math.sqrt(6 / 4))
    assert mae(pred, truth) == pytest.approx(1.0)
    assert r2(pred, truth) == pytest.approx(-0.2)
    assert scores(pred, truth)["bias"] == pytest.approx(0.5)
    assert r2(truth, truth) == 1.0


def test_nan_ignored_and_per_step_and_zones():
    truth = np.array([[0.0, 10.0], [2.0, 20.0], [4.0, np.nan], [6.0, 30.0]])
    pred = np.array([[1.0, 10.0], [2.0, 22.0], [np.nan, 5.0], [6.0, 30.0]])
    res = evaluate(pred, truth, zones=np.array([1, 1, 2, 0]), zone_names={1: "fault buffer"})
    s0, s1 = res["per_step"]
    assert s0["n"] == 3 and s0["rmse"] == pytest.approx(math.sqrt(1 / 3)) and s0["mae"] == pytest.approx(1 / 3)
    # step 0: truth 0, 2, 6 (mean 8/3) -> SST = 64/9 + 4/9 + 100/9 = 168/9; SSE 1
    assert s0["r2"] == pytest.approx(1 - 1 / (168 / 9))
    assert s1["n"] == 3 and s1["rmse"] == pytest.approx(math.sqrt(4 / 3))
    o = res["overall"]
    assert o["n"] == 6 and o["rmse"] == pytest.approx(math.sqrt(5 / 6)) and o["mae"] == pytest.approx(3 / 6)
    z = res["per_zone"]
    assert set(z) == {"fault buffer", "zone 2"}  # 0 is outside every zone
    assert z["zone 2"]["overall"]["n"] == 0 and math.isnan(z["zone 2"]["overall"]["rmse"])  # no valid pair
    assert z["fault buffer"]["overall"]["n"] == 4
    assert z["fault buffer"]["overall"]["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert table({"m": res})[0][:2] == ["m", pytest.approx(math.sqrt(5 / 6))]


def test_maps_and_errors():
    truth = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    pred = truth + 1.0
    zones = np.zeros((3, 4))
    zones[0] = 3
    res = evaluate_maps(pred, truth, zones)
    assert res["overall"]["rmse"] == pytest.approx(1.0) and res["overall"]["n"] == 24
    assert res["per_zone"]["zone 3"]["overall"]["n"] == 8
    assert len(res["per_step"]) == 2
    with pytest.raises(DeformCastError, match="shape"):
        evaluate(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(DeformCastError, match="zone raster"):
        evaluate(np.zeros((3, 2)), np.zeros((3, 2)), zones=np.ones(4))
    assert scores(np.array([np.nan]), np.array([1.0]))["n"] == 0
