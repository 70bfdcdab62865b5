"""Structural compliance problems: a clamped cantilever and the MBB half-beam.

A design is a density grid ``(nely, nelx)``, row 0 at the top. It is judged as it would be made:
cells at or above 0.5 are solid (E = 1), the rest void (E = 1e-9). Conventions of the FEM are in
:mod:`designgym.envs.structures.fem`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from designgym.envs.manufacturing import (
    floating_fraction,
    keep_budget_joined,
    load_path_broken,
    member_size_violation,
    solid_mask,
)
from designgym.envs.printing import (
    keep_budget_printable_members,
    overhang_fraction,
    printable_bridge,
    thickened_printable,
)
from designgym.envs.problem import Conditions, ObjectiveSpec, Problem
from designgym.envs.structures.fem import FEModel, node_id
from designgym.envs.structures.simp import simp


class PointLoadStructure(Problem):
    """Shared machinery: one FE mesh, one unit point load, compliance against a uniform reference.

    The reward objective is ``log_stiffness_gain = log(c_uniform / c)``: how many times stiffer the
    design is than the uniform grey field of the target volume (``E = volfrac**3`` everywhere) under
    the same load. It is comparable across load cases, where compliance itself spans decades:
    SIMP optima of the cantilever score 1.3 to 2.9. A load that reaches no support through solid
    is carried only by the void's ``1e-9`` stiffness, and its compliance (1e6 and up) measures
    nothing about the design, so the gain is floored at ``gain_floor`` (-5, 150 times more
    compliant than grey); the ``load_path`` rule tells such designs apart. ``compliance`` itself
    is reported unfloored. An all-void design is such a design: its stiffness matrix is the
    solid one times ``1e-9``, ill-conditioned against any solid but not singular, and it scores
    the floor with ``load_path`` 1. Should a solve ever fail all the same (a singular matrix, a
    non-finite or non-positive compliance), the design is scored as carrying no load, never with an
    exception or a NaN: ``compliance`` is that of the floor (``c_uniform * e**5``),
    ``log_stiffness_gain`` the floor and ``load_path`` 1. Subclasses say where the supports and the
    load are.
    """

    gain_floor = -5.0

    violation_names = ("volume_excess", "floating_material", "load_path")

    def __init__(self, nelx: int, nely: int, rmin: float = 1.5, volume_tolerance: float = 0.01) -> None:
        if nelx < 4 or nely < 2:
            raise ValueError(f"a structure needs at least 4 x 2 elements, got {nelx} x {nely}")
        self.nelx, self.nely, self.rmin = int(nelx), int(nely), float(rmin)
        # Thresholding a grey optimum at 0.5 adds a few cells; one per cent of the domain is the
        # allowance that keeps the thresholded SIMP reference itself feasible (seen: 0.1 to 0.5 %).
        self.volume_tolerance = float(volume_tolerance)
        self.design_space = spaces.Box(0.0, 1.0, shape=(self.nely, self.nelx), dtype=np.float32)
        self.model = FEModel(self.nelx, self.nely, self._fixed_dofs())
        self.objective = ObjectiveSpec("log_stiffness_gain", sense="max", scale=1.0)
        # One unit of penalty: 10 % of the volume over target, 10 % of the material floating, or a load
        # that reaches no support; a unit of reward is a factor e in stiffness.
        self.default_violation_weights = {"volume_excess": 10.0, "floating_material": 10.0, "load_path": 2.0}
        self._flexibility: dict[int, np.ndarray] = {}

    # -- what a subclass says -------------------------------------------------------------------

    @abc.abstractmethod
    def _fixed_dofs(self) -> np.ndarray:
        """The supported DOFs."""

    @abc.abstractmethod
    def _load(self, conditions: Conditions) -> tuple[int, np.ndarray]:
        """The loaded node and its force ``(f_x, f_y)`` with y positive up."""

    @abc.abstractmethod
    def _anchored_cells(self) -> np.ndarray:
        """Elements that touch a support: material joined to them is held."""

    def _load_nodes(self) -> list[int]:
        """Every node a load can act on (for the table of uniform references); empty if unknown."""
        return []

    # -- shared ------------------------------------------------------------------------------

    def force_vector(self, conditions: Mapping[str, Any]) -> np.ndarray:
        return self._point_force(*self._load(self.check_conditions(conditions)))

    def _point_force(self, node: int, components: np.ndarray) -> np.ndarray:
        force = np.zeros(self.model.ndof)
        force[2 * node : 2 * node + 2] = components
        return force

    def loaded_cells(self, node: int) -> np.ndarray:
        """Elements that share the loaded node."""
        col, row = divmod(node, self.nely + 1)
        cells = np.zeros((self.nely, self.nelx), dtype=bool)
        cells[max(row - 1, 0) : min(row + 1, self.nely), max(col - 1, 0) : min(col + 1, self.nelx)] = True
        return cells

    def uniform_compliance(self, conditions: Mapping[str, Any]) -> float:
        """Compliance of the uniform field of the target volume: the reference of the reward."""
        return self._uniform_compliance(self.check_conditions(conditions))

    def _uniform_compliance(self, conditions: Conditions) -> float:
        node, components = self._load(conditions)
        if node not in self._flexibility:
            # Compliance is quadratic in the force, so a 2x2 flexibility of the solid mesh at the node
            # serves every angle; a uniform field of modulus E is 1/E as compliant as the solid one.
            # The table is filled for every node a load can act on at once: one factorisation of
            # the solid mesh (in a model of its own, so the designs' kept factorisations are left
            # alone) and two substitutions per node, instead of work spread over many episodes.
            solid_model = FEModel(self.nelx, self.nely, self._fixed_dofs(), keep_factorisations=1)
            solid = np.ones((self.nely, self.nelx))
            for n in {node, *self._load_nodes()} - set(self._flexibility):
                columns = [
                    solid_model.displacements(solid, self._point_force(n, unit))[2 * n : 2 * n + 2]
                    for unit in np.eye(2)
                ]
                self._flexibility[n] = np.column_stack(columns)
        modulus = self.model.emin + conditions["volfrac"] ** self.model.penal * (1 - self.model.emin)
        return float(components @ self._flexibility[node] @ components) / modulus

    def _evaluate(self, design: np.ndarray, conditions: Conditions) -> tuple[dict[str, float], dict[str, float]]:
        solid = solid_mask(design)
        return self._judge(solid, conditions, self._compliance(solid, conditions))

    def _compliance(self, solid: np.ndarray, conditions: Conditions) -> float:
        """The design's compliance, or NaN where the solve fails (judged as carrying no load)."""
        try:
            return self.model.compliance(solid.astype(np.float64), self._point_force(*self._load(conditions)))
        except np.linalg.LinAlgError:
            return math.nan

    def _evaluate_batch(
        self, designs: list[np.ndarray], conditions: list[Conditions]
    ) -> list[tuple[dict[str, float], dict[str, float]]]:
        if not designs:
            return []
        solids = [solid_mask(d) for d in designs]
        forces = np.stack([self._point_force(*self._load(c)) for c in conditions])
        if self.batch_processes < 1:
            raise ValueError(f"batch_processes must be >= 1, got {self.batch_processes}")
        self.model.processes = int(self.batch_processes)
        try:
            compliances = self.model.compliance_batch(np.stack(solids).astype(np.float64), forces)
        except np.linalg.LinAlgError:  # a design broke the solve: the others still get theirs
            compliances = [self._compliance(s, c) for s, c in zip(solids, conditions, strict=True)]
        return [self._judge(*args) for args in zip(solids, conditions, compliances, strict=True)]

    def close(self) -> None:
        self.model.close()

    def _judge(
        self, solid: np.ndarray, conditions: Conditions, compliance: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Objectives and violations of an as-made design whose compliance is known."""
        node, _ = self._load(conditions)
        volume = float(solid.mean())
        uniform = self._uniform_compliance(conditions)
        solved = math.isfinite(compliance) and compliance > 0
        if not solved:
            compliance = uniform * math.exp(-self.gain_floor)
        objectives = {
            "log_stiffness_gain": max(math.log(uniform / compliance), self.gain_floor),
            "compliance": float(compliance),
            "volume_fraction": volume,
        }
        anchored = self._anchored_cells()
        violations = {
            "volume_excess": max(0.0, volume - conditions["volfrac"] - self.volume_tolerance),
            "floating_material": floating_fraction(solid, anchored),
            "load_path": load_path_broken(solid, anchored, self.loaded_cells(node)) if solved else 1.0,
        }
        return objectives, violations

    def torch_judge(self, device: Any) -> Any:
        """The repair and the rules as batched torch work on ``device``, with the FE solve as a block
        Cholesky factorisation (:class:`~designgym.envs.structures.batched.TorchStructureJudge`)."""
        from designgym.envs.structures.batched import TorchStructureJudge

        return TorchStructureJudge(self, device)

    def trivial_objective(self, conditions: Mapping[str, Any]) -> float:
        """0: the log stiffness gain of the uniform plate of the target volume, by definition."""
        return 0.0

    def repair(self, design: np.ndarray, conditions: Mapping[str, Any]) -> np.ndarray:
        """The densest ``round(volfrac * cells)`` cells that are joined to the supports, as 0/1.

        A generator's density field becomes a design at the volume budget with no floating
        material, the way :meth:`optimize` makes SIMP's grey optimum binary at exactly the target
        volume (see :func:`~designgym.envs.manufacturing.keep_budget_joined`). Whether the load
        reaches the supports is still the design's own doing.
        """
        design = self.check_design(design)
        conditions = self.check_conditions(conditions)
        cells = int(round(conditions["volfrac"] * design.size))
        return keep_budget_joined(design, self._anchored_cells(), cells).astype(np.float32)

    def optimize(self, conditions: Mapping[str, Any], max_iter: int = 200, progress: bool = False) -> np.ndarray:
        """SIMP with a density filter of radius ``rmin``, made binary at exactly the target volume.

        The densest ``round(volfrac * cells)`` cells become solid: thresholding the grey optimum at
        0.5 instead adds a few cells over the budget, more on coarse meshes. The result is judged by
        the same rules as any other design.
        """
        conditions = self.check_conditions(conditions)
        grey = simp(self.model, self.force_vector(conditions), conditions["volfrac"], rmin=self.rmin,
                    max_iter=max_iter, progress=progress).density
        k = int(round(conditions["volfrac"] * grey.size))
        order = np.argsort(-grey.ravel(), kind="stable")
        binary = np.zeros(grey.size, dtype=np.float32)
        binary[order[:k]] = 1.0
        return binary.reshape(grey.shape)

    def polish(self, design: np.ndarray, conditions: Mapping[str, Any], iterations: int = 10) -> np.ndarray:
        """A few SIMP iterations started from ``design``, made binary like :meth:`repair`.

        The optional last step after an agent's one-shot design: ``iterations`` optimality-criteria
        updates (one finite-element solve each), then the densest cells at the volume budget that
        are joined to the supports. With ``iterations=0`` it is :meth:`repair`.
        """
        design = self.check_design(design)
        conditions = self.check_conditions(conditions)
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        if iterations:
            # Optimality criteria scale each density by a factor, so a void cell at exactly 0 could
            # never grow back: the start has a floor of 0.02 (a bit over the budget; the first update
            # takes it back to the target volume).
            design = simp(self.model, self.force_vector(conditions), conditions["volfrac"], rmin=self.rmin,
                          max_iter=int(iterations), tol=0.0, start=np.clip(design, 0.02, 1.0)).density
        return self.repair(design, conditions)

    #: What the colours of :meth:`render` mean: ``(label, RGB)`` pairs for a picture's legend.
    LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
        ("solid material", (38, 38, 38)),
        ("supported cells (bars)", (40, 90, 220)),
        ("cells at the unit load (bars)", (220, 30, 30)),
    )

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """Solid grey on white; with conditions, the supported cells in blue and the loaded ones in red
        (:attr:`LEGEND` names the colours)."""
        image = super().render(solid_mask(self.check_design(design)).astype(np.float64) * 0.85)
        if conditions is None:
            return image
        node, _ = self._load(self.check_conditions(conditions))
        px = self.cell_px
        for cells, colour in ((self._anchored_cells(), (40, 90, 220)), (self.loaded_cells(node), (220, 30, 30))):
            rows, cols = np.nonzero(cells)
            for r, c in zip(rows, cols, strict=True):
                image[r * px : r * px + 2, c * px : (c + 1) * px] = colour  # a bar along the cell's top
                image[(r + 1) * px - 2 : (r + 1) * px, c * px : (c + 1) * px] = colour
        return image


class Cantilever(PointLoadStructure):
    """A plate clamped along its whole left edge, loaded at a point of its right edge.

    ## Conditions
    - ``volfrac`` in [0.3, 0.6]: material allowed, as a fraction of the domain.
    - ``load_y`` in [0, 1]: height of the load on the right edge (0 = top node, 1 = bottom node,
      nearest node).
    - ``load_angle`` in [-60, 60] degrees: 0 = straight down, positive turns toward +x; the force
      is ``(sin a, -cos a)`` with y positive up.

    ## Objectives
    ``log_stiffness_gain`` (the reward objective, see :class:`PointLoadStructure`), ``compliance``
    (``f^T u``), ``volume_fraction``.

    ## Constraints
    ``volume_excess`` (volume above ``volfrac`` beyond ``volume_tolerance``), ``floating_material``
    (solid not joined to the clamped edge), ``load_path`` (1 when the loaded node is not joined to
    the clamped edge).

    Args:
        nelx, nely: elements along x and y (default 64 x 32).
        rmin: density-filter radius of the SIMP reference.
        volume_tolerance: volume fraction above ``volfrac`` that still counts as on target.
    """

    name = "cantilever"

    def __init__(self, nelx: int = 64, nely: int = 32, rmin: float = 1.5, volume_tolerance: float = 0.01) -> None:
        super().__init__(nelx, nely, rmin, volume_tolerance)
        self.conditions_space = spaces.Dict(
            {
                "volfrac": spaces.Box(0.3, 0.6, shape=(), dtype=np.float64),
                "load_y": spaces.Box(0.0, 1.0, shape=(), dtype=np.float64),
                "load_angle": spaces.Box(-60.0, 60.0, shape=(), dtype=np.float64),
            }
        )

    def _fixed_dofs(self) -> np.ndarray:
        return np.arange(2 * (self.nely + 1))  # every DOF of column 0

    def _load(self, conditions: Conditions) -> tuple[int, np.ndarray]:
        row = int(round(conditions["load_y"] * self.nely))
        a = math.radians(conditions["load_angle"])
        return node_id(self.nely, self.nelx, row), np.array([math.sin(a), -math.cos(a)])

    def _anchored_cells(self) -> np.ndarray:
        cells = np.zeros((self.nely, self.nelx), dtype=bool)
        cells[:, 0] = True
        return cells

    def _load_nodes(self) -> list[int]:
        return [node_id(self.nely, self.nelx, row) for row in range(self.nely + 1)]


class AMBracket(Cantilever):
    """The cantilever bracket made by additive manufacturing: printable without supports, no thin struts.

    ## Conditions
    As :class:`Cantilever`, plus ``build_direction`` in ``Discrete(4)``: the direction the layers
    grow, an index into :attr:`BUILD_DIRECTIONS` = (``up``, ``left``, ``down``, ``right``). ``up``
    puts the baseplate under the bottom row; ``right`` puts it against the clamped left edge.

    ## Objectives
    As :class:`Cantilever`.

    ## Constraints
    Those of :class:`Cantilever`, plus
    - ``overhang``: fraction of the solid that a 45-degree overhang limit cannot print without
      support structures, layer by layer from the baseplate
      (:func:`~designgym.envs.printing.overhang_fraction`);
    - ``member_size``: area changed by an opening and a closing with a disk of radius ``r_min``,
      over the solid area: struts and gaps thinner than about ``2 r_min`` cells
      (:func:`~designgym.envs.manufacturing.member_size_violation` with a one-cell allowance, so
      the pixel steps of a slanted edge do not count; with ``r_min = 1`` a strut needs 3 cells).

    ``optimize`` is SIMP through Langelaar's AM filter with a member-size finish, whose designs print
    by the overhang rule (the shipped references are its; ``benchmarks/am_reference.py`` compares it
    with plain SIMP, ``optimize(conditions, printable=False)``). ``repair`` makes any density field
    printable, joined to the clamp and to the load and within the volume allowance, thickened against
    thin members.

    Args:
        nelx, nely, rmin, volume_tolerance: as :class:`Cantilever`.
        r_min: radius of the member-size disk in elements (1 = no strut one element thin).
    """

    name = "am_bracket"
    BUILD_DIRECTIONS = ("up", "left", "down", "right")
    LEGEND = (*PointLoadStructure.LEGEND, ("baseplate (layers grow away from it)", (30, 110, 50)))
    violation_names = (*PointLoadStructure.violation_names, "overhang", "member_size")
    #: Cells (8-neighbourhood) from thicker material within which the member-size rule forgives a change.
    MEMBER_ALLOWANCE = 1
    #: SIMP runs of :meth:`optimize` at most (each later one for less material, when thickening overshot).
    REFERENCE_TRIES = 4
    #: A thickened reference design may be this many times as compliant as its SIMP field (see optimize).
    REFERENCE_SLACK = 2.0
    #: Cells the repair's load strut (:func:`~designgym.envs.printing.printable_bridge`) is made wider, each
    #: side, than the thinnest member the rule allows, where the volume budget has room for it.
    BRIDGE_MARGIN = 2

    def __init__(
        self,
        nelx: int = 64,
        nely: int = 32,
        rmin: float = 1.5,
        volume_tolerance: float = 0.01,
        r_min: float = 1.0,
    ) -> None:
        super().__init__(nelx, nely, rmin, volume_tolerance)
        if r_min < 0:
            raise ValueError(f"r_min must be >= 0 elements, got {r_min}")
        self.r_min = float(r_min)
        self.conditions_space = spaces.Dict(
            {**self.conditions_space.spaces, "build_direction": spaces.Discrete(len(self.BUILD_DIRECTIONS))}
        )
        # Ten per cent of the solid unprintable, or changed by the member-size filter, costs one unit.
        self.default_violation_weights = {**self.default_violation_weights, "overhang": 10.0, "member_size": 10.0}

    def _judge(
        self, solid: np.ndarray, conditions: Conditions, compliance: float
    ) -> tuple[dict[str, float], dict[str, float]]:
        objectives, violations = super()._judge(solid, conditions, compliance)
        violations["overhang"] = overhang_fraction(solid, self.BUILD_DIRECTIONS[int(conditions["build_direction"])])
        violations["member_size"] = member_size_violation(solid, self.r_min, allowance=self.MEMBER_ALLOWANCE)
        return objectives, violations

    def optimize(self, conditions: Mapping[str, Any], max_iter: int = 200, progress: bool = False,
                 printable: bool = True) -> np.ndarray:
        """The printable reference: SIMP through Langelaar's AM filter for the build direction
        (:class:`~designgym.envs.structures.am_filter.AMFilter`, with a Heaviside projection that
        sharpens during the run so the printed field ends black and white), finished by the member-size
        step of :meth:`repair`: the design prints by the env's own rule, floats nowhere, keeps within
        the volume allowance and has no member or gap under the ``r_min`` disk where the thickening
        finds one (see :func:`~designgym.envs.printing.keep_budget_printable_members`).

        A thickened design is taken only when it is legal and at most ``REFERENCE_SLACK`` times as
        compliant as the grey field it came from: the thickening can cut the path the load takes (a
        design 50 times as compliant as its SIMP field, measured on one load case), and which
        attempt that happens to depends on the machine's floating-point rounding. Where no attempt
        passes, the stiffest legal thickened design of them is the answer.

        ``printable=False`` is the cantilever's plain SIMP, which ignores both printing rules: the
        stiffness bound the printing costs is measured against (``benchmarks/am_reference.py``).
        """
        if not printable:
            return super().optimize(conditions, max_iter=max_iter, progress=progress)
        conditions = self.check_conditions(conditions)
        direction = self.BUILD_DIRECTIONS[int(conditions["build_direction"])]
        budget = int(round(conditions["volfrac"] * self.design_space.shape[0] * self.design_space.shape[1]))
        allowed = self._allowed_cells(conditions)
        target = conditions["volfrac"]
        stiffest: tuple[float, np.ndarray] | None = None  # the stiffest legal thickened design so far
        for attempt in range(self.REFERENCE_TRIES):
            # Each later run also filters wider (half an element more each time): fewer thin members to thicken.
            found = simp(self.model, self.force_vector(conditions), target, rmin=self.rmin + 0.5 * attempt,
                         max_iter=max_iter, progress=progress, build_direction=direction)
            grey = found.density
            cells = min(max(int(np.count_nonzero(grey >= 0.5)), budget), allowed)
            mask, clean = thickened_printable(grey, self._anchored_cells(), cells, direction, self.r_min,
                                              self.MEMBER_ALLOWANCE)
            if clean and int(mask.sum()) <= allowed:
                design = mask.astype(np.float32)
                judged = self.evaluate(design, conditions)
                compliance = float(judged.objectives["compliance"])
                if judged.feasible and compliance <= self.REFERENCE_SLACK * found.compliance:
                    return design
                if judged.feasible and (stiffest is None or compliance < stiffest[0]):
                    stiffest = (compliance, design)
            # Thickening the thin members overshot the volume allowance: optimise again for less material
            # (1.5 times the overshoot, or 2 % where the thickening did not come out clean), so the thickened
            # optimum fits, instead of cutting cells from a finished one (a cut strut may carry the load).
            over = int(mask.sum()) - allowed if clean else int(0.02 * budget)
            target = max(target - 1.5 * max(over, 1) / grey.size, 0.05)
        return stiffest[1] if stiffest is not None else self._printable_members(grey, conditions)

    def _allowed_cells(self, conditions: Conditions) -> int:
        rows, cols = self.design_space.shape
        return int(math.floor((conditions["volfrac"] + self.volume_tolerance) * rows * cols))

    def repair(self, design: np.ndarray, conditions: Mapping[str, Any]) -> np.ndarray:
        """A 0/1 design that prints, floats nowhere, reaches the load and keeps to the volume, with no thin members.

        The densest cells of ``design`` (as many as it has at or above 0.5, held between the volume
        budget and its allowance) that print without supports along the build direction and are joined to
        the clamp (:func:`~designgym.envs.printing.keep_budget_printable`), with every member
        thinner and gap narrower than the ``r_min`` disk thickened or filled where that fits in the
        allowance (:func:`~designgym.envs.printing.keep_budget_printable_members`). Where that
        leaves the load hanging on nothing, a strut that prints on its own joins it to the part or the
        clamp (:func:`~designgym.envs.printing.printable_bridge`), five cells wide where the volume
        keeps it (``BRIDGE_MARGIN``), else three, and the repair runs again with the strut ranked first.
        Overhang, floating material and volume hold by construction; member size holds wherever the
        thickening finds a clean mask, and the load path wherever a strut fits the volume (it did for
        every field measured, benchmarks/RESULTS.md section 14).
        """
        return self._printable_members(self.check_design(design), self.check_conditions(conditions))

    def _printable_members(self, field: np.ndarray, conditions: Conditions) -> np.ndarray:
        direction = self.BUILD_DIRECTIONS[int(conditions["build_direction"])]
        budget = int(round(conditions["volfrac"] * field.size))
        allowed = self._allowed_cells(conditions)
        # A black-and-white field keeps its own solid (the densest-k cut of a 0/1 field would drop cells at
        # random among equals), within the volume allowance.
        anchored = self._anchored_cells()

        def printable(density: np.ndarray) -> np.ndarray:
            cells = min(max(int(np.count_nonzero(density >= 0.5)), budget), allowed)
            return keep_budget_printable_members(density, anchored, cells, direction, self.r_min,
                                                 allowance=self.MEMBER_ALLOWANCE, max_cells=allowed)

        mask = printable(field)
        loaded = self.loaded_cells(self._load(conditions)[0])
        if load_path_broken(mask, anchored, loaded):
            # The load hangs on nothing that prints: a strut that prints on its own joins it to the part (or,
            # failing that, to the clamp), ranked above every cell of the field so that it is kept first; as
            # wide as BRIDGE_MARGIN allows, else as thin as the member size allows (a small volume budget).
            thinnest = math.ceil(self.r_min)
            for half_width in dict.fromkeys((thinnest + self.BRIDGE_MARGIN, thinnest)):
                for stop_at_kept in (True, False):
                    bridge = printable_bridge(mask, anchored, loaded, direction, half_width, stop_at_kept)
                    bridged = printable(np.where(bridge, 2.0, field))
                    if not load_path_broken(bridged, anchored, loaded):
                        return bridged.astype(np.float32)
        return mask.astype(np.float32)

    def torch_judge(self, device: Any) -> None:
        """None: the printing rules have no batched torch version yet, so the bracket is judged on the CPU."""
        return None

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """As :class:`Cantilever`, with the baseplate drawn as a dark green band outside the grid."""
        image = super().render(design, conditions)
        if conditions is None:
            return image
        side = self.BUILD_DIRECTIONS[int(self.check_conditions(conditions)["build_direction"])]
        band = 4
        plate = {"up": (band, 0, 0, 0), "down": (0, band, 0, 0), "left": (0, 0, 0, band), "right": (0, 0, band, 0)}
        bottom, top, left, right = plate[side]  # the plate sits opposite to the growth direction
        framed = np.pad(image, ((top, bottom), (left, right), (0, 0)))
        band_cells = np.ones(framed.shape[:2], dtype=bool)
        band_cells[top : top + image.shape[0], left : left + image.shape[1]] = False
        framed[band_cells] = (30, 110, 50)  # dark green
        return framed


class MBB(PointLoadStructure):
    """The MBB half-beam: symmetry on the left edge, a roller at the bottom right, a load on top.

    ## Conditions
    - ``volfrac`` in [0.3, 0.6].
    - ``load_x`` in [0, 0.5]: where the downward unit load acts along the top edge, as a fraction
      of the half-span from the symmetry line (0 = the classical mid-span load).

    ## Objectives and constraints
    As :class:`Cantilever`; material counts as held when it is joined to the roller's element.

    Args:
        nelx, nely: elements along x and y (default 60 x 20, the classical example).
        rmin: density-filter radius of the SIMP reference.
    """

    name = "mbb"

    def __init__(self, nelx: int = 60, nely: int = 20, rmin: float = 2.4, volume_tolerance: float = 0.01) -> None:
        super().__init__(nelx, nely, rmin, volume_tolerance)
        self.conditions_space = spaces.Dict(
            {
                "volfrac": spaces.Box(0.3, 0.6, shape=(), dtype=np.float64),
                "load_x": spaces.Box(0.0, 0.5, shape=(), dtype=np.float64),
            }
        )

    def _fixed_dofs(self) -> np.ndarray:
        symmetry = np.arange(0, 2 * (self.nely + 1), 2)  # x DOFs of the left edge
        roller = 2 * node_id(self.nely, self.nelx, self.nely) + 1
        return np.union1d(symmetry, [roller])

    def _load(self, conditions: Conditions) -> tuple[int, np.ndarray]:
        col = int(round(conditions["load_x"] * self.nelx))
        return node_id(self.nely, col, 0), np.array([0.0, -1.0])

    def _anchored_cells(self) -> np.ndarray:
        cells = np.zeros((self.nely, self.nelx), dtype=bool)
        cells[-1, -1] = True
        return cells

    def _load_nodes(self) -> list[int]:
        space = self.conditions_space["load_x"]
        cols = range(int(round(float(space.low) * self.nelx)), int(round(float(space.high) * self.nelx)) + 1)
        return [node_id(self.nely, col, 0) for col in cols]
