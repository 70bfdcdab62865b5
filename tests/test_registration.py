"""Registration: built-in ids, user envs in one call, entry-point plugins, and unknown names."""

import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import designgym
from designgym.envs import registration


def test_builtin_envs_are_registered_under_the_namespace():
    ids = designgym.list_envs()
    assert "designgym/Extrusion-v2" in ids
    assert all(i in gym.registry for i in ids)
    assert all(spec.description for spec in designgym.env_specs() if spec.source == "designgym")


def test_short_ids_resolve():
    assert registration.resolve_env_id("Extrusion-v2") == "designgym/Extrusion-v2"
    assert designgym.make("Extrusion-v2").spec.id == "designgym/Extrusion-v2"


@pytest.mark.parametrize("wrong", ["designgym/Extrusoin-v1", "Extrusion-v3", "extrusion-v1"])
def test_unknown_env_ids_suggest_close_ones(wrong):
    with pytest.raises(KeyError) as err:
        designgym.make(wrong)
    message = str(err.value)
    assert f"unknown env {wrong!r}" in message
    assert "did you mean" in message and "Extrusion" in message
    assert "designgym envs" in message


def test_unknown_problem_is_named():
    with pytest.raises(KeyError, match="unknown problem 'extrusions'.*'extrusion'"):
        designgym.make_problem("extrusions")


class Pebble(designgym.Problem):
    """A trivial problem: material near a target fraction."""

    name = "pebble"

    def __init__(self):
        self.design_space = spaces.Box(0, 1, (32, 32), np.float32)
        self.conditions_space = spaces.Dict({"fill": spaces.Box(0.1, 0.9, shape=(), dtype=np.float64)})
        self.objective = designgym.ObjectiveSpec("fill_error", sense="min", scale=0.1)
        self.violation_names = ("overfull",)

    def _evaluate(self, design, conditions):
        fill = float((design >= 0.5).mean())
        return {"fill_error": abs(fill - conditions["fill"])}, {"overfull": max(0.0, fill - 0.95)}


def test_user_env_is_registered_in_one_call():
    env_id = designgym.register_design_env(
        "tests/Pebble-v0", problem=Pebble, generator="extrusion-vae-32", description="a pebble", episode_length=3,
        action_mode="delta",
    )
    assert env_id in designgym.list_envs()
    env = gym.make(env_id)
    assert env.unwrapped.episode_length == 3
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
    assert isinstance(designgym.make_problem(env_id), Pebble)


def test_reregistering_warns_and_replaces():
    designgym.register_design_env("tests/Twice-v0", problem=Pebble, generator="extrusion-vae-32")
    with pytest.warns(UserWarning, match="already registered"):
        designgym.register_design_env("tests/Twice-v0", problem=Pebble, generator="extrusion-vae-32",
                                      description="second")
    assert {s.id: s.description for s in designgym.env_specs()}["tests/Twice-v0"] == "second"


@pytest.mark.parametrize("bad_id", ["Pebble-v0", "", "tests/"])
def test_malformed_ids_are_refused(bad_id):
    with pytest.raises(ValueError, match="namespace/Name-v0"):
        designgym.register_design_env(bad_id, problem=Pebble, generator="extrusion-vae-32")


def _install_fake_distribution(root, dist, module_source, entry_points):
    """Lay out an installed distribution (module + dist-info) the way pip would, on ``sys.path``."""
    (root / f"{dist}.py").write_text(textwrap.dedent(module_source))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[designgym.envs]\n" + entry_points + "\n")
    sys.path.insert(0, str(root))


@pytest.fixture
def plugin_path(tmp_path):
    saved = list(sys.path)
    yield tmp_path
    sys.path[:] = saved
    for name in ("pebble_plugin", "broken_plugin"):
        sys.modules.pop(name, None)
    registration.load_plugins(force=True)


def test_entry_point_plugin_shows_up_in_list_envs_and_the_cli(plugin_path, capsys):
    _install_fake_distribution(
        plugin_path,
        "pebble_plugin",
        """
        import designgym
        from designgym.envs.extrusion.problem import Extrusion

        def register():
            designgym.register_design_env(
                "pebbles/Section-v0", problem=lambda: Extrusion(min_wall=3), generator="extrusion-vae-32",
                description="extrusion with thicker walls, from a plugin",
            )
        """,
        "pebble = pebble_plugin:register",
    )
    errors = registration.load_plugins(force=True)
    assert "pebble" not in errors
    assert "pebbles/Section-v0" in designgym.list_envs()
    spec = {s.id: s for s in designgym.env_specs()}["pebbles/Section-v0"]
    assert spec.source == "pebble_plugin"
    assert gym.make("pebbles/Section-v0").unwrapped.problem.min_wall == 3

    from designgym.cli import main

    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "pebbles/Section-v0" in out and "from a plugin" in out and "[pebble_plugin]" in out


def test_broken_plugin_warns_and_does_not_stop_designgym(plugin_path):
    _install_fake_distribution(plugin_path, "broken_plugin", "raise ImportError('needs libfoo')\n",
                               "broken = broken_plugin:register")
    with pytest.warns(UserWarning, match="plugin 'broken'.*needs libfoo"):
        errors = registration.load_plugins(force=True)
    assert "needs libfoo" in errors["broken"]
    assert "designgym/Extrusion-v2" in designgym.list_envs()


@pytest.mark.parametrize("old, new", [("designgym/Extrusion-v0", "designgym/Extrusion-v2"),
                                      ("ExtrusionSteps-v0", "designgym/ExtrusionSteps-v1"),
                                      ("designgym/MBB-v0", "designgym/MBB-v2"),
                                      ("designgym/Extrusion-v1", "designgym/Extrusion-v2"),
                                      ("MBB-v1", "designgym/MBB-v2"),
                                      ("Cantilever-v0", "designgym/Cantilever-v1"),
                                      ("AMBracket-v0", "designgym/AMBracket-v3"),
                                      ("designgym/AMBracket-v1", "designgym/AMBracket-v3"),
                                      ("AMBracket-v2", "designgym/AMBracket-v3"),
                                      ("FloorPlan-v0", "designgym/FloorPlan-v2"),
                                      ("FloorPlan-v1", "designgym/FloorPlan-v2"),
                                      ("Massing-v0", "designgym/Massing-v2"),
                                      ("designgym/Massing-v1", "designgym/Massing-v2")])
def test_a_replaced_version_names_its_successor_and_why(old, new):
    import gymnasium as gym

    from designgym.envs.registration import RetiredEnvError, resolve_env_id

    why = ("v1 .*repair|v1 keeps|v. rewards a one-step design by its own objective|v2 decodes .* structured plan"
           "|v2 repairs|v3 joins a load")
    with pytest.raises(RetiredEnvError, match=f"was replaced by {new}: ({why})"):
        resolve_env_id(old)
    with pytest.raises(gym.error.DeprecatedEnv, match=new):  # Gymnasium's own words for an old version
        gym.make(old if "/" in old else f"designgym/{old}")
    result = subprocess.run([sys.executable, "-m", "designgym", "train", "--env", old, "--timesteps", "8"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and new in result.stderr
