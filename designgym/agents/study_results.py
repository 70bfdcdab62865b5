"""What a study leaves in its output folder: the best settings as a hyperparameter file, every
trial as CSV and JSON, and Optuna's plots as PNGs. Each file is written atomically, so an
interrupted export leaves the previous file whole."""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml
from optuna.trial import TrialState

from designgym.agents.files import atomic_path, plain, write_text_atomic

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


def best_hyperparams_yaml(best: dict[str, Any], study_name: str, config: TuneConfig, base: dict[str, Any]) -> str:
    """The best trial's settings (over the base ones) as a hyperparameter file for ``designgym train``."""
    settings = dict(base)
    settings.update(best["hyperparams"])
    settings["n_timesteps"] = config.timesteps_per_trial
    header = (
        f"# Best trial of the Optuna study {study_name!r}: trial {best['number']}, mean return "
        f"{best['value']:.4g}\n# ({config.seeds_per_trial} seed(s), {config.timesteps_per_trial} steps each, scored on "
        f"{config.eval_episodes} seeded episodes).\n"
        f"# Train with: designgym train --env {config.env} --algo {config.algo} --hyperparams best_hyperparams.yml"
        " [--timesteps N]\n"
    )
    return header + yaml.safe_dump({config.env: plain(settings)}, sort_keys=False)


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

