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


# -- the URLs users type -------------------------------------------------------------------------


def typed_url(postgres, scheme, port=None):
    return f"{scheme}://{postgres.user}@127.0.0.1:{port or postgres.port}/{postgres.database}"


def cli_tune(url, out, *args, python_prelude=""):
    """`designgym tune --storage url` in a fresh process, as a user runs it; ``python_prelude`` runs first."""
    program = ["-c", f"{python_prelude}import sys; from designgym.cli import main; raise SystemExit(main())"] \
        if python_prelude else ["-m", "designgym"]
    command = [sys.executable, *program, "tune", "--env", "Extrusion-v2", "--timesteps-per-trial", "64",
               "--n-evaluations", "1", "--eval-episodes", "1", "--n-startup-trials", "1", "--storage", url,
               "--out", str(out), "--device", "cpu", "--no-progress", "--json", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_the_url_spellings_users_type_run_a_study_to_completion(postgres, scheme):
    from designgym.agents.study_storage import open_storage

    name = f"spelled-{scheme}"
    study = optuna.create_study(storage=open_storage(typed_url(postgres, scheme)), study_name=name)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)
    # Another client, reaching the server its own way, finds both trials finished.
    stored = optuna.load_study(study_name=name, storage=postgres.url)
    assert [t.state for t in stored.trials] == [TrialState.COMPLETE] * 2


def test_designgym_tune_runs_on_a_heroku_style_postgres_url(postgres, tmp_path):
    result = cli_tune(typed_url(postgres, "postgres"), tmp_path / "out", "--n-trials", "1", "--study-name", "heroku")
    assert result.returncode == 0, result.stderr
    assert sum(json.loads(result.stdout)["this_process"].values()) == 1
    (trial,) = optuna.load_study(study_name="heroku", storage=postgres.url).trials
    assert trial.state in FINISHED


def psycopg3_missing(monkeypatch):
    # A None entry makes `import psycopg` fail as it does where psycopg 3 is not installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)


def test_a_url_naming_a_driver_that_is_not_installed_says_which_and_how_to_install_it(monkeypatch):
    from designgym.agents.study_storage import open_storage

    psycopg3_missing(monkeypatch)
    with pytest.raises(RuntimeError) as raised:
        open_storage("postgresql+psycopg://designgym:secret@127.0.0.1/studies")
    message = str(raised.value)
    assert "\n" not in message and "Failed to import" not in message and "secret" not in message
    assert "names the driver psycopg (version 3), which is not installed" in message
    assert "pip install 'psycopg[binary]'" in message and "write postgresql:// to use the installed psycopg2" in message


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_plain_url_with_no_driver_installed_names_the_drivers_and_the_extra(monkeypatch, scheme):
    from designgym.agents.study_storage import open_storage

    psycopg3_missing(monkeypatch)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(RuntimeError) as raised:
        open_storage(f"{scheme}://designgym@127.0.0.1/studies")
    message = str(raised.value)
    assert "\n" not in message and "Failed to import" not in message
    assert "needs a PostgreSQL driver and none is installed (psycopg2 or psycopg (version 3))" in message
    assert message.endswith("pip install 'designgym[postgres]'")


def test_a_plain_url_uses_psycopg3_where_it_is_the_driver_installed(monkeypatch):
    from designgym.agents import study_storage

    monkeypatch.setattr(study_storage, "_importable", lambda module: module == "psycopg")
    assert study_storage.sqlalchemy_url("postgres://u:p%40ss@host:5433/db") == "postgresql+psycopg://u:p%40ss@host:5433/db"


def test_a_mysql_url_with_no_driver_installed_names_the_fix(monkeypatch):
    from designgym.agents.study_storage import open_storage

    for module in ("MySQLdb", "pymysql"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(RuntimeError, match=r"needs a MySQL driver and none is installed .*; pip install pymysql$"):
        open_storage("mysql://designgym@127.0.0.1/studies")
    with pytest.raises(RuntimeError, match=r"names the driver PyMySQL, which is not installed; pip install pymysql$"):
        open_storage("mysql+pymysql://designgym@127.0.0.1/studies")


def test_any_other_database_with_its_driver_missing_names_the_module(monkeypatch):
    from designgym.agents.study_storage import open_storage

    monkeypatch.setitem(sys.modules, "pyodbc", None)
    with pytest.raises(RuntimeError) as raised:
        open_storage("mssql+pyodbc://designgym:secret@127.0.0.1/studies")
    assert str(raised.value) == ("storage mssql+pyodbc://designgym:***@127.0.0.1/studies cannot load its database "
                                 "driver: the module 'pyodbc' is not installed; pip install pyodbc")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_a_wrong_port_names_the_connection_failure_not_a_missing_driver(postgres, scheme):
    from designgym.agents.study_storage import open_storage

    url = typed_url(postgres, scheme, port=_closed_port()).replace("designgym@", "designgym:secret@")
    with pytest.raises(RuntimeError) as raised:
        open_storage(url)
    message = str(raised.value)
    assert "\n" not in message and "Failed to import" not in message and "secret" not in message
    assert f"cannot open the study storage {scheme}://designgym:***@127.0.0.1:" in message
    assert "Connection refused" in message


@pytest.mark.parametrize("user, database, reason", [
    ("designgym", "nowhere", 'FATAL: database "nowhere" does not exist'),
    ("nobody", "designgym", 'FATAL: role "nobody" does not exist'),
])
def test_a_database_or_user_that_does_not_exist_gives_the_servers_reason(postgres, user, database, reason):
    from designgym.agents.study_storage import open_storage

    url = f"postgresql://{user}@127.0.0.1:{postgres.port}/{database}"
    with pytest.raises(RuntimeError) as raised:
        open_storage(url)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"cannot open the study storage {url}: ") and reason in message


def test_designgym_tune_with_a_wrong_port_exits_2_with_one_line(postgres, tmp_path):
    result = cli_tune(typed_url(postgres, "postgresql", port=_closed_port()), tmp_path / "out")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("designgym: error: cannot open the study storage postgresql://designgym@127.0.0.1:")
    assert "Connection refused" in line and "Failed to import" not in line
    assert not (tmp_path / "out").exists()


def test_designgym_tune_naming_a_missing_driver_exits_2_with_one_line(tmp_path):
    result = cli_tune("postgresql+psycopg://designgym@127.0.0.1/studies", tmp_path / "out",
                      python_prelude="import sys; sys.modules['psycopg'] = None; ")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("designgym: error: storage postgresql+psycopg://designgym@127.0.0.1/studies names the "
                           "driver psycopg (version 3), which is not installed; pip install 'psycopg[binary]'")


def _closed_port():
    from postgres_server import _free_port

    return _free_port()
