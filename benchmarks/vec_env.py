"""Env steps per second: the batched vector env against SB3's DummyVecEnv and SubprocVecEnv of single envs.

The kinds of vector env (``--kinds``; the first is the lead, whose ratio to each other is shown):

- ``batched``: ``make_batched_vec_env`` judging on the CPU (CHOLMOD, helper processes);
- ``torch``: the same with the device judge on the CPU (the block Cholesky solve as torch work);
- ``gpu``: ``make_batched_vec_env(device="cuda")``: decode, repair, rules and solve on the GPU;
- ``dummy``, ``subproc``: SB3's vector envs of single envs.

All step copies of the same registered env with the same kind of random actions. The vec envs
take turns for several rounds and the median of each is shown, so that the machine's drifts in
speed hit them alike (SubprocVecEnv's workers are separate processes, one per env, each limited
to one torch thread so that they do not fight over the cores). Each vec env is warmed up for a
few untimed steps first (loading, first factorisations). The batched env shares each step's
factorisations between this process and helper processes, one per further CPU core. Direct-mode envs end their episode
at every step, so the figures include the automatic reset of every env at every step.

    python benchmarks/vec_env.py                                   # Cantilever-v1, n_envs 1 8 32 128
    python benchmarks/vec_env.py --env designgym/Extrusion-v2 --n-envs 8 32 --steps 20
    python benchmarks/vec_env.py --kinds gpu batched dummy --n-envs 64 256 1024 --rounds 2   # the GPU rows
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import designgym
from designgym.envs.vector import make_batched_vec_env


def make_single(env_id: str, torch_threads: int | None = None) -> gym.Env:
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    return gym.make(env_id)


def build(kind: str, env_id: str, n: int, seed: int) -> VecEnv:
    if kind == "batched":
        return make_batched_vec_env(env_id, n_envs=n, seed=seed, device="cpu", judge="numpy")
    if kind == "torch":
        return make_batched_vec_env(env_id, n_envs=n, seed=seed, device="cpu", judge="torch")
    if kind == "gpu":
        vec = make_batched_vec_env(env_id, n_envs=n, seed=seed, device="cuda", judge="torch")
        assert vec.judge == "torch" and vec.envs[0].generator.device.type == "cuda"
        return vec
    if kind == "dummy":
        vec: VecEnv = DummyVecEnv([partial(make_single, env_id) for _ in range(n)])
    else:
        vec = SubprocVecEnv([partial(make_single, env_id, 1) for _ in range(n)])
    vec.seed(seed)
    return vec


def timed_steps(vec: VecEnv, steps: int, rng: np.random.Generator) -> float:
    """Env steps per second over ``steps`` steps of ``vec`` with random actions."""
    shape = (vec.num_envs, *vec.action_space.shape)
    actions = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(steps)]
    start = time.perf_counter()
    for a in actions:
        vec.step(a)  # returns numpy observations and rewards: the device work is finished
    return vec.num_envs * steps / (time.perf_counter() - start)


def compare(kinds: list[str], env_id: str, n: int, steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Median steps/s of each kind; the kinds take turns, round after round, so drifts in the
    machine's speed hit them alike."""
    vecs = {kind: build(kind, env_id, n, seed=0) for kind in kinds}
    rng = np.random.default_rng(0)
    for vec in vecs.values():
        vec.reset()
        timed_steps(vec, warmup, rng)
    results: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, vec in vecs.items():
            results[kind].append(timed_steps(vec, steps, rng))
    for vec in vecs.values():
        vec.close()
    return {kind: float(np.median(values)) for kind, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="designgym/Cantilever-v1")
    parser.add_argument("--n-envs", type=int, nargs="*", default=[1, 8, 32, 128])
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps of the vec env (default: enough for about 512 env steps, at least 5)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="turns each vec env takes; the median is shown")
    parser.add_argument("--subproc-max", type=int, default=32,
                        help="largest n_envs for SubprocVecEnv: each worker is a Python process with torch "
                             "loaded (about 0.3 GB)")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count())
    parser.add_argument("--kinds", nargs="+", default=["batched", "dummy", "subproc"],
                        choices=["batched", "torch", "gpu", "dummy", "subproc"],
                        help="vector envs to time; the first is the lead (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    env_id = designgym.make(args.env).spec.id
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"{env_id}; python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads in this process), {platform.machine()}, {os.cpu_count()} cores, {gpu}")
    lead, others = args.kinds[0], args.kinds[1:]
    print("| n_envs | " + " | ".join(f"{k} (steps/s)" for k in args.kinds) + " | "
          + " | ".join(f"{lead} / {k}" for k in others) + " |")
    print("|---" * (1 + len(args.kinds) + len(others)) + "|")
    for n in args.n_envs:
        steps = args.steps or max(5, 512 // n)
        kinds = [k for k in args.kinds if k != "subproc" or n <= args.subproc_max]
        r = compare(kinds, env_id, n, steps, args.warmup, args.rounds)
        cells = [f"{r[k]:.1f}" if k in r else "skipped" for k in args.kinds]
        ratios = [f"{r[lead] / r[k]:.1f}x" if k in r else "" for k in others]
        print(f"| {n} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
