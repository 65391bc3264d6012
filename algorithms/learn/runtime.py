"""The torch runtime policy of DeformCast in one place (QGIS-free): device, CPU threads, a seeded
deterministic session, and batched inference. Training (:mod:`algorithms.learn.training`), model folders
(:mod:`algorithms.models.modelio`), the ensemble forecast, tuning and comparison all use these, so there is
one device rule and one thread rule.

Threads
-------
``DEFORMCAST_THREADS`` (a whole number) always wins. Otherwise:

* **training** (:func:`default_threads`, used by :func:`torch_session`/:func:`torch_threads`):
  ``min(2, cores)`` — a fixed count, because results differ in the last bits between thread counts
  and a seeded run must repeat;
* **inference** (:func:`inference_threads`): torch's own default (all cores) — a forecast has no
  seed to repeat and is faster with every core.

Device
------
:func:`resolve_device`: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``
(refused with a clear message when torch sees no GPU).

``predict_array(model, X, batch_size=PREDICT_BATCH, device="cpu", progress=None) -> float32 (N, horizon)``:
batched inference under ``torch.inference_mode`` (no Python loop per pixel). ``PREDICT_BATCH`` =
2048: on a 2-core CPU, batches of 1-2k windows keep the activations in cache and run about 1.5x
faster than 8k and 3x faster than 64k (measured with benchmarks/bench_models.py). On CUDA the batch is
raised to ``CUDA_PREDICT_BATCH`` (16 384) where the card's free memory allows (``inference_batch``).
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Optional

import numpy as np

from ..errors import DeformCastError
from ..progress import Progress

PREDICT_BATCH = 2048
#: the smallest inference batch on a CUDA GPU (issue 17): a GPU needs tens of thousands of windows in flight to be
#: busy, while 2048 suits a CPU core's caches. An LSTM layer of hidden 64 over a 24-epoch window (the longest of the
#: main job's search space) keeps about 100 MB of outputs per 16 384 windows in inference, far below a CUDA card's
#: memory; :func:`inference_batch` also caps the batch by the card's free memory.
CUDA_PREDICT_BATCH = 16384


def env_threads() -> Optional[int]:
    """``DEFORMCAST_THREADS`` as a whole number, or None when it is not set."""
    env = os.environ.get("DEFORMCAST_THREADS", "").strip()
    if not env:
        return None
    try:
        return max(1, int(env))
    except ValueError:
        raise DeformCastError(f"DEFORMCAST_THREADS='{env}' is not a whole number of threads.") from None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Torch CPU threads: ``DEFORMCAST_THREADS`` when set, else ``min(2, cores)``.

    Small machines are often shared: on an oversubscribed CPU, OpenMP threads wait on each other
    and 2 threads can be many times slower than 1 — set ``DEFORMCAST_THREADS=1`` there. The count
    is fixed (not derived from the current load) because results differ in the last bits between
    thread counts, and a seeded run must repeat.
    """
    n = env_threads()
    return n if n is not None else max(1, min(2, os.cpu_count() or 1))


@contextlib.contextmanager
def torch_threads(threads: Optional[int] = None):
    """Run a block with ``threads`` torch CPU threads (default :func:`default_threads`), then restore."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(threads or default_threads()))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def blas_threads(n: int = 1):
    """numpy's and scipy's BLAS (OpenBLAS) limited to ``n`` threads in this block, then restored
    (``threadpoolctl``; a no-op where it is missing).

    Idle OpenBLAS threads wait by calling ``sched_yield`` in a loop: with two of them per process beside
    torch's threads and a second tuning process on 2 cores, the demo main job spent 97 s in the kernel
    beside 259 s of user time. With one BLAS thread: 13 s, and 2 min 42 s wall instead of 3 min 15 s,
    with the gate, backtest and forecast as fast as before (docs/benchmarks.md, session 9). The large
    products of the classical fits are memory-bound; a second BLAS thread bought nothing measurable."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:   # optional: the limit is an optimisation
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield


def numeric_session(fn):
    """Decorator of the entrances (the main job, ``tune``, ``predict``): ``fn`` runs under :func:`blas_threads` (1)
    and :func:`heap_reuse`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with blas_threads(1), heap_reuse():
            return fn(*args, **kwargs)
    return wrapper


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
#: while DeformCast computes: freed memory up to this much stays with the process for the next array (MB)
HEAP_TRIM_MB = 1024
#: and the heap grows in steps of at least this much (MB)
HEAP_TOP_PAD_MB = 64
_HEAP = {"depth": 0}
_HEAP_LOCK = threading.Lock()


def glibc():
    """The C library where it is glibc (its ``mallopt``), else None (Windows, macOS, musl)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


def reuse_heap() -> bool:
    """glibc's malloc keeps what the computation frees for its next arrays: no ``mmap`` per large array
    (``M_MMAP_MAX`` 0), freed memory kept up to :data:`HEAP_TRIM_MB`, the heap grown by
    :data:`HEAP_TOP_PAD_MB` at a time. By default every array above glibc's mmap threshold (at most 32 MB) is a fresh
    mapping whose pages the kernel faults in and zeroes one by one; the classical fits, the track record and the
    networks make and free such arrays all the time. Session 26, ``predict`` of 256 x 1000 pixels in one process
    (the demo's ten members, gated): 78.9 s wall, 20.0 s of it system time, 1.12 M page faults, peak 1.97 GB ->
    68.0 s, 6.1 s, 0.10 M, 2.10 GB (docs/benchmarks.md). ``DEFORMCAST_MALLOC=default`` leaves malloc as it is.
    False where nothing was changed (not glibc, or switched off)."""
    libc = glibc()
    if libc is None or os.environ.get("DEFORMCAST_MALLOC", "").strip().lower() == "default":
        return False
    return (bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_MB << 20))
            and bool(libc.mallopt(_M_TOP_PAD, HEAP_TOP_PAD_MB << 20)))


def dynamic_heap() -> bool:
    """glibc's largest dynamic mmap threshold (32 MB) and a 64 MB trim threshold: what undoes a fixed small trim
    threshold (Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536``) where :func:`reuse_heap` is switched off. False
    where not glibc."""
    libc = glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))


def release_heap() -> None:
    """glibc's defaults again (mmap for large arrays, 128 KiB trim threshold and top pad), and the heap's free memory
    returned to the system (``malloc_trim``)."""
    libc = glibc()
    if libc is None:
        return
    libc.mallopt(_M_MMAP_MAX, 65536)
    libc.mallopt(_M_MMAP_THRESHOLD, 128 << 10)
    libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10)
    libc.mallopt(_M_TOP_PAD, 128 << 10)
    libc.malloc_trim(0)


def trim_heap() -> None:
    """The free memory of every malloc arena given back to the system (glibc's ``malloc_trim``), the settings kept;
    nothing where the C library is not glibc."""
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextlib.contextmanager
def heap_reuse():
    """:func:`reuse_heap` for a block, then :func:`release_heap` (nested blocks: at the outermost's end), so QGIS
    gets its memory back when the job ends."""
    with _HEAP_LOCK:              # QGIS may run two jobs in two task threads: the last one out restores
        _HEAP["depth"] += 1
        if _HEAP["depth"] == 1:
            _HEAP["changed"] = reuse_heap()
    try:
        yield
    finally:
        with _HEAP_LOCK:
            _HEAP["depth"] -= 1
            if _HEAP["depth"] == 0 and _HEAP.pop("changed", False):
                release_heap()


def inference_threads():
    """Context for a forecast: ``DEFORMCAST_THREADS`` threads when set (e.g. 1 on an oversubscribed
    machine, where 2 OpenMP threads can wait on each other), else torch's own default (all cores)."""
    n = env_threads()
    return torch_threads(n) if n is not None else contextlib.nullcontext()


def resolve_device(device: Optional[str] = "auto") -> str:
    """``auto`` | ``cpu`` | ``cuda`` -> the device torch will use (``cpu`` or ``cuda``)."""
    import torch

    d = (device or "auto").strip().lower()
    if d not in ("auto", "cpu", "cuda"):
        raise DeformCastError(f"DEVICE: unknown value '{device}'. Valid values: auto, cpu, cuda.")
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d == "cuda" and not torch.cuda.is_available():
        raise DeformCastError(
            "DEVICE is 'cuda' but torch sees no CUDA GPU (the installed torch "
            f"{torch.__version__} may be a CPU-only build, or no NVIDIA driver is loaded). "
            "Choose DEVICE 'auto' or 'cpu', or install a CUDA build of torch.")
    return d


#: files that exist where a GPU driver torch could use is loaded (NVIDIA's, or AMD's ROCm for torch's ROCm builds)
GPU_DRIVER_FILES = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")


def known_device(device: Optional[str] = "auto") -> Optional[str]:
    """The device :func:`resolve_device` gives, where it is known without importing torch (about 1 s): ``cpu``
    when asked for, or for ``auto`` on Linux with no GPU driver loaded (:data:`GPU_DRIVER_FILES`); torch's own answer
    where it is imported already; None otherwise (ask :func:`resolve_device`). ``predict`` starts its local processes
    with it before it imports torch itself (session 28)."""
    import sys

    d = (device or "auto").strip().lower()
    if d == "cpu":
        return "cpu"
    if d != "auto":
        return None
    if "torch" in sys.modules:
        return resolve_device(d)
    if sys.platform.startswith("linux") and not any(os.path.exists(f) for f in GPU_DRIVER_FILES):
        return "cpu"
    return None


@contextlib.contextmanager
def torch_session(seed: int, threads: Optional[int], device: str):
    """Seeded, deterministic, thread-limited scope that restores the global torch state."""
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(int(threads or default_threads()))
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            if device == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=(device == "cuda"))
            yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def inference_batch(batch_size: int, device: str, window: int = 1, n_features: int = 1,
                    free_bytes: Optional[int] = None) -> int:
    """The windows per forward pass on ``device`` (``cpu`` or ``cuda``): ``batch_size`` on a CPU; on CUDA at least
    :data:`CUDA_PREDICT_BATCH`, but never more than a quarter of the card's free memory holds, and never less than
    ``batch_size``. A window is counted at ``window * (1024 + 4 * n_features)`` bytes: its inputs plus a generous
    1 KiB per epoch for the activations (a two-layer LSTM of hidden 64 keeps 0.25 KiB per epoch, a transformer's
    attention of 4 heads over 60 epochs about 1 KiB). ``free_bytes`` is the card's free memory (asked from torch when
    None)."""
    b = max(1, int(batch_size))
    if device != "cuda":
        return b
    if free_bytes is None:
        import torch

        try:
            free_bytes = int(torch.cuda.mem_get_info()[0])
        except (RuntimeError, AssertionError):     # a card that cannot say (some partitioned GPUs): the default
            return max(b, CUDA_PREDICT_BATCH)
    cap = int(free_bytes) // 4 // (max(1, int(window)) * (1024 + 4 * max(1, int(n_features))))
    return max(b, min(CUDA_PREDICT_BATCH, cap))


def predict_array(model, X, batch_size: int = PREDICT_BATCH, device: str = "cpu",
                  progress: Optional[Progress] = None) -> np.ndarray:
    """``model`` applied to ``X`` (N, window, F) in batches -> float32 (N, horizon). On CUDA the batch is at least
    :data:`CUDA_PREDICT_BATCH` windows where the card's memory allows (:func:`inference_batch`)."""
    import torch

    dev = resolve_device(device)
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 3:
        batch_size = inference_batch(batch_size, dev, X.shape[1], X.shape[2])
    model = model.to(dev).eval()
    n = X.shape[0]
    out = None
    with torch.inference_mode():
        for i in range(0, n, int(batch_size)):
            if progress is not None:
                progress.set(i / max(1, n))
            p = model(torch.from_numpy(np.ascontiguousarray(X[i:i + batch_size])).to(dev))
            if out is None:
                out = np.empty((n, p.shape[1]), dtype=np.float32)
            out[i:i + p.shape[0]] = p.float().cpu().numpy()
    if out is None:
        out = np.empty((0, 0), dtype=np.float32)
    return out


# ------------------------------------------------------------------------------------------------
# evaluation helpers
