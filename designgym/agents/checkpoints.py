"""The checkpoints of a run: writing them as it trains, and finding and checking them to resume from.

A run that is killed must lose no more than the steps since its last checkpoint, and a resumed run
must not discover a damaged or foreign checkpoint after it has touched the run folder. Saving,
naming, listing and checking checkpoints are kept together so that the writer and the readers
(``--resume``, ``designgym eval`` of an unfinished run) agree on one layout of the
``checkpoints/`` folder.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from designgym.agents.algorithms import ALGORITHMS, normalize_kwargs
from designgym.agents.files import (
    atomic_path,
    load_replay_buffer,
    plain_or_legacy,
    read_normalizer,
    save_model_atomic,
    save_normalizer_atomic,
    save_replay_buffer_atomic,
)


def checkpoint_file(folder: Path, steps: int, kind: str = "model") -> Path:
    """A file of the checkpoint at ``steps``: ``model`` (.zip), ``vecnormalize`` or ``replay_buffer`` (.npz)."""
    return Path(folder) / f"{kind}_{steps}_steps.{'zip' if kind == 'model' else 'npz'}"


def checkpoint_companion(model: Path, kind: str) -> Path:
    """The ``vecnormalize`` or ``replay_buffer`` file beside a checkpoint's model file."""
    return checkpoint_file(model.parent, checkpoint_steps(model), kind)


def checkpoint_steps(path: Path) -> int:
    return int(path.stem.split("_")[1])


def list_checkpoints(folder: Path) -> list[Path]:
    """The model files of the checkpoints in ``folder``, oldest first."""
    return sorted(Path(folder).glob("model_*_steps.zip"), key=checkpoint_steps)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir / "checkpoints")
    return found[-1] if found else None


class CheckpointSaver(BaseCallback):
    """Every ``save_freq`` env steps: the model, its replay buffer (off-policy algorithms) and the
    normalisation statistics, each written to a temporary file and renamed, so a crash never leaves
    half a checkpoint. The latest ``keep`` checkpoints are kept."""

    def __init__(self, folder: Path, save_freq: int, keep: int = 2) -> None:
        super().__init__()
        self.folder, self.save_freq, self.keep = Path(folder), int(save_freq), int(keep)
        self._last = 0

    def _init_callback(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._last = self.model.num_timesteps

    def _on_step(self) -> bool:
        if self.model.num_timesteps - self._last >= self.save_freq:
            self._last = self.model.num_timesteps
            self.save()
        return True

    def save(self) -> Path:
        from stable_baselines3.common.vec_env import VecNormalize

        steps = self.model.num_timesteps
        # Statistics and buffer first, the model last: a model file means its checkpoint is whole.
        normalizer = self.model.get_vec_normalize_env()
        if isinstance(normalizer, VecNormalize):
            save_normalizer_atomic(normalizer, checkpoint_file(self.folder, steps, "vecnormalize"))
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            save_checkpoint_buffer(self.model, checkpoint_file(self.folder, steps, "replay_buffer"))
        path = checkpoint_file(self.folder, steps)
        save_model_atomic(self.model, path)
        for old in list_checkpoints(self.folder)[: -self.keep]:
            companions = [checkpoint_companion(old, kind) for kind in ("vecnormalize", "replay_buffer")]
            # An older designgym's .pkl companions go with their checkpoint too.
            for stale in (old, *companions, *(c.with_suffix(".pkl") for c in companions)):
                stale.unlink(missing_ok=True)
        return path


def save_checkpoint_buffer(model: Any, path: Path) -> None:
    """A model's replay buffer as plain arrays. SB3's own ``save_replay_buffer`` pickles it;
    designgym's own algorithms (the search distillation) already write plain arrays."""
    from stable_baselines3.common.buffers import ReplayBuffer

    if isinstance(model.replay_buffer, ReplayBuffer):
        save_replay_buffer_atomic(model.replay_buffer, path)
    else:
        with atomic_path(path) as tmp:
            model.save_replay_buffer(tmp)


def restore_checkpoint_buffer(model: Any, path: Path, fix: str) -> None:
    """Fill a model's replay buffer from the file :func:`save_checkpoint_buffer` wrote."""
    from stable_baselines3.common.buffers import ReplayBuffer

    if isinstance(model.replay_buffer, ReplayBuffer):
        load_replay_buffer(path, model.replay_buffer, fix)
        return
    try:
        model.load_replay_buffer(path)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"replay buffer {path} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None


def resume_checkpoint(run_dir: Path, algo: str, timesteps: int) -> Path:
    """The checkpoint a run resumed up to ``timesteps`` continues from, checked (:func:`check_checkpoint`)."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(
            f"no checkpoint in {run_dir / 'checkpoints'} to resume from (was save_freq 0?); start a new run"
        )
    check_checkpoint(checkpoint, algo)
    steps = checkpoint_steps(checkpoint)
    if steps >= timesteps:
        raise ValueError(
            f"{run_dir} has already reached {steps} of {timesteps} steps; "
            f"pass --timesteps above {steps} to train it further"
        )
    return checkpoint


def check_checkpoint(checkpoint: Path, algo: str) -> None:
    """Read a checkpoint's files before anything of the run is touched; a damaged or foreign one is
    named, with the way on. Normalisation statistics must be there when the run normalises: without
    them it would train on unnormalised observations; a missing replay buffer only costs the
    transitions it held, as it does in Stable-Baselines3, and is warned of."""
    from stable_baselines3.common.save_util import load_from_zip_file

    earlier = [c for c in list_checkpoints(checkpoint.parent) if c != checkpoint]
    fix = (f"move it out of {checkpoint.parent} to resume from {earlier[-1].name} instead" if earlier
           else "start a new run")
    try:
        data, _, _ = load_from_zip_file(checkpoint, device="cpu", print_system_info=False)
    except Exception as exc:  # a truncated zip, a foreign file: any reader error means the same
        raise ValueError(f"checkpoint {checkpoint} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(data, dict) or "policy_class" not in data:
        raise ValueError(f"checkpoint {checkpoint} is not a Stable-Baselines3 model; {fix}")
    stored = getattr(data["policy_class"], "__name__", str(data["policy_class"]))
    accepted = {cls.__name__ for cls in ALGORITHMS[algo].policy_aliases.values()}
    if stored not in accepted:
        raise ValueError(f"checkpoint {checkpoint} holds a {stored}, not a policy of {algo.upper()}, which this "
                         f"run trains; {fix}")
    # The fix for a bad file beside the checkpoint: "it" above is the checkpoint, here it is named.
    fix = (f"move {checkpoint.name} out of {checkpoint.parent} to resume from {earlier[-1].name} instead" if earlier
           else "start a new run")
    planned = checkpoint_companion(checkpoint, "vecnormalize")
    stats = plain_or_legacy(planned, "normalisation statistics")
    if stats is not None:
        read_normalizer(stats, fix)
    elif _run_normalizes(checkpoint.parent.parent / "config.json"):
        kept = [c for c in earlier if checkpoint_companion(c, "vecnormalize").exists()]
        way = "start a new run"
        if kept:
            later = checkpoint.name if kept[-1] == earlier[-1] else f"the checkpoints after {kept[-1].name}"
            way = f"move {later} out of {checkpoint.parent} to resume from {kept[-1].name}, which has them"
        raise FileNotFoundError(f"normalisation statistics {planned} are missing, and the run normalises "
                                f"observations (normalize in its config.json), which it cannot do on without them; "
                                f"{way}")
    if hasattr(ALGORITHMS[algo], "load_replay_buffer"):
        planned = checkpoint_companion(checkpoint, "replay_buffer")
        empty = "delete it to resume with an empty replay buffer"
        buffer = plain_or_legacy(planned, "replay buffer", instead=empty)
        if buffer is None:
            warnings.warn(f"checkpoint {checkpoint} has no replay buffer ({planned.name}); {algo.upper()} resumes "
                          "with an empty one and learns from new steps only", stacklevel=2)
            return
        try:
            with np.load(buffer, allow_pickle=False) as data:
                data.files  # noqa: B018  (opening reads the zip's directory, which a truncated file lacks)
        except Exception as exc:
            raise ValueError(f"replay buffer {buffer} cannot be read ({type(exc).__name__}: {exc}); {empty}, "
                             f"or {fix}") from None


def _run_normalizes(config_path: Path) -> bool:
    """Whether the run of ``config_path`` normalises observations and rewards (its ``normalize`` setting)."""
    try:
        settings = json.loads(config_path.read_text()).get("resolved_hyperparams") or {}
    except (OSError, ValueError, AttributeError):  # no run folder around the checkpoint: nothing to go by
        return False
    return normalize_kwargs(settings.get("normalize")) is not None
