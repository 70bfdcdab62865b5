"""Massing: the bulk of a building on an urban parcel, under zoning rules, judged by its sun and shadow.

The design is a height field in metres over a square site grid seen from above (row 0 at the top,
which is north; column 0 at the west). The parcel sits inside the grid with its front (south) lot
line on a street that runs along the bottom rows; every other cell outside the parcel is a
neighbouring lot. Everything (zoning envelope, floor area, ray-cast shadows and facade sun) is
computed from the grid in a few milliseconds.

Geometry conventions used throughout this module:

- a cell ``(r, c)`` covers ``x`` in ``[c, c + 1)`` and ``y`` in ``[r, r + 1)`` in cell units, ``x``
  pointing east and ``y`` pointing south; a cell is ``cell_m`` metres square;
- a sun position is ``(azimuth_deg, elevation_deg)`` with the azimuth clockwise from north (90 =
  east, 180 = south), so its horizontal direction in grid units is ``(sin az, -cos az)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from scipy import ndimage

from designgym.envs.problem import Conditions, ObjectiveSpec, Problem

#: Declination of the sun at the winter solstice, degrees.
WINTER_SOLSTICE_DECLINATION = -23.44
#: Solar hours at which the sun is sampled.
SUN_HOURS = (9.0, 12.0, 15.0)
#: Sun positions at or below this elevation (degrees) are dropped.
MIN_SUN_ELEVATION = 5.0
#: Ray-marching step, in cells (at most half a cell, as the ray test requires).
RAY_STEP_CELLS = 0.5

# The four facade orientations: (row offset of the neighbour, column offset, outward normal (x, y)).
_FACES = (
    (-1, 0, (0.0, -1.0)),  # north face: neighbour above
    (1, 0, (0.0, 1.0)),  # south face
    (0, 1, (1.0, 0.0)),  # east face
    (0, -1, (-1.0, 0.0)),  # west face
)


def sun_position(
    latitude_deg: float, hour: float, declination_deg: float = WINTER_SOLSTICE_DECLINATION
) -> tuple[float, float]:
    """``(azimuth_deg, elevation_deg)`` of the sun at a solar ``hour`` (12 = solar noon).

    Standard solar geometry with the hour angle ``H = 15 (hour - 12)`` degrees: the sun's direction
    in local east/north/up coordinates is ``(-cos d sin H, sin d cos p - cos d sin p cos H,
    sin d sin p + cos d cos p cos H)`` for declination ``d`` and latitude ``p``; the elevation is the
    arcsine of the up component and the azimuth ``atan2(east, north)`` taken in ``[0, 360)``.
    """
    phi, dec, h = math.radians(latitude_deg), math.radians(declination_deg), math.radians(15.0 * (hour - 12.0))
    east = -math.cos(dec) * math.sin(h)
    north = math.sin(dec) * math.cos(phi) - math.cos(dec) * math.sin(phi) * math.cos(h)
    up = math.sin(dec) * math.sin(phi) + math.cos(dec) * math.cos(phi) * math.cos(h)
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, up))))
    azimuth = math.degrees(math.atan2(east, north)) % 360.0
    return azimuth, elevation


def _ray_blocked(
    heights: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    z0: np.ndarray,
    cell_m: float,
    azimuth_deg: float,
    elevation_deg: float,
) -> np.ndarray:
    """Whether rays from points ``(x0, y0)`` (cell units) at heights ``z0`` (m) toward the sun are blocked.

    Sample ``k = 1, 2, ...`` lies at horizontal distance ``t = k * RAY_STEP_CELLS`` cells, at
    ``(x0 + t dx, y0 + t dy)`` and ray height ``z0 + (t * cell_m) * tan(elevation)``; the ground
    under it is the height of the cell containing it (``floor`` of both coordinates). The ray is
    blocked when that height is strictly above the ray; marching stops at the grid's edge (outside
    the grid there is nothing). Samples higher than the tallest cell cannot be blocked and are not
    taken, which changes nothing in the result.
    """
    rows, cols = heights.shape
    n = x0.size
    if n == 0:
        return np.zeros(0, dtype=bool)
    az = math.radians(azimuth_deg)
    dx, dy = math.sin(az), -math.cos(az)
    tan_el = math.tan(math.radians(elevation_deg))
    top = float(heights.max())
    reach = int(math.ceil(math.hypot(rows, cols) / RAY_STEP_CELLS)) + 1
    if tan_el > 0:
        rise = RAY_STEP_CELLS * cell_m * tan_el
        reach = min(reach, max(0, int(math.ceil((top - float(z0.min())) / rise))) + 1)
    blocked = np.zeros(n, dtype=bool)
    if reach <= 0 or top <= 0:
        return blocked
    t = np.arange(1, reach + 1, dtype=np.float64) * RAY_STEP_CELLS
    x = x0[:, None] + t[None, :] * dx
    y = y0[:, None] + t[None, :] * dy
    z = z0[:, None] + (t[None, :] * cell_m) * tan_el
    c = np.floor(x)
    r = np.floor(y)
    inside = (c >= 0) & (c < cols) & (r >= 0) & (r < rows)
    ci = np.where(inside, c, 0).astype(np.intp)
    ri = np.where(inside, r, 0).astype(np.intp)
    ground = heights[ri, ci]
    return np.any(inside & (ground > z), axis=1)


def shadow_mask(heights: np.ndarray, cell_m: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Cells in shadow, by ray casting over the height field: ``bool`` of the grid's shape.

    A cell is in shadow when the ray from the centre of its top surface (the ground for an empty
    cell, the roof for a built one, at height ``heights[cell]``) toward the sun at
    ``(azimuth_deg, elevation_deg)`` meets a cell higher than the ray. The ray is marched in steps
    of half a cell; the ground under each sample is the height of the cell containing it, and
    marching stops at the grid's edge (the world beyond is flat and empty). A cell never shades
    itself: the ray only rises above its own top.
    """
    heights = np.asarray(heights, dtype=np.float64)
    rows, cols = heights.shape
    rr, cc = np.mgrid[0:rows, 0:cols]
    x0 = cc.ravel() + 0.5
    y0 = rr.ravel() + 0.5
    blocked = _ray_blocked(heights, x0, y0, heights.ravel(), cell_m, azimuth_deg, elevation_deg)
    return blocked.reshape(rows, cols)


def storey_counts(heights: np.ndarray, floor_height_m: float) -> np.ndarray:
    """Whole storeys a cell of each height holds: ``floor(h / floor_height_m + 1e-6)``, as ints."""
    return np.floor(np.asarray(heights, dtype=np.float64) / floor_height_m + 1e-6).astype(np.int64)


def narrow_plate_cells(storeys: np.ndarray, min_plate: int) -> np.ndarray:
    """Per cell, how many of its storeys lie in floor plates narrower than ``min_plate`` cells.

    The plate of storey ``k`` is the set of cells with at least ``k`` storeys; its part not covered
    by a morphological opening with a ``min_plate`` square is too narrow to lay out (a wing, a
    spire, a sliver). Outside the grid counts as empty.
    """
    if min_plate <= 1:
        return np.zeros(storeys.shape, dtype=np.int64)
    plates = storeys >= np.arange(1, int(storeys.max(initial=0)) + 1)[:, None, None]
    return (plates & ~_open_plates(plates, min_plate)).sum(axis=0, dtype=np.int64)


#: Weight of the opened envelope's storeys laid under a design by :meth:`Massing.repair`.
REPAIR_GROUND = 1e-3


def storey_heights(storeys: np.ndarray, floor_height_m: float) -> np.ndarray:
    """``float32`` heights in metres of exactly ``storeys`` whole storeys each: one that
    ``float32`` rounds down by a hair (a storey lost to :func:`storey_counts`) is nudged up."""
    heights = (np.asarray(storeys, dtype=np.float64) * floor_height_m).astype(np.float32)
    short = storey_counts(heights, floor_height_m) < storeys
    heights[short] = np.nextafter(heights[short], np.float32(np.inf))
    return heights


def _open_plates(plates: np.ndarray, m: int) -> np.ndarray:
    """Each plate (the last two axes) opened by an ``m x m`` square: the union of the squares that
    lie wholly inside it, outside the grid being empty (what ``ndimage.binary_opening`` gives, in
    a few shifted ANDs and ORs)."""
    rows, cols = plates.shape[-2:]
    tops = np.logical_and.reduce([plates[..., t : rows - m + 1 + t, :] for t in range(m)])
    corners = np.logical_and.reduce([tops[..., t : cols - m + 1 + t] for t in range(m)])  # squares inside
    cover = np.zeros(corners.shape[:-1] + (cols,), dtype=bool)
    for t in range(m):
        cover[..., t : t + cols - m + 1] |= corners
    out = np.zeros(plates.shape, dtype=bool)
    for t in range(m):
        out[..., t : t + rows - m + 1, :] |= cover
    return out


def _fit_storeys(field: np.ndarray, cap: np.ndarray, m: int, target: float) -> np.ndarray:
    """Storeys of ``field`` (floats) times the factor whose area, in cell-storeys, is nearest
    ``target``, capped to ``cap`` and every plate opened by an ``m`` square (the largest factor's
    when all stay under it). The area grows with the factor, in steps only where a cell gains a
    storey (at ``k / field``): a bisection over those factors brackets the target."""
    levels = np.arange(1, int(cap.max(initial=0)) + 1)
    cells = (field > 1e-9) & (cap > 0)  # no infinite factors
    scales = levels[None, :] / field[cells][:, None]
    scales = np.unique(scales[levels[None, :] <= cap[cells][:, None]])

    def built(scale: float) -> np.ndarray:
        whole = np.minimum(cap, np.floor(scale * field + 1e-6))
        return _open_plates(whole[None] >= levels[:, None, None], m).sum(axis=0)

    if scales.size == 0:
        return np.zeros(cap.shape, dtype=np.int64)
    high = built(scales[-1])
    if high.sum() <= target:
        return high
    lo, hi, low = -1, scales.size - 1, np.zeros_like(high)  # area(lo) < target <= area(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (trial := built(scales[mid])).sum() < target:
            lo, low = mid, trial
        else:
            hi, high = mid, trial
    return high if high.sum() - target <= target - low.sum() else low


class Massing(Problem):
    """Building massing on an urban parcel under zoning, for sun on its facades and little shadow.

    ## Description
    Shape the bulk of a building on a parcel: the design is a height field in metres over a
    ``size x size`` site grid of ``cell_m`` metre cells (default 32 x 32 cells of 2 m, a 64 m square
    window; row 0 is north, values in ``[0, max_height_m]``, default 60 m). A cell of height ``h``
    holds ``floor(h / floor_height_m + 1e-6)`` storeys of ``floor_height_m`` = 3.5 m. A design is
    judged as built: each cell rises to its whole storeys, ``storeys * floor_height_m`` metres, and
    a height below one storey is open ground (like the structures, whose cells are solid from a
    density of 0.5). So a generator's soft edges, a few decimetres of height spilling into a
    setback, build nothing; :meth:`as_built` gives the heights that are judged.

    The site: the street runs along the bottom ``street_rows`` rows (default 4 cells = 8 m). The
    parcel is a rectangle centred horizontally whose front (south) lot line is the street's north
    edge; every other cell outside the parcel belongs to the neighbours. Setbacks from the front,
    side and rear lot lines leave the buildable area (:meth:`buildable_mask`). The zoning envelope
    (:meth:`envelope`) allows, in the buildable area, the lower of ``max_height`` and a
    sky-exposure plane that rises northward from height ``sky_plane_base`` at the far (south) kerb
    of the street, which is the grid's bottom edge, with slope ``sky_plane_slope`` (rise over run):
    ``sky_plane_base + sky_plane_slope * d`` with ``d`` the distance in metres from a cell's centre
    to the grid's bottom edge.

    The reward objective is ``quality = facade_daylight + 0.5 * compactness - shadow``: sunny
    facades, a compact (cheap, energy-saving) envelope and little shadow on the street and the
    neighbours, traded against each other. It spans about -1 to 1.5; ``ObjectiveSpec.scale`` 0.1
    makes one unit of reward a noticeable change (a tenth of the facade gaining sun, say).

    ## Conditions
    - ``parcel_width``, ``parcel_depth`` in [0.5, 0.8]: the parcel's size as fractions of the grid,
      rounded to whole cells (``floor(x * size + 0.5)``); the depth is capped to leave the street.
    - ``setback_front``, ``setback_side``, ``setback_rear`` in [0, 8] m: setbacks from the front
      (street), both side and the rear lot lines, rounded to whole cells (``floor(m / cell_m + 0.5)``).
    - ``max_height`` in [15, 60] m: the height limit.
    - ``sky_plane_base`` in [8, 24] m and ``sky_plane_slope`` in [1, 4]: the sky-exposure plane.
    - ``far`` in [1.0, 3.5]: the target floor area ratio (gross floor area over parcel area); the
      allowed band is ``[0.9 far, 1.1 far]``.
    - ``latitude`` in [25, 55] degrees north: fixes the winter-solstice sun positions
      (:meth:`sun_positions`).

    The ranges are chosen so that the brief can be met: about 98 % of uniform draws leave an
    envelope that holds the FAR band with plates wide enough (the procedural generator in
    :mod:`designgym.envs.architecture.massing_data` builds a valid massing for them).

    ## Objectives
    - ``quality`` (maximise; the reward objective): see above.
    - ``shadow`` (lower is better): the mean, over the sun positions, of the share of the street
      and neighbour cells (all cells outside the parcel) in shadow, by :func:`shadow_mask` (the ray
      leaves from a cell's top, the ground for an empty cell).
    - ``facade_daylight`` (higher is better): the share of the facade area that gets direct sun at
      one or more sun positions. A facade is each vertical face between a cell and a lower
      4-neighbour (outside the grid is height 0), of area ``(h - h_neighbour) * cell_m``. It gets
      sun when its outward horizontal normal has a positive dot product with the sun's horizontal
      direction and the ray from the middle of the face (mid-width of the cell edge, mid-height
      between the two tops) toward the sun is not blocked (the same ray test as the shadows).
      0 when there is no facade.
    - ``compactness`` (higher is better): ``5 V^(2/3) / (walls + roof)`` with ``V`` the built
      volume and walls plus roof the exposed envelope (the ground slab does not count): a cube
      scores 1 (the factor is 5, not 6, because its base is not exposed), a half-cube slab about
      1.05 (the most a box can reach), thin towers and fins much less. 0 for an empty mass.
    - ``far`` (achieved), ``gross_floor_area_m2``, ``height_max_m``, ``volume_m3``.

    ## Constraints
    Volumes are measured against the target volume ``V_t = far * parcel area * floor_height_m``,
    the volume the target floor area fills at one storey height.

    - ``setback``: built volume outside the buildable area (in the setbacks or off the parcel),
      over ``V_t``.
    - ``height``: volume above ``max_height``, ``sum max(0, h - max_height) * cell area``, over ``V_t``.
    - ``sky_plane``: volume above the sky-exposure plane (evaluated at every cell's centre), over ``V_t``.
    - ``far_band``: relative distance of the achieved FAR outside ``[0.9 far, 1.1 far]``
      (``(0.9 far - FAR) / far`` below, ``(FAR - 1.1 far) / far`` above).
    - ``narrow_plates``: the share of the gross floor area in floor plates narrower than
      ``min_plate_m`` (see :func:`narrow_plate_cells`).

    Args:
        size: side of the square site grid in cells.
        cell_m: side of a cell in metres.
        street_rows: rows of street along the bottom of the grid.
        max_height_m: top of the design space (the tallest height a design may hold) in metres.
        floor_height_m: storey height in metres.
        min_plate_m: narrowest usable floor plate in metres (rounded to whole cells).
    """

    name = "massing"
    cell_px = 12
    max_height_m: float = 60.0
    floor_height_m: float = 3.5

    def __init__(
        self,
        size: int = 32,
        cell_m: float = 2.0,
        street_rows: int = 4,
        max_height_m: float = 60.0,
        floor_height_m: float = 3.5,
        min_plate_m: float = 8.0,
    ) -> None:
        if size < 16:
            raise ValueError(f"Massing needs a grid of at least 16 x 16 cells, got size={size}")
        if not 1 <= street_rows <= size // 4:
            raise ValueError(f"street_rows must be between 1 and size/4 = {size // 4}, got {street_rows}")
        if not cell_m > 0 or not floor_height_m > 0:
            raise ValueError(f"cell_m and floor_height_m must be positive, got {cell_m} and {floor_height_m}")
        if not max_height_m >= 60.0:
            raise ValueError(
                f"max_height_m must be at least 60 m (the top of the max_height range), got {max_height_m}"
            )
        self.size = int(size)
        self.cell_m = float(cell_m)
        self.street_rows = int(street_rows)
        self.max_height_m = float(max_height_m)
        self.floor_height_m = float(floor_height_m)
        self.min_plate_m = float(min_plate_m)
        self.min_plate = int(math.floor(min_plate_m / cell_m + 0.5))
        if not 1 <= self.min_plate <= size // 8:
            raise ValueError(
                f"min_plate_m must round to between 1 and size/8 = {size // 8} cells of {cell_m:g} m, got {min_plate_m}"
            )
        self.cell_area = self.cell_m**2
        self.design_space = spaces.Box(0.0, self.max_height_m, shape=(self.size, self.size), dtype=np.float32)

        def box(low: float, high: float) -> spaces.Box:
            return spaces.Box(low, high, shape=(), dtype=np.float64)

        self.conditions_space = spaces.Dict(
            {
                "parcel_width": box(0.5, 0.8),
                "parcel_depth": box(0.5, 0.8),
                "setback_front": box(0.0, 8.0),
                "setback_side": box(0.0, 8.0),
                "setback_rear": box(0.0, 8.0),
                "max_height": box(15.0, 60.0),
                "sky_plane_base": box(8.0, 24.0),
                "sky_plane_slope": box(1.0, 4.0),
                "far": box(1.0, 3.5),
                "latitude": box(25.0, 55.0),
            }
        )
        self.objective = ObjectiveSpec("quality", sense="max", scale=0.1)
        self.violation_names = ("setback", "height", "sky_plane", "far_band", "narrow_plates")
        # Every violation is a share (of the target volume or floor area). The quality terms are
        # shares of facade or ground area, and the most facade a sliver of mass can add is about ten
        # times its share of the volume (a one-cell fin or spire is nearly all facade; a whole
        # building has about a tenth as much facade per cubic metre). So a violation v can buy at
        # most about 10 v of quality, 100 v reward units at scale 0.1; a weight of 200 makes every
        # rule cost at least twice what breaking it can gain.
        self.default_violation_weights = dict.fromkeys(self.violation_names, 200.0)

    # -- the site ------------------------------------------------------------------------------

    def _cells(self, metres: float) -> int:
        return int(math.floor(metres / self.cell_m + 0.5))

    def parcel_rect(self, conditions: Mapping[str, Any]) -> tuple[int, int, int, int]:
        """The parcel as ``(top, bottom, left, right)`` cell bounds (bottom and right exclusive)."""
        width = min(self.size, max(1, int(math.floor(conditions["parcel_width"] * self.size + 0.5))))
        depth = min(self.size - self.street_rows, max(1, int(math.floor(conditions["parcel_depth"] * self.size + 0.5))))
        bottom = self.size - self.street_rows
        left = (self.size - width) // 2
        return bottom - depth, bottom, left, left + width

    def buildable_rect(self, conditions: Mapping[str, Any]) -> tuple[int, int, int, int]:
        """The buildable area (parcel minus setbacks) as ``(top, bottom, left, right)``; may be empty."""
        top, bottom, left, right = self.parcel_rect(conditions)
        side = self._cells(conditions["setback_side"])
        return (
            top + self._cells(conditions["setback_rear"]),
            bottom - self._cells(conditions["setback_front"]),
            left + side,
            right - side,
        )

    def _rect_mask(self, rect: tuple[int, int, int, int]) -> np.ndarray:
        top, bottom, left, right = rect
        mask = np.zeros((self.size, self.size), dtype=bool)
        if bottom > top and right > left:
            mask[top:bottom, left:right] = True
        return mask

    def parcel_mask(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """Cells of the parcel."""
        return self._rect_mask(self.parcel_rect(conditions))

    def buildable_mask(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """Cells of the parcel outside the setbacks."""
        return self._rect_mask(self.buildable_rect(conditions))

    def street_mask(self, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """Cells of the street: every cell south of the parcel's front lot line (the bottom rows)."""
        mask = np.zeros((self.size, self.size), dtype=bool)
        mask[self.size - self.street_rows :] = True
        return mask

    def neighbour_mask(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """Cells of the neighbouring lots: neither parcel nor street."""
        return ~self.parcel_mask(conditions) & ~self.street_mask(conditions)

    def sky_plane(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """Height of the sky-exposure plane over every cell's centre, metres (same for a whole row)."""
        rows = np.arange(self.size, dtype=np.float64)
        distance = (self.size - rows - 0.5) * self.cell_m  # from the street's far (south) kerb
        plane = conditions["sky_plane_base"] + conditions["sky_plane_slope"] * distance
        return np.repeat(plane[:, None], self.size, axis=1)

    def envelope(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """Allowed height per cell in metres: ``min(max_height, sky plane)`` where buildable, else 0."""
        allowed = np.minimum(conditions["max_height"], self.sky_plane(conditions))
        return np.where(self.buildable_mask(conditions), allowed, 0.0)

    def sun_positions(self, conditions: Mapping[str, Any]) -> list[tuple[float, float]]:
        """``(azimuth_deg, elevation_deg)`` on the winter solstice at solar 9, 12 and 15 h.

        Positions at or below 5 degrees of elevation are dropped (at 55 degrees north only noon
        remains); noon is always kept.
        """
        out = []
        for hour in SUN_HOURS:
            azimuth, elevation = sun_position(conditions["latitude"], hour)
            if elevation > MIN_SUN_ELEVATION:
                out.append((azimuth, elevation))
        return out

    def target_volume(self, conditions: Mapping[str, Any]) -> float:
        """``far * parcel area * floor_height_m``: the volume the target floor area fills, m3."""
        parcel_area = float(self.parcel_mask(conditions).sum()) * self.cell_area
        return conditions["far"] * parcel_area * self.floor_height_m

    # -- judging -------------------------------------------------------------------------------

    def check_design(self, design: Any) -> np.ndarray:
        """The base checks, and heights within ``[0, max_height_m]``."""
        array = super().check_design(design)
        if array.min() < 0.0 or array.max() > self.max_height_m:
            raise ValueError(
                f"{self.name}: heights must lie in [0, {self.max_height_m:g}] m, got values from "
                f"{array.min():g} to {array.max():g}"
            )
        return array

    def facade_sun(self, heights: np.ndarray, conditions: Mapping[str, Any]) -> tuple[float, float]:
        """``(total facade area, sunlit facade area)`` in m2 (see the class docstring)."""
        heights = np.asarray(heights, dtype=np.float64)
        padded = np.pad(heights, 1)
        rows, cols = heights.shape
        suns = self.sun_positions(conditions)
        total = lit_total = 0.0
        for dr, dc, (nx, ny) in _FACES:
            neighbour = padded[1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols]
            rr, cc = np.nonzero(heights > neighbour)
            if rr.size == 0:
                continue
            top = heights[rr, cc]
            low = neighbour[rr, cc]
            area = (top - low) * self.cell_m
            total += float(area.sum())
            x0 = cc + 0.5 + 0.5 * nx
            y0 = rr + 0.5 + 0.5 * ny
            z0 = 0.5 * (top + low)
            lit = np.zeros(rr.size, dtype=bool)
            for azimuth, elevation in suns:
                az = math.radians(azimuth)
                if math.sin(az) * nx - math.cos(az) * ny <= 0:
                    continue
                lit |= ~_ray_blocked(heights, x0, y0, z0, self.cell_m, azimuth, elevation)
            lit_total += float(area[lit].sum())
        return total, lit_total

    def as_built(self, design: np.ndarray) -> np.ndarray:
        """The heights that are judged: each cell's whole storeys times the storey height, in metres."""
        return (storey_counts(self.check_design(design), self.floor_height_m) * self.floor_height_m).astype(np.float64)

    def repair(self, design: np.ndarray, conditions: Mapping[str, Any]) -> np.ndarray:
        """The design's shape scaled to the FAR target inside the envelope, with wide plates only.

        For a factor ``a`` each cell holds ``min(E, floor(a s))`` whole storeys, ``s`` its storeys
        as a float and ``E`` the envelope's (0 outside the buildable area), and every storey's
        plate becomes its opening by a ``min_plate`` square (nested still, and opening twice
        changes nothing). If ``a = 1`` lands in the FAR band, that is the result (a feasible
        design comes back as built, so repairing twice changes nothing); else the floor area,
        which only grows with ``a``, picks the factor whose area is nearest the target.
        Under ``s`` lies the opened envelope's storeys, weighted :data:`REPAIR_GROUND`, so a
        footprint too small for the band grows into the envelope (from a factor near 60, against
        about 1 for the design's own cells) and an all-zero design becomes the envelope scaled
        down; ``s`` times ``1 + 1e-3 row / size`` makes cells of equal storeys gain the next one
        row by row from the south, not all at once.

        So setback, height, sky_plane and narrow_plates hold by construction; far_band fails
        when the opened envelope cannot hold ``0.9 far``, or when one step (a storey completing a
        plate) jumps the band. Whether the massing is any good is the design's own doing.

        Returns:
            Heights in metres, ``float32`` of the design's shape, each a whole number of storeys.
        """
        design = self.check_design(design)
        conditions = self.check_conditions(conditions)
        fh, m = self.floor_height_m, self.min_plate
        envelope = self.envelope(conditions)
        cap = storey_counts(envelope, fh)
        cap -= cap * fh > envelope  # never a hair above the envelope, as judged
        levels = np.arange(1, int(cap.max(initial=0)) + 1)[:, None, None]
        target = conditions["far"] * float(self.parcel_mask(conditions).sum())  # cell-storeys
        kept = _open_plates(np.minimum(cap, storey_counts(design, fh)) >= levels, m).sum(axis=0)
        if 0.9 * target <= kept.sum() <= 1.1 * target:
            return storey_heights(kept, fh)
        ground = _open_plates(cap >= levels, m).sum(axis=0)
        rows = np.arange(self.size)[:, None]
        field = (design / fh + REPAIR_GROUND * ground) * (1.0 + 1e-3 * rows / self.size)
        return storey_heights(_fit_storeys(field, cap, m, target), fh)

    def _evaluate(self, design: np.ndarray, conditions: Conditions) -> tuple[dict[str, float], dict[str, float]]:
        storeys = storey_counts(design, self.floor_height_m)
        h = storeys * self.floor_height_m  # judged as built: whole storeys only
        parcel = self.parcel_mask(conditions)
        buildable = self.buildable_mask(conditions)
        parcel_area = float(parcel.sum()) * self.cell_area
        v_target = self.target_volume(conditions)
        gfa = float(storeys.sum()) * self.cell_area
        far = gfa / parcel_area
        target = conditions["far"]

        # Constraints.
        outside = float(h[~buildable].sum()) * self.cell_area
        above_height = float(np.maximum(0.0, h - conditions["max_height"]).sum()) * self.cell_area
        above_sky = float(np.maximum(0.0, h - self.sky_plane(conditions)).sum()) * self.cell_area
        if far < 0.9 * target:
            far_band = (0.9 * target - far) / target
        elif far > 1.1 * target:
            far_band = (far - 1.1 * target) / target
        else:
            far_band = 0.0
        narrow = float(narrow_plate_cells(storeys, self.min_plate).sum()) * self.cell_area
        violations = {
            "setback": outside / v_target,
            "height": above_height / v_target,
            "sky_plane": above_sky / v_target,
            "far_band": far_band,
            "narrow_plates": narrow / gfa if gfa > 0 else 0.0,
        }

        # Objectives.
        suns = self.sun_positions(conditions)
        rows, cols = np.nonzero(~parcel)
        shares = []
        for azimuth, elevation in suns:
            blocked = _ray_blocked(h, cols + 0.5, rows + 0.5, h[rows, cols], self.cell_m, azimuth, elevation)
            shares.append(float(blocked.mean()) if blocked.size else 0.0)
        shadow = float(np.mean(shares)) if shares else 0.0
        facade, lit = self.facade_sun(h, conditions)
        facade_daylight = lit / facade if facade > 0 else 0.0
        volume = float(h.sum()) * self.cell_area
        roof = float(np.count_nonzero(h > 0)) * self.cell_area
        envelope_area = facade + roof
        compactness = 5.0 * volume ** (2.0 / 3.0) / envelope_area if envelope_area > 0 and volume > 0 else 0.0
        objectives = {
            "quality": facade_daylight + 0.5 * compactness - shadow,
            "shadow": shadow,
            "facade_daylight": facade_daylight,
            "compactness": compactness,
            "far": far,
            "gross_floor_area_m2": gfa,
            "height_max_m": float(h.max()),
            "volume_m3": volume,
        }
        return objectives, violations

    # -- the picture ---------------------------------------------------------------------------

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """A plan view of the massing: heights as a colour ramp with hillshading.

        Built cells go from dark blue (low) through green to yellow (``max_height_m``), lit from
        the north-west so that steps read as walls. With conditions, the street is light grey, the
        parcel's open ground pale green, the midday winter shadow darkens what it falls on, the
        parcel is outlined in dark red and the buildable area in orange.
        """
        h = self.as_built(design)
        px = self.cell_px
        ground = np.full((self.size, self.size, 3), 242.0)
        if conditions is not None:
            conditions = self.check_conditions(conditions)
            ground[self.street_mask(conditions)] = (205.0, 205.0, 205.0)
            ground[self.parcel_mask(conditions)] = (230.0, 238.0, 220.0)
        built = h > 0
        colour = np.where(built[:, :, None], _ramp(h / self.max_height_m), ground)
        if conditions is not None:
            azimuth, elevation = sun_position(conditions["latitude"], 12.0)
            colour[shadow_mask(h, self.cell_m, azimuth, elevation)] *= 0.6
        image = np.kron(colour, np.ones((px, px, 1)))
        # Hillshade of the pixel-level height field, softened over half a cell so that every step
        # reads as a lit or a shaded band; normalised so that flat roofs and ground keep their colour.
        hp = ndimage.uniform_filter(np.kron(h, np.ones((px, px))), size=max(1, px // 2), mode="nearest")
        gy, gx = np.gradient(hp, self.cell_m / px)
        light = np.array([-0.5, 0.5, math.sqrt(0.5)])  # from the north-west, 45 degrees up (x east, y north, up)
        # Image rows point south, so the northward slope is -gy.
        normal_dot = (-gx * light[0] + gy * light[1] + light[2]) / np.sqrt(gx * gx + gy * gy + 1.0)
        shade = np.clip(normal_dot / light[2], 0.45, 1.3)
        image = np.clip(image * shade[:, :, None], 0, 255)
        if conditions is not None:
            _outline(image, self.parcel_rect(conditions), px, (150.0, 20.0, 20.0), width=2)
            _outline(image, self.buildable_rect(conditions), px, (235.0, 140.0, 20.0), width=1, dashed=True)
        return np.round(image).astype(np.uint8)


_RAMP = np.array(
    [  # viridis at 0, 0.25, 0.5, 0.75, 1
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ],
    dtype=np.float64,
)


def _ramp(values: np.ndarray) -> np.ndarray:
    """A viridis-like colour ramp over ``[0, 1]`` (clipped), as float RGB."""
    t = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(np.floor(t).astype(np.intp), len(_RAMP) - 2)
    f = (t - i)[..., None]
    return _RAMP[i] * (1 - f) + _RAMP[i + 1] * f


def _outline(
    image: np.ndarray,
    rect: tuple[int, int, int, int],
    px: int,
    colour: tuple[float, float, float],
    width: int,
    dashed: bool = False,
) -> None:
    top, bottom, left, right = rect
    if bottom <= top or right <= left:
        return
    y0, y1, x0, x1 = top * px, bottom * px - 1, left * px, right * px - 1
    line = np.zeros(image.shape[:2], dtype=bool)
    line[y0 : y0 + width, x0 : x1 + 1] = True
    line[y1 - width + 1 : y1 + 1, x0 : x1 + 1] = True
    line[y0 : y1 + 1, x0 : x0 + width] = True
    line[y0 : y1 + 1, x1 - width + 1 : x1 + 1] = True
    if dashed:
        yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
        line &= ((yy + xx) // 6) % 2 == 0
    image[line] = colour
