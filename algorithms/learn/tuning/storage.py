"""Where a study lives: a journal file (default) or a database, credentials kept out of the logs.

Only Optuna's documented storage classes and options are used: ``JournalStorage`` with a
``JournalFileBackend`` for files, ``RDBStorage(url, heartbeat_interval=..., grace_period=...,
heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(...))`` for databases. With an
RDB storage ``study.optimize`` records a heartbeat per running trial and, before each trial,
fails the trials whose worker went silent for ``grace_period`` (``optuna.storages.fail_stale_trials``);
the callback puts such a trial back into the queue (WAITING, same parameters) once, so a worker
killed on another machine costs its trial's time but loses no configuration.
"""
from __future__ import annotations

import os
import time
from typing import Optional, Tuple

from ...errors import DeformCastError

JOURNAL_NAME = "study.journal"
#: RDB heartbeat: every running trial writes one every HEARTBEAT_SECONDS; a trial silent for
#: GRACE_SECONDS is failed (and retried once) by the next worker that starts a trial
HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
STALE_RETRIES = 1
#: environment variable holding the password of a database STORAGE (so it never is a parameter:
#: QGIS prints every parameter in the run log)
PASSWORD_ENV = "DEFORMCAST_STORAGE_PASSWORD"
#: pgpass-style file (``host:port:database:user:password`` per line, ``*`` matches anything); else
#: PGPASSFILE, else ~/.pgpass
PGPASS_ENV = "DEFORMCAST_PGPASS"
RDB_SCHEMES = ("postgresql", "mysql", "sqlite", "oracle", "mssql")


def quiet_optuna():
    """The ``optuna`` module with its logging at WARNING and experimental warnings silenced."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def rdb_storage(url: str, heartbeat_interval: int = HEARTBEAT_SECONDS, grace_period: int = GRACE_SECONDS):
    """An ``optuna.storages.RDBStorage`` with heartbeat and a one-time retry of stale trials."""
    optuna = quiet_optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    kw = {}
    if not url.startswith("sqlite"):
        # a connection dropped by a server restart or a firewall is replaced, not reported as an error
        kw["engine_kwargs"] = {"pool_pre_ping": True}
    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=int(heartbeat_interval), grace_period=int(grace_period),
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=STALE_RETRIES), **kw)
        except ImportError:
            raise
        except Exception as e:  # noqa: BLE001
            # workers started together on an empty database race to create Optuna's tables; the
            # loser's CREATE fails on the winner's tables and succeeds (finds them) when retried
            if attempt == 2 or "already exists" not in str(e) and "duplicate key" not in str(e):
                raise
            time.sleep(0.5 + attempt)


def open_storage(storage: Optional[str], output_folder: str):
    """``(storage object, description)`` for ``STORAGE`` (empty: journal file in the folder).

    The description is safe to log: a database URL's password is masked."""
    quiet_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    s = (storage or "").strip()
    if not s:
        os.makedirs(output_folder, exist_ok=True)
        s = os.path.join(output_folder, JOURNAL_NAME)
    if "://" in s:
        if not s.split("://", 1)[0].split("+", 1)[0] in RDB_SCHEMES:
            raise DeformCastError(
                f"STORAGE '{mask_url(s)}' is not a database URL Optuna knows. Give postgresql://user@host/db, "
                "mysql+pymysql://user@host/db, sqlite:///path/to/file.db, a journal file path, "
                "or leave it empty for a journal file in OUTPUT_FOLDER.")
        full, secret = storage_url(s)
        masked = mask_url(s)

        def clean(text) -> str:
            t = str(text).strip().splitlines()[0] if str(text).strip() else type(text).__name__
            return t.replace(secret, "***") if secret else t

        try:
            st = rdb_storage(full)
        except ImportError as e:
            raise DeformCastError(
                f"STORAGE '{masked}' needs a database driver that is not installed ({clean(e)}). Install it "
                "(e.g. python3 -m pip install psycopg2-binary or pymysql) or use a journal file.") from None
        except Exception as e:  # noqa: BLE001 - database errors come in many types
            raise DeformCastError(
                f"Cannot open the Optuna storage '{masked}': {clean(e)}. Check the URL, the password (environment "
                f"variable {PASSWORD_ENV} or a pgpass file), that the database server is reachable and the "
                "database exists.") from None
        return st, masked
    path = os.path.abspath(s)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        raise DeformCastError(f"STORAGE: the folder of '{path}' does not exist. Create it or choose another path.")
    try:
        backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        return JournalStorage(backend), path
    except Exception as e:  # noqa: BLE001
        raise DeformCastError(f"Cannot open the journal file '{path}' as an Optuna study storage: {e}. "
                              "Use a new OUTPUT_FOLDER or delete the damaged file.") from None


def _pgpass_lookup(path: str, host: str, port: str, database: str, user: str) -> Optional[str]:
    """The password of the first matching line of a pgpass-style file (libpq's rules)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    for ln in lines:
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        fields, cur, esc = [], "", False
        for ch in ln:
            if esc:
                cur += ch
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == ":" and len(fields) < 4:
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        if len(fields) != 5:
            continue
        want = (host, port, database, user)
        if all(f == "*" or f == w for f, w in zip(fields[:4], want)):
            return fields[4]
    return None


def storage_url(url: str) -> Tuple[str, str]:
    """``(URL to connect with, password)`` of a database STORAGE URL.

    A URL without a password takes it from the environment variable ``DEFORMCAST_STORAGE_PASSWORD``,
    else from a pgpass-style file (``DEFORMCAST_PGPASS``, ``PGPASSFILE`` or ``~/.pgpass``; lines
    ``host:port:database:user:password``). A URL with a password still works but is warned about:
    QGIS prints every parameter, so the password would be in the run log.
    """
    if url.startswith("sqlite"):
        return url, ""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
    except Exception:  # noqa: BLE001 - let the storage report a malformed URL
        return url, ""
    if u.password:
        from ...errors import warn

        warn("The STORAGE URL contains a password, and QGIS prints every parameter in the run log. Give the URL "
             f"without it (e.g. {u.drivername}://{u.username}@{u.host}/{u.database}) and put the password in the "
             f"environment variable {PASSWORD_ENV} or in a pgpass-style file (~/.pgpass, or the file named by "
             f"{PGPASS_ENV}: host:port:database:user:password).")
        return url, str(u.password)
    pw = os.environ.get(PASSWORD_ENV) or None
    if pw is None and u.username:
        default_port = {"postgresql": 5432, "mysql": 3306}.get(u.drivername.split("+", 1)[0], 0)
        for path in (os.environ.get(PGPASS_ENV), os.environ.get("PGPASSFILE"), os.path.expanduser("~/.pgpass")):
            if path and os.path.isfile(path):
                pw = _pgpass_lookup(path, u.host or "localhost", str(u.port or default_port), u.database or "",
                                    u.username)
                if pw is not None:
                    break
    if pw is None:
        return url, ""
    return u.set(password=pw).render_as_string(hide_password=False), pw


def mask_url(url: str) -> str:
    """A database URL with its password hidden (for logs and reports)."""
    if "://" not in url or "@" not in url:
        return url
    head, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{head}://{user}:***@{host}"


_mask = mask_url  # the name older code imports
