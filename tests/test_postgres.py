"""Tuning across machines on a real PostgreSQL server: two worker processes share one study.

The test starts its own server (Debian's ``postgresql`` package: ``initdb``/``pg_ctl`` in a
temporary folder, on a free local port) and is skipped only where those binaries are missing.
The two workers reach the server through the plugin's STORAGE URL without a password: one takes
it from ``DEFORMCAST_STORAGE_PASSWORD``, the other from a pgpass file (``DEFORMCAST_PGPASS``).
Each keeps its models in its own OUTPUT_FOLDER, as two machines would.
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

PKGROOT = Path(__file__).resolve().parents[1] / "build" / "pkgroot"
N_TRIALS = 6

WORKER = textwrap.dedent('''
    import os, sys, time, torch
    torch.set_num_threads(1)
    from deformcast.algorithms.data import synthetic
    from deformcast.algorithms.learn import tuning
    url, out, me, other = sys.argv[1:5]
    sc = synthetic.make_scene(seed=3, width=16, height=16, n_epochs=40)
    open(me, "w").close()              # ready: both workers start their study together
    t0 = time.time()
    while not os.path.exists(other) and time.time() - t0 < 60:
        time.sleep(0.05)
    space = {"samples_per_epoch": 512, "hidden": [4, 8], "layers": 1, "batch_size": 64,
             "window": {"low": 4, "high": 8}}
    r = tuning.run_study(sc.observed, sc.dates, sc.grid, "lstm", 2, out, n_trials=int(sys.argv[5]),
                         top_k=int(sys.argv[5]), seed=7, storage=url, search_space=space, max_epochs=3,
                         patience=3, max_samples=512, threads=1, pruner="none")
    print("RAN", r.worker.trials_run, "STUDY", r.study_name, "STORAGE", r.storage, flush=True)
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """``(host, port, user, database, password)`` of a PostgreSQL server started for this module."""
    tools = {n: shutil.which(n) for n in ("initdb", "pg_ctl")}
    if not all(tools.values()):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH; install Debian's "
                    "'postgresql' package (scripts/setup.sh does) to run the multi-worker database test.")
    import psycopg2  # the driver Optuna's RDB storage needs (Debian python3-psycopg2; scripts/setup.sh)

    root = tempfile.mkdtemp(prefix="dc-pg-")
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the 'postgres' user
        import pwd

        pw_ent = pwd.getpwnam("postgres")
        os.chown(root, pw_ent.pw_uid, pw_ent.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(12)
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as fh:
        fh.write(password + "\n")
    if as_user:
        os.chown(pwfile, pw_ent.pw_uid, pw_ent.pw_gid)
    os.chmod(pwfile, 0o600)
    data, port, user = os.path.join(root, "data"), _free_port(), "deformcast"
    run = dict(check=True, capture_output=True, text=True, timeout=60)
    subprocess.run(as_user + [tools["initdb"], "-D", data, "-U", user, "--auth=scram-sha-256",
                              f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"], **run)
    os.remove(pwfile)
    subprocess.run(as_user + [tools["pg_ctl"], "-D", data, "-l", os.path.join(root, "server.log"), "-w", "-t", "30",
                              "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   **run)
    try:
        con = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE optuna")
        con.close()
        yield "127.0.0.1", port, user, "optuna", password
    finally:
        subprocess.run(as_user + [tools["pg_ctl"], "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_postgres_study(postgres, tmp_path):
    import optuna

    from deformcast.algorithms.learn import tuning

    host, port, user, db, password = postgres
    url = f"postgresql://{user}@{host}:{port}/{db}"  # no password in the parameter
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{host}:{port}:{db}:{user}:{password}\n")
    pgpass.chmod(0o600)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    base = {k: v for k, v in os.environ.items() if k not in (tuning.PASSWORD_ENV, tuning.PGPASS_ENV)}
    base["PYTHONPATH"] = str(PKGROOT) + os.pathsep + base.get("PYTHONPATH", "")
    envs = [dict(base, **{tuning.PASSWORD_ENV: password}), dict(base, **{tuning.PGPASS_ENV: str(pgpass)})]
    outs = [tmp_path / "machine_a", tmp_path / "machine_b"]
    ready = [tmp_path / "ready_a", tmp_path / "ready_b"]
    t0 = time.time()
    procs = [subprocess.Popen([sys.executable, str(script), url, str(outs[i]), str(ready[i]), str(ready[1 - i]),
                               str(N_TRIALS)], env=envs[i], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    res = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, res):
        assert p.returncode == 0, se[-3000:]
    seconds = time.time() - t0

    # one study in the database: exactly N_TRIALS finished trials between the two workers
    names = {so.split("STUDY ")[1].split()[0] for so, _ in res}
    assert len(names) == 1
    storage = tuning.storage.rdb_storage(f"postgresql://{user}:{password}@{host}:{port}/{db}")
    study = optuna.load_study(study_name=names.pop(), storage=storage)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == N_TRIALS
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    assert all(t.user_attrs.get("surplus") for t in trials if t.state.name == "FAIL")
    ran = [int(so.split("RAN ")[1].split()[0]) for so, _ in res]
    assert sum(ran) == N_TRIALS and min(ran) >= 1, ran  # both took part, no trial lost or run twice
    pids = {f"{socket.gethostname()}:{p.pid}" for p in procs}
    by_worker = {}
    for t in finished:
        assert t.user_attrs["worker"] in pids
        by_worker.setdefault(t.user_attrs["worker"], set()).add(t.number)
    # every finished trial's model lives in exactly one machine's output folder (top_k = N_TRIALS)
    folders = [{int(p.name) for p in (o / "studies").glob("*/trials/*")} for o in outs]
    assert not folders[0] & folders[1]
    assert folders[0] | folders[1] == {t.number for t in finished if t.state.name == "COMPLETE"}
    # distinct parameters: the two samplers never replayed each other's proposals
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == N_TRIALS

    # the password is never echoed: not in the logs, not in any file the workers wrote
    for so, se in res:
        assert password not in so and password not in se
        assert f"STORAGE postgresql://{user}:***@{host}:{port}/{db}" in so  # what logs and reports show
    for o in outs:
        for f in o.rglob("*"):
            if f.is_file():
                assert password.encode() not in f.read_bytes(), f
    assert password not in json.dumps(study.user_attrs, default=str)
    assert seconds < 120, f"two workers took {seconds:.0f} s"


def test_password_in_url_is_masked_and_bad_password_is_clear(postgres, tmp_path, monkeypatch):
    from deformcast.algorithms.learn import tuning
    from deformcast.algorithms.errors import DeformCastError

    host, port, user, db, password = postgres
    monkeypatch.delenv(tuning.PASSWORD_ENV, raising=False)
    monkeypatch.setenv(tuning.PGPASS_ENV, str(tmp_path / "none"))
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.warns(Warning, match="contains a password"):
        st, desc = tuning.open_storage(f"postgresql://{user}:{password}@{host}:{port}/{db}", str(tmp_path))
    assert password not in desc and "***" in desc
    wrong = "not-the-password"
    monkeypatch.setenv(tuning.PASSWORD_ENV, wrong)
    with pytest.raises(DeformCastError) as e:
        tuning.open_storage(f"postgresql://{user}@{host}:{port}/{db}", str(tmp_path))
    assert tuning.PASSWORD_ENV in str(e.value) and wrong not in str(e.value) and password not in str(e.value)
