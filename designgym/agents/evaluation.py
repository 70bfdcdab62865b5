"""Using a trained agent: roll it out on fixed conditions (``designgym eval``), or make one design
(``designgym design``).

An agent is a run folder (``model.zip``, or ``best_model.zip`` with ``which="best"``, and its
``vecnormalize.npz`` when the run normalised observations) or a single model file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from designgym.agents.algorithms import ALGORITHMS, normalize_kwargs
from designgym.agents.checkpoints import checkpoint_companion, latest_checkpoint
from designgym.agents.files import (
    atomic_path,
    json_text,
    load_normalizer,
    plain,
    plain_or_legacy,
    spaces_vec_env,
)
from designgym.envs.registration import resolve_env_id

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


@dataclass
class Agent:
    """A loaded policy with what it needs to act: the model, its env id and its normaliser."""

    model: Any
    env_id: str | None
    env_kwargs: dict[str, Any]
    normalizer: Any = None
    source: str = ""

    def act(self, obs: Any) -> np.ndarray:
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        return self.model.predict(obs, deterministic=True)[0]


def load_agent(path: str | Path, which: str = "final", env_id: str | None = None) -> Agent:
    """An agent from a run folder, a model ``.zip``, or ``"pretrained"`` (with ``env_id``)."""
    if str(path) == "pretrained":
        if env_id is None:
            raise ValueError("--agent pretrained needs --env: the pretrained agent is chosen by env")
        path = pretrained_path(env_id)
    path = Path(path)
    if which not in ("final", "best"):
        raise ValueError(f"which must be 'final' or 'best', got {which!r}")
    config: dict[str, Any] = {}
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} is not a run folder (no config.json); pass a run folder or a model .zip")
        config = json.loads((path / "config.json").read_text())
        model_path = path / ("model.zip" if which == "final" else "best_model.zip")
        stats = path / "vecnormalize.npz"
    elif path.parent.name == "checkpoints" and (path.parent.parent / "config.json").exists():
        # A checkpoint of a run (model_<steps>_steps.zip): the run says what it is, the statistics are beside it.
        config = json.loads((path.parent.parent / "config.json").read_text())
        model_path = path
        stats = checkpoint_companion(path, "vecnormalize")
    else:
        model_path, stats = path, path.with_name("vecnormalize.npz")
        sidecar = path.with_suffix(".json")
        if sidecar.exists():
            config = json.loads(sidecar.read_text())
    if not model_path.exists():
        why = ""
        if which == "best":
            why = " (the run made no evaluations)"
        elif path.is_dir() and (latest := latest_checkpoint(path)) is not None:
            why = (f": the run has not finished; finish it with `designgym train --resume {path}`, or pass its "
                   f"latest checkpoint {latest}")
        raise FileNotFoundError(f"no model at {model_path}{why}")
    # A run folder says which algorithm made it; a bare model file is tried with each in turn.
    algos = [str(config["algo"]).lower()] if config.get("algo") else list(ALGORITHMS)
    unknown = [a for a in algos if a not in ALGORITHMS]
    if unknown:
        raise ValueError(f"{model_path}: unknown algorithm {unknown[0]!r}; choose one of {', '.join(ALGORITHMS)}")
    model, errors = None, []
    for algo in algos:
        try:
            model = ALGORITHMS[algo].load(model_path, device="cpu")
            break
        except Exception as exc:  # a truncated or foreign file, or another algorithm's: say which
            errors.append(f"{algo.upper()}: {type(exc).__name__}: {exc}")
    if model is None:
        raise ValueError(f"{model_path} is not a loadable Stable-Baselines3 model ({'; '.join(errors)[:300]})")
    normalizer = None
    fix = "they belong to the model and cannot be left out: copy them again from where the run was made"
    found = plain_or_legacy(stats, "normalisation statistics")
    if found is not None:
        normalizer = load_normalizer(found, spaces_vec_env(model.observation_space, model.action_space),
                                     training=False, fix=fix)
    elif normalize_kwargs((config.get("resolved_hyperparams") or {}).get("normalize")) is not None:
        raise FileNotFoundError(f"normalisation statistics {stats} are missing, and the run normalised the "
                                f"observations its model was trained on (normalize in its config.json); {fix}")
    return Agent(model, config.get("env"), dict(config.get("env_kwargs") or {}), normalizer, str(model_path))


def pretrained_path(env_id: str) -> Path:
    """The agent shipped for ``env_id``, or a clear error listing the envs that have one."""
    env_id = resolve_env_id(env_id)
    path = PRETRAINED_DIR / f"{env_id.split('/')[-1]}.zip"
    if not path.exists():
        shipped = sorted(p.stem for p in PRETRAINED_DIR.glob("*.zip"))
        listing = ", ".join(shipped) if shipped else "none yet"
        raise FileNotFoundError(
            f"no pretrained agent ships for {env_id} (shipped: {listing}); train one with "
            f"`designgym train --env {env_id}` and pass its run folder as --agent"
        )
    return path


def evaluate_agent(
    agent: Agent,
    env_id: str,
    conditions: Sequence[Mapping[str, Any]] | None = None,
    episodes: int = 32,
    seed: int = 10_000,
    env_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Roll the agent out on ``conditions`` (each given set once) or on ``episodes`` seeded episodes."""
    from designgym.agents.pictures import caption

    check_cases(conditions, episodes)
    env = gym.make(env_id, **{**agent.env_kwargs, **dict(env_kwargs or {})})
    _check_fits(agent, env, env_id)
    rows, designs, captions, images = [], [], [], []
    problem = env.unwrapped.problem
    cases = list(conditions) if conditions is not None else [None] * episodes
    for i, given in enumerate(cases):
        options = {"conditions": dict(given)} if given is not None else None
        obs, _ = env.reset(seed=seed + i, options=options)
        done, total, info = False, 0.0, {}
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs))
            total += float(reward)
            done = terminated or truncated
        design = env.unwrapped.design.copy()
        designs.append(design)
        rows.append({
            "episode": i,
            "seed": seed + i if given is None else None,
            "return": total,
            "feasible": bool(info["feasible"]),
            **{f"condition/{k}": plain(v) for k, v in info["conditions"].items()},
            **{f"objective/{k}": v for k, v in info["objectives"].items()},
            **{f"violation/{k}": v for k, v in info["violations"].items()},
        })
        if len(images) < 16:
            images.append(problem.render(design, info["conditions"]))
            captions.append(caption(info, problem.objective.name))
    env.close()
    main = problem.objective.name
    summary = {
        "episodes": len(rows),
        "mean_return": float(np.mean([r["return"] for r in rows])),
        "feasible_rate": float(np.mean([r["feasible"] for r in rows])),
        f"mean_{main}": float(np.mean([r[f"objective/{main}"] for r in rows])),
        f"median_{main}": float(np.median([r[f"objective/{main}"] for r in rows])),
    }
    return {"env": env_id, "agent": agent.source, "summary": summary, "episodes": rows, "designs": designs,
            "images": images, "captions": captions}


def check_cases(conditions: Sequence[Mapping[str, Any]] | None, episodes: int) -> None:
    """An evaluation has at least one case: given conditions, or seeded episodes."""
    if conditions is not None:
        if len(conditions) == 0:
            raise ValueError("--conditions holds no cases; give at least one set of conditions (or leave it out "
                             "for seeded episodes)")
    elif isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"--episodes must be a whole number of at least 1, got {episodes!r}")


def write_evaluation(result: Mapping[str, Any], out_dir: Path, title: str) -> dict[str, str]:
    """``eval.json`` (summary and every episode), ``eval.csv`` (a row per episode) and ``eval_designs.png``.

    All three are written beside the old ones first and put in place only when all three are made: a
    failure leaves the last complete evaluation as it was."""
    from designgym.agents.pictures import save_design_grid

    if not result["episodes"]:
        raise ValueError("an evaluation without episodes is not written; evaluate at least one case")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileExistsError(f"{out_dir} is a file, not a folder; pass another --out") from None
    paths = {"json": out_dir / "eval.json", "csv": out_dir / "eval.csv", "png": out_dir / "eval_designs.png"}
    with ExitStack() as staged:  # renamed into place in one go at the end, or all removed
        tmp = {kind: staged.enter_context(atomic_path(path)) for kind, path in paths.items()}
        Path(tmp["json"]).write_text(json_text({k: result[k] for k in ("env", "agent", "summary", "episodes")}))
        fields = list(dict.fromkeys(k for row in result["episodes"] for k in row))
        with open(tmp["csv"], "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(result["episodes"])
        save_design_grid(Path(tmp["png"]), result["images"], result["captions"], title=title)
    return {k: str(v) for k, v in paths.items()}


def make_design(
    agent: Agent, env_id: str, conditions: Mapping[str, Any] | None, polish: int = 0
) -> dict[str, Any]:
    """One design for one set of conditions (left-out keys are the conditions space's centre).

    ``polish > 0`` runs that many iterations of the problem's classical optimizer from the agent's
    design (``Problem.polish``, the structures' SIMP) and returns the polished design, judged.
    """
    env = gym.make(env_id, **agent.env_kwargs)
    _check_fits(agent, env, env_id)
    problem = env.unwrapped.problem
    if polish < 0:
        env.close()
        raise ValueError(f"polish must be >= 0 iterations, got {polish}")
    if polish and not hasattr(problem, "polish"):
        env.close()
        raise ValueError(f"--polish: problem {problem.name} has no polish step (the structures have one); "
                         "leave it at 0")
    given = {**problem.default_conditions(), **dict(conditions or {})}
    obs, _ = env.reset(seed=0, options={"conditions": given})
    done, info = False, {}
    while not done:
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        done = terminated or truncated
    design = env.unwrapped.design.copy()
    result = {"design": design, "conditions": info["conditions"], "objectives": info["objectives"],
              "violations": info["violations"], "feasible": bool(info["feasible"])}
    if polish:
        design = problem.polish(design, info["conditions"], iterations=polish)
        evaluation = problem.evaluate(design, info["conditions"])
        result.update(design=design, objectives=evaluation.objectives, violations=evaluation.violations,
                      feasible=bool(evaluation.feasible), polish_iterations=int(polish),
                      before_polish={"objectives": info["objectives"], "feasible": bool(info["feasible"])})
    env.close()
    return result


def check_fits(agent: Agent, env_id: str) -> None:
    """Raise a ``ValueError`` naming the difference when the agent's spaces are not the env's."""
    env = gym.make(env_id, **agent.env_kwargs)
    _check_fits(agent, env, env_id)
    env.close()


def _check_fits(agent: Agent, env: gym.Env, env_id: str) -> None:
    """An agent acts only on the observations and actions it was trained with: say so before it is asked."""
    trained_on = f" (it was trained on {agent.env_id})" if agent.env_id and agent.env_id != env_id else ""
    for kind in ("observation_space", "action_space"):
        ours, theirs = getattr(agent.model, kind), getattr(env, kind)
        if ours != theirs:
            env.close()
            what = kind.replace("_", " ")
            difference = (f"its {what} has shape {ours.shape}, the env's {theirs.shape}"
                          if getattr(ours, "shape", None) != getattr(theirs, "shape", None)
                          else f"its {what} differs from the env's ({type(ours).__name__} bounds or keys)")
            raise ValueError(f"agent {agent.source} does not fit {env_id}{trained_on}: {difference}; "
                             f"pass an agent trained on {env_id}")
