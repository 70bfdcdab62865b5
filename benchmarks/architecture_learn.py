"""Does a short PPO run beat random latent sampling on the architectural envs?

For each env, a seeded PPO run (``designgym.agents.training.train``) and then, on the same held-out
seeded briefs (the seeds the run's final evaluation uses, 10 000 + seed onward):

- ``ppo``: the trained policy, deterministic;
- ``uniform actions``: the random policy of the run's own report (latents uniform in the bound);
- ``prior samples``: latents drawn from the generator's prior ``N(0, I)`` (its raw samples);
- ``prior mean``: the latent 0 for every brief (what the generator makes with no search at all).

Feasible rate (every rule met), mean reward objective and mean return are printed as a table.

    python benchmarks/architecture_learn.py                       # both envs, 16 384 steps each
    python benchmarks/architecture_learn.py --env FloorPlan-v2 --timesteps 4096
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import numpy as np

from designgym.agents.rollouts import rollout
from designgym.agents.training import TrainConfig, train
from designgym.envs.registration import resolve_env_id


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", action="append", help="env id (repeatable); both architectural envs by default")
    p.add_argument("--timesteps", type=int, default=16_384)
    p.add_argument("--episodes", type=int, default=200, help="held-out briefs per method")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, default=4)
    args = p.parse_args(argv)
    envs = [resolve_env_id(e) for e in (args.env or ["FloorPlan-v2", "Massing-v2"])]
    print(f"{'env':<22} {'method':<16} {'feasible':>9} {'objective':>10} {'return':>9}")
    for env_id in envs:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            config = TrainConfig(env=env_id, algo="ppo", timesteps=args.timesteps, seed=args.seed,
                                 n_envs=args.n_envs, out=out, run_name="bench", eval_episodes=args.episodes,
                                 device="cpu", eval_freq=0, save_freq=0)
            result = train(config)
        seconds = time.perf_counter() - started
        env = gym.make(env_id)
        bound, shape = env.unwrapped.latent_bound, env.action_space.shape
        rng = np.random.default_rng(args.seed + 1)
        seed = 10_000 + args.seed

        def prior_sample(obs, rng=rng, bound=bound, shape=shape):
            return np.clip(rng.standard_normal(shape) / bound, -1, 1).astype(np.float32)

        def prior_mean(obs, shape=shape):
            return np.zeros(shape, np.float32)

        prior = rollout(env, prior_sample, args.episodes, seed)["summary"]
        mean = rollout(env, prior_mean, args.episodes, seed)["summary"]
        name = env.unwrapped.problem.objective.name
        rows = {"ppo": result.metrics["trained"], "uniform actions": result.metrics["random"],
                "prior samples": prior, "prior mean": mean}
        for method, summary in rows.items():
            print(f"{env_id.split('/')[-1]:<22} {method:<16} {summary['feasible_rate']:>9.3f} "
                  f"{summary[f'mean_{name}']:>10.3f} {summary['mean_return']:>9.2f}")
        print(f"{'':<22} ({args.timesteps} PPO steps, {args.episodes} held-out briefs, {seconds:.0f} s)")
        env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
