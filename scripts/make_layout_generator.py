"""Write the floorplan-slicing generator's file and model card, with its measured plans.

The generator (designgym.generators.layouts.SlicingPlanGenerator) has no trained weights: its
``.pt`` is an empty state dict, so that it loads and is checked like every shipped generator. What
this script adds is the card: for raw prior samples (z ~ N(0, I)) and for z = 0, on briefs drawn
fresh from the brief distribution, the share of plans meeting every rule and each rule alone, the
mean quality of those that meet every rule, and the same figures for the pixel generator
floorplan-cvae on the same briefs, for comparison.

    python scripts/make_layout_generator.py --briefs 512
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from designgym.envs.architecture.floorplan_layout import PARAMETERS
from designgym.generators import registry
from designgym.generators.layouts import SlicingPlanGenerator

NAME = "floorplan-slicing"


def measure(generator, problem, briefs: list[dict], seed: int, label: str) -> dict[str, float]:
    """Prior-sample and z = 0 figures of ``generator`` over ``briefs`` (one latent of each per brief)."""
    rng = np.random.default_rng(seed)
    keys = tuple(getattr(generator, "condition_keys", ()) or ()) or None
    out: dict[str, float] = {}
    for prefix, latent in (("prior", lambda: rng.standard_normal(generator.latent_dim)),
                           ("prior_mean", lambda: np.zeros(generator.latent_dim))):
        meets = dict.fromkeys(problem.violation_names, 0)
        feasible, quality, seconds = 0, [], 0.0
        for conditions in tqdm(briefs, desc=f"{label} {prefix}", leave=False):
            vector = problem.conditions_vector(conditions, keys)[None]
            start = time.perf_counter()
            design = generator.decode_numpy(latent()[None], vector)[0]
            seconds += time.perf_counter() - start
            design = np.clip(design, *problem.design_space.low.flat[:1], *problem.design_space.high.flat[:1])
            ev = problem.evaluate(design, conditions)
            feasible += ev.feasible
            for rule, value in ev.violations.items():
                meets[rule] += value <= 0
            if ev.feasible:
                quality.append(ev.objectives["quality"])
        n = len(briefs)
        out[f"{prefix}_feasible_rate"] = feasible / n
        out.update({f"{prefix}_meets/{rule}": count / n for rule, count in meets.items()})
        out[f"{prefix}_mean_quality_feasible"] = float(np.mean(quality)) if quality else float("nan")
        out[f"{prefix}_ms_per_decode"] = 1000.0 * seconds / n
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--briefs", type=int, default=512, help="briefs to measure on (default 512)")
    parser.add_argument("--seed", type=int, default=2027, help="seed of the briefs and latents")
    parser.add_argument("--out", type=Path, default=registry.WEIGHTS_DIR, help="folder of the weights and card")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    generator = SlicingPlanGenerator()
    problem = generator.problem
    rng = np.random.default_rng(args.seed)
    briefs = [problem.sample_conditions(rng) for _ in range(args.briefs)]
    metrics = {"briefs": args.briefs, **measure(generator, problem, briefs, args.seed + 1, NAME)}
    pixel = registry.load("floorplan-cvae", device="cpu")
    compared = {"briefs": args.briefs, **measure(pixel, problem, briefs, args.seed + 1, "floorplan-cvae")}
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{NAME}.pt"
    torch.save(generator.state_dict(), weights)
    card = {
        "name": NAME,
        "architecture": "SlicingPlanGenerator",
        "config": {"size": problem.size, "cell_m": problem.cell_m},
        "design_shape": list(generator.design_shape),
        "latent_dim": generator.latent_dim,
        "description": ("Floor plans solved from a structured description (back-strip depth, which rooms go behind "
                        "the corridor, the order of the rooms in each strip, each room's aimed area; one latent "
                        "number each through the normal CDF) by slicing the brief's footprint into a corridor and "
                        "rectangular rooms. No trained weights: the .pt file is empty."),
        "parameters": list(PARAMETERS),
        "problem": "floor_plan",
        "conditions": {"problem": "floor_plan", "keys": list(generator.condition_keys),
                       "vector": "Problem.conditions_vector (each condition scaled to [-1, 1], in this order)"},
        "script": "scripts/make_layout_generator.py",
        "command": f"python scripts/make_layout_generator.py --briefs {args.briefs} --seed {args.seed}",
        "data": {"source": "none: the generator is not trained (its metrics are measured on briefs drawn with "
                           "the seed)", "seed": args.seed},
        "metrics": metrics,
        "compared_with": {"floorplan-cvae": compared},
        "torch_version": torch.__version__,
        "sha256": registry.sha256_of(weights),
    }
    (args.out / f"{NAME}.json").write_text(json.dumps(card, indent=2) + "\n")
    for key in ("prior_feasible_rate", "prior_mean_feasible_rate", "prior_ms_per_decode"):
        print(f"{key}: {NAME} {metrics[key]:.3f}, floorplan-cvae {compared[key]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
