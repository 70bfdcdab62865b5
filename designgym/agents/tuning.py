"""Hyperparameter studies with Optuna (``designgym tune``).

A study tunes one algorithm on one env. Each trial takes settings from the search space
(:mod:`designgym.agents.search_spaces`) over the shipped ones, trains ``seeds_per_trial`` agents
for ``timesteps_per_trial`` steps each, and scores them by the mean return of the deterministic
policy on a fixed, seeded set of conditions, the same for every trial. During training the score
is reported ``n_evaluations`` times per seed to the pruner, which stops trials that fall behind.
The trial's value is the mean over its seeds of the last score.

Storage decides who shares a study:

- default: a SQLite file in the output folder (``<out>/study.db``); running the same command
  again resumes the study;
- ``--storage URL``: any SQLAlchemy URL, such as ``postgresql+psycopg2://user@host/db``; every
  ``designgym tune`` process on any machine given the same URL and ``--study-name`` works on the
  same study;
- ``--storage journal:PATH``: Optuna's journal file, for file systems where SQLite locks poorly
  (no heartbeats there: the trial of a killed process stays marked running).

On a database (SQLite or server) every running trial sends a heartbeat; a trial whose process
died (killed, machine lost) is marked failed by the next process that starts a trial, and queued
once more with the same settings. A trial that raises is recorded as failed and the study goes on.

The output folder holds what to look at:

- ``best_hyperparams.yml``: the best trial's settings in the format of the hyperparameter files,
  for ``designgym train --hyperparams`` and RL Baselines3 Zoo's ``-conf``; its ``n_timesteps`` is
  the budget of the settings searched under (shipped file, ``--hyperparams``, ``--params``), not
  ``timesteps_per_trial``;
- ``trials.csv`` and ``study.json``: every trial of the study (from every worker);
- ``optimization_history.png``, ``intermediate_values.png`` and ``param_importances.png``;
- ``tb/``: one TensorBoard run per trial and seed, with the trial's hyperparameters, so that
  TensorBoard's HParams tab compares trials;
- ``trials/``: the monitor CSVs of each trial's training episodes.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
from optuna.trial import TrialState
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from designgym.agents.algorithms import ALGORITHMS, check_device, make_model, normalize_kwargs
from designgym.agents.callbacks import DesignMetricsCallback, record_hparams
from designgym.agents.claims import STUDY_FILE, claim_study_folder
from designgym.agents.divergence import raise_if_diverged
from designgym.agents.files import plain
from designgym.agents.hyperparams import check_keys, check_types, resolve_settings, shipped_file
from designgym.agents.rollouts import rollout
from designgym.agents.search_spaces import Budget, search_space
from designgym.agents.study_results import best_trial, export_results, trial_counts
from designgym.agents.study_storage import (
    PRUNERS,
    SAMPLERS,
    display_url,
    make_pruner,
    make_sampler,
    open_storage,
    sqlalchemy_url,
)
from designgym.agents.training import VEC_ENVS, TrainConfig, make_training_vec_env
from designgym.envs.registration import env_reference

#: Seeds of the evaluation episodes start here (plus ``seed``), apart from every training seed.
EVAL_SEED = 10_000


@dataclass
class TuneConfig:
    """Options of a study (the ``designgym tune`` flags).

    Attributes:
        env, algo: what is tuned.
        n_trials: trials this process runs (``None``: until ``max_total_trials`` or ``timeout``).
        max_total_trials: stop once the study (all processes together) has this many finished
            (complete or pruned) trials.
        timeout: seconds after which this process starts no new trial.
        timesteps_per_trial: env steps of each agent a trial trains.
        n_evaluations: scores reported to the pruner per seed.
        eval_episodes: seeded episodes of each score.
        sampler: ``tpe``, ``random``, ``cmaes`` or ``gp``.
        pruner: ``median``, ``halving``, ``hyperband`` or ``none``.
        n_startup_trials: trials sampled at random, and not pruned, before the sampler and the
            median pruner use the study's history.
        storage: where the study lives (see the module's notes); default ``<out>/study.db``.
        study_name: default ``<Env>_<algo>``.
        seed: agents of a trial are seeded ``seed, seed + 1, ...``; the evaluation conditions too.
        seeds_per_trial: agents per trial (RL scores are noisy; the value is their mean).
        sampler_seed: seeds the sampler, mixed with the number of trials already in the study
            (so a resumed study does not repeat itself). Default: fresh per process, so that
            workers sharing a study do not all try the same settings first.
        out: output folder; default ``tuning/<study_name>``.
        n_envs, vec_env, device: as for training (``n_envs`` default: the hyperparameters').
        hyperparams_file, hyperparams: settings under the searched ones, as ``--hyperparams`` and
            ``--params`` of ``designgym train``.
        env_kwargs: arguments for ``gymnasium.make``.
        search_space: ``module:function`` to use instead of the registered space.
        heartbeat_interval: seconds between heartbeats of a running trial (database storage); a
            trial silent for twice as long is failed and retried.
        max_retry: times a trial of a dead process is queued again.
        threads: torch threads of this process. Default 1: the small policy networks gain nothing
            from more, and several workers on one machine would fight over the cores (two
            workers with torch's default threads on 2 cores ran 3x slower than with one each).
        export_only: run no trial; write the results of the study as the storage holds it (for a
            study whose workers finished at different times).
        progress: show a progress bar over trials.
    """

    env: str = "designgym/Extrusion-v2"
    algo: str = "ppo"
    n_trials: int | None = 10
    max_total_trials: int | None = None
    timeout: float | None = None
    timesteps_per_trial: int = 10_000
    n_evaluations: int = 4
    eval_episodes: int = 16
    sampler: str = "tpe"
    pruner: str = "median"
    n_startup_trials: int = 5
    storage: str | None = None
    study_name: str | None = None
    seed: int = 0
    seeds_per_trial: int = 1
    sampler_seed: int | None = None
    out: str | None = None
    n_envs: int | None = None
    vec_env: str = "dummy"
    device: str = "auto"
    hyperparams_file: str | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    search_space: str | None = None
    heartbeat_interval: int = 60
    max_retry: int = 1
    threads: int | None = 1
    export_only: bool = False
    progress: bool = False


@dataclass
class TuneResult:
    study_name: str
    storage: str
    out: Path
    counts: dict[str, int]
    this_process: dict[str, int]
    best: dict[str, Any] | None
    files: dict[str, str]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "out": str(self.out),
            "trials": self.counts,
            "this_process": self.this_process,
            "best": self.best,
            "files": self.files,
            "seconds": round(self.seconds, 2),
            "dashboard": f"optuna-dashboard {self.storage}",
            "tensorboard": f"tensorboard --logdir {self.out / 'tb'}",
        }


def check_config(config: TuneConfig) -> None:
    """Fill in the defaults and check every option, before anything is written."""
    config.env = env_reference(config.env)  # 'module:id' for a user's module, so later processes find it
    config.algo = config.algo.lower()
    if config.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algo!r}; choose one of {', '.join(ALGORITHMS)}")
    if config.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {config.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if config.pruner not in PRUNERS:
        raise ValueError(f"unknown pruner {config.pruner!r}; choose one of {', '.join(PRUNERS)}")
    if config.vec_env not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {config.vec_env!r}; choose one of {', '.join(VEC_ENVS)}")
    check_device(config.device)
    positive = {"timesteps_per_trial": config.timesteps_per_trial, "n_evaluations": config.n_evaluations,
                "eval_episodes": config.eval_episodes, "seeds_per_trial": config.seeds_per_trial,
                "heartbeat_interval": config.heartbeat_interval}
    for option in ("n_trials", "max_total_trials", "n_envs", "threads"):
        if getattr(config, option) is not None:
            positive[option] = getattr(config, option)
    for option, value in positive.items():
        if value < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if config.n_startup_trials < 0 or config.max_retry < 0:
        raise ValueError("--n-startup-trials and --max-retry must be >= 0")
    if config.n_trials is None and config.max_total_trials is None and config.timeout is None \
            and not config.export_only:
        raise ValueError("give --n-trials, --max-total-trials or --timeout, or the study never ends")
    if config.timesteps_per_trial < config.n_evaluations:
        raise ValueError(f"--timesteps-per-trial ({config.timesteps_per_trial}) must be at least "
                         f"--n-evaluations ({config.n_evaluations})")
    config.study_name = config.study_name or f"{config.env.split('/')[-1]}_{config.algo}"
    config.out = config.out or str(Path("tuning") / config.study_name)


def base_settings(config: TuneConfig) -> dict[str, Any]:
    """The settings under the searched ones: shipped file, ``--hyperparams`` file, ``--params``."""
    settings = resolve_settings(ALGORITHMS[config.algo], config.algo, config.env.rpartition(":")[2],
                                config.hyperparams_file, config.hyperparams)
    source = config.hyperparams_file or str(shipped_file(config.algo))
    normalize_kwargs(settings.get("normalize"), source)
    if config.n_envs is None:
        config.n_envs = int(settings.get("n_envs", 4))
    settings.pop("n_timesteps", None)
    settings["n_envs"] = config.n_envs
    return settings


class TrialEvaluation(BaseCallback):
    """Scores the agent every ``every`` env steps on the trial's fixed conditions, logs the score to
    TensorBoard, reports it to the trial at ``first_step + i`` and stops training when the pruner
    says so. Logs the trial's hyperparameters for TensorBoard's HParams tab at the start."""

    def __init__(self, trial: optuna.Trial, env: gym.Env, every: int, count: int, episodes: int, seed: int,
                 first_step: int, hparams: dict[str, Any]) -> None:
        super().__init__()
        self.trial, self.env, self.every, self.count = trial, env, int(every), int(count)
        self.episodes, self.seed, self.first_step, self.hparams = int(episodes), int(seed), first_step, hparams
        self.scores: list[float] = []
        self.pruned = False
        self._next = self.every

    def _on_training_start(self) -> None:
        record_hparams(self.logger, self.hparams, ("eval/mean_reward", "eval/feasible_rate", "trial/value"))

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next and len(self.scores) < self.count:
            self._next += self.every
            return self.evaluate()
        return True

    def evaluate(self) -> bool:
        """Score, log and report once; False when the trial is to be pruned."""
        normalizer = self.model.get_vec_normalize_env()

        def act(obs: Any) -> np.ndarray:
            if normalizer is not None:
                obs = normalizer.normalize_obs(obs)
            return self.model.predict(obs, deterministic=True)[0]

        summary = rollout(self.env, act, self.episodes, seed=self.seed)["summary"]
        score = summary["mean_return"]
        self.scores.append(score)
        self.logger.record("eval/mean_reward", score)
        self.logger.record("eval/feasible_rate", summary["feasible_rate"])
        self.logger.dump(self.num_timesteps)
        if not math.isfinite(score):
            return True  # reported as the trial's value, which Optuna records as a failure
        self.trial.report(score, self.first_step + len(self.scores) - 1)
        if self.trial.should_prune():
            self.pruned = True
            return False
        return True


class Objective:
    """One trial: sample settings, train and score ``seeds_per_trial`` agents, return their mean score."""

    def __init__(self, config: TuneConfig, base: dict[str, Any]) -> None:
        self.config, self.base = config, base
        self.space = search_space(config.algo, config.search_space)
        self.out = Path(config.out)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        if config.threads is not None:
            import torch

            torch.set_num_threads(config.threads)
        probe = gym.make(config.env, **config.env_kwargs)
        self.n_actions = int(np.prod(probe.action_space.shape))
        probe.close()
        self.budget = Budget(n_envs=config.n_envs, n_actions=self.n_actions, timesteps=config.timesteps_per_trial,
                             eval_every=max(1, config.timesteps_per_trial // config.n_evaluations))

    def sample(self, trial: optuna.Trial) -> tuple[dict[str, Any], dict[str, Any]]:
        """The settings the space samples for ``trial``, and the whole settings of its agents, checked."""
        algo = self.config.algo
        sampled = self.space(trial, self.budget)
        if not isinstance(sampled, dict):
            raise TypeError(f"the search space returned {type(sampled).__name__}, not a dict of settings")
        settings = {**self.base, **sampled}
        check_keys(settings, ALGORITHMS[algo], f"search space for {algo}")
        return sampled, check_types(settings, ALGORITHMS[algo], f"search space for {algo}")

    def dry_run(self) -> None:
        """Sample the space once in a throwaway study in memory: a space that returns no dict, or settings
        the algorithm cannot take, is said before a study or a folder is made (not as N failed trials)."""
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
        try:
            probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
            self.sample(probe.ask())
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"--search-space {self.config.search_space or self.config.algo}: "
                             f"{' '.join(str(exc).split())}") from None
        finally:
            optuna.logging.set_verbosity(verbosity)

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", self.worker)
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Optuna records the trial as failed and goes on; keep the reason with the trial.
            # One line (a torch error can print whole tensors), kept with the trial and printed by ``note``.
            trial.set_user_attr("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            raise
        except KeyboardInterrupt:
            # Optuna records the trial as failed and stops the study; the command exits with 130.
            trial.set_user_attr("error", "KeyboardInterrupt: interrupted (Ctrl-C) during the trial")
            raise

    def _run(self, trial: optuna.Trial) -> float:
        from stable_baselines3.common.logger import configure
        from stable_baselines3.common.vec_env import VecNormalize

        config = self.config
        sampled, settings = self.sample(trial)
        trial.set_user_attr("hyperparams", plain(sampled))
        name = f"trial_{trial.number:04d}"
        finals: list[float] = []
        for k in range(config.seeds_per_trial):
            seed = config.seed + k
            train_config = TrainConfig(env=config.env, algo=config.algo, timesteps=config.timesteps_per_trial,
                                       seed=seed, n_envs=config.n_envs, vec_env=config.vec_env,
                                       device=config.device, env_kwargs=config.env_kwargs)
            vec_env = make_training_vec_env(train_config, self.out / "trials" / name / f"monitor_s{seed}")
            eval_env = gym.make(config.env, **config.env_kwargs)
            logger = configure(str(self.out / "tb" / f"{name}_s{seed}"), ["tensorboard"])
            try:
                norm = normalize_kwargs(settings.get("normalize"))
                if norm is not None:
                    vec_env = VecNormalize(vec_env, **norm)
                model = make_model(train_config, vec_env, settings, tensorboard_log=None)
                model.set_logger(logger)
                hparams = {"trial": trial.number, "seed": seed, **settings}
                scorer = TrialEvaluation(trial, eval_env, self.budget.eval_every, config.n_evaluations,
                                         config.eval_episodes, EVAL_SEED + config.seed,
                                         first_step=k * config.n_evaluations, hparams=hparams)
                try:
                    model.learn(config.timesteps_per_trial, callback=CallbackList([DesignMetricsCallback(), scorer]))
                except Exception as exc:
                    raise_if_diverged(model, settings, exc)
                    raise
                if not scorer.pruned and len(scorer.scores) < config.n_evaluations:
                    scorer.evaluate()  # the run ended between two evaluation points
                logger.record("trial/value", scorer.scores[-1])
                logger.dump(model.num_timesteps)
            finally:
                logger.close()
                vec_env.close()
                eval_env.close()
            finals.append(scorer.scores[-1])
            trial.set_user_attr("seed_values", finals)
            if scorer.pruned:
                raise optuna.TrialPruned(f"pruned at seed {seed}, evaluation {len(scorer.scores)}")
        return float(np.mean(finals))


def tune(config: TuneConfig, argv: list[str] | None = None) -> TuneResult:
    """Run (or resume, or join) the study ``config`` describes; write its results to ``config.out``."""
    started = time.perf_counter()
    check_config(config)
    base = base_settings(config)
    objective = Objective(config, base)
    objective.dry_run()  # a bad --search-space fails before anything is written
    out = Path(config.out)
    made = [p for p in (out, *out.parents) if not p.exists()]  # the deepest first
    out.mkdir(parents=True, exist_ok=True)
    url = config.storage or f"sqlite:///{out / 'study.db'}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return _tune(config, objective, out, url, argv, started)
    except BaseException:
        if out in made and [p.name for p in out.iterdir()] == [STUDY_FILE]:
            (out / STUDY_FILE).unlink()  # only this run's claim is in the folder it made
        for folder in made:  # a study that never started (a storage out of reach) leaves no empty folders
            try:
                folder.rmdir()
            except OSError:  # not empty: something of the study's is in it, and stays
                break
        raise
    finally:
        optuna.logging.set_verbosity(verbosity)


def _tune(config: TuneConfig, objective: Objective, out: Path, url: str, argv: list[str] | None,
          started: float) -> TuneResult:
    claim_study_folder(out, config.study_name, display_url(url))
    storage = open_storage(url, config.heartbeat_interval, config.max_retry)
    reports = config.n_evaluations * config.seeds_per_trial
    study = optuna.create_study(
        storage=storage, study_name=config.study_name, direction="maximize", load_if_exists=True,
        pruner=make_pruner(config.pruner, config.n_startup_trials, reports),
    )
    _check_study(study, config)
    existing = len(study.trials)
    entropy = config.sampler_seed if config.sampler_seed is not None else int.from_bytes(os.urandom(4), "little")
    sampler_seed = int(np.random.SeedSequence([entropy, existing]).generate_state(1)[0])
    study.sampler = make_sampler(config.sampler, sampler_seed, config.n_startup_trials)
    if argv is not None:
        with open(out / "commands.txt", "a") as handle:
            handle.write(" ".join(argv) + "\n")

    mine: list[int] = []

    def note(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        mine.append(trial.number)
        if not config.progress or trial.state == TrialState.FAIL:  # a failure is said even under the bar
            scores = len(trial.intermediate_values)
            if trial.state == TrialState.COMPLETE:
                line = f"value {trial.value:.4g}"
            elif trial.state == TrialState.PRUNED:
                line = f"pruned after {scores} of {reports} score(s)"
            else:
                line = f"failed ({trial.user_attrs.get('error', 'see above')})"
            print(f"trial {trial.number}: {line}", file=sys.stderr, flush=True)

    callbacks = [note]
    remaining = config.n_trials
    if config.max_total_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(config.max_total_trials,
                                                        states=(TrialState.COMPLETE, TrialState.PRUNED)))
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        left = max(0, config.max_total_trials - done)
        remaining = left if remaining is None else min(remaining, left)
    if config.export_only:
        remaining = 0
    quiet = _TrialFailureFilter()
    optuna.logging.get_logger("optuna.study._optimize").addFilter(quiet)
    try:
        if remaining != 0:
            study.optimize(objective, n_trials=remaining, timeout=config.timeout, callbacks=callbacks,
                           catch=(Exception,), show_progress_bar=config.progress and remaining is not None)
    finally:
        optuna.logging.get_logger("optuna.study._optimize").removeFilter(quiet)
        # Also after Ctrl-C: the results so far are written before the command exits.
        files = export_results(study, config, display_url(url), objective.base)
    trials = study.get_trials(deepcopy=False)
    counts = trial_counts(trials)
    this_process = trial_counts([t for t in trials if t.number in mine])
    failed = [t for t in trials if t.number in mine and t.state == TrialState.FAIL]
    if mine and len(failed) == len(mine):
        reason = failed[0].user_attrs.get("error", "see the warnings above")
        raise RuntimeError(f"every trial of this run failed; the first: {reason}")
    # With the driver it was opened with: `optuna-dashboard <storage>` then opens the same study.
    return TuneResult(config.study_name, display_url(sqlalchemy_url(url)), out, counts, this_process,
                      best_trial(study), files, time.perf_counter() - started)


class _TrialFailureFilter(logging.Filter):
    """Optuna logs a failed trial as a warning with the whole traceback (15-50 lines); the study goes on,
    and the trial's own line (``trial N: failed (reason)``) says what failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Trial ") and " failed " in message)


def _check_study(study: optuna.Study, config: TuneConfig) -> None:
    """A study joined by name must be the same task; its settings are recorded when it is made."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {config.study_name!r} minimises; it was not made by designgym tune. "
                         "Choose another --study-name")
    task = {"env": config.env, "algo": config.algo, "timesteps_per_trial": config.timesteps_per_trial,
            "n_evaluations": config.n_evaluations, "seeds_per_trial": config.seeds_per_trial,
            "eval_episodes": config.eval_episodes, "seed": config.seed, "env_kwargs": config.env_kwargs}
    recorded = study.user_attrs.get("designgym")
    if recorded is None:
        study.set_user_attr("designgym", plain(task))
        return
    for key in ("env", "algo"):
        if recorded.get(key) != task[key]:
            raise ValueError(f"study {config.study_name!r} tunes {recorded.get('algo')} on {recorded.get('env')}, "
                             f"not {config.algo} on {config.env}; choose another --study-name")
    changed = sorted(k for k in task if k in recorded and plain(task[k]) != recorded[k])
    if changed:
        raise ValueError(
            f"study {config.study_name!r} scores trials with "
            + ", ".join(f"{k}={recorded[k]!r}" for k in changed)
            + "; scores made otherwise would not compare. Use the same settings, or another --study-name"
        )
