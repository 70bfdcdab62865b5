"""Properties of the env API that must hold for any input, checked with hypothesis on every
registered env: in-space actions and conditions keep observations in their space and rewards
finite (the parts adding up to the reward); any reset/step sequence with any seeds is
deterministic; a refused action changes nothing."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import designgym

# Each registered env, and the delta mode and the dict layout on one of them.
VARIANTS = [(env_id, {}) for env_id in designgym.list_envs()] + [
    ("designgym/Cantilever-v1", {"action_mode": "delta", "episode_length": 3, "initial_latent": "random"}),
    ("designgym/Extrusion-v2", {"observation_layout": "dict"}),
]
IDS = [f"{env_id.split('/')[-1]}{'-' + '-'.join(map(str, kw.values())) if kw else ''}" for env_id, kw in VARIANTS]
_ENVS: dict[tuple[int, int], gym.Env] = {}

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def env_of(index: int, copy: int = 0) -> gym.Env:
    """One env per variant (and a second copy for comparisons), made once: making one loads a
    generator, and the properties must hold whatever episodes an env ran before."""
    if (index, copy) not in _ENVS:
        env_id, kwargs = VARIANTS[index]
        _ENVS[index, copy] = gym.make(env_id, **kwargs)
    return _ENVS[index, copy]


def actions(env: gym.Env) -> st.SearchStrategy:
    """Any action in the box: its corners, zeros, tiny and ordinary values alike."""
    box = env.action_space
    return arrays(np.float32, box.shape, elements=st.floats(-1.0, 1.0, width=32))


def conditions(env: gym.Env) -> st.SearchStrategy:
    """Any conditions in the conditions space, bounds included."""
    fields = {}
    for key, space in env.unwrapped.problem.conditions_space.spaces.items():
        if isinstance(space, spaces.Discrete):
            fields[key] = st.integers(int(space.start), int(space.start + space.n - 1))
        else:
            fields[key] = st.floats(float(space.low.item()), float(space.high.item()))
    return st.fixed_dictionaries(fields)


def check_step(env: gym.Env, obs, reward, info) -> None:
    assert env.observation_space.contains(obs), obs
    assert np.isfinite(reward)
    assert sum(info["reward_parts"].values()) == pytest.approx(reward, abs=1e-9)
    assert all(np.isfinite(v) for v in info["objectives"].values())
    assert all(np.isfinite(v) and v >= 0 for v in info["violations"].values())


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=IDS)
@PROPERTY
@given(data=st.data())
def test_in_space_actions_and_conditions_keep_observations_in_space_and_rewards_finite(index, data):
    env = env_of(index)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    given_conditions = data.draw(st.none() | conditions(env), label="conditions")
    options = {"conditions": given_conditions} if given_conditions is not None else None
    obs, info = env.reset(seed=seed, options=options)
    assert env.observation_space.contains(obs)
    if given_conditions is not None:
        assert info["conditions"] == pytest.approx(given_conditions)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(data.draw(actions(env), label="action"))
        check_step(env, obs, reward, info)
        done = terminated or truncated


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=IDS)
@PROPERTY
@given(data=st.data())
def test_any_reset_and_step_sequence_is_deterministic(index, data):
    """Two envs given the same seeds and actions give the same observations, rewards and infos,
    whatever each ran before; resets without a seed go on from the seeded generator."""
    first, second = env_of(index, 0), env_of(index, 1)
    episodes = data.draw(st.lists(st.tuples(st.none() | st.integers(0, 2**32 - 1),
                                            st.lists(actions(first), min_size=1, max_size=3)),
                                  min_size=1, max_size=3), label="episodes")
    seed0 = data.draw(st.integers(0, 2**32 - 1), label="first seed")  # the first reset is always seeded
    for k, (seed, steps) in enumerate(episodes):
        seed = seed0 if k == 0 else seed
        a, b = first.reset(seed=seed), second.reset(seed=seed)
        np.testing.assert_equal(a, b)
        for action in steps[: first.unwrapped.episode_length]:
            a, b = first.step(action), second.step(action)
            np.testing.assert_equal(a, b)
            if a[2] or a[3]:
                break


@pytest.mark.parametrize("index", range(len(VARIANTS)), ids=IDS)
@PROPERTY
@given(data=st.data())
def test_a_refused_action_changes_nothing(index, data):
    """A non-finite or wrongly shaped action is refused with a ValueError, and the episode goes on
    as if it had never been sent."""
    first, second = env_of(index, 0), env_of(index, 1)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    good = data.draw(actions(first), label="action")
    bad = good.copy()
    position = data.draw(st.integers(0, bad.size - 1), label="position")
    bad[position] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
    wrong_shape = data.draw(st.sampled_from([good[:-1], np.append(good, 0.0), good[None, :]]), label="shape")
    first.reset(seed=seed)
    second.reset(seed=seed)
    with pytest.raises(ValueError, match="NaN or infinite"):
        first.step(bad)
    with pytest.raises(ValueError, match="must have shape"):
        first.step(wrong_shape)
    np.testing.assert_equal(first.step(good), second.step(good))
