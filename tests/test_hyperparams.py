"""Hyperparameter files in the RL Zoo format: lookup by env id, precedence, parsing and clear errors."""

import pytest
from stable_baselines3 import PPO, TD3
from torch import nn

from designgym.agents.algorithms import ALGORITHMS
from designgym.agents.hyperparams import (
    HyperparamsError,
    algorithm_kwargs,
    check_keys,
    load_hyperparams,
    policy_kwargs,
    schedule,
)
from designgym.agents.training import TrainConfig, resolve_hyperparams, train


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_algorithm_ships_a_default_entry_that_its_constructor_accepts(algo):
    settings = load_hyperparams(algo, "designgym/Cantilever-v1")
    assert settings["n_envs"] >= 1 and settings["n_timesteps"] >= 1000
    check_keys(settings, ALGORITHMS[algo], f"{algo}.yml")


def test_env_entry_over_default_and_user_file_over_shipped(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text(
        "default:\n  n_steps: 32\n"
        "designgym/Cantilever-v1:\n  n_epochs: 3\n  learning_rate: lin_1e-3\n"
    )
    cantilever = load_hyperparams("ppo", "designgym/Cantilever-v1", path)
    assert cantilever["n_epochs"] == 3 and cantilever["n_steps"] == 64  # the shipped default, not mine
    assert cantilever["learning_rate"] == "lin_1e-3"
    extrusion = load_hyperparams("ppo", "designgym/Extrusion-v2", path)
    assert extrusion["n_steps"] == 32 and extrusion["n_epochs"] == 10


def test_params_override_the_files_and_fill_the_run_size(tmp_path):
    path = tmp_path / "h.yml"
    path.write_text("default:\n  n_envs: 3\n  n_timesteps: !!float 1e3\n  batch_size: 32\n")
    config = TrainConfig(env="designgym/Extrusion-v2", hyperparams_file=str(path), hyperparams={"batch_size": 16})
    settings = resolve_hyperparams(config)
    assert (config.n_envs, config.timesteps, settings["batch_size"]) == (3, 1000, 16)
    explicit = TrainConfig(env="designgym/Extrusion-v2", hyperparams_file=str(path), n_envs=2, timesteps=500)
    resolve_hyperparams(explicit)
    assert (explicit.n_envs, explicit.timesteps) == (2, 500)


def test_schedules_and_policy_kwargs_are_parsed_as_in_the_zoo():
    lin = schedule("lin_3e-4", "x")
    assert lin(1.0) == pytest.approx(3e-4) and lin(0.5) == pytest.approx(1.5e-4) and lin(0.0) == 0.0
    assert schedule("0.01", "x") == 0.01
    kwargs = policy_kwargs("dict(net_arch=dict(pi=[64, 64], vf=[32]), activation_fn=nn.ReLU, log_std_init=-2)", "f")
    assert kwargs == {"net_arch": {"pi": [64, 64], "vf": [32]}, "activation_fn": nn.ReLU, "log_std_init": -2}
    built = algorithm_kwargs({"noise_type": "normal", "noise_std": 0.2, "learning_rate": "lin_1e-3"}, 3, "f")
    assert built["action_noise"]._sigma.tolist() == [0.2, 0.2, 0.2] and built["learning_rate"](1.0) == 1e-3


@pytest.mark.parametrize(
    "text, message",
    [
        ("default:\n  n_stepz: 5\n", r"h.yml: unknown hyperparameter\(s\) \['n_stepz'\] for PPO"),
        ("default: [1, 2]\n", "the entry 'default' must be a mapping"),
        ("default:\n  n_steps: [\n", "is not valid YAML"),
        ("- 1\n- 2\n", "must map env ids"),
        ("default:\n  learning_rate: fast\n", "'fast' is neither a number nor a schedule"),
        ("default:\n  policy_kwargs: \"dict(net_arch=__import__('os'))\"\n", "policy_kwargs .* cannot be read"),
        ("default:\n  policy_kwargs: \"dict(activation_fn=nn.Swish)\"\n", "unknown activation_fn 'nn.Swish'"),
        ("default:\n  normalize: {norm_obs: true, scale: 2}\n", r"unknown normalize setting\(s\) \['scale'\]"),
    ],
)
def test_bad_files_name_the_key_and_the_file_and_make_no_run_folder(tmp_path, text, message):
    path = tmp_path / "h.yml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(env="designgym/Extrusion-v2", hyperparams_file=str(path), out=str(tmp_path / "runs"),
                          run_name="x"))
    assert not (tmp_path / "runs" / "x").exists()
    with pytest.raises(HyperparamsError, match="does not exist"):
        load_hyperparams("ppo", "designgym/Extrusion-v2", tmp_path / "missing.yml")


def test_td3_noise_settings_reach_the_model(tmp_path):
    config = TrainConfig(env="designgym/Extrusion-v2", algo="td3", timesteps=40, n_envs=1, out=str(tmp_path),
                         run_name="t", eval_episodes=1, device="cpu",
                         hyperparams={"learning_starts": 20, "batch_size": 16, "noise_std": 0.3})
    result = train(config)
    model = TD3.load(result.model_path, device="cpu")
    assert model.action_noise is not None and float(model.action_noise._sigma[0]) == pytest.approx(0.3)
    assert isinstance(PPO, type)


def test_types_are_checked_and_yaml_spellings_made_what_the_algorithm_takes():
    from stable_baselines3 import SAC

    from designgym.agents.hyperparams import HyperparamsError, check_types

    checked = check_types({"train_freq": [1, "episode"], "buffer_size": 1e5, "gamma": 0.98, "use_sde": False},
                          SAC, "my.yml")
    assert checked == {"train_freq": (1, "episode"), "buffer_size": 100_000, "gamma": 0.98, "use_sde": False}
    assert isinstance(checked["buffer_size"], int)
    for bad, message in [({"use_sde": 1}, "use_sde must be true or false"),
                         ({"batch_size": 64.5}, "batch_size must be a whole number"),
                         ({"tau": float("nan")}, "tau must be a finite number"),
                         ({"train_freq": "often"}, "train_freq must be a finite number")]:
        with pytest.raises(HyperparamsError, match=f"my.yml: {message}"):
            check_types(bad, SAC, "my.yml")
