"""Search distillation (`designgym train --algo distill`): it learns from the reward alone, and it is
a first-class algorithm: run folder, checkpoints with its case buffer as plain arrays, resume,
loading, dict observations, delta mode and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from designgym.agents.distill import CaseBuffer, DistillPolicy, SearchDistillation
from designgym.agents.rollouts import rollout
from designgym.agents.training import TrainConfig, resume, train

SMALL = {"search_budget": 12, "rescue_budget": 8, "gradient_steps": 16, "revisit": 0.5}


def test_the_recipe_beats_a_random_policy_from_the_reward_alone(tmp_path):
    result = train(TrainConfig(env="designgym/MBB-v2", algo="distill", timesteps=2500, seed=3, n_envs=4,
                               hyperparams=SMALL, out=str(tmp_path), run_name="run", eval_freq=0, save_freq=0,
                               eval_episodes=24, threads=1))
    trained, random_ = result.metrics["trained"], result.metrics["random"]
    # Seeded: on the 24 evaluation episodes the policy's beams are stiffer, and meet the rules more often.
    assert trained["mean_return"] > random_["mean_return"] + 1.0
    assert trained["mean_log_stiffness_gain"] > random_["mean_log_stiffness_gain"]
    assert trained["feasible_rate"] > random_["feasible_rate"]
    model = SearchDistillation.load(tmp_path / "run" / "model.zip", device="cpu")
    env = gym.make("designgym/MBB-v2")
    again = rollout(env, lambda obs: model.predict(obs, deterministic=True)[0], 24, seed=10_003)["summary"]
    assert again["mean_return"] == pytest.approx(trained["mean_return"])  # the saved policy is the trained one


def test_checkpoints_keep_the_case_buffer_as_plain_arrays_and_resume_continues_it(tmp_path):
    config = TrainConfig(env="designgym/Extrusion-v2", algo="distill", timesteps=600, seed=0, n_envs=2,
                         hyperparams=SMALL, out=str(tmp_path), run_name="run", eval_freq=0, save_freq=300,
                         eval_episodes=2, threads=1)
    train(config)
    run = tmp_path / "run"
    buffers = sorted((run / "checkpoints").glob("replay_buffer_*_steps.npz"))
    assert buffers
    with np.load(buffers[-1], allow_pickle=False) as data:  # no pickle: a crafted file runs no code
        cases = json.loads(str(data["cases"]))
        assert len(cases) > 0 and data["obs"].shape[0] == len(data["state_case"])
    before = len(cases)
    result = resume(run, timesteps=1200)
    assert result.metrics["timesteps"] >= 1200
    model = SearchDistillation.load(run / "model.zip")
    with np.load(sorted((run / "checkpoints").glob("replay_buffer_*_steps.npz"))[-1]) as data:
        assert len(json.loads(str(data["cases"]))) > before
    assert model.num_timesteps >= 1200


def test_delta_mode_labels_each_visited_state_with_the_even_step_toward_the_target():
    env = gym.make("designgym/ExtrusionSteps-v1")
    model = SearchDistillation("MlpPolicy", _vec("designgym/ExtrusionSteps-v1"), **SMALL, seed=0, device="cpu")
    base = env.unwrapped
    target = np.full(8, 0.5, np.float32)
    buffer = model.replay_buffer
    latents = [np.zeros(8, np.float32), np.full(8, 0.2, np.float32), np.full(8, 0.45, np.float32)]
    states = [(np.zeros(model.observation_space.shape, np.float32), z, 8 - t) for t, z in enumerate(latents)]
    buffer.add({"conditions": {}, "start": latents[0], "action": target, "feasible": True, "score": 1.0}, states)
    labels = model._labels(base, np.arange(3))
    step = base.step_size
    np.testing.assert_allclose(labels[0], np.clip(0.5 / (8 * step), -1, 1))
    np.testing.assert_allclose(labels[1], np.clip(0.3 / (7 * step), -1, 1))
    np.testing.assert_allclose(labels[2], np.clip(0.05 / (6 * step), -1, 1), rtol=1e-5)


def test_delta_mode_and_dict_observations_train(tmp_path):
    result = train(TrainConfig(env="designgym/ExtrusionSteps-v1", algo="distill", timesteps=400, seed=1, n_envs=2,
                               hyperparams=SMALL, env_kwargs={"observation_layout": "dict"}, out=str(tmp_path),
                               run_name="run", eval_freq=0, save_freq=0, eval_episodes=2, threads=1))
    assert result.metrics["timesteps"] >= 400
    model = SearchDistillation.load(result.model_path)
    assert type(model.policy).__name__ == "MultiInputDistillPolicy"


def test_the_policy_normaliser_merges_batches_like_one():
    space = gym.spaces.Box(-10, 10, (3,), np.float32)
    policy = DistillPolicy(space, gym.spaces.Box(-1, 1, (2,), np.float32), lambda _: 1e-3)
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (n, 3)).astype(np.float32) for i, n in enumerate((5, 50, 7))]
    for batch in batches:
        policy.update_normalizer(torch.as_tensor(batch))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(policy.feature_mean.numpy(), everything.mean(0), rtol=1e-5)
    np.testing.assert_allclose(policy.feature_var.numpy(), everything.var(0), rtol=1e-4)
    action = policy.predict(np.full(3, 1e6, np.float32), deterministic=True)[0]  # far outside training: clipped
    assert np.all(np.abs(action) <= 1)


def test_a_nearest_case_policy_answers_with_the_action_of_the_nearest_remembered_state():
    space = gym.spaces.Box(-10, 10, (2,), np.float32)
    policy = DistillPolicy(space, gym.spaces.Box(-1, 1, (3,), np.float32), lambda _: 1e-3, answer="nearest")
    obs = np.array([[0.2, 0.1], [-3.0, -0.9]], np.float32)
    with torch.no_grad():  # nothing remembered yet: the (untrained) MLP answers
        np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], policy.mu(torch.as_tensor(obs)).numpy(),
                                   atol=1e-6)
    states = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, -1.0]])
    actions = torch.tensor([[0.1, 0.2, 0.3], [-0.5, 0.5, 0.0], [0.9, -0.9, 0.4]])
    policy.update_normalizer(torch.tensor([[-10.0, -1.0], [10.0, 1.0]]))  # the first feature spreads ten times wider
    policy.remember(states, actions)
    answered = policy.predict(obs, deterministic=True)[0]
    # One remembered action each, not a blend; nearest in standardised features (in raw ones the
    # second observation is nearest the first state).
    np.testing.assert_allclose(answered, actions[[0, 2]].numpy(), atol=1e-6)


def test_a_vote_policy_answers_with_the_action_that_did_best_on_the_most_similar_judged_briefs():
    space = gym.spaces.Box(-10, 10, (1,), np.float32)
    policy = DistillPolicy(space, gym.spaces.Box(-1, 1, (2,), np.float32), lambda _: 1e-3, answer="vote",
                           vote_neighbours=4)
    policy.update_normalizer(torch.tensor([[-1.0], [1.0]]))
    states = torch.tensor([[0.0], [1.0], [2.0]])
    actions = torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])
    policy.remember(states, actions)
    obs = np.array([[0.1], [1.9]], np.float32)
    no_briefs_yet = policy.predict(obs, deterministic=True)[0]  # the nearest state's action
    np.testing.assert_allclose(no_briefs_yet, actions[[0, 2]].numpy(), atol=1e-6)
    # Four briefs near 0 on which state 1's action did best, state 0's worst; near 2, only one brief
    # tried state 0's action (below the quorum of a quarter of four is one: it counts) and none did better.
    briefs = torch.tensor([[0.0], [0.05], [0.15], [0.2], [1.9], [2.0], [2.1], [2.2]])
    tried = torch.tensor([[0, 1]] * 4 + [[2, 0], [2, 1], [2, 1], [2, 1]])
    scores = torch.tensor([[0.0, 1.0]] * 4 + [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    policy.remember_briefs(briefs, tried, scores)
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], actions[[1, 2]].numpy(), atol=1e-6)
    # A new case memory forgets the briefs, which name the old memory's actions.
    policy.remember(states, actions)
    assert len(policy.brief_features) == 0
    with pytest.raises(ValueError, match="tried actions outside the memory's 3"):
        policy.remember_briefs(briefs[:1], torch.tensor([[3]]), torch.ones(1, 1))


def test_a_rank_policy_learns_which_near_action_does_best_as_the_brief_changes():
    # One feature x in [0, 1]; two remembered states (x = 0.3 and 0.7) and their actions. On the
    # judged briefs the nearest state's action does best in the middle (0.25 < x < 0.75) and the
    # far state's beyond: the ranker must learn where the nearest case is wrong.
    space = gym.spaces.Box(-10, 10, (1,), np.float32)
    policy = DistillPolicy(space, gym.spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-3, answer="rank",
                           rank_models=2, rank_hidden=32, rank_epochs=200)
    policy.update_normalizer(torch.tensor([[0.0], [1.0]]))
    states, actions = torch.tensor([[0.3], [0.7]]), torch.tensor([[-0.5], [0.5]])
    policy.remember(states, actions)
    obs = np.array([[0.1], [0.4], [0.6], [0.9]], np.float32)
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], [[-0.5], [-0.5], [0.5], [0.5]])
    x = torch.linspace(0.0, 1.0, 201)[:, None]
    tried = torch.tensor([[0, 1] if float(v) < 0.5 else [1, 0] for v in x])  # nearest state first
    far_wins = ((x[:, 0] < 0.25) | (x[:, 0] > 0.75)).float()  # the far state's action does best out there
    scores = torch.stack([1.0 - far_wins, far_wins], dim=1)
    policy.remember_briefs(x, tried, scores)
    # Not fitted to these briefs yet: the nearest case answers.
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], [[-0.5], [-0.5], [0.5], [0.5]])
    assert policy.fit_ranker(seed=0) > 0.9  # its first choice on the judged briefs themselves
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], [[0.5], [-0.5], [0.5], [-0.5]])
    # Seeded: fitting again from the same seed gives the same ensemble, the global random state untouched;
    # the two models start apart.
    assert not torch.equal(policy.rankers.weights[0][0], policy.rankers.weights[0][1])
    # The briefs are not kept: the ranker answers without them.
    assert len(policy.brief_features) == 0 and int(policy.rank_candidates) == 2
    weights = [p.detach().clone() for p in policy.rankers.parameters()]
    state = torch.get_rng_state()
    policy.remember_briefs(x, tried, scores)
    policy.fit_ranker(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(weights, policy.rankers.parameters(), strict=True))
    # A new case memory forgets the ranker's fit to the old one.
    policy.remember(states, actions)
    assert not bool(policy.rank_fitted)
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], [[-0.5], [-0.5], [0.5], [0.5]])


def test_a_ranker_sees_conditions_that_the_memory_distance_weighs_zero():
    # Two features; the fitted distance ignores the second (weight 0): the nearest case goes by the
    # first alone. Which near action does best goes by the second: a ranker must see it as it is.
    space = gym.spaces.Box(-10, 10, (2,), np.float32)
    policy = DistillPolicy(space, gym.spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-3, answer="rank",
                           rank_models=2, rank_hidden=32, rank_epochs=200)
    policy.update_normalizer(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    policy.remember(torch.tensor([[0.3, 0.5], [0.7, 0.5]]), torch.tensor([[-0.5], [0.5]]))
    policy.memory_weights.copy_(torch.tensor([1.0, 0.0]))
    grid = torch.linspace(0.0, 1.0, 21)
    briefs = torch.cartesian_prod(grid, grid)
    tried = torch.tensor([[0, 1] if float(x) < 0.5 else [1, 0] for x in briefs[:, 0]])
    second = (briefs[:, 1] > 0.5).float()  # action 1 does best above the middle of the second feature
    scores = torch.stack([torch.where(tried[:, 0] == 1, second, 1 - second),
                          torch.where(tried[:, 1] == 1, second, 1 - second)], dim=1)
    policy.remember_briefs(briefs, tried, scores)
    # Fitted on the features as the distance weighs them, it cannot tell the briefs apart.
    assert policy.fit_ranker(seed=0, weighted=True) < 0.6 and bool(policy.rank_weighted)
    policy.remember_briefs(briefs, tried, scores)
    assert policy.fit_ranker(seed=0) > 0.95
    assert not bool(policy.rank_weighted)
    obs = np.array([[0.2, 0.9], [0.2, 0.1], [0.8, 0.1], [0.8, 0.9]], np.float32)
    np.testing.assert_allclose(policy.predict(obs, deterministic=True)[0], [[0.5], [-0.5], [-0.5], [0.5]])
    # A ranker saved before the inputs' layout was recorded was fitted on the weighted features,
    # and loads as such: its inputs lose the second feature.
    saved = {k: v for k, v in policy.state_dict().items() if k != "rank_weighted"}
    old = DistillPolicy(space, gym.spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-3, answer="rank",
                        rank_models=2, rank_hidden=32, rank_epochs=200)
    old.load_state_dict(saved)
    assert bool(old.rank_weighted) and bool(old.rank_fitted)
    with torch.no_grad():
        scaled = old.scaled(torch.as_tensor(obs))
        inputs = old._rank_inputs(scaled, old.candidates(scaled, 2))
    assert torch.all(inputs[..., 1] == 0) and torch.all(inputs[..., 3] == 0)  # the brief's and offset's 2nd
    with torch.no_grad():
        inputs = policy._rank_inputs(scaled, policy.candidates(scaled, 2))
    assert torch.allclose(inputs[:, 0, :2], scaled)


def test_judged_briefs_are_scaled_within_each_brief_with_illegal_designs_at_zero():
    from designgym.agents.distill import _scaled_within

    np.testing.assert_allclose(_scaled_within([True, True, False, True], [2.0, 4.0, 9.0, 3.0]), [0, 1, 0, 0.5])
    np.testing.assert_allclose(_scaled_within([False, False], [-3.0, -1.0]), [0, 1])  # none legal: the reward
    np.testing.assert_allclose(_scaled_within([True, True], [1.0, 1.0]), [1, 1])


def test_a_vote_agent_judges_briefs_within_its_steps_and_keeps_them_when_saved(tmp_path, monkeypatch):
    steps = []
    judge_briefs = SearchDistillation._judge_briefs

    def counted(self, env, callback, briefs, progress=False):
        steps.append(self.num_timesteps)
        judge_briefs(self, env, callback, briefs, progress)
        steps.append(self.num_timesteps)

    monkeypatch.setattr(SearchDistillation, "_judge_briefs", counted)
    hyperparams = {**SMALL, "policy_kwargs": "dict(answer='vote', vote_neighbours=5)", "metric_cases": 40,
                   "vote_briefs": 30, "vote_latents": 4}
    result = train(TrainConfig(env="designgym/MBB-v2", algo="distill", timesteps=1500, seed=3, n_envs=4,
                               hyperparams=hyperparams, out=str(tmp_path), run_name="run", eval_freq=0, save_freq=0,
                               eval_episodes=24, threads=1))
    model = SearchDistillation.load(result.model_path, device="cpu")
    policy = model.policy
    assert policy.answer == "vote" and policy.vote_neighbours == 5
    assert policy.brief_features.shape[0] == 30 and policy.brief_tried.shape == (30, 4)
    assert int(policy.brief_tried.max()) < len(policy.memory_actions)
    assert float(policy.brief_scores.max()) == 1.0 and float(policy.brief_scores.min()) >= 0.0
    # Each brief was tried on its own nearest states: the first column is its nearest.
    with torch.no_grad():
        root = torch.sqrt(policy.memory_weights)
        briefs = policy.scaled(policy.brief_features) * root
        distances = torch.cdist(briefs, policy.scaled(policy.memory_features) * root)
    np.testing.assert_array_equal(policy.brief_tried[:, 0].numpy(), distances.argmin(dim=1).numpy())
    # The briefs' designs count as steps, the last ones of the run.
    assert steps[1] - steps[0] == 30 * 4 and model.num_timesteps == steps[1] >= 1500
    env = gym.make("designgym/MBB-v2")
    again = rollout(env, lambda obs: model.predict(obs, deterministic=True)[0], 24, seed=10_003)["summary"]
    assert again["mean_return"] == pytest.approx(result.metrics["trained"]["mean_return"])


def test_a_rank_agent_fits_its_ranker_to_the_judged_briefs_and_keeps_it_when_saved(tmp_path):
    hyperparams = {**SMALL, "policy_kwargs": "dict(answer='rank', rank_models=2, rank_hidden=32, rank_epochs=5)",
                   "metric_cases": 40, "vote_briefs": 30, "vote_latents": 4}
    result = train(TrainConfig(env="designgym/MBB-v2", algo="distill", timesteps=1500, seed=3, n_envs=4,
                               hyperparams=hyperparams, out=str(tmp_path), run_name="run", eval_freq=0, save_freq=0,
                               eval_episodes=24, threads=1))
    model = SearchDistillation.load(result.model_path, device="cpu")
    policy = model.policy
    assert policy.answer == "rank" and policy.rank_models == 2 and bool(policy.rank_fitted)
    assert int(policy.rank_candidates) == 4 and len(policy.brief_features) == 0  # fitted, the briefs let go
    # It answers with one of its four nearest states' actions, not always the nearest one's.
    env = gym.make("designgym/MBB-v2").unwrapped
    observations = np.stack([env.reset(options=env.sample_case(np.random.default_rng(i)))[0] for i in range(40)])
    with torch.no_grad():
        scaled = policy.scaled(policy.features(policy.obs_to_tensor(observations)[0]))
        near = policy.candidates(scaled, 4)
        chosen = policy.rank(scaled)
    assert all(int(c) in row.tolist() for c, row in zip(chosen, near, strict=True))
    np.testing.assert_allclose(model.predict(observations, deterministic=True)[0],
                               policy.memory_actions[chosen].numpy(), atol=1e-6)
    again = rollout(gym.make("designgym/MBB-v2"), lambda obs: model.predict(obs, deterministic=True)[0], 24,
                    seed=10_003)["summary"]
    assert again["mean_return"] == pytest.approx(result.metrics["trained"]["mean_return"])


def test_a_short_run_judges_as_many_briefs_as_half_its_steps_hold():
    model = SearchDistillation("MlpPolicy", _vec("designgym/MBB-v2"), policy_kwargs={"answer": "vote"},
                               vote_briefs=100, vote_latents=4, **SMALL, seed=0, device="cpu")
    with pytest.warns(UserWarning, match="vote_briefs=100 judged briefs of 4 designs would take more than half of "
                                         "the 400 env steps; judging 50"):
        model.learn(400)
    assert len(model.policy.brief_features) == 50


def test_judged_briefs_need_one_step_episodes():
    with pytest.raises(ValueError, match="vote_briefs judges briefs for one-step \\(direct mode\\) envs"):
        SearchDistillation("MlpPolicy", _vec("designgym/ExtrusionSteps-v1"), policy_kwargs={"answer": "vote"},
                           vote_briefs=10, seed=0, device="cpu")


def test_a_nearest_case_agent_remembers_every_case_and_keeps_its_memory_when_saved(tmp_path):
    result = train(TrainConfig(env="designgym/MBB-v2", algo="distill", timesteps=1500, seed=3, n_envs=4,
                               hyperparams={**SMALL, "policy_kwargs": "dict(answer='nearest')"}, out=str(tmp_path),
                               run_name="run", eval_freq=0, save_freq=0, eval_episodes=24, threads=1))
    trained, random_ = result.metrics["trained"], result.metrics["random"]
    assert trained["mean_return"] > random_["mean_return"] + 1.0
    model = SearchDistillation.load(result.model_path, device="cpu")
    policy = model.policy
    assert policy.answer == "nearest" and policy.memory_features.shape[0] > 20
    # Each remembered case's own observation is answered with its best latent.
    with torch.no_grad():
        scaled = policy.scaled(policy.memory_features)
        distances = torch.cdist(scaled, scaled)
        distances.fill_diagonal_(float("inf"))
    alone = int(torch.argmax(distances.min(dim=1).values))  # the case farthest from the others
    own = policy.action_from_features(policy.memory_features[alone : alone + 1])
    np.testing.assert_array_equal(own.detach().numpy()[0], policy.memory_actions[alone].numpy())
    env = gym.make("designgym/MBB-v2")
    again = rollout(env, lambda obs: model.predict(obs, deterministic=True)[0], 24, seed=10_003)["summary"]
    assert again["mean_return"] == pytest.approx(trained["mean_return"])  # the saved memory is the trained one


def test_the_fitted_distance_weighs_down_a_condition_that_does_not_matter(monkeypatch):
    """Cases whose best action is their condition ``a``; condition ``b`` varies ten times as much and
    does not matter. Leave-one-out answers judge which neighbour's action fits: the fit keeps ``a``
    and weighs ``b`` down, and the answers get better."""
    import types

    import designgym.agents.distill as distill

    model = SearchDistillation("MlpPolicy", _vec("designgym/MBB-v2"), policy_kwargs={"answer": "nearest"},
                               metric_cases=60, seed=0, device="cpu")
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    rng = np.random.default_rng(0)
    dim = model.observation_space.shape[0]
    a, b = rng.uniform(-1, 1, 80), rng.uniform(-10, 10, 80)
    features = np.zeros((80, dim), np.float32)
    features[:, 0], features[:, 1] = a, b
    features[:, 0] *= 10  # as raw features a spreads as much as b: the scaling alone does not tell them apart
    for i in range(80):
        model.replay_buffer.add({"conditions": {"a": a[i], "b": b[i]}, "start": np.zeros(1), "action": np.full(1, a[i]),
                                 "feasible": True, "score": 0.0}, [(features[i], np.zeros(1), 1)])
    policy = model.policy
    policy.update_normalizer(torch.as_tensor(features))
    policy.remember(torch.as_tensor(features), torch.as_tensor(a[:, None], dtype=torch.float32))

    def judge(env, actions, conditions):  # the closer the action to the case's own a, the better
        return types.SimpleNamespace(scores=-(np.asarray(actions)[:, 0] - conditions["a"]) ** 2)

    monkeypatch.setattr(distill, "judge", judge)
    env = types.SimpleNamespace(action_mode="direct")

    def answers_error():
        scaled = policy.scaled(torch.as_tensor(features))
        weights = policy.memory_weights
        root = torch.sqrt(weights)
        distances = torch.cdist(scaled * root, scaled * root)
        distances.fill_diagonal_(float("inf"))
        return float(np.mean((a[distances.argmin(dim=1).numpy()] - a) ** 2))

    before = answers_error()
    judged = model._fit_metric(env)
    weights = policy.memory_weights.numpy()
    assert judged > 0 and model.metric_fitted_at == 80
    assert weights[1] < weights[0] and weights[1] <= 0.25
    assert answers_error() < before / 4


def test_metric_cases_needs_a_nearest_case_policy():
    with pytest.raises(ValueError, match="metric_cases fits the distance of a nearest-case policy"):
        SearchDistillation("MlpPolicy", _vec("designgym/MBB-v2"), metric_cases=100, device="cpu")


def test_an_unknown_answer_is_refused():
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    with pytest.raises(ValueError, match="answer must be one of 'regression', 'nearest', 'vote', 'rank', got 'knn'"):
        DistillPolicy(space, space, lambda _: 1e-3, answer="knn")
    policy = DistillPolicy(space, space, lambda _: 1e-3)
    with pytest.raises(ValueError, match="only a policy with answer='nearest', 'vote' or 'rank' remembers"):
        policy.remember(torch.zeros(1, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="only a policy with answer='vote' or 'rank' remembers judged briefs"):
        policy.remember_briefs(torch.zeros(1, 2), torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="only a policy with answer='rank' has a ranker"):
        policy.fit_ranker()
    with pytest.raises(ValueError, match="the ranker learns from judged briefs; there are none"):
        DistillPolicy(space, space, lambda _: 1e-3, answer="rank").fit_ranker()
    with pytest.raises(ValueError, match="vote_neighbours must be at least 1, got 0"):
        DistillPolicy(space, space, lambda _: 1e-3, answer="vote", vote_neighbours=0)
    with pytest.raises(ValueError, match="rank_models must be at least 1, got 0"):
        DistillPolicy(space, space, lambda _: 1e-3, answer="rank", rank_models=0)


def test_the_case_buffer_drops_the_oldest_cases_and_their_states():
    buffer = CaseBuffer(capacity=2)
    for i in range(3):
        case = {"conditions": {"x": i}, "start": np.zeros(2), "action": np.full(2, i), "feasible": True, "score": i}
        buffer.add(case, [(np.full(3, i, np.float32), np.zeros(2), 1), (np.full(3, i, np.float32), np.zeros(2), 0)])
    assert len(buffer) == 2 and list(buffer.ids()) == [1, 2]
    assert buffer.state_case == [1, 1, 2, 2] and buffer.case(2)["conditions"] == {"x": 2}
    again = CaseBuffer.from_arrays(_as_npz(buffer.to_arrays()))
    assert again.state_case == buffer.state_case and list(again.ids()) == [1, 2]
    np.testing.assert_array_equal(again.case(1)["action"], [1, 1])


def test_normalize_is_refused_before_a_run_folder_is_made(tmp_path):
    with pytest.raises(ValueError, match="normalises observations inside its policy"):
        train(TrainConfig(env="designgym/MBB-v2", algo="distill", timesteps=100, hyperparams={"normalize": True},
                          out=str(tmp_path), run_name="run", threads=1))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


@pytest.mark.parametrize("setting, message", [
    ("search_budget=0", "search_budget must be at least 1"),
    ("revisit=1.0", r"revisit must be in \[0, 1\)"),
    ("search_sigma=-1", "search_sigma must be a positive number"),
    ("neighbors=3", "did you mean 'neighbours'"),
    ("policy_kwargs=dict(answer='knn')", "answer must be one of 'regression', 'nearest', 'vote', 'rank', got 'knn'"),
    ("vote_briefs=100", r"give both answer='vote' \(or 'rank'\) in policy_kwargs and vote_briefs > 0, or neither"),
    ("policy_kwargs=dict(answer='vote')", r"give both answer='vote' \(or 'rank'\) in policy_kwargs and vote_briefs"),
    ("policy_kwargs=dict(answer='rank')", r"give both answer='vote' \(or 'rank'\) in policy_kwargs and vote_briefs"),
])
def test_bad_settings_are_one_line(tmp_path, setting, message):
    result = subprocess.run([sys.executable, "-m", "designgym", "train", "--env", "MBB-v2", "--algo", "distill",
                             "--timesteps", "50", "--out", str(tmp_path), "--params",
                             *([setting] if isinstance(setting, str) else setting)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not any(tmp_path.iterdir())


def _vec(env_id):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_id, n_envs=1, seed=0)


def _as_npz(arrays):
    import io

    handle = io.BytesIO()
    np.savez(handle, **arrays)
    handle.seek(0)
    return np.load(handle, allow_pickle=False)
