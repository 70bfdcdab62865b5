"""Subprocess vector envs run and agree with in-process ones under the start method users get.

Each test runs a fresh Python without ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (which conftest.py
sets for the suite, and which would hide a hang: with one OpenMP thread no pool ever starts), so the
parent runs torch on several threads before it forks, as a user's process does. A hang fails the
test at the timeout instead of holding up the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is a POSIX start method")

# Shared by every script: the parent runs its torch work on at least two threads, as on any user's
# multi-core machine (on a one-core runner torch would start no pool and could not meet the hang),
# then steps a SyncVectorEnv in-process (which also leaves the OpenMP pool running before the fork)
# and the vector env under test with the same seeds and actions.
PRELUDE = """
import json
import sys

import gymnasium as gym
import numpy as np
import torch

import designgym  # noqa: F401

torch.set_num_threads(max(2, torch.get_num_threads()))


def rollout(vec, steps=4):
    vec.action_space.seed(7)
    actions = [vec.action_space.sample() for _ in range(steps)]
    obs, _ = vec.reset(seed=[11, 12])
    observations, rewards = [np.asarray(obs, dtype=np.float64)], []
    for action in actions:
        obs, reward, _, _, _ = vec.step(action)
        observations.append(np.asarray(obs, dtype=np.float64))
        rewards.append(np.asarray(reward, dtype=np.float64))
    vec.close()
    return np.stack(observations), np.stack(rewards)


def report(sync, other):
    print(json.dumps({
        "obs_gap": float(np.max(np.abs(sync[0] - other[0]))),
        "reward_gap": float(np.max(np.abs(sync[1] - other[1]))),
        "reward_spread": float(np.ptp(sync[1])),
    }))
"""


def run_script(body: str, *args: str) -> dict:
    """Run ``PRELUDE + body`` in a fresh Python with the user's thread settings; its last stdout
    line is JSON."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = PRELUDE + textwrap.dedent(body)
    # A session of its own, so that a hang is ended with every worker it forked, not only the parent.
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"hung: no result within {TIMEOUT_S} s (a forked worker deadlocked?)")
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def assert_same_rollout(result: dict) -> None:
    # The workers run torch on one thread and the parent on several, so a generator's sums may
    # be ordered differently: equal up to float32 rounding.
    assert result["obs_gap"] <= 1e-5, result
    assert result["reward_gap"] <= 1e-4, result
    assert result["reward_spread"] > 0, f"the rollout is constant, so agreement shows nothing: {result}"


@pytest.mark.parametrize("env_id", ["designgym/Extrusion-v2", "designgym/Cantilever-v1"])
def test_make_vec_async_with_the_default_start_method(env_id: str) -> None:
    result = run_script(
        """
        env_id = sys.argv[1]
        sync = rollout(gym.make_vec(env_id, num_envs=2, vectorization_mode="sync"))
        report(sync, rollout(gym.make_vec(env_id, num_envs=2, vectorization_mode="async")))
        """,
        env_id,
    )
    assert_same_rollout(result)


@pytest.mark.parametrize("env_id", ["designgym/Extrusion-v2", "designgym/Massing-v2"])
def test_async_vector_env_built_directly_with_fork(env_id: str) -> None:
    result = run_script(
        """
        env_id = sys.argv[1]
        make = lambda: gym.make(env_id)  # noqa: E731
        sync = rollout(gym.vector.SyncVectorEnv([make, make]))
        report(sync, rollout(gym.vector.AsyncVectorEnv([make, make], context="fork")))
        """,
        env_id,
    )
    assert_same_rollout(result)


def test_subproc_vec_env_with_fork() -> None:
    result = run_script(
        """
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        make = lambda: gym.make("designgym/Cantilever-v1")  # noqa: E731


        def sb3_rollout(vec, steps=4):
            vec.seed(11)
            rng = np.random.default_rng(7)
            actions = rng.uniform(-1, 1, size=(steps, 2, *vec.action_space.shape)).astype(np.float32)
            observations, rewards = [vec.reset().astype(np.float64)], []
            for action in actions:
                obs, reward, _, _ = vec.step(action)
                observations.append(obs.astype(np.float64))
                rewards.append(reward.astype(np.float64))
            vec.close()
            return np.stack(observations), np.stack(rewards)


        sync = sb3_rollout(DummyVecEnv([make, make]))
        report(sync, sb3_rollout(SubprocVecEnv([make, make], start_method="fork")))
        """
    )
    assert_same_rollout(result)


def test_forked_pool_decodes_after_the_parent_did() -> None:
    result = run_script(
        """
        import multiprocessing

        from designgym.generators import load

        generator = load("extrusion-vae-32", device="cpu")
        latents = np.random.default_rng(0).standard_normal((4, 8, generator.latent_dim)).astype(np.float32)


        def decode(z):
            return generator.decode_numpy(z)


        here = [decode(z) for z in latents]
        with multiprocessing.get_context("fork").Pool(2) as pool:
            there = pool.map(decode, latents)
        gap = max(float(np.max(np.abs(a - b))) for a, b in zip(here, there))
        print(json.dumps({"gap": gap, "spread": float(np.ptp(np.stack(here)))}))
        """
    )
    assert result["gap"] <= 1e-5, result
    assert result["spread"] > 0, result
