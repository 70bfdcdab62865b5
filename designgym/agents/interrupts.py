"""Stopping a training run on Ctrl-C or SIGTERM without losing what it learnt.

Long runs are stopped from outside: by a person at the keyboard, or by a cluster scheduler or a
container runtime that sends SIGTERM. Either way the run should end with a checkpoint to resume
from, so both signals are turned into one interrupt, further signals are held off while that
checkpoint is written, and the env workers are stopped in a way that cannot hang.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving a checkpoint; ``designgym train --resume`` goes on.

    Attributes:
        run_dir: the run folder.
        steps: env steps trained when it stopped.
        checkpoint: the model file of the checkpoint just saved.
    """

    def __init__(self, run_dir: Path, steps: int, checkpoint: Path) -> None:
        super().__init__(
            f"interrupted at step {steps}; checkpoint saved to {checkpoint}; continue with "
            f"`designgym train --resume {run_dir}`"
        )
        self.run_dir, self.steps, self.checkpoint = run_dir, steps, checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM stops training as Ctrl-C does (clusters and containers stop jobs with it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """Within the block another Ctrl-C or SIGTERM only says to wait: the run is stopping already,
    and the checkpoint being written must be finished."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def wait(signum: int, frame: Any) -> None:
        print("designgym: saving a checkpoint before stopping, one moment", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, wait) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def close_after_interrupt(vec_env: VecEnv) -> None:
    """Close the envs of an interrupted run. The interrupt may have come between a request to
    SubprocVecEnv workers and the last of their replies, and a polite close would then wait for a
    reply already read; the workers hold nothing to save, so they are stopped instead."""
    base = vec_env.unwrapped
    if not isinstance(base, SubprocVecEnv):
        vec_env.close()
        return
    for process in base.processes:
        process.terminate()
    for process in base.processes:
        process.join(timeout=10)
    for remote in base.remotes:
        remote.close()
    base.closed = True
