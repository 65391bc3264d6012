"""Entry of a local worker process (:mod:`.local_workers`): ``python -m <package>.algorithms.tuning.worker_main``
with the job as JSON on stdin."""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, Optional

from ..runtime import numeric_session
from .job import load_inputs, run_study


@numeric_session        # as the calling process's tune_job: numpy's BLAS on one thread, glibc's heap kept
def run_job(job: Dict[str, Any]) -> Optional[int]:
    """The worker side: read the inputs by path and join the study (no outputs, no gate)."""
    print(f"worker on {sys.executable} (Python {sys.version.split()[0]})", flush=True)
    info, cov = load_inputs(job["stack_path"], job.get("dates"), job.get("covariates") or ())
    kw = dict(job["kwargs"])
    res = run_study(info, info.dates, info.grid, job["architecture"], int(job["horizon"]), job["output_folder"],
                    covariates=cov, write_outputs=False, evaluate_test=False, threads=1,
                    input_label=job.get("input_label", ""), **kw)
    print(f"worker finished: {res.worker.trials_run if res.worker else 0} trial(s)", flush=True)
    return 0


if __name__ == "__main__":   # pragma: no cover - run as a subprocess by start()
    sys.exit(run_job(json.loads(sys.stdin.read())))
