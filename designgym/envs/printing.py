"""Printing without supports on 2D material grids: the 45-degree overhang rule and the repairs that
make a density field printable along a build direction.

A part is printed layer by layer away from its baseplate; ``build_direction`` (``up``, ``left``,
``down``, ``right``) is the way the layers grow. Every function here turns the grid so that the
baseplate lies under the bottom row (:data:`BUILD_TURNS`), works there, and turns the result back.
Solid cells are joined through shared edges, as in :mod:`designgym.envs.manufacturing`, whose
joining, growing and member-size machinery these repairs build on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from designgym.envs.manufacturing import (
    SOLID_CONNECTIVITY,
    _grow,
    _joined,
    disk,
    keep_budget_joined,
    member_defects,
)

#: Quarter turns (``numpy.rot90``, counter-clockwise) that bring each build direction to "up": the baseplate
#: under the bottom row. ``right`` (layers grow toward +x) has its baseplate against the left column, which one
#: quarter turn brings to the bottom; ``left`` has it against the right column.
BUILD_TURNS = {"up": 0, "left": 3, "down": 2, "right": 1}


def printed_mask(mask: np.ndarray, build_direction: str = "up") -> np.ndarray:
    """The cells of ``mask`` that print without supports with a 45-degree overhang limit.

    The part is built along ``build_direction`` (``"up"``: the baseplate under the bottom row). A
    cell prints when it lies on the baseplate or when one of the three cells under it in the
    previous layer (straight below or diagonally below, the 45-degree cone) printed; anything else
    would be deposited on air. This is the exact grid rule behind Langelaar's AM filter
    (:mod:`designgym.envs.structures.am_filter`); keeping only these cells makes any design printable.
    """
    if build_direction not in BUILD_TURNS:
        raise ValueError(f"build_direction must be one of {', '.join(BUILD_TURNS)}, got {build_direction!r}")
    grid = np.rot90(np.asarray(mask, dtype=bool), BUILD_TURNS[build_direction])  # build from the bottom row up
    printed = np.zeros_like(grid, dtype=bool)
    printed[-1] = grid[-1]
    for row in range(grid.shape[0] - 2, -1, -1):
        below = printed[row + 1]
        cone = below.copy()
        cone[1:] |= below[:-1]
        cone[:-1] |= below[1:]
        printed[row] = grid[row] & cone
    return np.rot90(printed, -BUILD_TURNS[build_direction]).copy()


def overhang_fraction(mask: np.ndarray, build_direction: str = "up") -> float:
    """Fraction of the solid that cannot be printed layer by layer with a 45-degree overhang limit
    (:func:`printed_mask` says which cells print)."""
    printed = printed_mask(mask, build_direction)
    total = int(np.count_nonzero(mask))
    if total == 0:
        return 0.0
    return float(total - np.count_nonzero(printed)) / total


def _would_print(mask: np.ndarray, build_direction: str) -> np.ndarray:
    """Cells that would print if made solid: on the baseplate, or with solid in their cone below."""
    turns = BUILD_TURNS[build_direction]
    grid = np.rot90(mask, turns)
    support = np.zeros_like(grid, dtype=bool)
    support[-1] = True
    below = grid[1:]
    support[:-1] = below
    support[:-1, 1:] |= below[:, :-1]
    support[:-1, :-1] |= below[:, 1:]
    return np.rot90(support, -turns)


def keep_budget_printable(density: np.ndarray, anchored: np.ndarray, cells: int, build_direction: str
                          ) -> np.ndarray:
    """At most ``cells`` of the densest cells of ``density``, joined to an ``anchored`` cell and printable
    without supports along ``build_direction`` (:func:`printed_mask`).

    Starts from :func:`~designgym.envs.manufacturing.keep_budget_joined`; drops the cells that do not
    print and what that leaves hanging on nothing, until neither drops a cell; then makes up the
    shortfall from the densest cells that print on what is kept and touch it, a layer at a time
    (adding a cell never stops another from printing or from being joined, so the result keeps both
    rules). Where no such cell is left the mask is smaller than ``cells``.
    """
    anchored = np.asarray(anchored, dtype=bool)
    kept = _printable_joined(keep_budget_joined(density, anchored, cells), anchored, build_direction)
    flat = np.asarray(density, dtype=np.float64).ravel()
    rank = np.empty(flat.size, dtype=np.int64)
    rank[np.argsort(-flat, kind="stable")] = np.arange(flat.size)
    return _grow(kept, anchored, rank, cells, allowed=lambda mask: _would_print(mask, build_direction))


def _printable_joined(mask: np.ndarray, anchored: np.ndarray, build_direction: str) -> np.ndarray:
    """``mask`` less the cells that do not print and what that leaves hanging on nothing, until neither
    drops a cell."""
    while True:
        pruned = _joined(printed_mask(mask, build_direction), anchored)
        if np.array_equal(pruned, mask):
            return pruned
        mask = pruned


def keep_budget_printable_members(density: np.ndarray, anchored: np.ndarray, cells: int, build_direction: str,
                                  r_min: float, allowance: int = 0, max_cells: int | None = None,
                                  searches: int = 7) -> np.ndarray:
    """:func:`keep_budget_printable` with no member thinner nor gap narrower than the disk of ``r_min``
    (:func:`~designgym.envs.manufacturing.member_defects` with ``allowance``), in at most ``max_cells``
    (default ``cells``) cells.

    Thin members are thickened, not cut (a cut strut may be the one that carries the load): the cells
    next to each thin cell and every narrow gap are added where they print, until no defect is left
    (adding a cell never stops another from printing or from being joined, so the mask keeps both
    rules); where that overshoots ``max_cells``, cells come off the edges of the thick parts, the least
    dense first (:func:`_trim`), and failing that the printable mask is taken again from fewer of the
    densest cells, for at most ``searches`` tries. Where none gives a clean mask, the result is
    :func:`keep_budget_printable`'s at ``cells``, which prints and floats nowhere but keeps its defects.
    """
    anchored = np.asarray(anchored, dtype=bool)
    cells = int(cells)
    limit = cells if max_cells is None else max(int(max_cells), cells)

    def attempt(budget: int) -> tuple[np.ndarray, bool]:
        kept, clean = thickened_printable(density, anchored, budget, build_direction, r_min, allowance)
        if clean and int(kept.sum()) > limit:
            kept, clean = _trim(kept, density, anchored, build_direction, r_min, allowance, limit)
        return kept, clean

    budget = cells
    for _ in range(max(int(searches), 1)):
        kept, clean = attempt(budget)
        if clean and int(kept.sum()) <= limit:
            return kept
        # Start again from fewer of the densest cells: fewer by the overshoot where the thickened mask was
        # clean, by a fiftieth of the budget where it was not.
        budget -= max(int(kept.sum()) - limit, 1) if clean else max(cells // 50, 1)
        if budget <= 0:
            break
    return keep_budget_printable(density, anchored, cells, build_direction)


def thickened_printable(density: np.ndarray, anchored: np.ndarray, cells: int, build_direction: str, r_min: float,
                        allowance: int = 0) -> tuple[np.ndarray, bool]:
    """:func:`keep_budget_printable`'s mask with its narrow gaps filled and its thin members thickened by
    the disk of ``r_min`` where the added cells print (so it may hold more than ``cells`` cells); and
    whether no member or gap defect is left (:func:`~designgym.envs.manufacturing.member_defects`)."""
    kept = keep_budget_printable(density, anchored, cells, build_direction)
    return _thicken(kept, np.asarray(anchored, dtype=bool), build_direction, r_min, allowance)


def _trim(mask: np.ndarray, density: np.ndarray, anchored: np.ndarray, build_direction: str, r_min: float,
          allowance: int, limit: int, rounds: int = 12) -> tuple[np.ndarray, bool]:
    """A clean printable ``mask`` cut down to ``limit`` cells from the edges of its thick parts (those a
    disk one cell wider than ``r_min`` fits in: losing an edge cell leaves them thick enough), the least
    dense first, never from the ``anchored`` cells; and whether it got there clean."""
    density = np.asarray(density, dtype=np.float64)
    wide = disk(r_min + 1)
    for _ in range(rounds):
        excess = int(mask.sum()) - limit
        if excess <= 0:
            return mask, True
        edge = mask & ~ndimage.binary_erosion(mask, structure=SOLID_CONNECTIVITY, border_value=1)
        candidates = np.flatnonzero((edge & ndimage.binary_opening(mask, structure=wide) & ~anchored).ravel())
        if candidates.size == 0:
            return mask, False
        candidates = candidates[np.argsort(density.ravel()[candidates], kind="stable")]
        batch = min(excess, candidates.size)
        while batch > 0:
            trial = mask.copy()
            trial.ravel()[candidates[:batch]] = False
            trial = _printable_joined(trial, anchored, build_direction)
            thin, narrow = member_defects(trial, r_min, allowance)
            # A cut that leaves defects, or that drops much more than it took (a member left hanging on
            # nothing, a layer left unsupported), is tried again with half as many cells.
            if not thin.any() and not narrow.any() and int(trial.sum()) >= int(mask.sum()) - 2 * batch:
                mask = trial
                break
            batch //= 2
        if batch == 0:
            return mask, False
    return mask, int(mask.sum()) <= limit


def _thicken(kept: np.ndarray, anchored: np.ndarray, build_direction: str, r_min: float, allowance: int,
             steps: int = 12) -> tuple[np.ndarray, bool]:
    """``kept`` (printable, joined) with its narrow gaps filled and its thin members thickened by the disk
    where the added cells print; and whether it ends with no defect."""
    element = disk(r_min)
    for _ in range(steps):
        thin, narrow = member_defects(kept, r_min, allowance)
        if not thin.any() and not narrow.any():
            return kept, True
        grown = _printable_joined(kept | narrow | ndimage.binary_dilation(thin, structure=element), anchored,
                                  build_direction)
        if np.array_equal(grown, kept):
            return kept, False
        kept = grown
    thin, narrow = member_defects(kept, r_min, allowance)
    return kept, not (thin.any() or narrow.any())


#: Column steps per row of :func:`printable_bridge`'s struts: straight, and 45 degrees either way.
BRIDGE_SLOPES = (0, -1, 1)


def printable_bridge(kept: np.ndarray, anchored: np.ndarray, loaded: np.ndarray, build_direction: str,
                     half_width: int = 1, stop_at_kept: bool = True) -> np.ndarray:
    """A strut, ``2 half_width + 1`` cells wide, that prints along ``build_direction`` on its own and joins
    the ``loaded`` cells to the solid: to ``kept`` (a printable mask joined to the supports) where it meets
    it, else (or with ``stop_at_kept`` False) to the ``anchored`` cells themselves.

    Seen with the baseplate below (the build direction turned to "up"), a strut runs from the loaded cell
    nearest the plate downward, straight or at 45 degrees either way (straight on from a side of the
    grid), until it rests on ``kept`` or holds a support cell; one that reaches the plate first goes on
    along it toward the supports. Where no such strut joins (the supports lie across the top, as when the
    part is built away from its clamp) the struts run upward from the load instead. Of those that join,
    the one of fewest cells is taken. Every cell rests on the one before (a 45-degree step is within the
    overhang limit), on the plate or on ``kept``, so the strut prints. Where none joins, the straight
    downward one is returned and the caller judges it.
    """
    turns = BUILD_TURNS[build_direction]
    kept_up, anchored_up, loaded_up = (np.rot90(np.asarray(a, dtype=bool), turns) for a in (kept, anchored, loaded))
    rows, cols = kept_up.shape
    h = int(half_width)
    square = np.ones((2 * h + 1, 2 * h + 1), dtype=bool)
    load_rows, load_cols = np.nonzero(loaded_up)
    if load_rows.size == 0 or rows < 2 * h + 1 or cols < 2 * h + 1:
        return np.zeros_like(np.asarray(kept, dtype=bool))
    nearest = int(np.argmax(load_rows))
    r0 = int(np.clip(load_rows[nearest], h, rows - 1 - h))
    c0 = int(np.clip(load_cols[nearest], h, cols - 1 - h))

    def holds_support(r: int, c: int) -> bool:  # the band at (r, c) takes in a support cell
        return bool(anchored_up[r - h : r + h + 1, c - h : c + h + 1].any())

    def joins(r: int, c: int) -> bool:  # ... or touches kept material along an edge (above, below or beside)
        if holds_support(r, c):
            return True
        return stop_at_kept and bool(kept_up[max(r - h - 1, 0) : r + h + 2, c - h : c + h + 1].any()
                                     or kept_up[r - h : r + h + 1, max(c - h - 1, 0) : c + h + 2].any())

    def walk(step: int, slope: int) -> tuple[np.ndarray, bool]:
        """The strut from the load, a row at a time toward the plate (``step`` 1) or away from it (-1)."""
        path = np.zeros_like(kept_up)
        r, c = r0, c0
        path[r, c] = True
        joined = holds_support(r, c) if step > 0 else joins(r, c)
        while not joined and h <= r + step <= rows - 1 - h:
            # Downward a strut stops where its middle rests on kept material (what lies below carries it).
            if step > 0 and stop_at_kept and kept_up[r + h + 1, c]:
                return path, True
            if not h <= c + slope <= cols - 1 - h:
                slope = 0  # straight on from a side of the grid
            r, c = r + step, c + slope
            path[r, c] = True
            joined = holds_support(r, c) if step > 0 else joins(r, c)
        if joined or step < 0:
            return path, joined
        on_plate = np.flatnonzero(anchored_up[rows - 1 - 2 * h :].any(axis=0))
        if on_plate.size == 0:
            return path, False
        toward = 1 if on_plate[np.argmin(np.abs(on_plate - c))] > c else -1  # along the plate to a support
        while not joins(r, c) and h <= c + toward <= cols - 1 - h:
            c += toward
            path[r, c] = True
        return path, joins(r, c)

    struts = []
    for step in (1, -1):
        struts = [path for path, joined in (walk(step, slope) for slope in BRIDGE_SLOPES) if joined]
        if struts:
            break
    bands = [ndimage.binary_dilation(path, structure=square) for path in struts or [walk(1, 0)[0]]]
    band = min(bands, key=lambda b: int(b.sum()))  # the first of the fewest cells: straight before slanted
    return np.rot90(band, -turns).copy()
