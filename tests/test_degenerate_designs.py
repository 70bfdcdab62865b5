"""Numerical faults: designs whose stiffness matrix is ill-conditioned or singular get the finite,
documented penalty of a design that carries no load, never an exception or a NaN reward; and a
problem that returns a NaN is stopped with a message, before the NaN reaches an agent."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import designgym
from designgym.envs.problem import ObjectiveSpec, Problem
from designgym.envs.structures.fem import FEModel
from designgym.generators.base import Generator

STRUCTURES = ["cantilever", "mbb", "am_bracket"]


def conditions_of(problem):
    return problem.default_conditions()


def no_load_verdict(problem, conditions):
    """What the docs promise for a design that carries no load."""
    return {
        "log_stiffness_gain": problem.gain_floor,
        "compliance": problem.uniform_compliance(conditions) * math.exp(-problem.gain_floor),
    }


@pytest.mark.parametrize("name", STRUCTURES)
def test_an_all_void_design_scores_the_floor_with_finite_numbers(name):
    problem = designgym.make_problem(name)
    conditions = conditions_of(problem)
    void = np.zeros(problem.design_space.shape)
    evaluation = problem.evaluate(void, conditions)
    # Void is E = 1e-9: the matrix is the solid one scaled by 1e-9, ill-conditioned but solvable.
    solid = problem.evaluate(np.ones(problem.design_space.shape), conditions).objectives["compliance"]
    assert evaluation.objectives["compliance"] == pytest.approx(solid / 1e-9, rel=1e-6)
    assert evaluation.objectives["log_stiffness_gain"] == problem.gain_floor
    # No solid at all counts as all of it floating (manufacturing.floating_fraction), and no load path.
    assert evaluation.violations["load_path"] == 1.0 and evaluation.violations["floating_material"] == 1.0
    assert all(math.isfinite(v) for v in [*evaluation.objectives.values(), *evaluation.violations.values()])
    assert not evaluation.feasible


@pytest.mark.parametrize("name", STRUCTURES)
def test_a_truly_singular_stiffness_matrix_gets_the_documented_penalty(name):
    """With a void modulus of 0 the nodes touched only by void hold nothing: the matrix is
    singular, the solver says so, and the design is judged as carrying no load."""
    problem = designgym.make_problem(name)
    problem.model = FEModel(problem.nelx, problem.nely, problem._fixed_dofs(), emin=0.0)
    conditions = conditions_of(problem)
    void = np.zeros(problem.design_space.shape)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        problem.model.compliance(void, problem.force_vector(conditions))
    evaluation = problem.evaluate(void, conditions)
    expected = no_load_verdict(problem, conditions)
    assert evaluation.objectives["log_stiffness_gain"] == expected["log_stiffness_gain"]
    assert evaluation.objectives["compliance"] == pytest.approx(expected["compliance"])
    assert evaluation.violations["load_path"] == 1.0

    # In a batch, only the singular design gets the penalty; the solid one keeps its real compliance.
    solid = np.ones(problem.design_space.shape)
    batch = problem.evaluate_batch([solid, void, solid], [conditions] * 3)
    assert batch[1] == evaluation
    assert batch[0] == batch[2] == problem.evaluate(solid, conditions)
    assert batch[0].objectives["log_stiffness_gain"] > 0


def test_a_solve_that_returns_nonsense_is_judged_as_carrying_no_load(monkeypatch):
    problem = designgym.make_problem("cantilever")
    conditions = conditions_of(problem)
    for nonsense in (math.nan, math.inf, -1.0, 0.0):
        monkeypatch.setattr(problem.model, "compliance", lambda density, force, value=nonsense: value)
        evaluation = problem.evaluate(np.ones(problem.design_space.shape), conditions)
        assert evaluation.objectives == pytest.approx({**no_load_verdict(problem, conditions), "volume_fraction": 1.0})
        assert evaluation.violations["load_path"] == 1.0


class VoidGenerator(Generator):
    """Decodes every latent to an empty plate."""

    latent_dim = 4

    def __init__(self, shape):
        super().__init__()
        self.design_shape = tuple(shape)
        self.scale = torch.nn.Parameter(torch.zeros(1))

    def _decode(self, z):
        return torch.zeros((z.shape[0], *self.design_shape)) * self.scale


@pytest.mark.parametrize("name", STRUCTURES)
def test_the_env_reward_of_an_empty_plate_is_finite_and_as_documented(name):
    problem = designgym.make_problem(name)
    env = designgym.LatentDesignEnv(problem, VoidGenerator(problem.design_space.shape))
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.ones(4, dtype=np.float32))
    # The floored objective (gain -5) and the penalties of its broken rules, at least
    # 10 x floating_material (1) and 2 x load_path (1).
    assert info["reward_parts"]["objective"] == problem.gain_floor
    expected = problem.gain_floor - sum(env.violation_weights[k] * v for k, v in info["violations"].items())
    assert reward == pytest.approx(expected) and reward <= -12.0 and math.isfinite(reward)


class NaNProblem(Problem):
    """A problem with a bug: it judges some designs as NaN."""

    name = "nan-problem"
    violation_names = ("excess",)

    def __init__(self):
        from gymnasium import spaces

        self.conditions_space = spaces.Dict({"target": spaces.Box(0.0, 1.0, shape=(), dtype=np.float32)})
        self.design_space = spaces.Box(0.0, 1.0, shape=(8, 8), dtype=np.float32)
        self.objective = ObjectiveSpec("score")

    def _evaluate(self, design, conditions):
        return {"score": math.nan if design.mean() < 0.5 else 1.0}, {"excess": 0.0}


def test_a_problem_that_returns_nan_is_stopped_with_a_message_before_an_agent_sees_it():
    problem = NaNProblem()
    assert problem.evaluate(np.ones((8, 8)), {"target": 0.5}).objectives["score"] == 1.0
    with pytest.raises(FloatingPointError, match=r"nan-problem: _evaluate gave the non-finite objective value\(s\) "
                                                 r"\{'score': nan\}; a problem must judge every valid design"):
        problem.evaluate(np.zeros((8, 8)), {"target": 0.5})


def test_every_registered_env_judges_the_empty_and_the_full_design_finitely():
    for env_id in designgym.list_envs():
        problem = gym.make(env_id).unwrapped.problem
        for fill in (0.0, 1.0):
            evaluation = problem.evaluate(np.full(problem.design_space.shape, fill), problem.default_conditions())
            values = [*evaluation.objectives.values(), *evaluation.violations.values()]
            assert all(math.isfinite(v) for v in values), (env_id, fill, evaluation)
