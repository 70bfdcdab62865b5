"""Plans from eleven numbers: the slicing layout behind the ``floorplan-slicing`` generator.

A plan is described by a few choices, not by its cells: how deep the back strip is, which rooms
go behind the corridor and which in front, the order of the rooms in each strip, and the area
each room aims for. :func:`layout` solves such a description into a grid of room codes for a
:class:`~designgym.envs.architecture.floorplan.FloorPlan` brief, so that the plan is a plan by
construction:

- a corridor (circulation, 2 cells deep) runs across the whole footprint; behind it the back
  strip reaches the back wall (shallower behind an L or U notch), in front of it the front strip
  reaches the street;
- each strip is cut into rectangles (an L-shaped room where a back room spans the notch's step)
  by a dynamic programme that holds every room inside its area range, at least its minimum width
  wide and deep on every part, and at most 3:1 in its bounding box, and among such cuts keeps the
  rooms rectangular and the corridor short first (the quality a cut loses, weighted
  :data:`SHAPE_WEIGHT`) and the rooms near their aimed areas second. A room whose strip is too
  deep for its largest area keeps to the outside wall and leaves an alcove of the corridor in
  front of it;
- neighbours in a strip are never of one type (they would merge into one room); the living room
  holds the front door; the kitchen sits next to the living room and a bathroom next to a bedroom
  when the brief asks.

So every room touches the corridor (or, behind an alcove, the corridor's alcove) along its whole
width, every habitable room has an outside wall, and the footprint is filled exactly: of the eight
rules only the area ranges can fail, and only when no cut of any description fits them (then the
ranges are relaxed and the plan says so by its ``room_area``).

The description ``u`` is a vector of :data:`PARAMETERS` numbers in ``(0, 1)``; the generator gets
it from a standard normal latent through the normal CDF. The discrete choices each pick a
preferred option from an ordered list (``u * len``): the room assignment; the back strip's depth
among the three whose strip areas best fit the assigned rooms' aims; and the orders of the rooms,
of which the :data:`ORDERS_COMPARED` nearest the preferred one that cut are compared and the
cheapest cut kept. When the preferred combination has no valid cut, the nearest alternatives are
tried in turn (the assignment, then the depth), so every ``u`` decodes to a plan and nearby ``u``
decode to the same or a related one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from designgym.envs.architecture.floorplan import (
    BATHROOM,
    BEDROOM,
    CIRCULATION,
    KITCHEN,
    LIVING,
    FloorPlan,
)

#: What each of the description's numbers chooses, in order.
PARAMETERS = (
    "back_depth",
    "assignment",
    "back_order",
    "front_order",
    "living_area",
    "kitchen_area",
    "bedroom_1_area",
    "bedroom_2_area",
    "bedroom_3_area",
    "bathroom_1_area",
    "bathroom_2_area",
)
CORRIDOR = 2  # cells: 1 m, circulation's minimum width
_MIN = {LIVING: 4, KITCHEN: 4, BEDROOM: 4, BATHROOM: 3, CIRCULATION: 2}
_NAMES = {LIVING: "living", KITCHEN: "kitchen", BEDROOM: "bedroom", BATHROOM: "bathroom"}
_AREA_SLOT = {LIVING: (4,), KITCHEN: (5,), BEDROOM: (6, 7, 8), BATHROOM: (9, 10)}
#: Weight of the quality a cut loses (in shares of the footprint) against the squared relative
#: errors of its rooms' areas from their aims.
SHAPE_WEIGHT = 10.0
#: Orders of the rooms compared per strip (the nearest ``u`` first); the cheapest cut wins.
ORDERS_COMPARED = 6
#: Most (row-segment, order) solves one decode tries before relaxing the area ranges.
_MAX_SOLVES = 2000


def _chain_ok(types: Sequence[int]) -> bool:
    return all(a != b for a, b in zip(types, types[1:], strict=False))


def _pair(types: Sequence[int]) -> bool:
    return any({a, b} == {BATHROOM, BEDROOM} for a, b in zip(types, types[1:], strict=False))


def _nearest_first(n: int, u: float) -> list[int]:
    """``0..n-1`` ordered by distance from the preferred index ``min(n - 1, floor(u n))``."""
    best = min(n - 1, int(u * n))
    return sorted(range(n), key=lambda i: (abs(i - best), i))


@lru_cache(maxsize=64)
def _orders(items: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """The distinct orders of a multiset of room types without two equal neighbours, sorted."""
    return tuple(sorted(p for p in set(itertools.permutations(items)) if _chain_ok(p)))


class _Row:
    """One run of columns of a strip to be cut into rooms: its columns' depths and its cut cache."""

    def __init__(self, x0: int, depths: np.ndarray, targets: dict[int, tuple[float, float]], entrance: int | None,
                 footprint_cells: float):
        self.x0 = x0
        self.depths = depths
        self.cum = np.concatenate([[0], np.cumsum(depths)])
        # Start of the constant-depth segment each column belongs to, and that segment's end.
        self.seg_start = np.zeros(len(depths), dtype=int)
        self.seg_end = np.zeros(len(depths), dtype=int)
        start = 0
        for x in range(1, len(depths) + 1):
            if x == len(depths) or depths[x] != depths[x - 1]:
                self.seg_start[start:x] = start
                self.seg_end[start:x] = x
                start = x
        self._segments = [(int(x), int(self.seg_end[x])) for x in range(len(depths)) if self.seg_start[x] == x]
        # Shallowest and deepest column of every run [a, b] (b inclusive), for the room table.
        n = len(depths)
        self._low = np.zeros((n, n), dtype=int)
        self._deep = np.zeros((n, n), dtype=int)
        for x in range(n):
            self._low[x, x:] = np.minimum.accumulate(depths[x:])
            self._deep[x, x:] = np.maximum.accumulate(depths[x:])
        self.targets = targets
        self.entrance = entrance  # the door's column, relative to x0, for the front strip
        self.hall = False  # whether the front door opens into a hall rather than the living room
        self._options: dict[tuple[int, bool, bool], list[list[tuple[int, float, int, float]]]] = {}
        self.footprint_cells = footprint_cells  # the unit of the quality a cut loses
        #: Orders that cannot be cut at all (whatever the aimed areas): tried once per brief.
        self.impossible: set[tuple] = set()
        self._cuts: dict[tuple, tuple[list[tuple[int, int, int, int]], float] | None] = {}
        self._narrowest: dict[tuple[int, bool, bool], int] = {}

    def room(self, code: int, a: int, b: int, relaxed: bool) -> tuple[float, int] | None:
        """``(area, room_depth)`` of a room of type ``code`` on columns ``[a, b)``, or None when no
        such room meets the rules (room_depth < the strip's depth: an alcove in front of it).

        The rules as one readable definition; decoding uses :meth:`table`, the same rules in numpy
        for every ``(a, b)`` at once (a test holds the two equal)."""
        k = _MIN[code]
        width = b - a
        if width < k:
            return None
        if code == CIRCULATION:  # the entrance hall: 2 or 3 cells wide, from the front door to the corridor
            if width > 3 or self.entrance is None or not a <= self.entrance < b:
                return None
            return float(self.cum[b] - self.cum[a]), int(self.depths[a])
        if code == LIVING and self.entrance is not None and not self.hall and not a <= self.entrance < b:
            return None
        depths = self.depths[a:b]
        low, deep = int(depths.min()), int(depths.max())
        if low < k:
            return None
        # Every constant-depth part of the room must be k wide (its cells covered by k x k squares);
        # the parts at the ends count with the width the room gives them.
        x = a
        while x < b:
            end = min(b, int(self.seg_end[x]))
            if end - x < k and low != deep:
                return None
            x = end
        lo, hi = self.targets[code] if not relaxed else (0.0, math.inf)
        area = float(self.cum[b] - self.cum[a])
        if lo <= area <= hi and max(width, deep) <= 3 * min(width, deep):
            return area, deep
        if low != deep or code == LIVING:  # an alcove only in front of a room of one depth
            return None
        # Too big or too deep a room keeps to the outside wall, as deep as its area and shape allow.
        depth = min(deep - 1, int(hi // width) if hi < math.inf else deep - 1, 3 * width)
        if depth < k or depth * width < lo or width > 3 * depth:
            return None
        return float(depth * width), depth

    def options(self, code: int, a: int, relaxed: bool) -> list[tuple[int, float, int, float]]:
        """``(b, area, room_depth, lost)`` of every valid room of type ``code`` starting at column ``a``
        (``lost``: the quality it costs, in cells; see :meth:`_lost`)."""
        key = (code, relaxed, self.hall)
        found = self._options.get(key)
        if found is None:
            valid, area, depth = self.table(code, relaxed)
            found = self._options[key] = [[] for _ in range(len(self.depths) + 1)]
            for a0, b0 in zip(*np.nonzero(valid), strict=True):
                room_area, room_depth = float(area[a0, b0]), int(depth[a0, b0])
                found[a0].append((int(b0), room_area, room_depth, self._lost(code, a0, b0, room_area, room_depth)))
        return found[a]

    def _lost(self, code: int, a: int, b: int, area: float, depth: int) -> float:
        """Cells of quality a room costs the plan: the corridor cells of a hall or of an alcove in
        front of the room, and for a room of two depths the area it loses to its bounding box
        (compactness is the area-weighted mean of area over bounding box)."""
        if code == CIRCULATION:
            return area
        deep = int(self._deep[a, b - 1])
        box = float((b - a) * deep)
        if depth < deep:
            return box - area  # the alcove
        return area * (1.0 - area / box)

    def table(self, code: int, relaxed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`room` for every ``(a, b)`` at once, as ``(valid, area, room_depth)`` arrays of
        shape ``(n + 1, n + 1)`` (the same rules, in numpy: a decode builds a few of these)."""
        n, k = len(self.depths), _MIN[code]
        a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        width = b - a
        inside = width >= k
        a_, b_ = np.minimum(a, n - 1), np.clip(b - 1, 0, n - 1)
        area = (self.cum[b] - self.cum[a]).astype(np.float64)
        low, deep = self._low[a_, b_], self._deep[a_, b_]
        if code == CIRCULATION:
            valid = inside & (width <= 3) & (self.entrance is not None)
            if self.entrance is not None:
                valid &= (a <= self.entrance) & (self.entrance < b)
            return valid, area, deep
        if code == LIVING and self.entrance is not None and not self.hall:
            inside &= (a <= self.entrance) & (self.entrance < b)
        inside &= low >= k
        # Every constant-depth part of a room of two depths is k wide: the parts cut at its ends ...
        first = np.minimum(self.seg_end[a_], b) - a
        last = b - np.maximum(self.seg_start[b_], a)
        parts_ok = (low == deep) | ((first >= k) & (last >= k))
        # ... and the whole segments inside it.
        for s0, s1 in self._segments:
            if s1 - s0 < k:
                parts_ok &= ~((a <= s0) & (s1 <= b))
        inside &= parts_ok
        lo, hi = self.targets[code] if not relaxed else (0.0, math.inf)
        safe = np.maximum(width, 1)
        full = inside & (area >= lo) & (area <= hi) & (np.maximum(width, deep) <= 3 * np.minimum(width, deep))
        if code == LIVING:
            return full, area, deep
        cap = deep - 1 if hi == math.inf else np.minimum(deep - 1, np.floor(hi / safe).astype(int))
        alcove_depth = np.minimum(cap, 3 * width)
        alcove = (inside & ~full & (low == deep) & (alcove_depth >= k) & (alcove_depth * width >= lo)
                  & (width <= 3 * alcove_depth))
        depth = np.where(full, deep, alcove_depth)
        return full | alcove, np.where(full, area, (alcove_depth * width).astype(np.float64)), depth

    def can_cut(self, types: Sequence[int], relaxed: bool, need_pair: bool = False) -> bool:
        """False when cutting ``types`` cannot work: tried and failed before (for any aimed areas),
        or the rooms' narrowest valid widths do not fit the row (or either side of the door)."""
        if (tuple(types), relaxed, need_pair, self.hall) in self.impossible:
            return False
        narrowest = [self.narrowest(t, relaxed) for t in types]
        if sum(narrowest) > len(self.depths):
            return False
        if self.entrance is not None:
            door = types.index(CIRCULATION if self.hall else LIVING)
            after = len(self.depths) - 1 - self.entrance
            if sum(narrowest[:door]) > self.entrance or sum(narrowest[door + 1 :]) > after:
                return False
        return True

    def narrowest(self, code: int, relaxed: bool) -> int:
        """The narrowest valid room of type ``code`` anywhere in the row (columns; the row's width + 1
        when there is none)."""
        key = (code, relaxed, self.hall)
        if key not in self._narrowest:
            valid = self.table(code, relaxed)[0]
            widths = (np.arange(valid.shape[1])[None, :] - np.arange(valid.shape[0])[:, None])[valid]
            self._narrowest[key] = int(widths.min()) if widths.size else len(self.depths) + 1
        return self._narrowest[key]

    def cut(self, types: Sequence[int], wanted: Sequence[float], relaxed: bool,
            need_pair: bool = False) -> tuple[list[tuple[int, int, int, int]], float] | None:
        """Cut the row into ``types`` in order: ``([(code, a, b, room_depth)], cost)`` in absolute
        columns, or None. The cost sums each room's relative squared error from its ``wanted`` area
        and, weighted :data:`SHAPE_WEIGHT`, the quality it loses (alcoves, halls and rooms of two
        depths, in footprint shares): the cut keeps rooms rectangular and corridors short first,
        and near their aimed areas among the cuts that do.

        ``need_pair``: a bathroom and a bedroom must share a wall. Rooms keep to the back wall, so
        two neighbours meet when the strip has one depth either side of their common edge (across
        a notch's step a deep room's alcove may face a shallow room's wall): the programme tracks
        whether such an edge between a bathroom and a bedroom has been cut.
        """
        key = (tuple(types), tuple(wanted), relaxed, need_pair, self.hall)
        if key in self._cuts:
            return self._cuts[key]
        if not self.can_cut(types, relaxed, need_pair):
            return None
        self._cuts[key] = found = self._cut(types, wanted, relaxed, need_pair)
        return found

    def _cut(self, types: Sequence[int], wanted: Sequence[float], relaxed: bool,
             need_pair: bool) -> tuple[list[tuple[int, int, int, int]], float] | None:
        n, k = len(self.depths), len(types)
        inf = math.inf
        # cost[j][a][f]: the best first j rooms ending at column a, f = whether a pair edge was cut.
        cost = [[[inf, inf] for _ in range(n + 1)] for _ in range(k + 1)]
        back: dict[tuple[int, int, int], tuple[int, int]] = {}
        cost[0][0][0] = 0.0
        for j, code in enumerate(types):
            want = max(wanted[j], 1.0)
            pair_edge = j > 0 and {types[j - 1], code} == {BATHROOM, BEDROOM}
            for a in range(n):
                for f in (0, 1):
                    base = cost[j][a][f]
                    if base == inf:
                        continue
                    g = 1 if f or (pair_edge and self.depths[a - 1] == self.depths[a]) else 0
                    for b, area, _, lost in self.options(code, a, relaxed):
                        fit = ((area - want) / want) ** 2 if wanted[j] > 0 else 0.0
                        c = base + fit + SHAPE_WEIGHT * lost / self.footprint_cells
                        if c < cost[j + 1][b][g]:
                            cost[j + 1][b][g] = c
                            back[(j + 1, b, g)] = (a, f)
        f = 1 if need_pair else int(cost[k][n][1] < cost[k][n][0])
        if cost[k][n][f] == inf:
            self.impossible.add((tuple(types), relaxed, need_pair, self.hall))
            return None
        out = []
        total, b = cost[k][n][f], n
        for j in range(k, 0, -1):
            a, f = back[(j, b, f)]
            depth = next(d for end, _, d, _ in self.options(types[j - 1], a, relaxed) if end == b)
            out.append((types[j - 1], self.x0 + a, self.x0 + b, depth))
            b = a
        return out[::-1], total


class _Brief:
    """What a layout needs of a brief, computed once: geometry, area ranges in cells, depths."""

    def __init__(self, problem: FloorPlan, conditions: Mapping[str, Any]) -> None:
        self.conditions = problem.check_conditions(conditions)
        self.n = problem.size
        g = self.g = problem._footprint_geometry(self.conditions)
        self.footprint = problem.footprint_mask(self.conditions)
        self.entrance = problem.entrance_cell(self.conditions)[1]
        targets = problem.room_targets(self.conditions)
        self.count = {code: targets[name][0] for code, name in _NAMES.items()}
        self.cells = {code: (targets[name][1] / problem.cell_area, targets[name][2] / problem.cell_area)
                      for code, name in _NAMES.items()}
        self.kitchen_living = bool(self.conditions["kitchen_living"])
        self.bath_bedroom = bool(self.conditions["bath_bedroom"])
        d, nd = g["d"], g["nd"]
        # The back strip is 4+ cells deep and leaves 4+ for the front; behind a notch it is either
        # cut off (depth nd: the notch's columns have no back strip) or 3+ cells deep.
        self.back_depths = [dn for dn in range(max(4, nd), d - CORRIDOR - 3) if not nd or dn == nd or dn >= nd + 3]
        self.assignments = self._assignments()
        self._rows: dict[tuple[int, str], list[_Row]] = {}

    def _assignments(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """``(back rooms, front rooms)`` splits of the programme, fewest rooms moved to the front first."""
        nb, nba = self.count[BEDROOM], self.count[BATHROOM]
        out = []
        for fb, ft, kb in itertools.product(range(nb + 1), range(nba + 1), (0, 1)):
            if kb and self.kitchen_living:
                continue
            back = (BEDROOM,) * (nb - fb) + (BATHROOM,) * (nba - ft) + (KITCHEN,) * kb
            front = (LIVING,) + (KITCHEN,) * (1 - kb) + (BEDROOM,) * fb + (BATHROOM,) * ft
            if back:
                out.append((fb + ft + kb, back, front))
        return [(b, f) for _, b, f in sorted(out)]

    def rows(self, dn: int, strip: str) -> list[_Row]:
        """The runs of columns of the back strip (one, or two either side of a U's notch) or the
        front strip for back depth ``dn``."""
        key = (dn, strip)
        if key not in self._rows:
            g = self.g
            c0, w = g["c0"], g["w"]
            cells = float(self.footprint.sum())
            if strip == "front":
                depth = g["d"] - dn - CORRIDOR
                rows = [_Row(c0, np.full(w, depth), self.cells, self.entrance - c0, cells)]
            else:
                depths = np.full(w, dn)
                if g["nw"]:
                    depths[g["n0"] - c0 : g["n1"] - c0] = dn - g["nd"]
                cols = np.nonzero(depths)[0]
                runs = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)
                rows = [_Row(c0 + int(r[0]), depths[r[0] : r[-1] + 1], self.cells, None, cells) for r in runs]
            self._rows[key] = rows
        return self._rows[key]


def _wanted(brief: _Brief, types: Sequence[int], u: np.ndarray, used: dict[int, int]) -> list[float]:
    """Aimed areas (cells) for rooms of ``types`` in order; ``used`` counts each type's rooms so far."""
    out = []
    for code in types:
        if code == CIRCULATION:  # the hall: aims at 2 cells wide
            out.append(0.0)
            continue
        slot = _AREA_SLOT[code][min(used.get(code, 0), len(_AREA_SLOT[code]) - 1)]
        used[code] = used.get(code, 0) + 1
        lo, hi = brief.cells[code]
        out.append(lo + (0.1 + 0.8 * float(u[slot])) * (hi - lo))
    return out


def _solve(brief: _Brief, u: np.ndarray, relaxed: bool) -> tuple[int, list] | None:
    """The first description nearest ``u`` whose strips all cut: ``(back depth, rooms)`` or None."""
    solves = 0
    for j in _nearest_first(len(brief.assignments), u[1]):
        back, front = brief.assignments[j]
        for dn in _depths_by_fit(brief, back, front, u):
            back_rows, front_row = brief.rows(dn, "back"), brief.rows(dn, "front")[0]
            if len(back) < len(back_rows):
                continue
            back_orders = _split_orders(back, len(back_rows))
            front_orders = _front_orders(front, brief.kitchen_living)
            if not back_orders or not front_orders:
                continue
            fronts = []  # (cost, cut) of up to ORDERS_COMPARED orders that cut, nearest u first
            for m in _nearest_first(len(front_orders), u[3]):
                order = front_orders[m]
                if brief.bath_bedroom and not _pair(order) and not any(any(map(_pair, o)) for o in back_orders):
                    continue
                front_row.hall = CIRCULATION in order
                if not front_row.can_cut(order, relaxed):
                    continue
                solves += 1
                found = front_row.cut(order, _wanted(brief, order, u, {}), relaxed, need_pair=False)
                if found is not None:
                    fronts.append((found[1], len(fronts), found[0]))
                    if len(fronts) == ORDERS_COMPARED:
                        break
            if not fronts:
                continue
            front_cut = min(fronts)[2]
            front_pair = _pair([t for t, *_ in front_cut])
            backs = []
            for m in _nearest_first(len(back_orders), u[2]):
                chains = back_orders[m]
                # The chain that must hold the bathroom beside a bedroom: the first one that can.
                paired = -1 if front_pair or not brief.bath_bedroom else next(
                    (i for i, chain in enumerate(chains) if _pair(chain)), None)
                if paired is None:
                    continue
                if not all(row.can_cut(chain, relaxed, i == paired)
                           for i, (row, chain) in enumerate(zip(back_rows, chains, strict=True))):
                    continue
                rooms, total = [], 0.0
                used = {t: sum(1 for r in front_cut if r[0] == t) for t in _AREA_SLOT}  # area slots taken
                for i, (row, chain) in enumerate(zip(back_rows, chains, strict=True)):
                    solves += 1
                    found = row.cut(chain, _wanted(brief, chain, u, used), relaxed, need_pair=i == paired)
                    if found is None:
                        break
                    rooms.extend((*r, "back") for r in found[0])
                    total += found[1]
                else:
                    backs.append((total, len(backs), rooms))
                    if len(backs) == ORDERS_COMPARED:
                        break
                if solves > _MAX_SOLVES:
                    break
            if backs:
                return dn, min(backs)[2] + [(*r, "front") for r in front_cut]
            if solves > _MAX_SOLVES:
                return None
    return None


def _depths_by_fit(brief: _Brief, back: tuple[int, ...], front: tuple[int, ...], u: np.ndarray) -> list[int]:
    """The back strip's depths, best first for these rooms: ranked by how far the two strips' areas
    are from the rooms' aimed areas, starting from the one of the three best fits that ``u[0]`` picks."""
    want_back = sum(_wanted(brief, back, u, {}))
    want_front = sum(_wanted(brief, [t for t in front if t != LIVING], u, {}))
    want_front += sum(brief.cells[LIVING]) / 2
    g = brief.g

    def misfit(dn: int) -> float:
        back_area = sum(float(row.cum[-1]) for row in brief.rows(dn, "back"))
        front_area = float(g["w"] * (g["d"] - dn - CORRIDOR))
        return abs(back_area - want_back) + abs(front_area - want_front)

    ranked = sorted(brief.back_depths, key=misfit)
    return [ranked[i] for i in _nearest_first(min(3, len(ranked)), u[0])] + ranked[3:]


def _kitchen_by_living(order: Sequence[int]) -> bool:
    return any({a, b} == {KITCHEN, LIVING} for a, b in zip(order, order[1:], strict=False))


@lru_cache(maxsize=256)
def _front_orders(front: tuple[int, ...], kitchen_living: bool) -> list[tuple[int, ...]]:
    """Orders of the front rooms: the living room holding the front door first, then with an
    entrance hall (a circulation slice from the door to the corridor) among them."""
    plain = [o for o in _orders(front) if not kitchen_living or _kitchen_by_living(o)]
    hall = [o for o in _orders((*front, CIRCULATION)) if not kitchen_living or _kitchen_by_living(o)]
    return plain + hall


@lru_cache(maxsize=256)
def _split_orders(back: tuple[int, ...], chains: int) -> list[tuple[tuple[int, ...], ...]]:
    """Orders of the back rooms dealt to ``chains`` runs of columns, each run non-empty and
    without equal neighbours."""
    out = []
    for order in sorted(set(itertools.permutations(back))):
        if chains == 1:
            if _chain_ok(order):
                out.append((order,))
            continue
        for s in range(1, len(order)):
            parts = (order[:s], order[s:])
            if all(map(_chain_ok, parts)):
                out.append(parts)
    return out


def layout(problem: FloorPlan, conditions: Mapping[str, Any], u: np.ndarray, brief: _Brief | None = None) -> np.ndarray:
    """The plan that the description ``u`` (:data:`PARAMETERS` numbers in ``[0, 1]``) gives for the
    brief: a ``(size, size)`` ``uint8`` grid of room codes (see the module's docstring).

    When no description near ``u`` has a cut within the rooms' area ranges, the ranges are relaxed
    (the plan then breaks ``room_area`` only); when not even that cuts, the footprint is one living
    room with the corridor (a plan that breaks several rules, never an error).
    """
    u = np.clip(np.asarray(u, dtype=np.float64).ravel(), 0.0, 1.0)
    if u.shape != (len(PARAMETERS),):
        raise ValueError(f"a layout description has {len(PARAMETERS)} numbers, got {u.shape[0]}")
    brief = brief or _Brief(problem, conditions)
    g, n = brief.g, brief.n
    grid = np.zeros((n, n), dtype=np.uint8)
    found = None
    if brief.back_depths:
        found = _solve(brief, u, relaxed=False) or _solve(brief, u, relaxed=True)
    if found is None:
        grid[brief.footprint] = LIVING
        if brief.back_depths:
            rc = g["r0"] + brief.back_depths[0]
            grid[rc : rc + CORRIDOR, g["c0"] : g["c0"] + g["w"]] = CIRCULATION
        return grid
    dn, rooms = found
    rc = g["r0"] + dn
    grid[rc : rc + CORRIDOR, g["c0"] : g["c0"] + g["w"]] = CIRCULATION
    profile = np.zeros(n, dtype=int)  # the back strip's depth per column
    for row in brief.rows(dn, "back"):
        profile[row.x0 : row.x0 + len(row.depths)] = row.depths
    for code, a, b, depth, strip in rooms:
        if strip == "back":
            for x in range(a, b):
                strip_depth = int(profile[x])
                top = rc - strip_depth
                grid[top:rc, x] = CIRCULATION  # an alcove of the corridor in front of a shallow room ...
                grid[top : top + min(depth, strip_depth), x] = code  # ... which keeps to the outside wall
        else:
            grid[rc + CORRIDOR : n, a:b] = CIRCULATION
            grid[n - depth : n, a:b] = code
    return grid


class Briefs:
    """A small cache of :class:`_Brief` objects by conditions, for decoding many designs of few briefs."""

    def __init__(self, problem: FloorPlan, size: int = 256) -> None:
        self.problem = problem
        self.size = size
        self._cache: dict[tuple, _Brief] = {}

    def __call__(self, conditions: Mapping[str, Any]) -> _Brief:
        key = tuple(sorted((k, float(v)) for k, v in conditions.items()))
        brief = self._cache.get(key)
        if brief is None:
            if len(self._cache) >= self.size:
                self._cache.pop(next(iter(self._cache)))
            brief = self._cache[key] = _Brief(self.problem, conditions)
        return brief
