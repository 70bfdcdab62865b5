"""Training a Stable-Baselines3 agent on a design environment, into a self-describing run folder.

A run folder holds everything needed to understand and reuse the run:

- ``model.zip``: the trained agent (``stable_baselines3.<ALGO>.load``);
- ``best_model.zip`` and ``evaluations.npz``: the best agent of the periodic evaluations, and
  their returns (SB3's ``EvalCallback`` format);
- ``checkpoints/``: the agent every ``save_freq`` steps (with the replay buffer and the
  normalisation statistics), from which ``--resume`` continues;
- ``vecnormalize.pkl``: observation/reward normalisation statistics, when ``normalize`` is set;
- ``config.json`` and ``command.txt``: the resolved settings (hyperparameters included) and the
  exact command;
- ``monitor/``: SB3 monitor CSVs of every training episode;
- ``tb/``: TensorBoard event files (episode return, reward parts, objectives, violations);
- ``metrics.json``: the trained policy against a random policy on the same seeded conditions;
- ``learning_curve.png`` and ``designs.png``: the pictures to look at first.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from designgym.agents.hyperparams import (
    RUN_KEYS,
    algorithm_kwargs,
    read_file,
    resolve_settings,
    shipped_file,
)
from designgym.envs.registration import resolve_env_id

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}

#: The shipped ``default`` entries of ``designgym/agents/hyperparams/<algo>.yml``, without the run keys.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    algo: {k: v for k, v in read_file(shipped_file(algo)).get("default", {}).items() if k not in RUN_KEYS}
    for algo in ALGORITHMS
}
FALLBACK_TIMESTEPS, FALLBACK_N_ENVS = 20_000, 4


@dataclass
class TrainConfig:
    """Options of one training run (the ``designgym train`` flags).

    Attributes:
        env: registered env id (``designgym/Extrusion-v0``; the namespace may be left out).
        algo: one of :data:`ALGORITHMS`.
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

    env: str = "designgym/Extrusion-v0"
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


class DesignMetricsCallback(BaseCallback):
    """Logs the mean reward parts, objectives, violations and feasible rate of finished episodes.

    SB3 logs only the episode return; for design work the parts of the reward are what tell a
    stuck agent (paying penalties) from a learning one. ``record_mean`` averages every episode
    that ends between two log dumps, whatever the algorithm's rollout length.
    """

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            if not done or "objectives" not in info:
                continue
            for key, value in info["objectives"].items():
                self.logger.record_mean(f"design/objective/{key}", float(value))
            for key, value in info["violations"].items():
                self.logger.record_mean(f"design/violation/{key}", float(value))
            for key, value in info.get("reward_parts", {}).items():
                self.logger.record_mean(f"design/reward/{key}", float(value))
            self.logger.record_mean("design/feasible_rate", float(info["feasible"]))
        return True


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
    settings = resolve_settings(ALGORITHMS[config.algo], config.algo, config.env, config.hyperparams_file,
                                config.hyperparams)
    source = config.hyperparams_file or str(shipped_file(config.algo))
    if config.timesteps is None:
        config.timesteps = int(float(settings.get("n_timesteps", FALLBACK_TIMESTEPS)))
    if config.n_envs is None:
        config.n_envs = int(settings.get("n_envs", FALLBACK_N_ENVS))
    normalize_kwargs(settings.get("normalize"), source)  # fail now, not after the run folder exists
    algorithm_kwargs(settings, 1, source)
    return settings


def normalize_kwargs(value: Any, source: str = "hyperparameters") -> dict[str, Any] | None:
    """``VecNormalize`` arguments from the ``normalize`` setting (``true``, a mapping, or a Zoo-style string)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        from designgym.agents.hyperparams import policy_kwargs

        return normalize_kwargs(policy_kwargs(value, source), source)
    if isinstance(value, dict):
        allowed = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"{source}: unknown normalize setting(s) {unknown}; use {sorted(allowed)}")
        return dict(value)
    raise ValueError(f"{source}: normalize must be true, false or a mapping of VecNormalize arguments, got {value!r}")


def make_model(config: TrainConfig, env: VecEnv, settings: dict[str, Any], tensorboard_log: str | None
               ) -> BaseAlgorithm:
    algo_cls = ALGORITHMS[config.algo]
    source = config.hyperparams_file or str(shipped_file(config.algo))
    kwargs = algorithm_kwargs(settings, int(np.prod(env.action_space.shape)), source)
    default_policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) else "MlpPolicy"
    policy = settings.get("policy") or default_policy
    return algo_cls(policy, env, seed=config.seed, device=config.device, tensorboard_log=tensorboard_log, verbose=0,
                    **kwargs)


def train(config: TrainConfig, argv: list[str] | None = None) -> TrainResult:
    """Train an agent as ``config`` says and write the run folder; return where it is and how it did."""
    config.env = resolve_env_id(config.env)
    config.algo = config.algo.lower()
    if config.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algo!r}; choose one of {', '.join(ALGORITHMS)}")
    if config.vec_env not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {config.vec_env!r}; choose one of {', '.join(VEC_ENVS)}")
    settings = resolve_hyperparams(config)
    for name in ("timesteps", "n_envs", "eval_episodes"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    _check_threads(config.threads)
    if Path(config.out).exists() and not Path(config.out).is_dir():
        raise ValueError(f"--out {config.out} is a file; it must be the folder that holds run folders")
    for name in ("eval_freq", "save_freq"):
        value = getattr(config, name)
        if value is None:
            setattr(config, name, max(config.timesteps // 10, config.n_envs))
        elif value < 0:
            raise ValueError(f"{name} must be >= 0 env steps (0: never), got {value}")
    existed = (Path(config.out) / config.run_name).exists() if config.run_name else False
    run_dir = _new_run_dir(config)

    def record() -> None:
        _write_json(run_dir / "config.json", {**asdict(config), "resolved_hyperparams": settings})
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
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {run_dir / 'checkpoints'} to resume from (was save_freq 0?); start a new run"
        )
    _check_checkpoint(checkpoint, config.algo)
    steps = _checkpoint_steps(checkpoint)
    if steps >= config.timesteps:
        raise ValueError(
            f"{run_dir} has already reached {steps} of {config.timesteps} steps; "
            f"pass --timesteps above {steps} to train it further"
        )

    def record() -> None:
        _write_json(config_path, {**asdict(config), "resolved_hyperparams": settings})
        command = argv if argv is not None else sys.argv
        with open(run_dir / "command.txt", "a") as handle:
            handle.write(shlex.join(command) + "\n")

    try:
        return _run(config, settings, run_dir, checkpoint=checkpoint, before_training=record)
    except _SetupFailed as failed:
        raise failed.__cause__ from None


def _check_checkpoint(checkpoint: Path, algo: str) -> None:
    """Read a checkpoint's files before anything of the run is touched; a damaged or foreign one is
    named, with the way on."""
    import pickle

    from stable_baselines3.common.save_util import load_from_zip_file

    earlier = [c for c in _checkpoints(checkpoint.parent) if c != checkpoint]
    fix = (f"move it out of {checkpoint.parent} to resume from {earlier[-1].name} instead" if earlier
           else "start a new run")
    try:
        data, _, _ = load_from_zip_file(checkpoint, device="cpu", print_system_info=False)
    except Exception as exc:  # a truncated zip, a foreign file: any reader error means the same
        raise ValueError(f"checkpoint {checkpoint} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(data, dict) or "policy_class" not in data:
        raise ValueError(f"checkpoint {checkpoint} is not a Stable-Baselines3 model; {fix}")
    stored = getattr(data["policy_class"], "__name__", str(data["policy_class"]))
    accepted = {cls.__name__ for cls in ALGORITHMS[algo].policy_aliases.values()}
    if stored not in accepted:
        raise ValueError(f"checkpoint {checkpoint} holds a {stored}, not a policy of {algo.upper()}, which this "
                         f"run trains; {fix}")
    stats = checkpoint_companion(checkpoint, "vecnormalize")
    if stats.exists():
        try:
            with open(stats, "rb") as handle:
                pickle.load(handle)
        except Exception as exc:
            raise ValueError(f"normalisation statistics {stats} cannot be read ({type(exc).__name__}); {fix}") from None


class _SetupFailed(Exception):
    """Raised by :func:`_run` when the run fails before it trains a step; the cause is the error."""


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = _checkpoints(run_dir / "checkpoints")
    return found[-1] if found else None


def _checkpoints(folder: Path) -> list[Path]:
    """The model files of the checkpoints in ``folder``, oldest first."""
    return sorted(Path(folder).glob("model_*_steps.zip"), key=_checkpoint_steps)


def _checkpoint_steps(path: Path) -> int:
    return int(path.stem.split("_")[1])


def checkpoint_file(folder: Path, steps: int, kind: str = "model") -> Path:
    """A file of the checkpoint at ``steps``: ``model`` (.zip), ``vecnormalize`` or ``replay_buffer`` (.pkl)."""
    return Path(folder) / f"{kind}_{steps}_steps.{'zip' if kind == 'model' else 'pkl'}"


def checkpoint_companion(model: Path, kind: str) -> Path:
    """The ``vecnormalize`` or ``replay_buffer`` file beside a checkpoint's model file."""
    return checkpoint_file(model.parent, _checkpoint_steps(model), kind)


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

    from designgym.agents.pictures import save_design_grid, save_learning_curve

    try:
        model, vec_env, saver, callbacks = _set_up(config, settings, run_dir, checkpoint)
    except BaseException as exc:
        raise _SetupFailed() from exc
    before_training()
    try:
        with warnings.catch_warnings(), _termination_as_interrupt():
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
        with _signals_held():
            if getattr(saver, "model", None) is None:  # stopped before learn() set the callbacks up
                saver.init_callback(model)
            saved = saver.save()
            _close_after_interrupt(vec_env)
        raise TrainingInterrupted(run_dir, int(model.num_timesteps), saved) from None
    finally:
        for callback in callbacks:
            if isinstance(callback, AtomicEvalCallback):
                callback.discard_partial()
    vec_env.close()
    model_path = run_dir / "model.zip"
    _atomic_save(model, model_path)
    normalizer = vec_env if isinstance(vec_env, VecNormalize) else None
    if normalizer is not None:
        _atomic_pickle(normalizer, run_dir / "vecnormalize.pkl")

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
    _write_json(run_dir / "metrics.json", metrics)
    problem = eval_env.unwrapped.problem
    save_design_grid(
        run_dir / "designs.png",
        [problem.render(d, c) for d, c in zip(trained["designs"][:8], trained["conditions"][:8], strict=True)],
        [_caption(e, problem.objective.name) for e in trained["evaluations"][:8]],
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
        stats = checkpoint_companion(checkpoint, "vecnormalize")
        if stats.exists():
            vec_env = VecNormalize.load(str(stats), vec_env)
            vec_env.training = True
        model = algo_cls.load(checkpoint, env=vec_env, device=config.device, tensorboard_log=tb_dir)
        buffer = checkpoint_companion(checkpoint, "replay_buffer")
        if buffer.exists() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(buffer)
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
        _restore_evaluations(evaluator, run_dir / "evaluations.npz")
        callbacks.append(evaluator)
    return model, vec_env, saver, callbacks


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving a checkpoint; ``designgym train --resume`` goes on.

    Attributes:
        run_dir: the run folder.
        steps: env steps trained when it stopped.
        checkpoint: the model file of the checkpoint just saved.
    """

    def __init__(self, run_dir: Path, steps: int, checkpoint: Path) -> None:
        super().__init__(
            f"interrupted at step {steps}; checkpoint saved to {checkpoint}; continue with "
            f"`designgym train --resume {run_dir}`"
        )
        self.run_dir, self.steps, self.checkpoint = run_dir, steps, checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM stops training as Ctrl-C does (clusters and containers stop jobs with it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Within the block another Ctrl-C or SIGTERM only says to wait: the run is stopping already,
    and the checkpoint being written must be finished."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def wait(signum: int, frame: Any) -> None:
        print("designgym: saving a checkpoint before stopping, one moment", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, wait) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _close_after_interrupt(vec_env: VecEnv) -> None:
    """Close the envs of an interrupted run. The interrupt may have come between a request to
    SubprocVecEnv workers and the last of their replies, and a polite close would then wait for a
    reply already read; the workers hold nothing to save, so they are stopped instead."""
    base = vec_env.unwrapped
    if not isinstance(base, SubprocVecEnv):
        vec_env.close()
        return
    for process in base.processes:
        process.terminate()
    for process in base.processes:
        process.join(timeout=10)
    for remote in base.remotes:
        remote.close()
    base.closed = True


class AtomicEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` with ``evaluations.npz`` and ``best_model.zip`` in ``run_dir``, each
    written to a temporary file and renamed, so a crash never leaves half of either.

    SB3 writes both in place; here it writes the evaluations into a scratch folder that is renamed
    over ``evaluations.npz`` after each evaluation, and a new best model is saved by
    :func:`_atomic_save`.
    """

    def __init__(self, eval_env: VecEnv, run_dir: Path, n_eval_episodes: int, eval_freq: int) -> None:
        self.run_dir = Path(run_dir)
        self._scratch = self.run_dir / ".evaluations.tmp"
        super().__init__(
            eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq, log_path=str(self._scratch),
            best_model_save_path=None, deterministic=True, verbose=0, warn=False,
            callback_on_new_best=_SaveModel(self.run_dir / "best_model.zip"),
            callback_after_eval=_Publish(self._scratch / "evaluations.npz", self.run_dir / "evaluations.npz"),
        )

    def discard_partial(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)


class _SaveModel(BaseCallback):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        _atomic_save(self.model, self.path)
        return True


class _Publish(BaseCallback):
    """Renames a file written in full over its published name."""

    def __init__(self, written: Path, published: Path) -> None:
        super().__init__()
        self.written, self.published = written, published

    def _on_step(self) -> bool:
        if self.written.exists():
            os.replace(self.written, self.published)
        return True


class CheckpointSaver(BaseCallback):
    """Every ``save_freq`` env steps: the model, its replay buffer (off-policy algorithms) and the
    normalisation statistics, each written to a temporary file and renamed, so a crash never leaves
    half a checkpoint. The latest ``keep`` checkpoints are kept."""

    def __init__(self, folder: Path, save_freq: int, keep: int = 2) -> None:
        super().__init__()
        self.folder, self.save_freq, self.keep = Path(folder), int(save_freq), int(keep)
        self._last = 0

    def _init_callback(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._last = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.model.num_timesteps - self._last >= self.save_freq:
            self._last = self.model.num_timesteps
            self.save()
        return True

    def save(self) -> Path:
        from stable_baselines3.common.vec_env import VecNormalize

        steps = self.model.num_timesteps
        # Statistics and buffer first, the model last: a model file means its checkpoint is whole.
        normalizer = self.model.get_vec_normalize_env()
        if isinstance(normalizer, VecNormalize):
            _atomic_pickle(normalizer, checkpoint_file(self.folder, steps, "vecnormalize"))
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            with atomic_path(checkpoint_file(self.folder, steps, "replay_buffer")) as tmp:
                self.model.save_replay_buffer(tmp)
        path = checkpoint_file(self.folder, steps)
        _atomic_save(self.model, path)
        for old in _checkpoints(self.folder)[: -self.keep]:
            for stale in (old, checkpoint_companion(old, "vecnormalize"), checkpoint_companion(old, "replay_buffer")):
                stale.unlink(missing_ok=True)
        return path


class DesignImagesCallback(BaseCallback):
    """TensorBoard pictures and hyperparameters of a run.

    - ``designs/best``: the best designs of finished training episodes so far (feasible first, then
      by the reward objective), every ``every`` env steps and at the end;
    - ``designs/evaluation``: the policy's designs on a fixed, seeded set of conditions, at the
      same times;
    - the run's hyperparameters with the metrics to compare runs by (TensorBoard's HParams tab).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], every: int, hparams: dict[str, Any],
                 show: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.env_id, self.env_kwargs, self.every = env_id, dict(env_kwargs), max(1, int(every))
        self.hparams, self.show, self.seed = hparams, int(show), int(seed)
        self.best: list[tuple[tuple[bool, float], np.ndarray, dict[str, Any], dict[str, Any]]] = []
        self._last = 0

    def _on_training_start(self) -> None:
        self._env = gym.make(self.env_id, **self.env_kwargs)
        self._problem = self._env.unwrapped.problem
        record_hparams(self.logger, self.hparams, ("rollout/ep_rew_mean", "design/feasible_rate", "eval/mean_reward"))
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        spec = self._problem.objective
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            if not done or "objectives" not in info:
                continue
            key = (bool(info["feasible"]), float(spec.score(info["objectives"])))
            if len(self.best) < self.show or key > self.best[-1][0]:
                design = self.training_env.get_attr("final_design", indices=[i])[0]
                if design is not None:
                    self.best.append((key, np.array(design), dict(info["conditions"]), info))
                    self.best.sort(key=lambda entry: entry[0], reverse=True)
                    del self.best[self.show :]
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            self.log_pictures()
        return True

    def _on_training_end(self) -> None:
        self.log_pictures()
        self.logger.dump(self.num_timesteps)
        self._env.close()

    def log_pictures(self) -> None:
        from stable_baselines3.common.logger import Image

        from designgym.agents.pictures import design_grid_image

        exclude = ("stdout", "log", "json", "csv")
        main = self._problem.objective.name
        if self.best:
            images = [self._problem.render(d, c) for _, d, c, _ in self.best]
            captions = [_caption(info, main) for *_, info in self.best]
            grid = design_grid_image(images, captions, title=f"best so far, step {self.num_timesteps}")
            self.logger.record("designs/best", Image(grid, "HWC"), exclude=exclude)
        normalizer = self.model.get_vec_normalize_env()

        def act(obs: Any) -> np.ndarray:
            if normalizer is not None:
                obs = normalizer.normalize_obs(obs)
            return self.model.predict(obs, deterministic=True)[0]

        shown = rollout(self._env, act, self.show, seed=20_000 + self.seed)
        images = [self._problem.render(d, c) for d, c in zip(shown["designs"], shown["conditions"], strict=True)]
        captions = [_caption(e, main) for e in shown["evaluations"]]
        grid = design_grid_image(images, captions, title=f"policy on fixed conditions, step {self.num_timesteps}")
        self.logger.record("designs/evaluation", Image(grid, "HWC"), exclude=exclude)


def record_hparams(logger: Any, hparams: dict[str, Any], metrics: tuple[str, ...]) -> None:
    """A run's hyperparameters for TensorBoard's HParams tab, compared by the scalars ``metrics``
    (values that are not numbers, strings or booleans are shown as text)."""
    from stable_baselines3.common.logger import HParam

    shown = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
    logger.record("hparams", HParam(shown, dict.fromkeys(metrics, 0.0)), exclude=("stdout", "log", "json", "csv"))


def _restore_evaluations(evaluator: Any, path: Path) -> None:
    """A resumed run's EvalCallback starts from the earlier evaluations, so evaluations.npz keeps them."""
    if not path.exists():
        return
    with np.load(path) as data:
        evaluator.evaluations_timesteps = data["timesteps"].tolist()
        evaluator.evaluations_results = data["results"].tolist()
        evaluator.evaluations_length = data["ep_lengths"].tolist()
        if len(evaluator.evaluations_results):
            evaluator.best_mean_reward = float(np.max(np.mean(data["results"], axis=1)))


def _atomic_pickle(normalizer: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        normalizer.save(tmp)


def rollout(env: gym.Env, act: Callable[[Any], np.ndarray], episodes: int, seed: int) -> dict[str, Any]:
    """Run ``episodes`` episodes with seeds ``seed, seed+1, ...``; return designs and a summary."""
    returns, feasible, objective = [], [], []
    designs, conditions, evaluations = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, info = False, 0.0, {}
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        feasible.append(bool(info["feasible"]))
        spec = env.unwrapped.problem.objective
        objective.append(info["objectives"][spec.name])
        designs.append(env.unwrapped.design.copy())
        conditions.append(dict(info["conditions"]))
        evaluations.append(info)
    return {
        "summary": {
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "feasible_rate": float(np.mean(feasible)),
            f"mean_{env.unwrapped.problem.objective.name}": float(np.mean(objective)),
        },
        "designs": designs,
        "conditions": conditions,
        "evaluations": evaluations,
    }


def _caption(info: dict[str, Any], main: str) -> str:
    objectives, violations = info["objectives"], info["violations"]
    worst = max(violations, key=violations.get) if violations else ""
    status = "feasible" if info["feasible"] else f"{worst} {violations[worst]:.3g}"
    return f"{main} {objectives[main]:.2f}\n{status}"


def _new_run_dir(config: TrainConfig) -> Path:
    name = config.run_name or (
        f"{config.env.split('/')[-1]}_{config.algo}_s{config.seed}_{datetime.now():%Y%m%d-%H%M%S}"
    )
    run_dir = Path(config.out) / name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(
            f"run folder {run_dir} already exists and is not empty; choose another --run-name or --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` for the block to write; renamed over ``path`` when the block
    ends, removed if it raises, so a crash never leaves half a file. The file gets the mode a plain
    ``open()`` would give it (mkstemp's own is owner-only)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _atomic_save(model: BaseAlgorithm, path: Path) -> None:
    """Save to a temporary file and rename, so a crash never leaves half a model."""
    with atomic_path(path) as tmp:
        model.save(tmp)
