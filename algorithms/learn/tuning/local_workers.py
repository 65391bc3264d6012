"""Trials in parallel processes on one machine (``LOCAL_WORKERS``).

A study already accepts any number of workers (terminals, machines: see :mod:`.worker`). On one
machine, ``tune_job(..., local_workers=N)`` starts ``N - 1`` extra worker processes that join the
same study with one torch thread each, while the calling process runs its own worker and then
builds the top-K folder (it waits for the others' running trials, :func:`.worker.wait_for_others`).
Small networks on CPU use one core far better than two threads share two (measured in
docs/README_tuning.md: the thread hand-offs of a two-thread trial are mostly system time), so on a
2-core machine two one-thread workers finish about twice the trials of one two-thread worker.

A worker is a plain Python process (``python -m <package>.algorithms.tuning.worker_main``) given
its arguments as JSON: the stack and covariates by path, so the QGIS-free core runs there without
QGIS. Its log goes to ``<study output folder>/worker_<k>.log``. The processes end when the study
has its trials; they are terminated when the calling process stops early (cancel, error).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List

from ... import deps
from ..runtime import usable_cores

#: ``local_workers=0`` ("auto"): one worker per core, at most this many (TPE learns from finished
#: trials; many parallel workers ask before they can learn)
AUTO_MAX_WORKERS = 4
_PKG = __name__.split(".")[0]


def auto_workers(device: str = "cpu") -> int:
    """Workers for ``local_workers=0``: 1 on a GPU (one device, one process), else one per core up to
    :data:`AUTO_MAX_WORKERS`."""
    if str(device).startswith("cuda"):
        return 1
    return max(1, min(AUTO_MAX_WORKERS, usable_cores()))


def python_executable() -> str:
    """The interpreter for the worker processes (:func:`deps.python_interpreter`: QGIS's own Python, not
    ``sys.executable``, which inside QGIS may be the QGIS binary or another installation's ``python3``)."""
    return deps.python_interpreter()


def start(n_extra: int, job: Dict[str, Any], log_folder: str) -> List[subprocess.Popen]:
    """Start ``n_extra`` worker processes for ``job`` (the JSON-able arguments of :func:`worker_main.run_job`)."""
    if n_extra <= 0:
        return []
    text = json.dumps(job)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["DEFORMCAST_THREADS"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    os.makedirs(log_folder, exist_ok=True)
    procs = []
    for k in range(n_extra):
        log = open(os.path.join(log_folder, f"worker_{k + 2}.log"), "w", encoding="utf-8")
        try:
            procs.append(subprocess.Popen([python_executable(), "-m", f"{_PKG}.algorithms.learn.tuning.worker_main"],
                                          stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          text=True))
        finally:
            log.close()
        procs[-1].stdin.write(text)
        procs[-1].stdin.close()
    return procs


def stop(procs: List[subprocess.Popen], wait: bool, grace: float = 120.0) -> List[int]:
    """Wait for the workers (``wait``: the study is complete, so they end within seconds; after
    ``grace`` seconds one that still runs, e.g. a stuck interpreter, is terminated) or terminate them
    at once; their exit codes (negative: ended by a signal)."""
    codes = []
    for p in procs:
        if wait:
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            p.terminate()
        try:
            codes.append(p.wait(timeout=30))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes
