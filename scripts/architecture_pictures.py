"""Pictures of the architectural envs for the README: for a few unseen briefs, the rule-based
design, the raw generator's (latent 0) and, given a trained run, the agent's, side by side.

    python scripts/architecture_pictures.py --env FloorPlan-v2 --run runs/<run> --out docs/floorplan.png
    python scripts/architecture_pictures.py --env Massing-v2 --out docs/massing.png   # without an agent
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

from designgym.agents.evaluation import load_agent
from designgym.agents.pictures import save_design_grid
from designgym.envs.registration import resolve_env_id


def caption(label: str, evaluation, objective: str) -> str:
    broken = [k for k, v in evaluation.violations.items() if v > 0]
    verdict = "meets every rule" if evaluation.feasible else "breaks " + ", ".join(broken[:2]) + (
        f" (+{len(broken) - 2})" if len(broken) > 2 else "")
    return f"{label}: {objective} {evaluation.objectives[objective]:.2f}\n{verdict}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--run", help="a training run folder (its agent's designs join the picture)")
    p.add_argument("--briefs", type=int, default=2)
    p.add_argument("--seed", type=int, default=20_000, help="episode seeds of the briefs (unseen in training)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    env_id = resolve_env_id(args.env)
    env = gym.make(env_id)
    problem = env.unwrapped.problem
    agent = load_agent(args.run) if args.run else None
    if problem.name == "floor_plan":
        from designgym.envs.architecture.floorplan_data import make_plan as make_rule_based
    else:
        from designgym.envs.architecture.massing_data import make_massing as make_rule_based
    images, captions = [], []
    objective = problem.objective.name
    for i in range(args.briefs):
        obs, _ = env.reset(seed=args.seed + i)
        brief = dict(env.unwrapped.conditions)
        rule_based = make_rule_based(problem, brief, np.random.default_rng(args.seed + i))
        if rule_based is not None:
            images.append(problem.render(rule_based, brief))
            captions.append(caption("rule-based", problem.evaluate(rule_based, brief), objective))
        env.step(np.zeros(env.action_space.shape, np.float32))
        images.append(problem.render(env.unwrapped.design, brief))
        captions.append(caption("generator, z = 0", env.unwrapped.evaluation, objective))
        if agent is not None:
            obs, _ = env.reset(seed=args.seed + i)
            env.step(agent.act(obs))
            images.append(problem.render(env.unwrapped.design, brief))
            captions.append(caption("agent", env.unwrapped.evaluation, objective))
    columns = 3 if agent is not None else 2
    save_design_grid(args.out, images, captions, title=env_id, columns=columns)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
