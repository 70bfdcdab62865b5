"""Writing the files of runs so that a crash, a full disk or a Ctrl-C never leaves half of one.

Run folders are read back later (``--resume``, ``designgym eval``, the pretrained agents), often
after the process that wrote them was killed; a reader must find either the old file or the new
one, never a torn one. Every writer here therefore writes beside the file under a temporary name
and renames it into place, which the file system does in one step.

They are also plain: arrays (``.npz``, read with ``allow_pickle=False``) and JSON, never pickles,
so that opening a run folder someone sent cannot run code. The model ``.zip`` files are the one
exception, as they are Stable-Baselines3's own format; older run folders' ``.pkl`` files are
refused with the way to convert them (:func:`convert_pickled_file`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for hints: the pictures write through here and need no Stable-Baselines3
    from gymnasium import spaces
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize

NORMALIZER_FORMAT = "designgym/vecnormalize"
REPLAY_BUFFER_FORMAT = "designgym/replay-buffer"


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` for the block to write; renamed over ``path`` when the block
    ends, removed if it raises, so a crash never leaves half a file. The file gets the mode a plain
    ``open()`` would give it (mkstemp's own is owner-only)."""
    if path.is_dir():  # found before the work, not when the rename fails after it
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def json_text(data: Any) -> str:
    """``data`` as JSON that every reader accepts: a NaN or infinite number (which ``json.dumps`` writes as
    the bare word ``NaN``, not JSON) becomes ``null``."""
    return json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json_text(data))


def save_model_atomic(model: BaseAlgorithm, path: Path) -> None:
    """Save to a temporary file and rename, so a crash never leaves half a model."""
    with atomic_path(path) as tmp:
        model.save(tmp)




def plain(value: Any) -> Any:
    """A JSON- and YAML-safe copy: mappings to dicts with string keys, tuples and arrays to lists,
    numpy scalars to Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _save_arrays_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _settings(data: Any, expected: str) -> dict[str, Any]:
    """The JSON ``settings`` entry of a file written here, checked to be of the ``expected`` format."""
    if "settings" not in data.files:
        raise ValueError("no settings entry: not a file designgym wrote")
    settings = json.loads(str(data["settings"]))
    if not isinstance(settings, dict) or settings.get("format") != expected:
        raise ValueError(f"its format is {settings.get('format') if isinstance(settings, dict) else None!r}, "
                         f"not {expected!r}")
    return settings


def plain_or_legacy(path: Path, what: str, instead: str = "train the run again") -> Path | None:
    """The file to read for ``path``, or ``None`` when there is none.

    An older designgym wrote the same files as pickles under ``.pkl``; those are refused, since
    unpickling runs whatever code a file holds. A ``.pkl`` that is really an array file (the search
    distillation's case buffer always was) is safe to read and is returned. ``instead`` is the way
    on for someone who does not trust the file.
    """
    if path.exists():
        return path
    legacy = path.with_suffix(".pkl")
    if not legacy.exists():
        return None
    if zipfile.is_zipfile(legacy):
        return legacy
    raise ValueError(f"{what} {legacy} is a pickle, which designgym no longer opens because unpickling runs any "
                     f"code the file holds; {instead}, or, if you trust the file, convert it once with "
                     f"`python -c \"from designgym.agents.files import convert_pickled_file; "
                     f"convert_pickled_file({str(legacy)!r})\"`")


def save_normalizer_atomic(normalizer: VecNormalize, path: Path) -> None:
    """The statistics and settings of a ``VecNormalize`` as plain arrays and JSON (``.npz``).

    The discounted returns of the episodes under way are left out, as ``VecNormalize.load`` also
    starts them from zero.
    """
    obs_rms = getattr(normalizer, "obs_rms", None) if normalizer.norm_obs else None
    stats = {"": obs_rms} if obs_rms is not None and not isinstance(obs_rms, dict) else dict(obs_rms or {})
    settings = {
        "format": NORMALIZER_FORMAT, "version": 1,
        "norm_obs": bool(normalizer.norm_obs), "norm_reward": bool(normalizer.norm_reward),
        "clip_obs": float(normalizer.clip_obs), "clip_reward": float(normalizer.clip_reward),
        "gamma": float(normalizer.gamma), "epsilon": float(normalizer.epsilon),
        "norm_obs_keys": None if normalizer.norm_obs_keys is None else [str(k) for k in normalizer.norm_obs_keys],
        "obs_rms": None if obs_rms is None else ("box" if "" in stats else sorted(stats)),
    }
    arrays = {"settings": np.array(json.dumps(settings))}
    for key, rms in [*((f"obs_rms/{k}" if k else "obs_rms", v) for k, v in stats.items()),
                     ("ret_rms", normalizer.ret_rms)]:
        arrays[f"{key}/mean"] = np.asarray(rms.mean, np.float64)
        arrays[f"{key}/var"] = np.asarray(rms.var, np.float64)
        arrays[f"{key}/count"] = np.asarray(rms.count, np.float64)
    _save_arrays_atomic(path, arrays)


def read_normalizer(path: Path, fix: str) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray, float]]]:
    """The settings and the running statistics (``obs_rms``, ``obs_rms/<key>``, ``ret_rms``: mean,
    var, count) of a file :func:`save_normalizer_atomic` wrote; anything else is refused with ``fix``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            settings = _settings(data, NORMALIZER_FORMAT)
            keys = settings["obs_rms"]
            names = [] if keys is None else ["obs_rms"] if keys == "box" else [f"obs_rms/{k}" for k in keys]
            stats = {}
            for name in [*names, "ret_rms"]:
                mean, var, count = (data[f"{name}/{part}"] for part in ("mean", "var", "count"))
                if mean.shape != var.shape or count.shape != ():
                    raise ValueError(f"{name} has mean {mean.shape}, var {var.shape}, count {count.shape}")
                stats[name] = (mean.astype(np.float64), var.astype(np.float64), float(count))
    except Exception as exc:  # a truncated zip, a foreign file, a missing entry: any reader error means the same
        raise ValueError(f"normalisation statistics {path} cannot be read ({type(exc).__name__}: {exc}); "
                         f"{fix}") from None
    return settings, stats


def load_normalizer(path: Path, venv: VecEnv, training: bool, fix: str) -> VecNormalize:
    """A fresh ``VecNormalize`` over ``venv`` with the settings and statistics of ``path``."""
    from stable_baselines3.common.vec_env import VecNormalize

    settings, stats = read_normalizer(path, fix)
    try:
        normalizer = VecNormalize(venv, training=training, norm_obs=settings["norm_obs"],
                                  norm_reward=settings["norm_reward"], clip_obs=settings["clip_obs"],
                                  clip_reward=settings["clip_reward"], gamma=settings["gamma"],
                                  epsilon=settings["epsilon"], norm_obs_keys=settings["norm_obs_keys"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"normalisation statistics {path} do not fit the observations of this env ({exc}); "
                         f"{fix}") from None
    fresh = getattr(normalizer, "obs_rms", None) if normalizer.norm_obs else None
    targets = {"ret_rms": normalizer.ret_rms}
    if isinstance(fresh, dict):
        targets.update({f"obs_rms/{k}": v for k, v in fresh.items()})
    elif fresh is not None:
        targets["obs_rms"] = fresh
    if set(targets) != set(stats):
        raise ValueError(f"normalisation statistics {path} hold {sorted(stats)}, this env needs {sorted(targets)}; "
                         f"{fix}")
    for name, rms in targets.items():
        mean, var, count = stats[name]
        if mean.shape != np.shape(rms.mean):
            raise ValueError(f"normalisation statistics {path} are for {name} of shape {mean.shape}, this env's is "
                             f"{np.shape(rms.mean)}; {fix}")
        rms.mean, rms.var, rms.count = mean, var, count
    return normalizer


def spaces_vec_env(observation_space: spaces.Space, action_space: spaces.Space) -> VecEnv:
    """A one-env ``VecEnv`` that has only spaces: what a ``VecNormalize`` that only normalises
    observations (an agent's, outside training) is built over."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    class SpacesOnly(gym.Env):
        def __init__(self) -> None:
            self.observation_space, self.action_space = observation_space, action_space

    return DummyVecEnv([SpacesOnly])


def _buffer_arrays(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """The arrays of an SB3 replay buffer (``ReplayBuffer`` or ``DictReplayBuffer``) by file entry."""
    arrays: dict[str, np.ndarray] = {}
    for name in ("observations", "next_observations"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}/{k}": v for k, v in value.items()})
        elif value is not None:  # optimize_memory_usage keeps no next_observations
            arrays[name] = value
    for name in ("actions", "rewards", "dones", "timeouts"):
        arrays[name] = getattr(buffer, name)
    return arrays


def _buffer_rows(buffer_size: int, pos: int, full: bool, name: str, optimize_memory_usage: bool) -> int:
    """How many rows of an array hold data: all once the buffer has wrapped, else those before ``pos``,
    and one more observation where the next observation of the last step is stored in place."""
    if full:
        return buffer_size
    if optimize_memory_usage and name == "observations":
        return min(pos + 1, buffer_size)
    return pos


def save_replay_buffer_atomic(buffer: ReplayBuffer, path: Path) -> None:
    """The transitions of an SB3 replay buffer as plain arrays (``.npz``), only the filled rows."""
    optimize = bool(getattr(buffer, "optimize_memory_usage", False))
    settings = {"format": REPLAY_BUFFER_FORMAT, "version": 1, "pos": int(buffer.pos), "full": bool(buffer.full),
                "buffer_size": int(buffer.buffer_size), "n_envs": int(buffer.n_envs), "optimize_memory_usage": optimize}
    arrays = {"settings": np.array(json.dumps(settings))}
    for name, value in _buffer_arrays(buffer).items():
        arrays[name] = value[: _buffer_rows(buffer.buffer_size, buffer.pos, buffer.full, name, optimize)]
    _save_arrays_atomic(path, arrays)


def load_replay_buffer(path: Path, buffer: ReplayBuffer, fix: str) -> None:
    """Fill ``buffer`` (a model's own, freshly made) with the transitions :func:`save_replay_buffer_atomic`
    wrote, after checking every array's shape against it; a file that does not fit changes nothing."""
    targets = _buffer_arrays(buffer)
    optimize = bool(getattr(buffer, "optimize_memory_usage", False))
    try:
        with np.load(path, allow_pickle=False) as data:
            settings = _settings(data, REPLAY_BUFFER_FORMAT)
            pos, full = int(settings["pos"]), bool(settings["full"])
            stored = {name: data[name] for name in targets}
    except Exception as exc:  # a truncated zip, a foreign file, a missing entry: any reader error means the same
        raise ValueError(f"replay buffer {path} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    if not 0 <= pos < buffer.buffer_size:
        raise ValueError(f"replay buffer {path} is at position {pos}, past the model's buffer of "
                         f"{buffer.buffer_size} rows; {fix}")
    for name, target in targets.items():
        expected = (_buffer_rows(buffer.buffer_size, pos, full, name, optimize), *target.shape[1:])
        if stored[name].shape != expected:
            raise ValueError(f"replay buffer {path} holds {name} of shape {stored[name].shape}, the model's buffer "
                             f"takes {expected}; {fix}")
    for name, target in targets.items():
        target[: len(stored[name])] = stored[name]
    buffer.pos, buffer.full = pos, full


def convert_pickled_file(path: str | Path) -> Path:
    """Convert normalisation statistics or a replay buffer that an older designgym pickled (``.pkl``)
    into the plain file beside it (``.npz``), which designgym reads; returns its path.

    Unpickling runs whatever code the file holds: call this only on a file you trust, such as one
    your own earlier run wrote.
    """
    import pickle

    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.vec_env import VecNormalize

    path = Path(path)
    with open(path, "rb") as handle:
        loaded = pickle.load(handle)  # the caller vouches for the file, as the docstring asks
    target = path.with_suffix(".npz")
    if isinstance(loaded, VecNormalize):
        save_normalizer_atomic(loaded, target)
    elif isinstance(loaded, ReplayBuffer):
        save_replay_buffer_atomic(loaded, target)
    else:
        raise TypeError(f"{path} holds a {type(loaded).__name__}, not normalisation statistics (VecNormalize) or "
                        "a replay buffer (ReplayBuffer); there is nothing to convert")
    return target
