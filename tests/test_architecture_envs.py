"""FloorPlan-v2 and Massing-v2: their shipped conditional generators and the envs built on them.

(Both envs also run through the checkers and the seeding tests of test_env.py, like every
registered env; the problems' rules are tested on planted designs in test_floorplan.py and
test_massing.py.)
"""

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym import generators

ENVS = {"designgym/FloorPlan-v2": "floorplan-slicing", "designgym/Massing-v2": "massing-cvae"}
#: Every conditional generator of the two problems: the envs' own and the pixel plan generator.
GENERATORS = {**ENVS, "designgym/FloorPlan-v1 (pixels)": "floorplan-cvae"}


@pytest.mark.parametrize("env_id, name", GENERATORS.items())
def test_shipped_generator_card_matches_its_problem(env_id, name):
    card = generators.card(name)
    problem = designgym.make_problem(card["problem"])
    assert card["conditions"]["keys"] == list(problem.conditions_space.spaces)
    assert generators.load(name, device="cpu").conditions_dim == problem.conditions_dim
    assert card["design_shape"] == list(problem.design_space.shape)
    assert card["script"] in ("scripts/train_architecture_generator.py", "scripts/make_layout_generator.py")
    metrics = card["metrics"]
    for key in ("prior_feasible_rate", "prior_mean_feasible_rate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert (generators.registry.WEIGHTS_DIR / f"{name}.pt").stat().st_size < 5_000_000
    generator = generators.load(name, device="cpu")
    assert generator.condition_keys == tuple(problem.conditions_space.spaces)


@pytest.mark.parametrize("env_id, name", GENERATORS.items())
def test_raw_samples_meet_the_rules_about_as_often_as_the_card_says(env_id, name):
    # Other briefs and latents than the card's, so allow sampling error (n = 128: about 3 standard errors).
    generator = generators.load(name, device="cpu")
    problem = designgym.make_problem(generators.card(name)["problem"])
    rng = np.random.default_rng(123)
    briefs = [problem.sample_conditions(rng) for _ in range(128)]
    vectors = np.stack([problem.conditions_vector(b) for b in briefs])
    designs = generator.decode_numpy(rng.standard_normal((128, generator.latent_dim)), vectors)
    feasible = np.mean([e.feasible for e in problem.evaluate_batch(list(designs), briefs)])
    stated = generators.card(name)["metrics"]["prior_feasible_rate"]
    assert abs(feasible - stated) <= 3 * np.sqrt(max(stated * (1 - stated), 0.01) / 128) + 0.02


@pytest.mark.parametrize("env_id", ENVS)
def test_the_design_follows_the_brief(env_id):
    # One latent, two briefs: the conditional generator fits each design to its own brief.
    env = gym.make(env_id)
    problem = env.unwrapped.problem
    rng = np.random.default_rng(0)
    action = np.zeros(env.action_space.shape, np.float32)
    designs = []
    for _ in range(2):
        env.reset(options={"conditions": problem.sample_conditions(rng)})
        env.step(action)
        designs.append(env.unwrapped.design)
    assert not np.array_equal(designs[0], designs[1])
    env.close()


def test_floor_plan_designs_are_room_codes_and_massing_designs_whole_storeys():
    plan_env, massing_env = gym.make("designgym/FloorPlan-v2"), gym.make("designgym/Massing-v2")
    for env in (plan_env, massing_env):
        env.reset(seed=1)
        env.step(env.action_space.sample())
    plan = plan_env.unwrapped.design
    assert plan.shape == (24, 24) and set(np.unique(plan)) <= set(range(6))
    heights = massing_env.unwrapped.design
    assert heights.shape == (32, 32) and heights.min() >= 0 and heights.max() <= 60
    np.testing.assert_allclose(heights / 3.5, np.round(heights / 3.5), atol=1e-5)


@pytest.mark.parametrize("env_id", ENVS)
def test_render_draws_the_design_for_its_brief(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=2)
    env.step(env.action_space.sample())
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= 300  # big enough to read (room labels, outlines)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 8  # colours, lines and text, not one flat fill


def test_massing_v2_designs_keep_to_the_envelope_and_wide_plates_whatever_the_action():
    # The env repairs every decoded massing: the envelope and plate rules hold for any action, the
    # floor area is in its band whenever the envelope can hold it, and the old id names the new one.
    env = gym.make("designgym/Massing-v2")
    rng = np.random.default_rng(4)
    in_band = 0
    for i in range(40):
        env.reset(seed=100 + i)
        action = rng.choice([-1.0, 1.0], size=env.action_space.shape) if i % 2 else env.action_space.sample()
        _, _, _, _, info = env.step(action.astype(np.float32))
        for rule in ("setback", "height", "sky_plane", "narrow_plates"):
            assert info["violations"][rule] == 0, (rule, info["violations"])
        in_band += info["violations"]["far_band"] == 0
    assert in_band >= 36  # 98.6 % of raw samples over 512 briefs (the generator's card)
    env.close()
