"""LatentDesignEnv: the Gymnasium contract, action modes, rewards, conditions and errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import designgym
from designgym.envs import Extrusion, LatentDesignEnv
from designgym.generators import ConvVAE


@pytest.fixture
def direct():
    return gym.make("designgym/Extrusion-v2", render_mode="rgb_array")


@pytest.fixture
def delta():
    return gym.make("designgym/ExtrusionSteps-v1")


@pytest.mark.parametrize("env_id", designgym.list_envs())
@pytest.mark.parametrize("layout", ["flat", "dict"])
def test_every_registered_env_passes_both_checkers(env_id, layout):
    env = gym.make(env_id, observation_layout=layout, render_mode="rgb_array")
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True, skip_render_check=False)


@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_same_seed_gives_the_same_episode(env_id):
    def episode(seed):
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        trace = [obs, info["conditions"]]
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            trace += [obs, reward, info["reward_parts"]]
            done = terminated or truncated
        return trace

    a, b, c = episode(3), episode(3), episode(4)
    assert _same(a, b)
    assert not _same(a, c)


def _same(a, b):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict):
            if x.keys() != y.keys() or not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif not np.array_equal(x, y):
            return False
    return True


def test_direct_mode_is_one_step_and_the_action_is_the_latent(direct):
    env = direct.unwrapped
    direct.reset(seed=0)
    action = np.linspace(-1, 1, env.action_space.shape[0]).astype(np.float32)
    _, _, terminated, truncated, _ = direct.step(action)
    assert terminated and not truncated
    np.testing.assert_allclose(env.latent, action * env.latent_bound, rtol=1e-6)
    decoded = env.generator.decode_numpy(env.latent[None])[0]
    assert env.repair  # Extrusion-v2 judges the repaired decoding
    np.testing.assert_array_equal(env.design, env.problem.repair(decoded, env.conditions))


def test_delta_mode_takes_bounded_steps_for_the_episode_length(delta):
    env = delta.unwrapped
    delta.reset(seed=0)
    assert env.episode_length == 8
    for t in range(8):
        before = env.latent.copy()
        _, _, terminated, truncated, _ = delta.step(np.ones(env.action_space.shape, np.float32))
        moved = env.latent - before
        assert np.all(moved <= env.step_size * env.latent_bound + 1e-6)
        assert np.all(np.abs(env.latent) <= env.latent_bound)
        assert terminated == (t == 7) and not truncated
    assert np.allclose(env.latent, env.latent_bound)  # eight full steps reach the bound and stay


def test_time_left_counts_down_in_the_observation(delta):
    obs, _ = delta.reset(seed=1)
    assert obs[-1] == 1.0
    obs, *_ = delta.step(np.zeros(delta.action_space.shape, np.float32))
    assert obs[-1] == pytest.approx(7 / 8)


@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_reward_parts_add_up_to_the_reward(env_id):
    env = gym.make(env_id)
    env.reset(seed=2)
    for _ in range(3):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        parts = info["reward_parts"]
        assert reward == pytest.approx(sum(parts.values()), abs=1e-12)
        names = env.unwrapped.problem.violation_names
        first = "objective" if env.unwrapped.action_mode == "direct" else "objective_improvement"
        assert set(parts) == {first} | {f"penalty/{n}" for n in names}
        assert all(v <= 0 for k, v in parts.items() if k.startswith("penalty/"))
        assert {"objectives", "violations", "feasible", "conditions"} <= set(info)
        if terminated:
            env.reset()


@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_cost_is_the_total_violation_and_zero_exactly_when_feasible(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=1)
    feasible = []
    for i in range(40):
        _, _, terminated, _, info = env.step(env.action_space.sample() * (0.3 if i % 2 else 1.0))
        tolerance = env.unwrapped.problem.feasibility_tolerance
        assert info["cost"] == pytest.approx(sum(v for v in info["violations"].values() if v > tolerance))
        assert (info["cost"] == 0.0) == info["feasible"]
        feasible.append(info["feasible"])
        if terminated:
            env.reset()
    # A legal design must turn up with cost 0 on every env (the bracket's and the buildings' repairs
    # make most random latents legal).
    assert any(feasible), f"none of 40 designs on {env_id} met every rule"


def test_the_direct_mode_reward_is_the_design_score(direct):
    env = direct.unwrapped
    env.reset(seed=4)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert env.design_score(env.evaluation) == pytest.approx(reward)
    assert info["reward_parts"]["objective"] == pytest.approx(env._score_of(env.evaluation))
    assert np.allclose(info["latent"], env.latent / env.latent_bound)


@pytest.mark.parametrize("env_id", [e for e in designgym.list_envs() if "Steps" not in e])
def test_a_direct_mode_episode_decodes_and_judges_one_design(env_id, monkeypatch):
    env = gym.make(env_id).unwrapped
    calls = {"decode": 0, "evaluate": 0}
    decode, evaluate = env.generator.decode_numpy, env.problem.evaluate

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(env.generator, "decode_numpy", counted("decode", decode))
    monkeypatch.setattr(env.problem, "evaluate", counted("evaluate", evaluate))
    obs, info = env.reset(seed=3)
    assert calls == {"decode": 0, "evaluate": 0}
    assert set(info) == {"conditions", "latent"}
    parts = env._observation_parts()
    sizes = {k: lo.size for k, (lo, _) in parts.items()}
    start = sizes["latent"] + sizes["conditions"]
    assert np.all(obs[start : start + sizes["objective"] + sizes["violations"]] == 0.0)  # no design judged yet
    env.step(env.action_space.sample())
    assert calls == {"decode": 1, "evaluate": 1}


def test_the_start_design_is_judged_on_demand_as_delta_mode_judges_it(direct):
    env = direct.unwrapped
    env.reset(seed=6, options={"latent": np.full(env.action_space.shape, 0.5, np.float32)})
    start_latent = env.latent.copy()
    env.step(env.action_space.sample())
    judged = env.start_evaluation()  # after the step: still the start latent's design
    delta = gym.make("designgym/ExtrusionSteps-v1").unwrapped
    _, info = delta.reset(options={"conditions": env.conditions, "latent": start_latent})
    assert judged.objectives == pytest.approx(info["objectives"]) and judged.feasible == info["feasible"]
    np.testing.assert_array_equal(env.start_design(), delta.design)
    assert env.start_evaluation() is judged  # judged once per episode


def test_sample_case_draws_what_a_reset_would_and_reset_replays_it(delta):
    env = delta.unwrapped
    env.reset(seed=9)
    drawn = env.sample_case(np.random.default_rng(9))
    assert set(drawn) == {"conditions", "latent"} and drawn["latent"].dtype == np.float32
    _, info = env.reset(options=drawn)
    assert info["conditions"] == drawn["conditions"]
    np.testing.assert_allclose(env.latent, drawn["latent"])
    direct = gym.make("designgym/Extrusion-v2", conditions={"max_hollows": 1}).unwrapped
    case = direct.sample_case(np.random.default_rng(0))
    assert set(case) == {"conditions"} and case["conditions"]["max_hollows"] == 1


def test_penalties_are_the_weighted_violations():
    env = gym.make("designgym/Extrusion-v2", violation_weights={"hollow_excess": 3.0}).unwrapped
    env.reset(seed=5)
    _, _, _, _, info = env.step(env.action_space.sample())
    assert env.violation_weights["hollow_excess"] == 3.0
    assert env.violation_weights["thin_walls"] == env.problem.default_violation_weights["thin_walls"]
    for name, value in info["violations"].items():
        assert info["reward_parts"][f"penalty/{name}"] == pytest.approx(-env.violation_weights[name] * value)


def test_objective_improvement_is_measured_from_the_previous_design(delta):
    env = delta.unwrapped
    _, info0 = delta.reset(seed=3)
    name = env.problem.objective.name
    previous = info0["objectives"][name]
    for _ in range(3):
        _, _, _, _, info = delta.step(delta.action_space.sample())
        current = info["objectives"][name]
        expected = (current - previous) / env.objective_scale
        assert info["reward_parts"]["objective_improvement"] == pytest.approx(expected)
        previous = current


def test_conditions_are_fixed_through_reset_options(direct):
    fixed = {"area_fraction": 0.2, "axis_angle": 10.0, "max_hollows": 1}
    _, info = direct.reset(seed=0, options={"conditions": fixed})
    assert info["conditions"] == fixed
    _, info = direct.reset(seed=1, options={"conditions": {"max_hollows": 2}})
    assert info["conditions"]["max_hollows"] == 2
    _, other = direct.reset(seed=1)
    assert info["conditions"]["area_fraction"] == other["conditions"]["area_fraction"]  # rest drawn as usual


def test_conditions_fixed_at_construction_apply_to_every_episode():
    env = gym.make("designgym/Extrusion-v2", conditions={"axis_angle": 45.0})
    for seed in range(3):
        assert env.reset(seed=seed)[1]["conditions"]["axis_angle"] == 45.0


@pytest.mark.parametrize(
    "conditions, message",
    [
        ({"area_fraction": 0.95}, "outside its range"),
        ({"max_hollows": 7}, "max_hollows"),
        ({"load": 1.0}, "unknown condition"),
    ],
)
def test_conditions_outside_their_space_are_refused_at_reset(direct, conditions, message):
    with pytest.raises(ValueError, match=message):
        direct.reset(seed=0, options={"conditions": conditions})


def test_unknown_reset_option_is_refused(direct):
    with pytest.raises(ValueError, match="unknown reset option"):
        direct.reset(options={"condition": {}})


def test_start_latent_can_be_given(delta):
    z = np.full(delta.action_space.shape, 0.5, np.float32)
    obs, _ = delta.reset(seed=0, options={"latent": z})
    np.testing.assert_allclose(delta.unwrapped.latent, z)
    np.testing.assert_allclose(obs[: z.size], z / delta.unwrapped.latent_bound)


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(3, np.float32), r"shape \(8,\)"),
        (np.zeros((1, 8), np.float32), r"got \(1, 8\)"),
        (np.array([np.nan] + [0] * 7, np.float32), r"NaN or infinite values at indices \[0\]"),
        (np.array([0] * 7 + [np.inf], np.float32), r"indices \[7\]"),
        ("up", "number array"),
    ],
)
def test_bad_actions_are_named(direct, action, message):
    direct.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        direct.unwrapped.step(action)


def test_finite_actions_outside_the_box_are_clipped(direct):
    direct.reset(seed=0)
    direct.unwrapped.step(np.full(8, 5.0, np.float32))
    np.testing.assert_allclose(direct.unwrapped.latent, direct.unwrapped.latent_bound)


def test_step_outside_an_episode_is_refused():
    env = gym.make("designgym/Extrusion-v2").unwrapped
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(env.action_space.sample())


def test_render_returns_the_current_design_as_a_picture(direct):
    direct.reset(seed=0)
    frame = direct.render()  # after a direct-mode reset: the start design, decoded for the picture
    assert frame.dtype == np.uint8 and frame.shape == (256, 256, 3)
    env = direct.unwrapped
    np.testing.assert_array_equal(frame, env.problem.render(env.start_design(), env.conditions))
    direct.step(np.full(env.action_space.shape, 0.4, np.float32))
    np.testing.assert_array_equal(direct.render(), env.problem.render(env.design, env.conditions))
    assert not np.array_equal(env.design, env.start_design())


def test_observation_dict_layout_holds_the_documented_parts():
    env = gym.make("designgym/ExtrusionSteps-v1", observation_layout="dict")
    obs, _ = env.reset(seed=0)
    assert list(obs) == ["latent", "conditions", "objective", "violations", "time_left"]
    assert obs["violations"].shape == (len(env.unwrapped.problem.violation_names),)
    flat = gym.make("designgym/ExtrusionSteps-v1").reset(seed=0)[0]
    np.testing.assert_array_equal(np.concatenate(list(obs.values())), flat)


def test_generator_for_another_design_shape_is_refused():
    with pytest.raises(ValueError, match=r"makes designs of shape \(16, 16\).*expects \(32, 32\)"):
        LatentDesignEnv(Extrusion(), ConvVAE(size=16))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"action_mode": "absolute"}, "action_mode must be one of 'direct', 'delta'"),
        ({"violation_weights": {"overhang": 1.0}}, r"unknown constraint\(s\) \['overhang'\]"),
        ({"violation_weights": -1.0}, r"violation_weights must be in \[0, "),
        ({"episode_length": 0}, "episode_length"),
        ({"render_mode": "human"}, "render_mode"),
        ({"conditions": {"axis_angle": 180.0}}, "outside its range"),
    ],
)
def test_bad_env_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("designgym/Extrusion-v2", **kwargs)


def test_env_problem_equals_make_problem():
    env = gym.make("designgym/Extrusion-v2")
    problem = designgym.make_problem("designgym/Extrusion-v2")
    assert type(problem) is type(env.unwrapped.problem)
    assert vars(problem) == vars(env.unwrapped.problem)
    assert type(designgym.make_problem("extrusion")) is Extrusion


@pytest.mark.parametrize("repair", [True, False])
def test_a_repeated_latent_is_decoded_once_and_gives_the_same_design(repair, monkeypatch):
    direct = gym.make("designgym/Extrusion-v2", repair=repair)
    env = direct.unwrapped
    calls = []
    decode = env.generator.decode_numpy
    monkeypatch.setattr(env.generator, "decode_numpy", lambda z: calls.append(z.copy()) or decode(z))
    # A repaired design depends on the conditions too, so they are held fixed here.
    options = {"conditions": {"area_fraction": 0.3, "axis_angle": 20.0, "max_hollows": 1}} if repair else None
    action = np.full(env.action_space.shape, 0.5, np.float32)
    direct.reset(seed=0, options=options)
    assert not calls  # a direct-mode reset decodes nothing
    direct.step(action)
    first = env.design.copy()
    direct.reset(seed=1, options=options)
    direct.step(action)  # the same latent again: no new decode
    assert len(calls) == 1
    np.testing.assert_array_equal(env.design, first)
    env.design[0, 0] = 7.0  # the kept copy is not the env's array
    for seed in (2, 3, 4):  # the two latest latents are kept: the one of 0.5 survives one other
        direct.reset(seed=seed, options=options)
        direct.step(np.full(env.action_space.shape, 0.1 * seed, np.float32))
        direct.reset(seed=seed, options=options)
        direct.step(action)
        np.testing.assert_array_equal(env.design, first)
    assert len(calls) == 4
