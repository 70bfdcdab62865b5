"""Training a Stable-Baselines3 agent on a design environment, into a self-describing run folder.

A run folder holds everything needed to understand and reuse the run:

- ``model.zip``: the trained agent (``stable_baselines3.<ALGO>.load``);
- ``config.json`` and ``command.txt``: the resolved settings and the exact command;
- ``monitor/``: SB3 monitor CSVs of every training episode;
- ``tb/``: TensorBoard event files (episode return, reward parts, objectives, violations);
- ``metrics.json``: the trained policy against a random policy on the same seeded conditions;
- ``learning_curve.png`` and ``designs.png``: the pictures to look at first.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from designgym.envs.registration import resolve_env_id

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}

#: Settings that learn on the built-in envs within a few thousand steps; ``hyperparams`` overrides.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    # Many small updates: in one-step episodes every step is a finished sample of the design task.
    "ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-4},
    "a2c": {"n_steps": 16, "learning_rate": 7e-4},
    "sac": {"learning_starts": 500, "batch_size": 256, "learning_rate": 1e-3},
    "td3": {"learning_starts": 500, "batch_size": 256, "learning_rate": 1e-3},
}


@dataclass
class TrainConfig:
    """Options of one training run (the ``designgym train`` flags).

    Attributes:
        env: registered env id (``designgym/Extrusion-v0``; the namespace may be left out).
        algo: one of :data:`ALGORITHMS`.
        timesteps: environment steps to train for.
        seed: seeds the agent, the envs and the evaluation conditions.
        n_envs: environments stepped together.
        vec_env: how they are stepped: ``dummy`` (one by one, SB3's ``DummyVecEnv``), ``subproc``
            (one process each, ``SubprocVecEnv``) or ``batched`` (:class:`BatchedDesignVecEnv`: one
            generator pass and one batched evaluation per step for all of them).
        device: torch device of the agent: ``auto``, ``cpu`` or ``cuda``.
        hyperparams: algorithm arguments over :data:`DEFAULT_HYPERPARAMS`.
        env_kwargs: arguments for ``gymnasium.make`` (``action_mode``, ``violation_weights``...).
        out: folder under which the run folder is made.
        run_name: name of the run folder; default ``<Env>_<algo>_s<seed>_<time>``.
        eval_episodes: seeded episodes for the final comparison with a random policy.
        progress: show a progress bar.
    """

    env: str = "designgym/Extrusion-v0"
    algo: str = "ppo"
    timesteps: int = 20_000
    seed: int = 0
    n_envs: int = 4
    vec_env: str = "dummy"
    device: str = "auto"
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    out: str = "runs"
    run_name: str | None = None
    eval_episodes: int = 32
    progress: bool = False


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


def make_training_vec_env(config: TrainConfig, monitor_dir: Path) -> VecEnv:
    """The envs of a run, seeded ``seed + i``, writing monitor CSVs (return, length, feasible) to ``monitor_dir``."""
    if config.vec_env == "batched":
        from designgym.envs.vector import make_batched_vec_env

        monitor_dir.mkdir(parents=True, exist_ok=True)
        batched = make_batched_vec_env(config.env, n_envs=config.n_envs, seed=config.seed, env_kwargs=config.env_kwargs)
        return VecMonitor(batched, filename=str(monitor_dir / "batched"), info_keywords=("feasible",))
    return make_vec_env(
        # A picklable maker that imports designgym, so SubprocVecEnv workers know the env ids too.
        partial(_make_registered_env, config.env),
        n_envs=config.n_envs,
        seed=config.seed,
        env_kwargs=config.env_kwargs,
        monitor_dir=str(monitor_dir),
        monitor_kwargs={"info_keywords": ("feasible",)},
        vec_env_cls=SubprocVecEnv if config.vec_env == "subproc" else DummyVecEnv,
    )


def _make_registered_env(env_id: str, **kwargs: Any) -> gym.Env:
    return gym.make(env_id, **kwargs)


def make_model(config: TrainConfig, env: Any, tensorboard_log: str | None) -> BaseAlgorithm:
    try:
        algo_cls = ALGORITHMS[config.algo.lower()]
    except KeyError:
        raise ValueError(f"unknown algorithm {config.algo!r}; choose one of {', '.join(ALGORITHMS)}") from None
    params = {**DEFAULT_HYPERPARAMS[config.algo.lower()], **config.hyperparams}
    policy = params.pop("policy", "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict)
                        else "MlpPolicy")
    return algo_cls(
        policy, env, seed=config.seed, device=config.device, tensorboard_log=tensorboard_log, verbose=0, **params
    )


def train(config: TrainConfig, argv: list[str] | None = None) -> TrainResult:
    """Train an agent as ``config`` says and write the run folder; return where it is and how it did."""
    from designgym.agents.pictures import save_design_grid, save_learning_curve

    config.env = resolve_env_id(config.env)
    config.algo = config.algo.lower()
    if config.algo not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {config.algo!r}; choose one of {', '.join(ALGORITHMS)}")
    if config.timesteps < 1 or config.n_envs < 1:
        raise ValueError("timesteps and n_envs must be positive")
    if config.vec_env not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {config.vec_env!r}; choose one of {', '.join(VEC_ENVS)}")
    started = time.perf_counter()
    run_dir = _new_run_dir(config)
    _write_json(run_dir / "config.json", asdict(config))
    command = argv if argv is not None else sys.argv
    (run_dir / "command.txt").write_text(shlex.join(command) + "\n")

    vec_env = make_training_vec_env(config, run_dir / "monitor")
    model = make_model(config, vec_env, tensorboard_log=str(run_dir / "tb"))
    model.learn(
        total_timesteps=config.timesteps,
        callback=DesignMetricsCallback(),
        progress_bar=config.progress,
        tb_log_name=config.algo,
    )
    vec_env.close()
    model_path = run_dir / "model.zip"
    _atomic_save(model, model_path)

    eval_env = gym.make(config.env, **config.env_kwargs)
    trained = rollout(eval_env, lambda obs: model.predict(obs, deterministic=True)[0], config.eval_episodes,
                      seed=10_000 + config.seed)
    rng = np.random.default_rng(config.seed)
    random_policy = rollout(
        eval_env, lambda obs: rng.uniform(-1, 1, eval_env.action_space.shape).astype(np.float32),
        config.eval_episodes, seed=10_000 + config.seed,
    )
    metrics = {
        "env": config.env,
        "algo": config.algo,
        "timesteps": config.timesteps,
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
        title=f"{config.env} — {config.algo.upper()} after {config.timesteps} steps",
    )
    save_learning_curve(run_dir / "learning_curve.png", run_dir / "monitor",
                        random_return=random_policy["summary"]["mean_return"], title=config.env)
    eval_env.close()
    return TrainResult(run_dir, model_path, metrics, time.perf_counter() - started)


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


def _write_json(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")
    os.replace(tmp, path)


def _atomic_save(model: BaseAlgorithm, path: Path) -> None:
    """Save to a temporary file and rename, so a crash never leaves half a model."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".zip")
    os.close(fd)
    model.save(tmp)
    os.replace(tmp, path)
