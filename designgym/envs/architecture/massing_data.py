"""Procedural massings: rule-based buildings that meet every zoning rule of a :class:`Massing` brief.

A massing is drawn in four steps:

1. a typology with random proportions inside the buildable area: a perimeter block (a closed
   courtyard or a U open to the street), one to three slab bars, a podium with one or two towers,
   an L-block, or several towers. Each piece gets a relative height in ``(0, 1]``;
2. the relative heights are scaled by a common factor and rounded to whole storeys, clipped to
   the zoning envelope, and every storey's floor plate is trimmed to the minimum plate width (a
   cell whose storey ``k`` lies in a plate too narrow loses its storeys from ``k`` up);
3. the factor is found by bisection over the places where some piece gains a storey, so that the
   gross floor area lands in the FAR band, or just under it; the rest is made up by adding a
   storey (a penthouse, or a pavilion on open ground) over rectangles at least one plate wide;
4. the massing is checked with :meth:`Massing.evaluate`; if it is not feasible, another typology
   is tried, and after a few failures the whole buildable area is used as one block.

A brief whose envelope cannot hold the FAR band at all is given up at once.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from designgym.envs.architecture.massing import Massing

TYPOLOGIES = ("courtyard", "slabs", "podium_tower", "l_block", "towers")
#: Briefs tried for one index of :func:`make_massings` before it gives up.
MAX_BRIEFS = 200
# The FAR band, as fractions of the target; the generator keeps a hair (1e-9) inside it.
_BAND = (0.9, 1.1)

Rect = tuple[int, int, int, int]  # top, bottom, left, right (exclusive)
Piece = tuple[int, int, int, int, float]  # a rectangle and its relative height


def plate_fix(storeys: np.ndarray, min_plate: int) -> np.ndarray:
    """Storeys with every floor plate trimmed to its opening by a ``min_plate`` square.

    Going up from the first storey, a cell in the part of plate ``k`` that the opening removes is
    lowered to ``k - 1`` storeys. Every plate of the result equals its own opening, so
    :func:`~designgym.envs.architecture.massing.narrow_plate_cells` finds nothing.
    """
    storeys = storeys.copy()
    square = np.ones((min_plate, min_plate), dtype=bool)
    for k in range(1, int(storeys.max(initial=0)) + 1):
        plate = storeys >= k
        if not plate.any():
            break
        opened = ndimage.binary_opening(plate, structure=square)
        storeys[plate & ~opened] = k - 1
    return storeys


def _span(rng: np.random.Generator, low: int, high: int) -> int:
    """A random integer in ``[low, high]`` (``high`` when the range is empty)."""
    return int(rng.integers(low, high + 1)) if high > low else int(high)


def _sub_rect(rng: np.random.Generator, rect: Rect, min_frac: float, min_cells: int) -> Rect:
    top, bottom, left, right = rect
    height, width = bottom - top, right - left
    hh = _span(rng, max(min_cells, math.ceil(min_frac * height)), height)
    ww = _span(rng, max(min_cells, math.ceil(min_frac * width)), width)
    r0 = top + _span(rng, 0, height - hh)
    c0 = left + _span(rng, 0, width - ww)
    return r0, r0 + hh, c0, c0 + ww


def _courtyard(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    top, bottom, left, right = _sub_rect(rng, rect, 0.7, 2 * p)
    depth = _span(rng, p, p + 3)
    north, south = 1.0, float(rng.uniform(0.35, 1.0))
    east, west = float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.5, 1.0))
    if bottom - top - 2 * depth < 2 or right - left - 2 * depth < 2:  # no room for a courtyard: a stepped block
        cut = _span(rng, top + p, bottom - p) if bottom - top >= 2 * p else bottom
        return [(top, cut, left, right, north), (cut, bottom, left, right, south)]
    pieces = [
        (top, top + depth, left, right, north),
        (top + depth, bottom - depth, left, left + depth, west),
        (top + depth, bottom - depth, right - depth, right, east),
    ]
    if rng.random() < 0.7:  # closed courtyard; otherwise a U open to the street and the sun
        pieces.append((bottom - depth, bottom, left, right, south))
    else:
        pieces[1] = (top + depth, bottom, left, left + depth, west)
        pieces[2] = (top + depth, bottom, right - depth, right, east)
    return pieces


def _slabs(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    top, bottom, left, right = rect
    east_west = rng.random() < 0.65  # long axis east-west: long south facades
    across, along = (bottom - top, right - left) if east_west else (right - left, bottom - top)
    depth = _span(rng, p, min(p + 4, across))
    gap = _span(rng, 2, 8)
    most = max(1, (across + gap) // (depth + gap))
    count = _span(rng, 1, min(3, most))
    used = count * depth + (count - 1) * gap
    start = _span(rng, 0, across - used)
    factors = sorted(float(x) for x in rng.uniform(0.45, 1.0, size=count))
    if not east_west or rng.random() < 0.3:
        rng.shuffle(factors)
    pieces = []
    for i in range(count):
        a0 = start + i * (depth + gap)
        length = _span(rng, max(p, math.ceil(0.6 * along)), along)
        b0 = _span(rng, 0, along - length)
        if east_west:  # the northern bars come first, and are the taller ones when sorted
            pieces.append((top + a0, top + a0 + depth, left + b0, left + b0 + length, factors[count - 1 - i]))
        else:
            pieces.append((top + b0, top + b0 + length, left + a0, left + a0 + depth, factors[i]))
    return pieces


def _podium_tower(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    top, bottom, left, right = _sub_rect(rng, rect, 0.6, p)
    pieces = [(top, bottom, left, right, float(rng.uniform(0.12, 0.4)))]
    for _ in range(1 if rng.random() < 0.7 else 2):
        pieces.append(_tower(rng, (top, bottom, left, right), p, 5, 0.8))
    return pieces


def _tower(rng: np.random.Generator, rect: Rect, p: int, extra: int, low: float) -> Piece:
    """A tower p to p + extra cells a side at a random place in ``rect``, at ``low`` to 1 of the top."""
    top, bottom, left, right = rect
    th = _span(rng, p, min(p + extra, bottom - top))
    tw = _span(rng, p, min(p + extra, right - left))
    r0 = top + _span(rng, 0, bottom - top - th)
    c0 = left + _span(rng, 0, right - left - tw)
    return (r0, r0 + th, c0, c0 + tw, float(rng.uniform(low, 1.0)))


def _l_block(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    top, bottom, left, right = _sub_rect(rng, rect, 0.6, p)
    a1 = _span(rng, p, min(p + 3, bottom - top))
    a2 = _span(rng, p, min(p + 3, right - left))
    rows = (top, top + a1) if rng.random() < 0.6 else (bottom - a1, bottom)  # the horizontal arm, north or south
    cols = (left, left + a2) if rng.random() < 0.5 else (right - a2, right)
    return [(rows[0], rows[1], left, right, 1.0), (top, bottom, cols[0], cols[1], float(rng.uniform(0.4, 1.0)))]


def _towers(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    return [_tower(rng, rect, p, 3, 0.5) for _ in range(_span(rng, 2, 4))]


def _block(rng: np.random.Generator, rect: Rect, p: int) -> list[Piece]:
    top, bottom, left, right = rect
    return [(top, bottom, left, right, 1.0)]


_BUILDERS = {
    "courtyard": _courtyard,
    "slabs": _slabs,
    "podium_tower": _podium_tower,
    "l_block": _l_block,
    "towers": _towers,
    "block": _block,
}


def _base(pieces: list[Piece], size: int) -> np.ndarray:
    base = np.zeros((size, size))
    for r0, r1, c0, c1, factor in pieces:
        base[r0:r1, c0:c1] = np.maximum(base[r0:r1, c0:c1], factor)
    return base


def _scaled(base: np.ndarray, scale: float, cap: np.ndarray, p: int) -> np.ndarray:
    storeys = np.minimum(np.floor(base * scale + 0.5).astype(np.int64), cap)
    return plate_fix(storeys, p)


def _fit_scale(base: np.ndarray, cap: np.ndarray, p: int, lo: int, hi: int) -> np.ndarray | None:
    """Storeys from ``base`` at the largest scale whose floor area stays at or under ``hi`` cells.

    ``None`` when even the full envelope over the footprint stays under ``lo``, or when a single
    storey over the tallest pieces is already over ``hi``.
    """
    values = np.unique(base[base > 0])
    top = int(cap.max())
    # The scales at which some piece gains a storey, nudged past the rounding boundary.
    levels = np.arange(1, top + 1) - 0.5
    scales = np.unique((levels[None, :] / values[:, None]).ravel()) * (1 + 1e-9)
    full = _scaled(base, scales[-1], cap, p)
    if int(full.sum()) < lo:
        return None
    if int(full.sum()) <= hi:
        return full
    low, high = -1, len(scales) - 1  # invariant: area(low) <= hi < area(high); -1 means "nothing"
    while high - low > 1:
        mid = (low + high) // 2
        if int(_scaled(base, scales[mid], cap, p).sum()) <= hi:
            low = mid
        else:
            high = mid
    return None if low < 0 else _scaled(base, scales[low], cap, p)


def _rectangles(free: np.ndarray, p: int, most: int) -> list[tuple[int, int, int, int, int]]:
    """Every placement ``(area, top, left, height, width)`` of a rectangle at least ``p`` by ``p``
    and at most ``most`` cells that lies wholly inside ``free``."""
    rows, cols = np.nonzero(free)
    if rows.size < p * p:
        return []
    r0, c0 = rows.min(), cols.min()
    box = free[r0 : rows.max() + 1, c0 : cols.max() + 1].astype(np.int64)
    integral = np.zeros((box.shape[0] + 1, box.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = box.cumsum(0).cumsum(1)
    out = []
    for hh in range(p, box.shape[0] + 1):
        for ww in range(p, box.shape[1] + 1):
            area = hh * ww
            if area > most:
                break
            sums = integral[hh:, ww:] - integral[:-hh, ww:] - integral[hh:, :-ww] + integral[:-hh, :-ww]
            for i, j in np.argwhere(sums == area):
                out.append((area, int(r0 + i), int(c0 + j), hh, ww))
    return out


def _top_up(
    storeys: np.ndarray, cap: np.ndarray, p: int, lo: int, hi: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Add a storey over rectangles (each on cells of equal height) until the area is in ``[lo, hi]``."""
    storeys = storeys.copy()
    for _ in range(6):
        area = int(storeys.sum())
        if lo <= area <= hi:
            return storeys
        need, room = lo - area, hi - area
        options = []
        for k in range(int(storeys.max()) + 1):
            free = (storeys == k) & (cap > k)
            options += [(a, k, r, c, hh, ww) for a, r, c, hh, ww in _rectangles(free, p, room)]
        if not options:
            return None
        enough = [o for o in options if o[0] >= need]
        if enough:
            choice = enough[int(rng.integers(len(enough)))]
        else:
            biggest = max(o[0] for o in options)
            largest = [o for o in options if o[0] == biggest]
            choice = largest[int(rng.integers(len(largest)))]
        _, k, r, c, hh, ww = choice
        storeys[r : r + hh, c : c + ww] += 1
    area = int(storeys.sum())
    return storeys if lo <= area <= hi else None


def make_massing(
    problem: Massing, conditions: Mapping[str, Any], rng: np.random.Generator, attempts: int = 8
) -> np.ndarray | None:
    """A feasible massing for the brief: heights in metres, ``float32`` of the design's shape.

    Tries ``attempts`` random typologies (the last two the whole buildable area as one block) and
    returns the first that :meth:`Massing.evaluate` finds feasible; ``None`` when the envelope
    cannot hold the FAR band with plates wide enough, or every attempt failed.
    """
    conditions = problem.check_conditions(conditions)
    p = problem.min_plate
    fh = problem.floor_height_m
    cap = np.floor(problem.envelope(conditions) / fh + 1e-9).astype(np.int64)
    cap = plate_fix(cap, p)
    parcel_cells = int(problem.parcel_mask(conditions).sum())
    target = conditions["far"] * parcel_cells
    lo = math.ceil(_BAND[0] * target * (1 + 1e-9))
    hi = math.floor(_BAND[1] * target * (1 - 1e-9))
    if int(cap.sum()) < lo or hi < p * p:
        return None
    rect = problem.buildable_rect(conditions)
    for attempt in range(attempts):
        typology = "block" if attempt >= attempts - 2 else TYPOLOGIES[int(rng.integers(len(TYPOLOGIES)))]
        base = _base(_BUILDERS[typology](rng, rect, p), problem.size)
        storeys = _fit_scale(base, cap, p, lo, hi)
        if storeys is None:
            continue
        storeys = _top_up(storeys, cap, p, lo, hi, rng)
        if storeys is None:
            continue
        heights = (storeys * fh).astype(np.float32)
        if problem.evaluate(heights, conditions).feasible:
            return heights
    return None


def _make_one(problem: Massing, seed: int, index: int) -> tuple[np.ndarray, dict[str, Any], int]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    for tried in range(1, MAX_BRIEFS + 1):
        conditions = problem.sample_conditions(rng)
        heights = make_massing(problem, conditions, rng)
        if heights is not None:
            return heights, conditions, tried
    raise RuntimeError(f"massing {index}: no brief out of {MAX_BRIEFS} could be met; the conditions space is broken")


def _make_chunk(args: tuple[int, int, list[int]]) -> list[tuple[np.ndarray, dict[str, Any], int]]:
    """Massings for a run of indices; module level so a process pool can pickle it."""
    size, seed, indices = args
    problem = Massing(size=size)
    return [_make_one(problem, seed, i) for i in indices]


def make_massings(
    n: int, seed: int = 0, workers: int = 1, progress: bool = True, size: int = 32
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, float]]:
    """A data set of feasible massings, each for its own random brief.

    Index ``i`` draws from its own generator, ``SeedSequence(seed, spawn_key=(i,))``: briefs from
    :meth:`Massing.sample_conditions` until :func:`make_massing` meets one. So the result is the
    same for any ``workers`` and the first ``k`` massings do not depend on ``n``.

    Args:
        n: number of massings.
        seed: seed of the whole data set.
        workers: processes to draw with; 1 draws in this process.
        progress: whether to show a progress bar.
        size: side of the site grid in cells (``Massing(size=size)``).

    Returns:
        ``(heights, conditions, stats)``: ``float32`` heights in metres of shape ``(n, size, size)``,
        the brief of each, and ``{"briefs_tried", "briefs_failed", "seconds"}``.

    Raises:
        ValueError: if ``n`` is negative or ``workers`` is below 1.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    n, workers = int(n), int(workers)
    start = time.perf_counter()
    chunk = max(1, min(64, math.ceil(n / (8 * workers))))
    jobs = [(size, seed, list(range(i, min(i + chunk, n)))) for i in range(0, n, chunk)]
    results: list[tuple[np.ndarray, dict[str, Any], int]] = []
    with tqdm(total=n, desc="massings", unit="massing", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                results += _make_chunk(job)
                bar.update(len(job[2]))
        else:
            with multiprocessing.get_context().Pool(workers) as pool:
                for block in pool.imap(_make_chunk, jobs):
                    results += block
                    bar.update(len(block))
    heights = np.zeros((n, size, size), dtype=np.float32)
    for i, (h, _, _) in enumerate(results):
        heights[i] = h
    tried = sum(r[2] for r in results)
    stats = {"briefs_tried": tried, "briefs_failed": tried - n, "seconds": time.perf_counter() - start}
    return heights, [r[1] for r in results], stats
