"""What a run records while it trains: design metrics, design pictures and periodic evaluations.

Stable-Baselines3 logs the episode return and little else, and writes its evaluation files in
place. For design work the parts of the reward, the objectives, the violations and pictures of the
designs are what tell a stuck agent from a learning one, and the files a run leaves must survive
a crash; these callbacks add both to any algorithm's ``learn()``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv

from designgym.agents.files import save_model_atomic
from designgym.agents.rollouts import rollout


class DesignMetricsCallback(BaseCallback):
    """Logs the mean reward parts, objectives, violations, cost and feasible rate of finished episodes.

    SB3 logs only the episode return; for design work the parts of the reward are what tell a
    stuck agent (paying penalties) from a learning one. ``record_mean`` averages every episode
    that ends between two log dumps, whatever the algorithm's rollout length.
    """

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"], strict=True):
            if not done or "objectives" not in info:
                continue
            for key, value in info["objectives"].items():
                self.logger.record_mean(f"design/objective/{key}", float(value))
            for key, value in info["violations"].items():
                self.logger.record_mean(f"design/violation/{key}", float(value))
            for key, value in info.get("reward_parts", {}).items():
                self.logger.record_mean(f"design/reward/{key}", float(value))
            self.logger.record_mean("design/feasible_rate", float(info["feasible"]))
            if "cost" in info:
                self.logger.record_mean("design/cost", float(info["cost"]))
        return True


class DesignImagesCallback(BaseCallback):
    """TensorBoard pictures and hyperparameters of a run.

    - ``designs/best``: the best designs of finished training episodes so far (feasible first, then
      by the reward objective), every ``every`` env steps and at the end;
    - ``designs/evaluation``: the policy's designs on a fixed, seeded set of conditions, at the
      same times;
    - the run's hyperparameters with the metrics to compare runs by (TensorBoard's HParams tab).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], every: int, hparams: dict[str, Any],
                 show: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.env_id, self.env_kwargs, self.every = env_id, dict(env_kwargs), max(1, int(every))
        self.hparams, self.show, self.seed = hparams, int(show), int(seed)
        self.best: list[tuple[tuple[bool, float], np.ndarray, dict[str, Any], dict[str, Any]]] = []
        self._last = 0

    def _on_training_start(self) -> None:
        self._env = gym.make(self.env_id, **self.env_kwargs)
        self._problem = self._env.unwrapped.problem
        record_hparams(self.logger, self.hparams, ("rollout/ep_rew_mean", "design/feasible_rate", "eval/mean_reward"))
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        spec = self._problem.objective
        for i, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            if not done or "objectives" not in info:
                continue
            key = (bool(info["feasible"]), float(spec.score(info["objectives"])))
            if len(self.best) < self.show or key > self.best[-1][0]:
                design = self.training_env.get_attr("final_design", indices=[i])[0]
                if design is not None:
                    self.best.append((key, np.array(design), dict(info["conditions"]), info))
                    self.best.sort(key=lambda entry: entry[0], reverse=True)
                    del self.best[self.show :]
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            self.log_pictures()
        return True

    def _on_training_end(self) -> None:
        self.log_pictures()
        self.logger.dump(self.num_timesteps)
        self._env.close()

    def log_pictures(self) -> None:
        from stable_baselines3.common.logger import Image

        from designgym.agents.pictures import caption, design_grid_image

        exclude = ("stdout", "log", "json", "csv")
        main = self._problem.objective.name
        if self.best:
            images = [self._problem.render(d, c) for _, d, c, _ in self.best]
            captions = [caption(info, main) for *_, info in self.best]
            grid = design_grid_image(images, captions, title=f"best so far, step {self.num_timesteps}")
            self.logger.record("designs/best", Image(grid, "HWC"), exclude=exclude)
        normalizer = self.model.get_vec_normalize_env()

        def act(obs: Any) -> np.ndarray:
            if normalizer is not None:
                obs = normalizer.normalize_obs(obs)
            return self.model.predict(obs, deterministic=True)[0]

        shown = rollout(self._env, act, self.show, seed=20_000 + self.seed)
        images = [self._problem.render(d, c) for d, c in zip(shown["designs"], shown["conditions"], strict=True)]
        captions = [caption(e, main) for e in shown["evaluations"]]
        grid = design_grid_image(images, captions, title=f"policy on fixed conditions, step {self.num_timesteps}")
        self.logger.record("designs/evaluation", Image(grid, "HWC"), exclude=exclude)


def record_hparams(logger: Any, hparams: dict[str, Any], metrics: tuple[str, ...]) -> None:
    """A run's hyperparameters for TensorBoard's HParams tab, compared by the scalars ``metrics``
    (values that are not numbers, strings or booleans are shown as text)."""
    from stable_baselines3.common.logger import HParam

    shown = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
    logger.record("hparams", HParam(shown, dict.fromkeys(metrics, 0.0)), exclude=("stdout", "log", "json", "csv"))


class AtomicEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` with ``evaluations.npz`` and ``best_model.zip`` in ``run_dir``, each
    written to a temporary file and renamed, so a crash never leaves half of either.

    SB3 writes both in place; here it writes the evaluations into a scratch folder that is renamed
    over ``evaluations.npz`` after each evaluation, and a new best model is saved by
    :func:`~designgym.agents.files.save_model_atomic`.
    """

    def __init__(self, eval_env: VecEnv, run_dir: Path, n_eval_episodes: int, eval_freq: int) -> None:
        self.run_dir = Path(run_dir)
        self._scratch = self.run_dir / ".evaluations.tmp"
        super().__init__(
            eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq, log_path=str(self._scratch),
            best_model_save_path=None, deterministic=True, verbose=0, warn=False,
            callback_on_new_best=_SaveModel(self.run_dir / "best_model.zip"),
            callback_after_eval=_Publish(self._scratch / "evaluations.npz", self.run_dir / "evaluations.npz"),
        )

    def discard_partial(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)


class _SaveModel(BaseCallback):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _on_step(self) -> bool:
        save_model_atomic(self.model, self.path)
        return True


class _Publish(BaseCallback):
    """Renames a file written in full over its published name."""

    def __init__(self, written: Path, published: Path) -> None:
        super().__init__()
        self.written, self.published = written, published

    def _on_step(self) -> bool:
        if self.written.exists():
            os.replace(self.written, self.published)
        return True


def restore_evaluations(evaluator: Any, path: Path) -> None:
    """A resumed run's EvalCallback starts from the earlier evaluations, so evaluations.npz keeps them."""
    if not path.exists():
        return
    with np.load(path) as data:
        evaluator.evaluations_timesteps = data["timesteps"].tolist()
        evaluator.evaluations_results = data["results"].tolist()
        evaluator.evaluations_length = data["ep_lengths"].tolist()
        if len(evaluator.evaluations_results):
            evaluator.best_mean_reward = float(np.max(np.mean(data["results"], axis=1)))
