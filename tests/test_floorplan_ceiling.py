"""benchmarks/floorplan_ceiling.py's distance between briefs: the brief in cells must be the brief
the layout cuts, and the conditions it reads from a remembered observation the brief itself."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import benchmark_module

from designgym.envs.architecture.floorplan_layout import _Brief


@pytest.fixture(scope="module")
def ceiling():
    return benchmark_module("floorplan_ceiling")


@pytest.fixture(scope="module")
def env():
    env = gym.make("designgym/FloorPlan-v2").unwrapped
    yield env
    env.close()


def test_the_brief_in_cells_is_the_one_the_layout_cuts(ceiling, env):
    rng = np.random.default_rng(5)
    shapes = set()
    for _ in range(30):
        conditions = env.problem.check_conditions(env.sample_case(rng)["conditions"])
        cells = ceiling.brief_in_cells(env.problem, conditions)
        brief = _Brief(env.problem, conditions)
        g = brief.g
        shapes.add(g["shape"])
        assert cells[:7] == [g["shape"], g["w"], g["d"], g["nw"], g["nd"], g["n0"] - g["c0"], brief.entrance - g["c0"]]
        assert 0 <= cells[6] < g["w"]  # the door's column lies along the street side
        ranges = [value for code in sorted(brief.cells) for value in brief.cells[code]]
        assert cells[11:] == pytest.approx(ranges)  # the rooms' area ranges in cells: living, kitchen, bed, bath
    assert shapes == {0, 1, 2}  # rectangles, Ls and Us were all compared


def test_the_conditions_read_back_from_an_observation_are_the_brief(ceiling, env):
    rng = np.random.default_rng(6)
    for _ in range(10):
        conditions = env.problem.check_conditions(env.sample_case(rng)["conditions"])
        obs, _ = env.reset(options={"conditions": conditions})
        back = ceiling.remembered_brief(env, obs)
        assert set(back) == set(conditions)
        assert [back[k] for k in sorted(back)] == pytest.approx([conditions[k] for k in sorted(back)], rel=1e-5)
