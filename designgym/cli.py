"""The ``designgym`` command.

    designgym envs                         list the registered design environments
    designgym train --env ID --algo ppo    train an agent into a run folder
    designgym tune --env ID --algo ppo     an Optuna hyperparameter study (resumable, shareable)
    designgym eval --run DIR               roll a trained agent out on seeded (or given) conditions
    designgym design --env ID --agent DIR --conditions JSON --out design.npy
                                           one design from an agent, with its metrics
    designgym evaluate --env ID --design FILE --conditions JSON
                                           objectives and violations of any design file
    designgym baseline --env ID --method random|cmaes|tpe|reference --budget N
                                           black-box search in latent space, on eval's conditions
    designgym score --env ID --agent RUN_DIR|model.zip|pretrained
                                           the suite's normalized, feasibility-gated score on the
                                           env's 200-case test split

Add ``--json`` to print what a script would read as JSON, ``--debug`` for full tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from designgym.cli_inputs import (
    OneLineParser,
    conditions_list,
    file_problem,
    json_argument,
    key_values,
    one_line,
    seconds,
    seed_number,
    whole_number,
)


def cmd_envs(args: argparse.Namespace) -> int:
    from designgym.envs.registration import env_specs, load_plugins

    specs = env_specs()
    if args.json:
        rows = [{"id": s.id, "description": s.description, "source": s.source} for s in specs]
        print(json.dumps({"envs": rows, "plugin_errors": load_plugins()}, indent=2))
        return 0
    width = max(len(s.id) for s in specs)
    for spec in specs:
        origin = "" if spec.source == "designgym" else f"  [{spec.source}]"
        print(f"{spec.id:<{width}}  {spec.description}{origin}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from designgym.agents.training import TrainConfig, resume, train

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    argv = ["designgym", *sys.argv[1:]]
    if args.resume is not None:
        result = resume(args.resume, timesteps=args.timesteps, progress=progress, argv=argv,
                        threads=args.threads or None)
        return _report_training(result, args.json)
    config = TrainConfig(
        env=args.env,
        algo=args.algo,
        timesteps=args.timesteps,
        seed=args.seed,
        n_envs=args.n_envs,
        vec_env=args.vec_env,
        device=args.device,
        hyperparams_file=None if args.hyperparams is None else str(args.hyperparams),
        hyperparams=key_values(args.params, "--params"),
        env_kwargs=key_values(args.env_kwargs, "--env-kwargs"),
        out=str(args.out),
        run_name=args.run_name,
        eval_episodes=args.eval_episodes,
        eval_freq=args.eval_freq,
        save_freq=args.save_freq,
        tensorboard_log=None if args.tensorboard_log is None else str(args.tensorboard_log),
        progress=progress,
        threads=args.threads or None,
    )
    return _report_training(train(config, argv=argv), args.json)


def _report_training(result, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    m = result.metrics
    objective = next(k for k in m["trained"] if k.startswith("mean_") and k != "mean_return")
    print(f"trained {m['algo'].upper()} on {m['env']} for {m['timesteps']} steps in {result.seconds:.0f} s")
    print(f"  on {m['eval_episodes']} seeded evaluation episodes:")
    for who in ("trained", "random"):
        s = m[who]
        print(
            f"    {who:<8} mean return {s['mean_return']:8.3f}   feasible {s['feasible_rate']:5.1%}   "
            f"{objective[5:]} {s[objective]:.3f}"
        )
    print(f"results in {result.run_dir}/")
    print(f"  model           {result.model_path}")
    print(f"  designs         {result.run_dir / 'designs.png'}")
    print(f"  learning curve  {result.run_dir / 'learning_curve.png'}")
    print(f"  tensorboard     tensorboard --logdir {result.run_dir / 'tb'}")
    print(f"  resume          designgym train --resume {result.run_dir} --timesteps <more>")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from designgym.agents.tuning import TuneConfig, tune

    config = TuneConfig(
        env=args.env, algo=args.algo, n_trials=args.n_trials or None, max_total_trials=args.max_total_trials,
        timeout=args.timeout, timesteps_per_trial=args.timesteps_per_trial, n_evaluations=args.n_evaluations,
        eval_episodes=args.eval_episodes, sampler=args.sampler, pruner=args.pruner,
        n_startup_trials=args.n_startup_trials, storage=args.storage, study_name=args.study_name, seed=args.seed,
        seeds_per_trial=args.seeds_per_trial, sampler_seed=args.sampler_seed,
        out=None if args.out is None else str(args.out), n_envs=args.n_envs, vec_env=args.vec_env,
        device=args.device, hyperparams_file=None if args.hyperparams is None else str(args.hyperparams),
        hyperparams=key_values(args.params, "--params"), env_kwargs=key_values(args.env_kwargs, "--env-kwargs"),
        search_space=args.search_space, heartbeat_interval=args.heartbeat_interval, max_retry=args.max_retry,
        threads=args.threads or None, export_only=args.export_only,
        progress=sys.stderr.isatty() if args.progress is None else args.progress,
    )
    result = tune(config, argv=["designgym", *sys.argv[1:]])
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return 0
    counts = result.counts
    print(f"study {result.study_name!r} in {result.storage}")
    print(f"  trials: {counts['complete']} complete, {counts['pruned']} pruned, {counts['fail']} failed, "
          f"{counts['running']} running, {counts['waiting']} waiting "
          f"(this run: {sum(result.this_process.values())} in {result.seconds:.0f} s)")
    if result.best is not None:
        print(f"  best: trial {result.best['number']}, mean return {result.best['value']:.4g}")
        for key, value in result.best["hyperparams"].items():
            print(f"    {key:<20} {value}")
    for kind, path in result.files.items():
        print(f"  {kind:<21} {path}")
    print(f"  tensorboard           tensorboard --logdir {result.out / 'tb'}")
    print(f"  dashboard             optuna-dashboard {result.storage}")
    print("  more trials           run the same command again")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from designgym.envs.registration import make_problem, resolve_env_id

    problem = make_problem(resolve_env_id(args.env))
    path = Path(args.design)
    if not path.exists():
        raise ValueError(f"design file {path} does not exist")
    try:
        design = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or cut-short file
        raise ValueError(f"{path} is not a numpy .npy design file ({type(exc).__name__}: {exc}); save the "
                         "design with numpy.save") from None
    if not isinstance(design, np.ndarray):  # an .npz archive of several arrays
        raise ValueError(f"{path} holds {type(design).__name__}, not one array; save the design with numpy.save")
    conditions = json_argument(args.conditions, "--conditions") if args.conditions else problem.default_conditions()
    evaluation = problem.evaluate(design, conditions)
    result = {
        "env": args.env,
        "conditions": problem.check_conditions(conditions),
        "objectives": evaluation.objectives,
        "violations": evaluation.violations,
        "feasible": evaluation.feasible,
    }
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print(f"feasible: {evaluation.feasible}")
        _print_metrics(result)
    return 0


def _print_metrics(result: dict[str, Any]) -> None:
    for group in ("objectives", "violations"):
        print(f"{group}:")
        for key, value in result[group].items():
            print(f"  {key:<16} {value:.6g}")


def cmd_eval(args: argparse.Namespace) -> int:
    from designgym.agents.evaluation import evaluate_agent, load_agent, write_evaluation

    agent = load_agent(args.run, which=args.model)
    env_id = args.env or agent.env_id
    if env_id is None:
        raise ValueError(f"{args.run} does not say which env it was trained on; pass --env")
    from designgym.envs.registration import resolve_env_id

    env_id = resolve_env_id(env_id)
    result = evaluate_agent(agent, env_id, conditions_list(args.conditions), episodes=args.episodes, seed=args.seed)
    out = args.out or (Path(args.run) / "eval" if Path(args.run).is_dir() else Path("eval"))
    files = write_evaluation(result, Path(out), title=f"{env_id}: {Path(agent.source).name}")
    if args.json:
        print(json.dumps({"env": env_id, "agent": agent.source, "summary": result["summary"], "files": files},
                         indent=2))
        return 0
    summary = result["summary"]
    print(f"{agent.source} on {env_id}, {summary['episodes']} episodes:")
    for key, value in summary.items():
        if key != "episodes":
            print(f"  {key:<28} {value:.4g}")
    for kind, path in files.items():
        print(f"  {kind:<5} {path}")
    return 0


def cmd_design(args: argparse.Namespace) -> int:
    import numpy as np

    from designgym.agents.evaluation import load_agent, make_design
    from designgym.agents.files import atomic_path
    from designgym.envs.registration import resolve_env_id

    env_id = resolve_env_id(args.env)
    agent = load_agent(args.agent, env_id=env_id)
    conditions = json_argument(args.conditions, "--conditions") if args.conditions else None
    if conditions is not None and not isinstance(conditions, dict):
        raise ValueError("--conditions must be one JSON object for `design`")
    result = make_design(agent, env_id, conditions, polish=args.polish)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.save(handle, result["design"])
    report = {k: v for k, v in result.items() if k != "design"}
    report.update(env=env_id, agent=agent.source, design=str(out))
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(f"design written to {out} (feasible: {result['feasible']})")
        _print_metrics(result)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from designgym.agents.evaluation import check_fits, load_agent
    from designgym.agents.files import write_json
    from designgym.agents.scoring import score_policy
    from designgym.envs.registration import resolve_env_id

    env_id = resolve_env_id(args.env) if args.env else None
    agent = load_agent(args.agent, which=args.model, env_id=env_id)
    if env_id is None:
        if agent.env_id is None:
            raise ValueError(f"{args.agent} does not say which env it was trained on; pass --env")
        env_id = resolve_env_id(agent.env_id)
    if agent.env_id and resolve_env_id(agent.env_id) != env_id:
        raise ValueError(f"agent {agent.source} was trained on {agent.env_id}, not {env_id}; pass --env "
                         f"{agent.env_id}, or an agent trained on {env_id}")
    check_fits(agent, env_id)
    if args.out is not None and args.out.is_dir():  # said now, not after the scoring
        raise ValueError(f"--out {args.out} is a folder; give the file the result goes to")
    cases = conditions_list(args.conditions)
    if cases is not None and not cases:
        raise ValueError("--conditions holds no cases; give at least one set of conditions (or leave it out "
                         "for the test split)")
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = score_policy(env_id, agent.act, cases=cases, references=args.references,
                          env_kwargs=agent.env_kwargs, progress=progress)
    result = {"agent": agent.source, **result}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, result)
    if args.json:
        print(json.dumps(result, indent=2, default=_json_default))
        return 0
    score = result["normalized_score"]
    print(f"{agent.source} on {env_id}, {result['n_cases']} cases ({result['cases_from']}; references "
          f"{result['references']}, {result['reference_method']}):")
    if score is None:
        print("  normalized score     not available: no case has a usable reference")
    else:
        print(f"  normalized score     IQM {score['iqm']:.1f}, 95% CI [{score['ci'][0]:.1f}, {score['ci'][1]:.1f}] "
              f"(0 = the trivial or start design, 100 = the reference; a design that breaks a rule scores 0)")
    print(f"  feasible             {result['feasible_rate']:.1%}")
    print(f"  time per design      {result['ms_per_design']:.1f} ms")
    if args.out is not None:
        print(f"  written to           {args.out}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from designgym.agents.baselines import run_baseline, seeded_conditions
    from designgym.agents.evaluation import write_evaluation
    from designgym.envs.registration import resolve_env_id

    env_id = resolve_env_id(args.env)
    conditions = conditions_list(args.conditions)
    if conditions is not None and not conditions:
        raise ValueError("--conditions holds no cases; give at least one set of conditions (or leave it out "
                         "for seeded ones)")
    conditions = conditions or seeded_conditions(env_id, args.episodes, args.seed)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run_baseline(env_id, args.method, args.budget, conditions, seed=args.search_seed, progress=progress)
    out = Path(args.out or f"baselines/{env_id.split('/')[-1]}-{args.method}")
    files = write_evaluation(
        {"env": env_id, "agent": f"{args.method} (budget {args.budget})", "summary": result["summary"],
         "episodes": result["cases"], "images": result["images"], "captions": result["captions"]},
        out, title=f"{env_id}: {args.method}, budget {args.budget}",
    )
    if args.json:
        print(json.dumps({"env": env_id, "summary": result["summary"], "files": files}, indent=2))
        return 0
    print(f"{args.method} on {env_id}, {len(conditions)} sets of conditions:")
    for key, value in result["summary"].items():
        if isinstance(value, float):
            print(f"  {key:<20} {value:.4g}")
    for kind, path in files.items():
        print(f"  {kind:<5} {path}")
    return 0


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    return float(value)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="designgym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the registered design environments")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("train", help="train an agent on a design environment")
    p.add_argument("--env", default="designgym/Extrusion-v2", help="env id (default: %(default)s)")
    p.add_argument("--algo", default="ppo", help="ppo, a2c, sac, td3 or distill (search distillation, trained "
                   "from the reward by searches around its own designs) (default: %(default)s)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="environment steps (default: n_timesteps of the hyperparameters; with --resume: the "
                        "run's total, which this raises)")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--n-envs", type=int, default=None,
                   help="environments stepped together (default: n_envs of the hyperparameters)")
    p.add_argument("--vec-env", default="dummy", choices=["dummy", "subproc", "batched"],
                   help="how the envs are stepped: one by one in this process, one process each, or "
                        "batched (one generator pass and one batched evaluation per step) (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--hyperparams", type=Path, default=None, metavar="FILE",
                   help="YAML hyperparameters by env id, RL Zoo format, read over the shipped ones")
    p.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                   help="hyperparameters over the files (n_steps=128 learning_rate=lin_3e-4 ...)")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="arguments of the env")
    p.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of run folders")
    p.add_argument("--run-name", default=None, help="run folder name (default: env_algo_seed_time)")
    p.add_argument("--eval-episodes", type=int, default=32,
                   help="episodes of each periodic evaluation and of the final one (default: %(default)s)")
    p.add_argument("--eval-freq", type=int, default=None,
                   help="env steps between evaluations that keep best_model.zip (0: none; default: a tenth)")
    p.add_argument("--save-freq", type=int, default=None,
                   help="env steps between checkpoints (0: none; default: a tenth of the run)")
    p.add_argument("--tensorboard-log", type=Path, default=None, help="TensorBoard folder (default: RUN/tb)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR",
                   help="continue that run from its latest checkpoint; the other settings come from it")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the training process (default 0: torch's own, one per core; 1 is "
                        "often fastest for small networks or on a machine other processes share)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on in a terminal)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="tune an agent's hyperparameters in an Optuna study",
                       description="Tune hyperparameters in an Optuna study. Running the same command again "
                                   "resumes the study; processes given the same --storage and --study-name "
                                   "share one study, on one machine or many.")
    p.add_argument("--env", default="designgym/Extrusion-v2", help="env id (default: %(default)s)")
    p.add_argument("--algo", default="ppo", help="ppo, a2c, sac, td3 or distill (search distillation, trained "
                   "from the reward by searches around its own designs) (default: %(default)s)")
    p.add_argument("--n-trials", type=int, default=10,
                   help="trials this process runs (default: %(default)s; 0 with --max-total-trials: no limit)")
    p.add_argument("--max-total-trials", type=int, default=None,
                   help="stop when the study, all processes together, has this many finished trials")
    p.add_argument("--timeout", type=seconds, default=None, help="seconds after which no new trial starts")
    p.add_argument("--timesteps-per-trial", type=int, default=10_000,
                   help="env steps each agent of a trial trains (default: %(default)s)")
    p.add_argument("--n-evaluations", type=int, default=4,
                   help="scores per agent reported to the pruner (default: %(default)s)")
    p.add_argument("--eval-episodes", type=int, default=16,
                   help="seeded episodes of each score, the same conditions for every trial (default: %(default)s)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "cmaes", "gp"])
    p.add_argument("--pruner", default="median", choices=["median", "halving", "hyperband", "none"])
    p.add_argument("--n-startup-trials", type=int, default=5,
                   help="random, unpruned trials before the sampler and pruner use the history (default: 5)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL (postgresql://user:pass@host/db, sqlite:///file.db) or "
                        "journal:FILE (default: sqlite in the output folder)")
    p.add_argument("--study-name", default=None, help="default: <Env>_<algo>")
    p.add_argument("--seed", type=seed_number, default=0,
                   help="agents of a trial get seeds seed, seed+1, ...; also seeds the scoring conditions")
    p.add_argument("--seeds-per-trial", type=int, default=1,
                   help="agents per trial; the trial's value is their mean score (default: %(default)s)")
    p.add_argument("--sampler-seed", type=seed_number, default=None,
                   help="seed of the sampler, for a reproducible study (default: fresh per process)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: tuning/<study-name>)")
    p.add_argument("--n-envs", type=int, default=None, help="default: n_envs of the hyperparameters")
    p.add_argument("--vec-env", default="dummy", choices=["dummy", "subproc", "batched"])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument("--hyperparams", type=Path, default=None, metavar="FILE",
                   help="YAML hyperparameters under the searched ones (RL Zoo format)")
    p.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings under the searched ones")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="arguments of the env")
    p.add_argument("--search-space", default=None, metavar="MODULE:FUNCTION",
                   help="a function (trial, budget) -> settings to search instead of the built-in space")
    p.add_argument("--heartbeat-interval", type=int, default=60,
                   help="seconds between a running trial's heartbeats; a trial silent for twice as long is "
                        "failed and retried (default: %(default)s)")
    p.add_argument("--max-retry", type=int, default=1,
                   help="times the trial of a dead process is queued again (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of this process (default: %(default)s, so that workers sharing a machine "
                        "do not fight over its cores; 0: torch's default)")
    p.add_argument("--export-only", action="store_true",
                   help="run no trial: write the results of the study as its storage holds them now")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar over trials (default: on in a terminal)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("eval", help="roll a trained agent out on seeded or given conditions")
    p.add_argument("--run", required=True, help="run folder (or a model .zip)")
    p.add_argument("--model", choices=["final", "best"], default="final",
                   help="model.zip or best_model.zip of the run (default: %(default)s)")
    p.add_argument("--env", default=None, help="env id (default: the run's)")
    p.add_argument("--episodes", type=whole_number(1), default=32, help="seeded episodes (default: %(default)s)")
    p.add_argument("--seed", type=seed_number, default=10_000, help="seed of the first episode (default: %(default)s)")
    p.add_argument("--conditions", default=None, help="JSON list of conditions (or a file) instead of seeded ones")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/eval)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("design", help="one design from an agent for one set of conditions")
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--agent", required=True, help="run folder, model .zip, or 'pretrained'")
    p.add_argument("--conditions", default=None, help="JSON object or file (keys left out: the centre of the space)")
    p.add_argument("--out", default="design.npy", help="where the design goes (default: %(default)s)")
    p.add_argument("--polish", type=int, default=0, metavar="N",
                   help="then N SIMP iterations started from the agent's design (structures; default: 0, none)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_design)

    p = sub.add_parser("baseline", help="black-box search in latent space (or the classical optimizer)")
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--method", required=True, choices=["random", "cmaes", "tpe", "reference"])
    p.add_argument("--budget", type=whole_number(1), default=100,
                   help="judged designs per set of conditions (default: 100)")
    p.add_argument("--episodes", type=whole_number(1), default=8,
                   help="seeded sets of conditions, as eval's (default: 8)")
    p.add_argument("--seed", type=seed_number, default=10_000,
                   help="seed of the first set (default: %(default)s, as eval)")
    p.add_argument("--search-seed", type=seed_number, default=0, help="seed of the search itself")
    p.add_argument("--conditions", default=None, help="JSON list of conditions (or a file) instead of seeded ones")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: baselines/<Env>-<method>)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("score", help="the suite's normalized, feasibility-gated score of an agent",
                       description="Score an agent the way the suite scores every method: its deterministic "
                                   "design for each case of the env's fixed test split (or of --conditions), 0 for "
                                   "a design that breaks a rule, else 100 (f - f0) / (f_ref - f0) of its objective "
                                   "f, where f0 is the trivial or start design and f_ref the shipped reference; "
                                   "the interquartile mean over cases with a 95% bootstrap interval.")
    p.add_argument("--env", default=None, help="env id (default: the agent's)")
    p.add_argument("--agent", required=True, help="run folder, model .zip, or 'pretrained'")
    p.add_argument("--model", choices=["final", "best"], default="final",
                   help="model.zip or best_model.zip of a run folder (default: %(default)s)")
    p.add_argument("--conditions", default=None,
                   help="JSON list of conditions (or a file) instead of the test split; their references are "
                        "made now (SIMP, or a 1,000-design search per case)")
    p.add_argument("--references", type=Path, default=None, metavar="FILE",
                   help="reference values (scripts/make_references.py) instead of the shipped ones")
    p.add_argument("--out", type=Path, default=None, metavar="FILE", help="also write the JSON result here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--json", action="store_true", help="print JSON (the public contract: feasible_rate, "
                                                       "normalized_score {iqm, ci}, ms_per_design, cases)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="objectives and violations of a design file")
    p.add_argument("--env", required=True, help="env id whose problem judges the design")
    p.add_argument("--design", required=True, help=".npy file holding the design array")
    p.add_argument("--conditions", help="JSON object or JSON file (default: the centre of the conditions space)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:  # a training run says where its checkpoint is and how to go on
        print(f"designgym: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`designgym ... | head`): stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        # What bad input raises: the message names the problem and the fix.
        if args.debug:
            raise
        if isinstance(exc, OSError) and exc.errno is not None:
            message = file_problem(exc)  # the system's own words, with what to do about them
        else:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"designgym: error: {one_line(message)}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a fault of designgym's: still one line, and how to see more
        if args.debug:
            raise
        print(f"designgym: error: {type(exc).__name__}: {one_line(exc)} (run `designgym --debug ...` for the "
              "traceback, and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
