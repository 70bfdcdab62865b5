"""Search distillation: a one-shot designer trained from the env's reward alone.

Expert iteration (Anthony et al., 2017) for design envs. A deterministic policy maps the
observation (the conditions, and in delta mode the current latent) to an action; each round:

1. **Act.** The policy runs its own episodes in the training envs (what the monitor files, the
   learning curve and the callbacks see); each finished episode is a *case*.
2. **Improve.** For each new case the candidates are the latent the policy reached and the best
   latents of the ``neighbours`` most similar earlier cases (nearest conditions); the best of
   them by the gated key of :mod:`designgym.agents.search` (feasible first, then the env's
   reward: objective minus weighted violations) starts a short CMA-ES (``search_budget`` judged
   designs in all, ``rescue_budget`` more while nothing legal has been found). Earlier cases are
   revisited too (``revisit``): a search with the small step ``revisit_sigma`` from the better of
   the policy's current answer and the case's best so far.
3. **Distill.** The policy is fitted to the best actions by regression (mean squared error,
   ``gradient_steps`` Adam steps per round on the buffer of cases), or, with
   ``policy_kwargs=dict(answer="nearest")``, remembers them: it answers with the best action of
   the nearest buffered case (see :class:`~designgym.agents.distill_policy.DistillPolicy`).

With ``policy_kwargs=dict(answer="vote")`` or ``dict(answer="rank")`` and ``vote_briefs=N``
(direct mode), training ends with N fresh briefs, each judged on the remembered actions of its
``vote_latents`` nearest states; the policy then answers a brief with the remembered action that
did best over the most similar judged briefs (the vote), or with the one a ranker fitted to the
judged briefs puts first (no more env steps: a few minutes of gradient steps). These judged
designs are part of ``total_timesteps``: the rounds stop early enough to leave them.

Why this shape (measured on Extrusion-v2, MBB-v2 and Cantilever-v1, see benchmarks/RESULTS.md):
the best legal designs of a search lie on the edge of the legal region (perturbing them by 0.01
in action units leaves 48 % of the extrusions and 88 % of the MBB beams legal), so a policy must
land close to its targets, and its targets must be a smooth function of the conditions. A search
from the policy's own latent, neighbours' latents as candidates and revisits with a small step
all keep each target near what the policy and its neighbours already do, instead of jumping to
another topology per case, which a regression would average into a design that is neither.

In direct mode (one-step episodes) the target of a case is its best latent. In delta mode the
search looks for the best final latent within reach of the start (``episode_length`` steps of
``step_size``), and every state the policy visited is labelled with the step that leads there
evenly in the steps left (DAgger's labelling of the learner's own states by the expert).

Each judged design counts as one env step (a decode and a judgement, as an env step costs), so the
recipe compares with PPO and SAC at equal env steps. It needs the env itself for its searches: a
registered :class:`~designgym.envs.latent_env.LatentDesignEnv` (any env ``register_design_env``
makes), built again from the training envs' spec.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, Schedule
from stable_baselines3.common.utils import safe_mean

# The policy classes live beside the algorithm's name too: saved agents name them as distill.DistillPolicy.
from designgym.agents.distill_policy import BRIEF_ANSWERS, CaseBuffer, DistillPolicy, MultiInputDistillPolicy
from designgym.agents.search import gated_key, judge, search

__all__ = ["CaseBuffer", "DistillPolicy", "MultiInputDistillPolicy", "SearchDistillation"]


class SearchDistillation(BaseAlgorithm):
    """Search distillation (expert iteration) for design envs; see the module's notes.

    Args:
        policy: ``"MlpPolicy"`` or ``"MultiInputPolicy"`` (or a :class:`DistillPolicy` class).
        env: the training envs (a registered design env).
        learning_rate: Adam's step size (a number or a schedule of the remaining progress).
        search_budget: judged designs per case and search: the candidates (the policy's own
            design, the neighbours') and CMA-ES around the best of them.
        search_sigma: the CMA-ES step size of new cases, in action units, at the start of training.
        search_sigma_final: that step size at the end; it moves linearly in between, so that early
            searches explore and late ones refine (``None``: ``search_sigma`` throughout).
        neighbours: best latents of the most similar earlier cases tried as candidates.
        rescue_budget: more judged designs for a case while none of its designs is legal.
        cases_per_round: new cases each round (default: the number of envs).
        revisit: share of each round's searches spent on earlier cases.
        revisit_sigma: the CMA-ES step size of a revisit.
        metric_cases: with a nearest-case policy in direct mode, fit the weights of its distance
            on this many buffered cases (0: plain distance): each case is answered with the best
            latent of its nearest other case, judged under its own conditions, and the weights
            (a coordinate search over factors of each feature's weight) that make those answers
            best on average are kept. Refitted each time the buffer has doubled, from 64 cases,
            and at the end of ``learn``; its judged designs count as env steps.
        vote_briefs: with a vote or rank policy (``answer="vote"`` or ``"rank"``) in direct mode,
            briefs drawn at the end of ``learn`` (after the last fit of the distance) and judged on
            the remembered actions of their ``vote_latents`` nearest states; ``vote_briefs *
            vote_latents`` of the ``total_timesteps`` are kept for them (fewer briefs, with a
            warning, where that is more than half the steps).
        vote_latents: remembered actions tried on each judged brief.
        buffer_size: cases kept for fitting (the oldest leave first).
        batch_size: states per gradient step.
        gradient_steps: Adam steps after each round.
        policy_kwargs: arguments of the policy (``net_arch``, ``activation_fn``).
        stats_window_size, tensorboard_log, verbose, seed, device: as for every SB3 algorithm.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": DistillPolicy,
        "MultiInputPolicy": MultiInputDistillPolicy,
    }
    policy: DistillPolicy

    def __init__(
        self,
        policy: str | type[DistillPolicy],
        env: Any,
        learning_rate: float | Schedule = 1e-3,
        search_budget: int = 32,
        search_sigma: float = 0.3,
        search_sigma_final: float | None = 0.05,
        neighbours: int = 4,
        rescue_budget: int = 64,
        cases_per_round: int | None = None,
        revisit: float = 0.75,
        revisit_sigma: float = 0.02,
        metric_cases: int = 0,
        vote_briefs: int = 0,
        vote_latents: int = 8,
        buffer_size: int = 100_000,
        batch_size: int = 256,
        gradient_steps: int = 128,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy, env, learning_rate, policy_kwargs=policy_kwargs, stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log, verbose=verbose, device=device, support_multi_env=True,
            seed=seed, supported_action_spaces=(spaces.Box,),
        )
        checks = {
            "search_budget": (search_budget, search_budget >= 1, "at least 1"),
            "search_sigma": (search_sigma, np.isfinite(search_sigma) and search_sigma > 0, "a positive number"),
            "search_sigma_final": (search_sigma_final, search_sigma_final is None
                                   or (np.isfinite(search_sigma_final) and search_sigma_final > 0),
                                   "a positive number"),
            "neighbours": (neighbours, neighbours >= 0, "at least 0"),
            "rescue_budget": (rescue_budget, rescue_budget >= 0, "at least 0"),
            "cases_per_round": (cases_per_round, cases_per_round is None or cases_per_round >= 1, "at least 1"),
            "revisit": (revisit, np.isfinite(revisit) and 0 <= revisit < 1, "in [0, 1)"),
            "revisit_sigma": (revisit_sigma, np.isfinite(revisit_sigma) and revisit_sigma > 0, "a positive number"),
            "metric_cases": (metric_cases, metric_cases == 0 or metric_cases >= 2, "0 (off) or at least 2"),
            "vote_briefs": (vote_briefs, vote_briefs >= 0, "at least 0"),
            "vote_latents": (vote_latents, vote_latents >= 1, "at least 1"),
            "buffer_size": (buffer_size, buffer_size >= 1, "at least 1"),
            "batch_size": (batch_size, batch_size >= 1, "at least 1"),
            "gradient_steps": (gradient_steps, gradient_steps >= 0, "at least 0"),
        }
        for name, (value, ok, what) in checks.items():
            if not ok:
                raise ValueError(f"{name} must be {what}, got {value!r}")
        if self._vec_normalize_env is not None:
            raise ValueError("search distillation normalises observations inside its policy; leave `normalize` out "
                             "of its hyperparameters")
        self.search_budget = int(search_budget)
        self.search_sigma = float(search_sigma)
        self.search_sigma_final = None if search_sigma_final is None else float(search_sigma_final)
        self.neighbours = int(neighbours)
        self.rescue_budget = int(rescue_budget)
        self.cases_per_round = cases_per_round
        self.revisit = float(revisit)
        self.revisit_sigma = float(revisit_sigma)
        self.metric_cases = int(metric_cases)
        self.metric_fitted_at = 0  # buffered cases at the last fit of the memory's distance
        self.vote_briefs = int(vote_briefs)
        self.vote_latents = int(vote_latents)
        self.buffer_size = int(buffer_size)
        self.batch_size = int(batch_size)
        self.gradient_steps = int(gradient_steps)
        self.replay_buffer: CaseBuffer | None = None
        self._judge_env: Any = None
        self._search_rng: np.random.Generator | None = None
        self._steps_to_report = 0
        self._normalized_states = 0
        self._round_stats: dict[str, list[float]] = {}
        if _init_setup_model:
            self._setup_model()
        if _init_setup_model and self.metric_cases and self.policy.answer == "regression":
            raise ValueError("metric_cases fits the distance of a nearest-case policy; add answer='nearest' to "
                             "policy_kwargs or leave metric_cases out")
        if _init_setup_model and (self.policy.answer in BRIEF_ANSWERS) != bool(self.vote_briefs):
            raise ValueError("a vote or rank policy answers from judged briefs: give both answer='vote' (or 'rank') "
                             f"in policy_kwargs and vote_briefs > 0, or neither (answer={self.policy.answer!r}, "
                             f"vote_briefs={self.vote_briefs})")
        if _init_setup_model and self.vote_briefs and self.env is not None \
                and self.judge_env().action_mode != "direct":
            raise ValueError("vote_briefs judges briefs for one-step (direct mode) envs; this env acts in "
                             f"{self.judge_env().action_mode} mode: leave vote_briefs out")

    # -- set-up ----------------------------------------------------------------------------------

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule,
                                        **self.policy_kwargs).to(self.device)
        if self.replay_buffer is None:
            self.replay_buffer = CaseBuffer(self.buffer_size)
        self._search_rng = np.random.default_rng(self.seed)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "replay_buffer", "_judge_env", "_round_stats", "_open_states"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    def save_replay_buffer(self, path: Any) -> None:
        """The case buffer as plain arrays (``numpy.savez``), whatever the file's name."""
        assert self.replay_buffer is not None
        with open(path, "wb") as handle:
            np.savez(handle, **self.replay_buffer.to_arrays())

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.replay_buffer = CaseBuffer.from_arrays(data)

    def judge_env(self) -> Any:
        """The design env the searches judge with: the training envs' own, built again from their spec."""
        if self._judge_env is None:
            from designgym.envs.latent_env import LatentDesignEnv

            assert self.env is not None, "learn() needs an env"
            spec = self.env.get_attr("spec", [0])[0]
            if spec is None:
                raise ValueError("search distillation needs a registered design env (one with a spec) to search in")
            # The envs' own spec, without the wrappers put around them after make (SB3's Monitor).
            made = gym.make(dataclasses.replace(spec, additional_wrappers=())).unwrapped
            if not isinstance(made, LatentDesignEnv):
                raise ValueError(f"search distillation searches the latent space of design envs; {spec.id} is a "
                                 f"{type(made).__name__}, not a LatentDesignEnv")
            self._judge_env = made
        return self._judge_env

    # -- training --------------------------------------------------------------------------------

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "distill",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SearchDistillation:
        total_timesteps, callback = self._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name,
                                                      progress_bar)
        callback.on_training_start(locals(), globals())
        env = self.judge_env()
        briefs = self._briefs_for(total_timesteps - self.num_timesteps)
        reserved = briefs * self.vote_latents  # the judged briefs' designs, at the end
        rounds = 0
        while self.num_timesteps < total_timesteps - reserved:
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if not self._round(env, callback, total_timesteps):
                break
            self.train()
            if self._metric_due() and not self._count(self._fit_metric(env), callback):
                break
            rounds += 1
            if log_interval and rounds % log_interval == 0:
                self._dump_logs()
        if self.metric_cases and self.replay_buffer and len(self.replay_buffer) > self.metric_fitted_at:
            self._count(self._fit_metric(env), callback)  # the final memory's distance
        if reserved and len(self.policy.memory_features):
            self._judge_briefs(env, callback, briefs, progress_bar)
        callback.on_training_end()
        return self

    def _briefs_for(self, steps: int) -> int:
        """The briefs judged at the end of a run of ``steps`` env steps: ``vote_briefs``, or as
        many as half the steps hold (a short run of the shipped settings still searches)."""
        if not self.vote_briefs:
            return 0
        briefs = min(self.vote_briefs, steps // (2 * self.vote_latents))
        if briefs < self.vote_briefs:
            warnings.warn(f"vote_briefs={self.vote_briefs} judged briefs of {self.vote_latents} designs would take "
                          f"more than half of the {steps:,} env steps; judging {briefs} (the policy answers by the "
                          "nearest case where there are none)", stacklevel=3)
        return briefs

    def _round(self, env: Any, callback: BaseCallback, total_timesteps: int) -> bool:
        """One round: the policy's episodes, the searches, the buffer. False if a callback said stop."""
        self._round_stats = {"search_gain": [], "target_feasible": [], "policy_feasible": [], "revisit_gain": []}
        wanted = self.cases_per_round or self.n_envs
        finished = self._collect(env, callback, wanted)
        if finished is None:
            return False
        n_old = int(round(len(finished) * self.revisit / (1 - self.revisit))) if len(self.replay_buffer) else 0
        assert self._search_rng is not None
        old = (self._search_rng.choice(list(self.replay_buffer.ids()), size=min(n_old, len(self.replay_buffer)),
                                       replace=False) if n_old else [])
        for case, states in finished:
            if not self._count(self._improve_new(env, case, states), callback):
                return False
        for case_id in old:
            if not self._count(self._improve_old(env, int(case_id)), callback):
                return False
        return True

    def _sigma(self) -> float:
        if self.search_sigma_final is None:
            return self.search_sigma
        done = 1.0 - self._current_progress_remaining
        return self.search_sigma + (self.search_sigma_final - self.search_sigma) * done

    def _collect(self, env: Any, callback: BaseCallback, wanted: int) -> list[tuple[dict, list]] | None:
        """Run the policy in the training envs until ``wanted`` episodes have ended; each ended one
        is a case: its conditions, start latent, reached latent, and the states it passed."""
        assert self.env is not None and self._last_obs is not None
        n_envs = self.env.num_envs
        open_states: list[list[tuple[Any, np.ndarray, int]]] = (getattr(self, "_open_states", None)
                                                                 or [[] for _ in range(n_envs)])
        finished: list[tuple[dict, list]] = []
        length = env.episode_length
        while len(finished) < wanted:
            obs = self._last_obs
            actions, _ = self.predict(obs, deterministic=True)
            for i in range(n_envs):
                single = _index(obs, i)
                open_states[i].append((single, _latent_of(single, env), length - len(open_states[i])))
            new_obs, rewards, dones, infos = self.env.step(actions)
            self.num_timesteps += n_envs
            self._update_info_buffer(infos, dones)
            callback.update_locals(locals())
            if not callback.on_step():
                return None
            for i in range(n_envs):
                if not dones[i]:
                    continue
                info = infos[i]
                states = open_states[i]
                case = {"conditions": dict(info["conditions"]), "start": states[0][1],
                        "reached": np.asarray(info["latent"], dtype=np.float32)}
                finished.append((case, states))
                self._round_stats["policy_feasible"].append(float(info["feasible"]))
                open_states[i] = []
            self._last_obs = new_obs
        self._open_states = open_states
        return finished

    def _count(self, judged: int, callback: BaseCallback) -> bool:
        """Judged designs are env steps: count them, calling the callbacks once per ``n_envs`` as a
        vector step would (no episode ends in them)."""
        self._steps_to_report += judged
        n_envs = self.n_envs
        infos: list[dict[str, Any]] = [{} for _ in range(n_envs)]  # noqa: F841 - read by callbacks via locals()
        dones = np.zeros(n_envs, dtype=bool)  # noqa: F841
        while self._steps_to_report >= n_envs:
            self._steps_to_report -= n_envs
            self.num_timesteps += n_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
        return True

    def _bounds(self, env: Any, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where a case's final latent may lie, in action units: the whole box in direct mode; in
        delta mode, what ``episode_length`` steps reach from the start."""
        d = env.generator.latent_dim
        if env.action_mode == "direct":
            return -np.ones(d), np.ones(d)
        reach = env.episode_length * env.step_size
        return np.maximum(-1.0, start - reach), np.minimum(1.0, start + reach)

    def _search(self, env: Any, conditions: dict[str, Any], candidates: list[np.ndarray],
                incumbent: tuple[tuple[bool, float], np.ndarray] | None, sigma: float,
                bounds: tuple[np.ndarray, np.ndarray]) -> tuple[tuple[bool, float], np.ndarray, float, int]:
        """Judge the candidates, then CMA-ES from the best of them and the incumbent; returns the best
        key and action, the score of the first candidate, and how many designs were judged."""
        assert self._search_rng is not None
        low, high = bounds
        candidates = [np.clip(np.asarray(c, dtype=np.float32), low, high) for c in candidates]
        judged = judge(env, np.stack(candidates), conditions)
        i = max(range(len(candidates)), key=judged.key)
        best = (judged.key(i), candidates[i])
        if incumbent is not None and incumbent[0] > best[0]:
            best = incumbent
        used = len(candidates)
        budget = self.search_budget - used
        if not best[0][0]:
            budget += self.rescue_budget  # nothing legal yet: look further
        if budget > 0:
            seed = int(self._search_rng.integers(2**31 - 1))
            snap = search(env, conditions, "cmaes", [budget], seed=seed, start=best[1], sigma=sigma, bounds=bounds)[0]
            used += budget
            key = gated_key(snap["feasible"], snap["score"])
            if key > best[0]:
                best = (key, snap["action"].astype(np.float32))
        return best[0], best[1], float(judged.scores[0]), used

    def _neighbour_actions(self, env: Any, conditions: dict[str, Any]) -> list[np.ndarray]:
        """The best actions of the ``neighbours`` buffered cases with the nearest conditions."""
        if not self.neighbours or not len(self.replay_buffer):
            return []
        keys = self.replay_buffer.condition_vectors(env.problem)
        here = env.problem.conditions_vector(conditions)
        nearest = np.argsort(np.sum((keys - here) ** 2, axis=1), kind="stable")[: self.neighbours]
        cases = self.replay_buffer.cases
        return [cases[int(k)]["action"] for k in nearest]

    def _improve_new(self, env: Any, case: dict[str, Any], states: list) -> int:
        bounds = self._bounds(env, case["start"])
        candidates = [case["reached"], *self._neighbour_actions(env, case["conditions"])]
        key, action, policy_score, used = self._search(env, case["conditions"], candidates, None, self._sigma(),
                                                       bounds)
        self._round_stats["search_gain"].append(key[1] - policy_score)
        self._round_stats["target_feasible"].append(float(key[0]))
        stored = {"conditions": case["conditions"], "start": case["start"], "action": action,
                  "feasible": key[0], "score": key[1]}
        self.replay_buffer.add(stored, states)
        return used

    def _improve_old(self, env: Any, case_id: int) -> int:
        case = self.replay_buffer.case(case_id)
        bounds = self._bounds(env, case["start"])
        incumbent = (gated_key(case["feasible"], case["score"]), case["action"])
        if env.action_mode == "direct":  # what the policy answers now: the search starts from it if it is better
            obs = self.replay_buffer.obs[self.replay_buffer.first_state(case_id)]
            candidates = [self.predict(obs, deterministic=True)[0].astype(np.float32)]
        else:
            candidates = [case["action"]]
        key, action, _, used = self._search(env, case["conditions"], candidates, incumbent, self.revisit_sigma,
                                            bounds)
        if key > incumbent[0]:
            self._round_stats["revisit_gain"].append(key[1] - incumbent[0][1])
            case.update(action=action, feasible=key[0], score=key[1])
        return used

    def _labels(self, env: Any, indices: np.ndarray) -> np.ndarray:
        """The expert's action in each buffered state: the case's best latent (direct), or the step
        toward it spread evenly over the steps left (delta)."""
        buffer = self.replay_buffer
        targets = np.stack([buffer.case(buffer.state_case[i])["action"] for i in indices])
        if env.action_mode == "direct":
            return targets
        latents = np.stack([buffer.state_latent[i] for i in indices])
        left = np.array([max(buffer.state_left[i], 1) for i in indices], dtype=np.float32)[:, None]
        return np.clip((targets - latents) / (left * env.step_size), -1.0, 1.0)

    def train(self) -> None:
        """``gradient_steps`` Adam steps of mean squared error between the policy's actions and
        the expert's on random states of the buffer; a nearest-case, vote or rank policy
        remembers every buffered state and its expert action instead."""
        buffer = self.replay_buffer
        if buffer is None or not buffer.obs:
            return
        env = self.judge_env()
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        unseen = min(buffer.added_states - self._normalized_states, len(buffer.obs))
        if unseen > 0:  # the normaliser learns the states it has not seen yet, the newest of the buffer
            obs_tensor, _ = self.policy.obs_to_tensor(_stack(buffer.obs[-unseen:]))
            with th.no_grad():
                self.policy.update_normalizer(self.policy.features(obs_tensor))
        self._normalized_states = buffer.added_states
        losses = []
        assert self._search_rng is not None
        if self.policy.answer != "regression":  # the policy answers from a memory of every buffered state
            self._remember(env)
        for _ in range(self.gradient_steps if self.policy.answer == "regression" else 0):
            indices = self._search_rng.integers(len(buffer.obs), size=min(self.batch_size, len(buffer.obs)))
            obs_tensor, _ = self.policy.obs_to_tensor(_stack([buffer.obs[i] for i in indices]))
            target = th.as_tensor(self._labels(env, indices), device=self.device)
            loss = th.mean((self.policy(obs_tensor) - target) ** 2)
            self.policy.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.policy.optimizer.step()
            losses.append(float(loss.item()))
        self.policy.set_training_mode(False)
        self._n_updates += len(losses)
        if losses:
            self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.record("train/cases", len(buffer))
        self.logger.record("train/search_sigma", self._sigma())
        for key, values in self._round_stats.items():
            if values:
                self.logger.record(f"distill/{key}", float(np.mean(values)))

    def _remember(self, env: Any, chunk: int = 4096) -> None:
        """Fill a nearest-case policy's memory with every buffered state and the expert's action in it."""
        buffer = self.replay_buffer
        features, actions = [], []
        for start in range(0, len(buffer.obs), chunk):
            indices = np.arange(start, min(start + chunk, len(buffer.obs)))
            obs_tensor, _ = self.policy.obs_to_tensor(_stack([buffer.obs[i] for i in indices]))
            with th.no_grad():
                features.append(self.policy.features(obs_tensor))
            actions.append(th.as_tensor(self._labels(env, indices)))
        self.policy.remember(th.cat(features), th.cat(actions))
        self.logger.record("train/memory", len(buffer.obs))

    def _metric_due(self) -> bool:
        cases = len(self.replay_buffer)
        return bool(self.metric_cases) and cases >= 64 and cases >= 2 * self.metric_fitted_at

    def _fit_metric(self, env: Any, factors: tuple[float, ...] = (0.0, 0.25, 0.5, 2.0, 4.0), sweeps: int = 2) -> int:
        """Fit the weights of a nearest-case policy's distance by leave-one-out answers on up to
        ``metric_cases`` buffered cases (direct mode); returns the designs judged."""
        self.metric_fitted_at = len(self.replay_buffer)
        policy, buffer = self.policy, self.replay_buffer
        if env.action_mode != "direct" or len(policy.memory_features) < 2:
            return 0
        assert self._search_rng is not None
        with th.no_grad():
            memory = policy.scaled(policy.memory_features)
        actions = policy.memory_actions.cpu().numpy()
        n = len(memory)
        asked = th.as_tensor(self._search_rng.choice(n, size=min(self.metric_cases, n), replace=False),
                             device=memory.device)
        spread = memory.std(dim=0) > 1e-6  # features that differ between cases (in direct mode, the conditions)
        cache: dict[tuple[int, int], float] = {}

        def answer_score(i: int, j: int) -> float:
            if (i, j) not in cache:
                conditions = buffer.case(buffer.state_case[i])["conditions"]
                cache[(i, j)] = float(judge(env, actions[j][None], conditions).scores[0])
            return cache[(i, j)]

        def quality(weights: th.Tensor) -> float:
            root = th.sqrt(weights * spread)
            distances = th.cdist(memory[asked] * root, memory * root)
            distances[th.arange(len(asked), device=memory.device), asked] = float("inf")  # leave the case out
            answers = distances.argmin(dim=1)
            return float(np.mean([answer_score(int(i), int(j)) for i, j in zip(asked, answers, strict=True)]))

        weights = policy.memory_weights.detach().clone()
        best = quality(weights)
        for _ in range(sweeps):
            for f in th.nonzero(spread).flatten().tolist():
                for factor in factors:
                    trial = weights.clone()
                    trial[f] = weights[f] * factor if weights[f] > 0 else factor
                    value = quality(trial)
                    if value > best + 1e-9:
                        best, weights = value, trial
        policy.memory_weights.copy_(weights)
        self.logger.record("train/metric_answer_score", best)
        return len(cache)

    def _judge_briefs(self, env: Any, callback: BaseCallback, briefs: int, progress: bool = False) -> None:
        """Draw ``briefs`` briefs, judge each on the remembered actions of its ``vote_latents``
        nearest states, and give the policy what they scored (scaled within each brief)."""
        policy = self.policy
        self._check_observations(env)
        assert self._search_rng is not None
        actions = policy.memory_actions.cpu().numpy()
        k = min(self.vote_latents, len(actions))
        features, tried, scores = [], [], []
        for _ in range(briefs):
            case = env.sample_case(self._search_rng)
            obs, _ = env.reset(options=case)
            with th.no_grad():
                feature = policy.features(policy.obs_to_tensor(obs)[0])
                nearest = policy.candidates(policy.scaled(feature), k)[0].cpu()
            judged = judge(env, actions[nearest.numpy()], case["conditions"])
            features.append(feature[0].cpu())
            tried.append(nearest)
            scores.append(th.as_tensor(_scaled_within(judged.feasible, judged.scores), dtype=th.float32))
            if not self._count(k, callback):
                break
        if features:
            policy.remember_briefs(th.stack(features), th.stack(tried), th.stack(scores))
            if policy.answer == "rank":
                score = policy.fit_ranker(seed=self.seed or 0, progress=progress)
                self.logger.record("train/ranker_first_choice_score", score)
        self.logger.record("train/judged_briefs", len(features))

    def _check_observations(self, env: Any) -> None:
        """The briefs are observed through the judge env; its observation of a buffered case must
        be what the training envs showed (a wrapper that changes observations would break that)."""
        buffer = self.replay_buffer
        case_id = buffer.ids()[-1]
        case = buffer.case(case_id)
        options = {"conditions": case["conditions"]}
        if env.initial_latent == "random":
            options["latent"] = case["start"]
        obs, _ = env.reset(options=options)
        seen = buffer.obs[buffer.first_state(case_id)]
        same = (all(np.allclose(obs[key], seen[key], atol=1e-5) for key in obs) if isinstance(obs, dict)
                else np.allclose(obs, seen, atol=1e-5))
        if not same:
            raise ValueError("vote_briefs observes fresh briefs through the env itself, but the training envs show "
                             "other observations (a wrapper changes them); train without that wrapper or leave "
                             "vote_briefs out")

    def _dump_logs(self) -> None:
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if self.ep_info_buffer:
            self.logger.record("rollout/ep_rew_mean", safe_mean([ep["r"] for ep in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([ep["l"] for ep in self.ep_info_buffer]))
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)


def _scaled_within(legal: np.ndarray, reward: np.ndarray) -> np.ndarray:
    """One brief's judged designs scored in [0, 1]: legal designs by their reward, from 0 for the
    worst legal one to 1 for the best; an illegal design 0 (when none is legal, by the reward)."""
    legal, reward = np.asarray(legal, dtype=bool), np.asarray(reward, dtype=np.float64)
    pool = reward[legal] if legal.any() else reward
    low, high = float(pool.min()), float(pool.max())
    scaled = (reward - low) / (high - low) if high > low else np.ones_like(reward)
    return np.where(legal | ~legal.any(), np.clip(scaled, 0.0, 1.0), 0.0)


def _index(obs: Any, i: int) -> Any:
    if isinstance(obs, dict):
        return {k: np.array(v[i]) for k, v in obs.items()}
    return np.array(obs[i])


def _stack(observations: list[Any]) -> Any:
    if observations and isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def _latent_of(obs: Any, env: Any) -> np.ndarray:
    """The latent of a design env's observation, in action units (its first part)."""
    if isinstance(obs, dict):
        return np.asarray(obs["latent"], dtype=np.float32)
    return np.asarray(obs[: env.generator.latent_dim], dtype=np.float32)
