"""What a study leaves in its output folder: the best settings as a hyperparameter file, every
trial as CSV and JSON, and Optuna's plots as PNGs. Each file is written atomically, so an
interrupted export leaves the previous file whole."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import optuna
import yaml
from optuna.trial import TrialState

from designgym.agents.algorithms import FALLBACK_TIMESTEPS
from designgym.agents.files import atomic_path, plain, write_text_atomic
from designgym.agents.hyperparams import load_hyperparams, shipped_file, zoo_entry

if TYPE_CHECKING:
    from designgym.agents.tuning import TuneConfig


def trial_counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """How many trials are in each state (complete, pruned, fail, running, waiting)."""
    counts = {state.name.lower(): 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                                   TrialState.RUNNING, TrialState.WAITING)}
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    return counts


def best_trial(study: optuna.Study) -> dict[str, Any] | None:
    """The best complete trial's number, value and settings; ``None`` before one completes."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = max(complete, key=lambda t: t.value)
    return {"number": best.number, "value": best.value, "params": best.params,
            "hyperparams": best.user_attrs.get("hyperparams", {}), "seed_values": best.user_attrs.get("seed_values")}


#: The algorithms of designgym that RL Baselines3 Zoo trains too.
ZOO_ALGORITHMS = ("a2c", "ppo", "sac", "td3")


def best_hyperparams_yaml(best: dict[str, Any], study_name: str, config: TuneConfig, base: dict[str, Any]) -> str:
    """The best trial's settings (over the base ones) as a hyperparameter file that ``designgym train``
    and RL Baselines3 Zoo read unchanged: keyed by the env id, with a ``policy``, and the training
    budget as ``n_timesteps``, not the trial's."""
    module, _, env_id = config.env.rpartition(":")
    settings = {"policy": base.get("policy") or default_policy(config)}
    settings.update(base)
    settings.update(best["hyperparams"])
    budget, budget_source = training_budget(config)
    settings["n_timesteps"] = budget
    header = (
        f"# Best trial of the Optuna study {study_name!r}: trial {best['number']}, mean return "
        f"{best['value']:.4g}\n# ({config.seeds_per_trial} seed(s), {config.timesteps_per_trial} steps each, scored on "
        f"{config.eval_episodes} seeded episodes).\n"
        f"# n_timesteps is the training budget of the settings the study searched under ({budget_source}),\n"
        f"# not the {config.timesteps_per_trial} steps of a trial.\n"
        f"# Train with: designgym train --env {config.env} --algo {config.algo}{_env_kwargs(config, '=')} "
        "--hyperparams best_hyperparams.yml [--timesteps N]\n"
    )
    if config.algo in ZOO_ALGORITHMS:
        packages = " ".join(dict.fromkeys(["designgym", module] if module else ["designgym"]))
        header += (
            f"# or with RL Baselines3 Zoo: python -m rl_zoo3.train --algo {config.algo} --env {env_id} "
            f"--gym-packages {packages}{_env_kwargs(config, ':')} -conf best_hyperparams.yml [-n N]\n"
        )
    return header + yaml.safe_dump({env_id: plain(zoo_entry(settings))}, sort_keys=False)


def training_budget(config: TuneConfig) -> tuple[int, str]:
    """``n_timesteps`` of the settings the study searched under (shipped file, ``--hyperparams``,
    ``--params``), and where it came from."""
    env_id = config.env.rpartition(":")[2]
    if "n_timesteps" in config.hyperparams:
        return int(float(config.hyperparams["n_timesteps"])), "--params"
    if config.hyperparams_file is not None:
        mine = load_hyperparams(config.algo, env_id, config.hyperparams_file, shipped=False)
        if "n_timesteps" in mine:
            return int(float(mine["n_timesteps"])), config.hyperparams_file
    shipped = load_hyperparams(config.algo, env_id)
    return int(float(shipped.get("n_timesteps", FALLBACK_TIMESTEPS))), str(shipped_file(config.algo))


def _env_kwargs(config: TuneConfig, separator: str) -> str:
    """The ``--env-kwargs`` flag of the study's env arguments, for ``designgym`` (``key=value``, read
    as YAML) or the Zoo (``key:value``, read as Python); empty when there are none."""
    if not config.env_kwargs:
        return ""
    words = []
    for key, value in config.env_kwargs.items():
        if separator == "=":
            bare = isinstance(value, str) and re.fullmatch(r"[A-Za-z_][\w.-]*", value) \
                and yaml.safe_load(value) == value
            text = value if bare else json.dumps(value)
            words.append(shlex.quote(f"{key}={text}"))
        else:
            text = repr(value)
            plain_quotes = not any(c in text for c in '"$`\\!')
            words.append(f'{key}:"{text}"' if plain_quotes else shlex.quote(f"{key}:{text}"))
    return " --env-kwargs " + " ".join(words)


def default_policy(config: TuneConfig) -> str:
    """The SB3 policy that designgym uses for the env, named as the Zoo names it."""
    probe = gym.make(config.env, **config.env_kwargs)
    try:
        return "MultiInputPolicy" if isinstance(probe.observation_space, gym.spaces.Dict) else "MlpPolicy"
    finally:
        probe.close()


def export_results(study: optuna.Study, config: TuneConfig, storage: str, base: dict[str, Any]) -> dict[str, str]:
    """Write the study's results (all its trials, whoever ran them) to ``config.out``."""
    out = Path(config.out)
    files: dict[str, str] = {}
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)
    if best is not None:
        text = best_hyperparams_yaml(best, study.study_name, config, base)
        files["best_hyperparams"] = str(write_text_atomic(out / "best_hyperparams.yml", text))
    files["trials"] = str(write_text_atomic(out / "trials.csv", trials_csv(trials)))
    summary = {"study_name": study.study_name, "storage": storage, "settings": study.user_attrs.get("designgym"),
               "trials": trial_counts(trials), "best": best}
    files["study"] = str(write_text_atomic(out / "study.json", json.dumps(summary, indent=2, default=str) + "\n"))
    files.update(plots_png(study, out))
    return files


def trials_csv(trials: list[optuna.trial.FrozenTrial]) -> str:
    params = sorted({name for t in trials for name in t.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", "value", "evaluations", "seconds", "worker", "retry_of", "error", *params])
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and \
            t.datetime_start else ""
        writer.writerow([t.number, t.state.name, "" if t.value is None else t.value, len(t.intermediate_values),
                         seconds, t.user_attrs.get("worker", ""), t.system_attrs.get("failed_trial", ""),
                         t.user_attrs.get("error", ""), *[t.params.get(p, "") for p in params]])
    return buffer.getvalue()


def plots_png(study: optuna.Study, out: Path) -> dict[str, str]:
    """PNG plots of the study; a plot that needs more finished trials than there are is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    made: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = [("optimization_history", plots.plot_optimization_history, 1),
              ("intermediate_values", plots.plot_intermediate_values, 1),
              ("param_importances", plots.plot_param_importances, 2)]
    for name, plot, needs in wanted:
        if len(complete) < needs:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = plot(study)
                figure = axes.figure
                figure.set_size_inches(8, 5)
                figure.tight_layout()
                path = out / f"{name}.png"
                with atomic_path(path) as tmp:
                    figure.savefig(tmp, dpi=100)
                plt.close(figure)
            made[name] = str(path)
        except (ValueError, RuntimeError) as exc:  # e.g. importances when every trial has the same params
            print(f"designgym tune: {name}.png not made: {exc}", file=sys.stderr)
    return made

