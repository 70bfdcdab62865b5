"""FloorPlan: a one-storey house plan on a raster grid, laid out to a brief.

The design is a grid of room-type codes (one code per cell); a room is a 4-connected region of
cells of one code. Everything is judged from the grid in about a millisecond: room counts and
areas, room shapes, reachability through doors from the front door, daylight, required
adjacencies and how well the plan fills the footprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from designgym.envs.problem import Conditions, ObjectiveSpec, Problem

EXTERIOR, LIVING, KITCHEN, BEDROOM, BATHROOM, CIRCULATION = range(6)
ROOM_TYPES = ("exterior", "living", "kitchen", "bedroom", "bathroom", "circulation")
#: Room types a brief asks for by number (circulation is free, exterior is not a room).
PROGRAM_TYPES = ("living", "kitchen", "bedroom", "bathroom")
#: Rooms you may walk through; the others are dead ends.
PASSABLE = frozenset({LIVING, CIRCULATION})
#: Rooms that need a window (an edge on an exterior wall).
HABITABLE = frozenset({LIVING, KITCHEN, BEDROOM})
FOOTPRINTS = ("rectangle", "L-shape", "U-shape")
_LABELS = {LIVING: "LIV", KITCHEN: "KIT", BEDROOM: "BED", BATHROOM: "BATH", CIRCULATION: "HALL"}
_COLOURS = {
    EXTERIOR: (246, 246, 243),
    LIVING: (244, 209, 140),
    KITCHEN: (236, 150, 120),
    BEDROOM: (150, 190, 226),
    BATHROOM: (144, 212, 196),
    CIRCULATION: (214, 206, 190),
}
_WALL = (62, 58, 54)
_OUTLINE = (40, 40, 110)
_DOOR = (220, 30, 30)


class FloorPlan(Problem):
    """A house plan on a grid of room codes that meets a brief: rooms, sizes, doors and daylight.

    ## Description
    The design is a raster plan of ``size x size`` cells of ``cell_m`` metres (24 x 24 cells of
    0.5 m by default: a 12 m x 12 m plot). Row 0 is the top of the grid, the back of the plot; the
    last row is the street side. Each cell holds a room-type code (floats are rounded to the
    nearest code):

    ====  ============  ===================================
    code  type          passable (may be walked through)
    ====  ============  ===================================
    0     exterior      -
    1     living        yes
    2     kitchen       no (a dead end)
    3     bedroom       no
    4     bathroom      no
    5     circulation   yes (hall, corridor)
    ====  ============  ===================================

    A room is a 4-connected region of cells of one nonzero code, so two bedrooms are two separate
    regions that do not share an edge. The brief fixes a building footprint (the cells the house
    must fill exactly), a front door on its street side and a programme of rooms with target
    areas (:meth:`room_targets`).

    **Doors and reachability.** Two rooms may have a door between them when they share at least
    ``door_cells`` cell edges of wall (2 cells = 1 m by default). Living rooms and circulation
    are passable; kitchens, bedrooms and bathrooms are dead ends (entered, never walked
    through). The entrance room is the room holding :meth:`entrance_cell`. A room is reachable
    when it is the entrance room or shares a door-wide wall with a reachable passable room; the
    search spreads only through passable rooms, so when the entrance cell is exterior or a dead
    end, at most that one room counts as reached.

    The reward objective is ``quality = compactness - circulation_ratio``: rectangular rooms and
    little corridor. Its scale is 0.1, a typical gap between a corridor-heavy plan and a tight one.

    ## Conditions
    - ``footprint`` in {0, 1, 2}: 0 rectangle, 1 L-shape (the back right corner cut away), 2
      U-shape (a notch cut from the middle of the back edge: a courtyard open to the back).
    - ``width``, ``depth`` in [0.7, 1.0]: the footprint's extent as a fraction of the grid's
      columns and rows, rounded to whole cells. The footprint stands against the bottom (street)
      edge of the grid and is centred left to right.
    - ``notch`` in [0.25, 0.4]: width and depth of the L or U cut-out as fractions of the
      footprint's width and depth (ignored for rectangles).
    - ``entrance`` in [0, 1]: where the front door sits along the bottom row of the footprint (0
      its leftmost cell, 1 its rightmost).
    - ``bedrooms`` in {1, 2, 3}, ``bathrooms`` in {1, 2}; one living room and one kitchen always.
    - ``living_share`` in [0.2, 0.35]: the living room's target share of the footprint's area.
    - ``kitchen_living`` in {0, 1}: 1 when the kitchen must touch the living room.
    - ``bath_bedroom`` in {0, 1}: 1 when some bathroom must touch some bedroom (an en-suite).

    The lower ends of ``width``/``depth`` (0.7 rather than 0.6) and the upper end of ``notch``
    (0.4 rather than 0.45) keep the smallest footprint (about 60 m2) large enough for the largest
    programme (3 bedrooms, 2 bathrooms) at the bedroom floor of 7 m2.

    ## Objectives
    - ``quality`` (maximise; the reward objective): ``compactness - circulation_ratio``.
    - ``circulation_ratio``: circulation cells over footprint cells (lower is better).
    - ``compactness``: area-weighted mean over rooms of area / bounding-box area (1 when every
      room is a rectangle; 0 for an empty plan).
    - ``adjacency_satisfaction``: share of the required adjacencies met (1 when none is asked).
    - ``rooms``: number of rooms (circulation included); ``floor_area_m2``: area of all rooms.

    ## Constraints
    - ``missing_rooms``: sum over living, kitchen, bedroom and bathroom of |rooms present - rooms
      asked for| (extra rooms count too).
    - ``room_area``: sum over those rooms of the relative distance of the area outside its
      ``[min, max]`` range (``(min - a) / min`` below, ``(a - max) / max`` above, 0 inside). When
      a type has more rooms than asked for, every room of it is held to the type's range.
    - ``room_shape``: sum over rooms of the share of the room's cells that no ``k x k`` square of
      the room covers (a morphological opening; ``k`` = ``min_width_m`` / ``cell_m``: 2 m for
      living, kitchen and bedroom, 1.5 m for bathroom, 1 m for circulation), plus ``0.5 *
      max(0, aspect - max_aspect)`` where ``aspect`` is the long over the short side of the
      room's bounding box (``max_aspect`` = 3; circulation has no limit).
    - ``unreachable``: number of rooms (circulation included) not reachable from the entrance.
    - ``no_daylight``: number of living rooms, kitchens and bedrooms without a cell edge on an
      exterior wall (an edge to a cell outside the footprint or to the grid's border).
    - ``missing_adjacency``: required adjacencies not met (touching = sharing a cell edge).
    - ``outside_footprint``: room cells outside the footprint, as a fraction of its cells.
    - ``unfilled``: footprint cells left exterior, as a fraction of its cells.

    Args:
        size: side of the square grid in cells (at least 16).
        cell_m: side of a cell in metres.
        door_cells: wall length (in cells) that two rooms need to share for a door.
        min_width_m: the narrowest a room of each type may be, in metres.
        max_aspect: the most elongated bounding box a room (not circulation) may have.
    """

    name = "floor_plan"
    cell_px = 16

    def __init__(
        self,
        size: int = 24,
        cell_m: float = 0.5,
        door_cells: int = 2,
        min_width_m: Mapping[str, float] | None = None,
        max_aspect: float = 3.0,
    ) -> None:
        if size < 16:
            raise ValueError(f"FloorPlan needs a grid of at least 16 x 16 cells, got size={size}")
        if not cell_m > 0:
            raise ValueError(f"cell_m must be positive, got {cell_m}")
        if door_cells < 1:
            raise ValueError(f"door_cells must be at least 1, got {door_cells}")
        if not max_aspect >= 1.0:
            raise ValueError(f"max_aspect must be at least 1, got {max_aspect}")
        widths = {"living": 2.0, "kitchen": 2.0, "bedroom": 2.0, "bathroom": 1.5, "circulation": 1.0}
        unknown = sorted(set(min_width_m or {}) - set(widths))
        if unknown:
            raise ValueError(f"min_width_m names unknown room type(s) {unknown}; the types are {sorted(widths)}")
        widths.update(min_width_m or {})
        self.size = size
        self.cell_m = float(cell_m)
        self.cell_area = self.cell_m**2
        self.door_cells = int(door_cells)
        self.max_aspect = float(max_aspect)
        self.min_width_m = widths
        #: Side of the opening square per room code (at least one cell).
        self.min_width_cells = {
            ROOM_TYPES.index(t): max(1, int(round(w / self.cell_m))) for t, w in widths.items()
        }
        self.design_space = spaces.Box(0.0, 5.0, shape=(size, size), dtype=np.float32)
        self.conditions_space = spaces.Dict(
            {
                "footprint": spaces.Discrete(3),
                "width": spaces.Box(0.7, 1.0, shape=(), dtype=np.float64),
                "depth": spaces.Box(0.7, 1.0, shape=(), dtype=np.float64),
                "notch": spaces.Box(0.25, 0.4, shape=(), dtype=np.float64),
                "entrance": spaces.Box(0.0, 1.0, shape=(), dtype=np.float64),
                "bedrooms": spaces.Discrete(3, start=1),
                "bathrooms": spaces.Discrete(2, start=1),
                "living_share": spaces.Box(0.2, 0.35, shape=(), dtype=np.float64),
                "kitchen_living": spaces.Discrete(2),
                "bath_bedroom": spaces.Discrete(2),
            }
        )
        self.objective = ObjectiveSpec("quality", sense="max", scale=0.1)
        self.violation_names = (
            "missing_rooms",
            "room_area",
            "room_shape",
            "unreachable",
            "no_daylight",
            "missing_adjacency",
            "outside_footprint",
            "unfilled",
        )
        # ``quality`` lies in [-1, 1], so with scale 0.1 no design change is worth more than 20
        # reward units. Counted rules (a room missing, unreachable or dark, an adjacency not met)
        # cost 25 per unit, more than the whole objective range. The measured rules cost 25 per
        # unit of relative area error or of uncovered room share: one cell (0.25 m2) beyond a
        # room's range (0.007 units and up for ranges up to 36 m2: 0.17 reward units) or left
        # uncovered in a room (1/150 of its cells or more) costs about as much as, or more than,
        # the tenth of a reward unit that one cell can move the objective, and more cells cost
        # more. Footprint fractions cost 50: one
        # cell of circulation dropped from the footprint gains 10 / F reward units (F cells in
        # the footprint) and costs 50 / F.
        self.default_violation_weights = {
            "missing_rooms": 25.0,
            "room_area": 25.0,
            "room_shape": 25.0,
            "unreachable": 25.0,
            "no_daylight": 25.0,
            "missing_adjacency": 25.0,
            "outside_footprint": 50.0,
            "unfilled": 50.0,
        }

    # -- input ---------------------------------------------------------------------------------

    def check_design(self, design: Any) -> np.ndarray:
        """The design as a float array of integer room codes 0 to 5.

        Values in ``[0, 5]`` that are not whole numbers are rounded to the nearest code (a
        generator outputs exact codes; rounding is for tools that pass floats).

        Raises:
            ValueError: for a wrong shape, a non-numeric dtype, non-finite values or values
                outside ``[0, 5]`` (the message lists the codes).
        """
        array = np.asarray(design)
        if array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            raise ValueError(
                f"{self.name}: a design must be a numeric array of room codes, got dtype {array.dtype}; "
                f"pass integers {self._codes_text()}"
            )
        if array.shape != self.design_space.shape:
            raise ValueError(
                f"{self.name}: a design must have shape {self.design_space.shape} (rows, cols), got {array.shape}"
            )
        array = array.astype(np.float64, copy=False)
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"{self.name}: the design holds NaN or infinite values; pass room codes {self._codes_text()}"
            )
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 5.0:
            bad = low if low < 0.0 else high
            raise ValueError(
                f"{self.name}: the design holds the value {bad:g}, not a room code; the codes are {self._codes_text()}"
            )
        return np.rint(array)

    @staticmethod
    def _codes_text() -> str:
        return ", ".join(f"{i} {t}" for i, t in enumerate(ROOM_TYPES))

    # -- the brief -----------------------------------------------------------------------------

    def _footprint_geometry(self, conditions: Mapping[str, Any]) -> dict[str, int]:
        n = self.size
        w = int(np.clip(round(float(conditions["width"]) * n), 4, n))
        d = int(np.clip(round(float(conditions["depth"]) * n), 4, n))
        c0 = (n - w) // 2
        r0 = n - d
        shape = int(conditions["footprint"])
        nw = nd = 0
        n0 = n1 = c0 + w
        if shape in (1, 2):
            nw = int(np.clip(round(float(conditions["notch"]) * w), 1, w - 2))
            nd = int(np.clip(round(float(conditions["notch"]) * d), 1, d - 1))
            n0 = c0 + w - nw if shape == 1 else c0 + (w - nw) // 2
            n1 = n0 + nw
        return {"shape": shape, "r0": r0, "c0": c0, "w": w, "d": d, "nw": nw, "nd": nd, "n0": n0, "n1": n1}

    def footprint_mask(self, conditions: Mapping[str, Any]) -> np.ndarray:
        """The cells the house must fill, a ``(size, size)`` bool array.

        The footprint's bounding box is ``round(width * size)`` columns by ``round(depth * size)``
        rows, centred left to right and standing on the bottom (street) row. An L-shape loses a
        ``round(notch * width)`` by ``round(notch * depth)`` block at its back right corner, a
        U-shape the same block from the middle of its back edge.
        """
        g = self._footprint_geometry(conditions)
        mask = np.zeros((self.size, self.size), dtype=bool)
        mask[g["r0"] :, g["c0"] : g["c0"] + g["w"]] = True
        if g["nw"]:
            mask[g["r0"] : g["r0"] + g["nd"], g["n0"] : g["n1"]] = False
        return mask

    def entrance_cell(self, conditions: Mapping[str, Any]) -> tuple[int, int]:
        """``(row, col)`` of the front door: a footprint cell of the bottom row.

        ``entrance`` 0 is the footprint's leftmost bottom cell, 1 its rightmost (rounded to cells).
        """
        g = self._footprint_geometry(conditions)
        col = g["c0"] + int(round(float(conditions["entrance"]) * (g["w"] - 1)))
        return self.size - 1, col

    def room_targets(self, conditions: Mapping[str, Any]) -> dict[str, tuple[int, float, float]]:
        """Per room type, ``(count, min_m2, max_m2)``: how many rooms and the area range of each.

        With ``A`` the footprint's area in m2 and ``f = max(1, A / 100)`` (bigger houses have
        bigger rooms):

        - living: 1 room of ``living_share * A`` +- 25 %;
        - kitchen: 1 room of 5 to ``14 f`` m2;
        - bathroom: ``bathrooms`` rooms of 2.5 to ``8 f`` m2 each;
        - bedroom: ``bedrooms`` rooms sharing what is left, ``b = (A - living - 9 f - 4.5 f *
          bathrooms - 0.12 A) / bedrooms`` (9 f and 4.5 f are a typical kitchen and bathroom, 12 %
          of the area is allowed for circulation), each ``max(7, 0.5 b)`` to ``max(12, 1.5 b)``
          m2: at least 7 m2, a floor that small footprints are sized to allow.
        """
        conditions = self.check_conditions(conditions)
        area = float(self.footprint_mask(conditions).sum()) * self.cell_area
        f = max(1.0, area / 100.0)
        living = float(conditions["living_share"]) * area
        nb, nba = int(conditions["bedrooms"]), int(conditions["bathrooms"])
        left = area - living - 9.0 * f - 4.5 * f * nba - 0.12 * area
        b = max(left, 0.0) / nb
        return {
            "living": (1, 0.75 * living, 1.25 * living),
            "kitchen": (1, 5.0, 14.0 * f),
            "bedroom": (nb, max(7.0, 0.5 * b), max(12.0, 1.5 * b)),
            "bathroom": (nba, 2.5, 8.0 * f),
        }

    # -- rooms ---------------------------------------------------------------------------------

    def rooms(self, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Label the rooms of a plan: ``(labels, codes)``.

        ``labels`` is an int array of the grid's shape, 0 for exterior and ``1..n`` for rooms
        (numbered type by type); ``codes[i - 1]`` is the room-type code of room ``i``.
        """
        grid = self.check_design(design).astype(np.int64)
        return self._label(grid)

    @staticmethod
    def _label(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = np.zeros(grid.shape, dtype=np.int64)
        codes: list[int] = []
        for code in range(1, len(ROOM_TYPES)):
            lab, n = ndimage.label(grid == code)
            if n:
                labels[lab > 0] = lab[lab > 0] + len(codes)
                codes.extend([code] * n)
        return labels, np.asarray(codes, dtype=np.int64)

    @staticmethod
    def _shared_walls(labels: np.ndarray, n: int) -> np.ndarray:
        """``(n + 1, n + 1)`` symmetric counts of cell edges shared by each pair of labels."""
        walls = np.zeros((n + 1, n + 1), dtype=np.int64)
        for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
            diff = a != b
            np.add.at(walls, (a[diff], b[diff]), 1)
        return walls + walls.T

    def _opened_share(self, mask: np.ndarray, k: int) -> float:
        """Share of the cells of ``mask`` that no ``k x k`` square inside the mask covers."""
        total = int(mask.sum())
        if k <= 1 or total == 0:
            return 0.0
        h, w = mask.shape
        if h < k or w < k:
            return 1.0
        corners = sliding_window_view(mask, (k, k)).all(axis=(2, 3))
        covered = np.zeros_like(mask)
        ch, cw = corners.shape
        for di in range(k):
            for dj in range(k):
                covered[di : di + ch, dj : dj + cw] |= corners
        return 1.0 - float(covered.sum()) / total

    # -- judging -------------------------------------------------------------------------------

    def _evaluate(self, design: np.ndarray, conditions: Conditions) -> tuple[dict[str, float], dict[str, float]]:
        grid = design.astype(np.int64)
        footprint = self.footprint_mask(conditions)
        foot_cells = float(footprint.sum())
        labels, codes = self._label(grid)
        n = len(codes)
        index = np.arange(1, n + 1)
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
        walls = self._shared_walls(labels, n)
        slices = ndimage.find_objects(labels, max_label=n) if n else []

        # Room counts and areas against the brief.
        targets = self.room_targets(conditions)
        missing = 0
        area_violation = 0.0
        for name, (count, lo, hi) in targets.items():
            code = ROOM_TYPES.index(name)
            mine = index[codes == code]
            missing += abs(len(mine) - count)
            for room in mine:
                a = areas[room - 1] * self.cell_area
                if a < lo:
                    area_violation += (lo - a) / lo
                elif a > hi:
                    area_violation += (a - hi) / hi

        # Shapes: narrow parts and elongated bounding boxes; compactness on the way.
        shape_violation = 0.0
        weighted = 0.0
        for room, box in zip(index, slices, strict=True):
            mask = labels[box] == room
            code = int(codes[room - 1])
            shape_violation += self._opened_share(mask, self.min_width_cells[code])
            h, w = mask.shape
            if code != CIRCULATION:
                shape_violation += 0.5 * max(0.0, max(h, w) / min(h, w) - self.max_aspect)
            weighted += areas[room - 1] * areas[room - 1] / (h * w)
        compactness = weighted / areas.sum() if n else 0.0

        # Reachability from the entrance, spreading through passable rooms only.
        row, col = self.entrance_cell(conditions)
        start = int(labels[row, col])
        reached = np.zeros(n + 1, dtype=bool)
        if start:
            reached[start] = True
            queue = [start] if int(codes[start - 1]) in PASSABLE else []
            doors = walls >= self.door_cells
            while queue:
                room = queue.pop()
                for other in np.nonzero(doors[room])[0]:
                    if other and not reached[other]:
                        reached[other] = True
                        if int(codes[other - 1]) in PASSABLE:
                            queue.append(int(other))
        unreachable = n - int(reached[1:].sum())

        # Daylight: an edge to a cell outside the footprint (or off the grid).
        outside = ~np.pad(footprint, 1, constant_values=False)
        near_outside = outside[:-2, 1:-1] | outside[2:, 1:-1] | outside[1:-1, :-2] | outside[1:-1, 2:]
        lit = np.zeros(n + 1, dtype=bool)
        lit[np.unique(labels[near_outside])] = True
        dark = sum(1 for room in index if int(codes[room - 1]) in HABITABLE and not lit[room])

        # Adjacencies asked for by the brief.
        touching = walls > 0
        required = met = 0
        for flag, a, b in (("kitchen_living", KITCHEN, LIVING), ("bath_bedroom", BATHROOM, BEDROOM)):
            if int(conditions[flag]):
                required += 1
                rows, cols = index[codes == a], index[codes == b]
                met += bool(rows.size and cols.size and touching[np.ix_(rows, cols)].any())

        room_cells = grid > 0
        circulation = float(np.count_nonzero(grid == CIRCULATION))
        objectives = {
            "quality": compactness - circulation / foot_cells,
            "circulation_ratio": circulation / foot_cells,
            "compactness": compactness,
            "adjacency_satisfaction": met / required if required else 1.0,
            "rooms": float(n),
            "floor_area_m2": float(room_cells.sum()) * self.cell_area,
        }
        violations = {
            "missing_rooms": float(missing),
            "room_area": area_violation,
            "room_shape": shape_violation,
            "unreachable": float(unreachable),
            "no_daylight": float(dark),
            "missing_adjacency": float(required - met),
            "outside_footprint": float(np.count_nonzero(room_cells & ~footprint)) / foot_cells,
            "unfilled": float(np.count_nonzero(footprint & ~room_cells)) / foot_cells,
        }
        return objectives, violations

    # -- pictures ------------------------------------------------------------------------------

    def render(self, design: np.ndarray, conditions: Mapping[str, Any] | None = None) -> np.ndarray:
        """The plan in colour: a fill per room type, walls between rooms, a label in each room.

        With conditions, the footprint's outline is drawn in dark blue and the front door as a red
        bar on the street edge of :meth:`entrance_cell`.
        """
        from PIL import Image, ImageDraw, ImageFont

        grid = self.check_design(design).astype(np.int64)
        labels, codes = self._label(grid)
        px = self.cell_px
        palette = np.array([_COLOURS[c] for c in range(len(ROOM_TYPES))], dtype=np.uint8)
        image = np.kron(palette[grid], np.ones((px, px, 1), dtype=np.uint8))
        # Walls: a line on each cell edge between different rooms (exterior counts as a room).
        t = 1  # half the wall's thickness in pixels
        vertical = labels[:, :-1] != labels[:, 1:]
        for r, c in zip(*np.nonzero(vertical), strict=True):
            x = (c + 1) * px
            image[r * px : (r + 1) * px, x - t : x + t] = _WALL
        horizontal = labels[:-1, :] != labels[1:, :]
        for r, c in zip(*np.nonzero(horizontal), strict=True):
            y = (r + 1) * px
            image[y - t : y + t, c * px : (c + 1) * px] = _WALL
        # Rooms on the grid's border get their outer wall too.
        n = self.size * px
        borders = (("top", labels[0]), ("bottom", labels[-1]), ("left", labels[:, 0]), ("right", labels[:, -1]))
        for side, cells in borders:
            for i in np.nonzero(cells)[0]:
                span = slice(i * px, (i + 1) * px)
                if side == "top":
                    image[0 : 2 * t, span] = _WALL
                elif side == "bottom":
                    image[n - 2 * t : n, span] = _WALL
                elif side == "left":
                    image[span, 0 : 2 * t] = _WALL
                else:
                    image[span, n - 2 * t : n] = _WALL
        if conditions is not None:
            conditions = self.check_conditions(conditions)
            foot = self.footprint_mask(conditions)
            padded = np.pad(foot, 1, constant_values=False)
            for r, c in zip(*np.nonzero(foot), strict=True):
                y0, x0 = r * px, c * px
                if not padded[r, c + 1]:  # nothing above: the top edge
                    image[y0 : y0 + 2, x0 : x0 + px] = _OUTLINE
                if not padded[r + 2, c + 1]:  # below
                    image[y0 + px - 2 : y0 + px, x0 : x0 + px] = _OUTLINE
                if not padded[r + 1, c]:  # left
                    image[y0 : y0 + px, x0 : x0 + 2] = _OUTLINE
                if not padded[r + 1, c + 2]:  # right
                    image[y0 : y0 + px, x0 + px - 2 : x0 + px] = _OUTLINE
            r, c = self.entrance_cell(conditions)
            image[(r + 1) * px - 4 : (r + 1) * px, c * px + 2 : (c + 1) * px - 2] = _DOOR
        picture = Image.fromarray(image)
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default()
        for room, code in enumerate(codes, start=1):
            rows, cols = np.nonzero(labels == room)
            # The room's cell nearest its centroid, so L-shaped rooms keep their label inside.
            k = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
            x, y = (cols[k] + 0.5) * px, (rows[k] + 0.5) * px
            draw.text((x, y), _LABELS[int(code)], fill=(30, 30, 30), font=font, anchor="mm")
        return np.asarray(picture, dtype=np.uint8).copy()
