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
        classes: 1 for densities and fields; K >= 2 for grids of class codes ``0 .. K-1`` times
            ``scale`` (trained with cross-entropy per cell).
        coord_head: give the output layers each cell's coordinates and the conditions
            (see :class:`ConvVAE`).
        scale: the largest value of a field (designs are divided by it for the loss), or what
            one class step stands for in a label grid; 1 for densities and plain codes.
    """

    latent_dim: int = 8
    channels: int = 32
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 1.0
    seed: int = 0
    device: str = "auto"
    classes: int = 1
    scale: float = 1.0
    coord_head: bool = False


def train_vae(
    designs: np.ndarray,
    config: VAETrainingConfig,
    progress: bool = True,
    log_dir: str | Path | None = None,
    images_every: int = 10,
    conditions: np.ndarray | None = None,
) -> tuple[ConvVAE, list[dict[str, float]]]:
    """Train a :class:`ConvVAE` on designs ``[N, rows, cols]``.

    Args:
        designs: the training set: densities in ``[0, 1]``, fields in ``[0, config.scale]``, or
            class codes ``0 .. config.classes - 1``.
        config: settings.
        progress: show a progress bar over the epochs.
        log_dir: when given, TensorBoard event files there get the losses of every epoch and a grid
            of designs decoded from fixed prior samples every ``images_every`` epochs and at the end.
        images_every: epochs between sample grids.
        conditions: ``[N, k]``, the conditions vector of each design; trains a conditional VAE.

    Returns:
        The trained model (in eval mode, on the CPU) and the per-epoch loss history.
    """
    if designs.ndim != 3 or min(designs.shape[1:]) < 8:
        raise ValueError(f"train_vae needs designs [N, rows, cols] of at least 8 x 8 cells, got shape {designs.shape}")
    top = (config.classes - 1 if config.classes > 1 else 1) * config.scale
    if not np.all(np.isfinite(designs)) or designs.min() < 0 or designs.max() > top + 1e-6:
        raise ValueError(f"train_vae needs designs with values in [0, {top:g}]; rescale or threshold them first")
    if config.classes > 1 and not np.allclose(designs / config.scale, np.round(designs / config.scale), atol=1e-4):
        raise ValueError(f"train_vae with classes > 1 needs whole class codes (times scale {config.scale:g}) "
                         "in the designs")
    if conditions is not None:
        conditions = np.asarray(conditions, dtype=np.float32)
        if conditions.ndim != 2 or len(conditions) != len(designs) or not np.all(np.isfinite(conditions)):
            raise ValueError(
                f"train_vae needs finite conditions [N, k] with one row per design; got shape {conditions.shape} "
                f"for {len(designs)} designs"
            )
    k = 0 if conditions is None else conditions.shape[1]
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    shape = tuple(designs.shape[1:])
    extra = {"conditions_dim": k, "classes": config.classes, "scale": config.scale, "coord_head": config.coord_head}
    if shape[0] == shape[1] and shape[0] & (shape[0] - 1) == 0:
        model = ConvVAE(config.latent_dim, shape[0], config.channels, **extra).to(device)
    else:
        model = ConvVAE(config.latent_dim, channels=config.channels, shape=shape, **extra).to(device)
    writer = None
    if log_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir))
        fixed_z = torch.randn(16, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 7))
        fixed_c = None if conditions is None else torch.as_tensor(conditions[:16]).to(device)
        fixed_z = fixed_z[: len(designs)]
    data = torch.as_tensor(designs, dtype=torch.float32)
    cond = None if conditions is None else torch.as_tensor(conditions)
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
            index = order[start : start + config.batch_size]
            batch = data[index].to(device)
            batch_c = None if cond is None else cond[index].to(device)
            logits, mu, logvar = model(batch, batch_c)
            # Per-design sums, so the KL weight does not depend on the grid size.
            if config.classes > 1:
                codes = (batch / config.scale).round().long()
                recon = F.cross_entropy(logits, codes, reduction="sum") / len(batch)
            else:
                target = batch / config.scale
                recon = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(batch)
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
        if writer is not None:
            writer.add_scalar("loss/reconstruction", row["reconstruction"], epoch + 1)
            writer.add_scalar("loss/kl", row["kl"], epoch + 1)
            writer.add_scalar("loss/lr", scheduler.get_last_lr()[0], epoch + 1)
            if (epoch + 1) % images_every == 0 or epoch + 1 == config.epochs:
                model.eval()
                with torch.no_grad():
                    samples = model._decode(fixed_z.to(device), fixed_c).cpu()
                    # One grey scale for every kind: densities as they are, fields and codes over their top.
                    samples = samples / ((config.classes - 1 if config.classes > 1 else 1) * config.scale)
                writer.add_images("samples/prior", _tile(samples), epoch + 1, dataformats="HW")
    model.eval()
    if writer is not None:
        writer.close()
    return model.cpu(), history


def _tile(samples: torch.Tensor, columns: int = 4) -> torch.Tensor:
    """Designs ``[N, rows, cols]`` as one grey image, solid dark, a one-pixel white gutter between."""
    n, rows, cols = samples.shape
    grid_rows = -(-n // columns)
    image = torch.ones(grid_rows * (rows + 1) - 1, columns * (cols + 1) - 1)
    for i in range(n):
        r, c = divmod(i, columns)
        image[r * (rows + 1) : r * (rows + 1) + rows, c * (cols + 1) : c * (cols + 1) + cols] = 1 - samples[i]
    return image


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
        json.dump(full_card, handle, indent=2, default=json_default)
        handle.write("\n")
    for tmp in (tmp_weights, tmp_card):
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; shipped files must be readable by all
    os.replace(tmp_weights, weights)
    os.replace(tmp_card, directory / f"{name}.json")
    return weights


def json_default(value: Any) -> Any:
    """``json.dump``'s ``default``: numpy scalars and arrays as plain numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
