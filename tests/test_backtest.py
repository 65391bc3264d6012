"""The one backtest (:mod:`maps.backtest`): rolling origins inside the test period, scores per lead
step and per zone; ``train`` evaluates through it and ``run_backtest`` reads what ``train`` writes."""
import numpy as np
import pytest

_TINY = '{"d_model": 16, "layers": 1, "res_blocks": 1, "batch_size": 128}'


def test_rolling_origins_and_leads():
    from deformcast.algorithms.maps.backtest import lead_steps, rolling_origins

    # test period epochs 10..17 (T=18), horizon 3: origins 9, 12, 15 -> leads 1,2,3,1,2,3,1,2
    assert rolling_origins(10, 18, 3, 6) == [9, 12, 15]
    assert lead_steps([9, 12, 15], 10, 18, 3).tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    # origins without a full input window are dropped
    assert rolling_origins(4, 12, 3, 6) == [6, 9]


def _close(a, b, rel=1e-5):
    """Nested dicts/lists of scores equal up to float rounding (NaN == NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    return a == pytest.approx(b, rel=rel, abs=1e-6, nan_ok=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from deformcast.algorithms.data.synthetic import write_scene
    from deformcast.algorithms.learn.train_job import run_training_job

    tmp = tmp_path_factory.mktemp("bt")
    sc = write_scene(str(tmp / "scene"), seed=3, width=16, height=16, n_epochs=48, n_future=4)
    out = run_training_job(sc["stack"], str(tmp / "model"), "gru", horizon=3, window=6, encodings=["temporal"],
                           hparams='{"hidden": 8, "layers": 1, "batch_size": 128}', max_epochs=1, seed=5,
                           forecast_path=str(tmp / "fc.tif"), truth_path=sc["truth"], zones_path=sc["zones"],
                           threads=1, block_rows=5)
    if isinstance(out, dict):  # the dict of an older run_training_job
        out = type("R", (), {"folder": out.folder, "metrics": out.metrics, "test_dates": out.test_dates})
    return sc, out, tmp


def test_rolling_backtest_of_a_train_folder_reproduces_the_train_scores(trained):
    """``train`` writes a model folder with a manifest; the rolling backtest of it gives the very
    scores and forecast raster that the train job reported (one code path)."""
    from deformcast.algorithms.data.baselines import BASELINES
    from deformcast.algorithms.io.raster import read_raster
    from deformcast.algorithms.maps.backtest import run_backtest

    sc, out, tmp = trained
    bt = run_backtest(sc["stack"], out.folder, str(tmp / "bt"), truth_path=sc["truth"], origins="rolling",
                      zones_path=sc["zones"], block_rows=5, seed=5, device="cpu")
    member = "member 1 (m01_gru)"
    assert bt["methods"] == [member, *BASELINES]
    assert bt["test_dates"] == out.test_dates
    assert len(bt["origins"]) == int(np.ceil(len(out.test_dates) / 3)) and set(bt["lead"]) == {1, 2, 3}
    for ref in ("observed", "truth"):
        got, want = bt["metrics"][ref], out.metrics[ref]
        assert _close(got[member], want["gru"])
        for b in BASELINES:
            assert got[b] == want[b]
        assert len(got[member]["per_step"]) == 3 and got[member]["per_zone"]
    assert [r["model"] for r in bt["rows"]] == [member] + [f"baseline: {b}" for b in BASELINES]
    assert bt["rows"][0]["rmse_truth"] == pytest.approx(out.metrics["truth"]["gru"]["overall"]["rmse"], rel=1e-5)
    fc_train, _, names = read_raster(str(tmp / "fc.tif"))
    fc_bt, _, names_bt = read_raster(bt["forecast_path"])
    assert names == names_bt and np.allclose(fc_train, fc_bt, atol=1e-4, equal_nan=True)


def test_backtest_refuses_unknown_origins(trained):
    from deformcast.algorithms.errors import DeformCastError
    from deformcast.algorithms.maps.backtest import run_backtest

    sc, out, tmp = trained
    with pytest.raises(DeformCastError, match="single.*rolling"):
        run_backtest(sc["stack"], out.folder, str(tmp / "x"), origins="every")
