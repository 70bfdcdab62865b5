"""Train the extrusion-section generator shipped with designgym and write its weights and card.

Reads top to bottom: make procedural sections, train a convolutional VAE on them, measure what
the raw generator makes, save weights + model card into designgym/generators/weights/.

    python scripts/train_generator.py                 # the settings of the shipped weights
    python scripts/train_generator.py --epochs 2 --n-designs 2000 --out /tmp/gen   # a quick try
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from designgym.envs.extrusion.problem import Extrusion
from designgym.envs.extrusion.sections import make_sections
from designgym.envs.manufacturing import (
    count_enclosed_voids,
    disconnected_fraction,
    solid_mask,
    thin_feature_fraction,
)
from designgym.generators.registry import WEIGHTS_DIR
from designgym.generators.training import VAETrainingConfig, save_generator, train_vae


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = VAETrainingConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="extrusion-vae-32", help="generator name (file stem)")
    p.add_argument("--n-designs", type=int, default=24000, help="procedural sections to train on")
    p.add_argument("--data-seed", type=int, default=2024)
    p.add_argument("--size", type=int, default=32, help="grid side in cells")
    p.add_argument("--min-wall", type=int, default=2, help="the problem's minimum wall, for the metrics")
    p.add_argument(
        "--data-min-wall", type=int, default=3,
        help="thinnest wall in the training sections; above --min-wall so that decoded walls, a little "
        "blurred, still meet the rule",
    )
    p.add_argument("--workers", type=int, default=2, help="processes making the data")
    p.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    p.add_argument("--channels", type=int, default=defaults.channels)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--beta", type=float, default=defaults.beta)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for <name>.pt and <name>.json")
    return p.parse_args(argv)


def raw_sample_metrics(model: torch.nn.Module, n: int, min_wall: int, seed: int) -> dict[str, float]:
    """How often prior samples already satisfy the manufacturing rules, and how varied they are."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    masks = solid_mask(model.decode_numpy(z.numpy()))
    one_piece = np.array([disconnected_fraction(m) == 0.0 for m in masks])
    walls_ok = np.array([thin_feature_fraction(m, min_wall) == 0.0 for m in masks])
    hollows_ok = np.array([count_enclosed_voids(m) <= 2 for m in masks])
    flat = masks.reshape(n, -1).astype(np.float64)
    inter = flat @ flat.T
    union = flat.sum(1)[:, None] + flat.sum(1)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    off_diagonal = iou[~np.eye(n, dtype=bool)]
    return {
        "samples": n,
        "valid_rate": float(np.mean(one_piece & walls_ok & hollows_ok)),
        "one_piece_rate": float(one_piece.mean()),
        "min_wall_rate": float(walls_ok.mean()),
        "mean_area_fraction": float(flat.mean()),
        "diversity_mean_pairwise_1_minus_iou": float(1.0 - off_diagonal.mean()),
    }


def reconstruction_accuracy(model: torch.nn.Module, designs: np.ndarray) -> float:
    """Fraction of cells the encoder-decoder round trip gets right on held-out sections."""
    with torch.no_grad():
        mu, _ = model.encode(torch.as_tensor(designs, dtype=torch.float32))
        recon = model.decode_numpy(mu.numpy()) >= 0.5
    return float(np.mean(recon == (designs >= 0.5)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Extrusion(size=args.size, min_wall=args.min_wall)  # validates size and wall settings early
    started = time.perf_counter()
    designs = make_sections(
        args.n_designs, (args.size, args.size), seed=args.data_seed, min_wall=args.data_min_wall, workers=args.workers
    )
    held_out = make_sections(512, (args.size, args.size), seed=args.data_seed + 1, min_wall=args.data_min_wall)
    config = VAETrainingConfig(
        latent_dim=args.latent_dim,
        channels=args.channels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        seed=args.seed,
        device=args.device,
    )
    model, history = train_vae(designs.astype(np.float32), config)
    metrics = raw_sample_metrics(model, 512, args.min_wall, seed=args.seed + 1)
    metrics["heldout_cell_accuracy"] = reconstruction_accuracy(model, held_out)
    card = {
        "description": "Convolutional VAE over extruded-profile cross-sections (1 = solid, row 0 at the top).",
        "script": "scripts/train_generator.py",
        "command": " ".join(["python", "scripts/train_generator.py", *(argv if argv is not None else sys.argv[1:])]),
        "data": {
            "source": "designgym.envs.extrusion.sections.make_sections",
            "n_designs": args.n_designs,
            "seed": args.data_seed,
            "size": args.size,
            "min_wall": args.data_min_wall,
        },
        "metrics_min_wall": args.min_wall,
        "training": asdict(config),
        "final_loss": history[-1],
        "metrics": metrics,
        "torch_version": torch.__version__,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    path = save_generator(model, args.name, card, args.out)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for key, value in metrics.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
