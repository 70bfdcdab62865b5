"""Checks of what a :class:`~designgym.envs.latent_env.LatentDesignEnv` is given: its choices, its
generator against its problem, violation weights, fixed conditions, and each action. Each raises a
``ValueError`` that names the argument and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from designgym.envs.problem import Problem
from designgym.generators.base import Generator


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def check_generator_fits(problem: Problem, generator: Generator) -> None:
    """The generator makes the problem's designs, from conditions the problem has."""
    label = generator.name or type(generator).__name__
    if tuple(generator.design_shape) != tuple(problem.design_space.shape):
        raise ValueError(
            f"generator {label} makes designs of shape {tuple(generator.design_shape)}, but problem "
            f"{problem.name} expects {problem.design_space.shape}; pick a generator trained for this problem"
        )
    wanted = int(getattr(generator, "conditions_dim", 0))
    if wanted == 0:
        return
    keys = tuple(getattr(generator, "condition_keys", ()) or ())
    have = tuple(problem.conditions_space.spaces)
    # Some of the problem's conditions, in the problem's order (the order of its vector).
    in_order = tuple(k for k in have if k in keys) == keys
    if keys and in_order:
        needed = problem.conditions_vector(problem.default_conditions(), keys=keys).size
    else:
        needed = problem.conditions_dim
    if (keys and not in_order) or wanted != needed:
        raise ValueError(
            f"generator {label} is conditioned on {wanted} condition values"
            + (f" ({', '.join(keys)})" if keys else "")
            + f", but problem {problem.name} has {problem.conditions_dim} ({', '.join(have)}); "
            "pick a generator trained for this problem"
        )


def resolve_weights(problem: Problem, weights: Mapping[str, float] | float | None) -> dict[str, float]:
    """A weight per constraint: the given ones, else the problem's defaults, else 1."""
    names = problem.violation_names
    defaults = dict(getattr(problem, "default_violation_weights", {}) or {})
    if weights is None:
        resolved = {n: float(defaults.get(n, 1.0)) for n in names}
    elif isinstance(weights, (int, float)):
        resolved = {n: float(weights) for n in names}
    else:
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(
                f"violation_weights names unknown constraint(s) {unknown}; problem {problem.name} has {list(names)}"
            )
        resolved = {n: float(weights.get(n, defaults.get(n, 1.0))) for n in names}
    negative = [n for n, w in resolved.items() if not np.isfinite(w) or w < 0]
    if negative:
        raise ValueError(f"violation weights must be finite and >= 0; bad: {negative}")
    return resolved


def check_partial_conditions(problem: Problem, conditions: Mapping[str, Any]) -> None:
    """Some of the problem's conditions (the others drawn later), each inside its range."""
    if not isinstance(conditions, Mapping):
        raise ValueError(f"conditions must be a dict, got {type(conditions).__name__}")
    problem.check_conditions({**problem.default_conditions(), **conditions})


def check_action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The action as ``float32`` of ``shape``, finite, clipped to ``[-1, 1]``."""
    try:
        array = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the action must be a number array of shape {shape}") from exc
    if array.shape != shape:
        raise ValueError(f"the action must have shape {shape} (one entry per latent dimension), got {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array)).tolist()
        raise ValueError(f"the action holds NaN or infinite values at indices {bad}")
    return np.clip(array, -1.0, 1.0)
