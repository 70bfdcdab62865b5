"""The printable reference of AMBracket against plain SIMP, on the first cases of the env's test split.

For each case: plain SIMP (``AMBracket.optimize(conditions, printable=False)``, which ignores both
printing rules) and the printable reference (``AMBracket.optimize``, what the shipped references are:
SIMP through Langelaar's AM filter, thin members thickened within the volume allowance), both judged
by the env's rules. Printed: the share of each that prints without supports (overhang 0), that meets
every rule, the printable design's compliance over plain SIMP's (median and quartiles, per build
direction too), and seconds per design. Two worker processes by default, one per core here.

    python benchmarks/am_reference.py --cases 24
"""

from __future__ import annotations

import argparse
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm.auto import tqdm

import designgym
from designgym.agents.scoring import test_split

ENV = "designgym/AMBracket-v3"


def _case(conditions: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    problem = designgym.make_problem(ENV)
    row = {"build_direction": problem.BUILD_DIRECTIONS[int(conditions["build_direction"])]}
    for kind, printable in (("plain", False), ("printable", True)):
        started = time.perf_counter()
        design = problem.optimize(conditions, printable=printable)
        row[f"{kind}_seconds"] = time.perf_counter() - started
        judged = problem.evaluate(design, conditions)
        row[f"{kind}_compliance"] = judged.objectives["compliance"]
        row[f"{kind}_prints"] = judged.violations["overhang"] == 0.0
        row[f"{kind}_feasible"] = judged.feasible
        row[f"{kind}_broken"] = sorted(k for k, v in judged.violations.items() if v > 0)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cases = [case["conditions"] for case in test_split(ENV, args.cases)]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(tqdm(pool.map(_case, cases), total=len(cases), desc="cases"))
    ratio = np.array([r["printable_compliance"] / r["plain_compliance"] for r in rows])
    print(f"{ENV}, first {len(rows)} test cases; {platform.processor() or platform.machine()}, "
          f"{args.workers} worker(s)")
    for kind in ("plain", "printable"):
        print(f"  {kind:<9} prints without supports {np.mean([r[f'{kind}_prints'] for r in rows]):6.1%}   "
              f"meets every rule {np.mean([r[f'{kind}_feasible'] for r in rows]):6.1%}   "
              f"{np.mean([r[f'{kind}_seconds'] for r in rows]):5.1f} s per design")
    q1, median, q3 = np.percentile(ratio, [25, 50, 75])
    print(f"  printable compliance / plain: median {median:.3f} (quartiles {q1:.3f}, {q3:.3f}; "
          f"worst {ratio.max():.3f})")
    for direction in ("up", "left", "down", "right"):
        mine = [x for x, r in zip(ratio, rows, strict=True) if r["build_direction"] == direction]
        if mine:
            print(f"    {direction:<5} {len(mine):3d} cases, median {np.median(mine):.3f}")
    broken: dict[str, int] = {}
    for r in rows:
        for name in r["printable_broken"]:
            broken[name] = broken.get(name, 0) + 1
    print(f"  rules the printable designs break (cases): {broken or 'none'}")


if __name__ == "__main__":
    main()
