"""One study shared by several `designgym tune` processes through a real PostgreSQL server."""

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState
from postgres_server import PostgresServer, Unavailable

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@pytest.fixture(scope="module")
def postgres():
    try:
        server = PostgresServer().start()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(str(exc))
    yield server
    server.stop()


def worker(postgres, study, out, *args, timesteps=256):
    """A `designgym tune` process on the shared study, in its own process group."""
    command = [sys.executable, "-m", "designgym", "tune", "--env", "Extrusion-v2", "--timesteps-per-trial",
               str(timesteps), "--n-evaluations", "2", "--eval-episodes", "4", "--n-startup-trials", "2",
               "--storage", postgres.url, "--study-name", study, "--out", str(out), "--heartbeat-interval", "1",
               "--device", "cpu", "--no-progress", "--json", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out)


def test_two_workers_share_one_study_with_no_trial_lost_or_duplicated(postgres, tmp_path):
    a = worker(postgres, "shared", tmp_path / "a", "--n-trials", "3")
    b = worker(postgres, "shared", tmp_path / "b", "--n-trials", "3")
    reports = [finish(a), finish(b)]
    assert [sum(r["this_process"].values()) for r in reports] == [3, 3]

    study = optuna.load_study(study_name="shared", storage=postgres.url)
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in FINISHED for t in trials)
    by_worker = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs["worker"], []).append(t.number)
    assert sorted(len(numbers) for numbers in by_worker.values()) == [3, 3]
    # Workers sample apart: no two trials tried the same settings.
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6
    # Each worker logged its own trials, and together they logged every one exactly once.
    logged = [sorted(int(p.name.split("_")[1]) for p in (tmp_path / w / "tb").iterdir()) for w in "ab"]
    assert sorted(logged[0] + logged[1]) == list(range(6)) and sorted(map(len, logged)) == [3, 3]
    # Both wrote the results of the whole study.
    for w in "ab":
        assert len((tmp_path / w / "trials.csv").read_text().splitlines()) in (5, 6, 7)
    assert reports[1]["trials"]["complete"] + reports[1]["trials"]["pruned"] >= 3


def test_a_killed_worker_leaves_a_failed_trial_that_another_worker_retries(postgres, tmp_path):
    victim = worker(postgres, "killed", tmp_path / "victim", "--n-trials", "20", timesteps=2048)
    storage = optuna.storages.RDBStorage(postgres.url)
    deadline = time.monotonic() + 120
    running = []
    while not running:
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started a trial"
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="killed", storage=storage)
        except KeyError:  # not created yet
            continue
        running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values]
    os.killpg(victim.pid, signal.SIGKILL)  # mid-trial: it has reported a score and is training on
    victim.wait()
    (killed,) = study.get_trials(states=(TrialState.RUNNING,))
    assert killed.number == running[0].number

    rescuer = worker(postgres, "killed", tmp_path / "rescuer", "--n-trials", "2", timesteps=2048)
    report = finish(rescuer)

    study = optuna.load_study(study_name="killed", storage=postgres.url)
    trials = {t.number: t for t in study.trials}
    assert trials[killed.number].state == TrialState.FAIL
    (retry,) = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state in FINISHED
    assert retry.user_attrs["worker"] != killed.user_attrs["worker"]
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert report["trials"]["fail"] == 1 and report["best"] is not None
    assert study.best_trial.state == TrialState.COMPLETE  # the study stays usable
