"""Latent searches rank designs feasible first, then by the env's score; they judge designs as the env does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from designgym.agents import search as search_module
from designgym.agents.search import gated_key, judge, search

CONDITIONS = {"volfrac": 0.4, "load_x": 0.2}


@pytest.fixture(scope="module")
def mbb():
    # Without its repair step: raw decodings, some legal, some with loose specks.
    return gym.make("designgym/MBB-v2", repair=False).unwrapped


def test_gated_key_puts_every_feasible_design_first():
    assert gated_key(True, -100.0) > gated_key(False, 5.0)
    assert gated_key(True, 2.0) > gated_key(True, 1.0) and gated_key(False, 2.0) > gated_key(False, 1.0)


def test_the_best_design_is_feasible_whenever_a_feasible_one_was_judged(mbb):
    budget, d = 40, mbb.generator.latent_dim
    bounds = (np.full(d, -0.4), np.full(d, 0.4))  # near the prior's centre some designs are legal
    best = search(mbb, CONDITIONS, "random", [budget], seed=1, bounds=bounds)[0]
    actions = np.random.default_rng(1).uniform(-0.4, 0.4, (budget, d))
    judged = judge(mbb, actions, CONDITIONS)
    feasible = judged.feasible
    assert feasible.any() and not feasible.all()  # a test that can tell the rankings apart
    # The penalized score alone would pick an infeasible design here; the gated key does not.
    assert not feasible[int(np.argmax(judged.scores))]
    assert best["feasible"]
    assert best["score"] == pytest.approx(judged.scores[feasible].max())
    np.testing.assert_allclose(best["action"], actions[np.flatnonzero(feasible)[np.argmax(judged.scores[feasible])]],
                               rtol=1e-6)


@pytest.mark.parametrize("repair", [False, True])
def test_judge_equals_an_env_step(repair):
    mbb = gym.make("designgym/MBB-v2", repair=repair).unwrapped
    env = gym.make("designgym/MBB-v2", repair=repair).unwrapped
    action = np.linspace(-0.8, 0.8, mbb.generator.latent_dim).astype(np.float32)
    judged = judge(mbb, action[None, :], CONDITIONS)
    _, start = env.reset(options={"conditions": CONDITIONS})
    env.step(action)
    np.testing.assert_allclose(judged.designs[0], env.design, atol=1e-5)
    assert judged.evaluations[0].feasible == env.evaluation.feasible
    assert judged.scores[0] == pytest.approx(env.design_score(env.evaluation))


@pytest.mark.parametrize("method", ["random", "cmaes", "tpe"])
def test_searches_stay_inside_their_bounds(mbb, method, monkeypatch):
    seen = []
    real = search_module.judge

    def recording(env, actions, conditions):
        seen.append(np.array(actions))
        return real(env, actions, conditions)

    monkeypatch.setattr(search_module, "judge", recording)
    d = mbb.generator.latent_dim
    low, high = np.full(d, -0.2), np.full(d, 0.5)
    snapshots = search(mbb, CONDITIONS, method, [5, 25], seed=0, start=np.full(d, 0.1), sigma=0.2, bounds=(low, high))
    drawn = np.concatenate(seen)
    assert len(drawn) == 25 and [s["budget"] for s in snapshots] == [5, 25]
    assert np.all(drawn >= low - 1e-9) and np.all(drawn <= high + 1e-9)


@pytest.mark.parametrize("kwargs, message", [
    ({"sigma": 0.0}, "sigma must be a positive number"),
    ({"sigma": float("nan")}, "sigma must be a positive number"),
    ({"bounds": (np.zeros(8), np.zeros(8))}, "search bounds are empty"),
    ({"bounds": (np.full(8, np.nan), np.ones(8))}, "search bounds must be finite"),
])
def test_bad_search_settings_are_named(mbb, kwargs, message):
    with pytest.raises(ValueError, match=message):
        search(mbb, CONDITIONS, "cmaes", [4], seed=0, **kwargs)
