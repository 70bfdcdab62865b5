"""Every algorithm trains on every built-in env with a tiny budget and leaves a loadable model."""

import json

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym.agents.algorithms import ALGORITHMS
from designgym.agents.training import TrainConfig, train

TINY = {
    "ppo": {"n_steps": 32, "batch_size": 32},
    "a2c": {"n_steps": 8},
    "sac": {"learning_starts": 32, "batch_size": 32},
    "td3": {"learning_starts": 32, "batch_size": 32},
    "distill": {"search_budget": 8, "rescue_budget": 8, "gradient_steps": 4, "batch_size": 32},
}


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_tiny_training_run(tmp_path, algo, env_id):
    config = TrainConfig(env=env_id, algo=algo.upper(), timesteps=128, n_envs=2, out=str(tmp_path), run_name="r",
                         eval_episodes=2, hyperparams=TINY[algo], device="cpu", eval_freq=0, save_freq=0)
    result = train(config)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["algo"] == algo and np.isfinite(metrics["trained"]["mean_return"])
    model = ALGORITHMS[algo].load(result.model_path, device="cpu")
    obs, _ = gym.make(env_id).reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == gym.make(env_id).action_space.shape


def test_dict_observations_train_with_the_multi_input_policy(tmp_path):
    config = TrainConfig(env="designgym/ExtrusionSteps-v1", timesteps=64, n_envs=1, out=str(tmp_path),
                         run_name="d", eval_episodes=1, hyperparams=TINY["ppo"], device="cpu", eval_freq=0,
                         env_kwargs={"observation_layout": "dict"})
    result = train(config)
    assert type(designgym.agents.training.PPO.load(result.model_path).policy).__name__ == "MultiInputActorCriticPolicy"


def test_bad_settings_leave_no_run_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm 'dqn'"):
        train(TrainConfig(algo="dqn", out=str(tmp_path), run_name="x"))
    with pytest.raises(KeyError, match="unknown env"):
        train(TrainConfig(env="Extrusio-v0", out=str(tmp_path), run_name="x"))
    assert not (tmp_path / "x").exists()


def test_batched_vec_env_trains_the_same_agent_as_dummy(tmp_path):
    # The batched env gives the same transitions as independent envs, so a seeded PPO run learns
    # the same policy (up to the float rounding of a batched generator pass).
    results = {}
    for vec_env in ("dummy", "batched"):
        config = TrainConfig(env="designgym/Cantilever-v1", timesteps=256, n_envs=4, vec_env=vec_env, seed=3,
                             out=str(tmp_path), run_name=vec_env, eval_episodes=4, hyperparams=TINY["ppo"],
                             device="cpu", eval_freq=0, save_freq=0)
        results[vec_env] = train(config)
    dummy, batched = (json.loads((results[k].run_dir / "metrics.json").read_text()) for k in ("dummy", "batched"))
    assert batched["trained"]["mean_return"] == pytest.approx(dummy["trained"]["mean_return"], rel=1e-4, abs=1e-6)
    monitor = results["batched"].run_dir / "monitor" / "batched.monitor.csv"
    assert len(monitor.read_text().splitlines()) == 2 + 256  # one-step episodes: a row per step
    assert (results["batched"].run_dir / "learning_curve.png").stat().st_size > 0


def test_unknown_vec_env_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown vec_env 'threads'; choose one of dummy, subproc, batched"):
        train(TrainConfig(vec_env="threads", out=str(tmp_path), run_name="x"))
    assert not (tmp_path / "x").exists()


def test_subproc_vec_env_runs_each_env_in_its_own_process(tmp_path):
    config = TrainConfig(env="designgym/Extrusion-v2", timesteps=64, n_envs=2, vec_env="subproc", out=str(tmp_path),
                         run_name="s", eval_episodes=2, hyperparams=TINY["ppo"], device="cpu", eval_freq=0)
    result = train(config)
    assert len(list((result.run_dir / "monitor").glob("*.monitor.csv"))) == 2
    assert json.loads((result.run_dir / "config.json").read_text())["vec_env"] == "subproc"


def test_run_folder_has_best_model_evaluations_checkpoints_and_normalisation(tmp_path):
    config = TrainConfig(env="designgym/Extrusion-v2", timesteps=256, n_envs=2, out=str(tmp_path), run_name="n",
                         eval_episodes=2, eval_freq=64, save_freq=64, device="cpu",
                         hyperparams={**TINY["ppo"], "normalize": True})
    result = train(config)
    run = result.run_dir
    for name in ("model.zip", "best_model.zip", "evaluations.npz", "vecnormalize.npz", "config.json"):
        assert (run / name).stat().st_size > 0, name
    evaluations = np.load(run / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [64, 128, 192, 256]
    assert evaluations["results"].shape == (4, 2)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["model_192_steps.zip", "model_256_steps.zip",
                           "vecnormalize_192_steps.npz", "vecnormalize_256_steps.npz"]  # the latest two
    resolved = json.loads((run / "config.json").read_text())["resolved_hyperparams"]
    assert resolved["normalize"] is True and resolved["n_steps"] == 32


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_resume_continues_the_step_count_from_the_latest_checkpoint(tmp_path, algo):
    from designgym.agents.training import resume

    config = TrainConfig(env="designgym/Extrusion-v2", algo=algo, timesteps=128, n_envs=2, out=str(tmp_path),
                         run_name="r", eval_episodes=2, save_freq=64, eval_freq=64, device="cpu",
                         hyperparams=TINY[algo])
    first = train(config)
    if algo == "sac":
        assert (first.run_dir / "checkpoints" / "replay_buffer_128_steps.npz").exists()
    (first.run_dir / "model.zip").unlink()  # as if killed after its last checkpoint
    second = resume(first.run_dir, timesteps=256)
    model = ALGORITHMS[algo].load(second.model_path, device="cpu")
    assert model.num_timesteps == 256 and second.metrics["timesteps"] == 256
    assert np.load(second.run_dir / "evaluations.npz")["timesteps"].tolist() == [64, 128, 192, 256]
    assert json.loads((second.run_dir / "config.json").read_text())["timesteps"] == 256
    assert len((second.run_dir / "command.txt").read_text().splitlines()) == 2
    events = sorted((second.run_dir / "tb").glob("*/events.out.tfevents.*"))
    assert len({e.parent for e in events}) == 1  # the same TensorBoard run goes on
    with pytest.raises(ValueError, match="already reached 256 of 256 steps; pass --timesteps above 256"):
        resume(second.run_dir)


def test_threads_are_set_for_the_run_recorded_and_given_back(tmp_path, monkeypatch):
    import torch

    from designgym.agents import training

    seen = []
    set_up = training._set_up
    monkeypatch.setattr(training, "_set_up", lambda *a: (seen.append(torch.get_num_threads()), set_up(*a))[1])
    before = torch.get_num_threads()
    config = TrainConfig(env="designgym/Extrusion-v2", timesteps=64, n_envs=2, out=str(tmp_path), run_name="t",
                         eval_episodes=1, save_freq=32, eval_freq=0, device="cpu", hyperparams=TINY["ppo"],
                         threads=before + 1)
    run = train(config).run_dir
    assert seen == [before + 1] and torch.get_num_threads() == before  # the caller's setting is back
    assert json.loads((run / "config.json").read_text())["threads"] == before + 1
    # A resumed run may run on another machine: its threads can be given anew, and are recorded.
    training.resume(run, timesteps=128, threads=before + 2)
    assert seen == [before + 1, before + 2] and torch.get_num_threads() == before
    assert json.loads((run / "config.json").read_text())["threads"] == before + 2
    training.resume(run, timesteps=192)  # not given: the run's own
    assert seen[-1] == before + 2
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"--threads must be a whole number of at least 1.*got {bad}"):
            train(TrainConfig(env="designgym/Extrusion-v2", out=str(tmp_path), run_name="bad", threads=bad))
    with pytest.raises(ValueError, match="--threads must be a whole number of at least 1.*got -2"):
        training.resume(run, timesteps=256, threads=-2)
    assert not (tmp_path / "bad").exists()


def test_resume_refuses_what_is_not_a_run(tmp_path):
    from designgym.agents.training import resume

    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        resume(tmp_path)
    config = TrainConfig(env="designgym/Extrusion-v2", timesteps=32, n_envs=1, out=str(tmp_path), run_name="z",
                         eval_episodes=1, save_freq=0, eval_freq=0, device="cpu", hyperparams=TINY["ppo"])
    run = train(config).run_dir
    assert not (run / "best_model.zip").exists() and not (run / "checkpoints").exists()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resume(run, timesteps=64)


def test_monitor_rows_of_a_resumed_run_come_after_the_earlier_ones(tmp_path):
    from designgym.agents.pictures import read_monitor

    (tmp_path / "0.monitor.csv").write_text(
        '#{"t_start": 100.0, "env_id": "x"}\nr,l,t,feasible\n1.0,1,0.5,False\n2.0,1,1.5,False\n'
        "3.0,1,0.2,False\n4.0,1,0.9,False\n"  # appended by the resumed run: its times start again
    )
    (tmp_path / "1.monitor.csv").write_text('#{"t_start": 100.1, "env_id": "x"}\nr,l,t,feasible\n9.0,1,1.0,True\n')
    returns, lengths = read_monitor(tmp_path)
    assert returns.tolist() == [1.0, 9.0, 2.0, 3.0, 4.0] and lengths.tolist() == [1] * 5
