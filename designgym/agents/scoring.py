"""The suite's score: one protocol that judges every agent and every search on every env.

After D4RL's normalized returns, Design-Bench's normalized percentiles and rliable's interval
estimates, with feasibility added:

- **Test split.** Each env has a fixed list of :data:`TEST_SPLIT_SIZE` cases (conditions, and the
  start latent where the env draws one), drawn by the env's own :meth:`sample_case` from seed
  streams of their own (``SeedSequence(TEST_SPLIT_SEED, spawn_key=(i,))``). Training draws come
  from ``SeedSequence(seed)`` streams without a spawn key, so the two never share a stream.
- **Feasibility gate.** A design that breaks any rule scores 0, whatever its objective.
- **Normalization per case.** A feasible design scores ``100 (f - f0) / (f_ref - f0)`` of its
  reward objective ``f`` (the problem's objective, higher is better), floored at 0 so that no
  feasible design ranks below an infeasible one. ``f0`` is what anyone gets for free: the
  objective of the problem's trivial design where it has one (:meth:`Problem.trivial_objective`:
  the uniform plate of the target volume for the structures, log stiffness gain 0; the solid
  square bar for the extrusion, relative stiffness 1), else the case's start design (what a reset
  shows; for direct-mode envs the design of the zero latent). ``f_ref`` is the reference:
  the problem's classical optimizer where it has one (its design finished as the env finishes
  designs), else the best of the start design and a 1,000-design CMA-ES latent search ranked
  feasible first. Where a search reference found no feasible design, the case's scale is the
  median ``f_ref - f0`` of the cases where it did.
- **Aggregates.** The interquartile mean over cases (and training seeds) with a 95 % percentile
  bootstrap interval that resamples the cases and, where there are several, the seeds; the
  feasible rate; milliseconds per design.

Reference values are computed once (:func:`make_references`, ``scripts/make_references.py``),
shipped in ``designgym/agents/references/<Env>.json`` with the settings and command that made
them, and looked up when scoring, so scoring an agent costs one episode per case.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from designgym.agents.files import plain
from designgym.envs.registration import resolve_env_id

#: Cases of each env's test split.
TEST_SPLIT_SIZE = 200
#: Entropy of the test split's seed streams (case ``i`` draws from ``SeedSequence(TEST_SPLIT_SEED, spawn_key=(i,))``).
TEST_SPLIT_SEED = 20261202
#: The reference search where a problem has no classical optimizer.
REFERENCE_SEARCH = {"method": "cmaes", "budget": 1000, "sigma": 0.5}
#: Case ``i``'s reference search is seeded ``REFERENCE_SEARCH_SEED + i`` (apart from the baselines' seeds).
REFERENCE_SEARCH_SEED = 900_000
REFERENCES_DIR = Path(__file__).parent / "references"
BOOTSTRAP_RESAMPLES = 2000


# -- the test split ---------------------------------------------------------------------------


def case_rng(index: int) -> np.random.Generator:
    """The generator test case ``index`` is drawn with."""
    return np.random.default_rng(np.random.SeedSequence(TEST_SPLIT_SEED, spawn_key=(int(index),)))


def test_split(env_id: str, n: int = TEST_SPLIT_SIZE, env_kwargs: Mapping[str, Any] | None = None
               ) -> list[dict[str, Any]]:
    """The env's first ``n`` test cases: dicts with ``"conditions"`` (and ``"latent"`` where the env
    starts from a drawn latent), each one ``reset(options=case)`` away from its episode."""
    if n < 1:
        raise ValueError(f"a test split has at least one case, got n={n}")
    env = gym.make(resolve_env_id(env_id), **dict(env_kwargs or {}))
    try:
        return [env.unwrapped.sample_case(case_rng(i)) for i in range(n)]
    finally:
        env.close()


test_split.__test__ = False  # a function of the library, not a test for pytest to collect


# -- reference values ---------------------------------------------------------------------------


@dataclass
class References:
    """The anchors of one env's cases: ``start`` (f0) and ``reference`` (f_ref) per case.

    Attributes:
        env: the env id they were made for.
        method: ``"optimize"`` (the problem's classical optimizer) or ``"cmaes"`` (latent search).
        cases: one dict per case: ``conditions``, ``latent`` (if any), ``anchor`` (f0),
            ``start`` (the start design's objective, which scoring checks), ``start_feasible``,
            ``reference``, ``reference_feasible``, ``seconds``.
        made: how they were made (settings, command, machine, versions).
    """

    env: str
    method: str
    cases: list[dict[str, Any]]
    made: dict[str, Any]

    def span(self, index: int) -> float | None:
        """``f_ref - f0`` of case ``index``, or the fallback scale where the case has none."""
        case = self.cases[index]
        own = _own_span(case, self.method)
        return own if own is not None else self.fallback_span

    @property
    def fallback_span(self) -> float | None:
        spans = [s for s in (_own_span(c, self.method) for c in self.cases) if s is not None]
        return float(np.median(spans)) if spans else None

    def normalize(self, index: int, objective: float, feasible: bool) -> float | None:
        """The normalized score of a design with reward objective ``objective`` for case ``index``;
        ``None`` when no case of the env has a usable reference."""
        if not feasible:
            return 0.0
        span = self.span(index)
        if span is None:
            return None
        return max(0.0, 100.0 * (objective - self.cases[index]["anchor"]) / span)

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "method": self.method, "made": self.made, "cases": self.cases}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> References:
        return cls(str(data["env"]), str(data["method"]), list(data["cases"]), dict(data.get("made") or {}))

    @classmethod
    def load(cls, path: str | Path) -> References:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reference file {path} does not exist")
        try:
            data = json.loads(path.read_text())
            return cls.from_json(data)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path} is not a designgym reference file ({type(exc).__name__}: {exc}); make one "
                             "with scripts/make_references.py") from None


def _own_span(case: Mapping[str, Any], method: str) -> float | None:
    if method != "optimize" and not case["reference_feasible"]:
        return None  # a search that found nothing legal sets no scale
    span = float(case["reference"]) - float(case["anchor"])
    return span if span > 1e-9 * max(1.0, abs(float(case["reference"]))) else None


def shipped_references_path(env_id: str) -> Path:
    return REFERENCES_DIR / f"{env_id.split('/')[-1]}.json"


def shipped_references(env_id: str) -> References:
    """The reference values shipped for a built-in env's test split, or a clear error."""
    env_id = resolve_env_id(env_id)
    path = shipped_references_path(env_id)
    if not path.is_file() or not env_id.startswith("designgym/"):
        raise FileNotFoundError(
            f"no reference values ship for {env_id}; make them once with `python scripts/make_references.py "
            f"--env {env_id} --out refs.json` (or designgym.agents.scoring.make_references) and pass "
            "--references refs.json"
        )
    references = References.load(path)
    if references.env != env_id:
        raise ValueError(f"{path} holds references for {references.env}, not {env_id}")
    return references


def reference_method(problem: Any) -> str:
    """``"optimize"`` where the problem has a classical optimizer, else ``"cmaes"``."""
    return "cmaes" if type(problem).optimize is _base_optimize() else "optimize"


def _base_optimize() -> Any:
    from designgym.envs.problem import Problem

    return Problem.optimize


def reference_case(env: Any, case: Mapping[str, Any], index: int, method: str) -> dict[str, Any]:
    """The anchors of one case for an unwrapped env: its start design's objective, and the
    reference design's objective (``method`` ``"optimize"`` or ``"cmaes"``)."""
    from designgym.agents.search import gated_key, judge, search

    started = time.perf_counter()
    conditions = env.problem.check_conditions(case["conditions"])
    _, info = env.reset(options=_reset_options(case))
    name = env.problem.objective.name
    start_evaluation = env.start_evaluation()
    start = _objective(env, start_evaluation.objectives)
    row: dict[str, Any] = {"case": index, "conditions": plain(conditions)}
    if "latent" in case:
        row["latent"] = plain(np.asarray(case["latent"], dtype=np.float32))
    trivial = env.problem.trivial_objective(conditions)
    row.update(anchor=start if trivial is None else float(trivial), start=start,
               start_feasible=bool(start_evaluation.feasible))
    if method == "optimize":
        raw = np.asarray(env.problem.optimize(conditions))
        design = env.finish_design(raw.astype(np.float32), conditions)
        evaluation = env.problem.evaluate(design, conditions)
        row.update(reference=_objective(env, evaluation.objectives), reference_feasible=bool(evaluation.feasible),
                   reference_raw=_objective(env, env.problem.evaluate(raw, conditions).objectives))
    elif method == "cmaes":
        best = search(env, conditions, "cmaes", [REFERENCE_SEARCH["budget"]], seed=REFERENCE_SEARCH_SEED + index,
                      sigma=REFERENCE_SEARCH["sigma"])[0]
        start_action = np.asarray(info["latent"], dtype=np.float32)
        start_judged = judge(env, start_action[None, :], conditions)
        if gated_key(start_judged.feasible[0], start_judged.scores[0]) > gated_key(best["feasible"], best["score"]):
            best = {"evaluation": start_judged.evaluations[0], "feasible": bool(start_judged.feasible[0])}
        row.update(reference=_objective(env, best["evaluation"].objectives), reference_feasible=best["feasible"])
    else:
        raise ValueError(f"unknown reference method {method!r}; choose optimize or cmaes")
    row["objective"] = name
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _objective(env: Any, objectives: Mapping[str, float]) -> float:
    """The reward objective as a number where higher is better, in the problem's own units."""
    spec = env.problem.objective
    return float(spec.score(objectives) * spec.scale)


def make_references(
    env_id: str,
    cases: Sequence[Mapping[str, Any]] | None = None,
    n: int = TEST_SPLIT_SIZE,
    method: str | None = None,
    workers: int = 1,
    progress: bool = False,
    env_kwargs: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> References:
    """Reference values for ``cases`` (default: the env's test split of ``n`` cases).

    ``method`` defaults to the problem's optimizer where it has one, else the latent search.
    ``workers`` > 1 shares the cases among processes; each case is seeded by its index, so the
    values do not depend on it.
    """
    import platform

    import torch

    env_id = resolve_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    split = cases is None
    cases = test_split(env_id, n, env_kwargs) if cases is None else [dict(c) for c in cases]
    env = gym.make(env_id, **env_kwargs)
    method = method or reference_method(env.unwrapped.problem)
    env.close()
    if method not in ("optimize", "cmaes"):
        raise ValueError(f"unknown reference method {method!r}; choose optimize or cmaes")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from tqdm.auto import tqdm

    jobs = [(env_id, env_kwargs, case, i, method) for i, case in enumerate(cases)]
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(jobs), desc=f"references of {env_id}", unit="case", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                rows.append(_reference_job(job))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: a forked child of a process whose OpenMP threads have started can hang.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker) as pool:
                for row in pool.map(_reference_job, jobs, chunksize=4):
                    rows.append(row)
                    bar.update()
    made = {
        "test_split": {"seed": TEST_SPLIT_SEED, "size": len(rows)} if split else None,
        "search": {**REFERENCE_SEARCH, "seed": f"{REFERENCE_SEARCH_SEED} + case"} if method == "cmaes" else None,
        "optimizer": "the problem's optimize(), finished as the env finishes designs" if method == "optimize" else None,
        "env_kwargs": env_kwargs,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cores()} cores",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
        "seconds": round(sum(r["seconds"] for r in rows), 1),
    }
    return References(env_id, method, rows, made)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_WORKER_ENVS: dict[str, Any] = {}


def _start_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _reference_job(job: tuple) -> dict[str, Any]:
    env_id, env_kwargs, case, index, method = job
    key = json.dumps([env_id, env_kwargs], sort_keys=True, default=str)
    if key not in _WORKER_ENVS:
        _WORKER_ENVS[key] = gym.make(env_id, **env_kwargs).unwrapped
    return reference_case(_WORKER_ENVS[key], case, index, method)


def write_references(references: References, path: str | Path) -> Path:
    from designgym.agents.files import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(references.to_json(), indent=1) + "\n")


# -- scoring a policy -----------------------------------------------------------------------------


def score_policy(
    env_id: str,
    act: Callable[[Any], np.ndarray],
    cases: Sequence[Mapping[str, Any]] | None = None,
    references: References | str | Path | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
    n_cases: int = TEST_SPLIT_SIZE,
) -> dict[str, Any]:
    """Score a policy ``act(observation) -> action`` (deterministic) on the env's test split (its
    first ``n_cases``), or on ``cases`` (dicts with ``"conditions"``, or bare conditions dicts).

    For the test split the shipped references are used (or ``references``); for other cases they
    are made now, by the same method, unless given. Returns the public JSON of ``designgym score``:
    ``env``, ``cases_from``, ``feasible_rate``, ``normalized_score`` (``iqm``, ``ci``, ``mean``,
    ``median``), ``ms_per_design`` and ``cases`` (each with ``conditions``, ``feasible``,
    ``score`` (the design's reward objective), ``normalized``, ``objectives`` and ``violations``).
    """
    env_id = resolve_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    env = gym.make(env_id, **env_kwargs)
    base = env.unwrapped
    try:
        if cases is None:
            cases = test_split(env_id, n_cases, env_kwargs=env_kwargs)
            cases_from = "test split"
            refs = _as_references(references) if references is not None else shipped_references(env_id)
            if len(refs.cases) < len(cases):
                raise ValueError(f"the references of {env_id} hold {len(refs.cases)} cases, the test split "
                                 f"{len(cases)}; remake them with scripts/make_references.py")
        else:
            cases = [_as_case(base, c, i) for i, c in enumerate(cases)]
            if not cases:
                raise ValueError("no cases to score: the conditions list is empty")
            cases_from = "given"
            refs = _as_references(references) if references is not None else None
        rows, seconds = [], []
        from tqdm.auto import tqdm

        for i, case in enumerate(tqdm(cases, desc=f"scoring on {env_id}", unit="case", disable=not progress)):
            started = time.perf_counter()
            obs, info = env.reset(options=_reset_options(case))
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(act(obs))
                done = terminated or truncated
            seconds.append(time.perf_counter() - started)
            start_objective = _objective(base, base.start_evaluation().objectives)  # for the anchors' check
            rows.append({"case": i, "conditions": plain(info["conditions"]),
                         "feasible": bool(info["feasible"]), "score": _objective(base, info["objectives"]),
                         "start": start_objective, "objectives": dict(info["objectives"]),
                         "violations": dict(info["violations"])})
        if refs is None:  # given cases: references made now, as the shipped ones were made
            refs = make_references(env_id, cases=cases, env_kwargs=env_kwargs, progress=progress)
            references_from = f"made now ({refs.method})"
        else:
            references_from = "shipped" if references is None else str(references)
        _check_anchors(refs, rows, env_id)
        for row in rows:
            row["normalized"] = refs.normalize(row["case"], row["score"], row["feasible"])
            del row["start"]
    finally:
        env.close()
    normalized = [r["normalized"] for r in rows]
    summary = aggregate(np.array([normalized], dtype=float)) if None not in normalized else None
    return {
        "env": env_id,
        "cases_from": cases_from,
        "references": references_from,
        "reference_method": refs.method,
        "n_cases": len(rows),
        "feasible_rate": float(np.mean([r["feasible"] for r in rows])),
        "normalized_score": summary,
        "ms_per_design": 1000.0 * float(np.mean(seconds)),
        "cases": rows,
    }


def _as_references(value: References | str | Path) -> References:
    return value if isinstance(value, References) else References.load(value)


def _as_case(env: Any, given: Mapping[str, Any], index: int) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise ValueError(f"case {index} must be a JSON object of conditions, got {type(given).__name__}")
    if "conditions" in given:
        unknown = sorted(set(given) - {"conditions", "latent"})
        if unknown:
            raise ValueError(f"case {index} has unknown key(s) {unknown}; a case holds 'conditions' (and 'latent')")
        conditions, case = given["conditions"], {k: v for k, v in given.items() if k == "latent"}
    else:
        conditions, case = given, {}
    full = {**env.problem.default_conditions(), **env.fixed_conditions, **dict(conditions)}
    try:
        case["conditions"] = env.problem.check_conditions(full)
    except ValueError as exc:
        raise ValueError(f"case {index}: {exc}") from None
    return case


def _reset_options(case: Mapping[str, Any]) -> dict[str, Any]:
    options = {"conditions": dict(case["conditions"])}
    if case.get("latent") is not None:
        options["latent"] = np.asarray(case["latent"], dtype=np.float32)
    return options


def _check_anchors(refs: References, rows: list[dict[str, Any]], env_id: str) -> None:
    """The start design of each case must be the one the references were made from: a changed
    generator, env argument or test split would otherwise shift every score without a word."""
    for row in rows:
        if row["case"] >= len(refs.cases):
            raise ValueError(f"the references hold {len(refs.cases)} cases, fewer than the {len(rows)} scored")
        expected = float(refs.cases[row["case"]]["start"])
        if not math.isclose(row["start"], expected, rel_tol=1e-5, abs_tol=1e-6):
            raise ValueError(
                f"the references of {env_id} do not fit this env: case {row['case']}'s start design has objective "
                f"{row['start']:.6g}, the references say {expected:.6g} (another generator, env argument or test "
                "split); remake them with scripts/make_references.py"
            )


# -- aggregates ---------------------------------------------------------------------------------


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle half of the values (rliable's IQM)."""
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(values, dtype=float).ravel(), 0.25))


def bootstrap_ci(scores: np.ndarray, statistic: Callable[[np.ndarray], float] = iqm,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic`` over a ``(seeds, cases)`` score matrix.

    Each resample draws the cases with replacement and, where there are several seeds, the seeds
    too (the same drawn cases for every drawn seed, since all seeds meet the same cases).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    n_seeds, n_cases = scores.shape
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for k in range(resamples):
        rows = rng.integers(n_seeds, size=n_seeds) if n_seeds > 1 else np.zeros(1, dtype=int)
        cols = rng.integers(n_cases, size=n_cases)
        stats[k] = statistic(scores[np.ix_(rows, cols)])
    tail = (1.0 - level) / 2
    return float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))


def aggregate(scores: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """IQM with its 95 % bootstrap interval, mean and median of a ``(seeds, cases)`` score matrix."""
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    return {"iqm": iqm(scores), "ci": list(bootstrap_ci(scores, resamples=resamples, seed=seed)),
            "mean": float(np.mean(scores)), "median": float(np.median(scores))}


def at_least_as_good(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """The share of cases where ``ours`` scores at least as well as ``theirs`` (paired by case)."""
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired scores must have the same, non-empty shape; got {a.shape} and {b.shape}")
    return float(np.mean(a >= b - 1e-9))
