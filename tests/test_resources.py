"""Resource use: memory stays flat over thousands of env steps, and the batched vector env lets go
of its generator (and the GPU memory of it) when closed."""

import gc
import os
import sys
import tracemalloc
import weakref

import gymnasium as gym
import numpy as np
import pytest
import torch

from designgym.envs.vector import make_batched_vec_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")


def resident_mb() -> float:
    """This process's resident memory now (not its peak, which earlier tests set)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_steps(env: gym.Env, steps: int, rng: np.random.Generator) -> None:
    env.reset(seed=int(rng.integers(2**31)))
    for _ in range(steps):
        *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()


def test_memory_stays_flat_over_thousands_of_steps():
    env = gym.make("designgym/Extrusion-v2")
    rng = np.random.default_rng(0)
    run_steps(env, 500, rng)  # caches fill, allocators settle
    gc.collect()
    before = resident_mb()
    run_steps(env, 4000, rng)
    gc.collect()
    grown = resident_mb() - before
    assert grown < 8.0, f"resident memory grew {grown:.1f} MB over 4000 steps"

    # Python-level allocations (numpy arrays included), exactly: a leak of 70 bytes a step shows.
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        run_steps(env, 1500, rng)
        gc.collect()
        end = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    traced = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    assert traced < 100 * 1024, f"Python allocations grew {traced / 1024:.0f} KB over 1500 steps"
    env.close()


def test_memory_stays_flat_over_thousands_of_finite_element_solves():
    """The structures keep factorisations and run helper processes: memory outside Python (CHOLMOD's
    factors) is seen in the resident size."""
    vec = make_batched_vec_env("Cantilever-v1", n_envs=4, seed=0)
    rng = np.random.default_rng(0)
    vec.reset()
    for _ in range(100):
        vec.step(rng.uniform(-1, 1, (4, 8)).astype(np.float32))
    gc.collect()
    before = resident_mb()
    for _ in range(400):  # 1,600 designs solved
        vec.step(rng.uniform(-1, 1, (4, 8)).astype(np.float32))
    gc.collect()
    grown = resident_mb() - before
    vec.close()
    assert grown < 8.0, f"resident memory grew {grown:.1f} MB over 1600 solves"


def test_a_closed_batched_vec_env_lets_go_of_its_generator_and_problem():
    """A trained model keeps its vector env; closing it must free the generator's weights all the same."""
    vec = make_batched_vec_env("Extrusion-v2", n_envs=3, seed=0)
    vec.reset()
    vec.step(np.zeros((3, 8), dtype=np.float32))
    generator, problem = weakref.ref(vec.envs[0].generator), weakref.ref(vec.envs[0].problem)
    vec.close()
    gc.collect()
    assert generator() is None and problem() is None  # vec itself is still alive, as a model would hold it
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        vec.reset()
    vec.close()  # a second close is harmless


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_closed_batched_vec_env_gives_its_gpu_memory_back():
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    vec = make_batched_vec_env("Extrusion-v2", n_envs=64, seed=0, env_kwargs={"device": "cuda"})
    vec.reset()
    assert vec.envs[0].generator.device.type == "cuda"
    held = torch.cuda.memory_allocated()
    for _ in range(50):
        vec.step(np.random.default_rng(0).uniform(-1, 1, (64, 8)).astype(np.float32))
    # Decoded batches are copied to the host and freed: nothing accumulates while stepping.
    assert torch.cuda.memory_allocated() <= held + 1024 * 1024
    vec.close()
    gc.collect()
    assert torch.cuda.memory_allocated() == baseline
    assert torch.cuda.memory_reserved() <= torch.cuda.memory_allocated() + 2 * 1024 * 1024
