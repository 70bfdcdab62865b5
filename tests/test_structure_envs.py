"""The structural envs: the shipped generators fit their problems, rewards follow the docs, cards hold."""

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym import generators
from designgym.envs.manufacturing import floating_fraction, solid_mask

ENVS = {
    "designgym/Cantilever-v0": ("cantilever", "cantilever-vae"),
    "designgym/AMBracket-v0": ("am_bracket", "cantilever-vae"),
    "designgym/MBB-v0": ("mbb", "mbb-vae"),
}


@pytest.mark.parametrize("env_id", ENVS)
def test_env_joins_its_problem_and_generator(env_id):
    problem_name, generator_name = ENVS[env_id]
    env = gym.make(env_id).unwrapped
    assert env.problem.name == problem_name and env.generator.name == generator_name
    assert env.action_space.shape == (8,) and env.episode_length == 1
    trained_for = "cantilever" if problem_name == "am_bracket" else problem_name
    assert generators.card(generator_name)["problem"] == trained_for
    assert tuple(env.generator.design_shape) == env.problem.design_space.shape


def test_cantilever_reward_is_the_documented_sum():
    env = gym.make("designgym/Cantilever-v0").unwrapped
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 20.0}
    env.reset(seed=0, options={"conditions": conditions})
    start = env.problem.evaluate(env.generator.decode_numpy(np.zeros((1, 8), np.float32))[0], conditions)
    action = np.full(8, 0.1, np.float32)
    _, reward, terminated, _, info = env.step(action)
    ev = env.problem.evaluate(env.generator.decode_numpy(3.0 * action[None])[0], conditions)
    weights = {"volume_excess": 10.0, "floating_material": 10.0, "load_path": 2.0}
    expected = ev.objectives["log_stiffness_gain"] - start.objectives["log_stiffness_gain"]
    expected -= sum(w * ev.violations[k] for k, w in weights.items())
    assert terminated and reward == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert info["objectives"]["compliance"] == pytest.approx(ev.objectives["compliance"])


def test_am_bracket_observes_the_build_direction():
    env = gym.make("designgym/AMBracket-v0").unwrapped
    seen = set()
    for direction in range(4):
        obs, info = env.reset(seed=1, options={"conditions": {"build_direction": direction}})
        assert info["conditions"]["build_direction"] == direction
        seen.add(tuple(np.round(obs, 6)))
        _, _, _, _, info = env.step(np.zeros(8, np.float32))
        assert {"overhang", "member_size"} <= set(info["violations"])
    assert len(seen) == 4


@pytest.mark.parametrize("name", ["cantilever-vae", "mbb-vae"])
def test_structure_generator_samples_float_as_often_as_the_card_says(name):
    card = generators.card(name)
    model = generators.load(name, device="cpu")
    problem = designgym.make_problem(card["problem"])
    z = np.random.default_rng(123).standard_normal((256, model.latent_dim)).astype(np.float32)
    masks = solid_mask(model.decode_numpy(z))
    floating = np.array([floating_fraction(m, problem._anchored_cells()) > 0 for m in masks])
    # Other draws than the card's 512: within about three standard errors at n = 256.
    assert abs(floating.mean() - card["metrics"]["prior_floating_rate"]) < 0.1
    assert abs(masks.mean() - card["metrics"]["prior_volume_fraction_mean"]) < 0.03
    assert (model.decode_numpy(z[:4]) >= 0).all()


@pytest.mark.parametrize("name", ["cantilever-vae", "mbb-vae"])
def test_structure_generator_card_states_the_gap_to_simp(name):
    metrics = generators.card(name)["metrics"]
    assert metrics["heldout_designs"] >= 100
    assert metrics["heldout_compliance_ratio_median"] >= 0.9  # a round trip is rarely stiffer than SIMP
    assert 0 <= metrics["prior_floating_rate"] <= 1 and 0 <= metrics["heldout_floating_rate"] <= 1
