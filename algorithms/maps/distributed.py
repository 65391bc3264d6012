"""Row blocks on a Dask distributed cluster (issue 17): ``predict`` and ``uncertainty`` with a
``SCHEDULER`` address run their per-block work on the cluster's workers.

The core is QGIS-free, so a worker is plain Python: it needs this package importable under the
same name as on the client (``deformcast``: the folder that holds the plugin folder on the workers'
``PYTHONPATH``; ``client.upload_file`` ships single modules or eggs, not a package with
subpackages, so it is not used), numpy < 2 with GDAL's Python bindings, torch, and the pinned
``requirements.txt``. The stack, the model folder and the members raster are read by the workers
from the same paths as on the client (a shared file system); the outputs are written by the client.

What travels: one task per row block with plain-Python arguments (paths, row ranges, the fitted
calibration model and the skill gate as dicts, small numpy slices of covariates). A worker loads the
members of a model folder once and keeps them (:func:`worker_members`, keyed by the folder and its
manifest's modification time). The client takes the blocks as they finish and hands them on in
block order (:func:`run_blocks`), so the outputs are the same files as those of one process; at
most ``window`` blocks are in flight, so neither the workers nor the client hold the whole raster.
Cancel cancels the futures still pending. See docs/README_calibration.md ("Dask cluster").
"""
from __future__ import annotations

import os
import re
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import DeformCastError
from ..learn.runtime import usable_cores

#: seconds to reach the scheduler (and to wait for a first worker) before giving up
CONNECT_TIMEOUT_S = float(os.environ.get("DEFORMCAST_DASK_TIMEOUT", "20"))
#: the pinned version (requirements.txt / constraints.txt), named in the install hint
DASK_PIN = "2024.8.2"
_ADDRESS = re.compile(r"^(tcp|tls|inproc)://[^\s/]+$")
#: this package's import name (``deformcast`` in QGIS and the tests); the workers need the same
PACKAGE = __name__.rsplit(".algorithms", 1)[0] if ".algorithms" in __name__ else ""


def _dask():
    try:
        import distributed
    except ImportError:
        raise DeformCastError(
            "SCHEDULER needs the optional package dask[distributed], which is not installed in this Python. "
            f"Install it with: pip install -c constraints.txt 'dask[distributed]=={DASK_PIN}' (the same version "
            "as on the workers), or leave SCHEDULER empty to run in this process.") from None
    return distributed


def connect(address: Optional[str], progress=None):
    """A ``distributed.Client`` on ``address`` (``tcp://host:port``), or None when it is empty.
    Refuses a malformed address, an unreachable scheduler (after :data:`CONNECT_TIMEOUT_S`), a
    cluster without workers and workers that cannot import this package, each saying what to do."""
    address = (address or "").strip()
    if not address:
        return None
    if not _ADDRESS.match(address):
        raise DeformCastError(f"SCHEDULER '{address}' is not a Dask scheduler address: give it as tcp://host:port "
                              "(e.g. tcp://10.0.0.5:8786), or leave it empty to run in this process.")
    distributed = _dask()
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise DeformCastError(
            f"Cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S:g} s ({type(e).__name__}). "
            "Check that it runs (`dask scheduler`), that the address and port are right and that no firewall "
            "blocks it; or leave SCHEDULER empty to run in this process.") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError):
            raise DeformCastError(f"The Dask scheduler at {address} has no worker (none joined within "
                                  f"{CONNECT_TIMEOUT_S:g} s). Start workers with `dask worker {address}`.") from None
        bad = {w: r for w, r in client.run(_probe, PACKAGE).items() if r}
        if bad:
            w, r = next(iter(bad.items()))
            raise DeformCastError(
                f"{len(bad)} Dask worker(s) cannot import DeformCast (e.g. {w}: {r}). Start the workers with the "
                f"folder that holds the plugin folder '{PACKAGE or 'algorithms'}' on PYTHONPATH and the pinned "
                "requirements installed (pip install -c constraints.txt -r requirements.txt).")
    except BaseException:
        client.close()
        raise
    if progress is not None:
        n = len(client.scheduler_info().get("workers", {}))
        progress.log(f"Dask: {n} worker(s) at {address}.")
    return client


def _probe(package: str) -> str:
    """Run on each worker: '' when this package imports there, else why not."""
    import importlib

    try:
        importlib.import_module((package + "." if package else "") + "algorithms.maps.distributed")
        import numpy
        from osgeo import gdal_array  # noqa: F401 - the GDAL/numpy contract

        if numpy.__version__ >= "2":
            return f"numpy {numpy.__version__} (DeformCast needs numpy < 2 for GDAL)"
    except Exception as e:  # noqa: BLE001 - reported to the user
        return f"{type(e).__name__}: {e}"
    return ""


def n_threads(client) -> int:
    return max(1, sum(int(w.get("nthreads", 1)) for w in client.scheduler_info().get("workers", {}).values()))


def run_blocks(client, fn: Callable, args: Sequence[tuple], on_result: Callable[[int, object], None],
               progress=None, window: int = 0, what: str = "block",
               meanwhile: Optional[Callable[[], None]] = None) -> None:
    """``on_result(i, fn(*args[i]))`` for every i in order. With a ``client`` the calls run on its
    workers, at most ``window`` at a time (default 2 per worker thread + 2), taken as they finish and
    handed on in order; without one they run here. ``progress.set`` after each block (which also
    checks Cancel: the pending futures are then cancelled). A worker's error becomes a
    DeformCastError naming the block (a DeformCastError raised there keeps its message). ``meanwhile``: work of
    this process run once the first calls are on their way to a :class:`LocalPool` (``predict``'s blend prior while
    the processes forecast the calibration's origins, session 27); with no pool it is not called."""
    n = len(args)
    if isinstance(client, LocalPool):
        return _run_local(client, fn, args, on_result, progress, window, what, meanwhile)
    if client is None:
        for i, a in enumerate(args):
            on_result(i, fn(*a))
            if progress is not None:
                progress.set((i + 1) / n)
        return
    distributed = _dask()
    window = int(window) or 2 * n_threads(client) + 2
    ac = distributed.as_completed(loop=client.loop)
    tag = uuid.uuid4().hex[:8]
    pending: Dict[object, int] = {}
    ready: Dict[int, object] = {}
    nxt = submitted = 0

    def submit():
        nonlocal submitted
        while submitted < n and len(pending) + len(ready) < window:
            f = client.submit(fn, *args[submitted], key=f"deformcast-{what}-{tag}-{submitted}", pure=False)
            pending[f] = submitted
            ac.add(f)
            submitted += 1

    try:
        submit()
        while nxt < n:
            if progress is not None:
                progress.check()
            finished = ac.next_batch(block=False) if ac.has_ready() else []
            if not finished:
                time.sleep(0.02)      # poll, so that Cancel is seen while the blocks run
            for f in finished:
                i = pending.pop(f)
                if f.status == "error":
                    raise _worker_error(f, what, i, args[i])
                ready[i] = f.result()
                f.release()
            while nxt in ready:
                on_result(nxt, ready.pop(nxt))
                nxt += 1
                if progress is not None:
                    progress.set(nxt / n)
            submit()
    except BaseException:             # Cancelled, a worker's error, Ctrl-C: stop what is still pending
        if pending:
            client.cancel(list(pending))
        raise


def _worker_error(f, what: str, i: int, args: tuple) -> DeformCastError:
    try:
        exc = f.exception()
    except Exception as e:  # noqa: BLE001 - the scheduler lost the task (e.g. a worker died)
        exc = e
    where = f"{what} {i + 1}" + (f" (rows {args[1]}-{args[2]})" if len(args) >= 3 else "")
    if isinstance(exc, DeformCastError):
        return DeformCastError(f"On a Dask worker, {where}: {exc}")
    return DeformCastError(
        f"A Dask worker failed on {where}: {type(exc).__name__}: {exc}. Check the worker's log; every worker must "
        "see the input files at the same paths as this machine (a shared file system) and have the pinned "
        "requirements installed.")


# --------------------------------------------------------------------------------------------------
# worker side

_MEMBERS: Dict[tuple, object] = {}
_MALLOC = {"done": False, "ok": False}


def tune_malloc() -> bool:
    """glibc's malloc in this worker process as in the caller (:func:`runtime.reuse_heap`), once per process. It
    also undoes the ``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nanny sets for its workers, which switches off
    glibc's dynamic mmap threshold, so every large allocation of the networks was a fresh mmap with page faults
    (measured: the forecast 2.5x slower); with ``DEFORMCAST_MALLOC=default`` only that is undone (glibc's largest
    dynamic mmap threshold, 32 MB, and a 64 MB trim threshold, as before session 26). False where not glibc."""
    if _MALLOC["done"]:
        return _MALLOC["ok"]
    from ..learn.runtime import dynamic_heap, reuse_heap

    ok = reuse_heap() or dynamic_heap()
    _MALLOC["done"], _MALLOC["ok"] = True, ok
    return ok


def worker_members(model_folder: str, members, device: str, info=None, end=None):
    """``(loaded, plan, device)`` of a model folder, loaded once per worker process and kept while the
    folder's manifest is unchanged (key: folder, manifest mtime, members, device, stack); ``info`` the
    stack to forecast (its date weights, :func:`date_weights.bind`)."""
    from .member_forecasts import Plan, load_members
    from ..learn.runtime import resolve_device

    tune_malloc()
    man = os.path.join(model_folder, "manifest.json")
    if not os.path.exists(man):
        raise DeformCastError(f"This worker cannot see the model folder '{model_folder}': every worker must read it "
                              "at the same path as the client (a shared file system).")
    key = (os.path.abspath(model_folder), os.path.getmtime(man), repr(members), device,
           None if info is None else os.path.abspath(str(info.path)), end)
    got = _MEMBERS.get(key)
    if got is None:
        dev = resolve_device(device)
        loaded = load_members(model_folder, members, device=dev, info=info, end=end)
        configs = [m.meta.get("data_config") or {} for m in loaded]
        _MEMBERS.clear()                      # one model folder at a time per worker
        got = _MEMBERS[key] = (loaded, Plan(loaded, configs), dev)
    return got


def stack_job(info) -> dict:
    """A :class:`raster.StackInfo` as plain Python (rebuilt on the worker by :func:`stack_info`)."""
    import numpy as np

    from ..data import date_weights
    from ..io.raster import iso

    g = info.grid
    # the date weights this process estimated on the stack: a worker does not read the whole stack again for them
    return {"date_weights": date_weights.known_for(info),
            "path": info.path, "read_path": info.source, "dates": [iso(d) for d in info.dates],
            "nodata": info.nodata, "grid": [list(g.geotransform), g.crs_wkt, int(g.width), int(g.height)],
            "fill": None if info.fill is None else np.packbits(info.fill, axis=None).tobytes(),
            "fill_values": list(info.fill_values)}


def stack_info(job: dict):
    import numpy as np

    from ..io.raster import Grid, StackInfo

    if not os.path.exists(job["read_path"]):
        raise DeformCastError(f"This worker cannot see the stack '{job['read_path']}': every worker must read it at "
                              "the same path as the client (a shared file system; for a converted copy, "
                              "DEFORMCAST_CACHE_DIR on it).")
    from ..data import date_weights

    date_weights.remember(job.get("date_weights"))
    gt, crs, w, h = job["grid"]
    fill = job.get("fill")
    if fill is not None:   # the pixels the client reads as no data (io/fill.py), read so here too
        fill = np.unpackbits(np.frombuffer(fill, np.uint8), count=w * h).astype(bool).reshape(h, w)
    return StackInfo(job["path"], Grid(tuple(gt), crs, w, h), np.array(job["dates"], dtype="datetime64[D]"),
                     job["nodata"], job["read_path"], fill=fill,
                     fill_values=tuple(job.get("fill_values") or ()))


def blocks_of(height: int, block_rows: int) -> List[tuple]:
    return [(r0, min(height, r0 + block_rows)) for r0 in range(0, height, max(1, int(block_rows)))]


# --------------------------------------------------------------------------------------------------
# local processes (session 24): the workers' code without a cluster

#: ``predict`` runs its row blocks in local worker processes on its own where the raster has at least this
#: many pixels to forecast and the machine more than one core (``DEFORMCAST_PREDICT_WORKERS``: 1 = never, N = N
#: processes whenever there are two blocks or more)
LOCAL_MIN_PIXELS = 250_000
#: at most this many local worker processes (one thread each)
LOCAL_MAX_WORKERS = 4
#: seconds the local processes may take to start and import the package before ``predict`` runs in its own
LOCAL_START_S = 120.0
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DEFORMCAST_THREADS": "1"}
#: GDAL's block cache of a local process (MB), unless the caller's environment sets ``GDAL_CACHEMAX``: a process reads
#: each row block once (``layout.ensure_cache`` raises it to one row of a tiled file's blocks where that is needed),
#: while GDAL's default, 5 % of the machine's memory (1.2 GB on 24 GB), lets each process keep blocks it never reads
#: again (session 25; docs/benchmarks.md)
LOCAL_GDAL_CACHE_MB = 64


def local_workers(pixels: int, blocks: int, device: str = "cpu") -> int:
    """How many local processes ``predict`` uses for ``blocks`` row blocks of ``pixels`` pixels (0: none)."""
    env = os.environ.get("DEFORMCAST_PREDICT_WORKERS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise DeformCastError(f"DEFORMCAST_PREDICT_WORKERS '{env}' is not a whole number: give 1 to forecast in "
                                  "this process, or the number of local worker processes.") from None
        return n if n >= 2 and blocks >= 2 else 0
    return machine_workers(pixels, blocks, device)


def machine_workers(pixels: int, blocks: int, device: str = "cpu") -> int:
    """:func:`local_workers` without ``DEFORMCAST_PREDICT_WORKERS``: what this machine's cores call for. ``predict``
    cuts its last row blocks for this many processes (:func:`raster.balanced_row_blocks`) whichever runs them (one
    process, local processes, a Dask cluster), so the blocks, and the forecast to the last bit, do not depend on
    the executor."""
    if str(device).startswith("cuda") or pixels < LOCAL_MIN_PIXELS or blocks < 4:
        return 0
    n = min(usable_cores(), LOCAL_MAX_WORKERS, blocks)
    return n if n >= 2 else 0


def _ready(probe) -> int:
    """A worker's warm-up task: it imports what a block needs and unpickles dates, as a block's job does (an
    interpreter whose standard library does not match the caller's fails here, not on a block)."""
    from . import member_forecasts  # noqa: F401 - what a block imports (numpy, GDAL and the model I/O)
    from ..learn.runtime import resolve_device

    resolve_device("cpu")                  # and torch

    if str(probe[0]) != "2020-01-01":
        raise RuntimeError(f"this worker reads dates wrongly ({probe[0]!r})")
    return os.getpid()


def preload_members(job: dict) -> int:
    """A worker's second warm-up task (``predict``): the members loaded and the stack's date weights bound before the
    first calibration span or block needs them (about 5 s a process on the demo's ten members, which the first task
    paid; now the calling process does its own work meanwhile)."""
    worker_members(job["model_folder"], job["members"], job["device"], stack_info(job["stack"]), job["e"])
    return os.getpid()


class PoolBroken(DeformCastError):
    """A local worker process died (killed, out of memory, a broken interpreter): the caller goes on in its own
    process."""


def spawn_python() -> str:
    """The interpreter for spawned workers (a spawned worker inherits the caller's ``sys.path``, so it must be
    the Python whose standard library this one runs on): :func:`deps.python_interpreter`."""
    from .. import deps

    return deps.python_interpreter()


class LocalPool:
    """``n`` spawned Python processes with one thread each that run row blocks as Dask workers do
    (:func:`run_blocks` takes it in place of a client). Fresh interpreters, never a fork of the caller (QGIS),
    started with the interpreter this Python runs on (:func:`spawn_python`)."""

    def __init__(self, n: int):
        import concurrent.futures as cf
        import multiprocessing as mp

        import numpy as np

        self.n = int(n)
        ctx = mp.get_context("spawn")
        ctx.set_executable(spawn_python())
        env = dict(_ONE_THREAD)
        if not os.environ.get("GDAL_CACHEMAX"):
            env["GDAL_CACHEMAX"] = str(LOCAL_GDAL_CACHE_MB)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)                  # inherited by the processes, which start now
        try:
            self.pool = cf.ProcessPoolExecutor(max_workers=self.n, mp_context=ctx)
            probe = np.array(["2020-01-01"], dtype="datetime64[D]")
            self._warm = [self.pool.submit(_ready, probe) for _ in range(2 * self.n)]
        except BaseException:
            self.close()
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.pids: List[int] = []
        self.announced = False      # ready and said so (ready_local)

    def ready(self, timeout: float = LOCAL_START_S) -> List[int]:
        """Wait until the processes have started and imported the package (they start in the background while
        the caller fits its calibration); their pids. Raises where they cannot."""
        if not self.pids:
            self.pids = sorted({f.result(timeout=timeout) for f in self._warm})
        return self.pids

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def preload(self, fn, *args) -> None:
        """``fn(*args)`` once per process after the warm-up, e.g. :func:`preload_members` (an error there is raised
        again by the first real task). A pool whose processes died already takes nothing: :meth:`ready` says why."""
        import concurrent.futures as cf

        try:
            self._preload = [self.pool.submit(fn, *args) for _ in range(self.n)]
        except cf.process.BrokenProcessPool:
            self._preload = []

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:                          # a block still running is not waited for (Cancel, an error)
            if p.is_alive():
                p.terminate()
        self.pool = None


def refuse_in_bootstrap() -> None:
    """Refuse to forecast inside a spawned process that is still importing the caller's script.

    A local process (:class:`LocalPool`) starts by importing the calling script as ``__mp_main__``, Python's
    ``spawn`` rule; a script that calls ``predict`` at its top level, without ``if __name__ == "__main__":``,
    would then run the whole forecast again in every worker and write the same files (measured: three processes
    of 2.6 GB each, then a failed rename of an output that another process had already moved). Python itself refuses only the nested pool, which
    ``predict`` would survive by forecasting in the worker. Here the worker stops with the fix instead; the
    caller's pool then counts it as dead and forecasts its blocks in the calling process."""
    import multiprocessing as mp

    if getattr(mp.current_process(), "_inheriting", False):   # set by multiprocessing while a child bootstraps
        raise DeformCastError(
            "predict was called while a DeformCast worker process was importing your script: put the script's "
            "work under  if __name__ == \"__main__\":  (Python's rule for programs that start processes), or set "
            "DEFORMCAST_PREDICT_WORKERS=1 to keep predict in one process.")


def start_local(n: int, progress=None) -> Optional[LocalPool]:
    """A :class:`LocalPool` of ``n`` processes starting in the background, or None (logged) where it cannot;
    :func:`ready_local` before its first block."""
    try:
        return LocalPool(n)
    except Exception as e:  # noqa: BLE001 - the forecast then runs in this process
        _not_local(e, progress)
        return None


def ready_local(pool: Optional[LocalPool], progress=None) -> Optional[LocalPool]:
    """``pool`` once its processes are up, or None (closed, logged) where they did not start."""
    if pool is None:
        return None
    if pool.announced:
        return pool
    try:
        pool.ready()
    except Exception as e:  # noqa: BLE001 - the forecast then runs in this process
        pool.close()
        _not_local(e, progress)
        return None
    pool.announced = True
    if progress is not None:
        progress.log(f"Forecasting the row blocks in {pool.n} local processes (one thread each; "
                     "DEFORMCAST_PREDICT_WORKERS=1 keeps them in this process).")
    return pool


def _not_local(e: BaseException, progress) -> None:
    if progress is not None:
        try:   # the interpreter lookup may itself be what failed
            who = spawn_python()
        except DeformCastError:
            who = "no interpreter"
        progress.log(f"Local worker processes ({who}) could not start ({type(e).__name__}: {e}); "
                     "forecasting in this process.")



def _run_local(pool: LocalPool, fn: Callable, args: Sequence[tuple], on_result, progress, window: int,
               what: str, meanwhile: Optional[Callable[[], None]] = None) -> None:
    import concurrent.futures as cf

    n = len(args)
    window = int(window) or 2 * pool.n + 1
    pending: Dict[object, int] = {}
    ready: Dict[int, object] = {}
    nxt = submitted = 0
    try:
        while nxt < n:
            while submitted < n and len(pending) + len(ready) < window:
                pending[pool.submit(fn, *args[submitted])] = submitted
                submitted += 1
            if progress is not None:
                progress.check()
            if meanwhile is not None:
                meanwhile, todo = None, meanwhile
                todo()
            done, _ = cf.wait(list(pending), timeout=0.05, return_when=cf.FIRST_COMPLETED)
            for f in done:
                i = pending.pop(f)
                exc = f.exception()
                if isinstance(exc, cf.process.BrokenProcessPool):
                    raise PoolBroken(f"A local worker process died on {what} {i + 1} ({exc}).")
                if exc is not None:
                    where = f"{what} {i + 1}" + (f" (rows {args[i][1]}-{args[i][2]})" if len(args[i]) >= 3 else "")
                    if isinstance(exc, DeformCastError):
                        raise DeformCastError(f"In a local worker process, {where}: {exc}")
                    raise DeformCastError(f"A local worker process failed on {where}: {type(exc).__name__}: {exc}. "
                                          "Set DEFORMCAST_PREDICT_WORKERS=1 to forecast in this process.")
                ready[i] = f.result()
            while nxt in ready:
                on_result(nxt, ready.pop(nxt))
                nxt += 1
                if progress is not None:
                    progress.set(nxt / n)
    except BaseException:
        for f in pending:
            f.cancel()
        raise
