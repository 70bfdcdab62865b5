"""`LatentDesignEnv`: the Gymnasium environment that joins one problem and one generator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from designgym.envs.env_arguments import (
    check_action,
    check_choice,
    check_generator_fits,
    check_number,
    check_partial_conditions,
    resolve_weights,
)
from designgym.envs.problem import Conditions, Evaluation, Problem
from designgym.generators.base import Generator

ActionMode = Literal["direct", "delta"]
ObservationLayout = Literal["flat", "dict"]


class LatentDesignEnv(gym.Env):
    """Steer a generator's latent vector toward a good design for the episode's conditions.

    ## Description
    Each episode draws conditions (a load case, a brief) from the problem's conditions space. The
    agent moves a latent vector ``z``; the generator decodes it to a design; the problem judges
    the design. In ``"direct"`` mode the action *is* the latent and the episode is one step long
    (a contextual bandit: conditions in, design out). In ``"delta"`` mode each action moves the
    latent by a bounded step over an episode of ``episode_length`` steps. A conditional generator
    (``generator.conditions_dim > 0``) decodes each latent together with the episode's
    conditions vector, so the same latent gives a design fitted to each brief.

    ## Action Space
    ``Box(-1, 1, (latent_dim,), float32)``. Direct: ``z = latent_bound * a``. Delta:
    ``z <- clip(z + step_size * latent_bound * a, -latent_bound, latent_bound)``. Finite actions
    outside ``[-1, 1]`` are clipped; a wrong shape or a NaN/inf entry raises ``ValueError``.

    ## Observation Space
    With ``observation_layout="flat"`` (default) one ``Box`` of ``float32`` concatenating, in order:

    - ``latent`` (``latent_dim``): ``z / latent_bound``, in [-1, 1];
    - ``conditions`` (``problem.conditions_dim``): the conditions scaled to [-1, 1];
    - ``objective`` (1): the current design's reward objective, higher is better, in units of
      ``objective_scale``, clipped to ``[-feature_clip, feature_clip]``;
    - ``violations`` (one per constraint, in ``problem.violation_names`` order), clipped to
      ``[0, feature_clip]``;
    - ``time_left`` (1): fraction of the episode's steps still to take, in [0, 1].

    In direct mode the observation a reset returns has no design yet: its ``objective`` and
    ``violations`` are 0 (the reset decodes and judges nothing, so an episode costs one decode and
    one evaluation; :meth:`start_evaluation` judges the start design on demand).

    With ``observation_layout="dict"`` the same parts as a ``Dict`` space under those keys.

    ## Rewards
    Direct: ``reward = objective - sum_i weight_i * violation_i``, the design's worth
    (:meth:`design_score`): its reward objective in units of ``objective_scale`` minus the weighted
    violations. Delta: ``reward = objective_improvement - sum_i weight_i * violation_i`` where
    ``objective_improvement`` is the change of the reward objective from the previous design to
    the new one; the first "previous" design is the one decoded from the starting latent. Each
    part is in ``info["reward_parts"]`` (``"objective"`` or ``"objective_improvement"``, and
    ``"penalty/<constraint>"``, penalties negative) and the parts add up to the reward. A step's
    ``info`` also holds ``"objectives"``, ``"violations"``, ``"feasible"``, ``"conditions"``,
    ``"latent"`` (the current latent over ``latent_bound``, in action units) and ``"cost"``: the
    sum of the design's violations, ``0.0`` exactly when every rule holds, for constrained-RL
    methods that take the constraint as a separate signal (as Safety-Gymnasium's envs give it)
    instead of as a penalty inside the reward. A reset's ``info`` holds ``"conditions"`` and
    ``"latent"``, and in delta mode the start design's judgement as well.

    ## Starting State
    Conditions are drawn from the conditions space with the env's seeded generator, or fixed by
    ``reset(options={"conditions": {...}})`` (keys left out are drawn) or by the ``conditions``
    argument. The latent starts at zero (``initial_latent="zeros"``, the prior's mean), at a
    draw from the prior clipped to the bound (``"random"``), or at ``options={"latent": z}``.

    ## Episode End
    Direct: after one step. Delta: after ``episode_length`` steps; this ends the episode as
    ``terminated`` because the horizon is part of the task and ``time_left`` is observed.

    ## Arguments
    Args:
        problem: the :class:`Problem`, or the name of a registered problem.
        generator: the :class:`Generator`, or the name of a shipped one.
        action_mode: ``"direct"`` or ``"delta"``.
        episode_length: steps per episode in delta mode (direct mode is always 1).
        step_size: largest latent move per step in delta mode, as a fraction of ``latent_bound``.
        latent_bound: latents are kept in ``[-latent_bound, latent_bound]`` (3 = three prior sigmas).
        initial_latent: ``"zeros"`` or ``"random"``.
        observation_layout: ``"flat"`` or ``"dict"``.
        violation_weights: weight per constraint (a number applies to all); defaults to the
            problem's ``default_violation_weights``, or 1.
        objective_scale: divides the objective in rewards; defaults to the problem's.
        conditions: fixed conditions for every episode (a partial dict fixes only those keys).
        feature_clip: bound of the objective and violation features in observations.
        render_mode: ``None`` or ``"rgb_array"``.
        device: where the generator runs: ``None``/``"auto"`` (CUDA when present), ``"cpu"``,
            ``"cuda"``. Only used when ``generator`` is a name.
        repair: pass every decoded design through the problem's :meth:`~Problem.repair` before it
            is judged (the structures: the densest cells at exactly the volume budget, joined to
            the supports). The design an episode shows and judges is the repaired one.

    A conditional generator may be conditioned on some of the problem's conditions only (its
    ``condition_keys``, a subset of the problem's): it decodes with those, and the agent still
    observes them all.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        problem: Problem | str,
        generator: Generator | str,
        *,
        action_mode: ActionMode = "direct",
        episode_length: int = 16,
        step_size: float = 0.2,
        latent_bound: float = 3.0,
        initial_latent: Literal["zeros", "random"] = "zeros",
        observation_layout: ObservationLayout = "flat",
        violation_weights: Mapping[str, float] | float | None = None,
        objective_scale: float | None = None,
        conditions: Mapping[str, Any] | None = None,
        feature_clip: float = 100.0,
        render_mode: str | None = None,
        device: str | None = None,
        repair: bool = False,
    ) -> None:
        from designgym.envs.catalogue import make_named_problem
        from designgym.generators import load

        self.problem = make_named_problem(problem) if isinstance(problem, str) else problem
        self.generator = load(generator, device=device) if isinstance(generator, str) else generator
        check_choice("action_mode", action_mode, ("direct", "delta"))
        check_choice("initial_latent", initial_latent, ("zeros", "random"))
        check_choice("observation_layout", observation_layout, ("flat", "dict"))
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        check_generator_fits(self.problem, self.generator)
        self.repair = bool(repair)
        if self.repair and not self.problem.has_repair:
            raise ValueError(
                f"repair=True, but problem {self.problem.name} has no repair step; leave repair off"
            )
        # Every number by name, NaN and infinities included (a NaN bound or scale reaches every reward).
        episode_length = int(check_number("episode_length", episode_length, 1, 100_000, integer=True))
        step_size = check_number("step_size", step_size, 0, 2, low_open=True)
        latent_bound = check_number("latent_bound", latent_bound, 0, 1_000, low_open=True)
        feature_clip = check_number("feature_clip", feature_clip, 0, 1e6, low_open=True)
        if objective_scale is not None:
            # 1e-320 is finite, but a reward divided by it is not.
            objective_scale = check_number("objective_scale", objective_scale, 1e-12, 1e12)

        self.action_mode: ActionMode = action_mode
        self.episode_length = 1 if action_mode == "direct" else int(episode_length)
        self.step_size = float(step_size)
        self.latent_bound = float(latent_bound)
        self.initial_latent = initial_latent
        self.observation_layout = observation_layout
        self.objective_scale = float(self.problem.objective.scale if objective_scale is None else objective_scale)
        self.feature_clip = float(feature_clip)
        self.violation_weights = resolve_weights(self.problem, violation_weights)
        self.fixed_conditions = dict(conditions) if conditions else {}
        check_partial_conditions(self.problem, self.fixed_conditions)
        self.render_mode = render_mode

        d = self.generator.latent_dim
        self.action_space = spaces.Box(-1.0, 1.0, shape=(d,), dtype=np.float32)
        parts = self._observation_parts()
        if observation_layout == "dict":
            self.observation_space = spaces.Dict(
                {k: spaces.Box(lo, hi, dtype=np.float32) for k, (lo, hi) in parts.items()}
            )
        else:
            low = np.concatenate([lo for lo, _ in parts.values()])
            high = np.concatenate([hi for _, hi in parts.values()])
            self.observation_space = spaces.Box(low, high, dtype=np.float32)

        self.latent = np.zeros(d, dtype=np.float32)
        self.design: np.ndarray | None = None
        self.conditions: Conditions = {}
        self.evaluation: Evaluation | None = None
        self._score = 0.0
        self._t = 0
        self._done = True
        self._decoded: dict[tuple[int, bytes], np.ndarray] = {}
        self._vector_of: tuple[Conditions, np.ndarray] | None = None
        # The episode's start latent, and its design's judgement once made.
        self._start: tuple[np.ndarray, Evaluation | None] | None = None
        #: The design and conditions of the last finished episode (``None`` before one ends).
        self.final_design: np.ndarray | None = None
        self.final_conditions: Conditions | None = None

    # -- gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._begin_reset(options)
        if self.judges_start:
            self._decode_and_evaluate()
        return self._end_reset()

    @property
    def judges_start(self) -> bool:
        """Whether a reset decodes and judges the start design: in delta mode, whose first reward
        is measured from it; not in direct mode, whose one step is judged on its own."""
        return self.action_mode == "delta"

    def start_evaluation(self) -> Evaluation:
        """The judgement of the episode's start design (the latent and conditions of the last
        reset). Delta mode judged it at the reset; direct mode decodes and judges it now."""
        if self._start is None:
            raise RuntimeError("no episode has started: call reset() first")
        latent, evaluation = self._start
        if evaluation is None:
            evaluation = self.problem.evaluate(self.start_design(), self.conditions)
            self._start = (latent, evaluation)
        return evaluation

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._begin_step(action)
        self._decode_and_evaluate()
        return self._end_step()

    def close(self) -> None:
        self.problem.close()
        super().close()

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        if self._start is None:
            raise RuntimeError("nothing to render yet: call reset() first")
        design = self.design if self.design is not None else self.start_design()
        return self.problem.render(design, self.conditions)

    def start_design(self) -> np.ndarray:
        """The episode's start design (decoded now in direct mode, whose reset leaves it out)."""
        assert self._start is not None
        latent = self._start[0]
        design = self._cached_design(latent)
        if design is None:
            design = self._decode_one(latent)
            self._remember_design(design, latent)
        return design

    # -- internals ----------------------------------------------------------------------------

    # reset() and step() are each three phases: begin (conditions, latent), decode and evaluate,
    # end (reward, observation). BatchedDesignVecEnv runs the middle phase for many envs at once
    # and the outer ones through these same methods, so both give the same results.

    def sample_case(self, rng: np.random.Generator) -> dict[str, Any]:
        """What a reset draws, drawn with ``rng`` instead of the env's own generator: the
        ``"conditions"`` (the env's fixed ones kept), and the start ``"latent"`` where the env
        draws one (``initial_latent="random"``). ``reset(options=case)`` starts exactly that
        episode; this is how a fixed set of test cases is made apart from the training draws."""
        conditions = self.problem.check_conditions({**self.problem.sample_conditions(rng), **self.fixed_conditions})
        case: dict[str, Any] = {"conditions": conditions}
        if self.initial_latent == "random":
            case["latent"] = self._random_latent(rng)
        return case

    def _random_latent(self, rng: np.random.Generator) -> np.ndarray:
        draw = rng.standard_normal(self.generator.latent_dim)
        return np.clip(draw, -self.latent_bound, self.latent_bound).astype(np.float32)

    def _begin_reset(self, options: dict[str, Any] | None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - {"conditions", "latent"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; the options are 'conditions' and 'latent'")
        given = {**self.fixed_conditions, **dict(options.get("conditions") or {})}
        if options.get("conditions"):  # the fixed conditions alone were checked in __init__
            check_partial_conditions(self.problem, given)
        drawn = self.problem.sample_conditions(self.np_random)
        self.conditions = self.problem.check_conditions({**drawn, **given})

        if options.get("latent") is not None:
            latent = np.asarray(options["latent"], dtype=np.float32)
            if latent.shape != self.action_space.shape or not np.all(np.isfinite(latent)):
                raise ValueError(
                    f"reset option 'latent' must be a finite vector of shape {self.action_space.shape}, "
                    f"got shape {latent.shape}"
                )
            self.latent = np.clip(latent, -self.latent_bound, self.latent_bound)
        elif self.initial_latent == "random":
            self.latent = self._random_latent(self.np_random)
        else:
            self.latent = np.zeros(self.generator.latent_dim, dtype=np.float32)
        self._t = 0
        self._done = False
        self.design, self.evaluation = None, None

    def _end_reset(self) -> tuple[Any, dict[str, Any]]:
        self._start = (self.latent.copy(), self.evaluation)
        self._score = self._score_of(self.evaluation) if self.judges_start else 0.0
        return self._observation(), self._info(reward_parts=None)

    def _begin_step(self, action: Any) -> None:
        if self._done:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        action = check_action(action, self.action_space.shape)
        if self.action_mode == "direct":
            self.latent = (action * self.latent_bound).astype(np.float32)
        else:
            moved = self.latent + action * (self.step_size * self.latent_bound)
            self.latent = np.clip(moved, -self.latent_bound, self.latent_bound).astype(np.float32)
        self._t += 1

    def _end_step(self) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        score = self._score_of(self.evaluation)
        if self.judges_start:
            parts = {"objective_improvement": score - self._score}
        else:
            parts = {"objective": score}
        for name in self.problem.violation_names:
            parts[f"penalty/{name}"] = -self.violation_weights[name] * self.evaluation.violations[name]
        self._score = score
        reward = float(sum(parts.values()))
        terminated = self._t >= self.episode_length
        self._done = terminated
        if terminated:  # kept through a vector env's automatic reset, for pictures of finished episodes
            self.final_design, self.final_conditions = self.design.copy(), dict(self.conditions)
        return self._observation(), reward, terminated, False, self._info(reward_parts=parts)

    def _decode_and_evaluate(self) -> None:
        design = self._cached_design()
        if design is None:
            design = self._decode_one(self.latent)
            self._remember_design(design)
        self.design = design
        self.evaluation = self.problem.evaluate(design, self.conditions)

    def _decode_one(self, latent: np.ndarray) -> np.ndarray:
        """The finished design of ``latent`` under the episode's conditions."""
        condition = self.generator_conditions()
        if condition is None:
            design = self.generator.decode_numpy(latent[None, :])[0]
        else:
            design = self.generator.decode_numpy(latent[None, :], condition[None, :])[0]
        return self.finish_design(design)

    def generator_conditions(self, conditions: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """What a conditional generator decodes with: the conditions vector of the episode (or of
        ``conditions``), of the generator's ``condition_keys`` only where it has them; ``None`` for
        an unconditional generator."""
        if self.generator.conditions_dim == 0:
            return None
        keys = tuple(getattr(self.generator, "condition_keys", ()) or ())
        return self.problem.conditions_vector(self.conditions if conditions is None else conditions,
                                              keys=keys or None)

    def finish_design(self, decoded: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """The design judged for a decoded one: with ``repair=True``, repaired under the episode's
        conditions (or ``conditions``), else the decoded design itself."""
        if not self.repair:
            return decoded
        return self.problem.repair(decoded, self.conditions if conditions is None else conditions)

    # Decoding is deterministic, so the designs of the two latest latents are kept and reused when
    # a latent repeats (every episode of a delta-mode env with zero starts begins there). A
    # conditional generator's design also depends on the conditions, and so does a repaired one:
    # then the conditions join the key.

    def _design_key(self, latent: np.ndarray | None = None) -> tuple[int, bytes, bytes]:
        if self.repair:
            condition = self._conditions_vector()
        else:
            condition = self.generator_conditions()
        latent = self.latent if latent is None else latent
        return id(self.generator), latent.tobytes(), b"" if condition is None else condition.tobytes()

    def _cached_design(self, latent: np.ndarray | None = None) -> np.ndarray | None:
        """A copy of the design of the current latent (or ``latent``) if it is among the two kept,
        else ``None``."""
        key = self._design_key(latent)
        if key not in self._decoded:
            return None
        self._decoded[key] = self._decoded.pop(key)  # now the most recent
        return self._decoded[key].copy()

    def _remember_design(self, design: np.ndarray, latent: np.ndarray | None = None) -> None:
        self._decoded[self._design_key(latent)] = design.copy()
        while len(self._decoded) > 2:
            self._decoded.pop(next(iter(self._decoded)))

    def _conditions_vector(self) -> np.ndarray:
        """The episode's conditions vector, computed once per conditions dict (read-only)."""
        if self._vector_of is None or self._vector_of[0] is not self.conditions:
            vector = self.problem.conditions_vector(self.conditions)
            vector.flags.writeable = False
            self._vector_of = (self.conditions, vector)
        return self._vector_of[1]

    def _observation_parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        d, c = self.generator.latent_dim, self.problem.conditions_dim
        k, clip = len(self.problem.violation_names), self.feature_clip

        def box(n: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
            return np.full(n, lo, np.float32), np.full(n, hi, np.float32)

        return {
            "latent": box(d, -1.0, 1.0),
            "conditions": box(c, -1.0, 1.0),
            "objective": box(1, -clip, clip),
            "violations": box(k, 0.0, clip),
            "time_left": box(1, 0.0, 1.0),
        }

    def _observation(self) -> Any:
        clip = self.feature_clip
        if self.evaluation is None:  # a direct-mode reset: no design judged yet
            violations = np.zeros(len(self.problem.violation_names))
        else:
            violations = np.array([self.evaluation.violations[n] for n in self.problem.violation_names])
        values = {
            "latent": self.latent / self.latent_bound,
            "conditions": self._conditions_vector(),
            "objective": np.array([np.clip(self._score, -clip, clip)]),
            "violations": np.clip(violations, 0.0, clip),
            "time_left": np.array([1.0 - self._t / self.episode_length]),
        }
        values = {k: np.clip(v, -1.0, 1.0) if k in ("latent", "conditions") else v for k, v in values.items()}
        if self.observation_layout == "dict":
            return {k: v.astype(np.float32) for k, v in values.items()}
        return np.concatenate([v.astype(np.float32).ravel() for v in values.values()])

    def _score_of(self, evaluation: Evaluation) -> float:
        """The reward objective, higher is better, in units of ``objective_scale``."""
        spec = self.problem.objective
        return spec.score(evaluation.objectives) * spec.scale / self.objective_scale

    def design_score(self, evaluation: Evaluation) -> float:
        """A design's worth as the reward counts it: the reward objective (in units of
        ``objective_scale``) minus the weighted violations. A direct-mode step's reward is this;
        searches that rank designs by the env's own reward rank them by it."""
        penalty = sum(self.violation_weights[n] * evaluation.violations[n] for n in self.problem.violation_names)
        return float(self._score_of(evaluation) - penalty)

    def _info(self, reward_parts: dict[str, float] | None) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.evaluation is not None:
            info.update(objectives=dict(self.evaluation.objectives), violations=dict(self.evaluation.violations),
                        feasible=self.evaluation.feasible, cost=self._cost())
        info.update(conditions=dict(self.conditions), latent=self.latent / np.float32(self.latent_bound))
        if reward_parts is not None:
            info["reward_parts"] = reward_parts
        return info

    def _cost(self) -> float:
        # Violations within the problem's tolerance count as met, so the cost is 0.0 exactly when feasible.
        tolerance = self.problem.feasibility_tolerance
        return float(sum(v for v in self.evaluation.violations.values() if v > tolerance))
