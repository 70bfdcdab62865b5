"""The Problem contract: input checks, condition sampling and scaling."""

import numpy as np
import pytest

from designgym.envs.problem import NoReferenceOptimizer


def test_evaluate_returns_plain_floats_and_feasibility(extrusion):
    ev = extrusion.evaluate(np.zeros((32, 32)), extrusion.default_conditions())
    assert all(type(v) is float for v in ev.objectives.values())
    assert set(ev.violations) == set(extrusion.violation_names)
    assert isinstance(ev.feasible, bool)


@pytest.mark.parametrize(
    "design, message",
    [
        (np.zeros((32, 31)), r"shape \(32, 32\)"),
        (np.zeros((2, 32, 32)), r"shape \(32, 32\)"),
        (np.full((32, 32), np.nan), "NaN"),
        (np.full((32, 32), np.inf), "NaN or infinite"),
        (np.array([["a"] * 32] * 32), "numeric"),
    ],
)
def test_bad_designs_are_named(extrusion, design, message):
    with pytest.raises(ValueError, match=message):
        extrusion.evaluate(design, extrusion.default_conditions())


def test_boolean_and_integer_designs_are_accepted(extrusion):
    grid = np.zeros((32, 32), dtype=bool)
    grid[8:24, 8:24] = True
    a = extrusion.evaluate(grid, extrusion.default_conditions())
    b = extrusion.evaluate(grid.astype(np.int64), extrusion.default_conditions())
    assert a == b


@pytest.mark.parametrize(
    "change, message",
    [
        ({"area_fraction": 0.9}, r"'area_fraction' = 0.9 is outside its range \[0.15, 0.45\]"),
        ({"axis_angle": -5}, "outside its range"),
        ({"axis_angle": float("nan")}, "not finite"),
        ({"max_hollows": 3}, r"integer in \[0, 2\]"),
        ({"max_hollows": 1.5}, "integer"),
        ({"volume": 0.3}, r"unknown condition\(s\) \['volume'\]"),
    ],
)
def test_conditions_outside_their_space_are_refused(extrusion, change, message):
    with pytest.raises(ValueError, match=message):
        extrusion.check_conditions({**extrusion.default_conditions(), **change})


def test_missing_conditions_are_named(extrusion):
    with pytest.raises(ValueError, match=r"missing condition\(s\) \['axis_angle'\]"):
        extrusion.check_conditions({"area_fraction": 0.3, "max_hollows": 0})


def test_sampled_conditions_are_in_space_and_seeded(extrusion):
    a = [extrusion.sample_conditions(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    for seed in range(50):
        c = extrusion.sample_conditions(np.random.default_rng(seed))
        assert extrusion.check_conditions(c) == c
        v = extrusion.conditions_vector(c)
        assert v.shape == (extrusion.conditions_dim,) and np.all(np.abs(v) <= 1)


def test_conditions_vector_maps_the_corners_to_plus_minus_one(extrusion):
    low = {"area_fraction": 0.15, "axis_angle": 0.0, "max_hollows": 0}
    high = {"area_fraction": 0.45, "axis_angle": 90.0, "max_hollows": 2}
    assert extrusion.conditions_vector(low).tolist() == [-1, -1, -1]
    assert extrusion.conditions_vector(high).tolist() == [1, 1, 1]


def test_problem_without_reference_optimizer_says_so(extrusion):
    with pytest.raises(NoReferenceOptimizer, match="no reference optimizer"):
        extrusion.optimize(extrusion.default_conditions())


@pytest.mark.parametrize("name", ["extrusion", "cantilever", "am_bracket", "mbb"])
def test_evaluate_batch_equals_one_at_a_time(name):
    from designgym import make_problem

    batched, single = make_problem(name), make_problem(name)
    rng = np.random.default_rng(3)
    designs = [rng.random(batched.design_space.shape) for _ in range(4)]
    designs[2] = np.ones(batched.design_space.shape)
    designs.append(designs[0].copy())
    conditions = [batched.sample_conditions(rng) for _ in designs]
    got = batched.evaluate_batch(np.stack(designs), conditions)
    assert got == [single.evaluate(d, c) for d, c in zip(designs, conditions, strict=True)]
    assert batched.evaluate_batch([], []) == []


def test_evaluate_batch_checks_its_inputs(extrusion):
    conditions = extrusion.default_conditions()
    with pytest.raises(ValueError, match="got 2 designs but 1 sets of conditions"):
        extrusion.evaluate_batch([np.zeros((32, 32))] * 2, [conditions])
    with pytest.raises(ValueError, match="NaN"):
        extrusion.evaluate_batch([np.full((32, 32), np.nan)], [conditions])


def test_conditions_vector_of_some_keys_keeps_the_space_order(extrusion):
    brief = {"area_fraction": 0.45, "axis_angle": 0.0, "max_hollows": 0}
    assert list(extrusion.conditions_space.spaces) == ["area_fraction", "axis_angle", "max_hollows"]
    assert extrusion.conditions_vector(brief).tolist() == [1, -1, -1]
    # The keys pick the entries; their order is the space's, not the order they are given in.
    picked = extrusion.conditions_vector(brief, keys=("max_hollows", "area_fraction"))
    assert picked.dtype == np.float32 and picked.tolist() == [1, -1]
    # Only the given keys are read: the others may be missing.
    assert extrusion.conditions_vector({"axis_angle": 45.0}, keys=["axis_angle"]).tolist() == [0.0]
    empty = extrusion.conditions_vector(brief, keys=())
    assert empty.shape == (0,) and empty.dtype == np.float32


def test_repair_is_optional_and_says_when_a_problem_has_none():
    from designgym import make_problem

    floor_plan = make_problem("floor_plan")
    assert not floor_plan.has_repair
    with pytest.raises(NotImplementedError, match="FloorPlan has no repair step"):
        floor_plan.repair(np.zeros(floor_plan.design_space.shape), floor_plan.default_conditions())
    assert [make_problem(n).has_repair for n in ("cantilever", "am_bracket", "mbb", "extrusion", "floor_plan",
                                                 "massing")] == [True, True, True, True, False, True]

    class Repaired(type(floor_plan)):
        def repair(self, design, conditions):
            return np.ones_like(design)

    assert Repaired().has_repair and Repaired().repair(np.zeros((24, 24)), {}).sum() == 24 * 24
