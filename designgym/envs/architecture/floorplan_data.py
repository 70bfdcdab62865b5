"""Procedural floor plans: rule-based layouts that meet a :class:`FloorPlan` brief.

A plan is laid out around a *double-loaded corridor*: a corridor (circulation, 2 or 3 cells deep)
runs across the whole footprint and splits it into a back strip (the night zone: bedrooms and
bathrooms, sometimes the kitchen) and a front strip on the street (the day zone: living room and
kitchen, plus the bedrooms or bathrooms drawn to the front). Each strip is cut by guillotine cuts
at positions chosen to hit the rooms' target areas (drawn from the middle of their ranges); the
back strip's depth is drawn with a preference for depths whose areas suit the rooms given to it.

- Back strip: behind an L or U notch the strip is shallower; a cut near that change of depth
  snaps to it, otherwise the room spans it (an L-shaped room around the notch). A bathroom too big
  for its slot keeps to the outside wall with an alcove of the corridor in front of it or beside
  it; along a U's courtyard the strip may be a gallery, part of the corridor.
- Front strip: ``left rooms | entrance slice | right rooms``, where the entrance slice holds the
  front door and is the living room or a hall from the door to the corridor. A dead end next to
  the living room may take only the front of its slice, the living room wrapping behind it.

So every room opens onto the corridor (or the living room) along a whole side, every habitable
room has an outside wall, no two rooms of one type are cut side by side, and the kitchen and an
en-suite bathroom are placed next to their partners when the brief asks. The rules leave the
details to chance; :func:`make_plan` checks each candidate with :meth:`FloorPlan.evaluate` and
tries fresh random choices until one is feasible.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Mapping
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

_MIN_WIDTH = {LIVING: 4, KITCHEN: 4, BEDROOM: 4, BATHROOM: 3, CIRCULATION: 2}
_NAMES = {LIVING: "living", KITCHEN: "kitchen", BEDROOM: "bedroom", BATHROOM: "bathroom"}


class _Brief:
    """What a layout needs to know of a brief, computed once per brief."""

    def __init__(self, problem: FloorPlan, conditions: Mapping[str, Any]) -> None:
        self.problem = problem
        self.conditions = problem.check_conditions(conditions)
        self.geometry = problem._footprint_geometry(self.conditions)
        self.footprint = problem.footprint_mask(self.conditions)
        self.entrance = problem.entrance_cell(self.conditions)
        self.targets = {ROOM: problem.room_targets(self.conditions)[name] for ROOM, name in _NAMES.items()}
        self.cell_area = problem.cell_area
        self.kitchen_living = bool(self.conditions["kitchen_living"])
        self.bath_bedroom = bool(self.conditions["bath_bedroom"])
        self._profiles: dict[tuple[int, bool], tuple] = {}

    def profile(self, dn: int, gallery: bool):
        """The back strip's depth per column and what cutting it needs, cached per brief:
        ``(profile, total, chains [(x0, x1)], depth steps, chain areas)``."""
        key = (dn, gallery)
        if key not in self._profiles:
            profile = _profile(self.geometry, dn, gallery)
            cols = np.nonzero(profile)[0]
            runs = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1) if cols.size else []
            chains = [(int(r[0]), int(r[-1]) + 1) for r in runs]
            steps = [
                x for x in range(1, len(profile)) if profile[x] != profile[x - 1] and profile[x] and profile[x - 1]
            ]
            areas = [float(profile[a:b].sum()) for a, b in chains]
            self._profiles[key] = (profile, float(profile.sum()), chains, steps, areas)
        return self._profiles[key]

    def nominal(self, code: int, rng: _Rand) -> float:
        """A target area (cells) for one room, drawn from the middle of its range."""
        _, lo, hi = self.targets[code]
        return rng.uniform(lo + 0.2 * (hi - lo), hi - 0.25 * (hi - lo)) / self.cell_area

    def fits(self, code: int, cells: int) -> bool:
        _, lo, hi = self.targets[code]
        return lo <= cells * self.cell_area <= hi


class _Rand:
    """The few draws a layout makes, on Python's fast scalar generator (seeded from numpy's)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._r = random.Random(int(rng.integers(2**63)))
        self.random = self._r.random
        self.uniform = self._r.uniform

    def integers(self, low: int, high: int | None = None) -> int:
        """An integer in ``[low, high)`` (``[0, low)`` with one argument), as numpy's."""
        return self._r.randrange(low) if high is None else self._r.randrange(low, high)

    def permutation(self, n: int) -> list[int]:
        out = list(range(n))
        self._r.shuffle(out)
        return out

    def pick(self, items: list, weights: list[float] | None = None):
        return self._r.choices(items, weights=weights)[0]

    def sample(self, items: list, k: int, weights: list[float]) -> list:
        """``k`` distinct items, drawn one by one with probability proportional to their weights."""
        items, weights, out = list(items), list(weights), []
        for _ in range(min(k, len(items))):
            j = self._r.choices(range(len(items)), weights=weights)[0]
            out.append(items.pop(j))
            weights.pop(j)
        return out


def _fit_widths(total: int, wanted: list[float], low: list[int], high: list[int]) -> list[int] | None:
    """Integer widths summing to ``total``, near ``wanted`` (rescaled), each in ``[low, high]``."""
    if not wanted or sum(low) > total or sum(high) < total or any(lo > hi for lo, hi in zip(low, high, strict=True)):
        return None
    lo, hi = np.asarray(low), np.asarray(high)
    raw = np.asarray(wanted, dtype=float)
    raw = raw * (total / raw.sum()) if raw.sum() > 0 else np.full(len(raw), total / len(raw))
    widths = np.clip(np.rint(raw).astype(int), lo, hi)
    while widths.sum() > total:
        spare = np.nonzero(widths > lo)[0]
        widths[spare[np.argmax((widths - raw)[spare])]] -= 1
    while widths.sum() < total:
        room = np.nonzero(widths < hi)[0]
        widths[room[np.argmax((raw - widths)[room])]] += 1
    return [int(x) for x in widths]


def _bounds(brief: _Brief, code: int, depth: int, extra: float = 0.0) -> tuple[int, int]:
    """Widths ``(low, high)`` a slice of ``depth`` cells may have for a room of type ``code``.

    ``extra`` is area (cells) the room has elsewhere (the living room behind front rooms).
    """
    if code == CIRCULATION:
        return 2, 10**6
    if depth < _MIN_WIDTH[code]:
        return 1, 0
    _, lo, hi = brief.targets[code]
    lo_cells, hi_cells = lo / brief.cell_area - extra, hi / brief.cell_area - extra
    low = max(_MIN_WIDTH[code], -(-depth // 3), int(np.ceil(lo_cells / depth - 1e-9)))
    high = min(3 * depth, int(np.floor(hi_cells / depth + 1e-9)))
    return low, high


def _chain_ok(types: list[int]) -> bool:
    return all(a != b for a, b in zip(types, types[1:], strict=False))


def _attempt(brief: _Brief, rng: _Rand) -> np.ndarray | None:
    g = brief.geometry
    n = brief.problem.size
    r0, c0, w, d = g["r0"], g["c0"], g["w"], g["d"]
    nd = g["nd"]
    grid = np.zeros((n, n), dtype=np.uint8)
    cw = rng.pick([2, 2, 2, 3])

    # Which rooms go to the back strip (bedrooms and bathrooms, alternating) and how deep it is:
    # a few draws of both, keeping the first whose rooms can be dealt out to the strip.
    nb, nba = brief.targets[BEDROOM][0], brief.targets[BATHROOM][0]
    usable = d - cw
    # Back strip depth: 4+ cells, leaving 4+ for the front; notch segments 0 or 3+ cells deep.
    candidates = [dn for dn in range(4, usable - 3) if not nd or dn == nd or dn >= nd + 3]
    if not candidates:
        return None
    rooms = None
    for _ in range(6):
        back = [BEDROOM] * nb + [BATHROOM] * nba
        front = [LIVING, KITCHEN]
        if not brief.kitchen_living and rng.random() < 0.25:
            back.append(KITCHEN)
            front.remove(KITCHEN)
        moves = rng.pick([0, 1, 2, 3], [0.4, 0.3, 0.2, 0.1])
        if nb > nba + 1:
            back.remove(BEDROOM)
            front.append(BEDROOM)
        for _k in range(moves):
            movable = [t for t in (BEDROOM, BATHROOM) if back.count(t) > 1 or (t == BATHROOM and back.count(t))]
            if not movable or len(back) <= 1:
                break
            moved = movable[int(rng.integers(len(movable)))]
            back.remove(moved)
            front.append(moved)
        nominal_back = {i: brief.nominal(t, rng) for i, t in enumerate(back)}
        want = sum(nominal_back.values())
        want_front = sum(brief.nominal(t, rng) for t in front)
        scores = []
        for dn in candidates:
            area = brief.profile(dn, False)[1]
            front_area = (usable - dn) * w
            scores.append(-(abs(area - want) + abs(front_area - want_front)) / (want + want_front))
        picks = rng.sample(candidates, 3, [float(np.exp(6.0 * x)) for x in scores])
        for dn in picks:
            # A U's strip along the courtyard may be a gallery (part of the corridor) instead.
            gallery = g["shape"] == 2 and dn > nd and rng.random() < 0.3
            profile = brief.profile(dn, gallery)
            front_pair = BEDROOM in front and BATHROOM in front
            rooms = _back_rooms(back, nominal_back, profile, brief, rng, front_pair)
            profile = profile[0]
            if rooms is not None:
                break
        if rooms is not None:
            break
    if rooms is None:
        return None
    rooms, pair = rooms
    rc = r0 + dn
    for t, x0, x1, depth in rooms:
        for x in range(x0, x1):
            grid[rc - profile[x] : rc, x] = CIRCULATION  # an alcove off the corridor ...
            grid[rc - profile[x] : rc - profile[x] + min(depth, profile[x]), x] = t  # ... behind a shallow room

    # The corridor, across the whole footprint.
    grid[rc : rc + cw, c0 : c0 + w] = CIRCULATION
    if gallery:
        grid[r0 + nd : rc, g["n0"] : g["n1"]] = CIRCULATION

    # The front strip.
    top = rc + cw
    dd = n - top
    if not _front(grid, brief, front, top, dd, rng, need_pair=brief.bath_bedroom and not pair):
        return None
    return grid


def _profile(g: dict[str, int], dn: int, gallery: bool) -> np.ndarray:
    """Depth of the back strip (``dn`` rows above the corridor) in each grid column; 0 off it."""
    n = 2 * g["c0"] + g["w"] + 1  # wide enough; columns past the footprint stay 0
    profile = np.zeros(max(n, g["c0"] + g["w"] + 1), dtype=int)
    profile[g["c0"] : g["c0"] + g["w"]] = dn
    if g["nw"]:
        profile[g["n0"] : g["n1"]] = 0 if gallery else dn - g["nd"]
    return profile


def _back_rooms(back: list[int], nominal: dict[int, float], profile: tuple, brief: _Brief,
                rng: _Rand, front_pair: bool = False) -> tuple[list[tuple[int, int, int, int]], bool] | None:
    """Cut the back strip into rooms: ``([(code, x0, x1, room_depth)], bath_bedroom_pair)`` or None.

    ``front_pair``: the front strip may hold the bathroom next to a bedroom instead.

    Runs of columns with depth are filled left to right; a cut near a change of depth snaps to
    it, otherwise a room spans it (an L-shaped room around the notch).
    """
    profile, _total, chains, steps, areas = profile
    if len(back) < len(chains):
        return None
    for _ in range(10):
        perm = rng.permutation(len(back))
        counts = [1] * len(chains)
        for _k in range(len(perm) - len(chains)):
            counts[rng.pick(range(len(chains)), [a / c for a, c in zip(areas, counts, strict=True)])] += 1
        out: list[tuple[int, int, int, int]] = []
        k = 0
        pair = False
        for chain, count in zip(chains, counts, strict=True):
            items = perm[k : k + count]
            k += count
            types = [back[i] for i in items]
            if not _chain_ok(types):
                break
            pair |= any({a, b} == {BATHROOM, BEDROOM} for a, b in zip(types, types[1:], strict=False))
            rooms = _cut_chain(types, [nominal[i] for i in items], chain, profile, steps, brief, rng)
            if rooms is None:
                break
            out.extend(rooms)
        else:
            if brief.bath_bedroom and not pair and not front_pair:
                continue
            return out, pair
    return None


def _cut_chain(types, nominal, chain, profile, steps, brief: _Brief, rng) -> list | None:
    x0, x1 = chain
    total = float(profile[x0:x1].sum())
    scale = total / sum(nominal)
    targets = [a * scale for a in nominal]
    out = []
    x = x0
    for j, t in enumerate(types):
        if j == len(types) - 1:
            end = x1
        else:
            cum = np.cumsum(profile[x:x1])
            end = x + int(np.searchsorted(cum, targets[j])) + rng.integers(0, 2)
            near = [s for s in steps if abs(s - end) <= 3 and x < s < x1]
            if near:
                end = min(near, key=lambda s: abs(s - end))
            end = min(max(end, x + 1), x1 - 1)
        if end <= x:
            return None
        depths = profile[x:end]
        depth = int(depths.max())
        room_depth = depth
        width = end - x
        side = None
        if t == BATHROOM and depths.min() == depth and depth >= 5:
            # Too big a bathroom gets an alcove of the corridor in front of it (it stays at the
            # outside wall) or beside it (away from the room before it, which may be a bedroom).
            fit = int(brief.targets[BATHROOM][2] / brief.cell_area)
            if depth * width > fit or (depth >= 8 and rng.random() < 0.5):
                narrow = max(3, -(-depth // 3))
                if width - narrow >= 2 and narrow * depth <= fit and (brief.bath_bedroom or rng.random() < 0.3):
                    side = narrow
                else:
                    room_depth = max(3, min(depth - 2, fit // width, 6))
        if side is not None:
            after = j < len(types) - 1 and types[j + 1] == BEDROOM
            before = j > 0 and types[j - 1] == BEDROOM
            left_side = after if after != before else rng.random() < 0.5
            bath = (end - side, end) if left_side else (x, x + side)
            alcove = (x, end - side) if left_side else (x + side, end)
            if not brief.fits(t, side * depth):
                return None
            out.append((t, *bath, depth))
            out.append((CIRCULATION, *alcove, depth))
            x = end
            continue
        if depths.min() < _MIN_WIDTH[t]:  # the shallow part of a room around the notch
            return None
        area = int(depths.sum()) if room_depth == depth else room_depth * width
        if not brief.fits(t, area) or width < _MIN_WIDTH[t] or max(width, room_depth) > 3 * min(width, room_depth):
            return None
        out.append((t, x, end, room_depth))
        x = end
    return out


def _front(
    grid: np.ndarray, brief: _Brief, front: list[int], top: int, dd: int, rng: _Rand, need_pair: bool = False
) -> bool:
    """Lay out the front strip (rows ``top`` to the bottom) in place; False when it does not fit.

    The strip is ``left rooms | entrance slice | right rooms``; the entrance slice holds the front
    door and is the living room or a hall (circulation) up to the corridor.
    """
    g = brief.geometry
    c0, w = g["c0"], g["w"]
    n = grid.shape[0]
    ce = brief.entrance[1]
    hall = rng.random() < 0.3
    rest = [t for t in front if t != LIVING or hall]
    perm = [rest[i] for i in rng.permutation(len(rest))]
    split = rng.integers(0, len(perm) + 1)
    seq = [*perm[:split], CIRCULATION if hall else LIVING, *perm[split:]]
    e = split
    li = seq.index(LIVING)
    if not _chain_ok(seq):
        return False
    if need_pair and not any(
        {seq[i], seq[i + 1]} == {BATHROOM, BEDROOM} and e not in (i, i + 1) for i in range(len(seq) - 1)
    ):
        return False
    if brief.kitchen_living and KITCHEN in seq:
        k = seq.index(KITCHEN)
        if abs(k - li) != 1 or (hall and min(k, li) < e < max(k, li)):
            return False
    # Dead ends next to the living room may take only the front of their slice, the living room
    # wrapping behind them (on the living room's side of any hall).
    fronts: dict[int, int] = {}
    if dd >= 7:
        for step in (-1, 1):
            i = li + step
            while 0 <= i < len(seq) and i != e and rng.random() < min(0.9, 0.1 + 0.06 * dd):
                lowest = max(_MIN_WIDTH[seq[i]], 3)
                if dd - 4 < lowest:
                    break
                fronts[i] = rng.integers(lowest, dd - 4 + 1)
                i += step
    wanted: list[float] = []
    for i, t in enumerate(seq):
        if t == CIRCULATION:
            wanted.append(float(rng.pick([2, 2, 3])))
        elif t == LIVING:
            wanted.append(0.0)
        else:
            wanted.append(brief.nominal(t, rng) / fronts.get(i, dd))
    behind = sum(wanted[i] * (dd - fronts[i]) for i in fronts)
    wanted[li] = max(4.0, (brief.nominal(LIVING, rng) - behind) / dd)
    bounds = [_bounds(brief, t, fronts.get(i, dd), behind if t == LIVING else 0.0) for i, t in enumerate(seq)]
    widths = [0] * len(seq)
    if hall:
        wh = int(wanted[e])
        bounds[e] = (wh, wh)
        xh = int(np.clip(ce - rng.integers(0, wh), c0, c0 + w - wh))
        groups = [(0, e, xh - c0), (e + 1, len(seq), c0 + w - xh - wh)]
        widths[e] = wh
    else:
        lo_l, hi_l = bounds[e]
        span_l, span_r = ce - c0, c0 + w - 1 - ce
        lo_left = sum(b[0] for b in bounds[:e])
        hi_left = min(span_l, sum(b[1] for b in bounds[:e]))
        lo_right = sum(b[0] for b in bounds[e + 1 :])
        hi_right = min(span_r, sum(b[1] for b in bounds[e + 1 :]))
        choices = []
        for wl in range(max(lo_l, 1), hi_l + 1):
            low = max(lo_left, w - wl - hi_right)
            high = min(hi_left, w - wl - lo_right)
            if low <= high:
                want_left = sum(wanted[:e])
                left_total = int(np.clip(round(want_left), low, high))
                choices.append((abs(wl - wanted[e]) + 0.5 * rng.random(), wl, left_total))
        if not choices:
            return False
        _, wl, left_total = min(choices)
        widths[e] = wl
        groups = [(0, e, left_total), (e + 1, len(seq), w - wl - left_total)]
    for lo, hi, span in groups:
        if lo == hi:
            if span:
                return False
            continue
        fitted = _fit_widths(span, wanted[lo:hi], [b[0] for b in bounds[lo:hi]], [b[1] for b in bounds[lo:hi]])
        if fitted is None:
            return False
        widths[lo:hi] = fitted
    x = c0
    for i, (t, width) in enumerate(zip(seq, widths, strict=True)):
        if i in fronts:
            grid[n - fronts[i] : n, x : x + width] = t
            grid[top : n - fronts[i], x : x + width] = LIVING
        else:
            grid[top:n, x : x + width] = t
        x += width
    return True


def make_plan(
    problem: FloorPlan, conditions: Mapping[str, Any], rng: np.random.Generator, tries: int = 200
) -> np.ndarray | None:
    """A feasible plan for the brief as a ``uint8`` grid of room codes, or ``None`` after ``tries``.

    Each try draws fresh random choices (corridor depth, strip depths, room order, wraps, the
    entrance hall) and keeps the first layout that :meth:`FloorPlan.evaluate` finds feasible.
    """
    brief = _Brief(problem, conditions)
    fast = _Rand(rng)
    for _ in range(tries):
        plan = _attempt(brief, fast)
        if plan is None:
            continue
        if problem.evaluate(plan, brief.conditions).feasible:
            return plan
    return None


def _plan_for_index(args: tuple[int, int, int, int]) -> tuple[np.ndarray, dict[str, Any], int]:
    """Plan number ``index``: draws briefs from its own stream until one has a plan."""
    index, seed, size, max_briefs = args
    problem = _problem(size)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    failed = 0
    for _ in range(max_briefs):
        conditions = problem.sample_conditions(rng)
        plan = make_plan(problem, conditions, rng)
        if plan is not None:
            return plan, conditions, failed
        failed += 1
    raise RuntimeError(f"no feasible plan for {max_briefs} briefs in a row (plan {index}, seed {seed})")


_PROBLEMS: dict[int, FloorPlan] = {}


def _problem(size: int) -> FloorPlan:
    if size not in _PROBLEMS:
        _PROBLEMS[size] = FloorPlan(size=size)
    return _PROBLEMS[size]


def make_plans(
    n: int, seed: int = 0, workers: int = 1, progress: bool = True, size: int = 24
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, float]]:
    """``n`` feasible plans for random briefs: ``(plans, conditions, stats)``.

    Plan ``i`` draws its briefs from its own stream, ``np.random.SeedSequence([seed, i])``, so the
    result is the same for any number of ``workers``. A brief without a plan is counted in
    ``stats["briefs_failed"]`` and replaced by a new brief for the same index.

    Args:
        n: number of plans.
        seed: seed of the whole set.
        workers: processes to share the work (1 runs in this process).
        progress: show a tqdm progress bar.
        size: the grid's side (the :class:`FloorPlan` ``size``).

    Returns:
        ``plans`` (``(n, size, size)`` ``uint8`` room codes), the conditions of each plan, and
        ``stats`` with ``briefs_tried``, ``briefs_failed`` and ``seconds``.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    jobs = [(i, seed, size, 100) for i in range(n)]
    results: list[tuple[np.ndarray, dict[str, Any], int]] = []
    bar = tqdm(total=n, desc="floor plans", disable=not progress, unit="plan")
    if workers <= 1:
        for job in jobs:
            results.append(_plan_for_index(job))
            bar.update(1)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap(_plan_for_index, jobs, chunksize=max(1, n // (8 * workers))):
                results.append(result)
                bar.update(1)
    bar.close()
    plans = np.stack([r[0] for r in results]) if results else np.zeros((0, size, size), np.uint8)
    failed = sum(r[2] for r in results)
    stats = {"briefs_tried": n + failed, "briefs_failed": failed, "seconds": time.perf_counter() - start}
    return plans.astype(np.uint8), [r[1] for r in results], stats
