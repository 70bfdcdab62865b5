"""A PPO agent learns on the quick env: clearly above a random policy on the same seeded conditions."""

import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from designgym.agents.training import TrainConfig, train


@pytest.mark.slow
def test_ppo_learns_on_extrusion(tmp_path):
    config = TrainConfig(
        env="designgym/Extrusion-v2", algo="ppo", timesteps=12_288, seed=0, n_envs=4, out=str(tmp_path),
        run_name="learn", eval_episodes=64, device="cpu", eval_freq=0, save_freq=0,
    )
    result = train(config)
    trained, random = result.metrics["trained"], result.metrics["random"]
    # The env repairs each section to its area, walls and one piece, so random latents are mostly
    # legal; what a learning agent gains is stiffness (and fewer hollows than the die allows).
    # Seen: trained 1.9, random -0.8; the margin is three standard errors of random's mean.
    assert trained["mean_return"] > random["mean_return"] + 3 * random["std_return"] / math.sqrt(64)
    assert trained["mean_stiffness"] > random["mean_stiffness"]
    assert trained["feasible_rate"] >= random["feasible_rate"]

    events = EventAccumulator(str(next((result.run_dir / "tb").iterdir())))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("rollout/ep_rew_mean", "design/feasible_rate", "design/objective/shape_factor",
                "design/violation/area_mismatch", "design/reward/objective"):
        assert tag in tags, tag
        assert all(math.isfinite(e.value) for e in events.Scalars(tag))


@pytest.mark.slow
def test_ppo_learns_on_cantilever(tmp_path):
    config = TrainConfig(
        env="designgym/Cantilever-v1", algo="ppo", timesteps=4096, seed=0, n_envs=4,
        out=str(tmp_path), run_name="learn", eval_episodes=64, device="cpu", eval_freq=0, save_freq=0,
    )
    result = train(config)
    trained, random = result.metrics["trained"], result.metrics["random"]
    # The env repairs every design to its volume budget joined to the clamp, so what random latents
    # still get wrong is the load path (about half of them leave the load on void) and stiffness.
    # Seen with these seeds on Cantilever-v0 (reward: the gain over the start design): return 4.1
    # trained vs -0.2 random (std 3.4 and 4.8 over 64 episodes, so the difference's standard error
    # is about 0.7), log stiffness gain 0.92 vs -2.42, 94 % vs 47 % feasible (standard error of that
    # difference about 0.07). On v1 (reward: the gain itself, no start design to measure from) the
    # gain after these 4,096 steps is -0.60 vs -2.42: a margin over two standard errors, not 3.
    assert trained["mean_return"] > random["mean_return"] + 1.4
    assert trained["mean_log_stiffness_gain"] > random["mean_log_stiffness_gain"] + 1.4
    assert trained["feasible_rate"] > random["feasible_rate"] + 0.2


@pytest.mark.slow
def test_ppo_finds_feasible_massings_where_random_latents_find_none(tmp_path):
    # On the raw generator, without Massing-v2's repair (which makes 98.6 % of raw samples legal).
    config = TrainConfig(
        env="designgym/Massing-v2", algo="ppo", timesteps=4096, seed=0, n_envs=4, out=str(tmp_path),
        run_name="learn", eval_episodes=64, device="cpu", eval_freq=0, save_freq=0, env_kwargs={"repair": False},
    )
    result = train(config)
    trained, random = result.metrics["trained"], result.metrics["random"]
    # Random latents spill mass into the setbacks and miss the floor area band; the generator's raw
    # samples meet every rule for 0.6 % of briefs (its card). Seen with these seeds: return -31
    # trained vs -129 random (std 22 and 89 over 64 briefs: the difference's standard error is
    # about 11, so 40 is over three of them), feasible 7.8 % (5 of 64) vs 0.
    assert trained["mean_return"] > random["mean_return"] + 40.0
    assert trained["feasible_rate"] > random["feasible_rate"]
