"""Crashes and interrupts lose nothing: Ctrl-C and SIGTERM save a checkpoint, SIGKILL loses at most
one save interval, and files are replaced whole or not at all. Each is done to a real process."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

TINY_PPO = ["n_steps=32", "batch_size=32"]


def start_training(out: Path, *args: str, env: str = "Extrusion-v2") -> subprocess.Popen:
    """``designgym train`` as a user starts it from a terminal: in a process group of its own (as a
    terminal's foreground job is), with Ctrl-C (SIGINT) handled as by default, which a background
    job of a non-interactive shell would otherwise not have."""
    command = [sys.executable, "-m", "designgym", "train", "--env", env, "--out", str(out),
               "--run-name", "run", "--device", "cpu", "--no-progress", "--eval-freq", "0", "--params", *TINY_PPO,
               *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def press_ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does on Ctrl-C: SIGINT to every process of the foreground group, so the
    vector env's workers and the FEM helpers get it too."""
    os.killpg(process.pid, signal.SIGINT)


def trained_steps(run: Path) -> int:
    """Env steps of the episodes the monitor files hold (Extrusion-v2's episodes are one step)."""
    total = 0
    for file in (run / "monitor").glob("*.monitor.csv"):
        total += max(0, len(file.read_text().splitlines()) - 2)
    return total


def wait_for(condition, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("training did not get going in time")
        time.sleep(0.2)


def checkpoints(run: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("model_*_steps.zip"))


@pytest.mark.parametrize(
    "how, env, vec_env",
    [("ctrl-c", "Extrusion-v2", "dummy"), ("ctrl-c", "Extrusion-v2", "subproc"),
     ("ctrl-c", "Cantilever-v1", "batched"), ("sigterm", "Extrusion-v2", "dummy")],
)
def test_interrupt_saves_a_checkpoint_that_resume_continues(tmp_path, how, env, vec_env):
    # save_freq 0: no checkpoint but the one the interrupt makes.
    process = start_training(tmp_path, "--timesteps", "1000000", "--n-envs", "2", "--save-freq", "0",
                             "--vec-env", vec_env, env=env)
    run = tmp_path / "run"
    wait_for(lambda: trained_steps(run) >= 200, process)
    if how == "ctrl-c":
        press_ctrl_c(process)
    else:
        process.send_signal(signal.SIGTERM)  # to the main process only, as a scheduler's stop does
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    (steps,) = checkpoints(run)
    # A monitor writes its line inside the vector step, and SB3 counts the step once all envs have
    # returned: a signal landing in between leaves the monitors one step of the envs (n_envs=2)
    # ahead of the checkpoint, which holds only what was counted.
    assert steps >= 200 - 2
    checkpoint = run / "checkpoints" / f"model_{steps}_steps.zip"
    assert stderr.strip() == (f"designgym: interrupted at step {steps}; checkpoint saved to {checkpoint}; "
                              f"continue with `designgym train --resume {run}`")
    assert PPO.load(checkpoint, device="cpu").num_timesteps == steps
    assert not (run / "model.zip").exists()  # the run is not finished, and says so
    assert not list(run.rglob("tmp*")), "a temporary file was left behind"

    resumed = subprocess.run([sys.executable, "-m", "designgym", "train", "--resume", str(run), "--timesteps",
                              str(steps + 128), "--no-progress", "--json"], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert PPO.load(run / "model.zip", device="cpu").num_timesteps >= steps + 128


def test_sigkill_loses_at_most_one_save_interval_and_resume_continues(tmp_path):
    save_freq = 128
    process = start_training(tmp_path, "--timesteps", "1000000", "--n-envs", "2", "--save-freq", str(save_freq))
    run = tmp_path / "run"
    wait_for(lambda: len(checkpoints(run)) >= 2 and trained_steps(run) >= 3 * save_freq + 50, process)
    process.kill()  # SIGKILL: no handler runs, nothing is flushed
    process.communicate(timeout=60)
    done = trained_steps(run)  # episodes written by the monitors before the kill
    last = checkpoints(run)[-1]
    assert len(checkpoints(run)) == 2  # the latest two are kept
    # A checkpoint every save_freq steps (taken at a step of all envs together): what the kill loses
    # is what was trained since, at most one interval and one step of the envs, plus the episodes
    # of the step under way.
    assert 0 <= done - last <= save_freq + 2 * 2
    assert PPO.load(run / "checkpoints" / f"model_{last}_steps.zip", device="cpu").num_timesteps == last

    from designgym.agents.training import resume

    result = resume(run, timesteps=last + 64)
    assert result.metrics["timesteps"] >= last + 64
    assert PPO.load(result.model_path, device="cpu").num_timesteps == result.metrics["timesteps"]


def test_a_killed_writer_leaves_the_file_it_was_replacing_whole(tmp_path):
    target = tmp_path / "model.zip"
    target.write_bytes(b"the model trained so far")
    writer = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from designgym.agents.files import atomic_path
        with atomic_path(Path({str(target)!r})) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half of a new mod")
                handle.flush()
                print("writing", flush=True)
                time.sleep(120)
                handle.write(b"el")
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.kill()
    process.wait(timeout=30)
    assert target.read_bytes() == b"the model trained so far"


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary_one(tmp_path):
    from designgym.agents.files import atomic_path

    target = tmp_path / "best_hyperparams.yml"
    target.write_text("learning_rate: 0.001\n")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        Path(tmp).write_text("learning_rate: 0.0")
        raise OSError("disk full")
    assert target.read_text() == "learning_rate: 0.001\n"
    assert [p.name for p in tmp_path.iterdir()] == ["best_hyperparams.yml"]


def test_evaluations_and_best_model_are_replaced_whole(tmp_path, monkeypatch):
    """SB3 writes both in place; the run's evaluator writes each beside and renames it."""
    from designgym.agents.training import TrainConfig, train

    written: list[str] = []
    original = np.savez

    def savez(file, *args, **kwargs):
        written.append(str(file))
        return original(file, *args, **kwargs)

    monkeypatch.setattr(np, "savez", savez)
    config = TrainConfig(env="Extrusion-v2", timesteps=128, n_envs=2, out=str(tmp_path), run_name="r",
                         eval_episodes=2, eval_freq=64, save_freq=0, device="cpu",
                         hyperparams={"n_steps": 32, "batch_size": 32})
    run = train(config).run_dir
    assert written and all(Path(w).parent.name == ".evaluations.tmp" for w in written)
    assert np.load(run / "evaluations.npz")["timesteps"].tolist() == [64, 128]
    assert PPO.load(run / "best_model.zip", device="cpu") is not None
    assert not (run / ".evaluations.tmp").exists()


def test_workers_interrupted_between_request_and_reply_are_still_closed():
    """Ctrl-C can land in SubprocVecEnv.step_wait after one worker's reply was read and before the
    next: SB3's close() would then wait for a reply already taken (seen in 1 of 12 interrupted
    runs). The interrupted run's close stops the workers instead."""
    import threading
    from functools import partial

    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from designgym.agents.interrupts import close_after_interrupt
    from designgym.agents.training import _make_worker_env

    vec = make_vec_env(partial(_make_worker_env, "designgym/Extrusion-v2"), n_envs=2, vec_env_cls=SubprocVecEnv)
    vec.reset()
    vec.step_async(np.zeros((2, 8), dtype=np.float32))
    vec.remotes[0].recv()  # step_wait got this far when the interrupt came
    closing = threading.Thread(target=close_after_interrupt, args=(vec,), daemon=True)
    closing.start()
    closing.join(timeout=30)
    assert not closing.is_alive(), "closing the interrupted workers hangs"
    assert vec.closed and not any(p.is_alive() for p in vec.processes)
