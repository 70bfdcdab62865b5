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

from designgym.envs.manufacturing import (
    count_enclosed_voids,
    count_pieces,
    disconnected_fraction,
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


def bending_second_moment(ixx: float, iyy: float, ixy: float, axis_angle_deg: float) -> float:
    """Second moment about the centroidal axis at ``axis_angle_deg`` (counter-clockwise from +x).

    The bending stiffness of a beam whose neutral axis lies along that direction is ``E`` times it.
    """
    t = math.radians(axis_angle_deg)
    c, s = math.cos(t), math.sin(t)
    return ixx * c * c + iyy * s * s - 2.0 * ixy * s * c


class Extrusion(Problem):
    """Stiffest extrudable section for a given amount of material.

    ## Description
    Design the cross-section of an aluminium extrusion that carries bending about a given axis.
    Stiffness per material is measured by the elastic shape factor ``12 I / A^2`` (Ashby): 1 for a
    solid square, larger for sections that put their material far from the neutral axis, such as
    I-beams and tubes.

    ## Conditions
    - ``area_fraction`` in [0.15, 0.45]: the material, as a fraction of the grid's area.
    - ``axis_angle`` in [0, 90] degrees: direction of the neutral axis, counter-clockwise from
      horizontal (0 = a beam loaded vertically).
    - ``max_hollows`` in {0, 1, 2}: enclosed hollows the die may have (each needs a mandrel).

    ## Objectives
    - ``shape_factor`` (maximise; the reward objective), ``second_moment`` (cells^4),
      ``area_fraction``, ``hollows``, ``pieces``.

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
        self.objective = ObjectiveSpec("shape_factor", sense="max", scale=1.0)
        self.violation_names = ("area_mismatch", "thin_walls", "disconnected", "hollow_excess")
        # One unit of penalty: 10 % off the area, 10 % of the material too thin or loose, or one
        # hollow too many; comparable to one unit of shape factor.
        self.default_violation_weights = {
            "area_mismatch": 10.0,
            "thin_walls": 10.0,
            "disconnected": 10.0,
            "hollow_excess": 1.0,
        }

    def _evaluate(
        self, design: np.ndarray, conditions: Conditions
    ) -> tuple[dict[str, float], dict[str, float]]:
        mask = solid_mask(design)
        area, ixx, iyy, ixy = second_moments(mask)
        inertia = bending_second_moment(ixx, iyy, ixy, conditions["axis_angle"])
        shape_factor = 12.0 * inertia / area**2 if area > 0 else 0.0
        fraction = area / mask.size
        target = conditions["area_fraction"]
        hollows = count_enclosed_voids(mask)
        objectives = {
            "shape_factor": shape_factor,
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
