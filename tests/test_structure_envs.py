"""The structural envs: the shipped generators fit their problems, rewards follow the docs, cards hold."""

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym import generators
from designgym.envs.manufacturing import floating_fraction, solid_mask

ENVS = {
    "designgym/Cantilever-v1": ("cantilever", "cantilever-cvae"),
    "designgym/AMBracket-v3": ("am_bracket", "am-bracket-cvae"),
    "designgym/MBB-v2": ("mbb", "mbb-vae"),
}


@pytest.mark.parametrize("env_id", ENVS)
def test_env_joins_its_problem_and_generator(env_id):
    problem_name, generator_name = ENVS[env_id]
    env = gym.make(env_id).unwrapped
    assert env.problem.name == problem_name and env.generator.name == generator_name
    assert env.action_space.shape == (8,) and env.episode_length == 1
    assert generators.card(generator_name)["problem"] == problem_name
    assert tuple(env.generator.design_shape) == env.problem.design_space.shape
    assert env.repair  # volume and floating material hold by construction


def test_cantilever_reward_is_the_documented_sum():
    env = gym.make("designgym/Cantilever-v1").unwrapped
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 20.0}
    env.reset(seed=0, options={"conditions": conditions})
    vector = env.problem.conditions_vector(conditions)[None]  # the generator's keys are all of them

    def judged(z):
        design = env.problem.repair(env.generator.decode_numpy(z, vector)[0], conditions)
        assert design.sum() == round(0.4 * design.size)
        return env.problem.evaluate(design, conditions)

    action = np.full(8, 0.1, np.float32)
    _, reward, terminated, _, info = env.step(action)
    ev = judged(3.0 * action[None])
    weights = {"volume_excess": 10.0, "floating_material": 10.0, "load_path": 2.0}
    expected = ev.objectives["log_stiffness_gain"]  # already relative to the uniform plate of the volume
    expected -= sum(w * ev.violations[k] for k, w in weights.items())
    assert terminated and reward == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert info["objectives"]["compliance"] == pytest.approx(ev.objectives["compliance"])


def test_am_bracket_observes_the_build_direction():
    env = gym.make("designgym/AMBracket-v3").unwrapped
    seen = set()
    for direction in range(4):
        obs, info = env.reset(seed=1, options={"conditions": {"build_direction": direction}})
        assert info["conditions"]["build_direction"] == direction
        seen.add(tuple(np.round(obs, 6)))
        _, _, _, _, info = env.step(np.zeros(8, np.float32))
        assert {"overhang", "member_size"} <= set(info["violations"])
    assert len(seen) == 4


@pytest.mark.parametrize("name", ["cantilever-vae", "cantilever-cvae", "mbb-vae"])
def test_structure_generator_samples_float_as_often_as_the_card_says(name):
    card = generators.card(name)
    model = generators.load(name, device="cpu")
    problem = designgym.make_problem(card["problem"])
    rng = np.random.default_rng(123)
    z = rng.standard_normal((256, model.latent_dim)).astype(np.float32)
    vectors = None
    if model.conditions_dim:  # each sample under conditions of its own, as the card's
        vectors = np.stack([problem.conditions_vector(problem.sample_conditions(rng)) for _ in range(256)])
    masks = solid_mask(model.decode_numpy(z, vectors))
    floating = np.array([floating_fraction(m, problem._anchored_cells()) > 0 for m in masks])
    # Other draws than the card's 512: within about three standard errors at n = 256.
    assert abs(floating.mean() - card["metrics"]["prior_floating_rate"]) < 0.1
    assert abs(masks.mean() - card["metrics"]["prior_volume_fraction_mean"]) < 0.03
    assert (model.decode_numpy(z[:4], None if vectors is None else vectors[:4]) >= 0).all()


@pytest.mark.parametrize("name", ["cantilever-vae", "cantilever-cvae", "mbb-vae"])
def test_structure_generator_card_states_the_gap_to_simp(name):
    metrics = generators.card(name)["metrics"]
    assert metrics["heldout_designs"] >= 100
    assert metrics["heldout_compliance_ratio_median"] >= 0.9  # a round trip is rarely stiffer than SIMP
    assert 0 <= metrics["prior_floating_rate"] <= 1 and 0 <= metrics["heldout_floating_rate"] <= 1


# -- repair=True, and conditional generators conditioned on some of the problem's conditions ----------

from designgym.envs.latent_env import LatentDesignEnv  # noqa: E402
from designgym.envs.structures.problems import AMBracket, Cantilever  # noqa: E402
from designgym.generators.models import ConvVAE  # noqa: E402

CANTILEVER_KEYS = ("load_angle", "load_y", "volfrac")  # the cantilever's conditions, in its space's order


def tiny_cvae(keys=CANTILEVER_KEYS, conditions_dim=3):
    import torch

    torch.manual_seed(0)
    model = ConvVAE(latent_dim=2, channels=8, shape=(8, 16), conditions_dim=conditions_dim).eval()
    model.condition_keys, model.name = tuple(keys), "tiny-cvae"
    return model


def counted_decodes(generator, monkeypatch):
    calls = []
    decode = generator.decode_numpy
    monkeypatch.setattr(generator, "decode_numpy", lambda *args: calls.append(1) or decode(*args))
    return calls


@pytest.mark.parametrize("env_id, name", [("designgym/FloorPlan-v2", "floor_plan")])
def test_repair_on_a_problem_without_one_is_refused_by_name(env_id, name):
    with pytest.raises(ValueError, match=f"repair=True, but problem {name} has no repair step"):
        gym.make(env_id, repair=True)


def test_repaired_env_judges_the_repaired_design():
    env = gym.make("designgym/Cantilever-v1").unwrapped  # registered with repair=True
    plain = gym.make("designgym/Cantilever-v1", repair=False).unwrapped
    assert env.repair and not plain.repair
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 20.0}
    action = np.full(8, 0.1, np.float32)
    for e in (env, plain):
        e.reset(seed=0, options={"conditions": conditions})
    _, reward, _, _, info = env.step(action)
    plain.step(action)
    decoded = env.generator.decode_numpy(3.0 * action[None], env.problem.conditions_vector(conditions)[None])[0]
    np.testing.assert_array_equal(plain.design, decoded)
    np.testing.assert_array_equal(env.design, env.problem.repair(decoded, conditions))
    assert int(env.design.sum()) == round(0.4 * 64 * 32) and set(np.unique(env.design)) == {0.0, 1.0}
    assert info["violations"]["floating_material"] == 0.0 and info["violations"]["volume_excess"] == 0.0
    # The reward judges the repaired design.
    now = env.problem.evaluate(env.design, conditions)
    expected = now.objectives["log_stiffness_gain"]
    expected -= sum(env.violation_weights[k] * v for k, v in now.violations.items())
    assert reward == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_repaired_designs_are_cached_per_conditions(monkeypatch):
    env = gym.make("designgym/Cantilever-v1", repair=True).unwrapped
    calls = counted_decodes(env.generator, monkeypatch)
    sums = []
    for volfrac in (0.3, 0.6, 0.6):  # the zero latent each time, an unconditional generator
        env.reset(seed=0, options={"conditions": {"volfrac": volfrac}})
        sums.append(int(env.start_design().sum()))
    # The same latent under another volume budget is another repaired design, not the cached one;
    # under the same conditions again it is served from the cache.
    assert sums == [round(0.3 * 2048), round(0.6 * 2048), round(0.6 * 2048)]
    assert len(calls) == 2


def test_generator_conditioned_on_some_of_the_conditions_decodes_with_those(monkeypatch):
    generator = tiny_cvae()
    env = LatentDesignEnv(AMBracket(16, 8), generator)
    assert env.observation_space.shape == (2 + 4 + 1 + 5 + 1,)  # the agent still sees all four conditions
    latent = np.array([1.5, -0.75], np.float32)
    expected = generator.decode_numpy(latent[None], np.array([[-0.5, -0.5, 0.0]], np.float32))[0]
    calls = counted_decodes(generator, monkeypatch)
    conditions = {"volfrac": 0.45, "load_y": 0.25, "load_angle": -30.0, "build_direction": 2}
    obs, _ = env.reset(seed=0, options={"conditions": conditions})
    np.testing.assert_allclose(env.generator_conditions(), [-0.5, -0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(obs[2:6], [1 / 3, -0.5, -0.5, 0.0], atol=1e-6)  # build_direction first (sorted)
    env.step(latent / env.latent_bound)
    np.testing.assert_array_equal(env.design, expected)
    # Another build direction alone: the generator's conditions are unchanged, so is the design,
    # served from the cache.
    env.reset(seed=0, options={"conditions": {**conditions, "build_direction": 0}, "latent": latent})
    np.testing.assert_array_equal(env.start_design(), expected)
    assert len(calls) == 1


def test_repair_with_a_partly_conditioned_generator_keys_on_all_conditions(monkeypatch):
    generator = tiny_cvae()
    problem = AMBracket(16, 8)
    env = LatentDesignEnv(problem, generator, repair=True)
    decoded = generator.decode_numpy(np.zeros((1, 2), np.float32), np.array([[-0.5, -0.5, 0.0]], np.float32))[0]
    calls = counted_decodes(generator, monkeypatch)
    conditions = {"volfrac": 0.45, "load_y": 0.25, "load_angle": -30.0, "build_direction": 2}
    env.reset(seed=0, options={"conditions": conditions})
    np.testing.assert_array_equal(env.start_design(), problem.repair(decoded, conditions))
    # Another build direction: the same decoding (the generator does not see it), repaired for that direction.
    env.reset(seed=0, options={"conditions": {**conditions, "build_direction": 3}})
    np.testing.assert_array_equal(env.start_design(), problem.repair(decoded, {**conditions, "build_direction": 3}))
    assert len(calls) == 2  # the conditions changed, so the repaired design was made anew


@pytest.mark.parametrize(
    "keys, dim, message",
    [
        (("load_angle", "load_x", "volfrac"), 3, r"conditioned on 3 condition values \(load_angle, load_x, volfrac\)"),
        (("load_y", "volfrac"), 3, r"on 3 condition values \(load_y, volfrac\), but problem cantilever has 3"),
        ((), 2, "conditioned on 2 condition values, but problem cantilever has 3"),
    ],
    ids=["unknown-key", "too-few-keys-for-its-size", "no-keys-wrong-size"],
)
def test_generator_with_conditions_the_problem_lacks_is_refused(keys, dim, message):
    with pytest.raises(ValueError, match=message):
        LatentDesignEnv(Cantilever(16, 8), tiny_cvae(keys, conditions_dim=dim))
