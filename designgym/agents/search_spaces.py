"""What ``designgym tune`` searches over, one function per algorithm.

A search space is a function ``space(trial, budget) -> settings``: it asks the Optuna ``trial``
for values (``budget`` says how many envs and steps a trial has, see :class:`Budget`) and returns
hyperparameters in the format of the YAML files (:mod:`designgym.agents.hyperparams`), so the
best trial can be written out as a file that ``designgym train --hyperparams`` reads unchanged.
Settings it does not return keep the values of the shipped file (and of ``--hyperparams``).

As in the RL Baselines3 Zoo, values that matter on a log scale, or near a bound, are suggested as
transformed variables: ``one_minus_gamma`` on a log scale instead of ``gamma`` (0.9 and 0.99 are as
far apart as 0.99 and 0.999), powers of two as their exponent (``log2_batch_size``). The trial's
params are those variables; the settings are what they stand for.

Add or replace a space for an algorithm::

    from designgym.agents.search_spaces import register_search_space

    def my_ppo_space(trial, budget):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)}

    register_search_space("ppo", my_ppo_space)

or, from the command line, ``designgym tune --search-space mypackage.spaces:my_ppo_space``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from designgym.user_modules import import_user_module


@dataclass(frozen=True)
class Budget:
    """What a trial has to work with, so that a space offers only settings that can learn in it.

    Attributes:
        n_envs: environments stepped together.
        n_actions: size of the action vector.
        timesteps: env steps of one trial (per seed).
        eval_every: env steps between two evaluations reported to the pruner.
    """

    n_envs: int
    n_actions: int
    timesteps: int
    eval_every: int


SearchSpace = Callable[[optuna.Trial, Budget], dict[str, Any]]

#: Network sizes by name: the policy (actor) and value (critic) layers.
NET_ARCHS = {"tiny": [32], "small": [64, 64], "medium": [128, 128], "large": [256, 256]}
#: Activation functions by name, as the YAML files write them.
ACTIVATIONS = {"tanh": "nn.Tanh", "relu": "nn.ReLU", "elu": "nn.ELU"}


def _policy_kwargs(trial: optuna.Trial, sizes: tuple[str, ...] = ("tiny", "small", "medium"),
                   activations: tuple[str, ...] = ("tanh", "relu")) -> str:
    """``policy_kwargs`` as the Zoo writes it, a ``dict(...)`` string the YAML loader reads back."""
    net = trial.suggest_categorical("net_arch", list(sizes))
    activation = trial.suggest_categorical("activation_fn", list(activations))
    return f"dict(net_arch={NET_ARCHS[net]}, activation_fn={ACTIVATIONS[activation]})"


def _gamma(trial: optuna.Trial) -> float:
    # Direct-mode episodes are one step long and ignore it; delta-mode episodes are a few steps.
    return 1.0 - trial.suggest_float("one_minus_gamma", 1e-4, 0.1, log=True)


def _log2_rollout(budget: Budget, low: int, high: int) -> tuple[int, int]:
    """Exponent range of ``n_steps``: at most one rollout (n_steps x n_envs) per evaluation interval,
    so every evaluation after the first sees an update."""
    fits = int(math.floor(math.log2(max(1, budget.eval_every // budget.n_envs))))
    top = max(min(high, fits), 1)
    return min(low, top), top


def ppo_space(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    n_steps = 2 ** trial.suggest_int("log2_n_steps", *_log2_rollout(budget, 4, 10))
    batch_size = 2 ** trial.suggest_int("log2_batch_size", 4, 8)
    # A minibatch larger than the rollout would be cut short; keep it within one.
    batch_size = min(batch_size, n_steps * budget.n_envs)
    return {
        "n_steps": n_steps,
        "batch_size": batch_size,
        "gamma": _gamma(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [3, 5, 10, 20]),
        "gae_lambda": 1.0 - trial.suggest_float("one_minus_gae_lambda", 1e-3, 0.2, log=True),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.2, 1.0),
        "policy_kwargs": _policy_kwargs(trial),
    }


def a2c_space(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    return {
        "n_steps": 2 ** trial.suggest_int("log2_n_steps", *_log2_rollout(budget, 2, 8)),
        "gamma": _gamma(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "gae_lambda": 1.0 - trial.suggest_float("one_minus_gae_lambda", 1e-3, 0.2, log=True),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.2, 1.0),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        "use_rms_prop": trial.suggest_categorical("use_rms_prop", [False, True]),
        "policy_kwargs": _policy_kwargs(trial),
    }


def _off_policy(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    train_freq = 2 ** trial.suggest_int("log2_train_freq", 0, 4)
    # Learning must start within the first half of the trial.
    starts = [n for n in (0, 100, 500, 1000, 5000) if n <= budget.timesteps // 2]
    return {
        "gamma": _gamma(trial),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "batch_size": 2 ** trial.suggest_int("log2_batch_size", 5, 9),
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 100_000, 1_000_000]),
        "learning_starts": trial.suggest_categorical("learning_starts", starts),
        "train_freq": train_freq,
        # As in the Zoo: as many gradient steps as env steps between updates.
        "gradient_steps": train_freq,
        "tau": trial.suggest_categorical("tau", [0.005, 0.01, 0.02, 0.05]),
        "policy_kwargs": _policy_kwargs(trial, ("small", "medium", "large"), ("relu", "tanh")),
    }


def sac_space(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    settings = _off_policy(trial, budget)
    settings["ent_coef"] = "auto"
    return settings


def td3_space(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    settings = _off_policy(trial, budget)
    settings["noise_type"] = trial.suggest_categorical("noise_type", ["normal", "ornstein-uhlenbeck"])
    settings["noise_std"] = trial.suggest_float("noise_std", 0.05, 0.6)
    return settings


def distill_space(trial: optuna.Trial, budget: Budget) -> dict[str, Any]:
    """Search distillation: how much each case's search spends, how wide it looks, how much of the
    budget refines earlier cases, and how hard the policy is fitted."""
    sigma = trial.suggest_float("search_sigma", 0.05, 0.6, log=True)
    return {
        "search_budget": 2 ** trial.suggest_int("log2_search_budget", 3, 7),
        "search_sigma": sigma,
        "search_sigma_final": sigma * trial.suggest_float("sigma_decay", 0.05, 1.0, log=True),
        "neighbours": trial.suggest_categorical("neighbours", [0, 2, 4, 8]),
        "revisit": trial.suggest_categorical("revisit", [0.0, 0.25, 0.5, 0.75]),
        "revisit_sigma": trial.suggest_float("revisit_sigma", 0.005, 0.2, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "gradient_steps": 2 ** trial.suggest_int("log2_gradient_steps", 4, 8),
        "policy_kwargs": _policy_kwargs(trial, ("small", "medium", "large"), ("relu", "tanh")),
    }


SEARCH_SPACES: dict[str, SearchSpace] = {"ppo": ppo_space, "a2c": a2c_space, "sac": sac_space, "td3": td3_space,
                                         "distill": distill_space}


def register_search_space(algo: str, space: SearchSpace) -> None:
    """Use ``space`` for ``algo`` from now on (in this process)."""
    if not callable(space):
        raise TypeError(f"a search space must be a function (trial, budget) -> dict, got {space!r}")
    SEARCH_SPACES[algo.lower()] = space


def search_space(algo: str, spec: str | None = None) -> SearchSpace:
    """The space for ``algo``: the registered one, or the function ``spec`` names (``module:function``)."""
    if spec is None:
        if algo not in SEARCH_SPACES:
            raise ValueError(f"no search space for {algo!r}; known: {', '.join(SEARCH_SPACES)} "
                             "(register one with designgym.agents.search_spaces.register_search_space)")
        return SEARCH_SPACES[algo]
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"--search-space must read module:function, got {spec!r}")
    try:
        module = import_user_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--search-space {spec!r}: cannot import {module_name!r} ({exc}); "
                         "is it in the working folder, installed, or on PYTHONPATH?") from None
    space = getattr(module, name, None)
    if not callable(space):
        raise ValueError(f"--search-space {spec!r}: {module_name} has no function {name!r}")
    return space
