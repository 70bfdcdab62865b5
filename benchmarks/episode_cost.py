"""What one direct-mode episode costs, in units of one ``Problem.evaluate`` of a new design.

Three things are timed in turns, round after round, in one process (one torch thread unless
``--threads``), each on
its own fresh conditions and random latents (nothing cached):

- ``evaluate``: ``problem.evaluate(design, conditions)`` of a design decoded beforehand: the unit;
- ``episode``: ``env.reset()`` (new conditions) and one ``env.step(random action)``, as the env is;
- ``episode + start``: the same with the start design decoded and judged as well
  (``env.start_evaluation()``), which is what every reset did before the direct-mode envs' current
  versions: the baseline of the speed-up.

Single-env steps per second are one over the episode time. The medians over rounds are shown.

    python benchmarks/episode_cost.py                           # Cantilever-v1
    python benchmarks/episode_cost.py --env designgym/MBB-v2 designgym/Extrusion-v2 --episodes 300
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import numpy as np
import torch

import designgym  # noqa: F401  (registers the envs)


def time_env(env_id: str, episodes: int, rounds: int, seed: int) -> dict[str, float]:
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    dim = env.action_space.shape[0]

    def fresh_designs(n: int) -> list[tuple[np.ndarray, dict]]:
        out = []
        for _ in range(n):
            env.reset(seed=int(rng.integers(2**31)))
            env.step(rng.uniform(-1, 1, dim).astype(np.float32))
            out.append((env.design.copy(), dict(env.conditions)))
        return out

    def run_evaluate() -> float:
        designs = fresh_designs(episodes)
        start = time.perf_counter()
        for design, conditions in designs:
            env.problem.evaluate(design, conditions)
        return (time.perf_counter() - start) / episodes

    def run_episode(with_start: bool) -> float:
        actions = rng.uniform(-1, 1, (episodes, dim)).astype(np.float32)
        start = time.perf_counter()
        for action in actions:
            env.reset()
            if with_start:
                env.start_evaluation()
            env.step(action)
        return (time.perf_counter() - start) / episodes

    env.reset(seed=seed)  # warm-up: loading, the uniform-compliance table, first factorisations
    run_episode(True)
    times: dict[str, list[float]] = {"evaluate": [], "episode": [], "episode + start": []}
    for _ in range(rounds):
        times["evaluate"].append(run_evaluate())
        times["episode"].append(run_episode(False))
        times["episode + start"].append(run_episode(True))
    env.close()
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["designgym/Cantilever-v1"])
    parser.add_argument("--episodes", type=int, default=200, help="episodes (and evaluations) per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; torch {torch.__version__}, "
          f"{args.threads} thread(s); "
          f"{args.episodes} episodes x {args.rounds} rounds, medians")
    print("| env | evaluate (ms) | episode (ms) | episode / evaluate | episode + start (ms) | ratio | "
          "steps/s | steps/s with start judged | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for env_id in args.env:
        t = time_env(env_id, args.episodes, args.rounds, args.seed)
        e, ep, old = t["evaluate"], t["episode"], t["episode + start"]
        print(f"| {env_id} | {1e3 * e:.2f} | {1e3 * ep:.2f} | {ep / e:.2f} | {1e3 * old:.2f} | {old / e:.2f} | "
              f"{1 / ep:.0f} | {1 / old:.0f} | {old / ep:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
