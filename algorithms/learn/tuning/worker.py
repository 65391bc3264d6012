"""One worker of a study: ``study.optimize`` until the study has its trials, orphans failed.

The loop is Optuna's own ``study.optimize`` (so an RDB storage gets Optuna's heartbeat thread and
``fail_stale_trials`` before every trial); what DeformCast adds goes through public calls only:

* an exact total over all workers: a trial asked when the study already has ``n_trials`` finished
  or earlier-numbered running trials is marked FAIL (``user_attrs.surplus``) and the worker stops
  (``study.stop()``), so N workers together run exactly ``n_trials`` trials;
* patience on the study (:mod:`.patience`): no new trial once the best value has not improved for
  ``patience`` finished trials;
* trials left RUNNING by a killed process **on this host** (journal files have no heartbeat) are
  failed with ``study.tell(number, state=FAIL)``; a nameless RUNNING trial older than
  :data:`ORPHAN_SECONDS` belongs to a worker killed between asking and naming it.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

from ...errors import Cancelled, DeformCastError
from ...progress import Progress
from .patience import DEFAULT_MIN_REL, trials_since_improvement
from .storage import quiet_optuna

ORPHAN_SECONDS = 20.0  #: a RUNNING trial without a worker name older than this is an orphan
#: a RUNNING trial of another worker is waited for at most this long (s) before the top-K folder
#: is built without it (that worker rebuilds the folder when it finishes)
WAIT_OTHERS_SECONDS = 900.0
ORPHAN_ATTR = "failed_reason:"  #: study user attribute prefix naming why a trial was failed for its worker


def worker_id() -> str:
    """``host:pid`` of this process (computed per call: a forked worker has its own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


WORKER_ID = worker_id()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphan_trials(study) -> List[int]:
    """Mark FAIL the RUNNING trials of dead processes on this host; returns their numbers.

    Uses ``study.tell(number, state=FAIL, skip_if_finished=True)``; the reason is kept as the study
    user attribute ``failed_reason:<number>`` (read by the trials CSV)."""
    from optuna.trial import TrialState

    host, me = socket.gethostname(), os.getpid()
    failed = []
    now = _dt.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = str(t.user_attrs.get("worker", ""))
        if ":" not in w:
            # a live worker names its trial right after asking; a nameless trial older than
            # ORPHAN_SECONDS belongs to a worker killed between the two calls
            dead = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > ORPHAN_SECONDS
        else:
            h, pid = w.rsplit(":", 1)
            dead = h == host and pid.isdigit() and int(pid) != me and not _pid_alive(int(pid))
        if dead:
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                study.set_user_attr(f"{ORPHAN_ATTR}{t.number}", "worker process died")
                failed.append(t.number)
            except Exception:  # noqa: BLE001 - another worker got there first
                pass
    return failed


def fail_stale(study) -> None:
    """Optuna's documented stale-trial check (RDB heartbeat; a no-op for journal files)."""
    optuna = quiet_optuna()
    try:
        optuna.storages.fail_stale_trials(study)
    except Exception:  # noqa: BLE001 - the storage may refuse while another worker does it
        pass


def counts(study) -> Tuple[int, list]:
    """``(finished trials, RUNNING trials)`` of the study."""
    from optuna.trial import TrialState

    finished = 0
    running = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            finished += 1
        elif t.state == TrialState.RUNNING:
            running.append(t)
    return finished, running


@dataclass
class WorkerStats:
    trials_run: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    surplus: bool = False
    stopped_by_timeout: bool = False
    stopped_by_patience: bool = False
    seconds: float = 0.0
    errors: List[str] = field(default_factory=list)

    def add(self, other: "WorkerStats") -> None:
        for f in ("trials_run", "complete", "pruned", "failed"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.errors += other.errors
        self.surplus |= other.surplus
        self.stopped_by_timeout |= other.stopped_by_timeout
        self.stopped_by_patience |= other.stopped_by_patience


class _Surplus(Exception):
    """The study was already full (or patient enough) when this trial was asked."""


class _TrialFailed(Exception):
    """A trial failed for a reason of its own (recorded); the worker goes on."""


def plateaued(study, patience: int, min_rel: float = DEFAULT_MIN_REL, min_complete: int = 0) -> bool:
    """Whether the study's best value has not improved for ``patience`` finished trials, once it has
    at least ``min_complete`` COMPLETE trials (the top-K ensemble is full before patience may stop)."""
    if not patience or int(patience) <= 0:
        return False
    trials = study.get_trials(deepcopy=False)
    if min_complete and sum(t.state.name == "COMPLETE" for t in trials) < int(min_complete):
        return False
    since, best = trials_since_improvement(trials, min_rel)
    return math.isfinite(best) and since >= int(patience)


def stop_rule(patience: int = 0, min_rel: float = DEFAULT_MIN_REL, min_complete: int = 0):
    """``study_stopped(study)`` for :func:`.objective.make_objective`: whether patience has stopped the
    study (:func:`plateaued`, the rule :func:`run_worker` applies before each trial); None when
    patience is off. A trial still running when the study stops is pruned at its next epoch."""
    if not patience or int(patience) <= 0:
        return None
    return lambda study: plateaued(study, patience, min_rel, min_complete)


def run_worker(study, objective: Callable, n_trials: int, timeout: Optional[float] = None,
               progress: Optional[Progress] = None, max_consecutive_failures: int = 3,
               patience: int = 0, min_rel: float = DEFAULT_MIN_REL, min_complete: int = 0) -> WorkerStats:
    """Run trials of ``study`` until it has ``n_trials`` finished ones (all workers together), or
    its best value has not improved by ``min_rel`` for ``patience`` finished trials (0: off) and it
    has ``min_complete`` COMPLETE trials.

    ``objective(trial, progress)`` returns the value to minimise or raises
    ``optuna.TrialPruned``; ``Cancelled`` marks the trial FAIL and is re-raised (finished trials
    stay in the storage); a :class:`DeformCastError` or other exception marks it FAIL and the
    worker goes on, unless ``max_consecutive_failures`` trials in a row failed (then the last
    error is raised so a broken configuration does not burn the budget).
    """
    optuna = quiet_optuna()
    progress = progress or Progress()
    stats = WorkerStats()
    t0 = time.time()
    n_trials = int(n_trials)
    state = {"consecutive": 0, "fatal": None}

    def full() -> bool:
        finished, running = counts(study)
        progress.set(min(1.0, finished / max(1, n_trials)))
        if plateaued(study, patience, min_rel, min_complete):
            stats.stopped_by_patience = True
            return True
        return finished + len(running) >= n_trials

    def fail(trial, reason: str, log: str):
        trial.set_user_attr("failed_reason", reason[:500])
        stats.failed += 1
        stats.errors.append(f"trial {trial.number}: {reason}")
        progress.log(log)
        state["consecutive"] += 1

    def run_one(trial):
        progress.check()
        trial.set_user_attr("worker", worker_id())
        fail_orphan_trials(study)
        finished, running = counts(study)
        ahead = [t for t in running if t.number < trial.number]
        if finished + len(ahead) >= n_trials or plateaued(study, patience, min_rel, min_complete):
            trial.set_user_attr("surplus", True)
            stats.surplus = True
            study.stop()
            raise _Surplus()
        stats.trials_run += 1
        base = min(finished, n_trials - 1) / max(1, n_trials)
        sub = progress.sub(base, min(1.0, base + 1.0 / max(1, n_trials)))
        t_start = time.time()
        try:
            value = objective(trial, sub)
        except optuna.TrialPruned:
            trial.set_user_attr("seconds", time.time() - t_start)
            stats.pruned += 1
            state["consecutive"] = 0
            why = " (the study has stopped: STUDY_PATIENCE)" if trial.user_attrs.get("stopped_by_study") else ""
            progress.log(f"Trial {trial.number}: pruned after {trial.user_attrs.get('epochs_run', '?')} epoch(s) "
                         f"({time.time() - t_start:.1f} s){why}")
            raise
        except Cancelled:
            trial.set_user_attr("failed_reason", "cancelled by the user")
            raise
        except (DeformCastError, RuntimeError, ValueError, FloatingPointError) as e:
            fail(trial, str(e), f"Trial {trial.number} failed: {e}")
            if state["consecutive"] >= max_consecutive_failures:
                state["fatal"] = DeformCastError(
                    f"{state['consecutive']} trials in a row failed; the last error: {e}. Check SEARCH_SPACE, "
                    "WINDOW and the input stack.")
                study.stop()
            raise _TrialFailed(str(e)) from None
        except BaseException:
            trial.set_user_attr("failed_reason", "interrupted")
            raise
        trial.set_user_attr("seconds", time.time() - t_start)
        if value is None or not math.isfinite(float(value)):
            fail(trial, "the validation score is not a finite number (training diverged)",
                 f"Trial {trial.number} diverged (validation score not finite)")
            if state["consecutive"] >= max_consecutive_failures:
                state["fatal"] = DeformCastError(
                    f"{state['consecutive']} trials in a row diverged (validation score not finite). Lower the "
                    "learning-rate range in SEARCH_SPACE.")
                study.stop()
            raise _TrialFailed("diverged")
        stats.complete += 1
        state["consecutive"] = 0
        progress.log(f"Trial {trial.number}: validation RMSE {float(value):.4g} mm "
                     f"({time.time() - t_start:.1f} s)")
        return float(value)

    def after(study_, frozen):
        # the timeout is checked after each trial (not before the first: a run always adds one)
        if timeout and time.time() - t0 >= float(timeout):
            stats.stopped_by_timeout = True
            study_.stop()
        elif full():
            study_.stop()

    progress.check()
    fail_orphan_trials(study)
    if not full():
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own log says why a trial failed
        try:
            study.optimize(run_one, n_trials=None, catch=(_Surplus, _TrialFailed),
                           callbacks=[after], gc_after_trial=False)
        finally:
            optuna.logging.set_verbosity(level)
    if state["fatal"] is not None:
        raise state["fatal"]
    stats.seconds = time.time() - t0
    return stats


def wait_for_others(study, progress: Progress, limit: Optional[float] = None) -> None:
    """Wait until the trials other workers are running now have finished (or failed)."""
    from optuna.trial import TrialState

    limit = WAIT_OTHERS_SECONDS if limit is None else float(limit)
    _, running = counts(study)
    waiting = {t.number for t in running}
    if not waiting:
        return
    progress.log(f"Waiting for trial(s) {', '.join(map(str, sorted(waiting)))} of other workers to finish before the "
                 "top-K models are chosen ...")
    t0 = time.time()
    while waiting:
        progress.check()
        fail_orphan_trials(study)
        fail_stale(study)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        waiting = {n for n in waiting if states.get(n) in (TrialState.RUNNING, TrialState.WAITING)}
        if not waiting:
            break
        if time.time() - t0 > limit:
            progress.log(f"Trial(s) {', '.join(map(str, sorted(waiting)))} still run after {limit:.0f} s; the top-K "
                         "models are chosen without them (their worker rebuilds the folder when it finishes).")
            break
        time.sleep(0.5)
