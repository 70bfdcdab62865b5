"""Black-box baselines on the same conditions and budget as an agent (``designgym baseline``).

Each method searches the env's action space ``[-1, 1]^latent_dim`` (the latent is
``latent_bound`` times the action, as in a direct-mode step) for the best design by the gated key
of :mod:`designgym.agents.search`: feasible first, then the env's score (its reward objective
minus its weighted constraint penalties, the reward of a direct-mode step up to the start
design's constant). ``budget`` is the number of designs judged per set of conditions.

- ``random``: uniform draws from the action space;
- ``cmaes``: CMA-ES (the ``cmaes`` package) from the centre, step size 0.5;
- ``tpe``: Optuna's TPE sampler;
- ``reference``: the problem's classical optimizer (SIMP for the structures); its budget is its
  own (``evaluations`` counts its finite-element solves where it has a model).

By default the conditions are those of ``designgym eval``'s seeded episodes (seed 10000 on), so
an agent and the baselines are compared on the same cases.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from designgym.agents.pictures import caption as _caption
from designgym.agents.search import judge_batch, search

METHODS = ("random", "cmaes", "tpe", "reference")


def seeded_conditions(env_id: str, episodes: int, seed: int = 10_000, **env_kwargs: Any) -> list[dict[str, Any]]:
    """The conditions that episodes ``seed, seed + 1, ...`` of the env draw (as ``designgym eval`` uses)."""
    env = gym.make(env_id, **env_kwargs)
    out = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        out.append(dict(env.unwrapped.conditions))
    env.close()
    return out


def run_baseline(
    env_id: str,
    method: str,
    budget: int,
    conditions: Sequence[Mapping[str, Any]],
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The best design each method finds for each set of conditions, within ``budget`` judged designs."""
    if method not in METHODS:
        raise ValueError(f"unknown baseline method {method!r}; choose one of {', '.join(METHODS)}")
    if budget < 1:
        raise ValueError(f"budget must be >= 1 judged design, got {budget}")
    env = gym.make(env_id, **dict(env_kwargs or {}))
    base = env.unwrapped
    problem = base.problem
    rows, images, captions = [], [], []
    from tqdm import tqdm

    for i, given in enumerate(tqdm(conditions, desc=f"{method} baseline", disable=not progress, leave=False)):
        checked = problem.check_conditions({**problem.default_conditions(), **dict(given)})
        start = time.perf_counter()
        if method == "reference":
            design, used = _reference(problem, checked)
            evaluation = problem.evaluate(design, checked)
            score = _score(base, evaluation)
            best_at = used
        else:
            design, evaluation, score, used, best_at = _search(base, checked, method, budget, seed + i)
        seconds = time.perf_counter() - start
        rows.append({
            "case": i,
            "score": score,
            "feasible": evaluation.feasible,
            "evaluations": used,
            "evaluations_to_best": best_at,
            "seconds": seconds,
            **{f"condition/{k}": (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in checked.items()},
            **{f"objective/{k}": v for k, v in evaluation.objectives.items()},
            **{f"violation/{k}": v for k, v in evaluation.violations.items()},
        })
        if len(images) < 16:
            info = {"objectives": evaluation.objectives, "violations": evaluation.violations,
                    "feasible": evaluation.feasible}
            images.append(problem.render(design, checked))
            captions.append(_caption(info, problem.objective.name))
    env.close()
    main = problem.objective.name
    summary = {
        "method": method,
        "budget": budget if method != "reference" else None,
        "cases": len(rows),
        "mean_score": float(np.mean([r["score"] for r in rows])),
        "feasible_rate": float(np.mean([r["feasible"] for r in rows])),
        f"mean_{main}": float(np.mean([r[f"objective/{main}"] for r in rows])),
        "mean_evaluations": float(np.mean([r["evaluations"] for r in rows])) if rows[0]["evaluations"] else None,
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
    }
    return {"env": env_id, "summary": summary, "cases": rows, "images": images, "captions": captions}


def _score(env: Any, evaluation: Any) -> float:
    return env.design_score(evaluation)


def _judge(env: Any, action: np.ndarray, conditions: dict[str, Any]) -> tuple[np.ndarray, Any, float]:
    designs, evaluations, scores = judge_batch(env, np.asarray(action)[None, :], conditions)
    return designs[0], evaluations[0], float(scores[0])


def _search(env: Any, conditions: dict[str, Any], method: str, budget: int, seed: int
            ) -> tuple[np.ndarray, Any, float, int, int]:
    best = search_anytime(env, conditions, method, [budget], seed)[0]
    return best["design"], best["evaluation"], best["score"], budget, best["evaluations_to_best"]


def search_anytime(
    env: Any, conditions: dict[str, Any], method: str, budgets: Sequence[int], seed: int
) -> list[dict[str, Any]]:
    """One search of ``max(budgets)`` judged designs from the centre of the latent space, read off
    at each budget (:func:`designgym.agents.search.search`): the best design by the gated key
    (feasible first, then the env's score), with ``evaluations_to_best`` and ``seconds``."""
    return search(env, conditions, method, budgets, seed)


def _reference(problem: Any, conditions: dict[str, Any]) -> tuple[np.ndarray, int | None]:
    """The problem's own optimizer; counts its finite-element solves where it has a model."""
    model = getattr(problem, "model", None)
    if model is None or not hasattr(model, "compliance_and_sensitivity"):
        return problem.optimize(conditions), None
    original = model.compliance_and_sensitivity
    calls = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    model.compliance_and_sensitivity = counted
    try:
        design = problem.optimize(conditions)
    finally:
        del model.compliance_and_sensitivity  # the class's method again
    return design, calls
