"""The suite's headline table: every method on every env, judged by the suite's score.

For each env, on its 200-case test split (designgym.agents.scoring):

- agents trained for ``--steps`` env steps with ``--seeds`` seeds each: search distillation
  (``distill``, the suite's recipe), PPO and SAC, with the shipped hyperparameters; each scored by
  its deterministic one-shot design per case;
- latent searches from the centre, ranked feasible first (random, CMA-ES, TPE), read off at
  ``--budgets`` judged designs per case (the largest budget on the first ``--top-cases`` cases
  only, to save time: on the structures it is most of the benchmark's finite-element solves);
- the reference (the shipped reference values: SIMP, or a 1,000-design CMA-ES with other seeds);
- the agent shipped in the package for the env (the recipe at its own budget, seed 0; its
  sidecar says how many steps), unless ``--no-shipped``.

Every row: the normalized score's interquartile mean over cases (and seeds) with its 95 %
bootstrap interval, the feasible rate, milliseconds per design (an agent: one episode; a search:
its wall time to that budget; the reference: its own), and for agents the share of cases where the
design is at least as good as CMA-ES's at 100 designs (paired by case; the mean over seeds).

Each piece of work is written to ``--out`` as it finishes and skipped when run again, so an
interrupted run continues where it stopped. ``--workers`` processes share the pieces, and so do
several runs of the script on one ``--out`` folder (each claims the pieces it takes). The table
goes to ``<out>/table.md`` and ``<out>/table.json``; ``--picture`` draws designs side by side.

    python benchmarks/score.py --workers 2                     # the table in RESULTS.md (hours on 2 cores)
    python benchmarks/score.py --envs MBB-v2 --steps 3000 --seeds 0 --budgets 1 10 --out /tmp/score
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

ALGOS = ("distill", "ppo", "sac")
METHODS = ("random", "cmaes", "tpe")
#: Search seeds: case ``i`` of method ``METHODS[k]`` is seeded ``SEARCH_SEED + 1000 * k + i``.
SEARCH_SEED = 500_000
CHUNK = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=None, help="env ids (default: every built-in env)")
    p.add_argument("--algos", nargs="*", default=list(ALGOS))
    p.add_argument("--steps", type=int, default=30_000, help="env steps of every agent (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--budgets", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--top-cases", type=int, default=50,
                   help="cases on which the searches run to the largest budget (default: %(default)s)")
    p.add_argument("--cases", type=int, default=None, help="first cases of the test split only (default: all)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/score"))
    p.add_argument("--picture", type=Path, default=None, help="PNG of designs side by side (test case 0 of each env)")
    p.add_argument("--no-shipped", dest="shipped", action="store_false",
                   help="leave out the row of the agent shipped in the package")
    p.add_argument("--table-only", action="store_true", help="write the table from what is done; run nothing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import designgym
    from designgym.agents.scoring import TEST_SPLIT_SIZE
    from designgym.envs.registration import resolve_env_id

    envs = [resolve_env_id(e) for e in (args.envs or designgym.list_envs())]
    n_cases = args.cases or TEST_SPLIT_SIZE
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for env_id in envs:
        for method in args.methods:
            k = METHODS.index(method)  # by the method, not its place in --methods: `--methods cmaes` repeats a full run
            for first in range(0, n_cases, CHUNK):
                last = min(first + CHUNK, n_cases)
                top = max(args.budgets)
                if first >= args.top_cases:
                    top = max([b for b in args.budgets if b < max(args.budgets)] or [top])
                budgets = sorted(b for b in args.budgets if b <= top)
                path = args.out / "searches" / f"{_name(env_id)}-{method}-{first:03d}.json"
                jobs.append(("search", path, (env_id, method, k, first, last, budgets)))
        for algo in args.algos:
            for seed in args.seeds:
                path = args.out / "agents" / f"{_name(env_id)}-{algo}-s{seed}.json"
                jobs.append(("agent", path, (env_id, algo, seed, args.steps, n_cases, str(args.out / "runs"))))
        if args.shipped:
            jobs.append(("shipped", args.out / "agents" / f"{_name(env_id)}-shipped.json", (env_id, n_cases)))
    todo = [job for job in jobs if not job[1].exists()]
    if not args.table_only and todo:
        # Env by env in the order given; within an env the longest first, so that workers finish together.
        rank = {kind: k for k, kind in enumerate(("shipped", "agent", "search"))}
        todo.sort(key=lambda job: (envs.index(job[2][0]), rank[job[0]], job[1].name))
        print(f"{len(todo)} of {len(jobs)} pieces to do, {args.workers} worker(s)", file=sys.stderr)
        _run(todo, args.workers)
    table = make_table(envs, args, n_cases)
    (args.out / "table.json").write_text(json.dumps(table, indent=1) + "\n")
    markdown = table_markdown(table, args)
    (args.out / "table.md").write_text(markdown)
    print(markdown)
    if args.picture is not None:
        draw_picture(envs, args, args.picture)
    return 0


def _name(env_id: str) -> str:
    return env_id.split("/")[-1]


def _run(jobs: list[tuple[str, Path, tuple]], workers: int) -> None:
    from tqdm import tqdm

    if workers <= 1:
        for job in tqdm(jobs, desc="pieces", unit="piece"):
            _do(job)
        return
    context = multiprocessing.get_context("spawn")  # a forked child of a torch process can hang in OpenMP
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
        futures = [pool.submit(_do, job) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="pieces", unit="piece"):
            future.result()


def _start_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _do(job: tuple[str, Path, tuple]) -> None:
    kind, path, spec = job
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or not _claim(path):
        return  # done meanwhile, or another score.py on this folder is on it
    try:
        result = _search_piece(*spec) if kind == "search" else _shipped_piece(*spec) if kind == "shipped" \
            else _agent_piece(*spec)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result) + "\n")
        tmp.replace(path)
    finally:
        path.with_suffix(".claim").unlink(missing_ok=True)


def _claim(path: Path) -> bool:
    """Take ``path``'s piece for this process; False if a live process on this machine holds it.

    Several runs of this script may share one --out folder (each takes the pieces nobody holds);
    the claim of a process that died is taken over."""
    claim = path.with_suffix(".claim")
    for _ in range(2):
        try:
            with open(claim, "x") as handle:
                handle.write(str(os.getpid()))
            return True
        except FileExistsError:
            try:
                holder = int(claim.read_text() or 0)
                os.kill(holder, 0)
                return False
            except (ValueError, ProcessLookupError, FileNotFoundError):
                claim.unlink(missing_ok=True)  # its holder is gone
            except PermissionError:
                return False
    return False


def _search_piece(env_id: str, method: str, k: int, first: int, last: int, budgets: list[int]) -> dict[str, Any]:
    import gymnasium as gym

    from designgym.agents.scoring import _objective, _reset_options, test_split
    from designgym.agents.search import search

    env = gym.make(env_id).unwrapped
    cases = test_split(env_id, last)[first:last]
    rows = []
    for i, case in enumerate(cases, start=first):
        env.reset(options=_reset_options(case))
        snapshots = search(env, env.conditions, method, budgets, seed=SEARCH_SEED + 1000 * k + i)
        rows.append({"case": i, "budgets": {
            str(s["budget"]): {"objective": _objective(env, s["evaluation"].objectives), "feasible": s["feasible"],
                               "evaluations_to_best": s["evaluations_to_best"], "seconds": s["seconds"]}
            for s in snapshots}})
    env.close()
    return {"env": env_id, "method": method, "rows": rows}


def _agent_piece(env_id: str, algo: str, seed: int, steps: int, n_cases: int, runs: str) -> dict[str, Any]:
    import shutil

    from designgym.agents.evaluation import load_agent
    from designgym.agents.scoring import score_policy
    from designgym.agents.training import TrainConfig, train

    name = f"{_name(env_id)}-{algo}-s{seed}"
    shutil.rmtree(Path(runs) / name, ignore_errors=True)  # a piece killed half-way starts again
    started = time.perf_counter()
    result = train(TrainConfig(env=env_id, algo=algo, timesteps=steps, seed=seed, out=runs, run_name=name,
                               eval_freq=0, save_freq=0, eval_episodes=8, threads=1))
    seconds = time.perf_counter() - started
    agent = load_agent(result.run_dir)
    scored = score_policy(env_id, agent.act, n_cases=n_cases)
    return {"env": env_id, "algo": algo, "seed": seed, "steps": result.metrics["timesteps"],
            "train_seconds": seconds, "ms_per_design": scored["ms_per_design"],
            "rows": [{"case": r["case"], "objective": r["score"], "feasible": r["feasible"]} for r in scored["cases"]]}


def _shipped_piece(env_id: str, n_cases: int) -> dict[str, Any]:
    from designgym.agents.evaluation import load_agent, pretrained_path
    from designgym.agents.scoring import score_policy

    card = json.loads(pretrained_path(env_id).with_suffix(".json").read_text())
    scored = score_policy(env_id, load_agent("pretrained", env_id=env_id).act, n_cases=n_cases)
    return {"env": env_id, "algo": "shipped", "seed": card["seed"], "steps": card["timesteps"],
            "train_seconds": card["train_seconds"], "ms_per_design": scored["ms_per_design"],
            "rows": [{"case": r["case"], "objective": r["score"], "feasible": r["feasible"]} for r in scored["cases"]]}


# -- the table --------------------------------------------------------------------------------------


def make_table(envs: list[str], args: argparse.Namespace, n_cases: int) -> dict[str, Any]:
    from designgym.agents.scoring import aggregate, at_least_as_good, shipped_references

    table: dict[str, Any] = {"steps": args.steps, "seeds": args.seeds, "cases": n_cases, "envs": {}}
    for env_id in envs:
        refs = shipped_references(env_id)
        rows: dict[str, dict[str, Any]] = {}

        def norm(objectives: np.ndarray, feasible: np.ndarray, refs: Any = refs) -> np.ndarray:
            return np.array([[refs.normalize(i, o, f) for i, (o, f) in enumerate(zip(oo, ff, strict=True))]
                             for oo, ff in zip(objectives, feasible, strict=True)], dtype=float)

        searches = _load_searches(args.out, env_id)
        anchor = None
        for method, per_case in searches.items():
            for budget in args.budgets:
                # the largest budget may cover the first --top-cases cases only: score those, and say so
                index = [i for i in sorted(per_case) if i < n_cases and str(budget) in per_case[i]["budgets"]]
                if not index or index != list(range(len(index))):
                    continue
                got = [per_case[i]["budgets"][str(budget)] for i in index]
                scores = norm(np.array([[g["objective"] for g in got]]), np.array([[g["feasible"] for g in got]]))
                rows[f"{method}@{budget}"] = _row(scores, [g["feasible"] for g in got],
                                                  1000 * float(np.mean([g["seconds"] for g in got])))
                rows[f"{method}@{budget}"]["cases"] = len(index)
                if method == "cmaes" and budget == 100 and len(index) == n_cases:
                    anchor = scores[0]
        for algo in [*args.algos, "shipped"]:
            if algo == "shipped":
                runs = [_read(args.out / "agents" / f"{_name(env_id)}-shipped.json")]
            else:
                runs = [_read(args.out / "agents" / f"{_name(env_id)}-{algo}-s{seed}.json") for seed in args.seeds]
            runs = [r for r in runs if r is not None]
            if not runs:
                continue
            objective = np.array([[c["objective"] for c in r["rows"]] for r in runs])
            feasible = np.array([[c["feasible"] for c in r["rows"]] for r in runs])
            scores = norm(objective, feasible)
            row = _row(scores, feasible.ravel().tolist(), float(np.mean([r["ms_per_design"] for r in runs])))
            row.update(seeds=len(runs), train_seconds=float(np.mean([r["train_seconds"] for r in runs])),
                       per_seed_iqm=[aggregate(s[None, :], resamples=200)["iqm"] for s in scores],
                       per_seed_feasible=[float(f.mean()) for f in feasible])
            if anchor is not None and len(anchor) == scores.shape[1]:
                row["vs_cmaes100"] = float(np.mean([at_least_as_good(s, anchor) for s in scores]))
                row["vs_cmaes100_per_seed"] = [at_least_as_good(s, anchor) for s in scores]
            if algo == "shipped":
                row["steps"] = runs[0]["steps"]
            rows[algo] = row
        cases = refs.cases[:n_cases]
        ref_scores = norm(np.array([[c["reference"] for c in cases]]),
                          np.array([[c["reference_feasible"] for c in cases]]))
        rows["reference"] = _row(ref_scores, [c["reference_feasible"] for c in cases],
                                 1000 * float(np.mean([c["seconds"] for c in cases])))
        rows["reference"]["method"] = refs.method
        table["envs"][env_id] = {"reference": refs.method, "rows": rows}
    return table


def _row(scores: np.ndarray, feasible: list[bool], ms: float) -> dict[str, Any]:
    from designgym.agents.scoring import aggregate

    summary = aggregate(scores)
    return {"iqm": summary["iqm"], "ci": summary["ci"], "median": summary["median"],
            "feasible_rate": float(np.mean(feasible)), "ms_per_design": ms}


def _load_searches(out: Path, env_id: str) -> dict[str, dict[int, dict[str, Any]]]:
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted((out / "searches").glob(f"{_name(env_id)}-*.json")):
        data = _read(path)
        if data is None or data["env"] != env_id:
            continue
        for row in data["rows"]:
            found.setdefault(data["method"], {})[row["case"]] = row
    return found


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def table_markdown(table: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [f"Agents: {table['steps']:,} env steps, seeds {table['seeds']}; {table['cases']} test cases per env.", ""]
    lines += ["| env | method | normalized score IQM [95% CI] | feasible | ms/design | >= CMA-ES@100 |",
              "|---|---|---|---|---|---|"]
    order = [*args.algos, "shipped", *[f"{m}@{b}" for m in args.methods for b in args.budgets], "reference"]
    for env_id, entry in table["envs"].items():
        for name in order:
            row = entry["rows"].get(name)
            if row is None:
                continue
            label = {"reference": f"reference ({entry['reference']})",
                     "shipped": f"shipped agent (distill, {row.get('steps', 0):,} steps, seed 0)"}.get(name, name)
            if row.get("cases", table["cases"]) < table["cases"]:
                label += f" (first {row['cases']} cases)"
            paired = f"{row['vs_cmaes100']:.0%}" if "vs_cmaes100" in row else ""
            lines.append(f"| {_name(env_id)} | {label} | {row['iqm']:.1f} [{row['ci'][0]:.1f}, {row['ci'][1]:.1f}] | "
                         f"{row['feasible_rate']:.1%} | {row['ms_per_design']:.1f} | {paired} |")
    return "\n".join(lines) + "\n"


# -- the picture ------------------------------------------------------------------------------------


def draw_picture(envs: list[str], args: argparse.Namespace, path: Path, cases: tuple[int, ...] = (0,)) -> None:
    """Designs side by side: per env and case, the recipe's, PPO's and SAC's (seed 0), the shipped
    agent's, CMA-ES at 100 and the reference, each captioned with its normalized score."""
    import gymnasium as gym

    from designgym.agents.evaluation import load_agent
    from designgym.agents.pictures import save_design_grid
    from designgym.agents.scoring import _objective, _reset_options, shipped_references, test_split
    from designgym.agents.search import search

    images, captions = [], []
    columns = [*args.algos, *(["shipped"] if args.shipped else []), "cmaes@100", "reference"]
    for env_id in envs:
        refs = shipped_references(env_id)
        env = gym.make(env_id)
        base = env.unwrapped
        split = test_split(env_id, max(cases) + 1)
        for i in cases:
            case = split[i]
            for column in columns:
                base.reset(options=_reset_options(case))
                conditions = dict(base.conditions)
                if column in (*ALGOS, "shipped"):
                    run = args.out / "runs" / f"{_name(env_id)}-{column}-s{args.seeds[0]}"
                    agent = load_agent("pretrained", env_id=env_id) if column == "shipped" else load_agent(run)
                    obs, _ = env.reset(options=_reset_options(case))
                    done = False
                    while not done:
                        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
                        done = terminated or truncated
                    design, evaluation = base.design.copy(), base.evaluation
                elif column == "cmaes@100":
                    seed = SEARCH_SEED + 1000 * METHODS.index("cmaes") + i
                    best = search(base, conditions, "cmaes", [100], seed=seed)[0]
                    design, evaluation = best["design"], best["evaluation"]
                else:
                    design, evaluation = _reference_design(base, refs, i, conditions)
                score = refs.normalize(i, _objective(base, evaluation.objectives), evaluation.feasible)
                status = "meets every rule" if evaluation.feasible else textwrap.fill("breaks " + ", ".join(
                    k for k, v in evaluation.violations.items() if v > 1e-9), width=38)
                images.append(base.problem.render(design, conditions))
                label = "shipped agent" if column == "shipped" else column
                captions.append(f"{_name(env_id)} case {i}: {label}\nscore {score:.0f}, {status}")
        env.close()
    save_design_grid(path, images, captions, columns=len(columns),
                     title=textwrap.fill(
                         f"Designs for held-out test cases: agents after {args.steps:,} env steps (seed "
                         f"{args.seeds[0]}), the shipped agent, CMA-ES at 100 designs and the reference; "
                         "normalized score 0 = the trivial or start design or a broken rule, 100 = the reference",
                         width=110))


def _reference_design(env: Any, refs: Any, index: int, conditions: dict[str, Any]) -> tuple[np.ndarray, Any]:
    from designgym.agents.scoring import REFERENCE_SEARCH, REFERENCE_SEARCH_SEED
    from designgym.agents.search import gated_key, search

    if refs.method == "optimize":
        design = env.finish_design(np.asarray(env.problem.optimize(conditions), dtype=np.float32), conditions)
        return design, env.problem.evaluate(design, conditions)
    best = search(env, conditions, "cmaes", [REFERENCE_SEARCH["budget"]], seed=REFERENCE_SEARCH_SEED + index,
                  sigma=REFERENCE_SEARCH["sigma"])[0]
    start = env.start_design(), env.start_evaluation()  # the reference where it is better
    if gated_key(start[1].feasible, env.design_score(start[1])) > gated_key(best["feasible"], best["score"]):
        return start
    return best["design"], best["evaluation"]


if __name__ == "__main__":
    raise SystemExit(main())
