"""The designgym command, run as a user runs it: in a subprocess."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import i_beam, tensorboard_contents


def designgym(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "designgym", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_envs_lists_every_env_with_a_description():
    result = designgym("envs")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("designgym/Extrusion-v2 ") and "extrudable" in line for line in lines)
    data = json.loads(designgym("envs", "--json").stdout)
    rows = {e["id"]: e for e in data["envs"]}
    assert rows["designgym/Extrusion-v2"]["source"] == "designgym"
    assert all(e["description"] for e in data["envs"])


@pytest.mark.parametrize("command", ["envs", "train", "tune", "eval", "design", "evaluate", "baseline"])
def test_every_command_has_help(command):
    result = designgym(command, "--help")
    assert result.returncode == 0 and "usage: designgym" in result.stdout


def test_evaluate_prints_metrics_of_a_design_file(tmp_path):
    beam = i_beam()
    np.save(tmp_path / "beam.npy", beam)
    conditions = {"area_fraction": float((beam >= 0.5).mean()), "axis_angle": 0.0, "max_hollows": 0}
    result = designgym("evaluate", "--env", "Extrusion-v2", "--design", str(tmp_path / "beam.npy"),
                       "--conditions", json.dumps(conditions), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["feasible"] is True
    assert data["objectives"]["stiffness"] > 3 and data["objectives"]["shape_factor"] > 3


def test_train_writes_a_complete_run_folder_and_never_overwrites_one(tmp_path):
    args = ["train", "--timesteps", "512", "--n-envs", "2", "--eval-episodes", "4", "--out", str(tmp_path),
            "--run-name", "tiny", "--json", "--params", "n_steps=128", "batch_size=64"]
    result = designgym(*args)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    run = tmp_path / "tiny"
    assert data["run_dir"] == str(run)
    for name in ("model.zip", "config.json", "command.txt", "metrics.json", "designs.png", "learning_curve.png"):
        assert (run / name).stat().st_size > 0, name
    assert len(list((run / "monitor").glob("*.monitor.csv"))) == 2
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["hyperparams"] == {"n_steps": 128, "batch_size": 64} and config["timesteps"] == 512
    assert "--run-name tiny" in (run / "command.txt").read_text()
    assert (run / "designs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = (run / "model.zip").read_bytes()
    again = designgym(*args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (run / "model.zip").read_bytes() == before


@pytest.mark.parametrize("algo, steps, params", [
    ("ppo", 2048, ["n_steps=256", "batch_size=64"]),
    ("sac", 1024, ["learning_starts=200", "batch_size=64", "train_freq=2"]),
])
def test_train_from_the_cli_logs_designs_and_hparams_and_resumes(tmp_path, algo, steps, params):
    args = ["train", "--env", "Cantilever-v1", "--algo", algo, "--timesteps", str(steps), "--n-envs", "2",
            "--eval-episodes", "4", "--eval-freq", str(steps // 4), "--save-freq", str(steps // 4),
            "--out", str(tmp_path), "--run-name", algo, "--json", "--device", "cpu", "--params", *params]
    result = designgym(*args)
    assert result.returncode == 0, result.stderr
    run = tmp_path / algo
    for name in ("model.zip", "best_model.zip", "evaluations.npz", "config.json", "command.txt", "metrics.json",
                 "designs.png", "learning_curve.png"):
        assert (run / name).stat().st_size > 0, name
    assert len(list((run / "checkpoints").glob("model_*_steps.zip"))) == 2

    scalars, images, plugins, events = tensorboard_contents(run / "tb")
    wanted = ["rollout/ep_rew_mean", "eval/mean_reward", "design/feasible_rate", "design/objective/log_stiffness_gain",
              "design/objective/compliance", "design/reward/objective",
              "design/reward/penalty/volume_excess", "design/violation/volume_excess",
              "design/violation/floating_material", "design/violation/load_path"]
    for tag in wanted:
        assert scalars.get(tag) and np.all(np.isfinite(scalars[tag])), tag
    assert {"designs/best", "designs/evaluation"} <= set(images)
    assert events.Images("designs/evaluation")[-1].step == steps
    assert ("_hparams_/experiment", "hparams") in plugins and ("_hparams_/session_start_info", "hparams") in plugins

    more = designgym("train", "--resume", str(run), "--timesteps", str(steps + steps // 2), "--json",
                     "--no-progress")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["metrics"]["timesteps"] == steps + steps // 2
    scalars, *_ = tensorboard_contents(run / "tb")
    steps_logged = [e.step for e in tensorboard_contents(run / "tb")[3].Scalars("eval/mean_reward")]
    assert steps_logged == sorted(steps_logged) and steps_logged[-1] == steps + steps // 2  # continued, not restarted


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    result = designgym("train", "--env", "Cantilever-v1", "--timesteps", "128", "--n-envs", "2", "--params",
                       "n_steps=64", "--eval-freq", "64", "--eval-episodes", "2", "--out", str(out), "--run-name",
                       "tiny", "--no-progress", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return out / "tiny"


def test_eval_writes_json_csv_and_a_png_on_seeded_and_given_conditions(tiny_run, tmp_path):
    result = designgym("eval", "--run", str(tiny_run), "--episodes", "5", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    report = json.loads((tiny_run / "eval" / "eval.json").read_text())
    assert data["summary"] == report["summary"] and report["summary"]["episodes"] == 5
    assert [e["seed"] for e in report["episodes"]] == [10_000 + i for i in range(5)]
    rows = (tiny_run / "eval" / "eval.csv").read_text().splitlines()
    assert len(rows) == 6 and "objective/log_stiffness_gain" in rows[0]
    assert (tiny_run / "eval" / "eval_designs.png").read_bytes()[:4] == b"\x89PNG"
    again = designgym("eval", "--run", str(tiny_run), "--episodes", "5", "--json", "--out", str(tmp_path / "again"))
    assert json.loads(again.stdout)["summary"] == data["summary"]  # seeded: the same episodes

    cases = [{"volfrac": 0.35, "load_y": 0.1, "load_angle": 0.0}, {"volfrac": 0.55, "load_y": 0.9, "load_angle": 45.0}]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    given = designgym("eval", "--run", str(tiny_run), "--model", "best", "--conditions", str(tmp_path / "cases.json"),
                      "--out", str(tmp_path / "given"), "--json")
    assert given.returncode == 0, given.stderr
    episodes = json.loads((tmp_path / "given" / "eval.json").read_text())["episodes"]
    assert [e["condition/volfrac"] for e in episodes] == [0.35, 0.55]
    assert json.loads(given.stdout)["agent"].endswith("best_model.zip")


def test_design_writes_one_design_and_prints_its_metrics(tiny_run, tmp_path):
    out = tmp_path / "bracket.npy"
    result = designgym("design", "--env", "Cantilever-v1", "--agent", str(tiny_run), "--conditions",
                       '{"volfrac": 0.4, "load_angle": 20}', "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    design = np.load(out)
    assert design.shape == (32, 64) and data["conditions"]["volfrac"] == 0.4 and data["conditions"]["load_y"] == 0.5
    check = designgym("evaluate", "--env", "Cantilever-v1", "--design", str(out), "--conditions",
                      json.dumps(data["conditions"]), "--json")
    assert json.loads(check.stdout)["objectives"] == data["objectives"]  # the printed metrics are the file's
    (tmp_path / "junk.zip").write_bytes(b"not a model")
    junk = designgym("design", "--env", "Cantilever-v1", "--agent", str(tmp_path / "junk.zip"), "--out", str(out))
    assert junk.returncode == 2 and "is not a loadable Stable-Baselines3 model" in junk.stderr
    assert "Traceback" not in junk.stderr


@pytest.mark.parametrize("method", ["random", "cmaes", "tpe", "reference"])
def test_baseline_reports_best_feasibility_and_evaluations_with_a_png(tmp_path, method):
    result = designgym("baseline", "--env", "Cantilever-v1", "--method", method, "--budget", "12", "--episodes", "2",
                       "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    cases = json.loads((tmp_path / "eval.json").read_text())["episodes"]
    assert len(cases) == 2 and summary["method"] == method
    if method == "reference":  # SIMP: its own number of finite-element solves, and feasible by construction
        assert all(c["evaluations"] > 12 for c in cases) and summary["feasible_rate"] == 1.0
    else:
        assert all(c["evaluations"] == 12 and 1 <= c["evaluations_to_best"] <= 12 for c in cases)
    assert all(np.isfinite(c["score"]) for c in cases)
    assert (tmp_path / "eval_designs.png").read_bytes()[:4] == b"\x89PNG"
    # The same seeded conditions as `designgym eval`'s first episodes.
    from designgym.agents.baselines import seeded_conditions

    first = seeded_conditions("designgym/Cantilever-v1", 2)
    assert [c["condition/load_y"] for c in cases] == [c["load_y"] for c in first]


def test_baseline_without_a_reference_optimizer_says_so(tmp_path):
    result = designgym("baseline", "--env", "Extrusion-v2", "--method", "reference", "--episodes", "1",
                       "--out", str(tmp_path))
    assert result.returncode == 2 and "has no reference optimizer" in result.stderr


# -- the baselines' search, in process: anytime snapshots and repaired designs ------------------------

SMALL_CANTILEVER = {"volfrac": 0.4, "load_y": 0.3, "load_angle": 20.0}


def small_env(problem=None, conditions_dim=0, repair=False):
    """A 16 x 8 cantilever with an untrained two-dimensional VAE: quick to judge, varied designs."""
    import torch

    from designgym.envs.latent_env import LatentDesignEnv
    from designgym.envs.structures.problems import Cantilever
    from designgym.generators.models import ConvVAE

    torch.manual_seed(0)
    generator = ConvVAE(latent_dim=2, channels=8, shape=(8, 16), conditions_dim=conditions_dim).eval()
    if conditions_dim:
        generator.condition_keys = ("load_angle", "load_y", "volfrac")
    return LatentDesignEnv(problem or Cantilever(16, 8), generator, repair=repair)


@pytest.mark.parametrize("method", ["random", "cmaes", "tpe"])
def test_anytime_snapshots_equal_searches_with_each_budget(method):
    import gymnasium as gym

    from designgym.agents.baselines import _search, search_anytime

    env = gym.make("designgym/Cantilever-v1").unwrapped  # a trained generator: scores that vary
    snapshots = search_anytime(env, SMALL_CANTILEVER, method, [11, 3, 11], seed=2)  # past TPE's 10 random starts
    assert [s["budget"] for s in snapshots] == [3, 11]
    for snap in snapshots:
        design, evaluation, score, used, best_at = _search(env, SMALL_CANTILEVER, method, snap["budget"], 2)
        assert used == snap["budget"] and 1 <= best_at == snap["evaluations_to_best"] <= snap["budget"]
        assert score == snap["score"] and evaluation == snap["evaluation"]
        np.testing.assert_array_equal(design, snap["design"])
        assert snap["seconds"] > 0
    # With these seeds every method finds a better design after the third: the snapshots differ.
    assert snapshots[1]["score"] > snapshots[0]["score"] and snapshots[1]["evaluations_to_best"] > 3


def test_anytime_snapshot_equals_run_baseline_on_a_registered_env():
    import gymnasium as gym

    from designgym.agents.baselines import run_baseline, search_anytime

    conditions = {"volfrac": 0.35, "load_y": 0.6, "load_angle": -10.0}
    env = gym.make("designgym/Cantilever-v1").unwrapped
    snapshots = search_anytime(env, conditions, "random", [3, 6], seed=5)
    for snap in snapshots:
        case = run_baseline("designgym/Cantilever-v1", "random", snap["budget"], [conditions], seed=5)["cases"][0]
        assert case["score"] == snap["score"] and case["evaluations_to_best"] == snap["evaluations_to_best"]
        assert case["objective/compliance"] == snap["evaluation"].objectives["compliance"]


@pytest.mark.parametrize(
    "method, budgets, message",
    [("random", [0, 5], "budgets must be >= 1"), ("random", [], "budgets must be >= 1"),
     ("reference", [5], "unknown search method 'reference'"), ("grid", [5], "unknown search method 'grid'")],
)
def test_anytime_search_refuses_bad_budgets_and_methods(method, budgets, message):
    from designgym.agents.baselines import search_anytime

    with pytest.raises(ValueError, match=message):
        search_anytime(small_env(), SMALL_CANTILEVER, method, budgets, seed=0)


def test_baseline_judges_the_design_the_env_would_show():
    from designgym.agents.baselines import _judge, search_anytime
    from designgym.envs.structures.problems import AMBracket

    # A repairing env, its generator conditioned on three of the bracket's four conditions.
    env = small_env(AMBracket(16, 8), conditions_dim=3, repair=True)
    conditions = {**SMALL_CANTILEVER, "build_direction": 3}  # built from a plate at the clamped edge
    action = np.array([0.4, -0.7], np.float32)
    design, evaluation, score = _judge(env, action, conditions)
    env.reset(seed=0, options={"conditions": conditions})
    env.step(action)
    np.testing.assert_array_equal(design, env.design)
    assert set(np.unique(design)) == {0.0, 1.0}
    assert evaluation == env.evaluation
    for rule in ("volume_excess", "floating_material", "overhang"):  # the bracket's repair holds these
        assert evaluation.violations[rule] == 0.0
    best = search_anytime(env, conditions, "random", [5], seed=0)[0]
    assert 0 < int(best["design"].sum()) <= int((0.4 + 0.01) * 128)


def test_scripts_train_takes_the_same_options():
    result = subprocess.run([sys.executable, "scripts/train.py", "--help"], capture_output=True, text=True,
                            cwd=__import__("pathlib").Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0 and "--vec-env" in result.stdout and "--resume" in result.stdout


def test_scripts_tune_takes_the_same_options():
    result = subprocess.run([sys.executable, "scripts/tune.py", "--help"], capture_output=True, text=True,
                            cwd=__import__("pathlib").Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0 and "--storage" in result.stdout and "--seeds-per-trial" in result.stdout
