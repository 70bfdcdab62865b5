"""Structural problems: loads and supports where the docs say, rules on planted designs, SIMP as reference."""

import math

import numpy as np
import pytest

from designgym.envs.structures.fem import node_id
from designgym.envs.structures.problems import MBB, Cantilever


@pytest.fixture(scope="module")
def cantilever():
    return Cantilever(32, 16)


def test_cantilever_load_follows_the_documented_convention(cantilever):
    force = cantilever.force_vector({"volfrac": 0.4, "load_y": 1.0, "load_angle": 30.0})
    node = node_id(16, 32, 16)  # bottom of the right edge
    assert np.flatnonzero(force).tolist() == [2 * node, 2 * node + 1]
    assert force[2 * node] == pytest.approx(math.sin(math.radians(30)))
    assert force[2 * node + 1] == pytest.approx(-math.cos(math.radians(30)))
    top = cantilever.force_vector({"volfrac": 0.4, "load_y": 0.0, "load_angle": 0.0})
    assert top[2 * node_id(16, 32, 0) + 1] == -1.0


def beam(nely=16, nelx=32, top=6, bottom=10):
    design = np.zeros((nely, nelx), dtype=np.float32)
    design[top:bottom, :] = 1.0
    return design


def test_a_solid_beam_meets_every_rule_and_beats_the_grey_field(cantilever):
    design = beam()
    conditions = {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0}
    ev = cantilever.evaluate(design, conditions)
    assert ev.feasible
    assert ev.objectives["volume_fraction"] == pytest.approx(0.25)
    assert ev.objectives["log_stiffness_gain"] == pytest.approx(
        math.log(cantilever.uniform_compliance(conditions) / ev.objectives["compliance"])
    )


def test_uniform_reference_equals_a_direct_solve(cantilever):
    conditions = {"volfrac": 0.45, "load_y": 0.25, "load_angle": -40.0}
    direct = cantilever.model.compliance(np.full((16, 32), 0.45), cantilever.force_vector(conditions))
    assert cantilever.uniform_compliance(conditions) == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("rule", ["volume_excess", "floating_material", "load_path"])
def test_planted_design_breaks_exactly_its_rule(cantilever, rule):
    conditions = {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0}
    design = beam()
    if rule == "volume_excess":
        design = beam(top=4, bottom=12)  # half the domain against 0.3
    elif rule == "floating_material":
        design[0:2, 10:14] = 1.0  # an island
    else:  # the beam stops short of the load, but everything hangs on the clamp
        design[:, 24:] = 0.0
        conditions = {**conditions, "volfrac": 0.3}
    ev = cantilever.evaluate(design, conditions)
    assert {k for k, v in ev.violations.items() if v > 0} == {rule}


def test_broken_load_path_gives_a_finite_huge_compliance(cantilever):
    design = beam()
    design[:, 20] = 0.0  # cut through: the tip hangs on void
    ev = cantilever.evaluate(design, {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0})
    assert ev.violations["load_path"] == 1.0 and ev.violations["floating_material"] > 0
    assert np.isfinite(ev.objectives["compliance"]) and ev.objectives["compliance"] > 1e6
    # Only the void's 1e-9 carries the load: the objective sits at its floor, the rule says why.
    assert ev.objectives["log_stiffness_gain"] == cantilever.gain_floor == -5.0


@pytest.mark.slow
def test_simp_reference_is_feasible_and_far_better_than_the_grey_field(cantilever):
    conditions = {"volfrac": 0.4, "load_y": 0.5, "load_angle": 0.0}
    density = cantilever.optimize(conditions, max_iter=120)
    assert density.shape == (16, 32) and set(np.unique(density)) == {0.0, 1.0}
    assert density.mean() == pytest.approx(0.4, abs=1 / density.size)
    ev = cantilever.evaluate(density, conditions)
    assert ev.feasible  # thresholding adds a little volume; the tolerance allows for it
    assert ev.objectives["log_stiffness_gain"] > 1.0  # several times stiffer than grey


def test_mbb_supports_and_load(cantilever):
    mbb = MBB(30, 10)
    force = mbb.force_vector({"volfrac": 0.5, "load_x": 0.0})
    assert np.flatnonzero(force).tolist() == [1] and force[1] == -1.0
    assert 2 * node_id(10, 30, 10) + 1 in mbb.model.fixed
    design = np.zeros((10, 30), dtype=np.float32)
    design[7:10, :] = 1.0  # bottom chord
    design[0:10, 0:3] = 1.0  # post under the load
    ev = mbb.evaluate(design, {"volfrac": 0.5, "load_x": 0.0})
    assert ev.violations["load_path"] == 0.0 and ev.violations["floating_material"] == 0.0


def test_render_marks_supports_and_load(cantilever):
    image = cantilever.render(beam(), {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0})
    assert image.shape == (16 * 8, 32 * 8, 3)
    blue = (image[:, :, 2] > 200) & (image[:, :, 0] < 60)
    red = (image[:, :, 0] > 200) & (image[:, :, 1] < 60)
    assert blue[:, :8].any() and not blue[:, 8:].any()
    assert red[:, -16:].any() and not red[:, :-16].any()


def test_structural_problems_are_registered_by_name():
    import designgym

    assert isinstance(designgym.make_problem("cantilever"), Cantilever)
    assert designgym.make_problem("mbb", nelx=30, nely=10).design_space.shape == (10, 30)


def test_volume_tolerance_is_one_percent_of_the_domain(cantilever):
    design = beam()
    design[10, :28] = 1.0  # (128 + 28) / 512 = 0.3047 of the domain
    at = {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0}
    assert cantilever.evaluate(design, at).violations["volume_excess"] == 0.0
    over = {**at, "volfrac": 0.3}
    assert cantilever.evaluate(beam(top=4, bottom=10), over).violations["volume_excess"] == pytest.approx(
        0.375 - 0.3 - 0.01
    )


@pytest.fixture(scope="module")
def bracket():
    from designgym.envs.structures.problems import AMBracket

    return AMBracket(32, 16)


@pytest.mark.parametrize(("direction", "overhang"), [(0, 1.0), (1, 0.0), (2, 1.0), (3, 0.0)])
def test_am_bracket_overhang_depends_on_the_build_direction(bracket, direction, overhang):
    # A horizontal beam grows fine sideways from a plate at either end, but printed upward (or
    # downward) it would start in mid-air, above the empty rows under it.
    conditions = {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0, "build_direction": direction}
    ev = bracket.evaluate(beam(), conditions)
    assert ev.violations["overhang"] == overhang
    assert ev.violations["member_size"] == 0.0
    assert ev.feasible == (overhang == 0.0)
    assert bracket.BUILD_DIRECTIONS[direction] in ("up", "left", "down", "right")


def test_am_bracket_flags_a_strut_one_element_thick(bracket):
    conditions = {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0, "build_direction": 3}
    design = beam(top=6, bottom=10)
    design[12, :] = 1.0  # a second, one-element flange two rows below, joined by a post at the tip
    design[10:12, 30:] = 1.0
    ev = bracket.evaluate(design, conditions)
    assert ev.violations["member_size"] > 0.5 * 28 / design.sum()
    assert ev.violations["floating_material"] == 0.0 and ev.violations["overhang"] == 0.0
    assert not ev.feasible


def test_am_bracket_checks_its_build_direction_and_draws_the_plate(bracket):
    with pytest.raises(ValueError, match="build_direction"):
        bracket.evaluate(beam(), {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0, "build_direction": 4})
    image = bracket.render(beam(), {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0, "build_direction": 3})
    assert image.shape == (16 * 8, 32 * 8 + 4, 3)
    plate = image[:, :4]  # "right": layers grow toward +x from a plate against the clamped left edge
    assert (plate == np.array([30, 110, 50], dtype=np.uint8)).all()


@pytest.mark.parametrize("name", ["cantilever", "mbb"])
def test_uniform_reference_table_covers_every_load_node_at_once(name):
    from designgym import make_problem

    problem = make_problem(name, nelx=24, nely=8)
    rng = np.random.default_rng(0)
    first = problem.sample_conditions(rng)
    problem.uniform_compliance(first)
    filled = set(problem._flexibility)
    for _ in range(20):  # any other load case is a table lookup now, and equals a direct solve
        c = problem.sample_conditions(rng)
        direct = problem.model.compliance(np.full((8, 24), c["volfrac"]), problem.force_vector(c))
        assert problem.uniform_compliance(c) == pytest.approx(direct, rel=1e-9)
    assert set(problem._flexibility) == filled
    assert len(filled) == (9 if name == "cantilever" else 13)


# -- repair, polish, and SIMP from a given start ----------------------------------------------------

from designgym.envs.manufacturing import floating_fraction  # noqa: E402
from designgym.envs.structures.simp import simp  # noqa: E402

SMALL = {"volfrac": 0.4, "load_y": 0.3, "load_angle": 20.0}  # no mirror symmetry: no tied densities


@pytest.fixture(scope="module")
def small():
    return Cantilever(nelx=16, nely=8)


@pytest.mark.parametrize("seed", range(3))
def test_repair_meets_the_budget_exactly_with_nothing_floating(small, seed):
    rng = np.random.default_rng(seed)
    conditions = {**SMALL, "volfrac": float(rng.uniform(0.3, 0.6))}
    repaired = small.repair(rng.random((8, 16)).astype(np.float32), conditions)
    assert repaired.dtype == np.float32 and repaired.shape == (8, 16)
    assert set(np.unique(repaired)) == {0.0, 1.0}
    assert int(repaired.sum()) == round(conditions["volfrac"] * 128)
    assert floating_fraction(repaired >= 0.5, small._anchored_cells()) == 0.0
    ev = small.evaluate(repaired, conditions)
    assert ev.violations["floating_material"] == 0.0 and ev.violations["volume_excess"] == 0.0


def test_repair_grows_from_the_problems_own_supports():
    mbb = MBB(16, 8)
    design = np.zeros((8, 16), dtype=np.float32)
    design[:, 0] = 1.0  # dense along the symmetry line, which holds nothing: MBB's anchor is the roller
    repaired = mbb.repair(design, {"volfrac": 0.3, "load_x": 0.0})
    # round(0.3 * 128) = 38 cells, none joined to the bottom-right cell: grown from it a layer at a
    # time over equal densities, 36 cells within 7 steps, and 2 of the 8th layer (lowest flat index).
    rows, cols = np.indices((8, 16))
    expected = (7 - rows) + (15 - cols) <= 7
    expected[0, 14] = expected[1, 13] = True
    np.testing.assert_array_equal(repaired, expected.astype(np.float32))


def test_repair_checks_its_inputs(small):
    with pytest.raises(ValueError, match=r"shape \(8, 16\)"):
        small.repair(np.zeros((16, 8)), SMALL)
    with pytest.raises(ValueError, match="outside its range"):
        small.repair(np.zeros((8, 16)), {**SMALL, "volfrac": 0.9})


def test_polish_with_no_iterations_is_repair_and_negative_is_refused(small):
    design = np.random.default_rng(4).random((8, 16)).astype(np.float32)
    np.testing.assert_array_equal(small.polish(design, SMALL, iterations=0), small.repair(design, SMALL))
    with pytest.raises(ValueError, match="iterations must be >= 0, got -1"):
        small.polish(design, SMALL, iterations=-1)


def test_polish_runs_exactly_its_iterations_from_the_design(small, monkeypatch):
    solves = []
    original = small.model.compliance_and_sensitivity
    monkeypatch.setattr(small.model, "compliance_and_sensitivity", lambda *a: solves.append(1) or original(*a))
    design = np.random.default_rng(5).random((8, 16)).astype(np.float32)
    polished = small.polish(design, SMALL, iterations=3)
    assert len(solves) == 3  # tol=0: no early stop
    assert set(np.unique(polished)) == {0.0, 1.0} and int(polished.sum()) == round(0.4 * 128)
    assert floating_fraction(polished >= 0.5, small._anchored_cells()) == 0.0
    monkeypatch.undo()
    # From the uniform field at the budget (SIMP's own start) it is repaired plain SIMP of as many
    # iterations; from another design it is not.
    grey = simp(small.model, small.force_vector(SMALL), 0.4, rmin=small.rmin, max_iter=3, tol=0.0).density
    uniform = np.full((8, 16), 0.4, dtype=np.float32)
    np.testing.assert_array_equal(small.polish(uniform, SMALL, iterations=3), small.repair(grey, SMALL))
    assert not np.array_equal(polished, small.repair(grey, SMALL))


def test_simp_starts_from_a_given_field(small):
    model, force = small.model, small.force_vector(SMALL)
    plain = simp(model, force, 0.4, max_iter=4, tol=0.0)
    same = simp(model, force, 0.4, max_iter=4, tol=0.0, start=np.full((8, 16), 0.4))
    np.testing.assert_allclose(same.density, plain.density, rtol=0, atol=1e-12)
    np.testing.assert_allclose(same.history, plain.history, rtol=1e-12)
    # The first compliance is that of the (filtered) start: a uniform 0.6 filters to itself.
    other = simp(model, force, 0.4, max_iter=2, tol=0.0, start=np.full((8, 16), 0.6))
    assert other.history[0] == pytest.approx(model.compliance(np.full((8, 16), 0.6), force), rel=1e-12)
    assert other.history[0] < 0.5 * plain.history[0]


@pytest.mark.parametrize(
    "start",
    [np.zeros((16, 8)), np.zeros((8, 16, 1)), np.full((8, 16), 1.5), np.full((8, 16), -0.1),
     np.full((8, 16), np.nan)],
    ids=["transposed", "3d", "above-one", "negative", "nan"],
)
def test_simp_refuses_a_bad_start(small, start):
    with pytest.raises(ValueError, match=r"start must be a \(8, 16\) field of values in \[0, 1\]"):
        simp(small.model, small.force_vector(SMALL), 0.4, max_iter=1, start=start)


def test_the_legend_names_every_colour_of_the_bracket_picture(bracket, tmp_path):
    from designgym.agents.pictures import save_design_grid

    image = bracket.render(beam(), {"volfrac": 0.3, "load_y": 0.5, "load_angle": 0.0, "build_direction": 0})
    colours = {tuple(int(v) for v in c) for c in np.unique(image.reshape(-1, 3), axis=0)}
    named = {rgb for _, rgb in bracket.LEGEND}
    assert colours - {(255, 255, 255)} == named  # every colour drawn is named, every name is drawn
    path = save_design_grid(tmp_path / "grid.png", [image], ["a beam"], legend=bracket.LEGEND)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
