"""Make a data set of SIMP-optimised structures for sampled conditions (the generators' training data).

Reads top to bottom: draw conditions per sample from a seed, run SIMP for each in worker
processes, write finished shards as they complete, merge the shards into one compressed file.
Each sample's conditions come from its own child seed, so an interrupted run resumed with the
same arguments skips the finished shards and ends with exactly the data an uninterrupted run makes.

    python scripts/make_structures_dataset.py --problem cantilever --n 2000 --out data/cantilever-64x32.npz
    python scripts/make_structures_dataset.py --problem mbb --n 8 --nelx 30 --nely 10 --out /tmp/mbb.npz
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from designgym.envs.registration import make_problem


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="cantilever", help="registered structural problem (cantilever, mbb)")
    p.add_argument("--n", type=int, default=2000, help="samples")
    p.add_argument("--nelx", type=int, default=64)
    p.add_argument("--nely", type=int, default=32)
    p.add_argument("--max-iter", type=int, default=200, help="SIMP iterations at most")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--shard-size", type=int, default=25, help="samples per resumable shard")
    p.add_argument("--out", type=Path, required=True, help="the merged .npz; shards go to <out>.shards/")
    return p.parse_args(argv)


def run_shard(args: argparse.Namespace, start: int, stop: int, shard: Path) -> int:
    """Optimise samples ``start..stop-1`` and write them to ``shard`` atomically."""
    problem = make_problem(args.problem, nelx=args.nelx, nely=args.nely)
    seeds = np.random.SeedSequence(args.seed).spawn(args.n)[start:stop]
    designs, conditions, compliance = [], [], []
    for seed in seeds:
        cond = problem.sample_conditions(np.random.default_rng(seed))
        density = problem.optimize(cond, max_iter=args.max_iter)
        designs.append(density.astype(np.float16))
        conditions.append(cond)
        compliance.append(problem.evaluate(density, cond).objectives["compliance"])
    keys = list(problem.conditions_space.spaces)
    fd, tmp = tempfile.mkstemp(dir=shard.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            designs=np.stack(designs),
            compliance=np.array(compliance),
            index=np.arange(start, stop),
            **{f"conditions/{k}": np.array([c[k] for c in conditions]) for k in keys},
        )
    os.replace(tmp, shard)
    return stop - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    make_problem(args.problem, nelx=args.nelx, nely=args.nely)  # fail early on a bad problem or mesh
    shard_dir = args.out.parent / f"{args.out.name}.shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("workers", "out")}
    settings_file = shard_dir / "settings.json"
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise SystemExit(
            f"{shard_dir} holds shards made with other settings ({settings_file}); use another --out or delete it"
        )
    settings_file.write_text(json.dumps(settings, indent=2) + "\n")

    jobs = []
    for start in range(0, args.n, args.shard_size):
        stop = min(start + args.shard_size, args.n)
        shard = shard_dir / f"shard-{start:06d}-{stop:06d}.npz"
        if not shard.exists():
            jobs.append((start, stop, shard))
    done = args.n - sum(stop - start for start, stop, _ in jobs)
    with tqdm(total=args.n, initial=done, desc=f"SIMP {args.problem}", unit="design") as bar:
        if args.workers <= 1:
            for start, stop, shard in jobs:
                bar.update(run_shard(args, start, stop, shard))
        else:
            with ProcessPoolExecutor(args.workers) as pool:
                futures = [pool.submit(run_shard, args, *job) for job in jobs]
                for future in as_completed(futures):
                    bar.update(future.result())

    shards = sorted(shard_dir.glob("shard-*.npz"))
    parts = [dict(np.load(s)) for s in shards]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(merged.pop("index"))
    merged = {k: v[order] for k, v in merged.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, **merged, settings=json.dumps(settings))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}: {len(order)} designs of shape {merged['designs'].shape[1:]}, "
          f"median compliance {np.median(merged['compliance']):.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
