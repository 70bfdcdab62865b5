"""Add to a shipped generator's card how often its designs meet each rule inside an env.

For prior samples (z ~ N(0, I)) and z = 0, one of each per brief, on briefs drawn fresh with the
seed: the share of designs meeting every rule and each rule alone, raw and, when the env repairs
its designs, after the env's repair. The figures go to the card's ``env_metrics`` under the env id
(the weights and their sha256 are not touched).

    python scripts/measure_generator_rules.py --env designgym/Massing-v2 --briefs 512
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from designgym.envs.registration import resolve_env_id
from designgym.generators import registry


def shares(problem, designs, briefs) -> dict[str, float]:
    evaluations = [problem.evaluate(d, b) for d, b in zip(designs, briefs, strict=True)]
    out = {"feasible_rate": float(np.mean([e.feasible for e in evaluations]))}
    for rule in problem.violation_names:
        out[f"meets/{rule}"] = float(np.mean([e.violations[rule] <= 0 for e in evaluations]))
    feasible = [e.objectives[problem.objective.name] for e in evaluations if e.feasible]
    out["mean_objective_feasible"] = float(np.mean(feasible)) if feasible else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="a built-in env id")
    parser.add_argument("--briefs", type=int, default=512)
    parser.add_argument("--seed", type=int, default=2027)
    args = parser.parse_args(argv)
    env_id = resolve_env_id(args.env)
    env = gym.make(env_id).unwrapped
    problem, generator = env.problem, env.generator
    name = generator.name
    rng = np.random.default_rng(args.seed)
    briefs = [problem.sample_conditions(rng) for _ in range(args.briefs)]
    keys = tuple(generator.condition_keys) or None
    vectors = np.stack([problem.conditions_vector(b, keys) for b in briefs])
    low, high = float(problem.design_space.low.min()), float(problem.design_space.high.max())
    metrics: dict[str, float] = {"briefs": args.briefs}
    latents = {"prior": np.random.default_rng(args.seed + 1).standard_normal((args.briefs, generator.latent_dim)),
               "prior_mean": np.zeros((args.briefs, generator.latent_dim))}
    for label, z in latents.items():
        raw = np.clip(generator.decode_numpy(z.astype(np.float32), vectors), low, high)
        metrics.update({f"{label}_raw_{k}": v for k, v in shares(problem, raw, briefs).items()})
        if env.repair:
            repaired = [problem.repair(d, b) for d, b in tqdm(list(zip(raw, briefs, strict=True)), desc=label)]
            metrics.update({f"{label}_repaired_{k}": v for k, v in shares(problem, repaired, briefs).items()})
    path = registry.WEIGHTS_DIR / f"{name}.json"
    card = json.loads(path.read_text())
    card.setdefault("env_metrics", {})[env_id] = {
        "command": (f"python scripts/measure_generator_rules.py --env {env_id} --briefs {args.briefs} "
                    f"--seed {args.seed}"),
        "repair": bool(env.repair), **metrics}
    path.write_text(json.dumps(card, indent=2) + "\n")
    for key, value in metrics.items():
        if "feasible_rate" in key:
            print(f"{env_id} {key}: {value:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
