"""The agents shipped inside the package: they load by env id and make near-optimal designs in one step."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import designgym
from designgym.agents.distill import SearchDistillation
from designgym.agents.evaluation import PRETRAINED_DIR, load_agent, make_design, pretrained_path
from designgym.agents.hyperparams import resolve_settings

SHIPPED = designgym.list_envs()  # every built-in env ships an agent made by the recipe
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.mark.parametrize("env_id", SHIPPED)
def test_pretrained_agent_is_small_and_says_how_it_was_made(env_id):
    path = pretrained_path(env_id)
    assert path.parent == PRETRAINED_DIR and path.stat().st_size < 3e6
    sidecar = json.loads(path.with_suffix(".json").read_text())
    # Made by the recipe from the env's reward, with the one command that remakes it.
    assert sidecar["env"] == env_id and sidecar["algo"] == "distill"
    assert sidecar["command"].startswith(f"python scripts/ship_agent.py --env {env_id} --timesteps ")
    assert sidecar["hyperparams"]["search_budget"] >= 1 and sidecar["timesteps"] >= 1000
    # ... with the settings the package ships for the env now, so that the command remakes it.
    shipped = resolve_settings(SearchDistillation, "distill", env_id, None, {})
    assert sidecar["hyperparams"] == shipped
    agent = load_agent("pretrained", env_id=env_id)
    assert agent.env_id == env_id and agent.normalizer is None


@pytest.mark.parametrize("env_id", SHIPPED)
def test_pretrained_agent_scores_as_its_card_says(env_id):
    from designgym.agents.scoring import score_policy

    card = json.loads(pretrained_path(env_id).with_suffix(".json").read_text())["score"]
    result = score_policy(env_id, load_agent("pretrained", env_id=env_id).act)
    assert result["n_cases"] == card["n_cases"] == 200
    assert result["feasible_rate"] == pytest.approx(card["feasible_rate"])
    assert result["normalized_score"]["iqm"] == pytest.approx(card["normalized_score"]["iqm"], abs=1e-6)


def test_pretrained_cantilever_designs_at_the_volume_budget_with_nothing_floating():
    agent = load_agent("pretrained", env_id="designgym/Cantilever-v1")
    for volfrac in (0.3, 0.45, 0.6):
        result = make_design(agent, "designgym/Cantilever-v1", {"volfrac": volfrac, "load_y": 0.8, "load_angle": -30.0})
        assert result["design"].sum() == round(volfrac * result["design"].size)
        assert result["violations"]["floating_material"] == 0 and result["violations"]["volume_excess"] == 0


@pytest.mark.parametrize("direction", range(4))
def test_pretrained_bracket_prints_within_the_volume_with_nothing_floating(direction):
    agent = load_agent("pretrained", env_id="designgym/AMBracket-v3")
    for volfrac in (0.3, 0.45, 0.6):
        conditions = {"volfrac": volfrac, "load_y": 0.8, "load_angle": -30.0, "build_direction": direction}
        result = make_design(agent, "designgym/AMBracket-v3", conditions)
        violations = result["violations"]
        assert violations["overhang"] == 0 and violations["floating_material"] == 0
        assert violations["volume_excess"] == 0


def test_pretrained_cantilever_is_close_to_simp_on_unseen_load_cases():
    """Ten load cases drawn from a seed no training used: one step against SIMP to convergence."""
    import designgym

    agent = load_agent("pretrained", env_id="designgym/Cantilever-v1")
    problem = designgym.make_problem("cantilever")
    rng = np.random.default_rng(4242)
    ratios, feasible = [], []
    for _ in range(10):
        conditions = problem.sample_conditions(rng)
        result = make_design(agent, "designgym/Cantilever-v1", conditions)
        feasible.append(result["feasible"])
        if result["feasible"]:
            simp = problem.evaluate(problem.optimize(conditions), conditions).objectives["compliance"]
            ratios.append(result["objectives"]["compliance"] / simp)
    # Its card says 99.5 % of the test split is legal; the legal designs are within a few per cent
    # of SIMP's compliance at the median (seen: 1.01), with the odd case further off (seen: 1.89 in
    # one of these ten; the Cantilever-v0 agent's worst of the ten was under 1.5).
    assert sum(feasible) >= 8, feasible
    assert np.median(ratios) < 1.10 and max(ratios) < 2.0, ratios


def test_design_command_uses_the_pretrained_agent_and_polishes(tmp_path):
    out = tmp_path / "cantilever.npy"
    result = subprocess.run(
        [sys.executable, "-m", "designgym", "design", "--env", "Cantilever-v1", "--agent", "pretrained",
         "--conditions", '{"volfrac": 0.4, "load_y": 1.0, "load_angle": 30}', "--polish", "5", "--out", str(out),
         "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    design = np.load(out)
    assert report["polish_iterations"] == 5 and report["agent"].endswith("Cantilever-v1.zip")
    assert design.sum() == round(0.4 * design.size) and report["violations"]["floating_material"] == 0
    assert "compliance" in report["before_polish"]["objectives"]
    bad = subprocess.run(
        [sys.executable, "-m", "designgym", "design", "--env", "Cantilever-v1", "--agent", "pretrained",
         "--polish", "-1", "--out", str(out)], capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and "polish must be >= 0" in bad.stderr and "Traceback" not in bad.stderr


def test_refined_targets_are_never_worse_than_the_targets_or_the_policy():
    """The refinement stage of scripts/train_pretrained_agent.py: per case, the new target scores at
    least as well as the old target and as the policy's own action (the search starts from it)."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    sys.path.insert(0, str(SCRIPTS))
    try:
        import train_pretrained_agent as script
    finally:
        sys.path.remove(str(SCRIPTS))

    env = gym.make("designgym/Cantilever-v1")
    model = PPO("MlpPolicy", env, seed=0, device="cpu")  # an untrained policy: its actions are near the centre
    rng = np.random.default_rng(7)
    cases = [env.unwrapped.problem.sample_conditions(rng) for _ in range(4)]
    obs = np.stack([env.reset(options={"conditions": c})[0] for c in cases])
    targets = rng.uniform(-1, 1, (4, env.action_space.shape[0])).astype(np.float32)  # poor ones: random latents
    refined, report = script.refine_targets(env, model, obs, cases, targets, evals=10, sigma=0.1, seed=0)

    def score(actions):
        return np.array([script.judge_batch(env, a[None, :], c)[0] for a, c in zip(actions, cases, strict=True)])

    before, after = score(targets), score(refined)
    policy = score(model.predict(obs, deterministic=True)[0])
    assert np.all(after >= before - 1e-6) and np.all(after >= policy - 1e-6), (before, policy, after)
    assert after.sum() > before.sum() and report["mean_score_gain"] > 0
    assert 0.0 <= report["search_found_best"] <= 1.0
    # Each case's search is seeded by its index: worker processes give the same targets.
    in_processes, same = script.refine_targets(env, model, obs, cases, targets, evals=10, sigma=0.1, seed=0,
                                               workers=2)
    np.testing.assert_array_equal(in_processes, refined)
    assert same == report
    env.close()
