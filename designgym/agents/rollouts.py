"""Seeded episodes of a policy, the one yardstick every judgement of an agent uses.

The final metrics of a run (trained against random), the pictures TensorBoard shows during
training and the score of a tuning trial all compare policies; they are comparable only because
each plays the same seeded episodes in the same way, which is why they share this one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


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
