"""A slow, textbook reference for 2D linear-elastic compliance, independent of designgym's fast FEM.

Unit-square bilinear (Q4) plane-stress elements of thickness 1 on a nelx x nely grid, modified SIMP moduli
E_e = emin + x_e**penal * (1 - emin). Global convention (shared with the fast solver): the node at column i
(x to the right) and row j (counted from the top) has id n = i*(nely+1) + j, with DOFs 2n (x, positive right)
and 2n+1 (y, positive UP). density[r, c] is the element at row r (row 0 at the top), column c.
"""

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

# Local node order of the reference element: counter-clockwise from the bottom-left corner, in a frame whose
# y axis points up (the same way as the global y DOFs), as natural coordinates (xi, eta) in [-1, 1]^2.
LOCAL_NODES = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def plane_stress_matrix(e_modulus: float, nu: float) -> np.ndarray:
    """Constitutive matrix D with stress = D @ (eps_xx, eps_yy, gamma_xy)."""
    return e_modulus / (1.0 - nu**2) * np.array([[1.0, nu, 0.0], [nu, 1.0, 0.0], [0.0, 0.0, (1.0 - nu) / 2.0]])


def strain_displacement(xi: float, eta: float) -> tuple[np.ndarray, float]:
    """B matrix (3x8) of the unit square at natural point (xi, eta), and the Jacobian determinant."""
    # N_a = (1 + xi*xi_a)(1 + eta*eta_a)/4; derivatives in natural coordinates.
    dn_dxi = LOCAL_NODES[:, 0] * (1.0 + eta * LOCAL_NODES[:, 1]) / 4.0
    dn_deta = LOCAL_NODES[:, 1] * (1.0 + xi * LOCAL_NODES[:, 0]) / 4.0
    # Physical corners of the unit square in the same order; the Jacobian is computed rather than assumed.
    corners = (LOCAL_NODES + 1.0) / 2.0
    jac = np.array(
        [[dn_dxi @ corners[:, 0], dn_dxi @ corners[:, 1]], [dn_deta @ corners[:, 0], dn_deta @ corners[:, 1]]]
    )
    det = float(np.linalg.det(jac))
    dn_dx, dn_dy = np.linalg.solve(jac, np.vstack([dn_dxi, dn_deta]))
    b = np.zeros((3, 8))
    b[0, 0::2] = dn_dx
    b[1, 1::2] = dn_dy
    b[2, 0::2] = dn_dy
    b[2, 1::2] = dn_dx
    return b, det


def element_stiffness(nu: float) -> np.ndarray:
    """8x8 stiffness of a unit square with E = 1 in the local order (u1, v1, ..., u4, v4), by 2x2 Gauss."""
    d = plane_stress_matrix(1.0, nu)
    g = 1.0 / np.sqrt(3.0)  # 2-point Gauss abscissae, weights 1
    ke = np.zeros((8, 8))
    for xi in (-g, g):
        for eta in (-g, g):
            b, det = strain_displacement(xi, eta)
            ke += b.T @ d @ b * det
    return ke


def node_number(nely: int, col: int, row: int) -> int:
    """Global node id of the node at column col and row row (rows counted from the top)."""
    return col * (nely + 1) + row


def element_global_dofs(nely: int, r: int, c: int) -> np.ndarray:
    """Global DOFs of element (r, c) in the reference element's local order."""
    # Local nodes bottom-left, bottom-right, top-right, top-left; "bottom" is row r + 1 because rows grow downward.
    nodes = [
        node_number(nely, c, r + 1),
        node_number(nely, c + 1, r + 1),
        node_number(nely, c + 1, r),
        node_number(nely, c, r),
    ]
    # Local y points up like the global y DOF, so no sign change is needed.
    return np.array([dof for n in nodes for dof in (2 * n, 2 * n + 1)])


def assemble(density: np.ndarray, nu: float = 0.3, penal: float = 3.0, emin: float = 1e-9) -> scipy.sparse.csc_matrix:
    """Global stiffness matrix, assembled entry by entry with Python loops."""
    nely, nelx = density.shape
    ndof = 2 * (nelx + 1) * (nely + 1)
    ke = element_stiffness(nu)
    k = scipy.sparse.lil_matrix((ndof, ndof))
    for r in range(nely):
        for c in range(nelx):
            e_mod = emin + float(density[r, c]) ** penal * (1.0 - emin)
            dofs = element_global_dofs(nely, r, c)
            for a in range(8):
                for b in range(8):
                    k[dofs[a], dofs[b]] += e_mod * ke[a, b]
    return k.tocsc()


def reference_displacements(
    density: np.ndarray,
    fixed_dofs: np.ndarray,
    force: np.ndarray,
    nu: float = 0.3,
    penal: float = 3.0,
    emin: float = 1e-9,
) -> np.ndarray:
    """Full displacement vector (zeros on the fixed DOFs) solving K u = f on the free DOFs."""
    density = np.asarray(density, dtype=float)
    force = np.asarray(force, dtype=float)
    k = assemble(density, nu, penal, emin)
    ndof = k.shape[0]
    if force.shape != (ndof,):
        raise ValueError(f"force has shape {force.shape}, expected ({ndof},)")
    free = np.setdiff1d(np.arange(ndof), np.asarray(fixed_dofs, dtype=int))
    u = np.zeros(ndof)
    u[free] = scipy.sparse.linalg.spsolve(k[free][:, free].tocsc(), force[free])
    return u


def reference_compliance(
    density: np.ndarray,
    fixed_dofs: np.ndarray,
    force: np.ndarray,
    nu: float = 0.3,
    penal: float = 3.0,
    emin: float = 1e-9,
) -> float:
    """Compliance f^T u of the density field under the given supports and load."""
    u = reference_displacements(density, fixed_dofs, force, nu, penal, emin)
    return float(np.asarray(force, dtype=float) @ u)


def cantilever_case(nelx: int, nely: int, load_y: float, load_angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Left edge clamped; unit point load on the right edge at relative height load_y (0 top, 1 bottom).

    The load is (sin a, -cos a) in (x right, y up): a = 0 points straight down, positive a turns toward +x.
    """
    ndof = 2 * (nelx + 1) * (nely + 1)
    left = [node_number(nely, 0, j) for j in range(nely + 1)]
    fixed = np.array(sorted(dof for n in left for dof in (2 * n, 2 * n + 1)), dtype=int)
    load_node = node_number(nely, nelx, int(round(load_y * nely)))
    a = np.deg2rad(load_angle_deg)
    force = np.zeros(ndof)
    force[2 * load_node] = np.sin(a)
    force[2 * load_node + 1] = -np.cos(a)
    return fixed, force


def mbb_case(nelx: int, nely: int) -> tuple[np.ndarray, np.ndarray]:
    """Half MBB beam: x fixed along the left edge, y fixed at the bottom-right node, unit load down at top-left."""
    ndof = 2 * (nelx + 1) * (nely + 1)
    symmetry = [2 * node_number(nely, 0, j) for j in range(nely + 1)]
    roller = 2 * node_number(nely, nelx, nely) + 1
    fixed = np.array(sorted(symmetry + [roller]), dtype=int)
    force = np.zeros(ndof)
    force[2 * node_number(nely, 0, 0) + 1] = -1.0
    return fixed, force
