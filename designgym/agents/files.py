"""Writing the files of runs so that a crash, a full disk or a Ctrl-C never leaves half of one.

Run folders are read back later (``--resume``, ``designgym eval``, the pretrained agents), often
after the process that wrote them was killed; a reader must find either the old file or the new
one, never a torn one. Every writer here therefore writes beside the file under a temporary name
and renames it into place, which the file system does in one step.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # only for hints: the pictures write through here and need no Stable-Baselines3
    from stable_baselines3.common.base_class import BaseAlgorithm


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` for the block to write; renamed over ``path`` when the block
    ends, removed if it raises, so a crash never leaves half a file. The file gets the mode a plain
    ``open()`` would give it (mkstemp's own is owner-only)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=path.suffix)
    os.close(fd)
    try:
        yield tmp
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def save_model_atomic(model: BaseAlgorithm, path: Path) -> None:
    """Save to a temporary file and rename, so a crash never leaves half a model."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def save_normalizer_atomic(normalizer: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        normalizer.save(tmp)


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
