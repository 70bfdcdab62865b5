"""What designgym writes into a run folder is plain arrays and JSON, read back without unpickling
anything: normalisation statistics and replay buffers come back exactly, and a pickle, a damaged
file or a missing one is refused in one line before the run is touched."""

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from designgym.agents import checkpoints, training
from designgym.agents.algorithms import ALGORITHMS
from designgym.agents.checkpoints import (
    CheckpointSaver,
    checkpoint_companion,
    restore_checkpoint_buffer,
    save_checkpoint_buffer,
)
from designgym.agents.evaluation import load_agent
from designgym.agents.files import convert_pickled_file, load_normalizer, plain_or_legacy, spaces_vec_env
from designgym.agents.training import TrainConfig, resume, train
from designgym.cli import main

ENV = "designgym/Extrusion-v2"
PROBE = np.random.default_rng(7).normal(size=(4, *gym.make(ENV).observation_space.shape)).astype(np.float32)
PROBE_REWARDS = np.random.default_rng(8).normal(size=4).astype(np.float32)


class WritesAMarker:
    """Unpickling this calls ``open(marker, "w")``: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def normalised(normalizer) -> tuple[np.ndarray, np.ndarray]:
    return normalizer.normalize_obs(PROBE), normalizer.normalize_reward(PROBE_REWARDS)


def snapshot(root: Path) -> dict[str, str]:
    """The run's files and their bytes; the lock that says which process has the run is not the run's."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("designgym: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def normalised_run(tmp_path_factory):
    """A finished PPO run with ``normalize: true``, checkpoints at 64 and 128 steps, and what its
    normalisers gave for the probe observations when each file was written."""
    seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def recording(original):
        def save(normalizer, path):
            seen[Path(path).name] = normalised(normalizer)
            original(normalizer, path)
        return save

    root = tmp_path_factory.mktemp("normalised")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "save_normalizer_atomic", recording(checkpoints.save_normalizer_atomic))
        patch.setattr(training, "save_normalizer_atomic", recording(training.save_normalizer_atomic))
        train(TrainConfig(env=ENV, timesteps=128, n_envs=2, out=str(root), run_name="run", eval_episodes=2,
                          eval_freq=0, save_freq=64, device="cpu",
                          hyperparams={"n_steps": 32, "batch_size": 32, "normalize": True}))
    return root / "run", seen


@pytest.fixture
def run_copy(normalised_run, tmp_path):
    run, _ = normalised_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_a_run_writes_plain_normalisation_files_that_eval_and_resume_read_back_exactly(run_copy, normalised_run,
                                                                                       monkeypatch):
    _, seen = normalised_run
    assert not list(run_copy.rglob("*.pkl"))
    assert sorted(seen) == ["vecnormalize.npz", "vecnormalize_128_steps.npz", "vecnormalize_64_steps.npz"]
    for name in ("vecnormalize.npz", "checkpoints/vecnormalize_128_steps.npz"):
        with np.load(run_copy / name, allow_pickle=False) as data:
            assert json.loads(str(data["settings"]))["format"] == "designgym/vecnormalize"

    agent = load_agent(run_copy)
    assert agent.normalizer.training is False
    for got, want in zip(normalised(agent.normalizer), seen["vecnormalize.npz"], strict=True):
        np.testing.assert_array_equal(got, want)
    # An unfinished run's checkpoint, evaluated as it is.
    checkpoint = load_agent(run_copy / "checkpoints" / "model_64_steps.zip")
    for got, want in zip(normalised(checkpoint.normalizer), seen["vecnormalize_64_steps.npz"], strict=True):
        np.testing.assert_array_equal(got, want)

    resumed = []
    set_up = training._set_up

    def recording_set_up(*args):
        model, vec_env, *rest = set_up(*args)
        resumed.append((vec_env.training, *normalised(vec_env)))
        return (model, vec_env, *rest)

    monkeypatch.setattr(training, "_set_up", recording_set_up)
    resume(run_copy, timesteps=192)
    ((is_training, obs, rewards),) = resumed
    assert is_training is True
    np.testing.assert_array_equal(obs, seen["vecnormalize_128_steps.npz"][0])
    np.testing.assert_array_equal(rewards, seen["vecnormalize_128_steps.npz"][1])


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_crafted_pickle_is_never_unpickled(run_copy, tmp_path, command):
    marker = tmp_path / "unpickled"
    for stats in run_copy.rglob("vecnormalize*"):  # an older designgym's run folder, with a pickle planted in it
        stats.unlink()
        stats.with_suffix(".pkl").write_bytes(pickle.dumps(WritesAMarker(marker)))
    before = snapshot(run_copy)
    args = (["eval", "--run", str(run_copy), "--episodes", "1"] if command == "eval"
            else ["train", "--resume", str(run_copy), "--timesteps", "256", "--no-progress"])
    result = subprocess.run([sys.executable, "-m", "designgym", *args], capture_output=True, text=True, timeout=600)
    assert not marker.exists()
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "is a pickle, which designgym no longer opens" in line and "convert_pickled_file(" in line
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_damaged_normalisation_file_is_refused_in_one_line(run_copy, capsys, command, damage):
    stats = run_copy / ("vecnormalize.npz" if command == "eval" else "checkpoints/vecnormalize_128_steps.npz")
    if damage == "truncated":
        stats.write_bytes(stats.read_bytes()[:500])
    else:
        np.savez(stats, mean=np.zeros(3))
    before = snapshot(run_copy)
    args = (["eval", "--run", str(run_copy), "--episodes", "1"] if command == "eval"
            else ["train", "--resume", str(run_copy), "--timesteps", "256", "--no-progress"])
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"normalisation statistics {stats} cannot be read" in line
    if command == "eval":
        assert "they belong to the model and cannot be left out" in line
    else:
        assert "to resume from model_64_steps.zip instead" in line
    assert snapshot(run_copy) == before


def test_resume_refuses_a_checkpoint_whose_normalisation_file_is_missing(run_copy, capsys):
    args = ["train", "--resume", str(run_copy), "--timesteps", "256", "--no-progress"]
    for stats in (run_copy / "checkpoints").glob("vecnormalize_128_steps.*"):
        stats.unlink()
    before = snapshot(run_copy)
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"normalisation statistics {run_copy / 'checkpoints' / 'vecnormalize_128_steps.npz'} are missing" in line
    assert "move model_128_steps.zip out of" in line and "to resume from model_64_steps.zip, which has them" in line
    assert snapshot(run_copy) == before

    for stats in (run_copy / "checkpoints").glob("vecnormalize_*"):
        stats.unlink()
    assert main(args) == 2
    assert one_error_line(capsys.readouterr().err).endswith("; start a new run")


def test_eval_refuses_a_run_that_normalised_without_its_normalisation_file(run_copy, capsys):
    (run_copy / "vecnormalize.npz").unlink()
    assert main(["eval", "--run", str(run_copy), "--episodes", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"normalisation statistics {run_copy / 'vecnormalize.npz'} are missing" in line


def test_a_trusted_pickled_normaliser_is_converted_once_and_then_read(run_copy, capsys):
    from stable_baselines3.common.vec_env import VecNormalize

    # What an older designgym wrote: SB3's pickle of the normaliser, under .pkl.
    plain_file = run_copy / "vecnormalize.npz"
    model = ALGORITHMS["ppo"].load(run_copy / "model.zip", device="cpu")
    normalizer = load_normalizer(plain_file, spaces_vec_env(model.observation_space, model.action_space),
                                 training=False, fix="")
    plain_file.unlink()
    VecNormalize.save(normalizer, str(run_copy / "vecnormalize.pkl"))
    assert main(["eval", "--run", str(run_copy), "--episodes", "1"]) == 2
    assert "convert_pickled_file(" in one_error_line(capsys.readouterr().err)

    assert convert_pickled_file(run_copy / "vecnormalize.pkl") == plain_file
    for got, want in zip(normalised(load_agent(run_copy).normalizer), normalised(normalizer), strict=True):
        np.testing.assert_array_equal(got, want)


def _off_policy_model(algo: str, env_kwargs: dict | None = None, **kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV if not env_kwargs else "designgym/ExtrusionSteps-v1", n_envs=2, seed=0,
                        env_kwargs=env_kwargs)
    policy = "MultiInputPolicy" if env_kwargs else "MlpPolicy"
    return ALGORITHMS[algo](policy, venv, learning_starts=10_000, seed=0, device="cpu", **kwargs)


@pytest.mark.parametrize("algo, steps, kwargs, env_kwargs", [
    ("sac", 40, {"buffer_size": 1000}, None),
    ("td3", 40, {"buffer_size": 24}, None),  # 12 rows for 2 envs: the buffer has wrapped around
    ("td3", 30, {"buffer_size": 1000, "optimize_memory_usage": True,
                 "replay_buffer_kwargs": {"handle_timeout_termination": False}}, None),
    ("sac", 20, {"buffer_size": 1000}, {"observation_layout": "dict"}),
])
def test_a_checkpoint_replay_buffer_comes_back_exactly(tmp_path, algo, steps, kwargs, env_kwargs):
    from designgym.agents.files import _buffer_arrays

    model = _off_policy_model(algo, env_kwargs, **kwargs)
    model.learn(total_timesteps=steps)
    saver = CheckpointSaver(tmp_path, save_freq=0)
    saver.init_callback(model)
    checkpoint = saver.save()
    buffer_file = checkpoint_companion(checkpoint, "replay_buffer")
    assert buffer_file.suffix == ".npz" and not list(tmp_path.glob("*.pkl"))
    with np.load(buffer_file, allow_pickle=False) as data:
        assert json.loads(str(data["settings"]))["format"] == "designgym/replay-buffer"

    saved = model.replay_buffer
    assert saved.full == (algo == "td3" and kwargs["buffer_size"] == 24) and (saved.full or saved.pos == steps // 2)
    loaded = ALGORITHMS[algo].load(checkpoint, env=model.get_env(), device="cpu")
    assert loaded.replay_buffer.pos == 0
    restore_checkpoint_buffer(loaded, buffer_file, fix="start a new run")
    assert (loaded.replay_buffer.pos, loaded.replay_buffer.full) == (saved.pos, saved.full)
    want, got = _buffer_arrays(saved), _buffer_arrays(loaded.replay_buffer)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_a_replay_buffer_that_does_not_fit_the_model_changes_nothing(tmp_path):
    wrapped = _off_policy_model("td3", buffer_size=24)  # 12 rows for 2 envs, wrapped around
    wrapped.learn(total_timesteps=40)
    save_checkpoint_buffer(wrapped, tmp_path / "wrapped.npz")
    larger = _off_policy_model("td3", buffer_size=1000)
    with pytest.raises(ValueError, match=r"wrapped\.npz holds observations of shape \(12, 2, \d+\), the model's "
                                         r"buffer takes \(500, 2, \d+\); start a new run$"):
        restore_checkpoint_buffer(larger, tmp_path / "wrapped.npz", fix="start a new run")
    assert larger.replay_buffer.pos == 0 and not larger.replay_buffer.full
    assert not larger.replay_buffer.observations.any()

    smaller = _off_policy_model("td3", buffer_size=10)  # 5 rows: a buffer at row 10 does not fit
    larger.learn(total_timesteps=20)
    save_checkpoint_buffer(larger, tmp_path / "ten.npz")
    with pytest.raises(ValueError, match="ten.npz is at position 10, past the model's buffer of 5 rows"):
        restore_checkpoint_buffer(smaller, tmp_path / "ten.npz", fix="start a new run")
    assert smaller.replay_buffer.pos == 0 and not smaller.replay_buffer.observations.any()


def test_a_trusted_pickled_replay_buffer_is_converted(tmp_path):
    from designgym.agents.files import _buffer_arrays

    model = _off_policy_model("sac", buffer_size=1000)
    model.learn(total_timesteps=20)
    model.save_replay_buffer(tmp_path / "replay_buffer_20_steps.pkl")  # SB3's own pickle
    with pytest.raises(ValueError, match="is a pickle, which designgym no longer opens"):
        plain_or_legacy(tmp_path / "replay_buffer_20_steps.npz", "replay buffer")
    converted = convert_pickled_file(tmp_path / "replay_buffer_20_steps.pkl")
    fresh = _off_policy_model("sac", buffer_size=1000)
    restore_checkpoint_buffer(fresh, converted, fix="")
    assert fresh.replay_buffer.pos == model.replay_buffer.pos == 10
    for name, value in _buffer_arrays(model.replay_buffer).items():
        np.testing.assert_array_equal(_buffer_arrays(fresh.replay_buffer)[name], value, err_msg=name)


def test_an_array_file_under_an_older_pkl_name_is_read(tmp_path):
    # The search distillation always wrote its case buffer as arrays, under the .pkl name of the time.
    legacy = tmp_path / "replay_buffer_8_steps.pkl"
    with open(legacy, "wb") as handle:
        np.savez(handle, cases=np.array("[]"))
    assert plain_or_legacy(legacy.with_suffix(".npz"), "replay buffer") == legacy
    assert plain_or_legacy(tmp_path / "nothing.npz", "replay buffer") is None


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sac")
    train(TrainConfig(env=ENV, algo="sac", timesteps=128, n_envs=2, out=str(root), run_name="run", eval_episodes=2,
                      eval_freq=0, save_freq=64, device="cpu", hyperparams={"learning_starts": 32, "batch_size": 32}))
    return root / "run"


def test_resume_restores_the_replay_buffer_of_the_latest_checkpoint(sac_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(sac_run, run)
    with np.load(run / "checkpoints" / "replay_buffer_128_steps.npz", allow_pickle=False) as data:
        stored = {name: data[name] for name in data.files}
    seen = []
    set_up = training._set_up

    def recording_set_up(*args):
        model, *rest = set_up(*args)
        buffer = model.replay_buffer
        rows = slice(0, buffer.pos)
        seen.append((buffer.pos, buffer.full, buffer.observations[rows].copy(), buffer.rewards[rows].copy()))
        return (model, *rest)

    monkeypatch.setattr(training, "_set_up", recording_set_up)
    resume(run, timesteps=192)
    ((pos, full, observations, rewards),) = seen
    assert (pos, full) == (json.loads(str(stored["settings"]))["pos"], False) and pos > 32
    np.testing.assert_array_equal(observations, stored["observations"])
    np.testing.assert_array_equal(rewards, stored["rewards"])


def test_resume_refuses_a_truncated_replay_buffer_and_warns_of_a_missing_one(sac_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sac_run, run)
    args = ["train", "--resume", str(run), "--timesteps", "192", "--no-progress"]
    buffer = run / "checkpoints" / "replay_buffer_128_steps.npz"
    buffer.write_bytes(buffer.read_bytes()[:2000])
    before = snapshot(run)
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"replay buffer {buffer} cannot be read" in line
    assert "delete it to resume with an empty replay buffer" in line
    assert snapshot(run) == before

    buffer.unlink()
    with pytest.warns(UserWarning, match="has no replay buffer \\(replay_buffer_128_steps.npz\\); SAC resumes with an "
                                         "empty one"):
        assert main(args) == 0
