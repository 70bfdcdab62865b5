"""Every verb of the `designgym` command, each option given malformed values: one line on stderr naming the
problem, exit code 2 (not 1, which means a fault of designgym's), and every file made before untouched.

The files made before are a trained run (with a checkpoint and an evaluation), a study, a design and a
score; each case runs the command in this process and compares every file's bytes and time afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from designgym.cli import main

TINY = ["--params", "n_steps=32", "batch_size=32", "n_epochs=1", "--n-envs", "2"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """What a user made before the bad command: all of it must come through untouched."""
    root = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as patch:
        # relative default outputs (runs/, baselines/) land here, beside what they must not touch
        patch.chdir(root)
        _make(root)
    return root


def _make(root: Path) -> None:
    assert main(["train", "--run-name", "good", "--timesteps", "128", "--save-freq", "64", "--eval-freq", "64",
                 "--eval-episodes", "2", "--no-progress", *TINY]) == 0
    assert main(["eval", "--run", "runs/good", "--episodes", "2"]) == 0
    assert main(["tune", "--n-trials", "1", "--timesteps-per-trial", "64", "--n-evaluations", "1",
                 "--eval-episodes", "2", "--out", "tuned", "--params", "n_steps=32", "batch_size=32", "n_envs=2"]) == 0
    assert main(["design", "--env", "Extrusion-v2", "--agent", "runs/good", "--out", "design.npy"]) == 0
    assert main(["score", "--agent", "runs/good", "--conditions", "[{}]", "--out", "score.json"]) == 0
    (root / "in_the_way").write_text("a file where a folder is wanted\n")
    (root / "bad.yml").write_text("default: [unclosed\n")
    (root / "list.yml").write_text("- 1\n- 2\n")
    (root / "bad.json").write_text("{not json")
    (root / "empty.npy").write_bytes(b"")
    (root / "text.npy").write_text("0 1 0\n")
    np.savez(root / "arrays.npz", a=np.zeros(3))
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(root / "nan.npy", np.full((32, 32), np.nan, dtype=np.float32))
    (root / "space.py").write_text("def not_a_dict(trial, budget):\n    return [1]\n")


BAD_ENVS = ["", "nope", "designgym/Extrusion-v0", "no_module_here:lab/X-v0", "designgym/Extrusion-v2:", ":"]
BAD_CONDITIONS = ["{", "5", '{"nope": 1}', '{"max_hollows": 100000000000000000000000000000}',
                  '{"area_fraction": NaN}', '{"area_fraction": "x"}']
BAD_CASES = ["[]", "[1]", *BAD_CONDITIONS]

CASES: dict[str, list[list[str]]] = {
    "train": [
        *[["--env", v] for v in BAD_ENVS],
        ["--algo", "dqn"], ["--algo", ""],
        *[["--timesteps", v] for v in ("-5", "0", "x", "1.5")],
        *[["--seed", v] for v in ("-5", "x", "4294967296")],
        *[["--n-envs", v] for v in ("0", "-1", "x")],
        ["--vec-env", "threads"], ["--device", "tpu"], ["--device", "cuda:x"],
        ["--hyperparams", "missing.yml"], ["--hyperparams", "bad.yml"], ["--hyperparams", "list.yml"],
        ["--hyperparams", "tuned"],
        *[["--params", v] for v in ("n_steps", "n_steps=[", "n_steps=0", "learning_rate=.nan", "nonsense=1",
                                   "n_epochs=0", "gamma=2", "batch_size=-1", "=3")],
        *[["--env-kwargs", v] for v in ("latent_bound=.nan", "objective_scale=1e-320", "episode_length=x",
                                       "unknown=1", "step_size=[1", "violation_weights=heavy")],
        ["--out", "in_the_way"], ["--out", "in_the_way/runs"], ["--run-name", "good"],
        ["--eval-episodes", "0"], ["--eval-freq", "-5"], ["--save-freq", "-5"],
        ["--tensorboard-log", "in_the_way"],
        ["--resume", "missing_run"], ["--resume", "in_the_way"], ["--resume", "tuned"], ["--resume", "runs/good"],
        ["--threads", "-3"], ["--threads", "x"],
    ],
    "tune": [
        *[["--env", v] for v in BAD_ENVS],
        ["--algo", "dqn"], ["--n-trials", "-1"], ["--n-trials", "x"], ["--max-total-trials", "0"],
        *[["--timeout", v] for v in ("-1", "nan", "inf", "x")],
        ["--timesteps-per-trial", "0"], ["--n-evaluations", "0"], ["--eval-episodes", "0"],
        ["--sampler", "x"], ["--pruner", "x"], ["--n-startup-trials", "-1"],
        *[["--storage", v] for v in ("nosuchdb://x", "sqlite:////no/such/folder/x.db", "journal:",
                                     "postgresql://user@127.0.0.1:1/db")],
        ["--study-name", "other", "--out", "tuned"],
        ["--seed", "-5"], ["--seeds-per-trial", "0"], ["--sampler-seed", "-1"],
        ["--out", "in_the_way"], ["--out", "runs/good"],
        ["--n-envs", "0"], ["--vec-env", "x"], ["--device", "tpu"],
        ["--hyperparams", "missing.yml"], ["--hyperparams", "bad.yml"],
        ["--params", "n_steps=["], ["--params", "n_steps=0"], ["--env-kwargs", "latent_bound=.nan"],
        *[["--search-space", v] for v in ("no_such_module:f", "x", "os:no_such_function", "space:not_a_dict")],
        ["--heartbeat-interval", "0"], ["--max-retry", "-1"], ["--threads", "-1"],
    ],
    "eval": [
        ["--run", "missing_run"], ["--run", "in_the_way"], ["--run", "tuned"], ["--run", "design.npy"],
        ["--run", "runs/good", "--model", "x"], ["--run", "runs/good", "--env", "nope"],
        ["--run", "runs/good", "--env", "Cantilever-v1"],
        *[["--run", "runs/good", "--episodes", v] for v in ("0", "-1", "x")],
        ["--run", "runs/good", "--seed", "-5"],
        *[["--run", "runs/good", "--conditions", v] for v in BAD_CASES],
        ["--run", "runs/good", "--out", "in_the_way"],
    ],
    "design": [
        *[["--env", v, "--agent", "runs/good"] for v in BAD_ENVS],
        ["--env", "Extrusion-v2", "--agent", "missing_run"],
        ["--env", "Cantilever-v1", "--agent", "runs/good"],
        *[["--env", "Extrusion-v2", "--agent", "runs/good", "--conditions", v] for v in ["[]", *BAD_CONDITIONS]],
        ["--env", "Extrusion-v2", "--agent", "runs/good", "--out", "tuned"],
        ["--env", "Extrusion-v2", "--agent", "runs/good", "--out", "in_the_way/d.npy"],
        ["--env", "Extrusion-v2", "--agent", "runs/good", "--polish", "-1"],
        ["--env", "Extrusion-v2", "--agent", "runs/good", "--polish", "x"],
    ],
    "baseline": [
        *[["--env", v, "--method", "random"] for v in BAD_ENVS],
        ["--env", "Extrusion-v2", "--method", "x"],
        *[["--env", "Extrusion-v2", "--method", "random", flag, v]
          for flag, v in [("--budget", "0"), ("--budget", "x"), ("--episodes", "0"), ("--seed", "-1"),
                          ("--search-seed", "-1")]],
        *[["--env", "Extrusion-v2", "--method", "random", "--conditions", v] for v in BAD_CASES],
        ["--env", "Extrusion-v2", "--method", "random", "--budget", "1", "--episodes", "1", "--out", "in_the_way"],
    ],
    "score": [
        ["--agent", "missing_run"], ["--agent", "runs/good", "--env", "nope"],
        ["--agent", "runs/good", "--env", "Cantilever-v1"], ["--agent", "runs/good", "--model", "x"],
        *[["--agent", "runs/good", "--conditions", v] for v in BAD_CASES],
        ["--agent", "runs/good", "--references", "missing.json"],
        ["--agent", "runs/good", "--references", "bad.json"],
        ["--agent", "runs/good", "--conditions", "[{}]", "--out", "tuned"],
        ["--agent", "runs/good", "--conditions", "[{}]", "--out", "in_the_way/score.json"],
        ["--agent", "pretrained"],
    ],
    "evaluate": [
        *[["--env", v, "--design", "design.npy"] for v in BAD_ENVS],
        *[["--env", "Extrusion-v2", "--design", v]
          for v in ("missing.npy", "empty.npy", "text.npy", "arrays.npz", "objects.npy", "tuned")],
        *[["--env", "Extrusion-v2", "--design", "design.npy", "--conditions", v] for v in BAD_CONDITIONS],
        ["--env", "Cantilever-v1", "--design", "design.npy"],
        ["--env", "Extrusion-v2", "--design", "nan.npy"],
    ],
    "envs": [["--json", "--nope"]],
}


QUICK = {
    "train": {"--timesteps": "64", "--eval-episodes": "2", "--save-freq": "0", "--eval-freq": "0"},
    "tune": {"--timesteps-per-trial": "64", "--n-trials": "1", "--eval-episodes": "2", "--n-evaluations": "1"},
}


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.parametrize(("verb", "args"), [(verb, args) for verb, cases in CASES.items() for args in cases],
                         ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_a_malformed_option_is_one_line_and_touches_nothing(made, verb, args, capsys, monkeypatch):
    monkeypatch.chdir(made)
    before = _snapshot(made)
    folders = sorted(str(p) for p in made.rglob("*") if p.is_dir())
    argv = [verb, *args]
    # Small enough that a value wrongly accepted finishes quickly (and then fails the test).
    given = {a for a in args if a.startswith("--")}
    for key, value in QUICK.get(verb, {}).items():
        if key not in given:
            argv += [key, value]
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse
        code = exited.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, f"exit {code}: {captured.err[-1500:]}"
    assert len(lines) == 1 and lines[0].startswith("designgym"), captured.err[-3000:]
    assert "Traceback" not in captured.err and "report it" not in captured.err
    assert _snapshot(made) == before, "a file made before changed"
    assert sorted(str(p) for p in made.rglob("*") if p.is_dir()) == folders, "a folder was left behind"


def test_the_cases_cover_every_option_of_every_verb():
    """A new option gets malformed values here too."""
    from designgym.cli import build_parser

    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for verb, sub in verbs.items():
        options = {s for a in sub._actions for s in a.option_strings if s.startswith("--")}
        options -= {"--help", "--json", "--progress", "--no-progress", "--export-only"}  # switches take no value
        tried = {a for case in CASES.get(verb, []) for a in case if a.startswith("--")}
        assert options <= tried, f"{verb}: no malformed values for {sorted(options - tried)}"
