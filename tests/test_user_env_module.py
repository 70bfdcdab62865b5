"""An env that the user's own module registers, named ``module:namespace/Name-v0`` as Gymnasium names it,
works in every command that takes an env, in the processes those commands start, and in later commands
that read a run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import designgym
from designgym.cli import main
from designgym.envs.registration import env_reference, resolve_env_id

MODULE = textwrap.dedent("""
    import designgym

    designgym.register_design_env("{env}", problem="extrusion", generator="extrusion-vae-32",
                                  description="a lab's own section env", action_mode="direct", repair=True)
""")
DESIGNGYM = str(Path(sys.executable).with_name("designgym"))
TINY = ["--params", "n_steps=32", "batch_size=32", "n_envs=2"]


def _lab_module(folder: Path, module: str, env: str) -> None:
    (folder / f"{module}.py").write_text(MODULE.format(env=env))


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The `designgym` command as a user starts it: its own path does not hold the working folder."""
    return subprocess.run([DESIGNGYM, *args], cwd=folder, capture_output=True, text=True, timeout=300)


def test_every_verb_takes_a_module_env_and_a_run_remembers_its_module(tmp_path):
    _lab_module(tmp_path, "labenvs", "lab/Section-v0")
    ref = "labenvs:lab/Section-v0"
    # subproc: the workers are fresh processes (forkserver or spawn), which must import the module themselves.
    train = _run(tmp_path, "train", "--env", ref, "--timesteps", "64", "--vec-env", "subproc", "--eval-freq", "0",
                 "--save-freq", "0", "--eval-episodes", "2", "--run-name", "r", "--json", *TINY)
    assert train.returncode == 0, train.stderr
    config = json.loads((tmp_path / "runs/r/config.json").read_text())
    assert config["env"] == ref  # so that `eval --run` in another process finds the env

    # Without --env: the run's config names the module.
    ev = _run(tmp_path, "eval", "--run", "runs/r", "--episodes", "2", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["summary"]["episodes"] == 2

    design = _run(tmp_path, "design", "--env", ref, "--agent", "runs/r", "--out", "d.npy", "--json")
    assert design.returncode == 0, design.stderr
    evaluate = _run(tmp_path, "evaluate", "--env", ref, "--design", "d.npy", "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["feasible"] == json.loads(design.stdout)["feasible"]


def test_tune_baseline_and_score_take_a_module_env(tmp_path, monkeypatch, capsys):
    _lab_module(tmp_path, "labenvs2", "lab/Section2-v0")
    ref = "labenvs2:lab/Section2-v0"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    assert main(["tune", "--env", ref, "--n-trials", "1", "--timesteps-per-trial", "64", "--n-evaluations", "1",
                 "--eval-episodes", "2", "--out", "t", "--json", *TINY]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["trials"]["complete"] == 1
    assert main(["baseline", "--env", ref, "--method", "random", "--budget", "2", "--episodes", "1", "--json"]) == 0
    capsys.readouterr()
    assert main(["train", "--env", ref, "--timesteps", "32", "--eval-freq", "0", "--save-freq", "0",
                 "--eval-episodes", "1", "--run-name", "r", "--json", *TINY]) == 0
    capsys.readouterr()
    assert main(["score", "--agent", "runs/r", "--conditions", "[{}]", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_cases"] == 1


def test_the_spec_serialises_and_a_fresh_process_given_only_the_spec_builds_the_env(tmp_path):
    _lab_module(tmp_path, "labenvs3", "lab/Section3-v0")
    script = textwrap.dedent("""
        import gymnasium as gym
        import labenvs3  # noqa: F401
        spec = gym.spec("lab/Section3-v0")
        assert gym.spec("lab/Section3-v0").to_json()  # a function entry point cannot be serialised
        # spawn: each worker is a fresh Python that gets the spec, not this process's registry
        envs = gym.make_vec(spec, num_envs=2, vectorization_mode="async", vector_kwargs={"context": "spawn"})
        obs, _ = envs.reset(seed=3)
        single = gym.make(spec)
        first, _ = single.reset(seed=3)
        assert (obs[0] == first).all(), (obs[0], first)
        envs.close()
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_the_reference_names_the_module_only_for_the_users_envs():
    assert env_reference("Extrusion-v2") == "designgym/Extrusion-v2"
    assert gym.spec("designgym/Extrusion-v2").to_json()
    assert resolve_env_id("designgym.envs:designgym/Extrusion-v2") == "designgym/Extrusion-v2"
    # Registered from __main__ (a script, a notebook), the module cannot be imported elsewhere: plain id.
    namespace = {"__name__": "__main__", "designgym": designgym}
    exec('designgym.register_design_env("lab/FromMain-v0", problem="mbb", generator="mbb-vae")', namespace)
    assert env_reference("lab/FromMain-v0") == "lab/FromMain-v0"


@pytest.mark.parametrize(("env", "expected"), [
    ("no_such_module_here:lab/X-v0", "cannot import 'no_such_module_here'"),
    ("broken_lab:lab/X-v0", "ZeroDivisionError"),
    ("labenvs4:lab/Missing-v0", "unknown env 'lab/Missing-v0'"),
    (":lab/X-v0", "module:namespace/Name-v0"),
])
def test_a_bad_module_env_is_one_line_naming_the_module(tmp_path, env, expected):
    (tmp_path / "broken_lab.py").write_text("1 / 0\n")
    _lab_module(tmp_path, "labenvs4", "lab/Section4-v0")
    for args in (["train", "--env", env, "--timesteps", "8"], ["evaluate", "--env", env, "--design", "x.npy"]):
        done = _run(tmp_path, *args)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


def test_an_env_id_with_a_colon_cannot_be_registered():
    with pytest.raises(ValueError, match="':'"):
        designgym.register_design_env("lab:odd/Name-v0", problem="mbb", generator="mbb-vae")
    assert "lab:odd/Name-v0" not in designgym.list_envs() and "lab:odd/Name-v0" not in gym.registry
