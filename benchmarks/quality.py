"""Design quality on held-out conditions: a trained policy against SIMP and search in latent space.

For each env, a fixed set of conditions is drawn with its own seed (``--seed``; no training run
and no generator's data set draws from it). For each set of conditions every method makes one
design, judged by the env's problem:

- ``policy``: the agent's deterministic action, one step in direct mode (K steps in delta mode);
- ``policy+polish``: the same design after ``--polish`` SIMP iterations started from it
  (``PointLoadStructure.polish``), made binary at the volume budget;
- ``random`` / ``cmaes`` / ``tpe``: the best design of a search over the same action space,
  scored like the env's reward, read off at each of ``--budgets`` judged designs;
- ``nearest``: the generator's own rendition of the SIMP design (the encoder's mean latent,
  decoded with the conditions), the best a policy on this generator could hope for;
- ``simp``: ``Problem.optimize`` to convergence, the reference.

The latent methods decode through the agent's env settings (generator, repair), so all of them
are judged on the same terms. Reported per method: median and 90th-percentile compliance ratio to
SIMP (same conditions, same volume fraction), the share of designs whose volume is more than one
per cent off the target, with floating material, whose load reaches no support, and (AMBracket)
the mean overhang and member-size violations, the share meeting every rule, the median of the
env's score (its reward for the design in one step: the objective minus the weighted penalties,
what the policy and the searches both optimise), the share of cases in which the policy's design
scores at least as well as the method's ("policy >=", paired by case), evaluations per design and
the median wall time per design (both cores busy: the cases run in ``--workers`` processes, one
thread each).

The compliance ratio alone does not rank designs of an env with rules SIMP ignores (the bracket's
printability): a search that trades stiffness for printability has the worse ratio and the better
design. So "at least as good as CMA-ES" is judged on the env's score, case by case.

    python benchmarks/quality.py                                   # as in benchmarks/RESULTS.md
    python benchmarks/quality.py --envs designgym/Cantilever-v1 --cases 6 --budgets 1 10   # a quick look
    python benchmarks/quality.py --agent designgym/Cantilever-v1=runs/cant_sac/model.zip
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

METHOD_ORDER = ("policy", "policy+polish", "nearest", "random", "cmaes", "tpe", "simp")
_AGENTS: dict[str, Any] = {}
SEARCH_SEED_OFFSETS = {"random": 0, "cmaes": 1, "tpe": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["designgym/Cantilever-v1", "designgym/AMBracket-v3"])
    p.add_argument("--cases", type=int, default=50, help="held-out conditions per env")
    p.add_argument("--seed", type=int, default=20261123, help="draws the held-out conditions")
    p.add_argument("--budgets", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--methods", nargs="+", default=["random", "cmaes", "tpe"], choices=sorted(SEARCH_SEED_OFFSETS),
                   help="latent searches to run")
    p.add_argument("--agent", nargs="*", default=[], metavar="ENV=PATH",
                   help="the agent per env (default: the pretrained one shipped for it)")
    p.add_argument("--polish", type=int, default=10, help="SIMP iterations of the polish step")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pictures", type=int, default=4, help="cases drawn side by side per env")
    p.add_argument("--out", type=Path, default=Path("quality-results"), help="JSON of every case, and PNGs")
    return p.parse_args(argv)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _agent(env_id: str, path: str) -> Any:
    from designgym.agents.evaluation import load_agent

    if env_id not in _AGENTS:
        _AGENTS[env_id] = load_agent(path, env_id=env_id)
    return _AGENTS[env_id]


def run_case(env_id: str, agent_path: str, case: int, conditions: dict[str, Any], budgets: list[int],
             methods: list[str], polish: int, keep_designs: bool) -> list[dict[str, Any]]:
    """Every method on one set of conditions: one row per method (and budget)."""
    import gymnasium as gym
    import torch

    import designgym  # noqa: F401 (registers the envs)
    from designgym.agents.baselines import _reference, _score, search_anytime

    agent = _agent(env_id, agent_path)
    env = gym.make(env_id, **agent.env_kwargs)
    base = env.unwrapped
    problem = base.problem
    checked = problem.check_conditions(conditions)
    rows: list[dict[str, Any]] = []

    def record(method: str, design: np.ndarray, seconds: float, evaluations: int | None,
               budget: int | None = None, evaluation: Any = None) -> dict[str, Any]:
        evaluation = evaluation if evaluation is not None else problem.evaluate(design, checked)
        row = {
            "env": env_id, "case": case, "method": method, "budget": budget, "seconds": seconds,
            "evaluations": evaluations, "feasible": bool(evaluation.feasible),
            "objectives": evaluation.objectives, "violations": evaluation.violations,
            "volume_off": abs(evaluation.objectives["volume_fraction"] - checked["volfrac"]),
            "score": _score(base, evaluation),
        }
        if keep_designs:
            row["design"] = np.asarray(design, dtype=np.float32)
        rows.append(row)
        return row

    # SIMP first: it is the yardstick of every other row.
    start = time.perf_counter()
    simp_design, solves = _reference(problem, checked)
    simp_eval = problem.evaluate(simp_design, checked)
    record("simp", simp_design, time.perf_counter() - start, solves, evaluation=simp_eval)

    # The policy: the env step a user runs (predict, decode, repair, judge).
    obs, _ = env.reset(seed=case, options={"conditions": checked})
    start = time.perf_counter()
    done, steps = False, 0
    while not done:
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        steps += 1
        done = terminated or truncated
    seconds = time.perf_counter() - start
    policy_design = base.design.copy()
    record("policy", policy_design, seconds, steps, evaluation=base.evaluation)
    if polish > 0 and hasattr(problem, "polish"):
        start = time.perf_counter()
        polished = problem.polish(policy_design, checked, iterations=polish)
        evaluation = problem.evaluate(polished, checked)
        record("policy+polish", polished, seconds + time.perf_counter() - start, steps + polish,
               evaluation=evaluation)

    # The generator's nearest design to the SIMP one (encoder mean), through the same repair.
    generator = base.generator
    if hasattr(generator, "encode"):
        start = time.perf_counter()
        vector = base.generator_conditions(checked)
        vector = None if vector is None else vector[None, :]
        with torch.no_grad():
            mu, _ = generator.encode(torch.as_tensor(simp_design[None, :, :]),
                                     None if vector is None else torch.as_tensor(vector))
        z = np.clip(mu.numpy(), -base.latent_bound, base.latent_bound)
        design = base.finish_design(generator.decode_numpy(z, vector)[0], checked)
        record("nearest", design, time.perf_counter() - start, 1)

    for method in methods:
        # Each search's seed depends on the case and the method only, not on which other methods run.
        seed = 1000 * case + SEARCH_SEED_OFFSETS[method]
        for snap in search_anytime(base, checked, method, budgets, seed=seed):
            record(method, snap["design"], snap["seconds"], snap["budget"], budget=snap["budget"],
                   evaluation=snap["evaluation"])
    env.close()
    c_simp = simp_eval.objectives["compliance"]
    for row in rows:
        row["ratio"] = row["objectives"]["compliance"] / c_simp
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per (env, method, budget)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["env"], row["method"], row["budget"]), []).append(row)
    policy_score = {(r["env"], r["case"]): r["score"] for r in rows if r["method"] == "policy"}
    out = []
    for (env_id, method, budget), group in groups.items():
        paired = [policy_score[env_id, r["case"]] >= r["score"] for r in group if (env_id, r["case"]) in policy_score]
        ratios = np.array([r["ratio"] for r in group])
        violations = {k: np.array([r["violations"][k] for r in group]) for k in group[0]["violations"]}
        line = {
            "env": env_id, "method": method, "budget": budget, "cases": len(group),
            "ratio_median": float(np.median(ratios)), "ratio_p90": float(np.quantile(ratios, 0.9)),
            "volume_off_rate": float(np.mean([r["volume_off"] > 0.01 for r in group])),
            "floating_rate": float(np.mean(violations["floating_material"] > 0)),
            "load_path_rate": float(np.mean(violations["load_path"] > 0)),
            "feasible_rate": float(np.mean([r["feasible"] for r in group])),
            "score_median": float(np.median([r["score"] for r in group])),
            "policy_at_least_as_good": float(np.mean(paired)) if paired else float("nan"),
            "evaluations": float(np.mean([r["evaluations"] or 0 for r in group])),
            "seconds_median": float(np.median([r["seconds"] for r in group])),
        }
        for name in ("overhang", "member_size"):
            if name in violations:
                line[f"{name}_mean"] = float(violations[name].mean())
                line[f"{name}_rate"] = float(np.mean(violations[name] > 0))
        out.append(line)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    out.sort(key=lambda s: (s["env"], order.get(s["method"], 99), s["budget"] or 0))
    return out


def _ratio(value: float, width: int = 0) -> str:
    """A compliance ratio; a design whose load reaches no support has a meaningless one (1e6 and up)."""
    return f"{value:>{width}.3f}" if value < 1e3 else f"{'>1000':>{width}}"


def print_table(summary: list[dict[str, Any]]) -> None:
    for env_id in dict.fromkeys(s["env"] for s in summary):
        lines = [s for s in summary if s["env"] == env_id]
        am = "overhang_mean" in lines[0]
        print(f"\n{env_id} ({lines[0]['cases']} held-out conditions)")
        head = (f"{'method':<15}{'budget':>7}{'ratio med':>10}{'p90':>8}{'vol off':>8}{'floating':>9}"
                f"{'no path':>8}{'feasible':>9}" + (f"{'overhang':>9}{'member':>8}" if am else "")
                + f"{'score med':>10}{'policy >=':>10}{'evals':>8}{'s/design':>10}")
        print(head)
        for s in lines:
            budget = "" if s["budget"] is None else str(s["budget"])
            extra = f"{s['overhang_mean']:>9.3f}{s['member_size_mean']:>8.3f}" if am else ""
            print(f"{s['method']:<15}{budget:>7}{_ratio(s['ratio_median'], 10)}{_ratio(s['ratio_p90'], 8)}"
                  f"{s['volume_off_rate']:>8.2f}{s['floating_rate']:>9.2f}{s['load_path_rate']:>8.2f}"
                  f"{s['feasible_rate']:>9.2f}{extra}{s['score_median']:>10.3f}{s['policy_at_least_as_good']:>10.2f}"
                  f"{s['evaluations']:>8.0f}{s['seconds_median']:>10.4f}")


def targets(summary: list[dict[str, Any]], env_id: str) -> list[str]:
    """The quality targets, each with its figures and whether it is met."""
    lines = {(s["method"], s["budget"]): s for s in summary if s["env"] == env_id}
    policy, simp = lines.get(("policy", None)), lines.get(("simp", None))
    if policy is None or simp is None:
        return []
    out = []
    ok = policy["ratio_median"] <= 1.10 and policy["floating_rate"] == 0 and policy["volume_off_rate"] == 0
    out.append(f"median compliance within 10 % of SIMP, no floating material, volume within 1 %: "
               f"{'MET' if ok else 'NOT MET'} (median ratio {policy['ratio_median']:.3f}, floating "
               f"{policy['floating_rate']:.0%}, volume off {policy['volume_off_rate']:.0%}); stretch 5 %: "
               f"{'met' if ok and policy['ratio_median'] <= 1.05 else 'not met'}")
    cma = lines.get(("cmaes", 100))
    if cma is not None:
        # On the env's score, case by case: at least as good in at least half of the cases.
        share = cma["policy_at_least_as_good"]
        ok = share >= 0.5
        out.append(f"policy in 1 evaluation at least as good as CMA-ES with 100: {'MET' if ok else 'NOT MET'} "
                   f"(the policy's design scores at least as well in {share:.0%} of the cases; median score "
                   f"{policy['score_median']:.3f} against {cma['score_median']:.3f}, median compliance ratio "
                   f"{policy['ratio_median']:.3f} against {cma['ratio_median']:.3f})")
    speed = simp["seconds_median"] / policy["seconds_median"]
    out.append(f"at least 100x less wall time per design than SIMP: {'MET' if speed >= 100 else 'NOT MET'} "
               f"({speed:.0f}x: {policy['seconds_median'] * 1e3:.1f} ms against {simp['seconds_median']:.2f} s)")
    return out


def save_pictures(rows: list[dict[str, Any]], summary: list[dict[str, Any]], env_id: str, path: Path) -> None:
    """Rows of cases; columns: policy, policy+polish, the latent search of the best median score at its
    largest budget, SIMP."""
    import gymnasium as gym

    import designgym  # noqa: F401
    from designgym.agents.pictures import save_design_grid

    problem = gym.make(env_id).unwrapped.problem
    lines = [s for s in summary if s["env"] == env_id and s["method"] in ("random", "cmaes", "tpe")]
    columns = ["policy", "policy+polish"]
    best = None
    if lines:
        top = max(s["budget"] for s in lines)
        best = max((s for s in lines if s["budget"] == top), key=lambda s: s["score_median"])
    images, captions = [], []
    cases = sorted({r["case"] for r in rows if r["env"] == env_id and "design" in r})
    for case in cases:
        picked = {(r["method"], r["budget"]): r for r in rows if r["env"] == env_id and r["case"] == case}
        wanted = [(m, None) for m in columns] + ([(best["method"], best["budget"])] if best else []) + [("simp", None)]
        for method, budget in wanted:
            row = picked.get((method, budget))
            if row is None:
                continue
            conditions = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("condition/")}
            images.append(problem.render(row["design"], conditions))
            label = method if budget is None else f"{method} @{budget}"
            marks = "" if row["feasible"] else ", breaks a rule"
            captions.append(f"{label}\nC/C_simp {_ratio(row['ratio']).strip()}, score {row['score']:.2f}\n"
                            f"{row['seconds'] * 1e3:.0f} ms{marks}")
    title = f"{env_id}: held-out conditions, one row each"
    save_design_grid(path, images, captions, title=title, columns=len(columns) + (2 if best else 1),
                     legend=getattr(problem, "LEGEND", ()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import gymnasium as gym
    import torch

    import designgym
    from designgym.agents.evaluation import pretrained_path

    agents = dict(item.split("=", 1) for item in args.agent)
    env_ids = [designgym.make(e).spec.id for e in args.envs]
    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} cores, "
          f"{args.workers} worker processes; cases {args.cases}, budgets {args.budgets}, polish {args.polish}")
    args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    all_rows: list[dict[str, Any]] = []
    for env_id in env_ids:
        path = agents.get(env_id) or agents.get(env_id.split("/")[-1]) or str(pretrained_path(env_id))
        problem = gym.make(env_id).unwrapped.problem
        rng = np.random.default_rng(args.seed)
        conditions = [problem.sample_conditions(rng) for _ in range(args.cases)]
        started = time.perf_counter()
        rows: list[dict[str, Any]] = []
        with ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
            futures = [pool.submit(run_case, env_id, path, i, c, args.budgets, args.methods, args.polish,
                                   i < args.pictures) for i, c in enumerate(conditions)]
            for future in tqdm(as_completed(futures), total=len(futures), desc=env_id.split("/")[-1]):
                rows.extend(future.result())
        for row in rows:
            row.update({f"condition/{k}": v for k, v in conditions[row["case"]].items()})
        print(f"{env_id}: agent {path}; {time.perf_counter() - started:.0f} s")
        all_rows.extend(rows)
        summary = summarise(rows)
        save_json(args.out / "quality.json", all_rows, env_ids)  # minutes of searching are kept before drawing
        if args.pictures > 0:
            png = args.out / f"quality_{env_id.split('/')[-1]}.png"
            save_pictures(rows, summary, env_id, png)
            print(f"pictures: {png}")
    summary = summarise(all_rows)
    print_table(summary)
    verdicts = {e: targets(summary, e) for e in env_ids}
    for env_id, lines in verdicts.items():
        if lines:
            print(f"\ntargets on {env_id}:")
            for line in lines:
                print(f"  - {line}")
    save_json(args.out / "quality.json", all_rows, env_ids)
    print(f"every case: {args.out / 'quality.json'}")
    return 0


def save_json(path: Path, rows: list[dict[str, Any]], env_ids: list[str]) -> None:
    """Every case (designs left out), the summary and the verdicts, replaced whole."""
    from designgym.agents.files import write_text_atomic

    summary = summarise(rows)
    verdicts = {e: targets(summary, e) for e in env_ids}
    plain = [{k: v for k, v in r.items() if k != "design"} for r in rows]
    write_text_atomic(path, json.dumps(
        {"argv": sys.argv[1:], "summary": summary, "targets": verdicts, "cases": plain}, indent=1,
        default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))


if __name__ == "__main__":
    raise SystemExit(main())
