"""Uncertainty core: every formula against hand-computed values, block-wise == whole array."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.maps import uncertainty as U
from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.io.raster import make_grid, read_raster, write_raster, write_stack
from test_exceedance import by_hand

STACK_DATES = np.array(["2020-01-01", "2020-01-13", "2020-01-25"], dtype="datetime64[D]")
FC_DATES = np.array(["2020-02-06", "2020-02-18"], dtype="datetime64[D]")


def make_inputs(tmp_path, d_final, last=None, fc_dates=FC_DATES, member_names=True, name="m"):
    """d_final: (M, H, W) deformation over the horizon; the stack's last epoch is ``last``."""
    d_final = np.asarray(d_final, dtype=np.float32)
    m, h, w = d_final.shape
    grid = make_grid(500000, 5600000, 20.0, w, h)
    last = np.full((h, w), 3.0, np.float32) if last is None else np.asarray(last, np.float32)
    stack = np.stack([last - 2.0, last - 1.0, last])
    sp = str(tmp_path / f"{name}_stack.tif")
    write_stack(sp, stack, STACK_DATES, grid)
    hz = len(fc_dates)
    bands, names = [], []
    for k in range(m):
        for j in range(hz):
            # intermediate epochs are arbitrary; only the final epoch matters
            bands.append(last + d_final[k] * (j + 1) / hz)
            names.append(f"member{k} {fc_dates[j]}")
    mp = str(tmp_path / f"{name}_members.tif")
    write_raster(mp, np.stack(bands), grid, names if member_names else None)
    return mp, sp, grid


def test_block_stats_all_agree_and_two_way_split():
    limits = np.array([1.0, 2.0, 3.0, 4.0])  # 5 classes
    # pixel 0: 4 members all in class 3 (values 2.5); pixel 1: two in class 1, two in class 5
    d = np.array([[2.5, 0.5], [2.5, 0.2], [2.6, 9.0], [2.9, 8.0]])
    st = U.block_stats(d, limits, "magnitude", [2.55, 5.0])
    assert st["ambiguity"][0] == 0.0
    assert st["confidence"][0] == 1.0
    assert st["suscept"][0] == 3
    assert st["ambiguity"][1] == pytest.approx(math.log(2) / math.log(5))
    # median of pixel 1 = (0.5+8)/2 = 4.25 -> class 5; two members agree
    assert st["suscept"][1] == 5
    assert st["confidence"][1] == 0.5
    np.testing.assert_allclose(st["probs"][:, 1], [0.5, 0, 0, 0, 0.5])
    np.testing.assert_allclose(st["probs"].sum(axis=0), 1.0)
    # exceedance: each member dressed with a kernel (hand values: tests/test_exceedance.py); not the share 2/4
    for k, t in enumerate((2.55, 5.0)):
        np.testing.assert_allclose(st["exceed"][k], [by_hand(d[:, j], t, "magnitude") for j in range(2)], atol=1e-6)
    assert 0.5 < st["exceed"][0, 0] < 1.0 and 0.0 <= st["exceed"][1, 0] < 1e-9
    np.testing.assert_allclose(st["std"], d.std(axis=0))
    np.testing.assert_allclose(st["iqr"], np.percentile(d, 90, axis=0) - np.percentile(d, 10, axis=0))


def test_modes_define_exceedance():
    d = np.array([[-12.0], [-8.0], [5.0], [15.0]])
    lim = np.array([0.0])
    mag = U.block_stats(d, lim, "magnitude", [10.0])["exceed"][0, 0]
    sub = U.block_stats(d, lim, "subsidence", [10.0])["exceed"][0, 0]
    upl = U.block_stats(d, lim, "uplift", [10.0])["exceed"][0, 0]
    assert (mag, sub, upl) == pytest.approx([by_hand(d[:, 0], 10.0, m) for m in ("magnitude", "subsidence", "uplift")])
    # magnitude = subsidence + uplift; each below its share (0.25: one member beyond 10 mm, one just inside it)
    assert mag == pytest.approx(sub + upl) and 0.1 < sub < 0.25 and 0.1 < upl < 0.25


def test_value_on_limit_goes_to_upper_class():
    np.testing.assert_array_equal(U.classify(np.array([0.9, 1.0, 1.1, 5.0]), np.array([1.0, 2.0])), [1, 2, 2, 3])


def test_run_end_to_end_hand_values(tmp_path):
    rng = np.random.default_rng(0)
    M, H, W = 4, 6, 5
    base = rng.normal(0, 10, size=(H, W))
    d = np.repeat(base[None], M, axis=0).astype(np.float32)
    d[:, 0, 0] = [-1, -1, 20, 20]  # split pixel
    mp, sp, grid = make_inputs(tmp_path, d)
    outs = {f"{k}_path": str(tmp_path / f"{k}.tif") for k in
            ["susceptibility", "spread", "ambiguity", "confidence", "exceedance", "class_probabilities",
             "deformation"]}
    outs["report_path"] = str(tmp_path / "rep.html")
    res = U.run_uncertainty(mp, sp, thresholds="5,10", n_classes=5, mode="magnitude",
                            extreme_quantiles="90", **outs)
    assert {k: getattr(res, k) for k in outs} == outs  # the result names every file written
    v_med = np.abs(np.median(d.astype(np.float64), axis=0))
    expected_limits = np.quantile(v_med.ravel(), [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(res.limits, expected_limits, rtol=1e-6)
    assert len(res.thresholds) == 3
    assert res.thresholds[2] == pytest.approx(np.percentile(v_med, 90), rel=1e-5)
    s, _, n = read_raster(res.susceptibility_path)
    np.testing.assert_array_equal(s[0], U.classify(v_med, expected_limits))
    amb = read_raster(res.ambiguity_path)[0][0]
    conf = read_raster(res.confidence_path)[0][0]
    mask = np.ones((H, W), bool)
    mask[0, 0] = False
    assert np.all(amb[mask] == 0) and np.all(conf[mask] == 1)
    exc, _, names = read_raster(res.exceedance_path)
    assert names[0].startswith("P(|d| >= 5 mm)") and "P90" in names[2]
    # members that agree: the share (1 or 0); the split pixel: its members dressed with a kernel
    np.testing.assert_allclose(exc[0][mask], ((np.abs(d) >= 5).sum(0) / M)[mask], atol=1e-6)
    np.testing.assert_allclose(exc[1][mask], ((np.abs(d) >= 10).sum(0) / M)[mask], atol=1e-6)
    assert exc[0, 0, 0] == pytest.approx(by_hand(d[:, 0, 0], 5.0, "magnitude"), abs=1e-6)
    assert exc[1, 0, 0] == pytest.approx(by_hand(d[:, 0, 0], 10.0, "magnitude"), abs=1e-6)
    spread = read_raster(res.spread_path)[0]
    np.testing.assert_allclose(spread[0], d.astype(np.float64).std(0), atol=1e-4)
    assert spread[0, 1, 1] == 0 and spread[0, 0, 0] == pytest.approx(10.5, abs=1e-4)
    dm = read_raster(res.deformation_path)[0][0]
    np.testing.assert_allclose(dm, np.median(d, 0), atol=1e-4)
    for k, p in outs.items():
        assert os.path.exists(p)
        if k != "report_path":
            assert os.path.exists(os.path.splitext(p)[0] + ".qml")
    qml = Path(os.path.splitext(res.susceptibility_path)[0] + ".qml").read_text()
    assert "Very high" in qml and f"{expected_limits[3]:.3g}" in qml
    html = Path(res.report_path).read_text()
    assert "Class limits" in html and "data:image/png" in html


def test_deformation_is_measured_from_stack_reference(tmp_path):
    d = np.full((3, 2, 2), 4.0, np.float32)
    last = np.array([[100.0, -50.0], [0.0, 7.0]], np.float32)
    mp, sp, _ = make_inputs(tmp_path, d, last=last)
    out = str(tmp_path / "e.tif")
    U.run_uncertainty(mp, sp, thresholds="3.9,4.1", exceedance_path=out)
    exc = read_raster(out)[0]
    np.testing.assert_array_equal(exc[0], 1.0)
    np.testing.assert_array_equal(exc[1], 0.0)


def test_blockwise_equals_whole_array(tmp_path):
    rng = np.random.default_rng(1)
    d = rng.normal(0, 10, size=(5, 23, 7)).astype(np.float32)
    d[:, 4, 3] = np.nan  # a nodata pixel
    mp, sp, _ = make_inputs(tmp_path, d)
    res = {}
    for br in (1, 5, 1000):
        outs = {f"{k}_path": str(tmp_path / f"b{br}_{k}.tif") for k in
                ["susceptibility", "spread", "ambiguity", "confidence", "exceedance", "class_probabilities"]}
        r = U.run_uncertainty(mp, sp, thresholds="5,15", mode="subsidence", block_rows=br, **outs)
        res[br] = (r.limits, {k: read_raster(p)[0] for k, p in outs.items()})
    for br in (1, 5):
        np.testing.assert_array_equal(res[br][0], res[1000][0])
        for k in res[1000][1]:
            np.testing.assert_array_equal(res[br][1][k], res[1000][1][k])
    s = res[1000][1]["susceptibility_path"][0]
    assert np.isnan(s[4, 3]) and np.isnan(res[1000][1]["ambiguity_path"][0][4, 3])


def test_sampled_limits_when_grid_is_large(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    d = rng.normal(0, 10, size=(3, 20, 10)).astype(np.float32)
    mp, sp, _ = make_inputs(tmp_path, d)
    monkeypatch.setattr(U, "MAX_SAMPLE", 50)  # stride ceil(200/50)=4
    r = U.run_uncertainty(mp, sp, n_classes=4)
    vm = np.abs(np.median(d.astype(np.float64), 0)).ravel()[::4]
    np.testing.assert_allclose(r.limits, np.quantile(vm, [0.25, 0.5, 0.75]), rtol=1e-6)


def test_class_limits_by_hand(tmp_path):
    d = np.array([[[1.0, 6.0, 30.0]]] * 3, np.float32)
    mp, sp, _ = make_inputs(tmp_path, d)
    out = str(tmp_path / "s.tif")
    r = U.run_uncertainty(mp, sp, class_limits="5,20", susceptibility_path=out)
    assert list(r.limits) == [5.0, 20.0] and len(r.class_names) == 3
    np.testing.assert_array_equal(read_raster(out)[0][0, 0], [1, 2, 3])


def test_bad_inputs(tmp_path):
    d = np.zeros((3, 4, 4), np.float32)
    mp, sp, _ = make_inputs(tmp_path, d)
    # grid mismatch
    mp2, _, _ = make_inputs(tmp_path, np.zeros((3, 5, 4), np.float32), name="other")
    with pytest.raises(DeformCastError, match="same grid"):
        U.run_uncertainty(mp2, sp)
    # band count not a multiple of the horizon (no descriptions, HORIZON given)
    mp3, _, _ = make_inputs(tmp_path, np.zeros((3, 4, 4), np.float32), member_names=False, name="nodesc")
    with pytest.raises(DeformCastError, match="not a multiple"):
        U.run_uncertainty(mp3, sp, horizon=4)
    with pytest.raises(DeformCastError, match="HORIZON"):
        U.run_uncertainty(mp3, sp)
    with pytest.raises(DeformCastError, match="THRESHOLDS"):
        U.run_uncertainty(mp, sp, thresholds="5,abc")
    with pytest.raises(DeformCastError, match="CLASS_LIMITS"):
        U.run_uncertainty(mp, sp, class_limits="5,3")
    with pytest.raises(DeformCastError, match="needs at least one threshold"):
        U.run_uncertainty(mp, sp, exceedance_path=str(tmp_path / "x.tif"))
    assert not os.path.exists(tmp_path / "x.tif")
    # forecast dates not after the stack
    early = np.array(["2019-02-06", "2019-02-18"], dtype="datetime64[D]")
    mp4, _, _ = make_inputs(tmp_path, d, fc_dates=early, name="early")
    with pytest.raises(DeformCastError, match="not after any acquisition"):
        U.run_uncertainty(mp4, sp)


def test_no_output_left_when_cancelled(tmp_path):
    from deformcast.algorithms.errors import Cancelled
    from deformcast.algorithms.progress import Progress

    d = np.zeros((3, 8, 4), np.float32)
    mp, sp, _ = make_inputs(tmp_path, d)
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 4

    out = str(tmp_path / "c.tif")
    with pytest.raises(Cancelled):
        U.run_uncertainty(mp, sp, block_rows=1, progress=Progress(is_cancelled=cancelled), ambiguity_path=out)
    assert not any(p.name.startswith("c.") for p in tmp_path.iterdir())
