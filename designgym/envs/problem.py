"""The `Problem`: the physics and the rules of one design task.

A problem knows its conditions (the load case, the brief), its design space and how to judge a
design. It knows nothing about generators or reinforcement learning, so the same problem serves
an RL environment, a black-box optimizer and a unit test alike.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from gymnasium import spaces

Conditions = dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """The verdict on one design.

    Attributes:
        objectives: named objective values (plain floats).
        violations: named constraint violations, each ``0.0`` when the constraint is met and
            larger the worse it is broken.
        feasible: ``True`` when every violation is within the problem's tolerance.
    """

    objectives: dict[str, float]
    violations: dict[str, float]
    feasible: bool = field(default=False)


@dataclass(frozen=True)
class ObjectiveSpec:
    """Which objective an agent is rewarded for, and how it is scaled.

    Attributes:
        name: key in :attr:`Evaluation.objectives`.
        sense: ``"max"`` or ``"min"``.
        scale: a typical magnitude of changes worth caring about; rewards divide by it so that one
            unit of reward means the same across problems.
    """

    name: str
    sense: Literal["max", "min"] = "max"
    scale: float = 1.0

    def score(self, objectives: Mapping[str, float]) -> float:
        """The objective as a number where higher is better, in units of ``scale``."""
        value = float(objectives[self.name])
        return (value if self.sense == "max" else -value) / self.scale


class NoReferenceOptimizer(NotImplementedError):
    """Raised by :meth:`Problem.optimize` on a problem without a classical optimizer."""


class Problem(abc.ABC):
    """Base class of a design problem.

    Subclasses set :attr:`conditions_space`, :attr:`design_space`, :attr:`objective`,
    :attr:`violation_names` and implement :meth:`_evaluate`. They may override :meth:`optimize`
    (a classical reference optimizer) and :meth:`render`.

    Conditions are a ``dict`` keyed like :attr:`conditions_space` (a :class:`gymnasium.spaces.Dict`
    of ``Box`` and ``Discrete`` entries). Designs are numpy arrays of shape
    ``design_space.shape``; for 2D grids that is ``(rows, cols)`` with row 0 at the top.
    """

    #: Short name used by :func:`designgym.make_problem`.
    name: ClassVar[str] = "problem"
    #: Tolerance under which a violation still counts as satisfied.
    feasibility_tolerance: float = 1e-9
    #: Processes that :meth:`evaluate_batch` may share its work among (1: only the calling one).
    #: Problems that cannot split a batch ignore it; the results never depend on it.
    batch_processes: int = 1

    conditions_space: spaces.Dict
    design_space: spaces.Box
    objective: ObjectiveSpec
    violation_names: tuple[str, ...]

    # -- the public template methods ---------------------------------------------------------

    def evaluate(self, design: np.ndarray, conditions: Mapping[str, Any]) -> Evaluation:
        """Judge one design under the given conditions.

        Raises:
            ValueError: if the design has the wrong shape, a non-numeric dtype or non-finite
                values, or if the conditions do not fit :attr:`conditions_space`.
        """
        design = self.check_design(design)
        conditions = self.check_conditions(conditions)
        return self._verdict(*self._evaluate(design, conditions))

    def evaluate_batch(
        self, designs: Sequence[np.ndarray] | np.ndarray, conditions: Sequence[Mapping[str, Any]]
    ) -> list[Evaluation]:
        """Judge many designs, each under its own conditions: ``[evaluate(d, c) for d, c in ...]``.

        Problems whose evaluation shares work across designs (the structures share one finite-element
        model and its symbolic factorisation) override :meth:`_evaluate_batch`; the results are
        the same as one call at a time.

        Raises:
            ValueError: as :meth:`evaluate`, or when there are not as many conditions as designs.
        """
        if len(designs) != len(conditions):
            raise ValueError(f"{self.name}: got {len(designs)} designs but {len(conditions)} sets of conditions")
        checked = [self.check_design(d) for d in designs]
        checked_conditions = [self.check_conditions(c) for c in conditions]
        return [self._verdict(*result) for result in self._evaluate_batch(checked, checked_conditions)]

    def close(self) -> None:  # noqa: B027 - a no-op unless the problem starts something
        """Release what the problem started (helper processes); it stays usable and restarts them."""

    def _verdict(self, objectives: Mapping[str, float], violations: Mapping[str, float]) -> Evaluation:
        objectives = {k: float(v) for k, v in objectives.items()}
        violations = {k: max(0.0, float(v)) for k, v in violations.items()}
        for kind, values in (("objective", objectives), ("violation", violations)):
            bad = {k: v for k, v in values.items() if not math.isfinite(v)}
            if bad:  # a NaN would reach the agent as its reward and spoil training without a word
                raise FloatingPointError(
                    f"{self.name}: _evaluate gave the non-finite {kind} value(s) {bad}; a problem must judge "
                    "every valid design with finite numbers (give failed or degenerate designs a finite, "
                    "documented penalty)"
                )
        feasible = all(v <= self.feasibility_tolerance for v in violations.values())
        return Evaluation(objectives=objectives, violations=violations, feasible=feasible)

    def sample_conditions(self, rng: np.random.Generator) -> Conditions:
        """Draw conditions uniformly from :attr:`conditions_space` with the given generator."""
        out: Conditions = {}
        for key, space in self.conditions_space.spaces.items():
            if isinstance(space, spaces.Discrete):
                out[key] = int(space.start + rng.integers(space.n))
            else:
                value = np.asarray(rng.uniform(space.low, space.high), dtype=space.dtype)
                out[key] = float(value) if value.shape == () else value
        return out

    def default_conditions(self) -> Conditions:
        """The centre of the conditions space: a sensible single case for examples and tests."""
        out: Conditions = {}
        for key, space in self.conditions_space.spaces.items():
            if isinstance(space, spaces.Discrete):
                out[key] = int(space.start + space.n // 2)
            else:
                value = np.asarray((space.low + space.high) / 2, dtype=space.dtype)
                out[key] = float(value) if value.shape == () else value
        return out

    def optimize(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """A classical reference optimizer for the given conditions, where the problem has one.

        Raises:
            NoReferenceOptimizer: when the problem has none (the default).
        """
        raise NoReferenceOptimizer(
            f"{type(self).__name__} has no reference optimizer; compare against the latent-space "
            "baselines instead"
        )

    def trivial_objective(self, conditions: Mapping[str, Any]) -> float | None:
        """The reward objective (as :meth:`ObjectiveSpec.score` times ``scale``: higher is better)
        of a trivial design that anyone gets without a search, where the problem has one: the 0 of
        the suite's normalized score (:mod:`designgym.agents.scoring`). ``None`` (the default): the
        env's start design is that 0."""
        return None

    def repair(self, design: np.ndarray, conditions: Mapping[str, Any]) -> np.ndarray:
        """A cheap, deterministic step from a generator's raw output to a design that keeps the
        problem's hard rules by construction, where the problem has one (an env applies it with
        ``LatentDesignEnv(repair=True)``). It is no optimizer: it judges no design.

        Raises:
            NotImplementedError: when the problem has none (the default).
        """
        raise NotImplementedError(f"{type(self).__name__} has no repair step")

    def torch_judge(self, device: Any) -> Any | None:
        """An object that repairs (``repair(designs, conditions)``) and judges
        (``evaluate(designs, conditions)`` -> ``(objectives, violations)`` per design) batches of
        designs held as torch tensors on ``device``, with the results of :meth:`repair` and
        :meth:`evaluate`; ``None`` (the default) where the problem has none. A batched vector env
        uses it to keep a step's work on the generator's device."""
        return None

    @property
    def has_repair(self) -> bool:
        """Whether :meth:`repair` is defined for this problem."""
        return type(self).repair is not Problem.repair

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """The design as an RGB picture, ``uint8`` of shape ``(H, W, 3)``.

        The default draws a 2D grid in greys (solid black on white), each cell ``cell_px`` pixels.
        """
        design = self.check_design(design)
        grid = np.clip(design.astype(np.float64), 0.0, 1.0)
        if grid.ndim != 2:
            raise ValueError(f"{type(self).__name__}.render draws 2D designs only; override it")
        grey = np.round(255 * (1.0 - grid)).astype(np.uint8)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        return np.kron(rgb, np.ones((self.cell_px, self.cell_px, 1), dtype=np.uint8))

    cell_px: int = 8

    # -- the hook a subclass writes ----------------------------------------------------------

    @abc.abstractmethod
    def _evaluate(
        self, design: np.ndarray, conditions: Conditions
    ) -> tuple[Mapping[str, float], Mapping[str, float]]:
        """Return ``(objectives, violations)`` for a checked design and checked conditions."""

    def _evaluate_batch(
        self, designs: list[np.ndarray], conditions: list[Conditions]
    ) -> list[tuple[Mapping[str, float], Mapping[str, float]]]:
        """:meth:`_evaluate` for checked designs and conditions; override where batching saves work."""
        return [self._evaluate(d, c) for d, c in zip(designs, conditions, strict=True)]

    # -- input checks shared by every problem ------------------------------------------------

    def check_design(self, design: Any) -> np.ndarray:
        """Return the design as a float array, or raise a ``ValueError`` that says what is wrong."""
        array = np.asarray(design)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
                or array.dtype == np.bool_):
            raise ValueError(
                f"{self.name}: a design must be a numeric array, got dtype {array.dtype}; "
                "pass a float array of 0 (void) to 1 (solid)"
            )
        if array.shape != self.design_space.shape:
            raise ValueError(
                f"{self.name}: a design must have shape {self.design_space.shape} (rows, cols), "
                f"got {array.shape}"
            )
        array = array.astype(np.float64, copy=False)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{self.name}: the design holds NaN or infinite values")
        return array

    def check_conditions(self, conditions: Mapping[str, Any]) -> Conditions:
        """Return conditions as plain values, or raise a ``ValueError`` naming the bad key.

        Every key of :attr:`conditions_space` must be present, no other key may be, and each value
        must lie inside its space.
        """
        if not isinstance(conditions, Mapping):
            raise ValueError(
                f"{self.name}: conditions must be a dict with keys {sorted(self.conditions_space)}, "
                f"got {type(conditions).__name__}"
            )
        expected = self.conditions_space.spaces
        unknown = sorted(set(conditions) - set(expected))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown condition(s) {unknown}; the conditions are {sorted(expected)}"
            )
        missing = sorted(set(expected) - set(conditions))
        if missing:
            raise ValueError(f"{self.name}: missing condition(s) {missing}")
        out: Conditions = {}
        for key, space in expected.items():
            out[key] = _check_condition_value(self.name, key, space, conditions[key])
        return out

    # -- conditions as a flat vector for observations ----------------------------------------

    @property
    def conditions_dim(self) -> int:
        """Length of :meth:`conditions_vector`."""
        return sum(
            1 if isinstance(s, spaces.Discrete) else int(np.prod(s.shape))
            for s in self.conditions_space.spaces.values()
        )

    def conditions_vector(self, conditions: Mapping[str, Any], keys: Sequence[str] | None = None) -> np.ndarray:
        """Conditions scaled to ``[-1, 1]`` and flattened in the order of :attr:`conditions_space`
        (only those of ``keys``, in that same order, when given)."""
        scalars = self._scalar_bounds()
        if scalars is not None and keys is None:  # the common case, in plain floats (the same numbers)
            return np.array([2.0 * (float(conditions[key]) - low) / width - 1.0 for key, (low, _, width) in
                             scalars.items()], dtype=np.float64).astype(np.float32)
        parts = []
        for key, space in self.conditions_space.spaces.items():
            if keys is not None and key not in keys:
                continue
            value = conditions[key]
            if isinstance(space, spaces.Discrete):
                span = max(space.n - 1, 1)
                parts.append(np.array([2.0 * (int(value) - space.start) / span - 1.0]))
            else:
                low, high = space.low.astype(np.float64), space.high.astype(np.float64)
                width = np.where(high > low, high - low, 1.0)
                parts.append((2.0 * (np.asarray(value, dtype=np.float64) - low) / width - 1.0).ravel())
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    def _scalar_bounds(self) -> dict[str, tuple[float, float, float]] | None:
        """``(low, high, width)`` of each condition when all are scalar boxes, else ``None``; kept
        with the conditions space it was read from (a subclass may replace the space)."""
        space = self.conditions_space
        kept = self.__dict__.get("_scalar_bounds_of")
        if kept is None or kept[0] is not space:
            bounds: dict[str, tuple[float, float, float]] | None = {}
            for name, sub in space.spaces.items():
                if not isinstance(sub, spaces.Box) or sub.shape != ():
                    bounds = None
                    break
                low, high = float(sub.low), float(sub.high)
                bounds[name] = (low, high, high - low if high > low else 1.0)
            kept = self.__dict__["_scalar_bounds_of"] = (space, bounds)
        return kept[1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(design_shape={self.design_space.shape})"


def _check_condition_value(problem: str, key: str, space: spaces.Space, value: Any) -> Any:
    if (isinstance(space, spaces.Box) and space.shape == () and type(value) is float
            and math.isfinite(value) and float(space.low) <= value <= float(space.high)):
        return value  # a plain float inside its range: what the general path below returns for it
    if isinstance(space, spaces.Discrete):
        allowed = f"an integer in [{space.start}, {space.start + space.n - 1}]"
        try:
            whole = not isinstance(value, (bool, np.bool_)) and float(np.asarray(value)).is_integer()
        except (TypeError, ValueError, OverflowError):  # a string, a list, an int past any float
            whole = False
        if not whole:
            raise ValueError(f"{problem}: condition {key!r} must be {allowed}, got {_shown(value)}")
        ivalue = int(np.asarray(value))
        # Compared as Python ints: one past int64 (10**30) must be out of range, not an OverflowError.
        if not space.start <= ivalue < space.start + space.n:
            raise ValueError(f"{problem}: condition {key!r} must be {allowed}, got {_shown(ivalue)}")
        return ivalue
    assert isinstance(space, spaces.Box)
    try:
        array = np.asarray(value, dtype=np.float64).reshape(space.shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"{problem}: condition {key!r} must be a number array of shape {space.shape}, got {_shown(value)}"
        ) from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{problem}: condition {key!r} is not finite: {value!r}")
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if np.any(array < low - 1e-9) or np.any(array > high + 1e-9):
        bounds = (
            f"[{_fmt(low.item())}, {_fmt(high.item())}]"
            if array.size == 1
            else f"between {low.tolist()} and {high.tolist()}"
        )
        shown = _fmt(array.item()) if array.size == 1 else array.tolist()
        raise ValueError(f"{problem}: condition {key!r} = {shown} is outside its range {bounds}")
    array = np.clip(array, low, high)
    return float(array.item()) if space.shape in ((), (1,)) else array


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut short: an error line stays one readable line whatever was given."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _fmt(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and float(x).is_integer() else f"{x:g}"
