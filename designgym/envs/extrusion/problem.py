"""Extrusion: the cross-section of an extruded profile, stiff in bending for its weight.

The design is the section on a square grid of unit cells (row 0 at the top, density >= 0.5 is
solid). Everything is computed from the grid in well under a millisecond, which makes this the
quick problem for exercising the whole loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from scipy import ndimage

from designgym.envs.manufacturing import (
    SOLID_CONNECTIVITY,
    count_enclosed_voids,
    count_pieces,
    disconnected_fraction,
    keep_budget_walled,
    solid_mask,
    thin_feature_fraction,
)
from designgym.envs.problem import Conditions, ObjectiveSpec, Problem


def second_moments(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Area and centroidal second moments ``(A, Ixx, Iyy, Ixy)`` of a grid of unit square cells.

    Axes: x to the right, y up (so row 0 is the top), origin at the centroid. Each cell adds its
    own ``1/12`` about its centre (parallel-axis theorem); its own product of inertia is zero.
    """
    rows, cols = np.nonzero(mask)
    area = float(rows.size)
    if area == 0:
        return 0.0, 0.0, 0.0, 0.0
    x = cols + 0.5
    y = -(rows + 0.5)
    dx = x - x.mean()
    dy = y - y.mean()
    ixx = float(np.dot(dy, dy)) + area / 12.0
    iyy = float(np.dot(dx, dx)) + area / 12.0
    ixy = float(np.dot(dx, dy))
    return area, ixx, iyy, ixy


def bending_second_moment(ixx: Any, iyy: Any, ixy: Any, axis_angle_deg: float) -> Any:
    """Second moment about the centroidal axis at ``axis_angle_deg`` (counter-clockwise from +x).

    The bending stiffness of a beam whose neutral axis lies along that direction is ``E`` times it.
    Works on floats and, element by element, on arrays of moments.
    """
    t = math.radians(axis_angle_deg)
    c, s = math.cos(t), math.sin(t)
    return ixx * c * c + iyy * s * s - 2.0 * ixy * s * c


def section_second_moment(mask: np.ndarray, axis_angle_deg: float) -> float:
    """Bending second moment of a section that may be in several pieces, about ``axis_angle_deg``.

    Pieces that are not welded together (4-connectivity) slide on each other and bend each about
    its own centroid, so the section's second moment is the sum of the pieces' own; only a piece
    that is one body earns the parallel-axis term that makes I-beams and tubes stiff.
    """
    labels, n = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
    if n == 0:
        return 0.0
    rows, cols = np.nonzero(labels)
    piece = labels[rows, cols]
    x = cols + 0.5
    y = -(rows + 0.5)
    count = np.bincount(piece, minlength=n + 1)[1:].astype(np.float64)

    def per_piece(values: np.ndarray) -> np.ndarray:
        return np.bincount(piece, weights=values, minlength=n + 1)[1:]

    sx, sy = per_piece(x), per_piece(y)
    ixx = per_piece(y * y) - sy * sy / count + count / 12.0
    iyy = per_piece(x * x) - sx * sx / count + count / 12.0
    ixy = per_piece(x * y) - sx * sy / count
    return float(np.sum(bending_second_moment(ixx, iyy, ixy, axis_angle_deg)))


class Extrusion(Problem):
    """Stiffest extrudable section for a given amount of material.

    ## Description
    Design the cross-section of an aluminium extrusion that carries bending about a given axis,
    from a given amount of material. The reward objective is the relative bending stiffness
    ``12 I / A_target^2``: the section's second moment ``I`` over that of a solid square bar made
    of the target material (so 1 for that bar; I-beams and tubes reach 5 to 15). Measuring against
    the target, not the material actually used, means a section cannot look efficient by being
    small. Pieces not welded together bend separately and add only their own second moments.

    ## Conditions
    - ``area_fraction`` in [0.15, 0.45]: the material, as a fraction of the grid's area.
    - ``axis_angle`` in [0, 90] degrees: direction of the neutral axis, counter-clockwise from
      horizontal (0 = a beam loaded vertically).
    - ``max_hollows`` in {0, 1, 2}: enclosed hollows the die may have (each needs a mandrel).

    ## Objectives
    - ``stiffness`` (maximise; the reward objective), ``shape_factor`` (Ashby's ``12 I / A^2`` with
      the material actually used), ``second_moment`` (cells^4), ``area_fraction``, ``hollows``,
      ``pieces``.

    ## Constraints
    - ``area_mismatch``: relative distance of the area from its target beyond ``area_tolerance``.
    - ``thin_walls``: fraction of the solid in walls thinner than ``min_wall`` cells.
    - ``disconnected``: fraction of the solid apart from the main piece (1 for an empty design).
    - ``hollow_excess``: enclosed hollows beyond ``max_hollows``.

    Args:
        size: side of the square grid in cells.
        min_wall: minimum wall thickness in cells.
        area_tolerance: relative area error that still counts as on target.
    """

    name = "extrusion"

    def __init__(self, size: int = 32, min_wall: int = 2, area_tolerance: float = 0.05) -> None:
        if size < 8:
            raise ValueError(f"Extrusion needs a grid of at least 8 x 8 cells, got size={size}")
        if not 1 <= min_wall <= size // 4:
            raise ValueError(f"min_wall must be between 1 and size/4 = {size // 4}, got {min_wall}")
        self.size = size
        self.min_wall = min_wall
        self.area_tolerance = area_tolerance
        self.design_space = spaces.Box(0.0, 1.0, shape=(size, size), dtype=np.float32)
        self.conditions_space = spaces.Dict(
            {
                "area_fraction": spaces.Box(0.15, 0.45, shape=(), dtype=np.float64),
                "axis_angle": spaces.Box(0.0, 90.0, shape=(), dtype=np.float64),
                "max_hollows": spaces.Discrete(3),
            }
        )
        self.objective = ObjectiveSpec("stiffness", sense="max", scale=1.0)
        self.violation_names = ("area_mismatch", "thin_walls", "disconnected", "hollow_excess")
        # Stiffness grows with the square of the material, so 1 % more area buys about 2 % more
        # stiffness (0.2 to 0.3 units near the optimum); 0.4 units per percent beyond the tolerance
        # makes extra material never pay. One unit of penalty is also 10 % of the material too
        # thin or loose, or one hollow too many.
        self.default_violation_weights = {
            "area_mismatch": 40.0,
            "thin_walls": 10.0,
            "disconnected": 10.0,
            "hollow_excess": 1.0,
        }

    def _evaluate(
        self, design: np.ndarray, conditions: Conditions
    ) -> tuple[dict[str, float], dict[str, float]]:
        mask = solid_mask(design)
        area = float(np.count_nonzero(mask))
        inertia = section_second_moment(mask, conditions["axis_angle"])
        target = conditions["area_fraction"]
        target_area = target * mask.size
        fraction = area / mask.size
        hollows = count_enclosed_voids(mask)
        objectives = {
            "stiffness": 12.0 * inertia / target_area**2,
            "shape_factor": 12.0 * inertia / area**2 if area > 0 else 0.0,
            "second_moment": inertia,
            "area_fraction": fraction,
            "hollows": float(hollows),
            "pieces": float(count_pieces(mask)),
        }
        violations = {
            "area_mismatch": max(0.0, abs(fraction - target) / target - self.area_tolerance),
            "thin_walls": thin_feature_fraction(mask, self.min_wall),
            "disconnected": disconnected_fraction(mask),
            "hollow_excess": float(max(0, hollows - conditions["max_hollows"])),
        }
        return objectives, violations

    def repair(self, design: np.ndarray, conditions: Mapping[str, Any]) -> np.ndarray:
        """About the target area of the densest cells, in one piece, with every wall at least
        ``min_wall`` cells thick, as 0/1 (:func:`~designgym.envs.manufacturing.keep_budget_walled`).

        A generator's section becomes one that meets the area, wall and one-piece rules in all but
        rare cases (an area the bisection cannot reach within the tolerance); how many hollows it
        has is still the design's own doing.
        """
        design = self.check_design(design)
        conditions = self.check_conditions(conditions)
        cells = int(round(conditions["area_fraction"] * design.size))
        return keep_budget_walled(design, cells, self.min_wall).astype(np.float32)

    def trivial_objective(self, conditions: Mapping[str, Any]) -> float:
        """1: the relative stiffness of a solid square bar of the target material, by definition."""
        return 1.0

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """Solid cells in dark grey on white; with conditions, the neutral axis as a red line."""
        image = super().render(solid_mask(self.check_design(design)).astype(np.float64) * 0.85)
        if conditions is None:
            return image
        conditions = self.check_conditions(conditions)
        rows, cols = np.nonzero(solid_mask(design))
        if rows.size == 0:
            return image
        px = self.cell_px
        cx, cy = (cols.mean() + 0.5) * px, (rows.mean() + 0.5) * px
        t = math.radians(conditions["axis_angle"])
        yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5
        # Image y points down, so the counter-clockwise axis direction is (cos t, -sin t).
        distance = np.abs(-(xx - cx) * math.sin(t) - (yy - cy) * math.cos(t))
        image[distance < 0.75] = (220, 30, 30)
        return image
