"""Finite-element compliance of 2D density fields in the classical topology-optimisation setting.

Unit-square four-node bilinear (Q4) plane-stress elements of thickness 1; modified SIMP stiffness
``E_e = Emin + x_e**penal * (E0 - Emin)`` with ``E0 = 1``. Conventions shared by everything in
``designgym.envs.structures``:

- a density field has shape ``(nely, nelx)``, row 0 at the top;
- node at column ``i`` (x to the right) and row ``j`` (counted from the top) has id
  ``n = i * (nely + 1) + j``; its DOFs are ``2n`` (x, positive right) and ``2n + 1`` (y, positive UP);
- element at row ``r``, column ``c`` is number ``c * nely + r`` (column by column).

Everything that depends only on the mesh and the supports (element DOF maps, the sparsity pattern
of the reduced stiffness matrix and where each element entry lands in it) is computed once per
:class:`FEModel`; an evaluation is then one weighted ``bincount`` and one sparse factorisation.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

E0 = 1.0


def element_stiffness(nu: float = 0.3) -> np.ndarray:
    """Stiffness of a unit-square Q4 plane-stress element with ``E = 1`` (closed form).

    Local DOF order: lower-left, lower-right, upper-right, upper-left node, each ``(x, y)``.
    """
    k = np.array(
        [
            1 / 2 - nu / 6, 1 / 8 + nu / 8, -1 / 4 - nu / 12, -1 / 8 + 3 * nu / 8,
            -1 / 4 + nu / 12, -1 / 8 - nu / 8, nu / 6, 1 / 8 - 3 * nu / 8,
        ]
    )  # fmt: skip
    pattern = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7],
            [1, 0, 7, 6, 5, 4, 3, 2],
            [2, 7, 0, 5, 6, 3, 4, 1],
            [3, 6, 5, 0, 7, 2, 1, 4],
            [4, 5, 6, 7, 0, 1, 2, 3],
            [5, 4, 3, 2, 1, 0, 7, 6],
            [6, 3, 4, 1, 2, 7, 0, 5],
            [7, 2, 1, 4, 3, 6, 5, 0],
        ]
    )
    return k[pattern] / (1.0 - nu**2)


def element_dofs(nelx: int, nely: int) -> np.ndarray:
    """Global DOFs of every element, ``[nelx * nely, 8]``, in :func:`element_stiffness` order."""
    cols, rows = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
    upper_left = (cols * (nely + 1) + rows).ravel()  # element order: column by column
    upper_right = upper_left + nely + 1
    lower_left, lower_right = upper_left + 1, upper_right + 1
    nodes = np.stack([lower_left, lower_right, upper_right, upper_left], axis=1)
    return np.stack([2 * nodes, 2 * nodes + 1], axis=2).reshape(-1, 8)


def node_id(nely: int, col: int, row: int) -> int:
    """Id of the node at column ``col`` and row ``row`` (row 0 at the top)."""
    return col * (nely + 1) + row


class FEModel:
    """A mesh with its supports, ready to evaluate the compliance of many density fields.

    Args:
        nelx: elements along x (columns).
        nely: elements along y (rows).
        fixed_dofs: global DOFs held at zero.
        nu: Poisson's ratio.
        penal: SIMP penalty.
        emin: Young's modulus of void, which keeps the stiffness matrix non-singular.
    """

    def __init__(
        self, nelx: int, nely: int, fixed_dofs: np.ndarray, nu: float = 0.3, penal: float = 3.0, emin: float = 1e-9
    ) -> None:
        if nelx < 1 or nely < 1:
            raise ValueError(f"a mesh needs at least one element each way, got {nelx} x {nely}")
        self.nelx, self.nely = int(nelx), int(nely)
        self.ndof = 2 * (self.nelx + 1) * (self.nely + 1)
        self.nu, self.penal, self.emin = float(nu), float(penal), float(emin)
        fixed = np.unique(np.asarray(fixed_dofs, dtype=np.int64))
        if fixed.size and (fixed.min() < 0 or fixed.max() >= self.ndof):
            raise ValueError(f"fixed DOFs must lie in [0, {self.ndof}), got {fixed.min()}..{fixed.max()}")
        if fixed.size < 3:
            raise ValueError("at least three fixed DOFs are needed to stop rigid-body motion")
        self.fixed = fixed
        self.free = np.setdiff1d(np.arange(self.ndof), fixed)
        self.ke = element_stiffness(self.nu)
        self.edofs = element_dofs(self.nelx, self.nely)

        # Reduced numbering: free DOFs 0..nfree-1, fixed DOFs -1.
        reduced = np.full(self.ndof, -1, dtype=np.int64)
        reduced[self.free] = np.arange(self.free.size)
        r_edofs = reduced[self.edofs]
        rows = np.repeat(r_edofs, 8, axis=1).ravel()
        cols = np.tile(r_edofs, (1, 8)).ravel()
        keep = (rows >= 0) & (cols >= 0)
        self._keep = keep
        nfree = self.free.size
        # Sort the kept entries into CSC order once; each evaluation only sums values into slots.
        key = cols[keep] * nfree + rows[keep]
        unique_keys, self._slot = np.unique(key, return_inverse=True)
        self._indices = (unique_keys % nfree).astype(np.int32)
        self._indptr = np.searchsorted(unique_keys // nfree, np.arange(nfree + 1)).astype(np.int32)
        self._nnz = unique_keys.size
        self._ke_flat = self.ke.ravel()
        self._factor: tuple[np.ndarray, object] | None = None

    # -- public ----------------------------------------------------------------------------------

    def stiffness_moduli(self, density: np.ndarray) -> np.ndarray:
        """Young's modulus per element in element order, from a ``(nely, nelx)`` density field."""
        x = self._element_order(density)
        return self.emin + x**self.penal * (E0 - self.emin)

    def displacements(self, density: np.ndarray, force: np.ndarray) -> np.ndarray:
        """Solve ``K u = f``; returns the full DOF vector with zeros on the fixed DOFs."""
        force = self._check_force(force)
        moduli = self.stiffness_moduli(density)
        # The factorisation of the last design is kept: the same design under another load (an
        # episode's start design under a new load case, a reference under every load) is one
        # forward and back substitution instead of a factorisation.
        if self._factor is None or not np.array_equal(moduli, self._factor[0]):
            values = (moduli[:, None] * self._ke_flat[None, :]).ravel()[self._keep]
            data = np.bincount(self._slot, weights=values, minlength=self._nnz)
            k = sp.csc_matrix((data, self._indices, self._indptr), shape=(self.free.size,) * 2)
            self._factor = (moduli, splu(k, permc_spec="MMD_AT_PLUS_A"))
        u = np.zeros(self.ndof)
        u[self.free] = self._factor[1].solve(force[self.free])
        return u

    def compliance(self, density: np.ndarray, force: np.ndarray) -> float:
        """``f^T u``: the work of the load, low for stiff structures."""
        force = self._check_force(force)
        return float(force @ self.displacements(density, force))

    def compliance_and_sensitivity(self, density: np.ndarray, force: np.ndarray) -> tuple[float, np.ndarray]:
        """Compliance and its derivative with respect to each element's density, shaped like ``density``."""
        force = self._check_force(force)
        u = self.displacements(density, force)
        ue = u[self.edofs]
        strain_energy = np.einsum("ei,ij,ej->e", ue, self.ke, ue)
        x = self._element_order(density)
        dc = -self.penal * x ** (self.penal - 1) * (E0 - self.emin) * strain_energy
        return float(force @ u), dc.reshape(self.nelx, self.nely).T.copy()

    # -- helpers ---------------------------------------------------------------------------------

    def _element_order(self, density: np.ndarray) -> np.ndarray:
        density = np.asarray(density, dtype=np.float64)
        if density.shape != (self.nely, self.nelx):
            raise ValueError(f"density must have shape (nely, nelx) = {(self.nely, self.nelx)}, got {density.shape}")
        return density.T.ravel()  # column by column

    def _check_force(self, force: np.ndarray) -> np.ndarray:
        force = np.asarray(force, dtype=np.float64)
        if force.shape != (self.ndof,):
            raise ValueError(f"force must be a vector of {self.ndof} DOF values, got shape {force.shape}")
        return force
