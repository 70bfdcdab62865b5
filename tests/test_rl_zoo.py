"""The hyperparameter files in RL Baselines3 Zoo: the shipped ones and a study's best_hyperparams.yml
train there unchanged, run as a user runs the Zoo (`python -m rl_zoo3.train`, in a fresh process)."""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from stable_baselines3 import PPO
from torch import nn

from designgym.agents.hyperparams import load_hyperparams, policy_kwargs, shipped_file, zoo_entry
from designgym.agents.training import TrainConfig, resolve_hyperparams

ZOO_ALGORITHMS = ("a2c", "ppo", "sac", "td3")
# A study small enough for the suite: one trial of 256 steps, scored once on 2 seeded episodes.
TINY_STUDY = ["--env", "Extrusion-v2", "--algo", "ppo", "--timesteps-per-trial", "256", "--n-evaluations", "1",
              "--eval-episodes", "2", "--n-trials", "1", "--device", "cpu", "--no-progress", "--json"]


def user_env() -> dict[str, str]:
    """The environment a user runs in: without the thread limits the test suite sets for itself."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=user_env())


def zoo_train(conf: Path, env_id: str, folder: Path, algo: str = "ppo") -> Path:
    """Train with the Zoo for 256 steps; the path of the model it saved."""
    result = run("rl_zoo3.train", "--algo", algo, "--env", env_id, "--gym-packages", "designgym", "-conf", str(conf),
                 "-n", "256", "--eval-freq", "-1", "--seed", "0", "--device", "cpu", "-f", str(folder / "logs"),
                 cwd=folder)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    # The Zoo names its folders after the env id with '/' made '-': logs/<algo>/designgym-Extrusion-v2_1/.
    name = env_id.replace("/", "-")
    model = folder / "logs" / algo / f"{name}_1" / f"{name}.zip"
    assert model.is_file(), sorted(str(p) for p in (folder / "logs").rglob("*"))
    return model


@functools.cache
def shipped_ids() -> list[str]:
    listed = subprocess.run([sys.executable, "-m", "designgym", "envs", "--json"], capture_output=True, text=True,
                            timeout=120, env=user_env())
    assert listed.returncode == 0, listed.stderr
    ids = [e["id"] for e in json.loads(listed.stdout)["envs"] if e["source"] == "designgym"]
    assert "designgym/Extrusion-v2" in ids
    return ids


@pytest.mark.parametrize("algo", ZOO_ALGORITHMS)
def test_every_shipped_env_has_an_entry_the_zoo_finds_with_a_policy(algo):
    """The Zoo looks up the env id itself (`default` only from 2.8) and needs `policy`; designgym
    reads the same merged entries, and leaves the generic policy name to the observation space."""
    entries = yaml.safe_load(shipped_file(algo).read_text())  # as the Zoo reads it
    for env_id in shipped_ids():
        entry = entries.get(env_id)
        assert entry is not None, f"{algo}.yml has no entry for {env_id}"
        assert entry["policy"] == "MlpPolicy" and entry["n_timesteps"] >= 1000, (algo, env_id, entry)
        ours = load_hyperparams(algo, env_id)
        assert ours == {k: v for k, v in entry.items() if k != "policy"}, (algo, env_id)


def test_the_shipped_ppo_file_trains_in_the_zoo_unchanged(tmp_path):
    model = zoo_train(shipped_file("ppo"), "designgym/Extrusion-v2", tmp_path)
    agent = PPO.load(model, device="cpu")
    shipped = yaml.safe_load(shipped_file("ppo").read_text())["designgym/Extrusion-v2"]
    assert (agent.n_steps, agent.batch_size, agent.n_epochs) == (shipped["n_steps"], shipped["batch_size"],
                                                                shipped["n_epochs"])
    assert agent.num_timesteps >= 256


def test_a_study_s_best_hyperparams_train_in_the_zoo_unchanged(tmp_path):
    tuned = run("designgym", "tune", *TINY_STUDY, "--out", str(tmp_path / "study"), cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    best_file = tmp_path / "study" / "best_hyperparams.yml"
    agent = PPO.load(zoo_train(best_file, "designgym/Extrusion-v2", tmp_path), device="cpu")
    text = best_file.read_text()
    assert "python -m rl_zoo3.train --algo ppo --env designgym/Extrusion-v2 --gym-packages designgym" in text
    best = yaml.safe_load(text)["designgym/Extrusion-v2"]
    assert best["policy"] == "MlpPolicy"
    assert agent.n_steps == best["n_steps"] and agent.gamma == pytest.approx(best["gamma"])
    assert agent.lr_schedule(1.0) == pytest.approx(best["learning_rate"])
    expected_net = policy_kwargs(best["policy_kwargs"], "best_hyperparams.yml")["net_arch"]
    assert agent.policy.net_arch in (expected_net, {"pi": expected_net, "vf": expected_net})


def test_best_hyperparams_record_the_training_budget_not_the_trials(tmp_path):
    base = tmp_path / "base.yml"
    base.write_text("default:\n  n_steps: 16\n  n_timesteps: !!float 3e4\n")
    tuned = run("designgym", "tune", *TINY_STUDY, "--hyperparams", str(base), "--out", str(tmp_path / "study"),
                cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    best_file = tmp_path / "study" / "best_hyperparams.yml"
    text = best_file.read_text()
    assert yaml.safe_load(text)["designgym/Extrusion-v2"]["n_timesteps"] == 30_000  # not the trial's 256
    assert f"# n_timesteps is the training budget of the settings the study searched under ({base})" in text
    # So `designgym train --hyperparams best_hyperparams.yml` trains as long as the base settings say.
    config = TrainConfig(env="designgym/Extrusion-v2", hyperparams_file=str(best_file))
    resolve_hyperparams(config)
    assert config.timesteps == 30_000


def test_zoo_entries_spell_what_the_zoo_cannot_read_as_it_can():
    settings = {"policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [32]}, "activation_fn": "ReLU"},
                "learning_rate": "0.001", "clip_range": "lin_0.2"}
    entry = zoo_entry(settings)
    assert entry["policy_kwargs"] == "dict(net_arch=dict(pi=[64, 64], vf=[32]), activation_fn=nn.ReLU)"
    # The Zoo evaluates the string with torch's nn in scope; designgym parses it to the same thing.
    zoo_reads = eval(entry["policy_kwargs"], {"nn": nn})  # noqa: S307
    assert zoo_reads == policy_kwargs(entry["policy_kwargs"], "x") == policy_kwargs(settings["policy_kwargs"], "x")
    assert entry["learning_rate"] == 0.001 and entry["clip_range"] == "lin_0.2"
