"""Seconds per design: a trained policy (forward pass, decode, one evaluation) against SIMP run to convergence.

Both make a design for the same seeded conditions of Cantilever-v1 (conditions no training run
draws: seed 20261123). The policy is PPO trained in this run for ``--train-steps`` steps (or loaded
with ``--model``): its speed does not depend on how well it is trained, and its quality is the
subject of benchmarks/quality.py, so the stiffness of both is printed only for context.

Two policy timings are given: the bare design step (``predict`` on the observation, decode, judge
the design) and the whole episode a user runs (``reset`` with the conditions, which judges the
start design for the observation, then the step). SIMP is ``Problem.optimize``: the density filter
and optimality criteria until the largest density change is below 0.01 (at most 200 iterations),
made binary at the target volume, then judged.

    python benchmarks/design_time.py
    python benchmarks/design_time.py --model runs/Cantilever-v1_ppo_s0_.../model.zip --designs 20
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO

import designgym
from designgym.agents.algorithms import DEFAULT_HYPERPARAMS
from designgym.envs.vector import make_batched_vec_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="designgym/Cantilever-v1")
    parser.add_argument("--model", default=None, help="a trained PPO model.zip (default: train one here)")
    parser.add_argument("--train-steps", type=int, default=4096)
    parser.add_argument("--designs", type=int, default=20, help="conditions for the policy")
    parser.add_argument("--simp-designs", type=int, default=5, help="of those, how many SIMP also solves")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    env_id = designgym.make(args.env).spec.id
    print(f"{env_id}; python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} cores")

    if args.model:
        model = PPO.load(args.model, device="cpu")
        source = args.model
    else:
        vec = make_batched_vec_env(env_id, n_envs=8, seed=0)
        model = PPO("MlpPolicy", vec, seed=0, device="cpu", **DEFAULT_HYPERPARAMS["ppo"])
        model.learn(args.train_steps)
        vec.close()
        source = f"PPO trained here for {args.train_steps} steps"

    env = gym.make(env_id).unwrapped
    problem = env.problem
    rng = np.random.default_rng(20261123)
    conditions = [problem.sample_conditions(rng) for _ in range(args.designs)]

    # Warm up (first decode, the uniform references of the load nodes) on conditions not timed.
    obs, _ = env.reset(seed=1)
    env.step(model.predict(obs, deterministic=True)[0])

    step_s, episode_s, gains = [], [], []
    for c in conditions:
        t0 = time.perf_counter()
        obs, _ = env.reset(options={"conditions": c})
        t1 = time.perf_counter()
        action, _ = model.predict(obs, deterministic=True)
        _, _, _, _, info = env.step(action)
        t2 = time.perf_counter()
        step_s.append(t2 - t1)
        episode_s.append(t2 - t0)
        gains.append(info["objectives"]["log_stiffness_gain"])

    simp_s, simp_gains = [], []
    for c in conditions[: args.simp_designs]:
        t0 = time.perf_counter()
        design = problem.optimize(c)
        evaluation = problem.evaluate(design, c)
        simp_s.append(time.perf_counter() - t0)
        simp_gains.append(evaluation.objectives["log_stiffness_gain"])

    policy_step, policy_episode, simp = np.median(step_s), np.median(episode_s), np.median(simp_s)
    print(f"policy: {source}")
    print(f"{'method':<34} {'s/design (median)':>18} {'designs':>8} {'log stiffness gain':>19}")
    print(f"{'policy: predict + decode + judge':<34} {policy_step:18.4f} {len(step_s):8d} {np.mean(gains):19.2f}")
    print(f"{'policy: whole episode (reset+step)':<34} {policy_episode:18.4f} {len(step_s):8d} {np.mean(gains):19.2f}")
    print(f"{'SIMP to convergence, judged':<34} {simp:18.4f} {len(simp_s):8d} {np.mean(simp_gains):19.2f}")
    print(f"SIMP / policy: {simp / policy_step:.0f}x (design step), {simp / policy_episode:.0f}x (whole episode)")


if __name__ == "__main__":
    main()
