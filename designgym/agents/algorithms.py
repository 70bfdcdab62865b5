"""The Stable-Baselines3 algorithms designgym trains, and how a model of one is built from settings.

Training, tuning, resuming and loading agents must agree on which algorithms exist and on how the
resolved hyperparameters become a model; keeping that in one place means an algorithm is added once
and every command knows it.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from designgym.agents.distill import SearchDistillation
from designgym.agents.hyperparams import RUN_KEYS, algorithm_kwargs, policy_kwargs, read_file, shipped_file

#: The algorithms ``--algo`` names, by that name. One entry a line: another one is one more line here
#: (and its ``designgym/agents/hyperparams/<name>.yml``, which :data:`DEFAULT_HYPERPARAMS` reads).
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": sb3.PPO,
    "a2c": sb3.A2C,
    "sac": sb3.SAC,
    "td3": sb3.TD3,
    "distill": SearchDistillation,
}

#: The shipped ``default`` entries of ``designgym/agents/hyperparams/<algo>.yml``, without the run keys.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    algo: {k: v for k, v in read_file(shipped_file(algo)).get("default", {}).items() if k not in RUN_KEYS}
    for algo in ALGORITHMS
}
FALLBACK_TIMESTEPS, FALLBACK_N_ENVS = 20_000, 4


class ModelConfig(Protocol):
    """What :func:`make_model` reads of a run's options (a :class:`~designgym.agents.training.TrainConfig`)."""

    algo: str
    seed: int
    device: str
    hyperparams_file: str | None


def normalize_kwargs(value: Any, source: str = "hyperparameters") -> dict[str, Any] | None:
    """``VecNormalize`` arguments from the ``normalize`` setting (``true``, a mapping, or a Zoo-style string)."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        return normalize_kwargs(policy_kwargs(value, source), source)
    if isinstance(value, dict):
        allowed = {"norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"{source}: unknown normalize setting(s) {unknown}; use {sorted(allowed)}")
        return dict(value)
    raise ValueError(f"{source}: normalize must be true, false or a mapping of VecNormalize arguments, got {value!r}")


def check_device(device: str) -> None:
    """``device`` names a torch device this machine has (``auto``: a GPU if there is one, else the CPU)."""
    import torch

    if device == "auto":
        return
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
    if found.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA GPU on this machine; use --device cpu (or auto)")
    if found.type == "cuda" and found.index is not None and found.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                         "use cuda:0 up to the last one, or auto")


def make_model(config: ModelConfig, env: VecEnv, settings: dict[str, Any], tensorboard_log: str | None
               ) -> BaseAlgorithm:
    algo_cls = ALGORITHMS[config.algo]
    source = config.hyperparams_file or str(shipped_file(config.algo))
    kwargs = algorithm_kwargs(settings, int(np.prod(env.action_space.shape)), source)
    default_policy = "MultiInputPolicy" if isinstance(env.observation_space, gym.spaces.Dict) else "MlpPolicy"
    policy = settings.get("policy") or default_policy
    try:
        return algo_cls(policy, env, seed=config.seed, device=config.device, tensorboard_log=tensorboard_log,
                        verbose=0, **kwargs)
    except (AssertionError, ZeroDivisionError) as exc:  # how SB3 refuses a setting (n_steps: 0, batch_size: 0)
        raise ValueError(f"{config.algo.upper()} refuses the hyperparameters ({type(exc).__name__}: {exc}); fix "
                         f"the setting in --params or {source}") from None
