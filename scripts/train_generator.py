"""Train a generator shipped with designgym and write its weights and model card.

Two sources of designs:
- procedural extrusion sections, made here (the default; ``extrusion-vae-32``);
- a SIMP data set written by scripts/make_structures_dataset.py (``--data``; ``cantilever-vae``,
  ``mbb-vae``). The last tenth of it is held out for the card's metrics.

Reads top to bottom: get the designs, train a convolutional VAE on them (losses and sample grids
to TensorBoard with ``--tb``), measure what the raw generator makes, save weights + model card
into designgym/generators/weights/.

    python scripts/train_generator.py                 # the settings of the shipped extrusion weights
    python scripts/train_generator.py --epochs 2 --n-designs 2000 --out /tmp/gen   # a quick try
    python scripts/train_generator.py --data data/cantilever-64x32.npz --name cantilever-vae --epochs 150
"""

from __future__ import annotations

import argparse
import json
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
from designgym.envs.registration import make_problem
from designgym.generators.registry import WEIGHTS_DIR
from designgym.generators.training import VAETrainingConfig, save_generator, train_vae


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = VAETrainingConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--name", help="generator name (file stem); extrusion-vae-32, or <problem>-vae with --data"
    )
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
    p.add_argument("--data", type=Path, help="a SIMP data set (.npz) to train on instead of extrusion sections")
    p.add_argument(
        "--mirror", action="store_true",
        help="add each cantilever (or bracket) design flipped top to bottom: the optimum for the mirrored load "
        "(load_y -> 1 - load_y, load_angle -> -load_angle, a bracket's build direction up <-> down), as "
        "compliance is even in the force",
    )
    p.add_argument(
        "--drop-infeasible", action="store_true",
        help="with --data: leave out the optima that break a rule of their problem (an optimiser that lost "
        "the load, say), from training and held-out data alike",
    )
    p.add_argument(
        "--conditional", action="store_true",
        help="with --data: a conditional VAE that decodes each latent with the problem's conditions vector",
    )
    p.add_argument(
        "--coord-head", action="store_true",
        help="output layers that see each cell's coordinates and the conditions (places the load point)",
    )
    p.add_argument("--tb", type=Path, help="TensorBoard folder for losses and sample grids")
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


def load_structures(path: Path) -> tuple[dict, np.ndarray, list[dict[str, float]], np.ndarray]:
    """Settings, designs, conditions and SIMP compliance of a data set from make_structures_dataset.py."""
    if not path.exists():
        raise SystemExit(f"no data set at {path}; make one with scripts/make_structures_dataset.py --out {path}")
    with np.load(path) as data:
        settings = json.loads(str(data["settings"]))
        keys = [k.split("/", 1)[1] for k in data.files if k.startswith("conditions/")]
        conditions = [
            {k: float(data[f"conditions/{k}"][i]) for k in keys} for i in range(len(data["compliance"]))
        ]
        return settings, data["designs"].astype(np.float32), conditions, data["compliance"].astype(np.float64)


def mirrored_cantilevers(designs: np.ndarray) -> np.ndarray:
    """Top-to-bottom flips: each is the optimum for the load mirrored about the mid-height line."""
    return designs[:, ::-1, :].copy()


def mirrored_conditions(conditions: list[dict[str, float]]) -> list[dict[str, float]]:
    """The load cases of :func:`mirrored_cantilevers`: the load point flipped, the angle negated.

    Flipping the rows turns the force ``(sin a, -cos a)`` into ``(sin a, cos a)``, which is
    ``-(sin(-a), -cos(-a))``; compliance is even in the force, so ``-a`` has the same optimum.
    A bracket's build direction flips with it: up and down trade places (the printing rule of the
    flipped part, built the other way), left and right stay.
    """
    flipped = []
    for c in conditions:
        mirror = {**c, "load_y": 1.0 - c["load_y"], "load_angle": -c["load_angle"]}
        if "build_direction" in c:
            mirror["build_direction"] = _FLIPPED_DIRECTION[int(c["build_direction"])]
        flipped.append(mirror)
    return flipped


#: What each problem's optimize() is, for the cards.
_REFERENCE_WORDS = {"am_bracket": "SIMP through the AM overhang filter for the build direction, thin members "
                                  "thickened: printable optima"}


#: The build direction of a bracket flipped top to bottom, by index into AMBracket.BUILD_DIRECTIONS
#: (up, left, down, right).
_FLIPPED_DIRECTION = {0: 2, 1: 1, 2: 0, 3: 3}


def structure_metrics(
    model: torch.nn.Module, problem, held_designs: np.ndarray, held_conditions: list[dict], held_compliance: np.ndarray,
    n_prior: int, seed: int,
) -> dict[str, float]:
    """What the card states: round-trip fidelity on held-out SIMP designs, and the raw prior's samples."""
    from designgym.envs.manufacturing import floating_fraction, load_path_broken

    conditional = getattr(model, "conditions_dim", 0) > 0
    held_vectors = np.stack([problem.conditions_vector(c) for c in held_conditions]) if conditional else None
    with torch.no_grad():
        mu, _ = model.encode(torch.as_tensor(held_designs),
                             None if held_vectors is None else torch.as_tensor(held_vectors))
        recon = model.decode_numpy(mu.numpy(), held_vectors)
    truth, made = held_designs >= 0.5, recon >= 0.5
    inter = (truth & made).sum((1, 2))
    union = (truth | made).sum((1, 2))
    ratios, gains, simp_gains, feasible, recon_floating = [], [], [], [], []
    for design, cond, c_simp in zip(recon, held_conditions, held_compliance, strict=True):
        ev = problem.evaluate(design, cond)
        ratios.append(ev.objectives["compliance"] / c_simp)
        gains.append(ev.objectives["log_stiffness_gain"])
        simp_gains.append(float(np.log(problem.uniform_compliance(cond) / c_simp)))
        feasible.append(ev.feasible)
        recon_floating.append(ev.violations["floating_material"] > 0)
    ratios = np.array(ratios)

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_prior, model.latent_dim)).astype(np.float32)
    prior_conditions = [problem.sample_conditions(rng) for _ in range(n_prior)]
    vectors = np.stack([problem.conditions_vector(c) for c in prior_conditions]) if conditional else None
    prior = solid_mask(model.decode_numpy(z, vectors))
    anchored = problem._anchored_cells()
    prior_floating = np.array([floating_fraction(m, anchored) for m in prior])
    prior_volume = prior.reshape(n_prior, -1).mean(1)
    # A prior sample judged under random conditions (its own, for a conditional generator): is the
    # load joined to the supports?
    prior_load_path = []
    for m, cond in zip(prior, prior_conditions, strict=True):
        node, _ = problem._load(cond)
        prior_load_path.append(load_path_broken(m, anchored, problem.loaded_cells(node)) == 0.0)
    flat = prior.reshape(n_prior, -1).astype(np.float64)
    pair_inter = flat @ flat.T
    pair_union = flat.sum(1)[:, None] + flat.sum(1)[None, :] - pair_inter
    pair_iou = np.where(pair_union > 0, pair_inter / np.maximum(pair_union, 1), 1.0)
    return {
        "heldout_designs": len(held_designs),
        "heldout_iou_mean": float(np.mean(inter / np.maximum(union, 1))),
        "heldout_compliance_ratio_median": float(np.median(ratios)),
        "heldout_compliance_ratio_p90": float(np.quantile(ratios, 0.9)),
        "heldout_within_10pct_of_simp": float(np.mean(ratios <= 1.10)),
        "heldout_log_stiffness_gain_mean": float(np.mean(gains)),
        "heldout_simp_log_stiffness_gain_mean": float(np.mean(simp_gains)),
        "heldout_feasible_rate": float(np.mean(feasible)),
        "heldout_floating_rate": float(np.mean(recon_floating)),
        "prior_samples": n_prior,
        "prior_floating_rate": float(np.mean(prior_floating > 0)),
        "prior_floating_fraction_mean": float(prior_floating.mean()),
        "prior_load_path_rate": float(np.mean(prior_load_path)),
        "prior_volume_fraction_mean": float(prior_volume.mean()),
        "prior_volume_fraction_std": float(prior_volume.std()),
        "prior_diversity_mean_pairwise_1_minus_iou": float(1.0 - pair_iou[~np.eye(n_prior, dtype=bool)].mean()),
    }


def train_on_structures(args: argparse.Namespace, config: VAETrainingConfig, argv: list[str] | None) -> int:
    started = time.perf_counter()
    settings, designs, conditions, compliance = load_structures(args.data)
    problem = make_problem(settings["problem"], nelx=settings["nelx"], nely=settings["nely"])
    dropped = 0
    if args.drop_infeasible:
        keep = np.array([problem.evaluate(d, c).feasible for d, c in zip(designs, conditions, strict=True)])
        dropped = int((~keep).sum())
        designs, compliance = designs[keep], compliance[keep]
        conditions = [c for c, k in zip(conditions, keep, strict=True) if k]
    n_held = max(1, len(designs) // 10)
    train, train_conditions = designs[:-n_held], conditions[:-n_held]
    if args.mirror:
        if settings["problem"] not in ("cantilever", "am_bracket"):
            raise SystemExit(f"--mirror holds only for the cantilever and the bracket, not {settings['problem']!r}")
        train = np.concatenate([train, mirrored_cantilevers(train)])
        train_conditions = train_conditions + mirrored_conditions(train_conditions)
    vectors = None
    if args.conditional:
        vectors = np.stack([problem.conditions_vector(problem.check_conditions(c)) for c in train_conditions])
    model, history = train_vae(train, config, log_dir=args.tb, conditions=vectors)
    metrics = structure_metrics(
        model, problem, designs[-n_held:], conditions[-n_held:], compliance[-n_held:], 512, seed=args.seed + 1
    )
    card = {
        "description": f"Convolutional VAE over {settings['problem']} structures optimised by the problem's "
        f"reference ({type(problem).__name__}.optimize: {_REFERENCE_WORDS.get(settings['problem'], 'SIMP')}; "
        f"{settings['nely']} x {settings['nelx']} elements, 1 = solid, row 0 at the top).",
        "problem": settings["problem"],
        "script": "scripts/train_generator.py",
        "command": " ".join(["python", "scripts/train_generator.py", *(argv if argv is not None else sys.argv[1:])]),
        "data": {
            "source": "scripts/make_structures_dataset.py",
            "settings": settings,
            "n_designs": len(designs),
            "n_dropped_infeasible": dropped,
            "n_train": len(train),
            "n_heldout": n_held,
            "mirrored": bool(args.mirror),
        },
        "training": asdict(config),
        "final_loss": history[-1],
        "metrics": metrics,
        "torch_version": torch.__version__,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    if args.conditional:
        card["conditions"] = {
            "problem": settings["problem"], "keys": list(problem.conditions_space.spaces),
            "vector": "Problem.conditions_vector (each condition scaled to [-1, 1], in this order)",
        }
    default_name = f"{settings['problem']}-{'cvae' if args.conditional else 'vae'}"
    return save_and_report(model, args.name or default_name, card, args.out)


def save_and_report(model: torch.nn.Module, name: str, card: dict, out: Path) -> int:
    path = save_generator(model, name, card, out)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for key, value in card["metrics"].items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = VAETrainingConfig(
        latent_dim=args.latent_dim, channels=args.channels, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, beta=args.beta, seed=args.seed, device=args.device, coord_head=args.coord_head,
    )
    if args.conditional and args.data is None:
        raise SystemExit("--conditional needs --data: the extrusion sections have no conditions")
    if args.data is not None:
        return train_on_structures(args, config, argv)
    return train_on_sections(args, config, argv)


def train_on_sections(args: argparse.Namespace, config: VAETrainingConfig, argv: list[str] | None) -> int:
    Extrusion(size=args.size, min_wall=args.min_wall)  # validates size and wall settings early
    started = time.perf_counter()
    designs = make_sections(
        args.n_designs, (args.size, args.size), seed=args.data_seed, min_wall=args.data_min_wall, workers=args.workers
    )
    held_out = make_sections(512, (args.size, args.size), seed=args.data_seed + 1, min_wall=args.data_min_wall)
    model, history = train_vae(designs.astype(np.float32), config, log_dir=args.tb)
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
    return save_and_report(model, args.name or "extrusion-vae-32", card, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
