"""Training a Stable-Baselines3 agent on a design environment, into a self-describing run folder.

A run folder holds everything needed to understand and reuse the run:

- ``model.zip``: the trained agent (``stable_baselines3.<ALGO>.load``);
- ``best_model.zip`` and ``evaluations.npz``: the best agent of the periodic evaluations, and
  their returns (SB3's ``EvalCallback`` format);
- ``checkpoints/``: the agent every ``save_freq`` steps (with the replay buffer and the
  normalisation statistics), from which ``--resume`` continues;
- ``vecnormalize.npz``: observation/reward normalisation statistics, when ``normalize`` is set;
- ``config.json`` and ``command.txt``: the resolved settings (hyperparameters included) and the
  exact command;
- ``monitor/``: SB3 monitor CSVs of every training episode;
- ``tb/``: TensorBoard event files (episode return, reward parts, objectives, violations);
- ``metrics.json``: the trained policy against a random policy on the same seeded conditions;
- ``learning_curve.png`` and ``designs.png``: the pictures to look at first.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO  # noqa: F401  (``training.PPO``, as before the split)
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from designgym.agents.algorithms import (
    ALGORITHMS,
    DEFAULT_HYPERPARAMS,  # noqa: F401  (imported from here before the split)
    FALLBACK_N_ENVS,
    FALLBACK_TIMESTEPS,
    check_device,
    make_model,
    normalize_kwargs,
)
from designgym.agents.callbacks import (
    AtomicEvalCallback,
    DesignImagesCallback,
    DesignMetricsCallback,
    restore_evaluations,
)
from designgym.agents.checkpoints import (
    CheckpointSaver,
    checkpoint_companion,
    restore_checkpoint_buffer,
    resume_checkpoint,
)
from designgym.agents.claims import claim_new_run_folder, claim_run_folder, refuse_files_in_the_way
from designgym.agents.divergence import raise_if_diverged
from designgym.agents.files import (
    atomic_path,  # noqa: F401  (imported from here before the split)
    load_normalizer,
    plain_or_legacy,
    save_model_atomic,
    save_normalizer_atomic,
    write_json,
    write_text_atomic,
)
from designgym.agents.hyperparams import algorithm_kwargs, resolve_settings, shipped_file
from designgym.agents.interrupts import (
    TrainingInterrupted,
    close_after_interrupt,
    signals_held,
    termination_as_interrupt,
)
from designgym.agents.rollouts import rollout
from designgym.envs.registration import env_reference


@dataclass
class TrainConfig:
    """Options of one training run (the ``designgym train`` flags).

    Attributes:
        env: registered env id (``designgym/Extrusion-v2``; the namespace may be left out).
        algo: one of :data:`~designgym.agents.algorithms.ALGORITHMS`.
        timesteps: environment steps to train for (default: the hyperparameters' ``n_timesteps``).
        seed: seeds the agent, the envs and the evaluation conditions.
        n_envs: environments stepped together (default: the hyperparameters' ``n_envs``).
        vec_env: how they are stepped: ``dummy`` (one by one, SB3's ``DummyVecEnv``), ``subproc``
            (one process each, ``SubprocVecEnv``) or ``batched`` (:class:`BatchedDesignVecEnv`: one
            generator pass and one batched evaluation per step for all of them).
        device: torch device of the agent: ``auto``, ``cpu`` or ``cuda``.
        hyperparams_file: a YAML file in the Zoo format read over the shipped one
            (:mod:`designgym.agents.hyperparams`).
        hyperparams: settings over both (the ``--params`` flags).
        env_kwargs: arguments for ``gymnasium.make`` (``action_mode``, ``violation_weights``...).
        out: folder under which the run folder is made.
        run_name: name of the run folder; default ``<Env>_<algo>_s<seed>_<time>``.
        eval_episodes: seeded episodes of each periodic evaluation and of the final comparison
            with a random policy.
        eval_freq: env steps between periodic evaluations (0: none; default: a tenth of the run).
        save_freq: env steps between checkpoints (0: none; default: a tenth of the run).
        tensorboard_log: where TensorBoard events go (default: ``<run folder>/tb``).
        progress: show a progress bar.
        threads: torch threads of the training process (``None``: torch's default, one per core).
            One is often fastest for small policy networks, and on a machine that other busy
            processes share: each extra thread then waits for a core.
    """

    env: str = "designgym/Extrusion-v2"
    algo: str = "ppo"
    timesteps: int | None = None
    seed: int = 0
    n_envs: int | None = None
    vec_env: str = "dummy"
    device: str = "auto"
    hyperparams_file: str | None = None
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    out: str = "runs"
    run_name: str | None = None
    eval_episodes: int = 32
    eval_freq: int | None = None
    save_freq: int | None = None
    tensorboard_log: str | None = None
    progress: bool = False
    threads: int | None = None


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    metrics: dict[str, Any]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model": str(self.model_path),
            "seconds": round(self.seconds, 2),
            "metrics": self.metrics,
            "pictures": {
                "designs": str(self.run_dir / "designs.png"),
                "learning_curve": str(self.run_dir / "learning_curve.png"),
            },
            "tensorboard": str(self.run_dir / "tb"),
        }


VEC_ENVS = ("dummy", "subproc", "batched")


def make_training_vec_env(config: TrainConfig, monitor_dir: Path, append: bool = False) -> VecEnv:
    """The envs of a run, seeded ``seed + i``, writing monitor CSVs (return, length, feasible) to ``monitor_dir``.

    With ``append`` (a resumed run) the monitor files of the earlier part are kept and added to.
    """
    monitor_dir.mkdir(parents=True, exist_ok=True)
    if config.vec_env == "batched":
        from designgym.envs.vector import make_batched_vec_env

        batched = make_batched_vec_env(config.env, n_envs=config.n_envs, seed=config.seed, env_kwargs=config.env_kwargs)
        name = "batched" if not append else f"batched-resumed-{time.strftime('%Y%m%d-%H%M%S')}"
        return VecMonitor(batched, filename=str(monitor_dir / name), info_keywords=("feasible",))
    return make_vec_env(
        # A picklable maker that imports designgym, so SubprocVecEnv workers know the env ids too.
        partial(_make_worker_env if config.vec_env == "subproc" else _make_registered_env, config.env),
        n_envs=config.n_envs,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
        monitor_dir=str(monitor_dir),
        monitor_kwargs={"info_keywords": ("feasible",), "override_existing": not append},
        vec_env_cls=SubprocVecEnv if config.vec_env == "subproc" else DummyVecEnv,
    )


def _make_registered_env(env_id: str, **kwargs: Any) -> gym.Env:
    return gym.make(env_id, **kwargs)


def _make_worker_env(env_id: str, **kwargs: Any) -> gym.Env:
    """The env of a SubprocVecEnv worker, which is where this runs. Ctrl-C reaches the whole process
    group; the main process handles it (saves a checkpoint, then closes the workers), so a worker
    must not die of it first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return gym.make(env_id, **kwargs)


def resolve_hyperparams(config: TrainConfig) -> dict[str, Any]:
    """The run's settings: shipped file, then ``hyperparams_file``, then ``hyperparams``; fills in
    ``config.timesteps`` and ``config.n_envs`` from ``n_timesteps``/``n_envs`` where not given."""
    settings = resolve_settings(ALGORITHMS[config.algo], config.algo, config.env.rpartition(":")[2],
                                config.hyperparams_file, config.hyperparams)
    source = config.hyperparams_file or str(shipped_file(config.algo))
    if config.timesteps is None:
        config.timesteps = int(float(settings.get("n_timesteps", FALLBACK_TIMESTEPS)))
    if config.n_envs is None:
        config.n_envs = int(settings.get("n_envs", FALLBACK_N_ENVS))
    normalize_kwargs(settings.get("normalize"), source)  # fail now, not after the run folder exists
    algorithm_kwargs(settings, 1, source)
    return settings


def train(config: TrainConfig, argv: list[str] | None = None) -> TrainResult:
    """Train an agent as ``config`` says and write the run folder; return where it is and how it did."""
    config.env = env_reference(config.env)  # 'module:id' for a user's module, so later processes find it
    config.algo = config.algo.lower()
    if config.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algo!r}; choose one of {', '.join(ALGORITHMS)}")
    if config.vec_env not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {config.vec_env!r}; choose one of {', '.join(VEC_ENVS)}")
    check_device(config.device)
    settings = resolve_hyperparams(config)
    for name in ("timesteps", "n_envs", "eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    _check_threads(config.threads)
    refuse_files_in_the_way({"--out": config.out, "--tensorboard-log": config.tensorboard_log})
    for name in ("eval_freq", "save_freq"):
        value = getattr(config, name)
        if value is None:
            setattr(config, name, max(config.timesteps // 10, config.n_envs))
        elif value < 0:
            raise ValueError(f"{name} must be >= 0 env steps (0: never), got {value}")
    existed = (Path(config.out) / config.run_name).exists() if config.run_name else False
    claim = claim_new_run_folder(
        Path(config.out), config.run_name,
        f"{config.env.split('/')[-1]}_{config.algo}_s{config.seed}_{datetime.now():%Y%m%d-%H%M%S}",
    )
    run_dir = claim.run_dir

    def record() -> None:
        write_json(run_dir / "config.json", {**asdict(config), "resolved_hyperparams": settings})
        command = argv if argv is not None else sys.argv
        write_text_atomic(run_dir / "command.txt", shlex.join(command) + "\n")

    try:
        return _run(config, settings, run_dir, checkpoint=None, before_training=record)
    except _SetupFailed as failed:
        # Nothing was trained: leave no half-made run folder behind (an empty one given by name stays).
        shutil.rmtree(run_dir, ignore_errors=True)
        if existed:
            run_dir.mkdir(parents=True, exist_ok=True)
        raise failed.__cause__ from None
    finally:
        claim.release()


def _check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"--threads must be a whole number of at least 1 (or left out for torch's default), "
                         f"got {threads!r}")


def resume(run_dir: str | Path, timesteps: int | None = None, progress: bool | None = None,
           argv: list[str] | None = None, threads: int | None = None) -> TrainResult:
    """Continue a run from its latest checkpoint (model, optimiser, replay buffer, normalisation
    statistics, step count) up to ``timesteps`` in all (default: the run's own total). ``threads``
    replaces the run's torch threads (a setting of the machine, not of the agent).

    A killed run loses at most the steps since its last checkpoint.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); pass the folder a run made")
    saved = json.loads(config_path.read_text())
    settings = saved.pop("resolved_hyperparams", {})
    known = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    if timesteps is not None:
        config.timesteps = int(timesteps)
    if progress is not None:
        config.progress = progress
    if threads is not None:
        _check_threads(threads)
        config.threads = threads
    claim = claim_run_folder(run_dir, resume=True)  # one writer: not while it trains, nor resumed twice
    try:
        checkpoint = resume_checkpoint(run_dir, config.algo, config.timesteps)
    except BaseException:
        claim.release()
        raise

    def record() -> None:
        write_json(config_path, {**asdict(config), "resolved_hyperparams": settings})
        command = argv if argv is not None else sys.argv
        with open(run_dir / "command.txt", "a") as handle:
            handle.write(shlex.join(command) + "\n")

    try:
        return _run(config, settings, run_dir, checkpoint=checkpoint, before_training=record)
    except _SetupFailed as failed:
        raise failed.__cause__ from None
    finally:
        claim.release()


class _SetupFailed(Exception):
    """Raised by :func:`_run` when the run fails before it trains a step; the cause is the error."""


def _run(config: TrainConfig, settings: dict[str, Any], run_dir: Path, checkpoint: Path | None,
         before_training: Callable[[], None]) -> TrainResult:
    """Set the run up, call ``before_training`` (which records its settings), train, save and report.

    Raises:
        _SetupFailed: when it fails (or is interrupted) before training starts; nothing was trained.
        TrainingInterrupted: on Ctrl-C or SIGTERM during training, after saving a checkpoint.
    """
    started = time.perf_counter()
    with _torch_threads(config.threads):
        return _train_and_report(config, settings, run_dir, checkpoint, before_training, started)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` (``None``: left alone) and set back afterwards."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_and_report(config: TrainConfig, settings: dict[str, Any], run_dir: Path, checkpoint: Path | None,
                      before_training: Callable[[], None], started: float) -> TrainResult:
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import VecNormalize

    from designgym.agents.pictures import caption, save_design_grid, save_learning_curve

    try:
        model, vec_env, saver, callbacks = _set_up(config, settings, run_dir, checkpoint)
    except BaseException as exc:
        raise _SetupFailed() from exc
    before_training()
    try:
        with warnings.catch_warnings(), termination_as_interrupt():
            # The evaluation env is a plain DummyVecEnv whatever the training one is, by design.
            warnings.filterwarnings("ignore", message="Training and eval env are not of the same type")
            model.learn(
                total_timesteps=config.timesteps - model.num_timesteps,
                callback=CallbackList(callbacks),
                progress_bar=config.progress,
                tb_log_name=config.algo,
                reset_num_timesteps=checkpoint is None,
            )
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM, as a scheduler sends): keep what was learnt in a checkpoint to resume from.
        if config.progress:
            print(file=sys.stderr)  # past the progress bar, which stays as it was
        with signals_held():
            if getattr(saver, "model", None) is None:  # stopped before learn() set the callbacks up
                saver.init_callback(model)
            saved = saver.save()
            close_after_interrupt(vec_env)
        raise TrainingInterrupted(run_dir, int(model.num_timesteps), saved) from None
    except Exception as exc:
        with suppress(Exception):  # workers that died with the run
            vec_env.close()
        raise_if_diverged(model, settings, exc)  # NaN weights: one line naming the settings, not a tensor dump
        raise
    finally:
        for callback in callbacks:
            if isinstance(callback, AtomicEvalCallback):
                callback.discard_partial()
    vec_env.close()
    model_path = run_dir / "model.zip"
    save_model_atomic(model, model_path)
    normalizer = vec_env if isinstance(vec_env, VecNormalize) else None
    if normalizer is not None:
        save_normalizer_atomic(normalizer, run_dir / "vecnormalize.npz")

    eval_env = gym.make(config.env, **config.env_kwargs)

    def act(obs: Any) -> np.ndarray:
        if normalizer is not None:
            obs = normalizer.normalize_obs(obs)
        return model.predict(obs, deterministic=True)[0]

    trained = rollout(eval_env, act, config.eval_episodes, seed=10_000 + config.seed)
    rng = np.random.default_rng(config.seed)
    random_policy = rollout(
        eval_env, lambda obs: rng.uniform(-1, 1, eval_env.action_space.shape).astype(np.float32),
        config.eval_episodes, seed=10_000 + config.seed,
    )
    metrics = {
        "env": config.env,
        "algo": config.algo,
        "timesteps": int(model.num_timesteps),
        "eval_episodes": config.eval_episodes,
        "trained": trained["summary"],
        "random": random_policy["summary"],
    }
    write_json(run_dir / "metrics.json", metrics)
    problem = eval_env.unwrapped.problem
    save_design_grid(
        run_dir / "designs.png",
        [problem.render(d, c) for d, c in zip(trained["designs"][:8], trained["conditions"][:8], strict=True)],
        [caption(e, problem.objective.name) for e in trained["evaluations"][:8]],
        title=f"{config.env} — {config.algo.upper()} after {model.num_timesteps} steps",
    )
    save_learning_curve(run_dir / "learning_curve.png", run_dir / "monitor",
                        random_return=random_policy["summary"]["mean_return"], title=config.env)
    eval_env.close()
    return TrainResult(run_dir, model_path, metrics, time.perf_counter() - started)


def _set_up(config: TrainConfig, settings: dict[str, Any], run_dir: Path, checkpoint: Path | None
            ) -> tuple[BaseAlgorithm, VecEnv, CheckpointSaver, list[BaseCallback]]:
    """The run's envs, model (new, or from ``checkpoint``) and callbacks."""

    vec_env: VecEnv = make_training_vec_env(config, run_dir / "monitor", append=checkpoint is not None)
    try:
        return _set_up_with(vec_env, config, settings, run_dir, checkpoint)
    except BaseException:
        vec_env.close()  # a SubprocVecEnv's workers, a problem's helper processes
        raise


def _set_up_with(vec_env: VecEnv, config: TrainConfig, settings: dict[str, Any], run_dir: Path,
                 checkpoint: Path | None) -> tuple[BaseAlgorithm, VecEnv, CheckpointSaver, list[BaseCallback]]:
    from stable_baselines3.common.vec_env import VecNormalize

    algo_cls = ALGORITHMS[config.algo]
    norm = normalize_kwargs(settings.get("normalize"))
    tb_dir = config.tensorboard_log or str(run_dir / "tb")
    if checkpoint is not None:
        # check_checkpoint has read these files (or refused the run) before the run folder was touched.
        fix = "start a new run"
        stats = plain_or_legacy(checkpoint_companion(checkpoint, "vecnormalize"), "normalisation statistics")
        if stats is not None:
            vec_env = load_normalizer(stats, vec_env, training=True, fix=fix)
        model = algo_cls.load(checkpoint, env=vec_env, device=config.device, tensorboard_log=tb_dir)
        buffer = plain_or_legacy(checkpoint_companion(checkpoint, "replay_buffer"), "replay buffer")
        if buffer is not None and hasattr(model, "load_replay_buffer"):
            restore_checkpoint_buffer(model, buffer, fix)
    else:
        if norm is not None:
            vec_env = VecNormalize(vec_env, **norm)
        model = make_model(config, vec_env, settings, tensorboard_log=tb_dir)

    callbacks: list[BaseCallback] = [DesignMetricsCallback()]
    saver = CheckpointSaver(run_dir / "checkpoints", config.save_freq)
    if config.eval_freq:
        hparams = {"algo": config.algo, "env": config.env, "n_envs": config.n_envs, "seed": config.seed,
                   "vec_env": config.vec_env, **{k: v for k, v in settings.items() if k != "n_envs"}}
        callbacks.append(DesignImagesCallback(config.env, config.env_kwargs, config.eval_freq, hparams,
                                              seed=config.seed))
    if config.save_freq:
        callbacks.append(saver)
    if config.eval_freq:
        eval_env: VecEnv = make_vec_env(partial(_make_registered_env, config.env), n_envs=1,
                                        seed=config.seed + 1000, env_kwargs=config.env_kwargs)
        if isinstance(vec_env, VecNormalize):
            eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        evaluator = AtomicEvalCallback(eval_env, run_dir, n_eval_episodes=config.eval_episodes,
                                       eval_freq=max(1, config.eval_freq // config.n_envs))
        restore_evaluations(evaluator, run_dir / "evaluations.npz")
        callbacks.append(evaluator)
    return model, vec_env, saver, callbacks
