"""The slicing layout and the floorplan-slicing generator: any latent decodes to a plan.

The rules themselves are tested on planted plans in test_floorplan.py; here the decoder is held to
them on random briefs and latents, extreme latents included.
"""

import numpy as np
import pytest
from scipy import ndimage

from designgym.envs.architecture import floorplan_layout as layouts
from designgym.envs.architecture.floorplan import BATHROOM, BEDROOM, CIRCULATION, FloorPlan
from designgym.generators import layouts as generator_module
from designgym.generators import load

#: The rules a decoded plan meets by construction (room_area holds unless no cut fits the ranges).
BY_CONSTRUCTION = ("missing_rooms", "room_shape", "unreachable", "no_daylight", "missing_adjacency",
                   "outside_footprint", "unfilled")


@pytest.fixture(scope="module")
def problem() -> FloorPlan:
    return FloorPlan()


@pytest.fixture(scope="module")
def generator():
    return load("floorplan-slicing", device="cpu")


def decode(generator, problem, z, briefs):
    vectors = np.stack([problem.conditions_vector(b) for b in briefs])
    return generator.decode_numpy(np.asarray(z, dtype=np.float32), vectors)


def test_any_latent_decodes_to_a_plan_that_fills_the_footprint_with_whole_rooms(problem, generator):
    rng = np.random.default_rng(5)
    briefs = [problem.sample_conditions(rng) for _ in range(120)]
    # Prior samples, and latents far out in the tails (the CDF clips them to the ends of each choice).
    z = np.concatenate([rng.standard_normal((80, 11)), rng.choice([-6.0, 6.0], size=(40, 11))])
    plans = decode(generator, problem, z, briefs)
    feasible = 0
    for plan, brief in zip(plans, briefs, strict=True):
        assert set(np.unique(plan)) <= set(range(6))
        footprint = problem.footprint_mask(brief)
        # The footprint exactly: no room outside it, no cell of it left exterior.
        np.testing.assert_array_equal(plan > 0, footprint)
        ev = problem.evaluate(plan, brief)
        feasible += ev.feasible
        if ev.violations["room_area"] == 0:  # a strict cut: every other rule holds as well
            assert all(ev.violations[rule] == 0 for rule in BY_CONSTRUCTION), ev.violations
        # Every program room is one 4-connected region of its type, and there are as many as asked.
        targets = problem.room_targets(brief)
        for name, code in (("living", 1), ("kitchen", 2), ("bedroom", BEDROOM), ("bathroom", BATHROOM)):
            _, count = ndimage.label(plan == code)
            assert count == targets[name][0] or ev.violations["missing_rooms"] > 0
        # The circulation (corridor, alcoves, hall) is one region: every door opens onto the same hall.
        assert ndimage.label(plan == CIRCULATION)[1] == 1
    # The card measures 97.3 % on 512 briefs; 120 other briefs leave room for sampling error.
    assert feasible / len(briefs) >= 0.92


def test_a_strict_cut_holds_every_rule_and_keeps_each_room_in_its_range(problem):
    rng = np.random.default_rng(11)
    strict = 0
    for _ in range(150):
        brief = problem.sample_conditions(rng)
        u = rng.random(len(layouts.PARAMETERS))
        found = layouts._solve(layouts._Brief(problem, brief), u, relaxed=False)
        plan = layouts.layout(problem, brief, u)
        if found is None:
            continue
        strict += 1
        ev = problem.evaluate(plan, brief)
        assert ev.feasible, ev.violations
    assert strict >= 140  # measured 146 of 150


def test_the_room_table_is_the_scalar_rule_for_every_cut(problem):
    # The numpy table a decode builds and the scalar definition of a valid room agree on every
    # (type, start, end) of every strip of a few briefs, notched ones included.
    rng = np.random.default_rng(3)
    checked = 0
    for footprint in (0, 1, 2, 2):
        brief = {**problem.sample_conditions(rng), "footprint": footprint}
        b = layouts._Brief(problem, brief)
        for dn in b.back_depths[:: max(1, len(b.back_depths) // 3)]:
            for row in b.rows(dn, "back") + b.rows(dn, "front"):
                for hall in (False, True):
                    row.hall = hall
                    for code in (1, 2, 3, 4, 5):
                        if code == CIRCULATION and row.entrance is None:
                            continue
                        for relaxed in (False, True):
                            valid, area, depth = row.table(code, relaxed)
                            n = len(row.depths)
                            for a in range(n):
                                for end in range(a + 1, n + 1):
                                    room = row.room(code, a, end, relaxed)
                                    assert (room is not None) == bool(valid[a, end]), (code, a, end, relaxed)
                                    if room is not None:
                                        assert room == (area[a, end], depth[a, end])
                                    checked += 1
    assert checked > 10_000


def test_a_bathroom_paired_across_a_notch_step_touches_its_bedroom(problem):
    # A U-shaped house whose back strip steps down behind the courtyard: the bathroom must share a wall
    # with a bedroom, which rooms on either side of the step (one keeping to the back wall behind an
    # alcove) may not; the cut keeps the pair on one depth.
    brief = {"bath_bedroom": 1, "bathrooms": 1, "bedrooms": 1, "depth": 0.8, "entrance": 0.86, "footprint": 2,
             "kitchen_living": 1, "living_share": 0.3, "notch": 0.29, "width": 0.85}
    for value in np.linspace(0.02, 0.98, 7):
        plan = layouts.layout(problem, brief, np.full(len(layouts.PARAMETERS), value))
        ev = problem.evaluate(plan, brief)
        assert ev.violations["missing_adjacency"] == 0 and ev.feasible, ev.violations


def test_decoding_is_deterministic_and_mostly_stable_under_small_moves(problem, generator):
    rng = np.random.default_rng(9)
    briefs = [problem.sample_conditions(rng) for _ in range(60)]
    z = rng.standard_normal((60, 11))
    first = decode(generator, problem, z, briefs)
    np.testing.assert_array_equal(first, decode(generator, problem, z, briefs))
    nudged = decode(generator, problem, z + 1e-3 * rng.standard_normal(z.shape), briefs)
    same = np.mean([np.array_equal(a, b) for a, b in zip(first, nudged, strict=True)])
    assert same >= 0.8  # the choices are piecewise constant; the aimed areas move a cut by a cell at most


def test_the_brief_survives_the_conditions_vector(problem, generator):
    rng = np.random.default_rng(1)
    for _ in range(50):
        brief = problem.sample_conditions(rng)
        back = generator.conditions_from_vector(problem.conditions_vector(brief))
        assert set(back) == set(brief)
        for key, value in brief.items():
            assert back[key] == pytest.approx(value, abs=1e-6)
        np.testing.assert_array_equal(problem.footprint_mask(back), problem.footprint_mask(brief))
        assert problem.entrance_cell(back) == problem.entrance_cell(brief)


def test_a_description_of_the_wrong_length_is_refused(problem):
    with pytest.raises(ValueError, match="11 numbers"):
        layouts.layout(problem, problem.default_conditions(), np.zeros(5))


def test_the_generator_has_no_weights_and_says_so(generator):
    assert isinstance(generator, generator_module.SlicingPlanGenerator)
    assert sum(p.numel() for p in generator.parameters()) == 0
    assert generator.latent_dim == len(layouts.PARAMETERS) == 11
