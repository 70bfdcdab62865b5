"""The fast FEM against an independent textbook reference (tests/fem_reference.py), and the reference itself
against beam theory and the basic properties of the Q4 element."""

import numpy as np
import pytest
from fem_reference import (
    assemble,
    cantilever_case,
    element_stiffness,
    mbb_case,
    node_number,
    reference_compliance,
    reference_displacements,
)

NU, PENAL, EMIN = 0.3, 3.0, 1e-9
LOAD_HEIGHTS = (0.0, 0.5, 1.0)
LOAD_ANGLES = (0.0, 30.0, -60.0, 90.0)


SOLVERS = ("cholmod", "superlu")


def fast_model(nelx: int, nely: int, fixed: np.ndarray, solver: str = "auto"):
    """The fast solver under test; imported here so the reference-only tests run without it."""
    from designgym.envs.structures.fem import FEModel

    return FEModel(nelx, nely, fixed, nu=NU, penal=PENAL, emin=EMIN, solver=solver)


def density_field(nelx: int, nely: int, kind: str, seed: int) -> np.ndarray:
    """Random densities in [0.001, 1], or a 0/1 field with a solid border around random voids.

    The solid border joins every support to every load of the test cases. Without it a void can cut the load
    path, the structure hangs on emin-stiff elements, c ~ 1/emin, and no float64 solver gets 1e-6 relative
    accuracy (that case has its own, looser test below).
    """
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.uniform(0.001, 1.0, size=(nely, nelx))
    density = (rng.random((nely, nelx)) < 0.5).astype(float)
    density[[0, -1], :] = 1.0
    density[:, [0, -1]] = 1.0
    return density


# ---------------------------------------------------------------------------------------------------------------
# The fast solver against the reference.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nelx, nely", [(12, 6), (20, 10), (16, 16)])
@pytest.mark.parametrize("kind, seed", [("random", 0), ("random", 1), ("binary", 2), ("binary", 3)])
@pytest.mark.parametrize("solver", SOLVERS)
def test_compliance_matches_reference(nelx: int, nely: int, kind: str, seed: int, solver: str) -> None:
    density = density_field(nelx, nely, kind, seed)
    cases = [("mbb", *mbb_case(nelx, nely))]
    cases += [
        (f"cantilever y={y} a={a}", *cantilever_case(nelx, nely, y, a)) for y in LOAD_HEIGHTS for a in LOAD_ANGLES
    ]
    # One fast model per support set: every cantilever case shares the clamped left edge.
    models = {}
    for name, fixed, force in cases:
        key = tuple(fixed)
        if key not in models:
            models[key] = fast_model(nelx, nely, fixed, solver)
        expected = reference_compliance(density, fixed, force, NU, PENAL, EMIN)
        got = models[key].compliance(density, force)
        assert isinstance(got, float), name
        assert got == pytest.approx(expected, rel=1e-6), name


def test_compliance_of_a_design_hanging_on_void_is_close_to_reference() -> None:
    # The bottom-right element is void, so the MBB roller holds the solid only through an emin-stiff element:
    # a near-mechanism with c ~ 1/emin. Against a 40-digit solve of this very case, float64 solvers were off by
    # 1e-6 (reference) and 6e-5 (fast solver) depending on pivoting, so only closeness is asked for.
    nelx, nely = 12, 6
    density = np.ones((nely, nelx))
    density[-1, -1] = 0.0
    fixed, force = mbb_case(nelx, nely)
    expected = reference_compliance(density, fixed, force, NU, PENAL, EMIN)
    assert expected > 1e8
    assert fast_model(nelx, nely, fixed).compliance(density, force) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("case", ["mbb", "cantilever"])
def test_compliance_matches_reference_on_a_64x32_mesh(case: str) -> None:
    nelx, nely = 64, 32
    density = density_field(nelx, nely, "random", 7)
    fixed, force = mbb_case(nelx, nely) if case == "mbb" else cantilever_case(nelx, nely, 0.5, 30.0)
    expected = reference_compliance(density, fixed, force, NU, PENAL, EMIN)
    assert fast_model(nelx, nely, fixed).compliance(density, force) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("load_y, angle", [(0.0, 30.0), (1.0, -60.0)])
def test_displacements_match_reference(load_y: float, angle: float) -> None:
    # Compliance alone is blind to some convention slips (a mirrored mesh can give the same number); the
    # displacement vector is not.
    nelx, nely = 12, 6
    density = density_field(nelx, nely, "random", 4)
    fixed, force = cantilever_case(nelx, nely, load_y, angle)
    expected = reference_displacements(density, fixed, force, NU, PENAL, EMIN)
    got = fast_model(nelx, nely, fixed).displacements(density, force)
    assert got.shape == expected.shape
    assert np.all(got[fixed] == 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("case", ["mbb", "cantilever"])
def test_sensitivity_matches_finite_differences_of_reference(case: str) -> None:
    nelx, nely = 8, 4
    rng = np.random.default_rng(11)
    density = rng.uniform(0.001, 1.0, size=(nely, nelx))
    fixed, force = mbb_case(nelx, nely) if case == "mbb" else cantilever_case(nelx, nely, 1.0, 30.0)
    c, dc = fast_model(nelx, nely, fixed).compliance_and_sensitivity(density, force)
    assert dc.shape == density.shape
    assert c == pytest.approx(reference_compliance(density, fixed, force, NU, PENAL, EMIN), rel=1e-6)
    # Corners, two inner elements and the most sensitive one, lifted to x >= 0.3 so that dc ~ 3 x^2 is not
    # drowned in finite-difference round-off.
    elements = {(0, 0), (1, 2), (nely - 1, nelx - 1), (nely // 2, nelx // 2)}
    elements.add(tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(dc)), dc.shape)))
    step = 1e-4
    for r, col in elements:
        density[r, col] = max(density[r, col], 0.3)
    c, dc = fast_model(nelx, nely, fixed).compliance_and_sensitivity(density, force)
    for r, col in elements:
        plus, minus = density.copy(), density.copy()
        plus[r, col] += step
        minus[r, col] -= step
        fd = (
            reference_compliance(plus, fixed, force, NU, PENAL, EMIN)
            - reference_compliance(minus, fixed, force, NU, PENAL, EMIN)
        ) / (2 * step)
        assert dc[r, col] == pytest.approx(fd, rel=1e-4), (r, col)
        assert dc[r, col] < 0  # more material never makes a structure more compliant


# ---------------------------------------------------------------------------------------------------------------
# The reference on its own.
# ---------------------------------------------------------------------------------------------------------------


def test_element_stiffness_is_symmetric_with_three_rigid_body_modes() -> None:
    ke = element_stiffness(NU)
    assert ke.shape == (8, 8)
    np.testing.assert_allclose(ke, ke.T, atol=1e-14)
    eig = np.linalg.eigvalsh(ke)
    assert np.sum(np.abs(eig) < 1e-12) == 3
    assert np.sum(eig > 1e-3) == 5


def test_element_stiffness_gives_no_force_for_rigid_motions() -> None:
    ke = element_stiffness(NU)
    # Local order: bottom-left, bottom-right, top-right, top-left of the unit square, y up.
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    translate_x = np.tile([1.0, 0.0], 4)
    translate_y = np.tile([0.0, 1.0], 4)
    rotate = np.column_stack([-corners[:, 1], corners[:, 0]]).ravel()  # infinitesimal rotation about the origin
    for mode in (translate_x, translate_y, rotate):
        np.testing.assert_allclose(ke @ mode, 0.0, atol=1e-14)
    # A uniform stretch is not rigid: it must cost energy.
    stretch = np.column_stack([corners[:, 0], np.zeros(4)]).ravel()
    assert stretch @ ke @ stretch > 0


def test_reference_global_stiffness_has_rigid_modes_in_the_global_numbering() -> None:
    nelx, nely = 5, 3
    k = assemble(np.random.default_rng(0).uniform(0.1, 1.0, (nely, nelx)), NU, PENAL, EMIN)
    translate_x = np.zeros(k.shape[0])
    translate_y = np.zeros(k.shape[0])
    rotation = np.zeros(k.shape[0])
    for i in range(nelx + 1):
        for j in range(nely + 1):
            n = node_number(nely, i, j)
            px, py = float(i), float(nely - j)  # height above the bottom edge: y is up, rows go down
            translate_x[2 * n] = 1.0
            translate_y[2 * n + 1] = 1.0
            rotation[2 * n], rotation[2 * n + 1] = -py, px
    for mode in (translate_x, translate_y, rotation):
        np.testing.assert_allclose(k @ mode, 0.0, atol=1e-12)


def test_reference_uniform_tension_is_exact() -> None:
    # Constant stress is in the Q4 space, so a bar in uniform tension is solved exactly: c = P^2 L / (E h).
    nelx, nely = 10, 4
    left_x = [2 * node_number(nely, 0, j) for j in range(nely + 1)]
    fixed = np.array(left_x + [2 * node_number(nely, 0, nely) + 1])  # plus one y DOF against rigid sliding
    force = np.zeros(2 * (nelx + 1) * (nely + 1))
    for j in range(nely + 1):
        # Consistent nodal loads of a uniform traction of total 1: half weight at the two corners.
        force[2 * node_number(nely, nelx, j)] = (0.5 if j in (0, nely) else 1.0) / nely
    c = reference_compliance(np.ones((nely, nelx)), fixed, force, NU, PENAL, EMIN)
    assert c == pytest.approx(nelx / nely, rel=1e-9)


def test_reference_cantilever_bends_the_right_way() -> None:
    # Under a downward tip load the tip moves down, the top fibre stretches and the bottom fibre shortens.
    # This ties "rows counted from the top" to "y DOF positive up".
    nelx, nely = 20, 4
    fixed, force = cantilever_case(nelx, nely, 0.5, 0.0)
    u = reference_displacements(np.ones((nely, nelx)), fixed, force, NU, PENAL, EMIN)
    tip = node_number(nely, nelx, nely // 2)
    assert u[2 * tip + 1] < 0
    assert u[2 * node_number(nely, nelx // 2, 0)] > 0
    assert u[2 * node_number(nely, nelx // 2, nely)] < 0
    # A load turned toward +x pulls the tip to the right.
    fixed, force = cantilever_case(nelx, nely, 0.5, 90.0)
    assert force[2 * tip] == pytest.approx(1.0) and force[2 * tip + 1] == pytest.approx(0.0)
    u = reference_displacements(np.ones((nely, nelx)), fixed, force, NU, PENAL, EMIN)
    assert u[2 * tip] > 0


def test_reference_load_cases_put_loads_and_supports_where_asked() -> None:
    nelx, nely = 6, 4
    fixed, force = cantilever_case(nelx, nely, 1.0, -60.0)
    bottom_right = node_number(nely, nelx, nely)
    assert force[2 * bottom_right] == pytest.approx(-np.sqrt(3) / 2)
    assert force[2 * bottom_right + 1] == pytest.approx(-0.5)
    assert np.count_nonzero(force) == 2
    assert sorted(fixed) == list(range(2 * (nely + 1)))  # column 0 holds nodes 0..nely
    fixed, force = mbb_case(nelx, nely)
    assert force[1] == -1.0 and np.count_nonzero(force) == 1
    assert sorted(fixed) == list(range(0, 2 * (nely + 1), 2)) + [2 * bottom_right + 1]


def test_reference_beam_theory_for_a_slender_cantilever() -> None:
    # 80 x 10 solid cantilever, unit tip load at mid-height: Timoshenko tip deflection
    # P L^3 / (3 E I) + P L / (kappa G A). Bilinear elements are stiff in bending, so FE is a little lower.
    nelx, nely = 80, 10
    length, height, e_mod = float(nelx), float(nely), 1.0
    inertia, area, shear_mod, kappa = height**3 / 12, height, e_mod / (2 * (1 + NU)), 5 / 6
    deflection = length**3 / (3 * e_mod * inertia) + length / (kappa * shear_mod * area)
    fixed, force = cantilever_case(nelx, nely, 0.5, 0.0)
    c = reference_compliance(np.ones((nely, nelx)), fixed, force, NU, PENAL, EMIN)
    assert 0.85 * deflection < c < deflection


def test_kept_factorisation_gives_what_a_fresh_model_gives():
    from designgym.envs.structures.fem import FEModel

    # The model keeps the factorisation of its last design; a repeat under another load must equal
    # a fresh solve exactly, and a changed design must not reuse it.
    rng = np.random.default_rng(5)
    fixed = np.arange(2 * 9)
    kept = FEModel(12, 8, fixed)
    a, b = rng.uniform(0.1, 1.0, (8, 12)), rng.uniform(0.1, 1.0, (8, 12))
    loads = [rng.standard_normal(kept.ndof) for _ in range(3)]
    for density, force in [(a, loads[0]), (a, loads[1]), (b, loads[1]), (a, loads[2]), (a * 1.0, loads[2])]:
        fresh = FEModel(12, 8, fixed)
        np.testing.assert_array_equal(kept.displacements(density, force), fresh.displacements(density, force))
    b[3, 4] = 0.5
    np.testing.assert_array_equal(kept.compliance(b, loads[0]), FEModel(12, 8, fixed).compliance(b, loads[0]))


@pytest.mark.parametrize("solver", SOLVERS)
def test_batch_compliance_equals_one_at_a_time(solver: str) -> None:
    from designgym.envs.structures.fem import FEModel

    rng = np.random.default_rng(11)
    nelx, nely = 16, 8
    cases = [cantilever_case(nelx, nely, y, a) for y, a in [(0.0, 0.0), (0.5, 30.0), (1.0, -60.0)]]
    fixed = cases[0][0]
    designs = [density_field(nelx, nely, "binary", s) for s in range(3)] + [rng.uniform(0.01, 1, (nely, nelx))]
    designs.append(designs[1].copy())  # a repeat: served from the kept factorisation
    forces = [cases[i % 3][1] for i in range(len(designs))]
    batch = FEModel(nelx, nely, fixed, solver=solver).compliance_batch(np.stack(designs), np.stack(forces))
    for d, f, got in zip(designs, forces, batch, strict=True):
        assert got == FEModel(nelx, nely, fixed, solver=solver).compliance(d, f)
        assert got == pytest.approx(reference_compliance(d, fixed, f, NU, PENAL, EMIN), rel=1e-6)


def test_batch_compliance_checks_shapes() -> None:
    from designgym.envs.structures.fem import FEModel

    model = FEModel(6, 4, np.arange(10))
    with pytest.raises(ValueError, match=r"densities must have shape \(batch, nely, nelx\)"):
        model.compliance_batch(np.ones((4, 6)), np.zeros((1, model.ndof)))
    with pytest.raises(ValueError, match="forces must have shape"):
        model.compliance_batch(np.ones((2, 4, 6)), np.zeros((1, model.ndof)))


def test_solvers_agree_at_64x32_and_the_choice_is_checked() -> None:
    from designgym.envs.structures.fem import FEModel, cholmod_available

    fixed, force = cantilever_case(64, 32, 0.5, 20.0)
    density = density_field(64, 32, "binary", 7)
    a = FEModel(64, 32, fixed, solver="cholmod").compliance(density, force)
    b = FEModel(64, 32, fixed, solver="superlu").compliance(density, force)
    assert a == pytest.approx(b, rel=1e-10)
    assert cholmod_available()  # a dependency: the default solver must be the fast one
    assert FEModel(4, 2, np.arange(6)).solver == "cholmod"
    with pytest.raises(ValueError, match="solver must be 'auto', 'cholmod' or 'superlu'"):
        FEModel(4, 2, np.arange(6), solver="umfpack")


@pytest.mark.parametrize("solver", SOLVERS)
def test_a_singular_matrix_is_a_clear_linalg_error(solver: str) -> None:
    from designgym.envs.structures.fem import FEModel

    fixed, force = cantilever_case(8, 4, 0.5, 0.0)
    density = np.ones((4, 8))
    density[1:3, 3:5] = 0.0  # with emin = 0 the node inside this void holds by nothing
    model = FEModel(8, 4, fixed, emin=0.0, solver=solver)
    with pytest.raises(np.linalg.LinAlgError, match="singular.*use emin > 0"):
        model.compliance(density, force)


def test_the_latest_two_designs_keep_their_factorisations(monkeypatch):
    from designgym.envs.structures.fem import FEModel

    fixed, force = cantilever_case(10, 5, 0.5, 0.0)
    model = FEModel(10, 5, fixed)
    made = []
    original = model._factorise
    monkeypatch.setattr(model, "_factorise", lambda *a: made.append(1) or original(*a))
    a, b, c = (density_field(10, 5, "binary", s) for s in range(3))
    for density in (a, b, a, b, a):  # the step design and the reset design of an env, in turn
        model.compliance(density, force)
    assert len(made) == 2
    model.compliance(c, force)  # evicts b, the least recently used
    model.compliance(a, force)
    assert len(made) == 3
    model.compliance(b, force)
    assert len(made) == 4
    assert model.compliance(b, force) == FEModel(10, 5, fixed).compliance(b, force)
    with pytest.raises(ValueError, match="keep_factorisations must be >= 1"):
        FEModel(10, 5, fixed, keep_factorisations=0)


def test_helper_processes_give_the_same_compliances_and_stop_on_close():
    from designgym.envs.structures.fem import FEModel

    nelx, nely = 16, 8
    fixed = cantilever_case(nelx, nely, 0.0, 0.0)[0]
    designs = [density_field(nelx, nely, "binary", s) for s in range(5)]
    designs += [designs[0]] * 3  # one design under several loads: factorised once
    cases = zip(np.linspace(0, 1, 8), np.linspace(-60, 60, 8), strict=True)
    forces = [cantilever_case(nelx, nely, y, a)[1] for y, a in cases]
    one = FEModel(nelx, nely, fixed).compliance_batch(np.stack(designs), np.stack(forces))
    model = FEModel(nelx, nely, fixed, processes=3)
    try:
        shared = model.compliance_batch(np.stack(designs), np.stack(forces))
        procs = list(model._helpers.procs)
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        np.testing.assert_array_equal(shared, one)
        # A second batch reuses the helpers.
        np.testing.assert_array_equal(model.compliance_batch(np.stack(designs), np.stack(forces)), one)
        assert model._helpers.procs == procs
    finally:
        model.close()
    assert all(p.poll() == 0 for p in procs)  # stopped, and cleanly


def test_a_lost_helper_costs_a_warning_not_the_results():
    from designgym.envs.structures.fem import FEModel

    fixed, force = cantilever_case(12, 6, 0.5, 0.0)
    designs = np.stack([density_field(12, 6, "binary", s) for s in range(4)])
    expected = FEModel(12, 6, fixed).compliance_batch(designs, np.stack([force] * 4))
    model = FEModel(12, 6, fixed, processes=2)
    try:
        model.compliance_batch(designs * 0.9 + 0.1, np.stack([force] * 4))
        model._helpers.procs[0].kill()
        model._helpers.procs[0].wait()
        with pytest.warns(UserWarning, match="FEM helper process stopped"):
            got = model.compliance_batch(designs, np.stack([force] * 4))
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(model.compliance_batch(designs[::-1], np.stack([force] * 4)), expected[::-1])
    finally:
        model.close()


def test_helpers_work_from_a_script_without_a_main_guard(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "no_guard.py"
    script.write_text(
        "import numpy as np\n"
        "from designgym.envs.structures.fem import FEModel\n"
        "m = FEModel(8, 4, np.arange(10), processes=2)\n"
        "f = np.zeros(m.ndof); f[-1] = -1.0\n"
        "d = np.ones((3, 4, 8)) * [[[1.0]], [[0.5]], [[0.8]]]\n"
        "print(m.compliance_batch(d, np.stack([f] * 3)).round(6).tolist())\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(eval(result.stdout)) == 3


def test_a_helper_error_is_raised_in_the_caller():
    from designgym.envs.structures.fem import FEModel

    fixed, force = cantilever_case(8, 4, 0.5, 0.0)
    bad = np.ones((4, 8))
    bad[1:3, 3:5] = 0.0  # singular with emin = 0
    model = FEModel(8, 4, fixed, emin=0.0, processes=2)
    try:
        with pytest.raises(np.linalg.LinAlgError, match="singular"):
            model.compliance_batch(np.stack([np.ones((4, 8)), bad, bad * 0 + 1, bad]), np.stack([force] * 4))
        assert model.compliance_batch(np.ones((2, 4, 8)), np.stack([force] * 2)).shape == (2,)  # still usable
    finally:
        model.close()
