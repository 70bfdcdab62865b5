"""The checkpoints of a run: writing them as it trains, and finding and checking them to resume from.

A run that is killed must lose no more than the steps since its last checkpoint, and a resumed run
must not discover a damaged or foreign checkpoint after it has touched the run folder. Saving,
naming, listing and checking checkpoints are kept together so that the writer and the readers
(``--resume``, ``designgym eval`` of an unfinished run) agree on one layout of the
``checkpoints/`` folder.
"""

from __future__ import annotations

from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

from designgym.agents.algorithms import ALGORITHMS
from designgym.agents.files import atomic_path, save_model_atomic, save_normalizer_atomic


def checkpoint_file(folder: Path, steps: int, kind: str = "model") -> Path:
    """A file of the checkpoint at ``steps``: ``model`` (.zip), ``vecnormalize`` or ``replay_buffer`` (.pkl)."""
    return Path(folder) / f"{kind}_{steps}_steps.{'zip' if kind == 'model' else 'pkl'}"


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
            with atomic_path(checkpoint_file(self.folder, steps, "replay_buffer")) as tmp:
                self.model.save_replay_buffer(tmp)
        path = checkpoint_file(self.folder, steps)
        save_model_atomic(self.model, path)
        for old in list_checkpoints(self.folder)[: -self.keep]:
            for stale in (old, checkpoint_companion(old, "vecnormalize"), checkpoint_companion(old, "replay_buffer")):
                stale.unlink(missing_ok=True)
        return path


def check_checkpoint(checkpoint: Path, algo: str) -> None:
    """Read a checkpoint's files before anything of the run is touched; a damaged or foreign one is
    named, with the way on."""
    import pickle

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
    stats = checkpoint_companion(checkpoint, "vecnormalize")
    if stats.exists():
        try:
            with open(stats, "rb") as handle:
                pickle.load(handle)
        except Exception as exc:
            raise ValueError(f"normalisation statistics {stats} cannot be read ({type(exc).__name__}); {fix}") from None
