"""What the buildings' agents design on the test split, rule by rule.

For FloorPlan and Massing (or ``--envs``): the agent's one-shot design for each of the 200 test
cases, judged; the share meeting every rule and each rule alone; for floor plans also the share of
required adjacencies met and the room areas against their brief (mean relative distance from the
middle of each room's range, and the share of rooms inside it). The same for z = 0 (the raw
generator, repaired where the env repairs) as the baseline in the same run.

    python benchmarks/building_agents.py                       # the shipped agents
    python benchmarks/building_agents.py --envs FloorPlan-v2 --agent runs/my-run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from designgym.agents.evaluation import load_agent
from designgym.agents.scoring import test_split
from designgym.envs.architecture.floorplan import ROOM_TYPES
from designgym.envs.registration import resolve_env_id


def room_areas(problem, plan: np.ndarray, conditions) -> list[tuple[float, float, float]]:
    """``(area, low, high)`` in m2 of every programme room of a plan."""
    labels, codes = problem.rooms(plan)
    targets = problem.room_targets(conditions)
    out = []
    for room, code in enumerate(codes, start=1):
        name = ROOM_TYPES[int(code)]
        if name in targets:
            _, low, high = targets[name]
            out.append((float((labels == room).sum()) * problem.cell_area, low, high))
    return out


def judge(env_id: str, act, cases) -> dict[str, float]:
    env = gym.make(env_id)
    base = env.unwrapped
    problem = base.problem
    feasible, meets, adjacency, errors, inside = [], {k: [] for k in problem.violation_names}, [], [], []
    for case in tqdm(cases, desc=env_id, leave=False):
        obs, _ = env.reset(options=case)
        _, _, _, _, info = env.step(act(obs))
        feasible.append(info["feasible"])
        for rule, value in info["violations"].items():
            meets[rule].append(value <= 0)
        if problem.name == "floor_plan":
            conditions = info["conditions"]
            required = int(conditions["kitchen_living"]) + int(conditions["bath_bedroom"])
            if required:
                adjacency.append(info["objectives"]["adjacency_satisfaction"])
            for area, low, high in room_areas(problem, base.design, conditions):
                errors.append(abs(area - 0.5 * (low + high)) / (0.5 * (low + high)))
                inside.append(low <= area <= high)
    env.close()
    out = {"cases": len(cases), "feasible_rate": float(np.mean(feasible))}
    out.update({f"meets/{k}": float(np.mean(v)) for k, v in meets.items()})
    if adjacency:
        out["adjacency_met"] = float(np.mean(adjacency))
        out["room_area_error_mean"] = float(np.mean(errors))
        out["rooms_in_range"] = float(np.mean(inside))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["FloorPlan-v2", "Massing-v2"])
    p.add_argument("--agent", default="pretrained", help="a run folder or model .zip (default: the shipped agent)")
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--out", type=Path, default=None, help="JSON of the figures")
    args = p.parse_args(argv)
    results = {}
    for name in args.envs:
        env_id = resolve_env_id(name)
        cases = test_split(env_id, args.cases)
        agent = load_agent(args.agent, env_id=env_id)
        zero = np.zeros(gym.make(env_id).action_space.shape, dtype=np.float32)
        results[env_id] = {"agent": judge(env_id, agent.act, cases), "z = 0": judge(env_id, lambda _, z=zero: z, cases)}
        for who, figures in results[env_id].items():
            print(f"{env_id} {who}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items() if k != "cases"))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
