"""Why Extrusion-v2 and MBB-v2 repair their designs: how close the best legal designs lie to the edge
of the legal region, with and without the repair step, and what that does to a one-shot designer.

1. For the first ``--cases`` test cases, a 200-design CMA-ES (ranked feasible first) finds a legal
   design; its latent is perturbed ``--draws`` times by Gaussian noise of each ``--noise`` (in
   action units, where the whole range is [-1, 1]) and the share of perturbed designs that are
   still legal is reported, with the rules the others break.
2. ``--steps`` > 0: search distillation trained that long on the env with and without repair, and
   its one-shot designs on the same cases: the share that meets every rule.

    python benchmarks/legal_margin.py --env designgym/Extrusion-v2
    python benchmarks/legal_margin.py --env designgym/MBB-v2 --steps 40000
"""

from __future__ import annotations

import argparse
import collections
import tempfile

import gymnasium as gym
import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="designgym/Extrusion-v2")
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--noise", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    p.add_argument("--steps", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    from designgym.agents.scoring import _reset_options, test_split
    from designgym.agents.search import judge, search

    torch.set_num_threads(1)
    cases = test_split(args.env, args.cases)
    print(f"{args.env}, {args.cases} test cases, {args.draws} perturbations of each legal CMA-ES@200 design")
    for repair in (False, True):
        env = gym.make(args.env, repair=repair).unwrapped
        rng = np.random.default_rng(0)
        kept = {s: [] for s in args.noise}
        broken: dict[float, collections.Counter] = {s: collections.Counter() for s in args.noise}
        legal_designs = 0
        for i, case in enumerate(cases):
            env.reset(options=_reset_options(case))
            best = search(env, env.conditions, "cmaes", [200], seed=i)[0]
            if not best["feasible"]:
                continue
            legal_designs += 1
            for sigma in args.noise:
                noise = rng.normal(0, sigma, (args.draws, len(best["action"])))
                moved = np.clip(best["action"][None, :] + noise, -1, 1)
                judged = judge(env, moved, env.conditions)
                kept[sigma].append(float(judged.feasible.mean()))
                for evaluation in judged.evaluations:
                    broken[sigma].update(k for k, v in evaluation.violations.items() if v > 1e-9)
        print(f"  repair={repair}: a legal design found for {legal_designs} of {len(cases)} cases")
        for sigma in args.noise:
            total = args.draws * max(legal_designs, 1)
            rules = ", ".join(f"{k} {n / total:.0%}" for k, n in broken[sigma].most_common())
            print(f"    noise {sigma:<5} still legal {np.mean(kept[sigma]):5.1%}   broken: {rules or 'none'}")
        env.close()
    if args.steps:
        from designgym.agents.evaluation import load_agent
        from designgym.agents.training import TrainConfig, train

        for repair in (False, True):
            with tempfile.TemporaryDirectory() as out:
                result = train(TrainConfig(env=args.env, algo="distill", timesteps=args.steps, seed=0, out=out,
                                           run_name="run", env_kwargs={"repair": repair}, eval_freq=0, save_freq=0,
                                           eval_episodes=4, threads=1))
                agent = load_agent(result.run_dir)
                env = gym.make(args.env, repair=repair)
                legal = []
                for case in cases:
                    obs, _ = env.reset(options=_reset_options(case))
                    _, _, _, _, info = env.step(agent.act(obs))
                    legal.append(info["feasible"])
                env.close()
            print(f"  search distillation, {args.steps} steps, repair={repair}: one-shot designs legal in "
                  f"{np.mean(legal):.0%} of the {len(cases)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
