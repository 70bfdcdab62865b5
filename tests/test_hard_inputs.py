"""Inputs a user gets wrong, and commands run at the same time: one clear line, and nothing earlier lost.

Concurrent runs into one folder, NaN through env arguments, a diverging learning rate, an evaluation
that fails after a good one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from designgym.agents import evaluation
from designgym.agents.claims import claim_run_folder, claim_study_folder
from designgym.agents.files import json_text, write_json
from designgym.cli import main

DESIGNGYM = str(Path(sys.executable).with_name("designgym"))
TINY = ["--params", "n_steps=32", "batch_size=32", "n_epochs=1", "--n-envs", "2", "--eval-freq", "0",
        "--eval-episodes", "2", "--no-progress"]


def _start(folder: Path, *args: str, **popen: object) -> subprocess.Popen:
    return subprocess.Popen([DESIGNGYM, *args], cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def _as_background_job() -> None:
    """What a POSIX shell does to a script's ``cmd &``: SIGINT ignored, which the command inherits and
    Python keeps (a test suite started that way passes it on to every process its tests start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- two commands, one folder ------------------------------------------------------------------


def test_two_trainings_into_one_run_folder_one_wins_and_the_folder_is_whole(tmp_path):
    runs = [_start(tmp_path, "train", "--run-name", "same", "--seed", str(seed), "--timesteps", "512",
                   "--save-freq", "0", *TINY) for seed in (1, 2)]
    done = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in done)
    assert codes == [0, 2], done
    loser = next(err for code, err in done if code == 2)
    assert loser.count("\n") == 1 and "run folder" in loser and "same" in loser, loser
    winner_seed = (1, 2)[[code for code, _ in done].index(0)]
    run = tmp_path / "runs" / "same"
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == winner_seed
    assert f"--seed {winner_seed}" in (run / "command.txt").read_text()
    assert len((run / "command.txt").read_text().splitlines()) == 1
    assert len(list((run / "monitor").glob("*.monitor.csv"))) == 2  # the winner's two envs, no one else's
    assert (run / "model.zip").exists()


def test_a_run_cannot_be_resumed_while_it_trains(tmp_path):
    # Started as a script's background job, and stopped as such a job is, with SIGTERM: the stop works
    # whatever the shell did to SIGINT.
    trainer = _start(tmp_path, "train", "--run-name", "busy", "--timesteps", "1000000", "--save-freq", "64", *TINY,
                     preexec_fn=_as_background_job)
    run = tmp_path / "runs" / "busy"
    try:
        deadline = time.monotonic() + 240
        while not list((run / "checkpoints").glob("model_*_steps.zip")):
            assert trainer.poll() is None, trainer.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.5)
        before = (run / "config.json").read_bytes()
        resumed = subprocess.run([DESIGNGYM, "train", "--resume", str(run), "--timesteps", "2000000"], cwd=tmp_path,
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 2
        assert resumed.stderr.count("\n") == 1 and "in use by another designgym process" in resumed.stderr
        assert (run / "config.json").read_bytes() == before
        trainer.send_signal(signal.SIGTERM)
        _, err = trainer.communicate(timeout=120)  # read as it goes: a full pipe would block its last words
        assert trainer.returncode == 130, err
        assert "checkpoint saved" in err and "designgym train --resume runs/busy" in err
    finally:
        if trainer.poll() is None:  # no trainer outlives its test
            trainer.kill()
            trainer.communicate()


def test_a_run_folder_is_claimed_once_until_released(tmp_path):
    first = claim_run_folder(tmp_path / "r")
    with pytest.raises(FileExistsError, match="in use by another designgym process"):
        claim_run_folder(tmp_path / "r", resume=True)
    first.release()
    with claim_run_folder(tmp_path / "r", resume=True):
        pass
    (tmp_path / "r" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        claim_run_folder(tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["config.json"]  # the claim leaves no file


def test_a_tuning_folder_holds_one_study(tmp_path, capsys):
    args = ["tune", "--n-trials", "1", "--timesteps-per-trial", "64", "--n-evaluations", "1", "--eval-episodes", "2",
            "--params", "n_steps=32", "batch_size=32", "n_envs=2", "--out", str(tmp_path / "t"), "--json"]
    assert main([*args, "--study-name", "first"]) == 0
    before = _files(tmp_path)
    capsys.readouterr()
    assert main([*args, "--study-name", "second"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds the results of study 'first'" in err
    assert _files(tmp_path) == before
    assert main([*args, "--study-name", "first"]) == 0  # the same study joins its folder
    assert json.loads(capsys.readouterr().out)["trials"]["complete"] == 2


def test_two_studies_claiming_one_folder_at_once_one_wins(tmp_path):
    (tmp_path / "t").mkdir()
    claim_study_folder(tmp_path / "t", "a", "sqlite:///x.db")
    with pytest.raises(FileExistsError, match="study 'a'"):
        claim_study_folder(tmp_path / "t", "b", "sqlite:///x.db")
    claim_study_folder(tmp_path / "t", "a", "sqlite:////elsewhere/x.db")  # one study, its storage spelt otherwise
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [".designgym-study.json"]  # no temporary left


# -- numbers that are not numbers --------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [
    ("latent_bound", float("nan")), ("latent_bound", float("inf")), ("latent_bound", "nan"), ("latent_bound", 0),
    ("step_size", float("nan")), ("objective_scale", float("nan")), ("objective_scale", 1e-320),
    ("objective_scale", 0.0), ("objective_scale", "1"), ("feature_clip", float("nan")), ("feature_clip", True),
    ("episode_length", 2.5), ("episode_length", float("nan")), ("episode_length", "8"),
    ("violation_weights", float("nan")), ("violation_weights", "heavy"),
])
def test_every_numeric_env_argument_is_checked_by_name(name, value):
    with pytest.raises(ValueError, match=name) as raised:
        gym.make("designgym/ExtrusionSteps-v1", **{name: value})
    assert "\n" not in str(raised.value)


def test_a_nan_violation_weight_is_named_with_its_constraint():
    with pytest.raises(ValueError, match=r"violation_weights\['thin_walls'\] must be a finite number"):
        gym.make("designgym/Extrusion-v2", violation_weights={"thin_walls": float("nan")})


def test_good_numbers_still_pass_and_mean_what_they_did():
    env = gym.make("designgym/ExtrusionSteps-v1", latent_bound=2, step_size=0.5, objective_scale=2.0,
                   episode_length=np.int64(4), violation_weights=3)
    inner = env.unwrapped
    assert (inner.latent_bound, inner.step_size, inner.objective_scale, inner.episode_length) == (2.0, 0.5, 2.0, 4)
    assert set(inner.violation_weights.values()) == {3.0}
    obs, _ = env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.all(np.isfinite(obs)) and np.isfinite(reward)


def test_a_diverging_learning_rate_is_one_line_that_names_it(tmp_path):
    done = subprocess.run([DESIGNGYM, "train", "--timesteps", "2048", "--save-freq", "0", *TINY[4:],
                           "--params", "n_steps=32", "batch_size=32", "n_epochs=1", "learning_rate=1e4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.count("\n") == 1, done.stderr[-3000:]
    assert "training diverged" in done.stderr and "learning_rate=1e4" in done.stderr


# -- a failed evaluation keeps the last good one -------------------------------------------------


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluated")
    assert main(["train", "--out", str(folder), "--run-name", "r", "--timesteps", "64", "--save-freq", "0",
                 *TINY]) == 0
    assert main(["eval", "--run", str(folder / "r"), "--episodes", "2"]) == 0
    return folder / "r"


@pytest.mark.parametrize("args", [["--episodes", "0"], ["--conditions", "[]"], ["--conditions", "{"],
                                  ["--episodes", "-3"], ["--seed", "-1"]])
def test_a_failed_eval_leaves_the_last_good_one(evaluated_run, args, capsys):
    before = _files(evaluated_run / "eval")
    assert _cli("eval", "--run", str(evaluated_run), *args) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert _files(evaluated_run / "eval") == before
    json.loads((evaluated_run / "eval" / "eval.json").read_text(), parse_constant=_no_nan)


def test_an_eval_that_fails_while_writing_leaves_the_last_good_one(evaluated_run, monkeypatch, capsys):
    before = _files(evaluated_run / "eval")

    def broken_picture(*args, **kwargs):
        raise OSError(28, "No space left on device", str(evaluated_run / "eval" / "eval_designs.png"))

    monkeypatch.setattr("designgym.agents.pictures.save_design_grid", broken_picture)
    assert main(["eval", "--run", str(evaluated_run), "--episodes", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "free some space" in err
    assert _files(evaluated_run / "eval") == before
    assert not [p for p in (evaluated_run / "eval").iterdir() if p.name not in before]  # no temporary left


def test_json_results_hold_no_nan(tmp_path):
    data = {"mean": float("nan"), "best": [1.0, float("inf"), np.float32("nan")], "ok": 2.5}
    write_json(tmp_path / "x.json", data)
    back = json.loads((tmp_path / "x.json").read_text(), parse_constant=_no_nan)
    assert back == {"mean": None, "best": [1.0, None, None], "ok": 2.5}
    assert json_text({"a": 1}) == '{\n  "a": 1\n}\n'


def test_evaluate_agent_refuses_no_cases():
    with pytest.raises(ValueError, match="--episodes must be a whole number of at least 1"):
        evaluation.check_cases(None, 0)
    with pytest.raises(ValueError, match="--conditions holds no cases"):
        evaluation.check_cases([], 5)


def _no_nan(word: str):
    raise AssertionError(f"{word} in a JSON file")


def _cli(*args: str) -> int:
    """The command's exit code, whether it returns it or exits (argparse exits on a bad option)."""
    try:
        return main(list(args))
    except SystemExit as exited:
        return int(exited.code)


def test_the_claim_and_the_lock_hold_under_the_users_thread_settings(tmp_path):
    # The suite runs with one thread per process; a user's default is one per core. The claims are file
    # system steps, but a training run takes its threads from torch: check one run without the setting.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    done = subprocess.run([DESIGNGYM, "train", "--run-name", "r", "--timesteps", "64", "--save-freq", "0", *TINY],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    again = subprocess.run([DESIGNGYM, "train", "--run-name", "r", "--timesteps", "64", *TINY], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 2 and "already exists and is not empty" in again.stderr


def test_a_folder_that_cannot_be_written_is_one_line_with_the_way_out(tmp_path, monkeypatch, capsys):
    # Root writes anywhere, so a read-only folder is planted as the system's own refusal.
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    assert _cli("train", "--out", str(tmp_path / "locked"), "--timesteps", "64", *TINY) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "choose a place you may write to" in err
    assert not (tmp_path / "locked").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert _cli("train", "--out", str(locked), "--timesteps", "64", *TINY) == 2
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "choose a place you may write to" in err
