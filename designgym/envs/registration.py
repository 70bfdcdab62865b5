"""Registering design problems and design environments, and finding them again by name.

Environments are registered with Gymnasium (so ``gymnasium.make`` works) and also kept in a small
table of our own that carries a one-line description for ``designgym envs``; problems are named in
:mod:`designgym.envs.catalogue`. Third-party packages publish environments through the
``designgym.envs`` entry-point group: each entry point names a callable (called with no arguments)
or a module (imported) that registers its envs.

An env that the user's own module registers is named as Gymnasium names it, ``"module:namespace/Name-v0"``
(``"mylab.envs:mylab/HeatSink-v0"``): :func:`resolve_env_id` imports the module first. Whatever records an
env id for a later process (a run's ``config.json``, a vector env's worker) records that form
(:func:`env_reference`), so the later process finds the env too.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import gymnasium as gym

from designgym.envs.catalogue import (
    ProblemFactory,
    UnknownNameError,
    make_named_problem,
    problem_names,
    register_problem,  # noqa: F401  (public here too: ``registration.register_problem``)
    unknown_message,
)
from designgym.envs.latent_env import LatentDesignEnv
from designgym.envs.problem import Problem
from designgym.generators.base import Generator
from designgym.user_modules import import_user_module

ENTRY_POINT_GROUP = "designgym.envs"
NAMESPACE = "designgym"


@dataclass(frozen=True)
class DesignEnvSpec:
    """What designgym knows of a registered design environment."""

    id: str
    description: str
    problem: Problem | ProblemFactory | str
    generator: Generator | Callable[[], Generator] | str
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "designgym"
    #: The importable module that registered the env (``None``: designgym, a plugin, or ``__main__``).
    module: str | None = None


_ENVS: dict[str, DesignEnvSpec] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
#: Ids that a newer version replaced, with that version and what changed.
_RETIRED: dict[str, tuple[str, str]] = {}


class RetiredEnvError(UnknownNameError):
    """An env id that a newer version replaced; the message names the new id and what changed."""


def retire_env(old_id: str, new_id: str, why: str) -> None:
    """Mark ``old_id`` as replaced by ``new_id`` (which changed what a design, reward or observation
    means, so results of the two do not compare). The old id is not registered: ``gymnasium.make``
    says it is deprecated and names the new one, and designgym's commands say why as well."""
    _RETIRED[old_id] = (new_id, why)


def make_problem(name: str | Problem, **kwargs: Any) -> Problem:
    """A new :class:`Problem` by problem name (``"extrusion"``) or by env id.

    For an env id the problem is built as that environment builds it, so
    ``make_problem("designgym/Extrusion-v2")`` equals ``gymnasium.make(...).unwrapped.problem``.
    """
    if isinstance(name, Problem):
        return name
    if name in problem_names():
        return make_named_problem(name, **kwargs)
    env_id = resolve_env_id(name) if ":" in name else _lookup_env_id(name)
    if env_id is not None:
        return _build_problem(_ENVS[env_id].problem, kwargs)
    raise UnknownNameError(unknown_message("problem", name, problem_names() + list(_ENVS)))


def register_design_env(
    id: str,
    problem: Problem | ProblemFactory | str,
    generator: Generator | Callable[[], Generator] | str,
    *,
    description: str = "",
    source: str = "user",
    **env_kwargs: Any,
) -> str:
    """Register a design environment with Gymnasium and with ``designgym envs`` in one call.

    Args:
        id: ``"namespace/Name-vN"``, for example ``"mylab/Bracket-v0"``.
        problem: a :class:`Problem`, a factory returning one (such as the class itself), or the
            name of a registered problem.
        generator: a :class:`Generator`, a factory returning one, or a shipped generator's name.
        description: one line for ``designgym envs``.
        source: who registered it (the plugin's distribution name for entry-point plugins).
        **env_kwargs: defaults for :class:`LatentDesignEnv` (``action_mode``, ``episode_length``,
            ``violation_weights``, ...); ``gymnasium.make(id, **overrides)`` can override them.

    Returns:
        The id, for ``gymnasium.make``.
    """
    if not isinstance(id, str) or "/" not in id or not id.split("/")[-1]:
        raise ValueError(f"env id must look like 'namespace/Name-v0', got {id!r}")
    if not isinstance(problem, (Problem, str)) and not callable(problem):
        raise TypeError(f"problem must be a Problem, a factory or a registered name, got {type(problem).__name__}")
    if not isinstance(generator, (Generator, str)) and not callable(generator):
        raise TypeError(
            f"generator must be a Generator, a factory or a shipped name, got {type(generator).__name__}"
        )
    if ":" in id:
        raise ValueError(f"env id {id!r} holds a ':'; register 'namespace/Name-v0' (the 'module:' prefix is how "
                         "a command names the module that registers it)")
    if id in gym.registry:
        warnings.warn(f"design env {id!r} was already registered; the new registration replaces it", stacklevel=2)
        del gym.registry[id]
    module = _registering_module(source)
    _ENVS[id] = DesignEnvSpec(id, description, problem, generator, dict(env_kwargs), source, module)
    # An entry-point string, not the function: the spec then serialises (``env.spec.to_json()``), and
    # a fresh process (a spawned vector-env worker) given the spec imports the module that knows the env.
    gym.register(id=id, entry_point=f"{__name__}:_make_env",
                 kwargs={"design_env_id": id, **({"design_env_module": module} if module else {}), **env_kwargs})
    return id


def env_reference(env_id: str) -> str:
    """``env_id`` as another process can find it: ``"module:id"`` for an env that the user's own module
    registered (the process imports the module first), the plain id for designgym's envs and plugins."""
    env_id = resolve_env_id(env_id)
    module = _ENVS[env_id].module
    return f"{module}:{env_id}" if module else env_id


def list_envs() -> list[str]:
    """Ids of every registered design environment: built-in, plugins and the user's own."""
    load_plugins()
    return sorted(_ENVS)


def env_specs() -> list[DesignEnvSpec]:
    """The registered design environments with their descriptions, sorted by id."""
    load_plugins()
    return [_ENVS[k] for k in sorted(_ENVS)]


def resolve_env_id(env_id: str) -> str:
    """The full registered id for ``env_id`` (``"Extrusion-v2"`` finds ``"designgym/Extrusion-v2"``).

    ``"module:namespace/Name-v0"`` (Gymnasium's form) imports ``module`` first, which registers the env,
    and returns ``"namespace/Name-v0"``; a module in the working folder is found too, as ``python -m``
    would find it.

    Raises:
        UnknownNameError: (a ``KeyError``) with the closest registered ids, when there is no such env.
        ValueError: when the module named before the ``:`` cannot be imported.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ValueError(f"an env id must be a non-empty string like 'designgym/Extrusion-v2', got {env_id!r}")
    load_plugins()
    if ":" in env_id:
        module, _, env_id = env_id.rpartition(":")
        _import_env_module(module, env_id)
    found = _lookup_env_id(env_id)
    if found is None:
        retired = env_id if env_id in _RETIRED else f"{NAMESPACE}/{env_id}"
        if "/" not in env_id or env_id in _RETIRED:
            if retired in _RETIRED:
                new_id, why = _RETIRED[retired]
                raise RetiredEnvError(f"{retired} was replaced by {new_id}: {why}. Its results do not compare with "
                                      f"{new_id}'s; use {new_id}")
        raise UnknownNameError(unknown_message("env", env_id, list(_ENVS)))
    return found


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` for design envs, accepting short ids and suggesting close ones."""
    return gym.make(resolve_env_id(env_id), **kwargs)


_plugins_loaded = False


def load_plugins(force: bool = False) -> dict[str, str]:
    """Load every ``designgym.envs`` entry point once; return the ones that failed, with why.

    A broken plugin is reported with a warning and skipped: it must not stop designgym importing.
    """
    global _plugins_loaded
    if _plugins_loaded and not force:
        return dict(_PLUGIN_ERRORS)
    _plugins_loaded = True
    _PLUGIN_ERRORS.clear()
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry.dist, "name", None) or entry.value
        try:
            loaded = entry.load()
            before = set(_ENVS)
            if callable(loaded):
                loaded()
            for new_id in set(_ENVS) - before:
                spec = _ENVS[new_id]
                _ENVS[new_id] = DesignEnvSpec(
                    spec.id, spec.description, spec.problem, spec.generator, spec.kwargs, dist, spec.module
                )
        except Exception as exc:  # a plugin may fail in any way; say which one and go on
            _PLUGIN_ERRORS[entry.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"designgym plugin {entry.name!r} ({entry.value}) failed to load and was skipped: "
                f"{type(exc).__name__}: {exc}",
                stacklevel=2,
            )
    return dict(_PLUGIN_ERRORS)


# -- internals -------------------------------------------------------------------------------


def _registering_module(source: str) -> str | None:
    """The module of the code that called :func:`register_design_env`, when another process can import it."""
    if source != "user":
        return None
    frame = inspect.currentframe()
    try:
        # this function <- register_design_env <- its caller
        caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
        name = caller.f_globals.get("__name__") if caller is not None else None
    finally:
        del frame
    if not name or name == "__main__" or name.split(".")[0] == "designgym":
        return None
    return name


def _import_env_module(module: str, env_id: str) -> None:
    if not module or not env_id:
        raise ValueError(f"an env id with a module reads 'module:namespace/Name-v0', got {module + ':' + env_id!r}")
    try:
        import_user_module(module)
    except Exception as exc:  # the user's module may fail in any way: say which module, and why
        raise ValueError(f"cannot import {module!r}, the module named in env id '{module}:{env_id}' "
                         f"({type(exc).__name__}: {exc}); check that it is importable from this folder "
                         "(or installed), and runs") from None


def _make_env(design_env_id: str, design_env_module: str | None = None, **overrides: Any) -> gym.Env:
    # ``gymnasium.make(id, problem=..., generator=...)`` swaps in a problem or generator object, for
    # example one already loaded that many envs then share.
    if design_env_id not in _ENVS and design_env_module:
        _import_env_module(design_env_module, design_env_id)  # a fresh process given the spec
    spec = _ENVS[design_env_id]
    accepted = [name for name in inspect.signature(LatentDesignEnv.__init__).parameters if name != "self"]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        close = [m for key in unknown for m in difflib.get_close_matches(key, accepted, n=1)]
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise TypeError(f"unknown argument(s) {unknown} for env {design_env_id}{hint}; its arguments are "
                        f"{', '.join(a for a in accepted if a not in ('problem', 'generator'))}")
    problem = overrides.pop("problem", None)
    if problem is None:
        problem = _build_problem(spec.problem, {})
    generator = overrides.pop("generator", None)
    if generator is None:
        generator = spec.generator
        if callable(generator) and not isinstance(generator, (Generator, str)):
            generator = generator()
    return LatentDesignEnv(problem, generator, **overrides)


def _build_problem(problem: Problem | ProblemFactory | str, kwargs: dict[str, Any]) -> Problem:
    if isinstance(problem, Problem):
        return problem
    if isinstance(problem, str):
        return make_problem(problem, **kwargs)
    return problem(**kwargs)


def _lookup_env_id(env_id: str) -> str | None:
    if env_id in _ENVS:
        return env_id
    if "/" not in env_id and f"{NAMESPACE}/{env_id}" in _ENVS:
        return f"{NAMESPACE}/{env_id}"
    return None
