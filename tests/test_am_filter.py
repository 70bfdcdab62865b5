"""Langelaar's AM filter, the exact overhang rule it smooths, and SIMP through it (the printable reference)."""

from __future__ import annotations

import numpy as np
import pytest

from designgym.envs.manufacturing import floating_fraction
from designgym.envs.printing import BUILD_TURNS, keep_budget_printable, overhang_fraction, printed_mask
from designgym.envs.structures.am_filter import AMFilter
from designgym.envs.structures.problems import AMBracket
from designgym.envs.structures.simp import simp

DIRECTIONS = list(BUILD_TURNS)


def _planted(direction: str) -> np.ndarray:
    """A post on the baseplate carrying a flat shelf: the shelf's far ends overhang more than 45 degrees.
    Drawn for "up" (baseplate under the bottom row) and turned to ``direction``."""
    part = np.zeros((8, 12), dtype=bool)
    part[2:, 5:7] = True  # the post, from the baseplate up
    part[1, 1:11] = True  # the shelf: one cell on each side of the post's top is within 45 degrees
    return np.rot90(part, -BUILD_TURNS[direction])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_planted_overhang_is_removed_and_what_is_left_prints(direction):
    part = _planted(direction)
    printed = printed_mask(part, direction)
    upright = np.rot90(printed, BUILD_TURNS[direction])
    assert upright[1].nonzero()[0].tolist() == [4, 5, 6, 7]  # the shelf within the cone of the post's top
    assert upright[2:, 5:7].all()  # the post prints whole
    assert overhang_fraction(part, direction) == pytest.approx(6 / part.sum())
    assert overhang_fraction(printed, direction) == 0.0
    assert np.array_equal(printed_mask(printed, direction), printed)  # a printable design passes unchanged


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_filter_is_the_overhang_rule_made_smooth(direction):
    rng = np.random.default_rng(BUILD_TURNS[direction])
    for _ in range(5):
        mask = rng.uniform(size=(12, 20)) < 0.6
        sharp = AMFilter(mask.shape, direction, p=200, eps=1e-10).forward(mask.astype(float))
        assert np.array_equal(sharp > 0.5, printed_mask(mask, direction))
    # At the shipped smoothing a printable 0/1 design comes through as it is, to within the smoothing.
    printable = printed_mask(rng.uniform(size=(12, 20)) < 0.7, direction)
    soft = AMFilter(printable.shape, direction).forward(printable.astype(float))
    assert np.abs(soft - printable).max() < 0.01


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_filters_derivative_matches_finite_differences(direction):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.05, 0.95, (6, 9))
    weights = rng.normal(size=x.shape)
    am = AMFilter(x.shape, direction)
    am.forward(x)
    exact = am.backward(weights)
    step, numeric = 1e-6, np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (np.sum(weights * AMFilter(x.shape, direction).forward(up))
                          - np.sum(weights * AMFilter(x.shape, direction).forward(down))) / (2 * step)
    assert np.abs(exact - numeric).max() < 1e-6 * max(1.0, np.abs(numeric).max())


def test_the_filter_refuses_a_wrong_shape_or_direction():
    with pytest.raises(ValueError, match="build_direction must be one of"):
        AMFilter((4, 4), "sideways")
    with pytest.raises(ValueError, match="made for shape"):
        AMFilter((4, 4)).forward(np.zeros((4, 5)))


@pytest.mark.parametrize("direction", range(4))
def test_the_printable_reference_prints_by_the_envs_own_rule(direction):
    bracket = AMBracket(nelx=32, nely=16)  # a coarse mesh, for time: printing is what is checked here
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 0.0, "build_direction": direction}
    printable = bracket.optimize(conditions, max_iter=100)
    judged = bracket.evaluate(printable, conditions)
    assert judged.violations["overhang"] == 0.0 and judged.violations["member_size"] == 0.0
    assert judged.violations["volume_excess"] == 0.0 and judged.violations["floating_material"] == 0.0
    assert printable.sum() >= 0.95 * round(0.4 * printable.size)


def test_printing_costs_stiffness_within_reason_on_the_envs_mesh():
    # Building up, the load case of the README's showcase: plain SIMP's optimum overhangs by half.
    bracket = AMBracket()
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 0.0, "build_direction": 0}
    printable, plain = bracket.optimize(conditions), bracket.optimize(conditions, printable=False)
    judged, plain_judged = bracket.evaluate(printable, conditions), bracket.evaluate(plain, conditions)
    assert plain_judged.violations["overhang"] > 0.4 and judged.violations["overhang"] == 0.0
    ratio = judged.objectives["compliance"] / plain_judged.objectives["compliance"]
    # Printing costs stiffness here (plain SIMP's optimum is the stiffer), and about what it did when
    # measured (benchmarks/am_reference.py has the spread over the test split): 21.4 % on the machine
    # of the first measurement, 24.1 % on an AVX-512 machine, whose rounding sends the SIMP runs
    # elsewhere; there the first two thickened designs cut the load's path (50 times as compliant as
    # their SIMP fields), which optimize now refuses. Not 5,000 %.
    assert 1.0 < ratio < 1.3
    assert judged.violations["floating_material"] == 0.0 and judged.violations["load_path"] == 0.0


def test_simp_through_the_printer_ends_black_and_white():
    # A grey printed field loses most of its stiffness when made 0/1; the projection prevents that.
    bracket = AMBracket(nelx=32, nely=16)
    conditions = bracket.check_conditions({"volfrac": 0.4, "load_y": 0.5, "load_angle": 0.0, "build_direction": 0})
    result = simp(bracket.model, bracket.force_vector(conditions), 0.4, rmin=bracket.rmin, build_direction="up",
                  max_iter=200)
    assert np.mean((result.density > 0.1) & (result.density < 0.9)) < 0.05
    # The printed volume is the budget, to within what the last sharpening of the projection adds.
    assert result.density.mean() == pytest.approx(0.4, abs=0.015)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_keep_budget_printable_prints_floats_nowhere_and_fills_the_budget(direction):
    rng = np.random.default_rng(3)
    anchored = np.zeros((16, 32), dtype=bool)
    anchored[:, 0] = True  # the clamped left edge
    # A field with a printable, joined optimum inside (a slab on the baseplate touching the clamp) plus noise.
    upright = np.zeros((16, 32))
    upright[8:, :] = 0.9
    field = np.rot90(upright, -BUILD_TURNS[direction]) if direction in ("up", "down") else upright
    field = np.clip(field + rng.uniform(0, 0.3, field.shape), 0, 1)
    kept = keep_budget_printable(field, anchored, 200, direction)
    assert np.array_equal(printed_mask(kept, direction), kept)
    assert floating_fraction(kept, anchored) == 0.0
    assert kept.sum() <= 200
    if printed_mask(field > 0.5, direction).any() and direction != "right":
        assert kept.sum() == 200
