"""Does a short study pay? Tune with several `designgym tune` workers sharing one study, then
train with the study's best settings and with the shipped ones, on seeds the study never used,
and score both on held-out conditions the study never scored on.

    python benchmarks/tuned_vs_shipped.py                     # Extrusion-v2, PPO, 2 workers x 12 trials
    python benchmarks/tuned_vs_shipped.py --env designgym/Cantilever-v1 --workers 4

The study scores trials on seeded conditions 10000..; the comparison uses 50000.., and training
seeds 1, 2 against the study's seed 0. Every command runs as a user would run it, in its own
process with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def designgym(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "designgym", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_all(processes: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a command failed:\n{err}")
        outputs.append(out)
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="designgym/Extrusion-v2")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials-per-worker", type=int, default=12)
    parser.add_argument("--timesteps-per-trial", type=int, default=4096)
    parser.add_argument("--train-timesteps", type=int, nargs="*", default=[4096, 20_000],
                        help="training budgets to compare at (default: the trials' own, and the shipped 20,000)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="keep everything here (default: a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        out = args.out or Path(temp)
        out.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{out / 'study.db'}"
        started = time.perf_counter()
        workers = [designgym("tune", "--env", args.env, "--algo", args.algo, "--n-trials", str(args.trials_per_worker),
                             "--timesteps-per-trial", str(args.timesteps_per_trial), "--storage", storage,
                             "--study-name", "bench", "--out", str(out / f"worker{i}"), "--json", "--no-progress")
                   for i in range(args.workers)]
        wait_all(workers)
        study_seconds = time.perf_counter() - started
        # Each worker wrote the study as it stood when it finished; read it once all are done.
        (text,) = wait_all([designgym("tune", "--env", args.env, "--algo", args.algo, "--timesteps-per-trial",
                                      str(args.timesteps_per_trial), "--storage", storage, "--study-name", "bench",
                                      "--out", str(out / "final"), "--export-only", "--json")])
        final = json.loads(text)
        print(f"study: {args.workers} workers x {args.trials_per_worker} trials of {args.timesteps_per_trial} steps "
              f"on {args.env}, {args.algo}: {study_seconds:.0f} s")
        print(f"  trials: {final['trials']}")
        print(f"  best: trial {final['best']['number']}, value {final['best']['value']:.3f}")
        print(f"  best settings: {final['best']['hyperparams']}")
        best_file = Path(final["files"]["best_hyperparams"])
        for budget in args.train_timesteps:
            compare(args, out, best_file, budget)


def compare(args: argparse.Namespace, out: Path, best_file: Path, budget: int) -> None:
    rows: dict[str, list[dict]] = {"shipped": [], "tuned": []}
    started = time.perf_counter()
    for seed in args.seeds:
        runs = {"shipped": [], "tuned": ["--hyperparams", str(best_file)]}
        names = {name: f"{name}-{budget}-s{seed}" for name in runs}
        trainers = [designgym("train", "--env", args.env, "--algo", args.algo, "--seed", str(seed),
                              "--timesteps", str(budget), "--eval-freq", "0", "--save-freq", "0",
                              "--out", str(out / "runs"), "--run-name", names[name], "--no-progress",
                              "--device", "cpu", *extra) for name, extra in runs.items()]
        wait_all(trainers)
        evals = [designgym("eval", "--run", str(out / "runs" / names[name]), "--seed", "50000",
                           "--episodes", str(args.episodes), "--json") for name in runs]
        for name, text in zip(runs, wait_all(evals), strict=True):
            rows[name].append(json.loads(text)["summary"])
    seconds = time.perf_counter() - started

    keys = [k for k in rows["shipped"][0] if k.startswith("mean_") or k == "feasible_rate"]
    print(f"\ntrained {budget} steps, seeds {args.seeds}, scored on {args.episodes} held-out episodes "
          f"(seeds 50000..): {seconds:.0f} s")
    print(f"{'settings':<9} {'seed':>4} " + " ".join(f"{k:>16}" for k in keys))
    for name in ("shipped", "tuned"):
        for seed, summary in zip(args.seeds, rows[name], strict=True):
            print(f"{name:<9} {seed:>4} " + " ".join(f"{summary[k]:>16.3f}" for k in keys))
        means = [np.mean([s[k] for s in rows[name]]) for k in keys]
        print(f"{name:<9} {'mean':>4} " + " ".join(f"{m:>16.3f}" for m in means))


if __name__ == "__main__":
    main()
