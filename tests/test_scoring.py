"""The suite's score: the test split, the shipped references, normalization, aggregates, and
`designgym score`."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import designgym
from designgym.agents import scoring
from designgym.agents.scoring import References, aggregate, at_least_as_good, bootstrap_ci, iqm, test_split

# -- the test split ---------------------------------------------------------------------------------


def test_the_test_split_is_fixed_and_each_case_starts_its_episode():
    first = test_split("designgym/Extrusion-v2", 5)
    again = test_split("Extrusion-v2", 5)
    assert [c["conditions"] for c in first] == [c["conditions"] for c in again]
    assert len({json.dumps(c["conditions"], sort_keys=True) for c in first}) == 5
    env = gym.make("designgym/Extrusion-v2")
    for case in first:
        _, info = env.reset(options=case)
        assert info["conditions"] == case["conditions"]
        assert "latent" not in case  # direct mode starts at the zero latent
    env.close()


def test_a_random_start_env_has_the_start_latent_in_its_cases():
    cases = test_split("designgym/ExtrusionSteps-v1", 3)
    env = gym.make("designgym/ExtrusionSteps-v1")
    for case in cases:
        assert case["latent"].shape == (8,)
        obs, info = env.reset(options=case)
        np.testing.assert_allclose(info["latent"] * env.unwrapped.latent_bound, case["latent"], rtol=1e-6)
    env.close()


def test_training_draws_never_meet_the_test_split():
    # Training envs are seeded with small integers; their draws come from other seed streams.
    split = {json.dumps(c["conditions"], sort_keys=True) for c in test_split("designgym/MBB-v2", 200)}
    env = gym.make("designgym/MBB-v2")
    seen = set()
    for seed in range(8):
        env.reset(seed=seed)
        for _ in range(100):
            env.reset()
            seen.add(json.dumps(env.unwrapped.conditions, sort_keys=True))
    env.close()
    assert len(seen) == 800 and not seen & split


def test_a_test_split_needs_a_case():
    with pytest.raises(ValueError, match="at least one case"):
        test_split("designgym/MBB-v2", 0)


# -- the shipped references -------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", designgym.list_envs())
def test_every_built_in_env_ships_references_for_its_test_split(env_id):
    refs = scoring.shipped_references(env_id)
    assert refs.env == env_id and len(refs.cases) == scoring.TEST_SPLIT_SIZE
    assert refs.made["test_split"] == {"seed": scoring.TEST_SPLIT_SEED, "size": scoring.TEST_SPLIT_SIZE}
    assert refs.made["command"].startswith("python scripts/make_references.py")
    split = test_split(env_id, 10)
    for case, ref in zip(split, refs.cases, strict=False):
        assert case["conditions"] == pytest.approx(ref["conditions"])
    problem = designgym.make_problem(env_id)
    expected_method = "cmaes" if scoring.reference_method(problem) == "cmaes" else "optimize"
    assert refs.method == expected_method
    trivial = problem.trivial_objective(problem.default_conditions())
    if trivial is not None:  # the structures' uniform plate, the extrusion's solid bar
        assert all(c["anchor"] == trivial for c in refs.cases)
    # Every case has a scale, its own or the median of the others'.
    assert refs.fallback_span is not None and all(refs.span(i) > 0 for i in range(len(refs.cases)))


def test_an_env_without_shipped_references_is_told_how_to_make_them():
    from designgym.envs.registration import _ENVS

    designgym.register_design_env("scoretest/Plain-v0", problem="mbb", generator="mbb-vae")
    try:
        with pytest.raises(FileNotFoundError, match="scripts/make_references.py --env scoretest/Plain-v0"):
            scoring.shipped_references("scoretest/Plain-v0")
    finally:
        del gym.registry["scoretest/Plain-v0"], _ENVS["scoretest/Plain-v0"]


# -- normalization ----------------------------------------------------------------------------------


def _refs(method="cmaes", cases=None):
    cases = cases or [
        {"anchor": 1.0, "start": 1.0, "start_feasible": False, "reference": 3.0, "reference_feasible": True},
        {"anchor": 0.0, "start": 0.0, "start_feasible": True, "reference": 4.0, "reference_feasible": True},
        {"anchor": 2.0, "start": 2.0, "start_feasible": False, "reference": 9.0, "reference_feasible": False},
    ]
    return References("x/Y-v0", method, cases, {})


def test_normalization_is_gated_anchored_and_floored():
    refs = _refs()
    assert refs.normalize(0, 3.0, True) == pytest.approx(100.0)  # the reference's objective
    assert refs.normalize(0, 1.0, True) == 0.0  # the anchor
    assert refs.normalize(0, 2.0, True) == pytest.approx(50.0)
    assert refs.normalize(0, 5.0, True) == pytest.approx(200.0)  # better than the reference: above 100
    assert refs.normalize(0, 0.5, True) == 0.0  # feasible but worse than the anchor: floored, never below 0
    assert refs.normalize(0, 99.0, False) == 0.0  # breaks a rule: 0 whatever its objective


def test_a_search_reference_that_found_nothing_legal_borrows_the_median_scale():
    refs = _refs()
    assert refs.span(2) == pytest.approx(np.median([2.0, 4.0]))
    assert refs.normalize(2, 2.0 + 3.0, True) == pytest.approx(100.0)
    # A classical optimizer's reference sets the scale even where its design breaks a rule.
    assert _refs("optimize").span(2) == pytest.approx(7.0)
    nothing = _refs(cases=[{"anchor": 0.0, "start": 0.0, "start_feasible": False, "reference": 1.0,
                            "reference_feasible": False}])
    assert nothing.normalize(0, 0.5, True) is None and nothing.normalize(0, 0.5, False) == 0.0


# -- aggregates -------------------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.arange(8.0)) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm(np.array([[0.0, 1.0], [100.0, 2.0]])) == pytest.approx(1.5)  # over every seed and case


def test_the_bootstrap_interval_holds_the_iqm_and_narrows_with_more_cases():
    rng = np.random.default_rng(0)
    small, large = rng.normal(50, 10, (1, 30)), rng.normal(50, 10, (1, 600))
    low, high = bootstrap_ci(small, resamples=500)
    assert low <= iqm(small) <= high
    wide = high - low
    low, high = bootstrap_ci(large, resamples=500)
    assert high - low < wide / 2
    # Seeds are resampled too: three seeds that disagree widen the interval over one seed.
    seeds = np.vstack([large, large + 20, large - 20])
    low3, high3 = bootstrap_ci(seeds, resamples=500)
    assert high3 - low3 > high - low
    summary = aggregate(small, resamples=200)
    assert set(summary) == {"iqm", "ci", "mean", "median"} and summary["ci"][0] <= summary["iqm"] <= summary["ci"][1]


def test_paired_share_counts_ties_as_at_least_as_good():
    assert at_least_as_good([1, 2, 3, 0], [1, 3, 2, 0]) == 0.75
    with pytest.raises(ValueError, match="same, non-empty shape"):
        at_least_as_good([1, 2], [1])


# -- scoring a policy ---------------------------------------------------------------------------------


def test_score_policy_gives_the_public_json_and_matches_the_shipped_anchors():
    env = gym.make("designgym/MBB-v2")
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    result = scoring.score_policy("designgym/MBB-v2", lambda obs: zero)
    env.close()
    assert result["cases_from"] == "test split" and result["n_cases"] == scoring.TEST_SPLIT_SIZE
    assert {"feasible_rate", "normalized_score", "ms_per_design", "cases"} <= set(result)
    assert set(result["normalized_score"]) >= {"iqm", "ci"} and len(result["normalized_score"]["ci"]) == 2
    refs = scoring.shipped_references("designgym/MBB-v2")
    for row, ref in zip(result["cases"], refs.cases, strict=True):
        assert {"conditions", "feasible", "score", "normalized"} <= set(row)
        # the zero action is the start design: its score is the start design's objective
        assert row["score"] == pytest.approx(ref["start"])
        assert row["normalized"] == (0.0 if not row["feasible"] else refs.normalize(row["case"], row["score"], True))
    json.dumps(result)  # plain JSON all through


def test_given_conditions_are_scored_against_references_made_now():
    cases = [{"volfrac": 0.4, "load_x": 0.1}, {"conditions": {"volfrac": 0.5, "load_x": 0.4}}]
    env = gym.make("designgym/MBB-v2")
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    env.close()
    result = scoring.score_policy("designgym/MBB-v2", lambda obs: zero, cases=cases)
    assert result["cases_from"] == "given" and result["references"].startswith("made now")
    assert [r["conditions"]["load_x"] for r in result["cases"]] == [0.1, 0.4]


@pytest.mark.parametrize("cases, message", [
    ([{"volfrac": 0.4, "load_y": 0.2}], "unknown condition"),
    ([{"volfrac": 7.0}], "outside its range"),
    ([{"conditions": {"volfrac": 0.4}, "seed": 3}], "unknown key"),
    ([3], "must be a JSON object"),
    ([], "no cases"),
])
def test_bad_cases_are_named(cases, message):
    with pytest.raises(ValueError, match=message):
        scoring.score_policy("designgym/MBB-v2", lambda obs: np.zeros(8, np.float32), cases=cases)


def test_references_of_another_env_setting_are_refused(tmp_path):
    refs = scoring.shipped_references("designgym/MBB-v2")
    refs.cases = [dict(c, start=c["start"] + 0.5) for c in refs.cases]
    path = tmp_path / "refs.json"
    scoring.write_references(refs, path)
    with pytest.raises(ValueError, match="do not fit this env.*remake them"):
        scoring.score_policy("designgym/MBB-v2", lambda obs: np.zeros(8, np.float32), references=path)


# -- designgym score ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from designgym.agents.training import TrainConfig, train

    out = tmp_path_factory.mktemp("runs")
    return train(TrainConfig(env="designgym/MBB-v2", algo="ppo", timesteps=64, n_envs=2, out=str(out),
                             run_name="tiny", eval_freq=0, save_freq=0, eval_episodes=2, threads=1)).run_dir


def _designgym(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "designgym", *args], capture_output=True, text=True, timeout=300)


def test_score_command_prints_the_public_json(tiny_run, tmp_path):
    result = _designgym("score", "--agent", str(tiny_run), "--json", "--out", str(tmp_path / "score.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["env"] == "designgym/MBB-v2" and report["n_cases"] == 200
    assert set(report["normalized_score"]) >= {"iqm", "ci"} and 0.0 <= report["feasible_rate"] <= 1.0
    assert report["ms_per_design"] > 0 and len(report["cases"]) == 200
    assert json.loads((tmp_path / "score.json").read_text()) == report


@pytest.mark.parametrize("args, message", [
    (["--env", "Cantilever-v1"], "was trained on designgym/MBB-v2, not designgym/Cantilever-v1"),
    (["--env", "Cantilevr-v0"], "unknown env 'Cantilevr-v0'"),
    (["--conditions", '[{"volfrac": 0.4, "load_y": 0.1}]'], "case 0: mbb: unknown condition(s) ['load_y']"),
    (["--conditions", "[]"], "--conditions holds no cases"),
    (["--references", "nowhere.json"], "reference file nowhere.json does not exist"),
])
def test_score_command_names_bad_input_in_one_line(tiny_run, args, message):
    result = _designgym("score", "--agent", str(tiny_run), *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
