"""The README's examples run as written."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def test_add_your_own_design_environment_example_runs():
    blocks = python_blocks("Add your own design environment")
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    env = gym.make("mylab/HeatSink-v0")
    assert env.unwrapped.episode_length == 8
    _, info = env.reset(seed=1)
    assert set(info["violations"]) == {"over_budget", "thin_fins", "loose_cells"}


def bash_lines(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```bash\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)
    return [line for block in blocks for line in block.splitlines()]


def readme_prose() -> str:
    """The README with every run of whitespace one space, so that figures wrapped over lines are found."""
    return " ".join(README.read_text().split())


@pytest.mark.slow
def test_heatsink_example_trains_legal_heat_sinks_that_beat_random(tmp_path):
    """The README's own command, ``designgym train --env mylab/HeatSink-v0`` (PPO, 20,000 steps), cut
    to 2,048 steps, run as a user runs it: a fresh process that imports the module registering the
    env, without the thread settings of this suite (``--threads 1`` as the README advises on a shared
    machine). An earlier example paid perimeter per cell used, with light penalties: PPO learned
    near-empty specks, none of them legal, for a higher return than random."""
    (block,) = python_blocks("Add your own design environment")
    user_module = f"import sys\nexec(compile({block!r}, 'README.md', 'exec'), {{}})\n" \
        "from designgym.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [sys.executable, "-c", user_module, "train", "--env", "mylab/HeatSink-v0", "--timesteps", "2048",
               "--threads", "1", "--eval-freq", "0", "--save-freq", "0", "--no-progress", "--out", str(tmp_path)]
    done = subprocess.run(command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = tmp_path.glob("HeatSink-v0_ppo_*")
    assert json.loads((run_dir / "metrics.json").read_text())["trained"]["feasible_rate"] == 1.0

    from designgym.agents.evaluation import load_agent
    from designgym.agents.rollouts import rollout

    if "mylab/HeatSink-v0" not in gym.registry:  # another test of this process may have run the example
        exec(compile(block, "README.md", "exec"), {})
    env = gym.make("mylab/HeatSink-v0")
    base, problem = env.unwrapped, env.unwrapped.problem
    rng = np.random.default_rng(0)
    trained = rollout(env, load_agent(run_dir).act, 32, seed=10_000)
    random = rollout(env, lambda _: rng.uniform(-1, 1, env.action_space.shape).astype(np.float32), 32, seed=10_000)

    # Every one of the 32, not most: the repair keeps every rule by construction, so a single illegal
    # design means that the example's rules or repair no longer agree, whatever the training budget.
    assert all(info["feasible"] for info in trained["evaluations"])

    def legal_gains(result: dict) -> list[float]:
        return [info["objectives"]["perimeter_gain"] for info in result["evaluations"] if info["feasible"]]

    # In units of the solid block's perimeter: the trained designs beat that free design in every case,
    # and random designs on average by half of it (2,048 steps gave 2.2 against 1.0 to 1.2 at 3 seeds).
    assert min(legal_gains(trained)) > 0.0
    assert np.mean(legal_gains(trained)) > np.mean(legal_gains(random)) + 0.5

    legal_scores = [base.design_score(problem.evaluate(design, conditions))
                    for result in (trained, random)
                    for design, conditions, info in zip(result["designs"], result["conditions"],
                                                        result["evaluations"], strict=True) if info["feasible"]]
    speck_scores = []
    for conditions in trained["conditions"]:
        budget = problem.budget(conditions)
        cell, block_2x2, line, scatter = (np.zeros((32, 32), np.float32) for _ in range(4))
        cell[16, 16] = 1
        block_2x2[15:17, 15:17] = 1
        line[16, : max(budget // 20, 2)] = 1
        scatter.ravel()[rng.choice(32 * 32, size=budget // 20, replace=False)] = 1
        speck_scores += [base.design_score(problem.evaluate(speck, conditions))
                         for speck in (cell, block_2x2, line, scatter)]
    assert max(speck_scores) < min(legal_scores)


def test_design_file_example_is_what_the_evaluate_line_judges(tmp_path, monkeypatch, capsys):
    from designgym.cli import main

    (block,) = python_blocks("The command")
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    (line,) = [line for line in bash_lines("The command") if line.startswith("designgym evaluate ")]
    assert main(shlex.split(line)[1:] + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["feasible"]
    assert f"(legal, stiffness {result['objectives']['stiffness']:.2f})" in readme_prose()


@pytest.mark.slow
def test_design_showcase_quotes_what_its_commands_print(tmp_path, monkeypatch, capsys):
    from designgym.cli import main

    lines = bash_lines("The command")
    (design,) = [line for line in lines if line.startswith("designgym design ") and "pretrained" in line]
    (reference,) = [line for line in lines if "--method reference --conditions" in line]
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(design)[1:] + ["--json"]) == 0
    agent = json.loads(capsys.readouterr().out)
    assert main(shlex.split(reference)[1:] + ["--json"]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    (simp,) = json.loads(Path(files["json"]).read_text())["episodes"]
    ours, theirs = agent["objectives"]["compliance"], simp["objective/compliance"]
    assert agent["feasible"] and simp["feasible"]
    prose = readme_prose()
    assert f"compliance {ours:.2f}, against SIMP's {theirs:.2f} ({simp['evaluations']}" in prose
    assert f"{100 * (ours / theirs - 1):.1f} % more compliant" in prose


def test_environment_usage_example_runs():
    (block,) = python_blocks("The environments")
    exec(compile(block, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README.read_text()


def test_train_an_agent_yaml_example_is_a_valid_ppo_file(tmp_path):
    from designgym.agents.algorithms import ALGORITHMS, normalize_kwargs
    from designgym.agents.hyperparams import algorithm_kwargs, check_keys, load_hyperparams

    text = README.read_text()
    section = text[text.index("## Train an agent") :]
    (block,) = re.findall(r"```yaml\n(.*?)```", section[: section.index("\n## ", 1)], flags=re.S)
    path = tmp_path / "ppo.yml"
    path.write_text(block)
    settings = load_hyperparams("ppo", "designgym/Cantilever-v1", path)
    check_keys(settings, ALGORITHMS["ppo"], str(path))
    assert callable(algorithm_kwargs(settings, 8, str(path))["learning_rate"])
    assert normalize_kwargs(settings["normalize"]) == {}


def test_every_picture_the_readme_shows_exists():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README.read_text())
    assert pictures
    for picture in pictures:
        assert (README.parent / picture).stat().st_size > 1000, picture


def test_tune_search_space_example_runs():
    from designgym.agents import search_spaces

    (block,) = python_blocks("Tune hyperparameters")
    saved = dict(search_spaces.SEARCH_SPACES)
    try:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        import optuna

        trial = optuna.create_study().ask()
        budget = search_spaces.Budget(n_envs=4, n_actions=8, timesteps=1024, eval_every=256)
        settings = search_spaces.search_space("ppo")(trial, budget)
        assert set(settings) == {"learning_rate", "n_steps", "policy_kwargs"}
    finally:
        search_spaces.SEARCH_SPACES.clear()
        search_spaces.SEARCH_SPACES.update(saved)
