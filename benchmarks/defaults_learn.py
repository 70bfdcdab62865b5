"""Do the shipped hyperparameters learn? Every algorithm on every built-in env, trained with its
shipped YAML settings for a fixed budget, against a random policy on the same seeded conditions.

"Learns" here means: the trained policy's mean return beats the random policy's by more than
twice the standard error of the difference (64 evaluation episodes each).

    python benchmarks/defaults_learn.py                         # 4096 steps per run, all envs and algorithms
    python benchmarks/defaults_learn.py --algos ppo --envs designgym/Cantilever-v1 --timesteps 20000
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import designgym
from designgym.agents.algorithms import ALGORITHMS
from designgym.agents.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="*", default=designgym.list_envs())
    parser.add_argument("--algos", nargs="*", default=sorted(ALGORITHMS))
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--vec-env", default="batched", choices=["dummy", "subproc", "batched"])
    args = parser.parse_args()
    print(f"{args.timesteps} steps per run ({args.vec_env} vec env), shipped hyperparameters, "
          f"{args.episodes} evaluation episodes, seed 0")
    print(f"{'env':<30} {'algo':<5} {'trained':>8} {'random':>8} {'margin':>7} {'2 s.e.':>7} {'learns':>6} "
          f"{'feasible':>9} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as out:
        for env_id in args.envs:
            for algo in args.algos:
                started = time.perf_counter()
                config = TrainConfig(env=env_id, algo=algo, timesteps=args.timesteps, seed=0, out=out,
                                     run_name=f"{env_id.split('/')[-1]}-{algo}", eval_episodes=args.episodes,
                                     eval_freq=0, save_freq=0, device="cpu", vec_env=args.vec_env)
                metrics = train(config).metrics
                t, r = metrics["trained"], metrics["random"]
                se = 2 * math.sqrt((t["std_return"] ** 2 + r["std_return"] ** 2) / args.episodes)
                margin = t["mean_return"] - r["mean_return"]
                print(f"{env_id:<30} {algo:<5} {t['mean_return']:8.2f} {r['mean_return']:8.2f} {margin:7.2f} "
                      f"{se:7.2f} {'yes' if margin > se else 'NO':>6} {t['feasible_rate']:8.0%} "
                      f"{time.perf_counter() - started:8.0f}", flush=True)


if __name__ == "__main__":
    main()
