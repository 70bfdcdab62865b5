"""PPO training frames per second on Cantilever-v1 with each vector env, side by side in one process.

Frames per second is environment steps over the wall time of ``model.learn``, so it counts the
policy updates too. Every run uses designgym's default PPO settings (``DEFAULT_HYPERPARAMS``), the
same seed, and the same number of steps; SubprocVecEnv workers get one torch thread each.

    python benchmarks/ppo_fps.py                        # n_envs 8 and 32, 4096 steps each
    python benchmarks/ppo_fps.py --n-envs 8 --timesteps 2048
    python benchmarks/ppo_fps.py --kinds gpu batched --n-envs 1024 --timesteps 262144   # the GPU row

With the ``gpu`` kind the policy trains on the GPU as well; the others train on the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from stable_baselines3 import PPO

sys.path.insert(0, str(Path(__file__).parent))
from vec_env import build  # noqa: E402

from designgym.agents.algorithms import DEFAULT_HYPERPARAMS  # noqa: E402


def fps(kind: str, env_id: str, n: int, timesteps: int, seed: int = 0, batch_size: int | None = None) -> float:
    vec = build(kind, env_id, n, seed)
    device = "cuda" if kind == "gpu" else "cpu"
    settings = {**DEFAULT_HYPERPARAMS["ppo"], **({"batch_size": batch_size} if batch_size else {})}
    model = PPO("MlpPolicy", vec, seed=seed, device=device, verbose=0, **settings)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    elapsed = time.perf_counter() - start
    vec.close()
    return model.num_timesteps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="designgym/Cantilever-v1")
    parser.add_argument("--n-envs", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--kinds", nargs="*", default=["batched", "dummy", "subproc"],
                        choices=["batched", "torch", "gpu", "dummy", "subproc"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="PPO minibatch size instead of the shipped one (with 1,024 envs a rollout holds "
                             "n_steps x 1,024 frames)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"{args.env}, PPO {DEFAULT_HYPERPARAMS['ppo']}, {args.timesteps} steps per run; python "
          f"{platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} cores")
    print(f"{'n_envs':>6} " + " ".join(f"{k:>9}" for k in args.kinds)
          + f"   (frames/s)   {args.kinds[0]} vs the others")
    for n in args.n_envs:
        results = {kind: fps(kind, args.env, n, args.timesteps, batch_size=args.batch_size) for kind in args.kinds}
        lead = args.kinds[0]
        ratios = ", ".join(f"{results[lead] / v:.1f}x {k}" for k, v in results.items() if k != lead)
        print(f"{n:>6} " + " ".join(f"{v:9.1f}" for v in results.values()) + f"   {ratios}", flush=True)


if __name__ == "__main__":
    main()
