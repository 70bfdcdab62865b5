"""Training a generator on a set of designs, and writing it out as shippable weights plus a card."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from designgym.generators.base import resolve_device
from designgym.generators.models import ConvVAE
from designgym.generators.registry import WEIGHTS_DIR, sha256_of


@dataclass
class VAETrainingConfig:
    """Settings of :func:`train_vae`; recorded in the model card of the result.

    Attributes:
        latent_dim: length of the latent vector (the RL action size in direct mode).
        channels: width of the first convolution.
        epochs: passes over the data.
        batch_size: designs per optimizer step.
        lr: Adam learning rate.
        beta: weight of the KL term; below 1 trades prior match for sharper designs.
        seed: seeds torch for initialisation and batching.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    latent_dim: int = 8
    channels: int = 32
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 1.0
    seed: int = 0
    device: str = "auto"


def train_vae(
    designs: np.ndarray, config: VAETrainingConfig, progress: bool = True
) -> tuple[ConvVAE, list[dict[str, float]]]:
    """Train a :class:`ConvVAE` on binary or density designs ``[N, size, size]`` in ``[0, 1]``.

    Returns:
        The trained model (in eval mode, on the CPU) and the per-epoch loss history.
    """
    if designs.ndim != 3 or designs.shape[1] != designs.shape[2]:
        raise ValueError(f"train_vae needs square designs [N, size, size], got shape {designs.shape}")
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = ConvVAE(config.latent_dim, designs.shape[1], config.channels).to(device)
    data = torch.as_tensor(designs, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.epochs), desc="training VAE", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(data), generator=generator)
        totals = {"reconstruction": 0.0, "kl": 0.0}
        for start in range(0, len(data), config.batch_size):
            batch = data[order[start : start + config.batch_size]].to(device)
            logits, mu, logvar = model(batch)
            # Per-design sums, so the KL weight does not depend on the grid size.
            recon = F.binary_cross_entropy_with_logits(logits, batch, reduction="sum") / len(batch)
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(batch)
            loss = recon + config.beta * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            totals["reconstruction"] += recon.item() * len(batch)
            totals["kl"] += kl.item() * len(batch)
        scheduler.step()
        row = {"epoch": epoch + 1, **{k: v / len(data) for k, v in totals.items()}}
        history.append(row)
        bar.set_postfix(recon=f"{row['reconstruction']:.1f}", kl=f"{row['kl']:.1f}")
    model.eval()
    return model.cpu(), history


def save_generator(
    model: ConvVAE,
    name: str,
    card: dict[str, Any],
    directory: Path = WEIGHTS_DIR,
) -> Path:
    """Write ``<name>.pt`` and its card ``<name>.json`` (with the sha256) into ``directory``.

    Both files are written to temporary names and renamed into place, so an interrupted save
    never leaves a weights file that does not match its card.
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp_weights = tempfile.mkstemp(dir=directory, suffix=".pt.tmp")
    os.close(fd)
    torch.save(state, tmp_weights)
    full_card = {
        "name": name,
        "architecture": type(model).__name__,
        "config": model.config,
        "design_shape": list(model.design_shape),
        "latent_dim": model.latent_dim,
        **card,
        "sha256": sha256_of(Path(tmp_weights)),
    }
    fd, tmp_card = tempfile.mkstemp(dir=directory, suffix=".json.tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(full_card, handle, indent=2, default=_jsonable)
        handle.write("\n")
    for tmp in (tmp_weights, tmp_card):
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; shipped files must be readable by all
    os.replace(tmp_weights, weights)
    os.replace(tmp_card, directory / f"{name}.json")
    return weights


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to a model card")
