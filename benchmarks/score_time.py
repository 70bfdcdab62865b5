"""How long scoring an agent takes: `designgym score` on a 200-case test split, per env.

Scoring looks the reference values up instead of computing them; the baseline, measured in the
same run, is computing them (SIMP, or a 1,000-design CMA-ES per case) for the first
``--reference-cases`` cases, scaled to the split. The agent is the shipped one where an env has
one, else the zero action (the start design), which costs the same: one episode per case.

    python benchmarks/score_time.py            # every built-in env
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=None)
    p.add_argument("--reference-cases", type=int, default=5)
    args = p.parse_args(argv)

    import designgym
    from designgym.agents.evaluation import load_agent
    from designgym.agents.scoring import TEST_SPLIT_SIZE, make_references, score_policy, test_split

    print(f"{'env':<28} {'score s':>8} {'references s':>13} {'ratio':>7}  agent")
    for env_id in args.envs or designgym.list_envs():
        env_id = designgym.envs.resolve_env_id(env_id)
        try:
            act, who = load_agent("pretrained", env_id=env_id).act, "shipped"
        except FileNotFoundError:
            dim = designgym.make(env_id).action_space.shape
            act, who = (lambda obs, dim=dim: np.zeros(dim, np.float32)), "zero action"
        started = time.perf_counter()
        score_policy(env_id, act)
        scoring = time.perf_counter() - started
        started = time.perf_counter()
        make_references(env_id, cases=test_split(env_id, args.reference_cases))
        references = (time.perf_counter() - started) * TEST_SPLIT_SIZE / args.reference_cases
        print(f"{env_id:<28} {scoring:8.1f} {references:13.0f} {references / scoring:6.0f}x  {who}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
