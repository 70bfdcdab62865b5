"""Where a study lives and how it is steered: Optuna storages, samplers and pruners.

``open_storage`` turns ``designgym tune --storage`` into an Optuna storage: ``journal:PATH`` for
Optuna's journal file, any SQLAlchemy URL otherwise (SQLite by default, PostgreSQL to share a
study across machines), with heartbeats so that the trial of a dead process is retried.

A URL without a driver (``postgresql://``, Heroku's ``postgres://``, ``mysql://``) gets the driver that
is installed, since SQLAlchemy's own default (psycopg 3 for PostgreSQL since SQLAlchemy 2.1) may not be.
"""

from __future__ import annotations

import importlib
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("median", "halving", "hyperband", "none")
#: Words of the errors a process gets when another one creates the storage's tables at the same time.
_CREATION_RACE = ("already exists", "duplicate key", "unique constraint")
#: Other spellings of a dialect that users type; SQLAlchemy knows only the second.
_DIALECT_ALIASES = {"postgres": "postgresql"}
#: (dialect, driver) -> (module the driver imports, what it is called, how to install it).
_DRIVERS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("postgresql", "psycopg2"): ("psycopg2", "psycopg2",
                                 "pip install 'designgym[postgres]' (or pip install psycopg2-binary)"),
    ("postgresql", "psycopg"): ("psycopg", "psycopg (version 3)", "pip install 'psycopg[binary]'"),
    ("postgresql", "pg8000"): ("pg8000", "pg8000", "pip install pg8000"),
    ("mysql", "mysqldb"): ("MySQLdb", "mysqlclient", "pip install mysqlclient"),
    ("mysql", "pymysql"): ("pymysql", "PyMySQL", "pip install pymysql"),
    ("mysql", "mysqlconnector"): ("mysql.connector", "mysql-connector-python", "pip install mysql-connector-python"),
}
#: dialect -> (its name, the drivers tried in this order for a URL that names none, the fix when none is).
#: psycopg2 comes first because the ``postgres`` extra installs it; SQLAlchemy's own default comes first
#: for MySQL, but PyMySQL is the one to suggest, as it needs no compiler.
_DIALECTS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "postgresql": ("PostgreSQL", ("psycopg2", "psycopg"), "pip install 'designgym[postgres]'"),
    "mysql": ("MySQL", ("mysqldb", "pymysql"), "pip install pymysql"),
}


def display_url(url: str) -> str:
    """The storage URL with any password hidden."""
    if url.startswith("journal:"):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _importable(module: str) -> bool:
    # Importing, not just finding, the module: psycopg 3 without its C library is found yet fails to import.
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def sqlalchemy_url(url: str) -> str:
    """``url`` as SQLAlchemy should get it: a URL that names no driver gets the installed one (psycopg2,
    else psycopg 3, for PostgreSQL), ``postgres://`` becomes ``postgresql://``, and a URL that names a
    driver keeps it. A driver that is not installed is a one-line error naming it and how to install it."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    dialect, _, driver = scheme.partition("+")
    dialect = _DIALECT_ALIASES.get(dialect, dialect)
    shown = display_url(url)
    if dialect not in _DIALECTS:
        return f"{dialect}+{driver}://{rest}" if driver else f"{dialect}://{rest}"
    dialect_name, candidates, fix = _DIALECTS[dialect]
    if not driver:
        installed = next((c for c in candidates if _importable(_DRIVERS[dialect, c][0])), None)
        if installed:
            return f"{dialect}+{installed}://{rest}"
        names = " or ".join(_DRIVERS[dialect, c][1] for c in candidates)
        raise RuntimeError(f"storage {shown} needs a {dialect_name} driver and none is installed ({names}); {fix}")
    if (dialect, driver) in _DRIVERS and not _importable(_DRIVERS[dialect, driver][0]):
        _, name, install = _DRIVERS[dialect, driver]
        other = next((c for c in candidates if c != driver and _importable(_DRIVERS[dialect, c][0])), None)
        instead = f", or write {dialect}:// to use the installed {_DRIVERS[dialect, other][1]}" if other else ""
        raise RuntimeError(f"storage {shown} names the driver {name}, which is not installed; {install}{instead}")
    return f"{dialect}+{driver}://{rest}"


def open_storage(url: str, heartbeat_interval: int = 60, max_retry: int = 1) -> optuna.storages.BaseStorage:
    """The Optuna storage behind ``url`` (``journal:PATH`` or a SQLAlchemy URL), with heartbeats and
    retries of dead trials on databases. A storage that cannot be reached is a clear error."""
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):])
        if not path.parent.exists():
            raise FileNotFoundError(f"storage {url}: folder {path.parent} does not exist; create it first")
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1] if "///" in url else ""
        if database and database != ":memory:" and not Path(database).parent.exists():
            raise FileNotFoundError(f"storage {url}: folder {Path(database).parent} does not exist; create it first")
        # Several processes may share the file; wait for each other's writes instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    shown = display_url(url)
    database_url = sqlalchemy_url(url)
    # Optuna >= 4.9 names the retry callback for what it does; older releases have the first name.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                return optuna.storages.RDBStorage(
                    database_url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=retry(max_retry=max_retry),
                )
        except ImportError as exc:
            # Optuna hides the module that failed behind its own ImportError; the cause names it.
            cause = exc.__cause__ or exc
            missing = getattr(cause, "name", None)
            problem = f"the module {missing!r} is not installed; pip install {missing.split('.')[0]}" if missing \
                else f"{' '.join(str(cause).split())}; reinstall the driver"
            raise RuntimeError(f"storage {shown} cannot load its database driver: {problem}") from None
        except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError...
            # The server's own words, on one line: psycopg2 adds a hint line and pads "FATAL:  ...".
            reason = " ".join((str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0].split())
            if attempt < 4 and any(word in reason.lower() for word in _CREATION_RACE):
                # Workers started together race to create the tables; the loser finds them made.
                time.sleep(0.2 * (attempt + 1))
                continue
            raise RuntimeError(
                f"cannot open the study storage {shown}: {reason}; check the URL, that the database server "
                "is running and reachable, and the user's rights"
            ) from None
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed)
        # Categorical settings (network size, activation) are sampled by TPE beside these two.
        fallback = optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(n_startup_trials=n_startup_trials, seed=seed,
                                                independent_sampler=fallback, warn_independent_sampling=False)
        return optuna.samplers.GPSampler(n_startup_trials=n_startup_trials, seed=seed,
                                         independent_sampler=fallback, warn_independent_sampling=False)


def make_pruner(name: str, n_startup_trials: int, steps: int) -> optuna.pruners.BasePruner:
    """``steps``: reports per trial (evaluations x seeds)."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=steps // 3)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps)
    return optuna.pruners.NopPruner()
