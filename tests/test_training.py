"""Every algorithm trains on every built-in env with a tiny budget and leaves a loadable model."""

import json

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym.agents.training import ALGORITHMS, TrainConfig, train

TINY = {
    "ppo": {"n_steps": 32, "batch_size": 32},
    "a2c": {"n_steps": 8},
    "sac": {"learning_starts": 32, "batch_size": 32},
    "td3": {"learning_starts": 32, "batch_size": 32},
}


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_tiny_training_run(tmp_path, algo, env_id):
    config = TrainConfig(env=env_id, algo=algo.upper(), timesteps=128, n_envs=2, out=str(tmp_path), run_name="r",
                         eval_episodes=2, hyperparams=TINY[algo], device="cpu")
    result = train(config)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["algo"] == algo and np.isfinite(metrics["trained"]["mean_return"])
    model = ALGORITHMS[algo].load(result.model_path, device="cpu")
    obs, _ = gym.make(env_id).reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == gym.make(env_id).action_space.shape


def test_dict_observations_train_with_the_multi_input_policy(tmp_path):
    config = TrainConfig(env="designgym/ExtrusionSteps-v0", timesteps=64, n_envs=1, out=str(tmp_path),
                         run_name="d", eval_episodes=1, hyperparams=TINY["ppo"], device="cpu",
                         env_kwargs={"observation_layout": "dict"})
    result = train(config)
    assert type(designgym.agents.training.PPO.load(result.model_path).policy).__name__ == "MultiInputActorCriticPolicy"


def test_bad_settings_leave_no_run_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'"):
        train(TrainConfig(algo="dqn", out=str(tmp_path), run_name="x"))
    with pytest.raises(KeyError, match="unknown env"):
        train(TrainConfig(env="Extrusio-v0", out=str(tmp_path), run_name="x"))
    assert not (tmp_path / "x").exists()
