"""Checks of what a :class:`~designgym.envs.latent_env.LatentDesignEnv` is given: its choices, its
generator against its problem, violation weights, fixed conditions, and each action. Each raises a
``ValueError`` that names the argument and the fix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

import numpy as np

from designgym.envs.problem import Problem
from designgym.generators.base import Generator


def check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                 integer: bool = False) -> float:
    """``value`` as a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``), a whole one with
    ``integer``. NaN, infinities, strings and booleans are refused by name: a NaN argument would
    otherwise reach every reward and observation without an error."""
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number) or (integer and not number.is_integer()):
        raise ValueError(f"{name} must be {'a finite, whole' if integer else 'a finite'} number, got {value!r}")
    if number < low or number > high or (low_open and number == low):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value!r}")
    return number


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
        return {n: float(defaults.get(n, 1.0)) for n in names}
    if not isinstance(weights, Mapping):
        weight = check_number("violation_weights", weights, 0, 1e12)
        return {n: weight for n in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"violation_weights names unknown constraint(s) {unknown}; problem {problem.name} has {list(names)}"
        )
    return {n: check_number(f"violation_weights[{n!r}]", weights[n], 0, 1e12) if n in weights
            else float(defaults.get(n, 1.0)) for n in names}


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
