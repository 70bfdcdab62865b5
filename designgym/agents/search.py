"""Searches in a design env's latent space that rank designs as the suite's score does.

A design breaks a rule or it does not; the score (:mod:`designgym.agents.scoring`) gives every
design that breaks one 0, whatever its objective. So every search here ranks designs by the
*gated key* ``(feasible, design_score)``: a feasible design above every infeasible one, then the
env's own reward (its objective minus its weighted violations,
:meth:`~designgym.envs.latent_env.LatentDesignEnv.design_score`). Among infeasible designs the
penalties still point the way toward the feasible ones. A search aimed at the penalized reward
alone can prefer a slightly illegal design to a legal one; this one cannot.

Searches act in the env's action space ``[-1, 1]^latent_dim`` (the latent over ``latent_bound``,
as a direct-mode step takes it), decode a whole population in one generator call, finish each
design as the env does (its repair step, where it has one) and judge it with the env's problem.
Each judged design counts as one evaluation, the unit of every budget.

- ``random``: uniform draws from the action space;
- ``cmaes``: CMA-ES (the ``cmaes`` package), ranked by the gated key, from the centre (or a given
  start) with step size ``sigma``;
- ``tpe``: Optuna's TPE sampler on the gated key as one number (``design_score``, plus
  :data:`FEASIBLE_BONUS` for a feasible design).

None of them plans for its budget, so one long search read off at several budgets gives the
result of a search with each budget (:func:`search`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("random", "cmaes", "tpe")
#: Added to a feasible design's score where a method takes one number (TPE): larger than any
#: difference of scores, so every feasible design ranks above every infeasible one.
FEASIBLE_BONUS = 1e6
#: Designs decoded together by the random search.
_CHUNK = 64


@dataclass(frozen=True)
class Judged:
    """A batch of judged designs, in the order of the actions that made them."""

    actions: np.ndarray
    designs: np.ndarray
    evaluations: list[Any]
    scores: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        return np.array([e.feasible for e in self.evaluations], dtype=bool)

    def key(self, i: int) -> tuple[bool, float]:
        return gated_key(self.evaluations[i].feasible, self.scores[i])


def gated_key(feasible: bool, score: float) -> tuple[bool, float]:
    """What designs are ranked by: feasible first, then the env's score. Larger is better."""
    return bool(feasible), float(score)


def judge_batch(env: Any, actions: np.ndarray, conditions: Mapping[str, Any]
                ) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Designs, evaluations and scores (:meth:`LatentDesignEnv.design_score`) of a batch of actions
    under one set of conditions: one decode for all of them, then repair and judging as the env
    does. ``env`` is the unwrapped :class:`~designgym.envs.latent_env.LatentDesignEnv`."""
    judged = judge(env, actions, conditions)
    return judged.designs, judged.evaluations, judged.scores


def judge(env: Any, actions: np.ndarray, conditions: Mapping[str, Any]) -> Judged:
    """:func:`judge_batch` as one :class:`Judged`."""
    actions = np.clip(np.asarray(actions, dtype=np.float32).reshape(-1, env.generator.latent_dim), -1, 1)
    latents = actions * np.float32(env.latent_bound)
    vector = env.generator_conditions(conditions)
    if vector is None:
        decoded = env.generator.decode_numpy(latents)
    else:
        decoded = env.generator.decode_numpy(latents, np.repeat(vector[None, :], len(latents), axis=0))
    designs = np.stack([env.finish_design(design, conditions) for design in decoded])
    evaluations = env.problem.evaluate_batch(list(designs), [conditions] * len(designs))
    scores = np.array([env.design_score(e) for e in evaluations], dtype=np.float64)
    return Judged(actions, designs, evaluations, scores)


def search(
    env: Any,
    conditions: Mapping[str, Any],
    method: str,
    budgets: Sequence[int],
    seed: int,
    start: np.ndarray | None = None,
    sigma: float = 0.5,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """One search of ``max(budgets)`` judged designs, read off at each budget.

    Returns one entry per budget (ascending), each with the best ``action``, ``design``,
    ``evaluation``, ``score`` and ``feasible`` so far, ``evaluations_to_best`` and ``seconds``
    (wall time up to that budget). ``start`` (CMA-ES only) is the mean of the first generation,
    in action units; ``sigma`` its step size. ``bounds`` (``low``, ``high`` arrays within
    ``[-1, 1]``) narrows the box the search may draw from (default: the whole action space).
    """
    if method not in METHODS:
        raise ValueError(f"unknown search method {method!r}; choose one of {', '.join(METHODS)}")
    budgets = sorted({int(b) for b in budgets})
    if not budgets or budgets[0] < 1:
        raise ValueError(f"budgets must be >= 1 judged design, got {budgets}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    tracker = _Tracker(budgets)
    dim = env.generator.latent_dim
    low, high = (-np.ones(dim), np.ones(dim)) if bounds is None else _check_bounds(bounds, dim)
    total = budgets[-1]
    if method == "random":
        rng = np.random.default_rng(seed)
        while tracker.count < total:
            n = min(_CHUNK, tracker.to_next_budget())  # a snapshot's time holds only the designs before it
            tracker.add(judge(env, rng.uniform(low, high, (n, dim)), conditions))
    elif method == "cmaes":
        _cmaes(env, conditions, tracker, dim, total, seed, start, sigma, low, high)
    else:
        _tpe(env, conditions, tracker, dim, total, seed, low, high)
    return tracker.snapshots


def _check_bounds(bounds: tuple[np.ndarray, np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = (np.broadcast_to(np.asarray(b, dtype=np.float64), (dim,)).copy() for b in bounds)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError("search bounds must be finite")
    low, high = np.clip(low, -1.0, 1.0), np.clip(high, -1.0, 1.0)
    if np.any(high <= low):
        raise ValueError(f"search bounds are empty: low {low.tolist()} is not below high {high.tolist()}")
    return low, high


def _cmaes(env: Any, conditions: Mapping[str, Any], tracker: _Tracker, dim: int, total: int, seed: int,
           start: np.ndarray | None, sigma: float, low: np.ndarray, high: np.ndarray) -> None:
    import cmaes

    mean = (low + high) / 2 if start is None else np.asarray(start, dtype=np.float64)
    # cmaes wants the mean strictly inside the box
    margin = 1e-3 * (high - low)
    mean = np.clip(mean, low + margin, high - margin)
    strategy = cmaes.CMA(mean=mean, sigma=float(sigma), bounds=np.stack([low, high], axis=1), seed=int(seed) % 2**31)
    while tracker.count < total:
        asked = np.stack([strategy.ask() for _ in range(strategy.population_size)])
        n = min(len(asked), total - tracker.count)
        parts = []
        while sum(len(p.scores) for p in parts) < n:  # judged up to each budget, so its time is its own
            done = sum(len(p.scores) for p in parts)
            part = judge(env, asked[done : done + min(n - done, tracker.to_next_budget())], conditions)
            tracker.add(part)
            parts.append(part)
        if n < len(asked):
            break  # the budget ends inside this generation; nothing more is asked
        judged = Judged(np.concatenate([p.actions for p in parts]), np.concatenate([p.designs for p in parts]),
                        [e for p in parts for e in p.evaluations], np.concatenate([p.scores for p in parts]))
        # CMA-ES uses only the order of its population: rank by the gated key (0 = best).
        order = sorted(range(n), key=judged.key, reverse=True)
        ranks = np.empty(n)
        ranks[order] = np.arange(n)
        strategy.tell([(asked[i], float(ranks[i])) for i in range(n)])


def _tpe(env: Any, conditions: Mapping[str, Any], tracker: _Tracker, dim: int, total: int, seed: int,
         low: np.ndarray, high: np.ndarray) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: optuna.Trial) -> float:
        action = np.array([trial.suggest_float(f"a{j}", float(low[j]), float(high[j])) for j in range(dim)])
        judged = judge(env, action[None, :], conditions)
        tracker.add(judged)
        return float(judged.scores[0]) + (FEASIBLE_BONUS if judged.feasible[0] else 0.0)

    study.optimize(objective, n_trials=total)


class _Tracker:
    """The best design so far, and a snapshot of it whenever the count passes a budget."""

    def __init__(self, budgets: list[int]) -> None:
        self.budgets = budgets
        self.count = 0
        self.best: tuple[tuple[bool, float], int, Judged, int] | None = None
        self.snapshots: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def to_next_budget(self) -> int:
        return min(b for b in self.budgets if b > self.count) - self.count

    def add(self, judged: Judged) -> None:
        for i in range(len(judged.scores)):
            self.count += 1
            key = judged.key(i)
            if self.best is None or key > self.best[0]:
                self.best = (key, i, judged, self.count)
            if self.count in self.budgets:
                _, j, source, at = self.best
                self.snapshots.append({
                    "budget": self.count, "action": source.actions[j].copy(), "design": source.designs[j],
                    "evaluation": source.evaluations[j], "score": float(source.scores[j]),
                    "feasible": bool(source.evaluations[j].feasible), "evaluations_to_best": at,
                    "seconds": time.perf_counter() - self.started,
                })
