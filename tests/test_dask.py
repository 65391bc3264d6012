"""predict and uncertainty on a Dask cluster (issue 17): a LocalCluster of two worker processes gives the
same output files as one process; clear errors for a missing dask, a bad or unreachable scheduler, a
failing worker; Cancel stops the pending blocks."""
from __future__ import annotations

import operator
import os
import sys
import time

import numpy as np
import pytest

from deformcast.algorithms.maps import calibration, distributed, ensemble, skill_gate
from deformcast.algorithms.models import modelio
from deformcast.algorithms.io import raster
from deformcast.algorithms.maps import uncertainty as U
from deformcast.algorithms.errors import Cancelled, DeformCastError
from deformcast.algorithms.progress import Progress
from test_calibration import train_tiny_members

dd = pytest.importorskip("distributed", reason="dask[distributed] is not installed (requirements.txt pins it)")

W_, H_, T_ = 24, 30, 60


@pytest.fixture(scope="module")
def cluster():
    with dd.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                         silence_logs=40) as c:
        yield c


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A stack with nodata, three tiny GRU members and the skill gate of their folder."""
    tmp = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(3)
    g = raster.make_grid(300000.0, 5650000.0, 50.0, W_, H_)
    dates = np.datetime64("2020-01-01") + np.arange(T_) * np.timedelta64(12, "D")
    t = np.arange(T_, dtype=np.float32)[:, None, None]
    vals = (rng.uniform(-0.8, 0.2, (1, H_, W_)) * t + 2.0 * np.sin(2 * np.pi * t * 12 / 365.25)
            + rng.normal(0, 0.5, (T_, H_, W_))).astype(np.float32)
    vals[-3:, 0, 0] = np.nan
    vals[:, 5, 7] = np.nan
    stack = str(tmp / "stack.tif")
    raster.write_stack(stack, vals, dates, g)
    root = str(tmp / "models")
    train_tiny_members(vals, dates, g, root)
    skill_gate.run_gate(stack, root, device="cpu")
    assert modelio.read_manifest(root).get("gate")
    # a dense stack: the workers must score the local track record on the gate's 4 x 4 lattice, as this process does
    assert modelio.read_manifest(root)["gate"]["record_stride"] == skill_gate.DENSE_RECORD_STRIDE
    return tmp, stack, root


def _bands(path):
    return raster.read_raster(path)[0]


def _same(a, b):
    assert a.shape == b.shape
    for i in range(a.shape[0]):
        assert np.array_equal(a[i], b[i], equal_nan=True), f"band {i + 1} differs"


def test_predict_and_uncertainty_on_two_workers_equal_one_process(scene, cluster):
    tmp, stack, root = scene
    outs = {}
    for name, sched in (("local", None), ("dask", cluster.scheduler_address)):
        d = tmp / name
        logs = []
        res = ensemble.predict_ensemble(stack, root, str(d / "median.tif"), str(d / "q.tif"), str(d / "members.tif"),
                                        block_rows=4, device="cpu", scheduler=sched,
                                        progress=Progress(on_log=logs.append))
        assert res["calibration"]["calibrated"] and res["gate"]
        if sched:
            assert any("2 worker(s)" in s for s in logs)
        unc = {f"{k}_path": str(d / f"{k}.tif") for k in ("susceptibility", "spread", "ambiguity", "confidence",
                                                           "exceedance", "class_probabilities", "deformation")}
        # both uncertainty runs read the same members raster: only the engine differs
        r = U.run_uncertainty(str(tmp / "local" / "members.tif"), stack, thresholds="1,3", n_classes=4,
                              extreme_quantiles="90", block_rows=7, scheduler=sched, **unc)
        outs[name] = {**{k: _bands(str(d / f"{k}.tif")) for k in ("median", "q", "members")},
                      **{k: _bands(p) for k, p in unc.items()}, "limits": r.limits, "n_valid": r.n_valid}
    loc, dsk = outs["local"], outs["dask"]
    assert np.isnan(loc["median"][:, 0, 0]).all() and np.isfinite(loc["median"][:, 3, 3]).all()
    for k, v in loc.items():
        if isinstance(v, np.ndarray) and v.ndim == 3:
            _same(v, dsk[k])
    np.testing.assert_array_equal(loc["limits"], dsk["limits"])
    assert loc["n_valid"] == dsk["n_valid"] > 0


def test_worker_error_and_cancel(cluster):
    client = distributed.connect(cluster.scheduler_address)
    try:
        with pytest.raises(DeformCastError, match="Dask worker failed on block 2.*ZeroDivisionError"):
            distributed.run_blocks(client, operator.truediv, [(1, 1), (1, 0), (2, 1)], lambda i, r: None)
        got = []
        calls = {"n": 0}

        def cancelled():
            calls["n"] += 1
            return bool(got)
        t0 = time.perf_counter()
        with pytest.raises(Cancelled):
            distributed.run_blocks(client, time.sleep, [(0.05,)] + [(2.0,)] * 8, lambda i, r: got.append(i),
                                   Progress(is_cancelled=cancelled))
        assert got == [0] and time.perf_counter() - t0 < 4.0      # the 2-s blocks were not waited for
        time.sleep(0.3)
        assert not [key for keys in client.processing().values() for key in keys if "deformcast" in str(key)]
    finally:
        client.close()


def test_bad_unreachable_and_missing_dask(monkeypatch):
    with pytest.raises(DeformCastError, match="tcp://host:port"):
        distributed.connect("localhost:8786")
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(DeformCastError, match="Cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        distributed.connect("tcp://127.0.0.1:9")
    assert distributed.connect("") is None and distributed.connect(None) is None
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DeformCastError, match=r"pip install -c constraints.txt 'dask\[distributed\]=="):
        distributed.connect("tcp://127.0.0.1:9")


def test_predict_in_local_processes_equals_one_process(scene, monkeypatch):
    """Session 24: a large raster's row blocks run in spawned local processes (one thread each), with the
    Dask workers' code; since session 26 the calibration's validation origins too; the output files are those of one
    process, bit for bit."""
    tmp, stack, root = scene
    outs, priors = {}, {}
    # session 29: the last round of blocks is shared evenly by the processes the machine has (two here), in one
    # process too, so both runs forecast the same blocks: 30 rows in blocks of 4 end in 3 + 3 rows, not 4 + 2
    monkeypatch.setattr(distributed, "LOCAL_MIN_PIXELS", 0)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    written = {}
    write = raster.RasterWriter.write

    def spy(self, a, row0=0):
        if self.path.endswith("median.tif"):
            written.setdefault(self.path, []).append((row0, row0 + a.shape[1]))
        return write(self, a, row0)

    monkeypatch.setattr(raster.RasterWriter, "write", spy)
    for name, n in (("one", "1"), ("pool", "2")):
        monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", n)
        calibration._CACHE.clear()        # each run collects its own validation forecasts
        d = tmp / f"procs_{name}"
        logs = []
        res = ensemble.predict_ensemble(stack, root, str(d / "median.tif"), str(d / "q.tif"), str(d / "members.tif"),
                                        block_rows=4, device="cpu", progress=Progress(on_log=logs.append))
        assert written.pop(str(d / "median.tif")) == [(r, r + 4) for r in range(0, 24, 4)] + [(24, 27), (27, 30)]
        assert res["local_workers"] == (2 if n == "2" else 0)
        assert any("2 local processes" in s for s in logs) == (n == "2")
        # the calibration's validation origins ran there too (session 26), and the outputs are still one process's
        assert any(s.startswith("Calibration: ") and "in 2 local processes" in s for s in logs) == (n == "2")
        assert res["calibration"]["calibrated"]
        # the scene's blend prior: computed while the processes load the members, the same value as in one process
        assert res["gate"]["local_blend"] and "blend_prior" in res["timings_s"]
        # and the local record's measure (session 41: the squared mean error; session 40's choice of the noise taken
        # out of the mean squared error is off), which every block takes
        assert any(s.startswith("Local classical forecast: each candidate's track record is its squared mean error")
                   for s in logs)
        priors[name] = (res["gate"]["blend_prior"], res["gate"]["record_noise"])
        outs[name] = {k: _bands(str(d / f"{k}.tif")) for k in ("median", "q", "members")}
    for k in ("median", "q", "members"):
        _same(outs["one"][k], outs["pool"][k])
    assert np.isfinite(outs["pool"]["median"]).any()
    assert priors["one"] == priors["pool"]



def test_the_local_processes_start_from_the_files_size_before_torch_is_needed(scene, monkeypatch, tmp_path):
    """Session 28: ``predict`` starts its local processes from the stack's size and a device known without importing
    torch, before it opens and checks the stack; nothing starts where either is unknown, and a device that torch
    must be asked about is asked (without torch imported: answered from the GPU driver files alone)."""
    import subprocess

    from deformcast.algorithms.io import raster
    from deformcast.algorithms.learn import runtime

    _, stack, _ = scene
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "2")
    assert raster.grid_shape(stack) == raster.open_stack(stack).grid.shape
    assert raster.grid_shape(str(tmp_path / "none.tif")) is None
    (tmp_path / "junk.tif").write_text("not a raster")
    assert raster.grid_shape(str(tmp_path / "junk.tif")) is None
    pool = ensemble._early_pool(stack, "cpu", 4, None, None)
    try:
        assert pool is not None and pool.n == 2 and len(pool.ready()) == 2
    finally:
        pool.close()
    assert ensemble._early_pool(stack, None, 4, None, None) is None           # device not known yet
    assert ensemble._early_pool(str(tmp_path / "junk.tif"), "cpu", 4, None, None) is None
    assert ensemble._early_pool(stack, "cpu", 10 ** 6, None, None) is None    # one block: no processes
    assert runtime.known_device("cpu") == "cpu" and runtime.known_device("cuda") is None
    assert runtime.known_device("auto") == runtime.resolve_device("auto")      # torch is imported here
    code = ("import sys; from deformcast.algorithms.learn.runtime import known_device; "
            "print(known_device('auto'), 'torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    driver = any(os.path.exists(f) for f in runtime.GPU_DRIVER_FILES) or not sys.platform.startswith("linux")
    assert out.stdout.split() == [("None" if driver else "cpu"), "False"], out.stderr[-2000:]


def test_predict_says_when_it_converts_a_slow_layout_and_forecasts_the_same(scene, monkeypatch, tmp_path):
    """Session 28: ``predict`` and ``uncertainty`` pass their progress to ``open_stack``, so the log says that a tiled
    pixel-interleaved file was converted once (or read from its copy) and Cancel reaches the conversion; the forecast
    from the converted copy is the original stack's, bit for bit."""
    from osgeo import gdal

    from deformcast.algorithms.errors import Cancelled
    from deformcast.algorithms.maps import uncertainty

    _, stack, root = scene
    monkeypatch.setenv("DEFORMCAST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DEFORMCAST_CONVERT", "always")
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "1")
    tiled = str(tmp_path / "tiled.tif")
    gdal.Translate(tiled, stack, creationOptions=["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE",
                                                  "INTERLEAVE=PIXEL"])
    stop = {"now": False}
    with pytest.raises(Cancelled):
        stop["now"] = True
        ensemble.predict_ensemble(tiled, root, str(tmp_path / "never.tif"), device="cpu", calibrate=False,
                                  progress=Progress(is_cancelled=lambda: stop["now"]))
    assert not [f for f in os.listdir(tmp_path / "cache") if f.endswith(".tif")]    # the partial copy went
    out = {}
    for name, path in (("tiled", tiled), ("plain", stack)):
        logs = []
        ensemble.predict_ensemble(path, root, str(tmp_path / name / "median.tif"), str(tmp_path / name / "q.tif"),
                                  str(tmp_path / name / "members.tif"), device="cpu", calibrate=False,
                                  progress=Progress(on_log=logs.append))
        out[name] = _bands(str(tmp_path / name / "median.tif"))
        if name == "tiled":
            assert any("converted once" in m and "tiled.tif" in m for m in logs), logs
            logs.clear()
            uncertainty.run_uncertainty(str(tmp_path / name / "members.tif"), tiled,
                                        spread_path=str(tmp_path / name / "spread.tif"),
                                        progress=Progress(on_log=logs.append))
            assert any("from its converted copy" in m for m in logs), logs
    _same(out["tiled"], out["plain"])

def test_local_processes_load_the_members_before_their_first_task(scene):
    """``predict`` has the local processes load the members as soon as they start (session 26): one preload task per
    process (the executor hands them to whichever process is free, so one may run both), and a later task in a process
    that ran one finds the members in its cache."""
    import os

    tmp, stack, root = scene
    info = raster.open_stack(stack)
    job = {"stack": distributed.stack_job(info), "model_folder": str(root), "members": None, "device": "cpu",
           "e": info.n_epochs - 1, "batch_size": 2048}
    pool = distributed.LocalPool(2)
    try:
        pool.preload(distributed.preload_members, job)
        pids = set(pool.ready())
        preloaded = {f.result(timeout=120) for f in pool._preload}
        assert len(pool._preload) == 2 and preloaded <= pids and os.getpid() not in preloaded
        got = [pool.submit(_members_cached, job).result(timeout=120) for _ in range(8)]
        assert all(cached for pid, cached in got if pid in preloaded), got
        assert any(pid in preloaded for pid, _ in got), got
    finally:
        pool.close()


def _members_cached(job):
    """In a worker: (its pid, whether the members a task asks for were already in its cache)."""
    import os

    before = dict(distributed._MEMBERS)
    distributed.worker_members(job["model_folder"], job["members"], job["device"], distributed.stack_info(job["stack"]),
                               job["e"])
    return os.getpid(), len(before) == 1 and dict(distributed._MEMBERS) == before


def test_the_last_round_of_blocks_is_shared_evenly():
    """Session 29 (``raster.balanced_row_blocks``): the blocks that the processes start together at the end share
    their rows evenly, so no process waits for the other; the rounds before keep their rows (and the outputs' tiles),
    no block is larger than asked, none is cut below ``MIN_BALANCED_ROWS``, and one process keeps the plain blocks."""
    B = raster.balanced_row_blocks
    plain = list(raster.row_blocks(1000, 64))
    two = B(1000, 64, 2)
    assert two[:14] == plain[:14] and two[14:] == [(896, 948), (948, 1000)]
    assert B(1000, 64, 4)[12:] == [(768, 826), (826, 884), (884, 942), (942, 1000)]
    assert B(1050, 64, 2)[-3:] == [(960, 1024), (1024, 1037), (1037, 1050)]     # a lone short block split in two
    assert B(1024, 64, 2) == list(raster.row_blocks(1024, 64))                    # even already
    assert B(1000, 64, 1) == plain and B(1000, 64, 0) == plain
    assert B(1036, 64, 2)[-1] == (1024, 1036)            # 12 rows: not cut into two blocks of 6
    for h, b, n in ((1000, 64, 2), (30, 4, 2), (997, 13, 3), (100, 64, 4), (5, 4, 3)):
        got = B(h, b, n)
        assert got[0][0] == 0 and got[-1][1] == h and all(a1 == b0 for (_, a1), (b0, _) in zip(got, got[1:]))
        assert all(0 < r1 - r0 <= b for r0, r1 in got)


def test_when_predict_uses_local_processes(monkeypatch):
    monkeypatch.delenv("DEFORMCAST_PREDICT_WORKERS", raising=False)
    monkeypatch.setattr(distributed, "usable_cores", lambda: 2)
    assert distributed.local_workers(1_000_000, 16, "cpu") == 2
    assert distributed.local_workers(10_000, 1, "cpu") == 0          # the demo: one block, no start-up cost
    assert distributed.local_workers(200_000, 8, "cpu") == 0         # under LOCAL_MIN_PIXELS
    assert distributed.local_workers(1_000_000, 16, "cuda") == 0     # one GPU, one process
    monkeypatch.setattr(distributed, "usable_cores", lambda: 16)
    assert distributed.local_workers(1_000_000, 16, "cpu") == distributed.LOCAL_MAX_WORKERS
    monkeypatch.setattr(distributed, "usable_cores", lambda: 1)
    assert distributed.local_workers(1_000_000, 16, "cpu") == 0
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "3")
    assert distributed.local_workers(10_000, 2, "cpu") == 3
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "two")
    with pytest.raises(DeformCastError, match="DEFORMCAST_PREDICT_WORKERS"):
        distributed.local_workers(10_000, 2, "cpu")


def test_local_processes_error_and_cancel():
    pool = distributed.LocalPool(2)
    try:
        started = set(pool.pool._processes)                              # both processes are started at once
        assert len(started) == 2 and set(pool.ready()) <= started and __import__("os").getpid() not in started
        with pytest.raises(DeformCastError, match="local worker process failed on block 2.*ZeroDivisionError"):
            distributed.run_blocks(pool, operator.truediv, [(1, 1), (1, 0), (2, 1)], lambda i, r: None)
        got = []
        t0 = time.perf_counter()
        with pytest.raises(Cancelled):
            distributed.run_blocks(pool, time.sleep, [(0.05,)] + [(3.0,)] * 8, lambda i, r: got.append(i),
                                   Progress(is_cancelled=lambda: bool(got)))
        assert got == [0] and time.perf_counter() - t0 < 2.5       # the 3-s blocks were not waited for
        procs = list(pool.pool._processes.values())
    finally:
        pool.close()
    time.sleep(0.5)
    assert procs and not any(p.is_alive() for p in procs)          # Cancel leaves no process behind


def test_a_dead_local_process_is_said_and_predict_goes_on(scene, monkeypatch):
    import os

    pool = distributed.LocalPool(2)
    try:
        with pytest.raises(distributed.PoolBroken, match="died on block [12]"):
            distributed.run_blocks(pool, os._exit, [(3,), (3,)], lambda i, r: None)
    finally:
        pool.close()
    # predict: a pool whose processes die on their first block -> the blocks are forecast in this process
    tmp, stack, root = scene
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "2")
    monkeypatch.setattr(ensemble, "_remote_block", _die)
    logs = []
    d = tmp / "procs_dead"
    res = ensemble.predict_ensemble(stack, root, str(d / "median.tif"), block_rows=4, device="cpu",
                                    progress=Progress(on_log=logs.append))
    assert any("in this process" in s and "died" in s for s in logs), logs
    monkeypatch.setenv("DEFORMCAST_PREDICT_WORKERS", "1")
    ref = ensemble.predict_ensemble(stack, root, str(tmp / "procs_ref" / "median.tif"), block_rows=4, device="cpu")
    _same(_bands(str(d / "median.tif")), _bands(str(tmp / "procs_ref" / "median.tif")))
    assert res["valid_pixels"] == ref["valid_pixels"] > 0


def test_a_script_without_main_guard_gets_the_fix_not_a_forecast_per_process(scene, tmp_path):
    """A script that calls predict at its top level (no ``if __name__ == "__main__":``) is imported again by each
    spawned local process: there predict stops with the fix (refuse_in_bootstrap) instead of forecasting the
    whole raster once more and writing the same files; the calling process forecasts its blocks itself."""
    import os
    import subprocess
    import sys

    _, stack, root = scene
    out = tmp_path / "median.tif"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from deformcast.algorithms.maps import ensemble\n"
        "from deformcast.algorithms.progress import Progress\n"
        f"ensemble.predict_ensemble({stack!r}, {root!r}, {str(out)!r}, block_rows=4, device='cpu',\n"
        "                          progress=Progress(on_log=lambda m: print('LOG', m, flush=True)))\n"
        "print('DONE', flush=True)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), DEFORMCAST_PREDICT_WORKERS="2")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("DONE") == 1                       # the forecast ran once, in the calling process
    assert 'if __name__ == "__main__":' in run.stderr          # the worker said why it stopped
    assert any(line.startswith("LOG") and "in this process" in line for line in run.stdout.splitlines())
    ref = ensemble.predict_ensemble(stack, root, str(tmp_path / "ref.tif"), block_rows=4, device="cpu")
    _same(_bands(str(out)), _bands(str(tmp_path / "ref.tif")))
    assert ref["valid_pixels"] > 0


def _die(*args):
    import os

    os._exit(3)
