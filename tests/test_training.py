"""Training loop, prediction, model files (core, no QGIS): real torch training on tiny data."""
import json
import os

import numpy as np
import pytest

from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress

SIX = ["lstm", "gru", "tcn", "cnn_lstm", "transformer", "resnet_transformer"]


def _series(n, window=8, horizon=3, seed=0):
    """Trend + seasonal + noise windows, relative to the last input epoch (like dataset.prepare)."""
    rng = np.random.default_rng(seed)
    t = np.arange(window + horizon)[None].astype(np.float64)
    v = rng.normal(0, 1, (n, 1))
    ph = rng.uniform(0, 2 * np.pi, (n, 1))
    s = v * t / 5 + np.sin(t * 0.8 + ph) + rng.normal(0, 0.05, (n, window + horizon))
    s = s - s[:, window - 1:window]
    X = np.stack([s[:, :window], np.cos(t[:, :window] * 0.8 + 0 * ph)], axis=-1).astype(np.float32)
    return X, s[:, window:].astype(np.float32)


@pytest.fixture(scope="module")
def data():
    X, Y = _series(384, seed=0)
    Xv, Yv = _series(96, seed=1)
    return X, Y, Xv, Yv


def _small(name):
    from deformcast.algorithms.models import get_spec

    hp = {"batch_size": 32, "lr": 5e-3}
    if "d_model" in get_spec(name).defaults:
        hp.update(d_model=16, layers=1)
    return hp


@pytest.mark.parametrize("name", SIX)
def test_each_architecture_learns(name, data):
    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    # the loss of the untrained net (epoch 0 train loss is an average over the first epoch)
    r = train_model(X, Y, Xv, Yv, name, _small(name), seed=3, max_epochs=6, patience=10, threads=1)
    first, last = r.history[0], r.history[-1]
    assert r.epochs_run == 6 and len(r.history) == 6
    assert last["train_loss"] < 0.8 * first["train_loss"], r.history
    assert r.best_val_loss < 0.8 * first["val_loss"] or r.best_val_loss < 0.8 * float(np.mean(Yv ** 2)), r.history
    assert r.best_val_loss == min(h["val_loss"] for h in r.history)
    assert r.n_parameters > 0 and r.window == 8 and r.horizon == 3 and r.n_features == 2


def test_seeded_run_repeats_bit_for_bit(data):
    import torch

    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    runs = [train_model(X, Y, Xv, Yv, "resnet_transformer", _small("resnet_transformer"), seed=s,
                        max_epochs=2, threads=1) for s in (7, 7, 8)]
    a, b, c = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in runs[0].history] == [h["val_loss"] for h in runs[1].history]
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # the global RNG and thread count are left as they were
    torch.manual_seed(123)
    expect = torch.rand(1)
    torch.manual_seed(123)
    train_model(X, Y, Xv, Yv, "gru", _small("gru"), seed=1, max_epochs=1, threads=1)
    assert torch.equal(torch.rand(1), expect)
    assert torch.get_num_threads() == 1


def test_cancel_stops_within_one_batch(data):
    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    calls = {"n": 0}

    def on_progress(_):
        calls["n"] += 1  # one call per finished batch

    prog = Progress(on_progress, lambda: calls["n"] >= 5)
    with pytest.raises(Cancelled):
        train_model(X, Y, Xv, Yv, "lstm", _small("lstm"), max_epochs=50, progress=prog, threads=1)
    assert calls["n"] == 5  # the batch after Cancel was pressed never ran


def test_epoch_callback_sees_val_loss_and_may_stop(data):
    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    seen = []

    class Pruned(Exception):
        pass

    def cb(epoch, val):
        seen.append((epoch, val))
        if epoch == 1:
            raise Pruned()

    with pytest.raises(Pruned):
        train_model(X, Y, Xv, Yv, "tcn", _small("tcn"), max_epochs=10, epoch_callback=cb, threads=1)
    assert [e for e, _ in seen] == [0, 1] and all(np.isfinite(v) for _, v in seen)


def test_early_stopping_restores_best_weights(data):
    from deformcast.algorithms.learn.training import _evaluate, train_model
    import torch

    X, Y, Xv, Yv = data
    # a learning rate far too high makes validation worse after the first epochs
    r = train_model(X, Y, Xv, Yv, "gru", {"lr": 0.2, "batch_size": 16, "grad_clip": 5.0}, max_epochs=40,
                    patience=2, seed=0, threads=1)
    val = _evaluate(r.model, torch.from_numpy(Xv), torch.from_numpy(Yv), 4096)
    assert val == pytest.approx(r.best_val_loss, rel=1e-5)
    if r.stopped_early:
        assert r.epochs_run == r.best_epoch + 3


def test_bad_inputs_are_refused(data):
    from deformcast.algorithms.learn.training import resolve_device, train_model

    X, Y, Xv, Yv = data
    Xn = X.copy()
    Xn[0, 0, 0] = np.nan
    with pytest.raises(DeformCastError, match="NaN"):
        train_model(Xn, Y, Xv, Yv, "lstm", max_epochs=1)
    with pytest.raises(DeformCastError, match="no samples"):
        train_model(X[:0], Y[:0], Xv, Yv, "lstm", max_epochs=1)
    with pytest.raises(DeformCastError, match="Valid architectures"):
        train_model(X, Y, Xv, Yv, "rnn", max_epochs=1)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeformCastError, match="no CUDA GPU"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"


def test_predict_array_batches_agree(data):
    from deformcast.algorithms.learn.training import predict_array, train_model

    X, Y, Xv, Yv = data
    r = train_model(X, Y, Xv, Yv, "transformer", _small("transformer"), max_epochs=1, threads=1)
    a = predict_array(r.model, Xv, batch_size=7)
    b = predict_array(r.model, Xv, batch_size=4096)
    assert a.shape == (96, 3) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-5)

def test_inference_batch_is_large_on_cuda_within_the_cards_memory():
    """Issue 17: a GPU gets CUDA_PREDICT_BATCH windows per pass where its free memory allows; a CPU keeps the
    caller's batch; a small card falls back towards the caller's batch, never below it."""
    from deformcast.algorithms.learn.runtime import CUDA_PREDICT_BATCH, inference_batch

    gib = 1 << 30
    assert inference_batch(2048, "cpu", 60, 20, free_bytes=100 * gib) == 2048
    assert inference_batch(2048, "cuda", 60, 20, free_bytes=100 * gib) == CUDA_PREDICT_BATCH
    # window 60 x (1024 + 80) bytes = 66 240 bytes a window; a quarter of 1 GiB holds 4052 of them
    assert inference_batch(2048, "cuda", 60, 20, free_bytes=gib) == gib // 4 // (60 * (1024 + 4 * 20))
    assert inference_batch(2048, "cuda", 60, 20, free_bytes=64 << 20) == 2048      # 64 MiB free: the caller's
    assert inference_batch(32768, "cuda", 60, 20, free_bytes=100 * gib) == 32768   # a larger request is kept


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")
def test_cuda_inference_equals_cpu_inference(data):
    """On a CUDA machine: the large-batch GPU forecast equals the CPU one to float32 rounding."""
    from deformcast.algorithms.learn.training import predict_array, train_model

    X, Y, Xv, Yv = data
    r = train_model(X, Y, Xv, Yv, "lstm", _small("lstm"), max_epochs=1, threads=1, device="cpu")
    a = predict_array(r.model, Xv, device="cpu")
    b = predict_array(r.model, Xv, device="cuda")
    assert np.allclose(a, b, atol=1e-4)



# --- model files ---------------------------------------------------------------------------

def _grid(x0=500000.0, w=6, h=5, epsg=25832):
    from deformcast.algorithms.io.raster import make_grid

    return make_grid(x0, 5600000.0, 20.0, w, h, epsg)


def _meta(r, grid):
    from deformcast.algorithms.models.modelio import grid_to_dict

    return {"architecture": r.architecture, "hparams": r.hparams, "n_features": r.n_features,
            "window": r.window, "horizon": r.horizon, "encodings": ["temporal"], "grid": grid_to_dict(grid),
            "validation": {"val_loss": r.best_val_loss, "best_epoch": r.best_epoch}}


@pytest.mark.parametrize("name", ["cnn_lstm", "resnet_transformer"])
def test_saved_model_reloads_and_predicts_the_same(tmp_path, data, name):
    import torch

    from deformcast.algorithms.models.modelio import load_model, save_model
    from deformcast.algorithms.learn.training import predict_array, train_model

    X, Y, Xv, Yv = data
    r = train_model(X, Y, Xv, Yv, name, _small(name), max_epochs=1, threads=1)
    folder = save_model(tmp_path / "root" / "m01", r.model, _meta(r, _grid()))
    assert sorted(os.listdir(folder)) == ["model.json", "weights.pt"]
    assert os.listdir(tmp_path / "root") == ["m01"]  # no temporary folder left behind
    # the weights file is a plain tensor dict: loadable with weights_only=True
    state = torch.load(os.path.join(folder, "weights.pt"), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    with open(os.path.join(folder, "model.json")) as fh:
        meta = json.load(fh)
    assert meta["versions"]["torch"] == torch.__version__ and meta["architecture"] == name
    lm = load_model(folder)
    assert np.array_equal(lm.predict(Xv), predict_array(r.model, Xv))


def test_tampered_weights_are_refused(tmp_path, data):
    from deformcast.algorithms.models.modelio import load_model, save_model
    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    r = train_model(X, Y, Xv, Yv, "gru", _small("gru"), max_epochs=1, threads=1)
    folder = save_model(tmp_path / "m", r.model, _meta(r, _grid()))
    with open(os.path.join(folder, "weights.pt"), "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DeformCastError, match="checksum"):
        load_model(folder)


def test_incompatible_grid_and_encoding_refused():
    from deformcast.algorithms.models.modelio import check_compatible, grid_to_dict

    g = _grid()
    meta = {"architecture": "tcn", "n_features": 4, "window": 8, "horizon": 3, "encodings": ["temporal"],
            "grid": grid_to_dict(g), "feature_names": ["disp", "t", "doy_sin", "doy_cos"]}
    check_compatible(meta, grid=_grid(), encodings=["temporal"], n_features=4, window=8)
    with pytest.raises(DeformCastError, match="6 x 5 grid in EPSG:25832.*7 x 5 grid"):
        check_compatible(meta, grid=_grid(w=7))
    with pytest.raises(DeformCastError, match="EPSG:32632"):
        check_compatible(meta, grid=_grid(epsg=32632))
    with pytest.raises(DeformCastError, match="origin"):
        check_compatible(meta, grid=_grid(x0=500100.0))
    with pytest.raises(DeformCastError, match="encodings temporal but spatial"):
        check_compatible(meta, encodings=["spatial"])
    with pytest.raises(DeformCastError, match="4 input channels"):
        check_compatible(meta, n_features=5)
    with pytest.raises(DeformCastError, match="windows of 8"):
        check_compatible(meta, window=12)


def test_manifest_roundtrip_and_incomplete_folder(tmp_path, data):
    from deformcast.algorithms.models.modelio import member_paths, read_manifest, save_model, write_manifest
    from deformcast.algorithms.learn.training import train_model

    X, Y, Xv, Yv = data
    root = tmp_path / "models"
    for i, s in enumerate((1, 2)):
        r = train_model(X, Y, Xv, Yv, "lstm", _small("lstm"), seed=s, max_epochs=1, threads=1)
        save_model(root / f"m{i + 1:02d}", r.model, _meta(r, _grid()))
    with pytest.raises(DeformCastError, match="manifest.json is missing"):
        read_manifest(root)
    write_manifest(root, ["m02", {"folder": "m01", "note": "second"}])
    man = read_manifest(root)
    assert [m["folder"] for m in man["members"]] == ["m02", "m01"]
    assert [m["rank"] for m in man["members"]] == [1, 2] and man["members"][1]["note"] == "second"
    assert man["horizon"] == 3 and man["window"] == 8
    assert member_paths(root) == [str(root / "m02"), str(root / "m01")]
    # a single model folder reads as a one-member manifest
    assert read_manifest(root / "m01")["members"][0]["path"] == str(root / "m01")
    with pytest.raises(DeformCastError, match="holds no model"):
        write_manifest(root, ["nothing_here"])


# --- the train job on a tiny synthetic scene ----------------------------------------------------

@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from deformcast.algorithms.data.synthetic import write_scene

    return write_scene(str(tmp_path_factory.mktemp("scene")), seed=3, width=16, height=16, n_epochs=48, n_future=4)


_TINY = '{"d_model": 16, "layers": 1, "res_blocks": 1, "batch_size": 128}'


def test_training_job_writes_a_complete_model_folder(tmp_path, scene):
    from deformcast.algorithms.data.baselines import BASELINES
    from deformcast.algorithms.data.dataset import forecast_inputs, to_mm
    from deformcast.algorithms.models.modelio import check_compatible, load_model, read_manifest
    from deformcast.algorithms.io.raster import open_stack, read_raster, read_stack
    from deformcast.algorithms.learn.train_job import run_training_job

    out = run_training_job(scene["stack"], str(tmp_path / "model"), "resnet_transformer", horizon=3, window=6,
                           encodings=["temporal", "neighbourhood"], hparams=_TINY, max_epochs=2, seed=5,
                           forecast_path=str(tmp_path / "fc.tif"), residuals_path=str(tmp_path / "res.tif"),
                           report_path=str(tmp_path / "report.html"), truth_path=scene["truth"],
                           zones_path=scene["zones"], threads=1, block_rows=5)
    man = read_manifest(out.folder)
    assert (out.report_path, out.forecast_path, out.residuals_path) == (
        str(tmp_path / "report.html"), str(tmp_path / "fc.tif"), str(tmp_path / "res.tif"))
    assert [m["folder"] for m in man["members"]] == ["m01_resnet_transformer"]
    for f in ("metrics.csv", "metrics.json", "history.csv"):
        assert (tmp_path / "model" / f).is_file()
    # every method scored on the same pixel-epochs, against observations and truth
    for ref in ("observed", "truth"):
        ns = {m: v["overall"]["n"] for m, v in out.metrics[ref].items()}
        assert set(ns) == {"resnet_transformer", *BASELINES} and len(set(ns.values())) == 1, ns
        assert all(np.isfinite(v["overall"]["rmse"]) for v in out.metrics[ref].values())
        assert len(out.metrics[ref]["persistence"]["per_step"]) == 3
    zones = out.metrics["observed"]["linear"]["per_zone"]
    assert zones and set(zones) <= {"Mining subsidence bowl", "Fault zone", "Groundwater-rebound uplift"}, zones
    # rasters: one band per test date, ISO descriptions, styled, residual = forecast - observed
    info = open_stack(scene["stack"])
    fc, grid, names = read_raster(str(tmp_path / "fc.tif"))
    rs, _, names_r = read_raster(str(tmp_path / "res.tif"))
    T = info.dates.size
    n_test = len(out.test_dates)
    assert fc.shape == (n_test, 16, 16) and names == names_r == [str(d) for d in info.dates[T - n_test:]]
    obs = read_stack(info)[T - n_test:]
    assert np.allclose(rs, fc - obs, atol=1e-4, equal_nan=True)
    assert np.isfinite(fc).mean() > 0.5
    for p in ("fc.qml", "res.qml"):
        assert "singlebandpseudocolor" in (tmp_path / p).read_text()
    assert "#f7f7f7" in (tmp_path / "res.qml").read_text()  # diverging ramp centred on 0
    html = (tmp_path / "report.html").read_text()
    for b in BASELINES:
        assert b in html
    assert "data:image/png;base64," in html and "noise-free truth" in html
    # the saved model reproduces the first forecast band from the stack alone
    lm = load_model(out.model_path)
    check_compatible(lm.meta, grid=info.grid, encodings=["temporal", "neighbourhood"])
    from deformcast.algorithms.data.date_weights import bound

    cfg, norm = lm.meta["data_config"], lm.meta["normalisation"]
    assert cfg["date_weights"] is True
    cfg = bound(cfg, info)          # the stack's date weights in its classical fits, as predict gives them
    e = cfg["test_start"] - 1
    X, valid, anchor = forecast_inputs(read_stack(info), info.dates, info.grid, 0, cfg, norm, end_index=e)
    mm = to_mm(lm.predict(X), anchor, norm)
    assert np.allclose(fc[0][valid], mm[:, 0], atol=1e-4)


def test_training_job_refuses_bad_hparams(tmp_path, scene):
    from deformcast.algorithms.learn.train_job import run_training_job

    with pytest.raises(DeformCastError, match="not valid JSON"):
        run_training_job(scene["stack"], str(tmp_path / "m"), "gru", hparams="{lr: 0.1", horizon=2, window=4)
    with pytest.raises(DeformCastError, match="Unknown hyperparameter 'learning_rate'.*lr"):
        run_training_job(scene["stack"], str(tmp_path / "m"), "gru", hparams='{"learning_rate": 0.1}')
    with pytest.raises(DeformCastError, match="JSON object"):
        run_training_job(scene["stack"], str(tmp_path / "m"), "gru", hparams="[1, 2]")
    assert not (tmp_path / "m").exists()


def test_cancelled_job_leaves_no_complete_looking_model(tmp_path, scene):
    from deformcast.algorithms.learn.train_job import run_training_job

    folder = tmp_path / "model"
    state = {"batches": 0}

    def on_progress(p):
        if p > 10.0:  # in training (after data preparation)
            state["batches"] += 1

    prog = Progress(on_progress, lambda: state["batches"] >= 3)
    with pytest.raises(Cancelled):
        run_training_job(scene["stack"], str(folder), "tcn", horizon=2, window=4, max_epochs=20,
                         forecast_path=str(tmp_path / "fc.tif"), report_path=str(tmp_path / "r.html"),
                         threads=1, progress=prog)
    assert state["batches"] == 3
    left = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not any(n.endswith(("manifest.json", "model.json", "weights.pt", "fc.tif", "r.html")) for n in left), left


@pytest.fixture(scope="module")
def tiny_prepared(scene):
    from deformcast.algorithms.data.dataset import prepare
    from deformcast.algorithms.io.raster import open_stack

    return prepare(open_stack(scene["stack"]), None, None, 6, 3, ["temporal"], max_samples=2000, seed=0)


@pytest.mark.parametrize("name", SIX)
def test_each_architecture_learns_on_a_tiny_stack(name, tiny_prepared):
    """A few epochs on windows of a real (tiny, synthetic) GeoTIFF stack: the losses fall."""
    from deformcast.algorithms.learn.training import evaluate_samples, train_model

    p = tiny_prepared
    r = train_model(p.train.X, p.train.Y, p.val.X, p.val.Y, name, dict(_small(name), batch_size=64), seed=0,
                    max_epochs=4, patience=10, threads=1)
    tl = [h["train_loss"] for h in r.history]
    assert tl[-1] < 0.9 * tl[0], r.history
    assert r.best_val_loss < r.history[0]["val_loss"], r.history
    rmse = evaluate_samples(r.model, p.val, p.norm)["overall"]["rmse"]
    assert np.isfinite(rmse) and rmse > 0


class _Echo:
    """A real torch module whose output is its input's channel 0 at the first ``horizon`` steps."""

    def __new__(cls, horizon):
        import torch

        class Echo(torch.nn.Module):
            def forward(self, x):
                return x[:, :horizon, 0]

        return Echo().eval()


def _residual_samples(n=400, horizon=3, seed=0):
    from deformcast.algorithms.data.dataset import Samples

    rng = np.random.default_rng(seed)
    anchor = rng.normal(0, 5, (n, horizon)).astype(np.float32)
    corr = rng.normal(0, 2, (n, horizon)).astype(np.float32)  # the network's correction, mm
    X = np.zeros((n, 4, 1), np.float32)
    X[:, :horizon, 0] = corr / 2.0  # target_scale 2 below
    z = np.zeros(n, np.int64)
    return Samples(X, np.zeros((n, horizon), np.float32), anchor, anchor.copy(), z, z, z.astype(bool)), corr


@pytest.mark.parametrize("factor, expected", [(1.0, 1.0), (0.5, 0.5), (-1.0, 0.0), (0.0, 0.0)])
def test_correction_weight_least_squares_on_validation(factor, expected):
    """truth = anchor + factor * correction -> w = factor, clipped to [0, 1]; a useless or harmful
    correction is switched off; to_mm applies the weight."""
    from deformcast.algorithms.data.dataset import to_mm
    from deformcast.algorithms.learn.training import correction_weight, weighted_norm

    s, corr = _residual_samples()
    s.truth[:] = s.anchor + factor * corr
    norm = {"target_scale": [2.0, 2.0, 2.0]}
    cfg = {"target": "residual"}
    w = correction_weight(_Echo(3), s, norm, cfg)
    assert w == pytest.approx([expected] * 3, abs=1e-5)
    wn = weighted_norm(_Echo(3), s, norm, cfg)
    assert "correction_weight" not in norm  # the input dict is not changed
    y = s.X[:, :3, 0]
    assert to_mm(y, s.anchor, wn) == pytest.approx(s.anchor + expected * corr, abs=1e-4)
    # fitted again on a norm that already carries a weight: the same weight (not compounded)
    assert correction_weight(_Echo(3), s, wn, cfg) == pytest.approx(w, abs=1e-6)


def test_correction_weight_per_step_and_not_for_increment():
    from deformcast.algorithms.learn.training import correction_weight, weighted_norm

    s, corr = _residual_samples(seed=1)
    s.truth[:] = s.anchor + corr * np.array([1.0, 0.3, 0.0], np.float32)
    norm = {"target_scale": [2.0, 2.0, 2.0]}
    w = correction_weight(_Echo(3), s, norm, {"target": "residual"})
    assert w == pytest.approx([1.0, 0.3, 0.0], abs=1e-5)
    assert correction_weight(_Echo(3), s, norm, {"target": "increment"}) is None
    assert weighted_norm(_Echo(3), s, norm, {"target": "increment"}) == norm


def test_targets_of_zero_weight_do_not_train_and_weights_are_checked(data):
    """A target whose weight is 0 neither moves training nor the validation loss; weights shaped unlike the
    targets are refused (date weights in the loss, date_weights.sample_weights)."""
    import torch

    from deformcast.algorithms.learn.training import _evaluate, train_model

    X, Y, Xv, Yv = data
    W, Wv = np.ones_like(Y), np.ones_like(Yv)
    W[::3, 1] = 0.0
    Wv[::2, 2] = 0.0
    Yg, Yvg = Y.copy(), Yv.copy()
    Yg[W == 0] = 1e3       # garbage where the weight is 0
    Yvg[Wv == 0] = -1e3
    runs = [train_model(X, y, Xv, yv, "gru", _small("gru"), seed=5, max_epochs=2, threads=1, train_W=W, val_W=Wv)
            for y, yv in ((Y, Yv), (Yg, Yvg))]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in runs[0].history] == [h["val_loss"] for h in runs[1].history]
    # without the weights the garbage dominates: the weights were really used
    plain = train_model(X, Yg, Xv, Yvg, "gru", _small("gru"), seed=5, max_epochs=2, threads=1)
    assert plain.history[-1]["val_loss"] > 100 * runs[0].history[-1]["val_loss"]
    # the weighted validation loss is the weighted mean of the squared errors
    m = runs[0].model
    with torch.inference_mode():
        p = m(torch.from_numpy(Xv)).numpy()
    expect = float(np.sum(Wv * (p - Yv) ** 2) / np.sum(Wv))
    got = _evaluate(m, torch.from_numpy(Xv), torch.from_numpy(Yv), 17, torch.from_numpy(Wv))
    assert got == pytest.approx(expect, rel=1e-5)
    with pytest.raises(DeformCastError, match="shape of the targets"):
        train_model(X, Y, Xv, Yv, "gru", _small("gru"), max_epochs=1, threads=1, train_W=W[:, :2])
