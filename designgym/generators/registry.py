"""Loading the generators that ship inside the package, checked against their recorded sha256."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from designgym.generators.base import Generator, resolve_device
from designgym.generators.models import ARCHITECTURES

WEIGHTS_DIR = Path(str(resources.files("designgym.generators") / "weights"))


class GeneratorIntegrityError(RuntimeError):
    """A weights file does not match the sha256 its card records."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available(directory: Path = WEIGHTS_DIR) -> list[str]:
    """Names of the generators whose weights and card are in ``directory``."""
    return sorted(p.stem for p in directory.glob("*.json") if p.with_suffix(".pt").exists())


def card(name: str, directory: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The model card of a shipped generator: architecture, settings, data, metrics and sha256."""
    path = directory / f"{name}.json"
    if not path.exists():
        known = ", ".join(available(directory)) or "none"
        raise KeyError(f"no generator named {name!r}; shipped generators: {known}")
    return json.loads(path.read_text())


def load(name: str, device: str | torch.device | None = None, directory: Path = WEIGHTS_DIR) -> Generator:
    """Load a pretrained generator by name from the package's own weights.

    Args:
        name: a name from :func:`available`.
        device: ``None``/``"auto"`` (CUDA when present, else CPU), or any torch device.
        directory: where to look; the package's ``weights/`` folder by default.

    Raises:
        KeyError: no such generator.
        GeneratorIntegrityError: the weights file differs from the one the card records.
    """
    info = card(name, directory)
    weights = directory / f"{name}.pt"
    actual = sha256_of(weights)
    if actual != info["sha256"]:
        raise GeneratorIntegrityError(
            f"weights of generator {name!r} at {weights} have sha256 {actual[:12]}..., but its card "
            f"records {info['sha256'][:12]}...; the file is damaged or was replaced: reinstall designgym, "
            f"or retrain it with `python {info.get('script', 'scripts/train_generator.py')}`"
        )
    try:
        cls = ARCHITECTURES[info["architecture"]]
    except KeyError:
        raise KeyError(
            f"generator {name!r} needs architecture {info['architecture']!r}, which this version of "
            f"designgym does not have ({', '.join(ARCHITECTURES)})"
        ) from None
    model = cls(**info["config"])
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.name = name
    model.condition_keys = tuple(info.get("conditions", {}).get("keys", ()))
    model.eval()
    return model.to(resolve_device(device))
