"""Train a conditional generator for an architectural problem and write its weights and model card.

Reads top to bottom: make procedural designs for briefs drawn from the problem's conditions space
(every one feasible by construction), train a conditional VAE on them with each design's
conditions vector, measure what the raw generator makes on briefs it never saw, and save the
weights with a model card into designgym/generators/weights/.

    python scripts/train_architecture_generator.py --problem floor_plan   # floorplan-cvae, as shipped
    python scripts/train_architecture_generator.py --problem massing      # massing-cvae, as shipped
    python scripts/train_architecture_generator.py --problem massing --n-designs 500 --epochs 2 --out /tmp/gen

``--data FILE.npz`` keeps the procedural designs: made and written there when the file is
missing, read back when it exists (so a second training run skips making them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from designgym.envs.registration import make_problem
from designgym.generators.registry import WEIGHTS_DIR
from designgym.generators.training import VAETrainingConfig, json_default, save_generator, train_vae


@dataclass(frozen=True)
class Family:
    """How one problem's generator is made: its data, its output kind and its shipped defaults."""

    generator: str
    description: str
    data_source: str
    latent_dim: int
    channels: int
    epochs: int
    n_designs: int
    beta: float

    def make(self, n: int, seed: int, workers: int) -> tuple[np.ndarray, list[dict], dict]:
        if self.data_source.endswith("make_plans"):
            from designgym.envs.architecture.floorplan_data import make_plans

            return make_plans(n, seed=seed, workers=workers, progress=True)
        from designgym.envs.architecture.massing_data import make_massings

        return make_massings(n, seed=seed, workers=workers, progress=True)


FAMILIES = {
    "floor_plan": Family(
        generator="floorplan-cvae",
        description="Conditional VAE over floor plans (24 x 24 cells of 0.5 m, one room-type code per cell, "
        "row 0 at the back), conditioned on the brief (FloorPlan's conditions vector).",
        data_source="designgym.envs.architecture.floorplan_data.make_plans",
        latent_dim=16, channels=48, epochs=50, n_designs=12000, beta=0.5,
    ),
    "massing": Family(
        generator="massing-cvae",
        description="Conditional VAE over building massings (height fields in metres on 32 x 32 cells of 2 m, "
        "row 0 to the north; one class per storey count, 3.5 m a storey), conditioned on the parcel and "
        "zoning (Massing's conditions vector).",
        data_source="designgym.envs.architecture.massing_data.make_massings",
        latent_dim=8, channels=32, epochs=40, n_designs=12000, beta=0.5,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", choices=sorted(FAMILIES), required=True)
    p.add_argument("--name", help="generator name (file stem); the family's shipped name by default")
    p.add_argument("--n-designs", type=int, help="procedural designs to train on (the family's default)")
    p.add_argument("--data-seed", type=int, default=2026)
    p.add_argument("--data", type=Path, help="an .npz to keep the procedural designs in (made when missing)")
    p.add_argument("--workers", type=int, default=2, help="processes making the data")
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--channels", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--beta", type=float)
    p.add_argument("--no-coord-head", action="store_true", help="plain decoder output layer (no CoordConv head)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--metric-briefs", type=int, default=256, help="unseen briefs for the card's raw-sample metrics")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for <name>.pt and <name>.json")
    p.add_argument("--tb", type=Path, help="TensorBoard folder for losses and sample grids")
    return p.parse_args(argv)


def designs_and_briefs(family: Family, n: int, seed: int, workers: int, path: Path | None
                       ) -> tuple[np.ndarray, list[dict[str, Any]], dict]:
    """The procedural training set, read from ``path`` when it holds one made with the same settings."""
    settings = {"source": family.data_source, "n_designs": n, "seed": seed}
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as data:
            stored = json.loads(str(data["settings"]))
            if {k: stored.get(k) for k in settings} != settings:
                raise SystemExit(
                    f"{path} holds designs made with {stored}, not {settings}; pass another --data file or delete it"
                )
            return data["designs"], json.loads(str(data["conditions"])), stored.get("stats", {})
    designs, briefs, stats = family.make(n, seed, workers)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp, designs=designs, conditions=json.dumps(briefs, default=json_default),
            settings=json.dumps({**settings, "stats": stats}, default=json_default),
        )
        tmp.replace(path)
    return designs, briefs, stats


def raw_generator_metrics(model: torch.nn.Module, problem, n: int, seed: int) -> dict[str, float]:
    """What the raw generator makes for briefs it never saw: z from the prior, and z = 0.

    For each unseen brief, one prior sample and the prior mean are judged by the problem; the
    diversity is measured among 8 prior samples for one brief (the share of cells that differ for
    a plan, the mean height difference over the largest height for a massing).
    """
    rng = np.random.default_rng(seed)
    briefs = [problem.sample_conditions(rng) for _ in range(n)]
    vectors = np.stack([problem.conditions_vector(b) for b in briefs])
    z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
    sampled = model.decode_numpy(z, vectors)
    mean = model.decode_numpy(np.zeros_like(z), vectors)
    out: dict[str, float] = {"briefs": n}
    for label, designs in (("prior", sampled), ("prior_mean", mean)):
        evaluations = problem.evaluate_batch(list(designs), briefs)
        out[f"{label}_feasible_rate"] = float(np.mean([e.feasible for e in evaluations]))
        for name in problem.violation_names:
            out[f"{label}_meets/{name}"] = float(np.mean([e.violations[name] <= problem.feasibility_tolerance
                                                          for e in evaluations]))
        out[f"{label}_mean_{problem.objective.name}"] = float(np.mean(
            [e.objectives[problem.objective.name] for e in evaluations]
        ))
    pairs = []
    for brief, vector in zip(briefs[:32], vectors[:32], strict=True):
        del brief
        many = model.decode_numpy(rng.standard_normal((8, model.latent_dim)).astype(np.float32),
                                  np.repeat(vector[None], 8, axis=0))
        for i in range(8):
            for j in range(i + 1, 8):
                if problem.name == "floor_plan":
                    pairs.append(float(np.mean(many[i] != many[j])))
                else:
                    pairs.append(float(np.mean(np.abs(many[i] - many[j])) / problem.max_height_m))
    out["diversity_same_brief"] = float(np.mean(pairs))
    return out


def reconstruction_metrics(model: torch.nn.Module, problem, designs: np.ndarray, briefs: list[dict]
                           ) -> dict[str, float]:
    """How closely the encoder-decoder round trip keeps held-out procedural designs, and their feasibility."""
    vectors = torch.as_tensor(np.stack([problem.conditions_vector(b) for b in briefs]))
    with torch.no_grad():
        mu, _ = model.encode(torch.as_tensor(designs, dtype=torch.float32), vectors)
    recon = model.decode_numpy(mu.numpy(), vectors.numpy())
    evaluations = problem.evaluate_batch(list(recon), briefs)
    out = {"heldout_designs": len(designs),
           "heldout_feasible_rate": float(np.mean([e.feasible for e in evaluations]))}
    if problem.name == "floor_plan":
        out["heldout_cell_accuracy"] = float(np.mean(recon == designs))
    else:
        out["heldout_mean_abs_error_m"] = float(np.mean(np.abs(recon - designs)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    family = FAMILIES[args.problem]
    problem = make_problem(args.problem)
    if args.problem == "floor_plan":  # one class per room type
        classes, scale = 6, 1.0
    else:  # one class per storey count: heights come out in whole storeys, as they are judged
        classes, scale = int(problem.max_height_m // problem.floor_height_m) + 1, problem.floor_height_m
    config = VAETrainingConfig(
        latent_dim=args.latent_dim or family.latent_dim, channels=args.channels or family.channels,
        epochs=args.epochs or family.epochs, batch_size=args.batch_size, lr=args.lr,
        beta=family.beta if args.beta is None else args.beta, seed=args.seed, device=args.device,
        classes=classes, scale=scale, coord_head=not args.no_coord_head,
    )
    started = time.perf_counter()
    n = args.n_designs or family.n_designs
    designs, briefs, stats = designs_and_briefs(family, n, args.data_seed, args.workers, args.data)
    n_held = max(1, n // 20)
    vectors = np.stack([problem.conditions_vector(b) for b in tqdm(briefs, desc="conditions", leave=False)])
    data = designs.astype(np.float32)
    model, history = train_vae(data[:-n_held], config, log_dir=args.tb, conditions=vectors[:-n_held])
    metrics = raw_generator_metrics(model, problem, args.metric_briefs, seed=args.data_seed + 1)
    metrics.update(reconstruction_metrics(model, problem, data[-n_held:], briefs[-n_held:]))
    card = {
        "description": family.description,
        "problem": args.problem,
        "conditions": {"problem": args.problem, "keys": list(problem.conditions_space.spaces),
                       "vector": "Problem.conditions_vector (each condition scaled to [-1, 1], in this order)"},
        "script": "scripts/train_architecture_generator.py",
        "command": " ".join(["python", "scripts/train_architecture_generator.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "data": {"source": family.data_source, "n_designs": n, "n_train": n - n_held, "n_heldout": n_held,
                 "seed": args.data_seed, "all_feasible": True, **{f"procedural_{k}": v for k, v in stats.items()}},
        "training": asdict(config),
        "final_loss": history[-1],
        "metrics": metrics,
        "torch_version": torch.__version__,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    name = args.name or family.generator
    path = save_generator(model, name, card, args.out)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    for key, value in metrics.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
