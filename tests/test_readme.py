"""The README's examples run as written."""

import re
from pathlib import Path

import gymnasium as gym

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
    assert set(info["violations"]) == {"over_area", "thin_fins", "disconnected"}


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
