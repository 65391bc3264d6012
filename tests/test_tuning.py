"""Optuna TPE tuning: search space, a tiny real study, kill-and-resume, two workers on one journal."""
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from deformcast.algorithms.learn import tuning
from deformcast.algorithms.errors import DeformCastError

PKGROOT = Path(__file__).resolve().parents[1] / "build" / "pkgroot"

# tiny, fast settings: an LSTM of width 8, few windows, few epochs
TINY_SPACE = {"samples_per_epoch": 128, "hidden": [4, 8], "layers": 1, "batch_size": 64,
              "window": {"low": 4, "high": 8}}


@pytest.fixture(scope="module")
def scene():
    from deformcast.algorithms.data import synthetic

    return synthetic.make_scene(seed=3, width=16, height=16, n_epochs=40)


def _study_dirs(folder):
    root = Path(folder) / tuning.STUDIES_DIR
    return sorted(p for p in root.iterdir() if (p / tuning.JOURNAL_NAME).exists()) if root.is_dir() else []


def _optuna_study(folder, name=None):
    """The study of an OUTPUT_FOLDER (its only study when ``name`` is None)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if name is None:
        dirs = _study_dirs(folder)
        assert len(dirs) == 1, dirs
        sdir = str(dirs[0])
        name = optuna.study.get_all_study_names(JournalStorage(JournalFileBackend(
            os.path.join(sdir, tuning.JOURNAL_NAME))))[0]
    else:
        sdir = tuning.study_folder(folder, name)
    p = os.path.join(sdir, tuning.JOURNAL_NAME)
    st = JournalStorage(JournalFileBackend(p, lock_obj=JournalFileOpenLock(p)))
    return optuna.load_study(study_name=name, storage=st)


def _states(study):
    from collections import Counter

    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


# ---- search space --------------------------------------------------------------------------
def test_search_space_from_registry_and_overrides():
    from deformcast.algorithms.models import get_spec

    sp = tuning.build_search_space("tcn", max_window=20)
    spec = get_spec("tcn")
    for p in spec.all_space():
        assert p.name in sp
    assert sp["window"].kind == "int" and sp["window"].high == 20
    # a given window range (the main job's 8..24) is capped at what the stack allows, as the registry's
    # is, rather than failing every trial that draws a longer window (a 60-epoch stack, horizon 15)
    capped = tuning.build_search_space("tcn", '{"window": {"type": "int", "low": 8, "high": 24}}', max_window=15)
    assert (capped["window"].low, capped["window"].high) == (8, 15)
    with pytest.raises(DeformCastError, match="allows at most 6"):
        tuning.build_search_space("tcn", '{"window": {"type": "int", "low": 8, "high": 24}}', max_window=6)
    sp = tuning.build_search_space(
        "tcn", '{"lr": {"low": 1e-4, "high": 1e-3, "log": true}, "levels": 2, "batch_size": [64, 128],'
               ' "encoding": ["none", "temporal"]}', window=8)
    assert sp["lr"].log and sp["lr"].high == 1e-3
    assert sp["levels"].kind == "fixed" and sp["levels"].value == 2
    assert sp["batch_size"].choices == (64, 128)
    assert sp["window"].kind == "fixed" and sp["window"].value == 8
    assert sp["encoding"].choices == ("none", "temporal")


@pytest.mark.parametrize("bad, match", [
    ('{"lr": ', "not valid JSON"),
    ('{"nonsense": 3}', "Valid names"),
    ('{"lr": {"low": 1, "high": 0.1}}', "low"),
    ('[1, 2]', "JSON object"),
])
def test_search_space_bad_json_is_named(bad, match):
    with pytest.raises(DeformCastError, match=match):
        tuning.build_search_space("lstm", bad)


def test_storage_url_checked(tmp_path):
    with pytest.raises(DeformCastError, match="database URL"):
        tuning.open_storage("ftp://host/x", str(tmp_path))
    st, desc = tuning.open_storage("", str(tmp_path))
    assert desc.endswith("study.journal")
    assert tuning._mask("postgresql://me:secret@db.example/optuna") == "postgresql://me:***@db.example/optuna"


# ---- a real tiny study ------------------------------------------------------------------------
def test_tiny_study_end_to_end(scene, tmp_path):
    from deformcast.algorithms.models.modelio import load_model, read_manifest

    out = tmp_path / "study"
    logs = []
    from deformcast.algorithms.progress import Progress

    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=4, top_k=2,
                           seed=5, search_space=TINY_SPACE, max_epochs=3, patience=2, max_samples=400,
                           threads=1, pruner="median", progress=Progress(on_log=logs.append))
    study = _optuna_study(str(out), res.study_name)
    st = _states(study)
    assert st["COMPLETE"] + st["PRUNED"] == 4
    # trial 0 ran the hand-set defaults (those inside the overridden ranges)
    t0 = study.trials[0]
    assert t0.user_attrs.get("hand_set_defaults")
    from deformcast.algorithms.models import get_spec

    d = get_spec("lstm").all_defaults()
    assert all(t0.params[k] == d[k] for k in ("lr", "weight_decay", "dropout", "grad_clip"))
    assert 4 <= t0.params["window"] <= 8  # the default window 12 lies outside the tiny range: sampled
    man = read_manifest(str(out))
    assert [m["rank"] for m in man["members"]] == [1, 2]
    # the study has its own folder, named from architecture, horizon, encoding and data fingerprint
    sdir = Path(res.study_folder)
    assert sdir.parent == out / "studies" and res.study_name.startswith("deformcast-lstm-h2-none-")
    assert man["study_folder"] == os.path.relpath(sdir, out)
    assert all(m["folder"].startswith(man["study_folder"] + os.sep) for m in man["members"])
    own = read_manifest(str(sdir))
    assert [m["path"] for m in own["members"]] == [m["path"] for m in man["members"]]
    vals = [m["val_rmse_mm"] for m in man["members"]]
    assert vals == sorted(vals) and vals[0] == pytest.approx(res.best_value)
    # the best member is the study's best trial
    assert man["members"][0]["trial"] == study.best_trial.number
    lm = load_model(man["members"][0]["path"])
    assert lm.meta["validation"]["val_rmse_mm"] == pytest.approx(res.best_value)
    from deformcast.algorithms.models.modelio import data_fingerprint

    assert lm.meta["data_fingerprint"] == data_fingerprint(scene.observed, scene.dates, scene.grid)
    assert res.study_name.endswith(lm.meta["data_fingerprint"][7:17]) and len(lm.meta["dates"]) == 40
    # only the top-K trial folders are kept
    assert len(os.listdir(sdir / "trials")) == 2
    # test metrics and baselines on the same samples are reported
    assert np.isfinite(res.top[0]["test_rmse_mm"])
    assert set(res.baselines) >= {"persistence", "trajectory_ensemble"}
    assert all(s["n"] == res.baselines["persistence"]["n"] for s in res.baselines.values())
    html = (sdir / "tune_report.html").read_text()
    for text in ("Optimisation history", "Parameter importances", "Best parameters", "baseline: persistence",
                 "wall time"):
        assert text in html
    rows = (sdir / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("number,state,val_rmse_mm")
    assert any("Trial 0" in m for m in logs)
    # objective used validation only: the value equals the validation RMSE recomputed from the model
    prep = tuning.DataCache(scene.observed, scene.dates, scene.grid, 2, seed=5, max_samples=400).get(
        lm.meta["window"], "none")
    assert tuning.rmse_mm(lm.model, prep.val, prep.norm) == pytest.approx(res.best_value, rel=1e-5)

    # running again with the same N_TRIALS adds no trial and rebuilds the same folder
    res2 = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=4, top_k=2,
                            seed=5, search_space=TINY_SPACE, max_epochs=3, patience=2, max_samples=400, threads=1)
    assert res2.worker.trials_run == 0 and res2.best_value == res.best_value

    # a study with other settings is refused, naming the fix
    with pytest.raises(DeformCastError, match="STUDY_NAME"):
        tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=5,
                         study_name=res.study_name, seed=5, search_space=TINY_SPACE, max_epochs=4,
                         max_samples=400, threads=1)


def test_retrain_option(scene, tmp_path):
    from deformcast.algorithms.models.modelio import read_manifest, read_meta

    out = tmp_path / "rt"
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "gru", 2, str(out), n_trials=2, top_k=1,
                           seed=2, search_space=TINY_SPACE, max_epochs=2, patience=2, max_samples=300,
                           threads=1, pruner="none", retrain=True)
    man = read_manifest(res.study_folder)
    m = man["members"][0]
    assert m["folder"].startswith("retrained") and m["retrained"]
    meta = read_meta(m["path"])
    assert meta["retrained_on"] == "train+validation"
    trial_meta = read_meta(os.path.join(res.study_folder, "trials", f"{m['trial']:06d}"))
    assert meta["epochs"] == trial_meta["validation"]["best_epoch"] + 1
    assert meta["data_fingerprint"] == trial_meta["data_fingerprint"]
    assert np.isfinite(res.top[0]["test_rmse_mm"])


def test_cancel_keeps_finished_trials(scene, tmp_path):
    from deformcast.algorithms.errors import Cancelled
    from deformcast.algorithms.progress import Progress

    out = tmp_path / "cancel"
    state = {"cancel": False}

    def on_log(msg):
        if msg.startswith("Trial 0"):
            state["cancel"] = True

    with pytest.raises(Cancelled):
        tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=5, top_k=2,
                         seed=1, search_space=TINY_SPACE, max_epochs=3, max_samples=300, threads=1,
                         pruner="none", progress=Progress(on_log=on_log, is_cancelled=lambda: state["cancel"]))
    assert not (out / "manifest.json").exists() and not list(out.glob("studies/*/manifest.json"))
    st = _states(_optuna_study(str(out)))
    assert st["COMPLETE"] == 1 and st.get("RUNNING", 0) == 0


# ---- kill and resume; two workers -------------------------------------------------------------------
WORKER = textwrap.dedent('''
    import sys, torch
    torch.set_num_threads(1)
    from deformcast.algorithms.data import synthetic
    from deformcast.algorithms.learn import tuning
    out, n, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sc = synthetic.make_scene(seed=3, width=16, height=16, n_epochs=40)
    space = {"samples_per_epoch": 1024, "hidden": [4, 8], "layers": 1, "batch_size": 64,
             "window": {"low": 4, "high": 8}}
    r = tuning.run_study(sc.observed, sc.dates, sc.grid, "lstm", 2, out, n_trials=n, top_k=2, seed=7,
                         search_space=space, max_epochs=epochs, patience=epochs, max_samples=1024, threads=1,
                         pruner="none")
    print("RAN", r.worker.trials_run, "SURPLUS", int(r.worker.surplus), flush=True)
''')


def _spawn(tmp_path, out, n, epochs):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=str(PKGROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, str(script), str(out), str(n), str(epochs)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_complete(out, n, proc, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if _study_dirs(out):
            try:
                st = _states(_optuna_study(str(out)))
                if st["COMPLETE"] >= n:
                    return st
            except (KeyError, IndexError):   # the journal file exists before the study is written into it
                pass
        if proc.poll() is not None:
            raise AssertionError("worker ended early: " + proc.stderr.read()[-2000:])
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a finished trial")


def test_killed_worker_resumes_without_losing_trials(tmp_path):
    out = tmp_path / "killed"
    proc = _spawn(tmp_path, out, 5, 8)
    try:
        _wait_complete(out, 1, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    study = _optuna_study(str(out))
    before = {t.number: t.value for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    st = _states(study)
    assert 1 <= len(before) < 5, "the worker must be killed mid-study"
    assert not (out / "manifest.json").exists()

    proc2 = _spawn(tmp_path, out, 5, 8)
    stdout, stderr = proc2.communicate(timeout=600)
    assert proc2.returncode == 0, stderr[-3000:]
    study = _optuna_study(str(out))
    after = {t.number: t for t in study.get_trials(deepcopy=False)}
    for num, val in before.items():  # no finished trial lost or changed
        assert after[num].state.name == "COMPLETE" and after[num].value == val
    st = _states(study)
    assert st["COMPLETE"] + st["PRUNED"] == 5
    assert st.get("RUNNING", 0) == 0  # the trial the killed worker left running was failed
    if st.get("FAIL", 0):  # the reason is a study attribute (a finished trial takes no new attribute)
        assert any(study.user_attrs.get(f"failed_reason:{t.number}") == "worker process died"
                   for t in after.values() if t.state.name == "FAIL")
    assert (out / "manifest.json").exists()


def test_two_workers_share_one_journal(tmp_path):
    out = tmp_path / "two"
    procs = [_spawn(tmp_path, out, 4, 3) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, se[-3000:]
    study = _optuna_study(str(out))
    st = _states(study)
    assert st["COMPLETE"] + st["PRUNED"] == 4  # exactly the requested number between them
    assert st.get("RUNNING", 0) == 0
    ran = sum(int(so.split("RAN ")[1].split()[0]) for so, _ in outs)
    assert ran == 4
    workers = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    assert workers <= {f"{os.uname().nodename}:{p.pid}" for p in procs}
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["members"]) == 2


def test_database_storage_url(scene, tmp_path):
    """STORAGE takes an Optuna RDB URL (sqlite here; PostgreSQL/MySQL work the same way)."""
    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "out"), n_trials=2,
                           top_k=1, seed=1, storage=url, search_space=TINY_SPACE, max_epochs=1, max_samples=300,
                           threads=1, pruner="none", evaluate_test=False, write_outputs=False)
    assert res.storage == url and not (tmp_path / "out" / "study.journal").exists()
    study = optuna.load_study(study_name=res.study_name, storage=url)
    assert _states(study)["COMPLETE"] == 2
    assert (tmp_path / "out" / "manifest.json").exists()


def test_timeout_stops_starting_trials(scene, tmp_path):
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "to"), n_trials=50,
                           top_k=3, seed=1, timeout=1e-3, search_space=TINY_SPACE, max_epochs=1, max_samples=300,
                           threads=1, pruner="none", evaluate_test=False, write_outputs=False)
    assert res.worker.stopped_by_timeout and res.worker.trials_run == 1 and res.n_complete == 1


def test_orphaned_trial_is_failed_not_waited_for(scene, tmp_path, monkeypatch):
    """A worker killed between asking for a trial and naming it leaves a nameless RUNNING trial."""
    out = tmp_path / "orphan"
    kw = dict(top_k=1, seed=1, search_space=TINY_SPACE, max_epochs=1, max_samples=300, threads=1, pruner="none",
              evaluate_test=False, write_outputs=False)
    tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=1, **kw)
    orphan = _optuna_study(str(out)).ask()
    monkeypatch.setattr(tuning.worker, "ORPHAN_SECONDS", 0.0)
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(out), n_trials=2, **kw)
    assert res.n_complete == 2
    study = _optuna_study(str(out))
    assert study.trials[orphan.number].state.name == "FAIL"
    assert study.user_attrs[f"failed_reason:{orphan.number}"] == "worker process died"


# ---- Optuna public API, study patience, warm start --------------------------------------------------
def test_only_optunas_public_api_is_used():
    root = Path(tuning.__file__).parent
    text = "\n".join(p.read_text() for p in root.glob("*.py"))
    for private in ("._storage", "._trial_id", "storages._heartbeat", "._study_id", "RandomSampler"):
        assert private not in text, private


def test_patience_rule_on_known_histories():
    from deformcast.algorithms.learn.tuning.patience import stop_trial

    vals = [3.60, 3.59, 3.55, None, 3.56, 3.549, 3.54, 3.50, 3.51, None, 3.52, 3.505, 3.6]
    # 3.55 improves on 3.60 by > 0.5 %; 3.549/3.54 are within 0.5 % of 3.55; 3.50 improves again
    assert stop_trial(vals, 4) == (7, 3.54)
    assert stop_trial(vals, 5) == (13, 3.50)  # 3.50 improves (> 0.5 % below 3.54); 5 trials later it stops
    assert stop_trial(vals[:12], 5) == (12, 3.50)  # ran out of trials first
    assert stop_trial(vals, 0) == (13, 3.50)
    assert stop_trial([None, None, None], 2) == (3, float("inf"))  # never stops before a complete trial


def test_study_patience_stops_a_real_study(scene, tmp_path):
    kw = dict(top_k=1, seed=1, search_space=TINY_SPACE, max_epochs=1, max_samples=300, threads=1, pruner="none",
              evaluate_test=False, write_outputs=False)
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "p"), n_trials=30,
                           study_patience=2, min_improvement=0.5, **kw)
    # a 50 % improvement never happens after the first complete trial: the study stops after 1 + 2
    assert res.stopped_by_patience and res.worker.stopped_by_patience
    assert res.n_complete + res.n_pruned == 3
    study = _optuna_study(str(tmp_path / "p"))
    since, best = tuning.trials_since_improvement(study.get_trials(), 0.5)
    assert since == 2 and best == res.best_value
    # resuming a study that stopped adds no trial
    res2 = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "p"), n_trials=30,
                            study_patience=2, min_improvement=0.5, **kw)
    assert res2.worker.trials_run == 0 and res2.n_complete + res2.n_pruned == 3
    # patience waits for a full top-K ensemble: with top_k 5 the same rule stops after 5 complete trials
    res3 = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "p5"), n_trials=30,
                            study_patience=2, min_improvement=0.5, **dict(kw, top_k=5))
    assert res3.stopped_by_patience and res3.n_complete == 5 and len(res3.top) == 5


def test_a_trial_still_running_when_patience_stops_the_study_stops_at_its_next_epoch(scene, tmp_path):
    """Another worker's trial that is running when patience stops the study is pruned after its next
    epoch (it would otherwise train to its end for a study that asks no more); while the study has not
    stopped, or its top-K ensemble is not full, the same trial trains all its epochs."""
    import optuna

    from deformcast.algorithms.progress import Progress

    kw = dict(top_k=1, seed=1, search_space=TINY_SPACE, max_epochs=1, max_samples=300, threads=1, pruner="none",
              evaluate_test=False, write_outputs=False)
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "p"), n_trials=30,
                           study_patience=2, min_improvement=0.5, **kw)
    assert res.stopped_by_patience
    study = _optuna_study(str(tmp_path / "p"))
    data = tuning.DataCache(scene.observed, scene.dates, scene.grid, 2, seed=1, max_samples=300)
    space = tuning.build_search_space("lstm", TINY_SPACE, max_window=data.max_window())

    def run(rule):
        obj = tuning.make_objective(data, space, "lstm", scene.grid, str(tmp_path / "x"), seed=1, max_epochs=3,
                                    patience=3, device="cpu", threads=1, model_extra={}, study_stopped=rule)
        trial = study.ask()
        try:
            value = obj(trial, Progress())
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return None, trial.user_attrs
        study.tell(trial, value)
        return value, trial.user_attrs

    assert tuning.stop_rule(0, 0.5, 1) is None  # patience off: nothing stops a trial
    value, attrs = run(tuning.stop_rule(2, 0.5, 1))  # the rule of the run above: the study has stopped
    assert value is None and attrs["stopped_by_study"] and attrs["epochs_run"] == 1
    with open(tuning.write_trials_csv(study, str(tmp_path / "trials.csv")), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[-1]["state"] == "PRUNED" and rows[-1]["note"] == "stopped with the study (STUDY_PATIENCE)"
    value, attrs = run(tuning.stop_rule(2, 0.5, 10))  # the top-10 ensemble is not full: the trial runs on
    assert value is not None and attrs["epochs_run"] == 3 and "stopped_by_study" not in attrs
    value, attrs = run(tuning.stop_rule(50, 0.5, 1))  # patience not reached
    assert value is not None and attrs["epochs_run"] == 3


def test_a_trial_is_never_pruned_after_its_last_epoch(scene, tmp_path):
    """A pruner that prunes every value stops a 3-epoch trial after its first epoch, but a trial whose
    first epoch is its last completes: its model is trained by then (pruning it threw the work away)."""
    import optuna

    from deformcast.algorithms.progress import Progress

    data = tuning.DataCache(scene.observed, scene.dates, scene.grid, 2, seed=1, max_samples=300)
    space = tuning.build_search_space("lstm", TINY_SPACE, max_window=data.max_window())
    # the pruner prunes every value; or the study has stopped (patience) when the epoch ends
    cases = [(optuna.pruners.ThresholdPruner(upper=0.0), None), (optuna.pruners.NopPruner(), lambda st: True)]
    for (pruner, stopped), (epochs, pruned) in itertools.product(cases, ((3, True), (1, False))):
        study = optuna.create_study(pruner=pruner)
        obj = tuning.make_objective(data, space, "lstm", scene.grid, str(tmp_path / f"e{epochs}"), seed=1,
                                    max_epochs=epochs, patience=epochs, device="cpu", threads=1, model_extra={},
                                    study_stopped=stopped)
        trial = study.ask()
        if pruned:
            with pytest.raises(optuna.TrialPruned):
                obj(trial, Progress())
            assert trial.user_attrs["epochs_run"] == 1
        else:
            assert obj(trial, Progress()) > 0 and trial.user_attrs["epochs_run"] == 1


def test_sampler_and_warm_start(scene, tmp_path, monkeypatch):
    import optuna

    from deformcast.algorithms.learn.tuning import prior
    from deformcast.algorithms.progress import Progress

    p = tmp_path / "prior.json"
    p.write_text(json.dumps({"_source": "test", "lstm": [{"hidden": 8, "window": 5, "lr": 5.0},
                                                         {"hidden": 4, "window": 99}]}))
    space = tuning.build_search_space("lstm", TINY_SPACE, max_window=20)
    # lr 5.0 and window 99 lie outside the space: left out (sampled), the rest kept
    assert prior.prior_params("lstm", space, str(p)) == [{"hidden": 8, "window": 5}, {"hidden": 4}]
    monkeypatch.setattr(prior, "PRIOR_PATH", str(p))
    res = tuning.run_study(scene.observed, scene.dates, scene.grid, "lstm", 2, str(tmp_path / "w"), n_trials=3,
                           top_k=1, seed=1, search_space=TINY_SPACE, max_epochs=1, max_samples=300, threads=1,
                           pruner="none", evaluate_test=False, write_outputs=False, warm_start=True)
    assert res.n_complete == 3
    study = _optuna_study(str(tmp_path / "w"))
    t = study.trials
    assert t[0].user_attrs.get("hand_set_defaults") and t[1].user_attrs.get("warm_start")
    assert t[1].params["hidden"] == 8 and t[1].params["window"] == 5 and t[2].params["hidden"] == 4
    s, created = tuning.open_study(tuning.open_storage("", str(tmp_path / "x"))[0], "s", 5,
                                   tuning.make_pruner("none", 3), {"a": 1})
    assert created and isinstance(s.sampler, optuna.samplers.TPESampler)
    # an architecture the prior does not hold: said in the log, not a silent no-op
    logs = []
    tuning.run_study(scene.observed, scene.dates, scene.grid, "gru", 2, str(tmp_path / "g"), n_trials=1, top_k=1,
                     seed=1, search_space=TINY_SPACE, max_epochs=1, max_samples=300, threads=1, pruner="none",
                     evaluate_test=False, write_outputs=False, warm_start=True, progress=Progress(on_log=logs.append))
    assert any("prior holds no configuration of gru" in m for m in logs), logs


def test_shipped_prior_covers_the_default_architecture():
    """The shipped prior (prior.json) holds configurations of the default architecture inside its compact space."""
    from deformcast.algorithms import workflow
    from deformcast.algorithms.learn.tuning import prior
    from deformcast.algorithms.models import DEFAULT_ARCHITECTURE

    space = tuning.build_search_space(DEFAULT_ARCHITECTURE, workflow.COMPACT_SPACES[DEFAULT_ARCHITECTURE])
    got = prior.prior_params(DEFAULT_ARCHITECTURE, space)
    assert len(got) == 3 and all(set(p) == {k for k, d in space.items() if d.kind != "fixed"} for p in got)


def test_local_workers_share_the_study(tmp_path):
    """tune_job(local_workers=2): a second worker process joins the study; together they finish exactly
    N_TRIALS trials (none lost, none twice) and the worker process ends cleanly."""
    from deformcast.algorithms.data import synthetic

    files = synthetic.write_scene(str(tmp_path / "scene"), seed=3, width=16, height=16, n_epochs=40)
    out = tmp_path / "models"
    res = tuning.tune_job(files["stack"], str(out), "lstm", 2, n_trials=6, top_k=2, seed=7, search_space=TINY_SPACE,
                          max_epochs=3, patience=3, max_samples=300, pruner="none", gate=False, local_workers=2,
                          study_patience=0)
    study = _optuna_study(str(out))
    st = _states(study)
    assert st["COMPLETE"] == 6 and st.get("RUNNING", 0) == 0 and st.get("FAIL", 0) == 0
    numbers = [t.number for t in study.get_trials(deepcopy=False)]
    assert len(numbers) == len(set(numbers)) == 6
    log = (out / "worker_2.log").read_text()
    assert "worker finished:" in log, log[-2000:]
    ran_child = int(log.split("worker finished:")[1].split()[0])
    workers = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False)}
    assert len(workers) == (2 if ran_child else 1)
    assert res.worker.trials_run + ran_child == 6
    assert len(json.loads((out / "manifest.json").read_text())["members"]) == 2


def test_a_stuck_local_worker_is_terminated_after_the_grace_period():
    from deformcast.algorithms.learn.tuning import local_workers

    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    t0 = time.time()
    codes = local_workers.stop([p], wait=True, grace=1.0)
    assert time.time() - t0 < 20 and p.poll() is not None and codes == [p.returncode] and codes[0] != 0
