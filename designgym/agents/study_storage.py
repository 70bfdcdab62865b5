"""Where a study lives and how it is steered: Optuna storages, samplers and pruners.

``open_storage`` turns ``designgym tune --storage`` into an Optuna storage: ``journal:PATH`` for
Optuna's journal file, any SQLAlchemy URL otherwise (SQLite by default, PostgreSQL to share a
study across machines), with heartbeats so that the trial of a dead process is retried.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna

SAMPLERS = ("tpe", "random", "cmaes", "gp")
PRUNERS = ("median", "halving", "hyperband", "none")
#: Words of the errors a process gets when another one creates the storage's tables at the same time.
_CREATION_RACE = ("already exists", "duplicate key", "unique constraint")


def display_url(url: str) -> str:
    """The storage URL with any password hidden."""
    if url.startswith("journal:"):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


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
    # Optuna >= 4.9 names the retry callback for what it does; older releases have the first name.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.simplefilter("ignore", FutureWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=retry(max_retry=max_retry),
                )
        except ModuleNotFoundError as exc:
            raise RuntimeError(
                f"storage {shown} needs the database driver {exc.name!r}, which is not installed; "
                "for PostgreSQL: pip install 'designgym[postgres]'"
            ) from None
        except Exception as exc:  # sqlalchemy's OperationalError, ArgumentError...
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
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
