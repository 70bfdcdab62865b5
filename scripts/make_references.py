"""Make the reference values of the suite's score for an env's test split (or for given cases).

For each case: the objective of the env's start design (the 0 of the normalized score) and of the
reference design (its 100): the problem's classical optimizer where it has one (SIMP for the
structures), else the best of the start design and a 1,000-design CMA-ES latent search ranked
feasible first. The shipped files in designgym/agents/references/ were made with

    python scripts/make_references.py --env designgym/Cantilever-v1 --workers 2

and the same for every built-in env (about 2 to 10 minutes each on 2 cores). For an env of your own:

    python scripts/make_references.py --env mylab/HeatSink-v0 --out refs/HeatSink-v0.json
    designgym score --env mylab/HeatSink-v0 --agent runs/my-run --references refs/HeatSink-v0.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from designgym.agents.scoring import TEST_SPLIT_SIZE, make_references, shipped_references_path, write_references
from designgym.envs.registration import resolve_env_id


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--cases", type=int, default=TEST_SPLIT_SIZE, help="cases of the test split (default: %(default)s)")
    p.add_argument("--method", choices=["optimize", "cmaes"], default=None,
                   help="the reference (default: the problem's optimizer where it has one, else cmaes)")
    p.add_argument("--workers", type=int, default=1, help="processes (the values do not depend on it)")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default: the package's references folder, for built-in envs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_id = resolve_env_id(args.env)
    out = args.out or shipped_references_path(env_id)
    command = shlex.join(["python", "scripts/make_references.py", *(argv if argv is not None else sys.argv[1:])])
    references = make_references(env_id, n=args.cases, method=args.method, workers=args.workers, progress=True,
                                 command=command)
    write_references(references, out)
    feasible = sum(c["reference_feasible"] for c in references.cases)
    print(f"{env_id}: {len(references.cases)} cases by {references.method}, reference feasible in {feasible}, "
          f"{references.made['seconds']:.0f} s of work; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
