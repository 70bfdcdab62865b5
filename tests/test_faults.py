"""Bad input at every entry point of the command: one clear line on stderr that names the problem
and the fix, a non-zero exit, no traceback (unless ``--debug``), and nothing on disk changed.

Every case runs in one workspace holding a finished run, a run whose latest checkpoint is
damaged, an unfinished run, and bad files of each kind; after each, the workspace must be exactly
as it was: the same files with the same bytes and times, and nothing new.
"""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import i_beam

from designgym.cli import main


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root``: file bytes (hashed) and modification times."""
    seen: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            seen[key] = ("dir",)
        else:
            seen[key] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from designgym.agents.training import TrainConfig, train

    root = tmp_path_factory.mktemp("faults")
    config = TrainConfig(env="Extrusion-v2", timesteps=96, n_envs=2, out=str(root / "runs"), run_name="done",
                         eval_episodes=2, eval_freq=0, save_freq=32, device="cpu",
                         hyperparams={"n_steps": 16, "batch_size": 32})
    run = train(config).run_dir
    assert [p.name for p in sorted((run / "checkpoints").glob("model_*"))] == ["model_64_steps.zip",
                                                                            "model_96_steps.zip"]
    # A run whose latest checkpoint was cut short (a disk that filled up, a copy that stopped).
    damaged = root / "runs" / "damaged"
    shutil.copytree(run, damaged)
    checkpoint = damaged / "checkpoints" / "model_96_steps.zip"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    # A run killed before it finished: checkpoints but no model.zip.
    unfinished = root / "runs" / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "model.zip").unlink()

    (root / "truncated.zip").write_bytes((run / "model.zip").read_bytes()[:1000])
    with zipfile.ZipFile(root / "foreign.zip", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    (root / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "notes.txt").write_text("not a design\n")
    (root / "broken.yml").write_text("designgym/Extrusion-v2:\n  n_steps: [64\n")
    (root / "typo.yml").write_text("designgym/Extrusion-v2:\n  n_step: 64\n")
    (root / "wrong_type.yml").write_text("default:\n  n_steps: sixty-four\n")
    (root / "list.yml").write_text("- n_steps: 64\n")
    np.save(root / "beam.npy", i_beam())
    np.save(root / "small.npy", np.zeros((8, 8)))
    np.save(root / "words.npy", np.full((32, 32), "x"))
    holes = i_beam().astype(np.float64)
    holes[3, 3] = np.nan
    np.save(root / "nan.npy", holes)
    (root / "out.npy").write_bytes(b"a design the user keeps")
    return root


RUN, DAMAGED, UNFINISHED = "runs/done", "runs/damaged", "runs/unfinished"
BEAM = ["evaluate", "--env", "Extrusion-v2", "--design", "beam.npy", "--conditions"]

CASES = {
    # unknown names, with the close ones
    "train: unknown env": (["train", "--env", "designgym/Extrusoin-v0"],
                           "unknown env 'designgym/Extrusoin-v0'; did you mean 'designgym/Extrusion-v2'"),
    "tune: unknown env": (["tune", "--env", "Cantilevr-v0"], "unknown env 'Cantilevr-v0'; did you mean "
                                                              "'designgym/Cantilever-v1'"),
    "baseline: unknown env": (["baseline", "--env", "MBB-v3", "--method", "random"],
                              "unknown env 'MBB-v3'; did you mean 'designgym/MBB-v2'"),
    "score: retired env": (["score", "--env", "MBB-v0", "--agent", "pretrained"],
                           "designgym/MBB-v0 was replaced by designgym/MBB-v2"),
    "train: unknown algorithm": (["train", "--algo", "dqn"], "unknown algorithm 'dqn'; choose one of ppo, a2c"),
    "tune: unknown algorithm": (["tune", "--algo", "trpo"], "unknown algorithm 'trpo'; choose one of ppo, a2c"),
    # hyperparameter files and settings
    "train: YAML that does not parse": (["train", "--hyperparams", "broken.yml"],
                                        "hyperparameter file broken.yml is not valid YAML: expected ',' or ']'"),
    "train: unknown key in YAML": (["train", "--hyperparams", "typo.yml"],
                                   "typo.yml: unknown hyperparameter(s) ['n_step'] for PPO (did you mean 'n_steps'?)"),
    "tune: unknown key in YAML": (["tune", "--hyperparams", "typo.yml"],
                                  "typo.yml: unknown hyperparameter(s) ['n_step'] for PPO"),
    "train: wrong type in YAML": (["train", "--hyperparams", "wrong_type.yml"],
                                  "wrong_type.yml: n_steps must be a finite number (default 2048), got 'sixty-four'"),
    "train: YAML that is a list": (["train", "--hyperparams", "list.yml"],
                                   "hyperparameter file list.yml must map env ids (or 'default') to settings"),
    "train: missing YAML": (["train", "--hyperparams", "missing.yml"],
                            "hyperparameter file missing.yml does not exist"),
    "train: unknown --params key": (["train", "--params", "lr=0.001"],
                                    "--params: unknown hyperparameter(s) ['lr'] for PPO"),
    "train: wrong --params type": (["train", "--params", "gamma=high"],
                                   "--params: gamma must be a finite number (default 0.99), got 'high'"),
    "train: fractional n_steps": (["train", "--params", "n_steps=12.5"], "n_steps must be a whole number, got 12.5"),
    "train: --params without =": (["train", "--params", "lr"], "--params takes key=value pairs, got 'lr'"),
    "train: bad schedule": (["train", "--params", "learning_rate=fast_3e-4"],
                            "'fast_3e-4' is neither a number nor a schedule like 'lin_3e-4'"),
    "train: negative timesteps": (["train", "--timesteps", "-5"], "--timesteps must be at least 1, got -5"),
    "train: --out is a file": (["train", "--out", "notes.txt"], "--out notes.txt is a file"),
    "train: negative threads": (["train", "--threads", "-1"], "--threads must be a whole number of at least 1"),
    "train: bad env argument": (["train", "--timesteps", "64", "--env-kwargs", "action_mode=sideways"],
                                "action_mode must be one of 'direct', 'delta'; got 'sideways'"),
    "train: unknown env argument": (["train", "--timesteps", "64", "--env-kwargs", "step_sise=0.1"],
                                    "unknown argument(s) ['step_sise'] for env designgym/Extrusion-v2 (did you mean "
                                    "'step_size'?); its arguments are action_mode, episode_length"),
    # designs and conditions
    "evaluate: missing design file": (["evaluate", "--env", "Extrusion-v2", "--design", "missing.npy"],
                                      "design file missing.npy does not exist"),
    "evaluate: not a .npy file": (["evaluate", "--env", "Extrusion-v2", "--design", "notes.txt"],
                                  "notes.txt is not a numpy .npy design file"),
    "evaluate: wrong shape": (["evaluate", "--env", "Extrusion-v2", "--design", "small.npy"],
                              "a design must have shape (32, 32) (rows, cols), got (8, 8)"),
    "evaluate: wrong dtype": (["evaluate", "--env", "Extrusion-v2", "--design", "words.npy"],
                              "a design must be a numeric array, got dtype <U1"),
    "evaluate: NaN in the design": (["evaluate", "--env", "Extrusion-v2", "--design", "nan.npy"],
                                    "the design holds NaN or infinite values"),
    "evaluate: condition out of range": (BEAM + ['{"area_fraction": 0.3, "axis_angle": 400, "max_hollows": 0}'],
                                         "condition 'axis_angle' = 400 is outside its range [0, 90]"),
    "evaluate: NaN condition": (BEAM + ['{"area_fraction": NaN, "axis_angle": 0, "max_hollows": 0}'],
                                "condition 'area_fraction' is not finite"),
    "evaluate: unknown condition": (BEAM + ['{"area_fraction": 0.3, "axis_angle": 0, "max_hollows": 0, "load": 1}'],
                                    "unknown condition(s) ['load']; the conditions are"),
    "evaluate: conditions not JSON": (BEAM + ['{"axis_angle": 4'], "--conditions must be JSON or a JSON file"),
    "design: condition out of range": (["design", "--env", "Extrusion-v2", "--agent", RUN, "--out", "out.npy",
                                        "--conditions", '{"area_fraction": 2}'],
                                       "condition 'area_fraction' = 2 is outside its range"),
    "baseline: non-integer discrete condition": (["baseline", "--env", "Extrusion-v2", "--method", "random",
                                                  "--conditions", '{"max_hollows": 1.5}'],
                                                 "condition 'max_hollows' must be an integer in [0, 2], got 1.5"),
    # models and checkpoints
    "eval: truncated model": (["eval", "--run", "truncated.zip", "--env", "Extrusion-v2"],
                              "truncated.zip is not a loadable Stable-Baselines3 model"),
    "eval: foreign zip": (["eval", "--run", "foreign.zip", "--env", "Extrusion-v2"],
                          "foreign.zip is not a loadable Stable-Baselines3 model"),
    "design: random bytes as agent": (["design", "--env", "Extrusion-v2", "--agent", "random.bin", "--out", "out.npy"],
                                      "random.bin is not a loadable Stable-Baselines3 model"),
    "design: agent of another env": (["design", "--env", "Cantilever-v1", "--agent", RUN, "--out", "out.npy"],
                                     "does not fit designgym/Cantilever-v1 (it was trained on designgym/Extrusion-v2): "
                                     "its observation space has shape (17,), the env's (16,)"),
    "design: no pretrained agent": (["design", "--env", "faults/Plain-v0", "--agent", "pretrained", "--out", "out.npy"],
                                    "no pretrained agent ships for faults/Plain-v0 (shipped: AMBracket-v3, "
                                    "Cantilever-v1, Extrusion-v2, ExtrusionSteps-v1, FloorPlan-v2, MBB-v2, "
                                    "Massing-v2); train one with `designgym train --env faults/Plain-v0`"),
    "eval: unfinished run": (["eval", "--run", UNFINISHED],
                             "has not finished; finish it with `designgym train --resume runs/unfinished`"),
    "eval: not a run folder": (["eval", "--run", "runs"], "runs is not a run folder (no config.json)"),
    "resume: damaged checkpoint": (["train", "--resume", DAMAGED, "--timesteps", "200"],
                                   "model_96_steps.zip cannot be read (ValueError"),
    "resume: finished run": (["train", "--resume", RUN], "has already reached 96 of 96 steps; pass --timesteps"),
    "resume: not a run": (["train", "--resume", "runs"], "runs is not a run folder (no config.json)"),
    "resume: negative threads": (["train", "--resume", RUN, "--timesteps", "200", "--threads", "-3"],
                                 "--threads must be a whole number of at least 1 (or left out for torch's default), "
                                 "got -3"),
    # study storage
    "tune: unreachable PostgreSQL": (["tune", "--storage", "postgresql+psycopg2://me:secret@127.0.0.1:9/studies",
                                      "--n-trials", "1"], "cannot open the study storage postgresql+psycopg2://me:***@127.0.0.1:9/studies"),
    "tune: SQLite in a missing folder": (["tune", "--storage", "sqlite:///no/such/folder/study.db", "--n-trials", "1"],
                                         "folder no/such/folder does not exist; create it first"),
}


@pytest.fixture
def plain_env():
    """An env of the user's own (every built-in env ships an agent; this one has none)."""
    import gymnasium as gym

    import designgym
    from designgym.envs.registration import _ENVS

    designgym.register_design_env("faults/Plain-v0", problem="mbb", generator="mbb-vae")
    yield "faults/Plain-v0"
    del gym.registry["faults/Plain-v0"], _ENVS["faults/Plain-v0"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line_and_changes_nothing(workspace, plain_env, case, capsys, monkeypatch):
    args, message = CASES[case]
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("designgym: error: "), captured.err
    assert message in lines[0], lines[0]
    assert "secret" not in captured.err
    assert snapshot(workspace) == before, "the failed command changed files on disk"


def test_the_released_command_prints_no_traceback_but_debug_does(workspace):
    for debug in ([], ["--debug"]):
        result = subprocess.run([sys.executable, "-m", "designgym", *debug, "eval", "--run", "truncated.zip",
                                 "--env", "Extrusion-v2"], capture_output=True, text=True, cwd=workspace, timeout=300)
        assert result.returncode != 0
        assert ("Traceback" in result.stderr) == bool(debug), result.stderr


def test_an_unexpected_error_is_still_one_line_that_says_how_to_see_more(workspace, capsys, monkeypatch):
    import designgym.cli as cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_envs", broken)
    assert cli.main(["envs"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == ("designgym: error: ZeroDivisionError: division by zero (run `designgym --debug ...` "
                           "for the traceback, and report it)")


def test_the_damaged_checkpoint_message_gives_the_way_on_and_it_works(workspace, tmp_path):
    from designgym.agents.training import resume

    damaged = tmp_path / "damaged"
    shutil.copytree(workspace / DAMAGED, damaged)
    with pytest.raises(ValueError) as failure:
        resume(damaged, timesteps=160)
    assert "move it out of" in str(failure.value) and "to resume from model_64_steps.zip instead" in str(failure.value)
    (damaged / "checkpoints" / "model_96_steps.zip").rename(tmp_path / "set-aside.zip")
    result = resume(damaged, timesteps=160)
    assert result.metrics["timesteps"] >= 160
    assert json.loads((damaged / "config.json").read_text())["timesteps"] == 160


def test_the_unfinished_run_message_names_a_checkpoint_that_eval_takes(workspace, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert main(["eval", "--run", UNFINISHED]) == 2
    latest = capsys.readouterr().err.strip().split("latest checkpoint ")[-1]
    assert latest == f"{UNFINISHED}/checkpoints/model_96_steps.zip"
    # A checkpoint of a run is an agent too: the run folder says which env and algorithm it is.
    assert main(["eval", "--run", latest, "--episodes", "2", "--out", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["env"] == "designgym/Extrusion-v2" and report["summary"]["episodes"] == 2
