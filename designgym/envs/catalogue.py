"""The catalogue of design problems by name (``"extrusion"``, ``"cantilever"``...).

An env can be given a problem by name, and registration builds envs: keeping the names here, apart
from :mod:`designgym.envs.registration`, lets :class:`~designgym.envs.latent_env.LatentDesignEnv`
look a problem up without importing the module that imports it. Env ids are registration's
business; :func:`designgym.envs.registration.make_problem` accepts both.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from designgym.envs.problem import Problem

ProblemFactory = Callable[..., Problem]


class UnknownNameError(KeyError):
    """No env, problem or generator by that name; the message suggests close names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_PROBLEMS: dict[str, ProblemFactory] = {}


def register_problem(name: str, factory: ProblemFactory) -> None:
    """Make ``make_problem(name)`` build a problem with ``factory(**kwargs)``."""
    _PROBLEMS[name] = factory


def problem_names() -> list[str]:
    """The names of the registered problems, in the order they were registered."""
    return list(_PROBLEMS)


def make_named_problem(name: str, **kwargs: Any) -> Problem:
    """A new :class:`Problem` of the registered problem ``name``, built with ``kwargs``.

    Raises:
        UnknownNameError: (a ``KeyError``) with the closest problem names, when there is no such problem.
    """
    if name not in _PROBLEMS:
        raise UnknownNameError(unknown_message("problem", name, problem_names()))
    return _PROBLEMS[name](**kwargs)


def unknown_message(kind: str, name: str, known: list[str]) -> str:
    """The message of an :class:`UnknownNameError`: ``name`` of ``kind`` is not among ``known``, and the
    closest of those."""
    # Names are compared without their namespace, which every built-in id shares.
    short: dict[str, list[str]] = {}
    for k in known:
        short.setdefault(k.split("/")[-1], []).append(k)
    matches = difflib.get_close_matches(name.split("/")[-1], list(short), n=3, cutoff=0.6)
    close = [k for m in matches for k in short[m]][:3]
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    listing = " Run `designgym envs` to list them." if kind == "env" else ""
    return f"unknown {kind} {name!r}{hint}{listing}"
