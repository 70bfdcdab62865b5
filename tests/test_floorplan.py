"""The floor-plan problem: each rule on a planted plan, the brief's geometry, pictures, and the
procedural plans."""

import numpy as np
import pytest

from designgym.envs.architecture.floorplan import (
    BATHROOM,
    BEDROOM,
    CIRCULATION,
    EXTERIOR,
    KITCHEN,
    LIVING,
    ROOM_TYPES,
    FloorPlan,
)
from designgym.envs.architecture.floorplan_data import make_plan, make_plans

# A square 9 m x 9 m footprint (18 x 18 cells, rows 6-23, cols 3-20), door at column 11.
BRIEF = {
    "footprint": 0,
    "width": 0.75,
    "depth": 0.75,
    "notch": 0.3,
    "entrance": 0.5,
    "bedrooms": 2,
    "bathrooms": 1,
    "living_share": 0.25,
    "kitchen_living": 1,
    "bath_bedroom": 1,
}


@pytest.fixture(scope="module")
def problem() -> FloorPlan:
    return FloorPlan()


def planted() -> np.ndarray:
    """Back strip: bedroom | bathroom | bedroom; a corridor; front strip: kitchen | living."""
    plan = np.zeros((24, 24), dtype=np.uint8)
    plan[6:14, 3:9] = BEDROOM  # 6 x 8 cells = 12 m2
    plan[6:14, 9:12] = BATHROOM  # 3 x 8 = 6 m2
    plan[6:14, 12:21] = BEDROOM  # 9 x 8 = 18 m2
    plan[14:16, 3:21] = CIRCULATION  # 36 cells
    plan[16:24, 3:9] = KITCHEN  # 12 m2
    plan[16:24, 9:21] = LIVING  # 24 m2, holds the door at (23, 11)
    return plan


def broken(ev) -> set[str]:
    return {k for k, v in ev.violations.items() if v > 0}


def test_planted_plan_meets_every_rule(problem):
    ev = problem.evaluate(planted(), BRIEF)
    assert ev.feasible and broken(ev) == set()
    assert ev.objectives["circulation_ratio"] == pytest.approx(36 / 324, abs=1e-12)
    assert ev.objectives["compactness"] == pytest.approx(1.0)  # every room a rectangle
    assert ev.objectives["quality"] == pytest.approx(1.0 - 36 / 324)
    assert ev.objectives["adjacency_satisfaction"] == 1.0
    assert ev.objectives["rooms"] == 6
    assert ev.objectives["floor_area_m2"] == pytest.approx(81.0)


def test_room_targets_follow_the_documented_formula(problem):
    targets = problem.room_targets(BRIEF)
    area = 81.0
    living = 0.25 * area
    b = (area - living - 9.0 - 4.5 - 0.12 * area) / 2
    assert targets["living"] == pytest.approx((1, 0.75 * living, 1.25 * living))
    assert targets["kitchen"] == (1, 5.0, 14.0)
    assert targets["bathroom"] == (1, 2.5, 8.0)
    assert targets["bedroom"] == pytest.approx((2, max(7.0, 0.5 * b), max(12.0, 1.5 * b)))


def edits():
    """One plan (and brief) per rule, each breaking that rule only."""
    out = {}
    # Three bedrooms asked for, two drawn (the ranges still hold all rooms).
    out["missing_rooms"] = (planted(), {**BRIEF, "bedrooms": 3})
    # The kitchen grows to 16 m2 (max 14) at the living room's expense (20 m2, in range).
    plan = planted()
    plan[16:24, 3:11] = KITCHEN
    out["room_area"] = (plan, BRIEF)
    # A bathroom one metre wide: no 1.5 m square fits, and its box is 4:1.
    plan = planted()
    plan[6:14, 11] = BEDROOM
    out["room_shape"] = (plan, BRIEF)
    # A 1 m x 1 m closet (circulation) opening only into a bedroom, a dead end.
    plan = planted()
    plan[6:8, 19:21] = CIRCULATION
    out["unreachable"] = (plan, BRIEF)
    # The kitchen moved into the middle, walled in by the corridor and the living room.
    plan = planted()
    plan[16:24, 3:21] = LIVING
    plan[16:20, 9:14] = KITCHEN  # 5 m2
    out["no_daylight"] = (plan, {**BRIEF, "living_share": 0.35})
    # The bathroom moved to the front, away from both bedrooms; the kitchen to the back.
    plan = planted()
    plan[6:14, 3:9] = BEDROOM
    plan[6:14, 9:14] = KITCHEN  # 10 m2
    plan[6:14, 14:21] = BEDROOM  # 14 m2
    plan[16:24, 3:6] = BATHROOM  # 6 m2
    plan[16:24, 6:21] = LIVING  # 30 m2
    out["missing_adjacency"] = (plan, {**BRIEF, "kitchen_living": 0, "living_share": 0.3})
    # A bedroom spilling one column past the footprint's left edge.
    plan = planted()
    plan[6:14, 2] = BEDROOM
    out["outside_footprint"] = (plan, BRIEF)
    # A corner of the footprint left empty.
    plan = planted()
    plan[6:8, 19:21] = EXTERIOR
    out["unfilled"] = (plan, BRIEF)
    return out


@pytest.mark.parametrize("rule", list(edits()))
def test_planted_plan_breaks_exactly_its_rule(problem, rule):
    plan, brief = edits()[rule]
    ev = problem.evaluate(plan, brief)
    assert broken(ev) == {rule}, ev.violations
    assert not ev.feasible


def test_violation_values_of_the_planted_edits(problem):
    plans = edits()
    value = {rule: problem.evaluate(plan, brief).violations[rule] for rule, (plan, brief) in plans.items()}
    assert value["missing_rooms"] == 1.0
    assert value["room_area"] == pytest.approx((16.0 - 14.0) / 14.0)
    assert value["room_shape"] == pytest.approx(1.0 + 0.5 * (8 / 2 - 3.0))
    assert value["unreachable"] == 1.0
    assert value["no_daylight"] == 1.0
    assert value["missing_adjacency"] == 1.0
    assert value["outside_footprint"] == pytest.approx(8 / 324)
    assert value["unfilled"] == pytest.approx(4 / 324)
    adjacency = problem.evaluate(*plans["missing_adjacency"]).objectives["adjacency_satisfaction"]
    assert adjacency == 0.0  # the only adjacency asked for is not met


def test_violation_names_and_weights(problem):
    assert problem.violation_names == (
        "missing_rooms",
        "room_area",
        "room_shape",
        "unreachable",
        "no_daylight",
        "missing_adjacency",
        "outside_footprint",
        "unfilled",
    )
    assert set(problem.default_violation_weights) == set(problem.violation_names)
    # No objective change (quality spans 2, i.e. 20 reward units) pays for a counted rule.
    assert min(problem.default_violation_weights.values()) > 2.0 / problem.objective.scale


def test_a_room_reached_only_through_a_bedroom_is_unreachable(problem):
    # Bedrooms are dead ends: an en-suite opening only into its bedroom cannot be reached. (Two
    # bedrooms never touch, they would be one room, so the room behind the bedroom is a bathroom.)
    plan = planted()
    plan[6:10, 14:17] = BATHROOM  # against the back wall, inside the right bedroom
    labels, codes = problem.rooms(plan)
    ensuite = labels[7, 15]
    assert codes[ensuite - 1] == BATHROOM and ensuite != labels[7, 10]
    ev = problem.evaluate(plan, BRIEF)
    assert ev.violations["unreachable"] == 1.0
    # The same bathroom opened onto the corridor is reached again.
    plan[10:14, 14:17] = BATHROOM
    assert problem.evaluate(plan, BRIEF).violations["unreachable"] == 0.0


def test_a_door_needs_door_cells_of_shared_wall(problem):
    # The bathroom keeps one cell of wall on the corridor: not enough for a door.
    plan = planted()
    plan[12:14, 9:11] = BEDROOM
    assert problem.evaluate(plan, BRIEF).violations["unreachable"] == 1.0
    assert FloorPlan(door_cells=1).evaluate(plan, BRIEF).violations["unreachable"] == 0.0


def test_entrance_in_a_dead_end_reaches_only_that_room(problem):
    plan = planted()
    plan[16:24, 3:12] = KITCHEN  # the door (23, 11) now opens into the kitchen
    plan[16:24, 12:21] = LIVING
    ev = problem.evaluate(plan, BRIEF)
    assert ev.violations["unreachable"] == ev.objectives["rooms"] - 1


@pytest.mark.parametrize("footprint, area", [(0, 18 * 18), (1, 18 * 18 - 5 * 5), (2, 18 * 18 - 5 * 5)])
def test_footprint_masks(problem, footprint, area):
    brief = {**BRIEF, "footprint": footprint}
    mask = problem.footprint_mask(brief)
    assert mask.shape == (24, 24) and mask.dtype == bool
    assert mask.sum() == area
    assert mask[-1].sum() == 18 and mask[-1, 3] and mask[-1, 20]  # full width on the street
    assert not mask[:6].any() and not mask[:, :3].any() and not mask[:, 21:].any()
    if footprint == 1:  # the back right corner is cut
        assert mask[6, 3] and not mask[6, 20] and not mask[10, 16] and mask[11, 20]
    if footprint == 2:  # a notch in the middle of the back edge
        assert mask[6, 3] and mask[6, 20] and not mask[6, 11] and mask[11, 11]


@pytest.mark.parametrize("entrance, col", [(0.0, 3), (1.0, 20), (0.5, 11)])
def test_entrance_cell_lies_on_the_footprint_bottom_row(problem, entrance, col):
    brief = {**BRIEF, "entrance": entrance, "footprint": 2}
    row, c = problem.entrance_cell(brief)
    assert (row, c) == (23, col)
    assert problem.footprint_mask(brief)[row, c]


def test_random_briefs_put_the_door_on_the_footprint(problem):
    rng = np.random.default_rng(0)
    for _ in range(50):
        brief = problem.sample_conditions(rng)
        row, col = problem.entrance_cell(brief)
        mask = problem.footprint_mask(brief)
        assert mask[row, col] and row == np.nonzero(mask.any(axis=1))[0].max()


@pytest.mark.parametrize("value", [7, -1, 5.6])
def test_values_that_are_not_room_codes_are_refused(problem, value):
    plan = planted().astype(np.float64)
    plan[0, 0] = value
    with pytest.raises(ValueError, match="room code") as info:
        problem.evaluate(plan, BRIEF)
    assert "5 circulation" in str(info.value) and "0 exterior" in str(info.value)


def test_float_codes_are_rounded(problem):
    plan = planted().astype(np.float64)
    jittered = plan + np.random.default_rng(0).uniform(-0.4, 0.4, plan.shape)
    jittered = np.clip(jittered, 0, 5)
    assert np.array_equal(problem.check_design(jittered), plan)
    assert problem.evaluate(jittered, BRIEF).violations == problem.evaluate(plan, BRIEF).violations


def test_wrong_shape_and_bad_conditions_are_refused(problem):
    with pytest.raises(ValueError, match="shape"):
        problem.evaluate(np.zeros((10, 10)), BRIEF)
    with pytest.raises(ValueError, match="width"):
        problem.evaluate(planted(), {**BRIEF, "width": 0.5})
    with pytest.raises(ValueError, match="bedrooms"):
        problem.evaluate(planted(), {**BRIEF, "bedrooms": 4})
    with pytest.raises(ValueError, match="missing"):
        problem.evaluate(planted(), {k: v for k, v in BRIEF.items() if k != "entrance"})


def test_render_draws_rooms_in_distinct_colours(problem):
    plan = planted()
    image = problem.render(plan, BRIEF)
    assert image.shape == (384, 384, 3) and image.dtype == np.uint8
    px = problem.cell_px

    def colour(row, col):  # near a cell's corner, clear of walls and labels
        return tuple(image[row * px + 4, col * px + 4])

    cells = {LIVING: (22, 18), KITCHEN: (22, 4), BEDROOM: (7, 4), BATHROOM: (7, 10), CIRCULATION: (14, 16),
             EXTERIOR: (1, 1)}
    colours = {code: colour(*rc) for code, rc in cells.items()}
    assert len(set(colours.values())) == len(ROOM_TYPES)
    # The door is marked in red on the street edge of the entrance cell.
    door = image[23 * px + 12 : 24 * px, 11 * px : 12 * px]
    assert ((door[..., 0] > 200) & (door[..., 1] < 60)).any()
    # Without conditions: the same plan, no door.
    plain = problem.render(plan)
    assert plain.shape == image.shape and plain.dtype == np.uint8
    assert not ((plain[..., 0] > 200) & (plain[..., 1] < 60)).any()
    # Labels are drawn: dark text pixels inside the living room, away from its walls.
    living = plain[16 * px + 4 : 24 * px - 4, 9 * px + 4 : 21 * px - 4]
    assert (living.sum(axis=2) < 150).any()
    # An empty plan renders too.
    assert problem.render(np.zeros((24, 24))).shape == (384, 384, 3)


def test_make_plan_meets_a_brief(problem):
    plan = make_plan(problem, BRIEF, np.random.default_rng(0))
    assert plan is not None and plan.dtype == np.uint8
    assert problem.evaluate(plan, BRIEF).feasible


def test_make_plans_is_the_same_for_any_number_of_workers(problem):
    one, c1, _ = make_plans(8, seed=3, workers=1, progress=False)
    two, c2, _ = make_plans(8, seed=3, workers=2, progress=False)
    assert one.shape == (8, 24, 24) and one.dtype == np.uint8
    assert np.array_equal(one, two) and c1 == c2


def test_make_plans_are_feasible_varied_and_rarely_fail(problem):
    plans, conditions, stats = make_plans(60, seed=0, progress=False)
    assert plans.shape == (60, 24, 24) and len(conditions) == 60
    assert all(problem.evaluate(p, c).feasible for p, c in zip(plans, conditions, strict=True))
    assert stats["briefs_tried"] == 60 + stats["briefs_failed"]
    assert stats["briefs_failed"] / stats["briefs_tried"] < 0.05
    assert stats["seconds"] > 0
    assert len({p.tobytes() for p in plans}) == 60
    # Different briefs and different layouts for one brief.
    rng = np.random.default_rng(1)
    same_brief = {make_plan(problem, BRIEF, rng).tobytes() for _ in range(6)}
    assert len(same_brief) > 1
