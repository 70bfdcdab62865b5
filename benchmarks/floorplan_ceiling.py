"""What bounds a one-shot answer's score on FloorPlan-v2, offline.

A FloorPlan-v2 design scores 100 (the plan of the reference's 1,000-design search, or one as good)
or 0 (no better than the brief's z = 0 plan), seldom between (benchmarks/RESULTS.md section 19), so
a rule's interquartile mean follows the share of test cases it answers at the reference. This
script measures, on the env's 200-case test split:

1. the test cases where any design can score above 0 at all (the reference improves on z = 0):
   the most any answer can have at the reference, and the IQM of an answer that has them all;
2. how many cases the latents a one-shot agent chooses among have at the reference (the best of
   the 1, 16 and ``--candidates`` nearest remembered latents, an oracle judged on the test brief
   itself), for the agent's memory and random shares of it (``--memory-shares``), under two
   distances between briefs: the agent's own (its standardised, weighted conditions) and the
   brief in the plan's own units (the footprint's columns, rows and notch in cells, the door's
   column, the programme, the rooms' area ranges in cells; standardised, equal weights);
3. the same for a fixed menu of latents, the same for every brief: ``--menu`` latents chosen
   greedily from ``--menu-pool`` random ones (z = 0 first, then normal with standard deviation
   1/3) to cover ``--menu-briefs`` fresh briefs best (each brief's designs scaled within it, 1 its
   best of the pool);
4. with ``--searches`` (a benchmarks/score.py output folder with CMA-ES searches of all 200 cases),
   CMA-ES@100's share, which a one-shot answer must at least equal to meet the suite's target.

    python benchmarks/floorplan_ceiling.py --searches /tmp/score
    python benchmarks/floorplan_ceiling.py --agent runs/my-run --memory-shares 1 --menu 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from choice_among_cases import AT_REFERENCE, _cmaes_scores, normalized_scores  # noqa: E402

from designgym.agents.distill import _scaled_within  # noqa: E402
from designgym.agents.evaluation import load_agent, pretrained_path  # noqa: E402
from designgym.agents.scoring import _own_span, iqm, shipped_references, test_split  # noqa: E402
from designgym.agents.search import judge  # noqa: E402

ENV = "designgym/FloorPlan-v2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", default=None, help="run folder (default: the agent shipped for FloorPlan-v2)")
    p.add_argument("--candidates", type=int, default=64, help="nearest latents judged per test case")
    p.add_argument("--memory-shares", type=float, nargs="+", default=[0.25, 0.5, 1.0],
                   help="shares of the agent's memory to choose among (drawn at random)")
    p.add_argument("--menu", type=int, default=64, help="latents in the fixed menu (0: no menu)")
    p.add_argument("--menu-pool", type=int, default=400, help="random latents the menu is chosen from")
    p.add_argument("--menu-briefs", type=int, default=300, help="fresh briefs the menu is chosen on")
    p.add_argument("--searches", type=Path, default=None, help="benchmarks/score.py --out folder with CMA-ES rows")
    p.add_argument("--seed", type=int, default=24_680)
    p.add_argument("--out", type=Path, default=None, help="JSON of the rows (default: print only)")
    return p.parse_args(argv)


def brief_in_cells(problem, conditions) -> list[float]:
    """A brief in the plan's own units: what the layout's cuts work with (see floorplan_layout)."""
    g = problem._footprint_geometry(conditions)
    targets = problem.room_targets(conditions)
    door = problem.entrance_cell(conditions)[1] - g["c0"]
    areas = [value / problem.cell_area for name in ("living", "kitchen", "bedroom", "bathroom")
             for value in targets[name][1:]]
    return [g["shape"], g["w"], g["d"], g["nw"], g["nd"], g["n0"] - g["c0"], door, conditions["bedrooms"],
            conditions["bathrooms"], conditions["kitchen_living"], conditions["bath_bedroom"], *areas]


def remembered_brief(env, observation: np.ndarray) -> dict:
    """The brief of a (flat) observation, as the agent's memory holds them."""
    if env.observation_layout != "flat":
        raise SystemExit(f"{ENV}: this script reads the conditions from flat observations")
    start = 0  # where the conditions lie in an observation
    for key, (low, _) in env._observation_parts().items():
        if key == "conditions":
            break
        start += len(low)
    return env.generator.conditions_from_vector(observation[start : start + env.problem.conditions_dim])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not all(0.0 < s <= 1.0 for s in args.memory_shares):
        raise SystemExit(f"--memory-shares must lie in (0, 1], got {args.memory_shares}")
    agent = load_agent(args.agent or pretrained_path(ENV))
    policy = agent.model.policy
    if not len(getattr(policy, "memory_features", ())):
        raise SystemExit(f"{args.agent or ENV}: the agent has no case memory (answer='nearest', 'vote' or 'rank')")
    env = gym.make(ENV).unwrapped
    refs = shipped_references(ENV)
    cases = test_split(ENV)
    actions = policy.memory_actions.cpu().numpy()
    rng = np.random.default_rng(args.seed)
    rows = []

    def row(name, scores, **extra):
        at_reference = int((scores >= AT_REFERENCE).sum())
        entry = {"rule": name, "at_reference": at_reference, "share": at_reference / len(cases), "iqm": iqm(scores),
                 **extra}
        rows.append(entry)
        print(f"{name:64s} {at_reference:4d} of {len(cases)} at the reference ({100 * entry['share']:5.1f} %)  "
              f"IQM {entry['iqm']:5.1f}", flush=True)

    room = np.array([_own_span(c, refs.method) is not None for c in refs.cases])
    row("any design above z = 0 (the most any answer can have)", np.where(room, 100.0, 0.0))
    if args.searches:
        row("CMA-ES@100", _cmaes_scores(args.searches, ENV, refs))

    def judged(latents, i):
        return normalized_scores(env, refs, i, cases[i]["conditions"], latents)

    # The two distances between briefs, as points: the agent's and the brief in cells.
    memory_briefs = [remembered_brief(env, v) for v in policy.memory_features.cpu().numpy()]
    test_briefs = [env.problem.check_conditions(c["conditions"]) for c in cases]
    cells_memory = np.array([brief_in_cells(env.problem, c) for c in memory_briefs], dtype=float)
    cells_test = np.array([brief_in_cells(env.problem, c) for c in test_briefs], dtype=float)
    mean, sd = cells_memory.mean(0), cells_memory.std(0) + 1e-9
    root = th.sqrt(policy.memory_weights)
    with th.no_grad():
        test_raw = []
        for case in cases:
            obs, _ = env.reset(options=case)
            test_raw.append(policy.features(policy.obs_to_tensor(obs)[0])[0])
        own = ((policy.scaled(policy.memory_features) * root).cpu().numpy(),
               (policy.scaled(th.stack(test_raw)) * root).cpu().numpy())
    points = {"the agent's distance": own, "the brief in cells": ((cells_memory - mean) / sd, (cells_test - mean) / sd)}

    for share in sorted(args.memory_shares):
        keep = np.arange(len(actions)) if share == 1.0 else np.sort(
            rng.choice(len(actions), max(1, int(round(share * len(actions)))), replace=False))
        for distance, (memory, test) in points.items():
            k = min(args.candidates, len(keep))
            scores = []
            for i in tqdm(range(len(cases)), desc=f"{share:g} of memory, {distance}", unit="case"):
                near = keep[np.argsort(((memory[keep] - test[i]) ** 2).sum(axis=1), kind="stable")[:k]]
                scores.append(judged(actions[near], i))
            scores = np.array(scores)
            for n in sorted({1, min(16, k), k}):
                best = scores[:, :n].max(axis=1)
                row(f"best of the {n} nearest of {len(keep)} cases, {distance}", best, memory=len(keep),
                    distance=distance, latents=n)

    if args.menu:
        pool = np.clip(rng.normal(0.0, 1.0 / 3.0, size=(args.menu_pool, actions.shape[1])), -1.0, 1.0)
        pool[0] = 0.0
        cover = []
        for _ in tqdm(range(args.menu_briefs), desc="menu: fresh briefs", unit="brief"):
            found = judge(env, pool, env.sample_case(rng)["conditions"])
            cover.append(_scaled_within(found.feasible, found.scores))
        cover = np.array(cover)
        chosen = [0]
        for _ in range(min(args.menu, args.menu_pool) - 1):
            gain = np.maximum(cover, cover[:, chosen].max(axis=1, keepdims=True)).sum(axis=0)
            gain[chosen] = -np.inf
            chosen.append(int(gain.argmax()))
        menu = pool[chosen].astype(np.float32)
        scores = np.array([judged(menu, i) for i in tqdm(range(len(cases)), desc="menu: test cases", unit="case")])
        for n in sorted({8, 16, len(menu)} & set(range(1, len(menu) + 1))):
            best = scores[:, :n].max(axis=1)
            row(f"best of a fixed menu of {n} latents", best, latents=n)

    if args.out:
        args.out.write_text(json.dumps({"env": ENV, "agent": str(args.agent or pretrained_path(ENV)), "rows": rows},
                                       indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
