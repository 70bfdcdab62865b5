"""Hyperparameter studies: search spaces, and `designgym tune` run as a user runs it."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import gymnasium as gym
import numpy as np
import optuna
import pytest
import yaml
from conftest import tensorboard_run

from designgym.agents.algorithms import ALGORITHMS, make_model
from designgym.agents.hyperparams import check_keys
from designgym.agents.search_spaces import SEARCH_SPACES, Budget, search_space
from designgym.agents.training import TrainConfig

# A study small enough for the suite: 512 steps per trial, scored 4 times on 8 seeded episodes.
SMALL = ["--env", "Extrusion-v2", "--timesteps-per-trial", "512", "--n-evaluations", "4", "--eval-episodes", "8",
         "--n-startup-trials", "2", "--device", "cpu", "--no-progress", "--json"]


def designgym(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "designgym", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def load(out, name="Extrusion-v2_ppo"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.parametrize("algo", sorted(SEARCH_SPACES))
def test_every_sampled_setting_builds_an_agent(algo):
    """Many draws from each space: the keys are the algorithm's, and SB3 accepts the values."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec_env = DummyVecEnv([lambda: gym.make("designgym/Extrusion-v2") for _ in range(4)])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    budget = Budget(n_envs=4, n_actions=8, timesteps=512, eval_every=128)
    for _ in range(12):
        trial = study.ask()
        settings = search_space(algo)(trial, budget)
        check_keys(settings, ALGORITHMS[algo], "space")
        model = make_model(TrainConfig(env="designgym/Extrusion-v2", algo=algo, seed=0, device="cpu"), vec_env,
                           settings, tensorboard_log=None)
        if algo in ("ppo", "a2c"):
            # One rollout fits in an evaluation interval, so every interval sees an update.
            assert settings["n_steps"] * budget.n_envs <= budget.eval_every
        if algo == "ppo":
            assert model.batch_size <= model.n_steps * budget.n_envs
        if algo in ("sac", "td3"):
            assert settings["learning_starts"] <= budget.timesteps // 2
        if algo == "distill":
            # A one-step search has no discount; its settings size the search and the fit.
            assert settings["search_sigma_final"] <= settings["search_sigma"] and settings["search_budget"] >= 8
        else:
            assert 0.9 <= settings["gamma"] < 1.0
        assert "activation_fn" in settings["policy_kwargs"]
        study.tell(trial, 0.0)
    vec_env.close()


def test_a_search_space_named_by_the_user_is_used(tmp_path):
    (tmp_path / "myspaces.py").write_text("def tiny(trial, budget):\n    return {}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert search_space("ppo", "myspaces:tiny").__name__ == "tiny"
        with pytest.raises(ValueError, match="has no function 'nope'"):
            search_space("ppo", "myspaces:nope")
        with pytest.raises(ValueError, match="must read module:function"):
            search_space("ppo", "myspaces")
    finally:
        sys.path.remove(str(tmp_path))


def test_study_prunes_resumes_and_exports_hyperparameters_that_train(tmp_path):
    out = tmp_path / "study"
    args = ["tune", *SMALL, "--pruner", "halving", "--sampler-seed", "2", "--out", str(out)]
    first = designgym(*args, "--n-trials", "5")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["trials"]["complete"] + report["trials"]["pruned"] == 5
    assert report["trials"]["pruned"] >= 1 and report["trials"]["complete"] >= 1

    study = load(out)
    trials = study.trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    # A pruned trial stopped training: fewer scores, and fewer training episodes in its monitor files.
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in complete)
    stopped = [t for t in pruned if t.last_step < 3]
    assert stopped, [t.intermediate_values for t in pruned]
    assert _episodes(out, stopped[0].number) < _episodes(out, complete[0].number)
    assert report["best"]["value"] == max(t.value for t in complete)

    # Every trial has its own TensorBoard run, with its hyperparameters and its scores.
    for t in trials:
        scalars, _, plugins, _ = tensorboard_run(out / "tb" / f"trial_{t.number:04d}_s0")
        assert len(scalars["eval/mean_reward"]) == len(t.intermediate_values)
        reported = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        assert np.allclose(scalars["eval/mean_reward"], reported)
        assert ("_hparams_/session_start_info", "hparams") in plugins
    for name in ("optimization_history", "intermediate_values", "param_importances"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == list(range(5))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("best_hyperparams.yml", "trials.csv", "study.json", "optimization_history.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name  # as open() makes files

    # The same command again adds trials to the same study; the earlier ones are untouched.
    second = designgym(*args, "--n-trials", "2")
    assert second.returncode == 0, second.stderr
    again = load(out).trials
    assert [t.number for t in again] == list(range(7))
    assert [(t.params, t.value, t.state) for t in again[:5]] == [(t.params, t.value, t.state) for t in trials]
    assert again[5].params != trials[0].params  # the resumed sampler does not start over

    # --export-only writes the results of the study as stored, running nothing.
    (out / "trials.csv").unlink()
    exported_only = designgym(*args, "--export-only")
    assert exported_only.returncode == 0, exported_only.stderr
    assert sum(json.loads(exported_only.stdout)["this_process"].values()) == 0
    assert len(load(out).trials) == 7 and len((out / "trials.csv").read_text().splitlines()) == 8

    # The exported file trains, unchanged, with the best trial's settings.
    best = json.loads(second.stdout)["best"]
    exported = yaml.safe_load((out / "best_hyperparams.yml").read_text())["designgym/Extrusion-v2"]
    assert exported["learning_rate"] == pytest.approx(best["hyperparams"]["learning_rate"])
    trained = designgym("train", "--env", "Extrusion-v2", "--hyperparams", str(out / "best_hyperparams.yml"),
                        "--timesteps", "256", "--eval-freq", "0", "--eval-episodes", "2", "--out", str(tmp_path),
                        "--run-name", "from-study", "--no-progress", "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    used = json.loads((tmp_path / "from-study" / "config.json").read_text())["resolved_hyperparams"]
    for key, value in best["hyperparams"].items():
        assert used[key] == pytest.approx(value) if isinstance(value, float) else used[key] == value, key


def _episodes(out, number):
    rows = 0
    for file in (out / "trials" / f"trial_{number:04d}" / "monitor_s0").glob("*.monitor.csv"):
        rows += len(file.read_text().splitlines()) - 2
    return rows


def test_a_seeded_study_is_reproducible_and_journal_storage_works(tmp_path):
    runs = []
    for name, storage in (("a", None), ("b", f"journal:{tmp_path / 'b.log'}")):
        args = ["tune", *SMALL, "--sampler", "random", "--pruner", "none", "--sampler-seed", "7", "--n-trials", "2",
                "--out", str(tmp_path / name)]
        result = designgym(*args, *(["--storage", storage] if storage else []))
        assert result.returncode == 0, result.stderr
        runs.append(result)
    study_b = optuna.load_study(
        study_name="Extrusion-v2_ppo",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "b.log"))),
    )
    a, b = load(tmp_path / "a").trials, study_b.trials
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.value for t in a] == pytest.approx([t.value for t in b], abs=1e-9)


def test_a_trial_that_raises_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    (tmp_path / "flaky_space.py").write_text(textwrap.dedent("""
        def space(trial, budget):
            lr = trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
            if trial.number == 1:
                raise RuntimeError("planted failure in trial 1")
            return {"learning_rate": lr, "n_steps": 32}
    """))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = designgym("tune", *SMALL, "--n-trials", "3", "--pruner", "none", "--search-space", "flaky_space:space",
                       "--out", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trials"] == {"complete": 2, "pruned": 0, "fail": 1, "running": 0, "waiting": 0}
    failed = load(tmp_path / "out").trials[1]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["error"] == "RuntimeError: planted failure in trial 1"

    # When every trial of a run fails, the command says so and exits non-zero; each trial in one line.
    (tmp_path / "failing_space.py").write_text(
        "def space(trial, budget):\n    return {'policy_kwargs': 'dict(net_arch=[-1])'}\n")
    failing = designgym("tune", *SMALL, "--n-trials", "2", "--search-space", "failing_space:space",
                        "--out", str(tmp_path / "failing"), env=env)
    assert failing.returncode == 2
    lines = failing.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith("trial ") and ": failed (" in line for line in lines[:2]), lines
    assert "every trial of this run failed" in lines[2] and "Traceback" not in failing.stderr

    # A space whose settings cannot be right is refused before any trial.
    (tmp_path / "broken_space.py").write_text("def space(trial, budget):\n    return {'n_stepz': 8}\n")
    broken = designgym("tune", *SMALL, "--n-trials", "2", "--search-space", "broken_space:space",
                       "--out", str(tmp_path / "broken"), env=env)
    assert broken.returncode == 2
    # Found by sampling the space once before the study starts: one line, and no study of failed trials.
    assert broken.stderr.count("\n") == 1, broken.stderr
    assert "--search-space broken_space:space" in broken.stderr and "n_stepz" in broken.stderr
    assert not (tmp_path / "broken").exists()
    assert "Traceback" not in broken.stderr.splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["--storage", "postgresql+psycopg2://nobody@127.0.0.1:9/none"], "cannot open the study storage"),
    (["--storage", "sqlite:////no/such/folder/study.db"], "folder /no/such/folder does not exist; create it first"),
    (["--storage", "journal:/no/such/folder/study.log"], "folder /no/such/folder does not exist"),
    (["--sampler", "grid"], "invalid choice: 'grid'"),
    (["--algo", "dqn"], "unknown algorithm 'dqn'"),
    (["--search-space", "no_such_module:space"], "cannot import 'no_such_module'"),
    (["--n-evaluations", "0"], "--n-evaluations must be at least 1"),
])
def test_bad_tune_input_gives_one_clear_line(tmp_path, args, message):
    result = designgym("tune", *SMALL, "--n-trials", "1", "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "best_hyperparams.yml").exists()


@pytest.fixture(scope="module")
def one_trial_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    result = designgym("tune", *SMALL, "--n-trials", "1", "--pruner", "none", "--out", str(out), "--study-name", "s")
    assert result.returncode == 0, result.stderr
    return out


def test_joining_a_study_of_another_task_is_refused(one_trial_study, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(one_trial_study, out)
    before = (out / "study.db").read_bytes()
    other = designgym("tune", *SMALL, "--n-trials", "1", "--out", str(out), "--study-name", "s", "--algo", "a2c")
    assert other.returncode == 2 and "tunes ppo on designgym/Extrusion-v2, not a2c" in other.stderr
    changed = designgym("tune", *SMALL[:2], "--timesteps-per-trial", "1024", *SMALL[4:], "--n-trials", "1",
                        "--out", str(out), "--study-name", "s")
    assert changed.returncode == 2 and "timesteps_per_trial=512" in changed.stderr
    assert (out / "study.db").read_bytes() == before


def test_optuna_dashboard_reads_the_study(one_trial_study):
    """The documented `optuna-dashboard sqlite:///<out>/study.db` serves the study and its trial."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    server = subprocess.Popen([str(dashboard), f"sqlite:///{one_trial_study / 'study.db'}", "--host", "127.0.0.1",
                               "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as reply:
                    studies = json.load(reply)["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.3)
        (study,) = studies
        assert study["study_name"] == "s" and study["directions"] == ["maximize"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}?after=0") as reply:
            trials = json.load(reply)["trials"]
        assert [t["state"] for t in trials] == ["Complete"]
        assert len(trials[0]["intermediate_values"]) == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ctrl_c_fails_the_running_trial_and_writes_the_results(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "designgym", "tune", *SMALL[:2], "--timesteps-per-trial", "100000",
               *SMALL[4:], "--n-trials", "3", "--pruner", "none", "--out", str(out)]
    # A suite started as a background job inherits SIGINT ignored, and Python then keeps it
    # ignored; the command is meant to be run in a terminal, where Ctrl-C is delivered.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "tb" / "trial_0000_s0").exists():  # training has started
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"still running 120 s after SIGINT: {process.communicate()[1]}")
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "designgym: interrupted"
    (trial,) = load(out).trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["error"].startswith("KeyboardInterrupt")
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [(r["number"], r["state"]) for r in rows] == [("0", "FAIL")]


@pytest.mark.parametrize("sampler, pruner", [("cmaes", "hyperband"), ("gp", "median")])
def test_every_sampler_and_pruner_runs_a_study(tmp_path, sampler, pruner):
    result = designgym("tune", *SMALL[:2], "--timesteps-per-trial", "256", "--n-evaluations", "2", *SMALL[6:],
                       "--n-trials", "3", "--n-startup-trials", "1", "--sampler", sampler, "--pruner", pruner,
                       "--sampler-seed", "0", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["trials"]
    assert counts["complete"] >= 1 and counts["complete"] + counts["pruned"] == 3
    # After the one random start-up trial, the sampler proposes from the history.
    params = [t.params for t in load(tmp_path).trials]
    assert len({json.dumps(p, sort_keys=True) for p in params}) == 3
