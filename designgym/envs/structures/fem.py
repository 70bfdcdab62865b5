"""Finite-element compliance of 2D density fields in the classical topology-optimisation setting.

Unit-square four-node bilinear (Q4) plane-stress elements of thickness 1; modified SIMP stiffness
``E_e = Emin + x_e**penal * (E0 - Emin)`` with ``E0 = 1``. Conventions shared by everything in
``designgym.envs.structures``:

- a density field has shape ``(nely, nelx)``, row 0 at the top;
- node at column ``i`` (x to the right) and row ``j`` (counted from the top) has id
  ``n = i * (nely + 1) + j``; its DOFs are ``2n`` (x, positive right) and ``2n + 1`` (y, positive UP);
- element at row ``r``, column ``c`` is number ``c * nely + r`` (column by column).

Everything that depends only on the mesh and the supports is computed once per :class:`FEModel`:
the element DOF maps, the sparsity pattern of the reduced stiffness matrix, a sparse matrix that
maps element moduli straight to the matrix entries, and (with CHOLMOD) the fill-reducing ordering
and symbolic factorisation, which every density field shares because void elements keep their
``Emin`` stiffness. An evaluation is then one sparse product (for a whole batch of fields at once)
and one numeric Cholesky factorisation per field.

Two sparse direct solvers are available: CHOLMOD's supernodal Cholesky (through ``cvxopt``, the
default) and SciPy's SuperLU (``solver="superlu"``, used when ``cvxopt`` is missing). They agree
to about 1e-12; CHOLMOD is five to ten times faster at 64 x 32 (``benchmarks/fem.py``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
import weakref
from typing import BinaryIO, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

E0 = 1.0

Solver = Literal["auto", "cholmod", "superlu"]

_SINGULAR = "the stiffness matrix is singular: some DOFs are held by no stiffness at all; use emin > 0"


def cholmod_available() -> bool:
    """Whether CHOLMOD can be used (it comes with the ``cvxopt`` package)."""
    try:
        import cvxopt.cholmod  # noqa: F401
    except ImportError:
        return False
    return True


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
        solver: ``"cholmod"``, ``"superlu"`` or ``"auto"`` (CHOLMOD when ``cvxopt`` is installed).
        keep_factorisations: how many of the latest designs keep their factorisation, so that the
            same design under another load is one forward and back substitution (an env's start
            design under each episode's new load case, next to the designs the agent makes).
        processes: processes that :meth:`compliance_batch` shares its factorisations among: this
            one and ``processes - 1`` helper processes, started on first use and stopped by
            :meth:`close` or at exit. The results are the same as with one process.
    """

    def __init__(
        self,
        nelx: int,
        nely: int,
        fixed_dofs: np.ndarray,
        nu: float = 0.3,
        penal: float = 3.0,
        emin: float = 1e-9,
        solver: Solver = "auto",
        keep_factorisations: int = 2,
        processes: int = 1,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        if keep_factorisations < 1:
            raise ValueError(f"keep_factorisations must be >= 1, got {keep_factorisations}")
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
        if solver not in ("auto", "cholmod", "superlu"):
            raise ValueError(f"solver must be 'auto', 'cholmod' or 'superlu', got {solver!r}")
        if solver == "cholmod" and not cholmod_available():
            raise ValueError("solver 'cholmod' needs the cvxopt package: pip install cvxopt, or use solver='superlu'")
        self.solver = "cholmod" if solver == "cholmod" or (solver == "auto" and cholmod_available()) else "superlu"
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
        nfree = self.free.size
        # The matrix entries are linear in the element moduli: entries = G @ moduli, with G
        # (entries x elements) holding the element-matrix values that land in each entry. The
        # entries are in CSC order of the full reduced matrix (SuperLU) or of its lower triangle
        # (CHOLMOD), so an evaluation sums nothing and sorts nothing.
        lower = rows >= cols
        mask = keep & lower if self.solver == "cholmod" else keep
        key = cols[mask] * nfree + rows[mask]
        unique_keys, slot = np.unique(key, return_inverse=True)
        element = np.repeat(np.arange(self.edofs.shape[0]), 64)[mask]
        ke_value = np.tile(self.ke.ravel(), self.edofs.shape[0])[mask]
        self._gather = sp.csr_matrix((ke_value, (slot, element)), shape=(unique_keys.size, self.edofs.shape[0]))
        self._indices = (unique_keys % nfree).astype(np.int32)
        self._indptr = np.searchsorted(unique_keys // nfree, np.arange(nfree + 1)).astype(np.int32)
        self._nnz = unique_keys.size
        self.keep_factorisations = int(keep_factorisations)
        self.processes = int(processes)
        self._helpers: _HelperPool | None = None
        self._init_args = (self.nelx, self.nely, fixed, self.nu, self.penal, self.emin, self.solver)
        self._kept: list[tuple[np.ndarray, object]] = []  # (element moduli, factorisation), latest last
        self._cholmod_matrix: object | None = None  # the cvxopt matrix whose values are replaced per design

    # -- public ----------------------------------------------------------------------------------

    def stiffness_moduli(self, density: np.ndarray) -> np.ndarray:
        """Young's modulus per element in element order, from a ``(nely, nelx)`` density field."""
        x = self._element_order(density)
        return self.emin + x**self.penal * (E0 - self.emin)

    def displacements(self, density: np.ndarray, force: np.ndarray) -> np.ndarray:
        """Solve ``K u = f``; returns the full DOF vector with zeros on the fixed DOFs."""
        force = self._check_force(force)
        factor = self._factor_for(self.stiffness_moduli(density))
        u = np.zeros(self.ndof)
        u[self.free] = self._solve(factor, force[self.free])
        return u

    def compliance_batch(self, densities: np.ndarray, forces: np.ndarray) -> np.ndarray:
        """Compliance of each of ``B`` density fields ``[B, nely, nelx]`` under its force ``[B, ndof]``.

        Equal to calling :meth:`compliance` on each pair (the symbolic factorisation is shared by
        all of them either way), with the moduli of the whole batch computed at once.
        """
        densities = np.asarray(densities, dtype=np.float64)
        forces = np.asarray(forces, dtype=np.float64)
        if densities.ndim != 3 or densities.shape[1:] != (self.nely, self.nelx):
            raise ValueError(
                f"densities must have shape (batch, nely, nelx) = (B, {self.nely}, {self.nelx}), got {densities.shape}"
            )
        if forces.shape != (densities.shape[0], self.ndof):
            raise ValueError(
                f"forces must have shape (batch, ndof) = ({densities.shape[0]}, {self.ndof}), got {forces.shape}"
            )
        moduli = self.emin + np.transpose(densities, (0, 2, 1)).reshape(densities.shape[0], -1) ** self.penal * (
            E0 - self.emin
        )
        out = np.empty(densities.shape[0])
        # Each distinct design is factorised once, however many loads it carries (a batch of resets
        # is often one start design under many load cases).
        groups: dict[bytes, list[int]] = {}
        for b in range(densities.shape[0]):
            groups.setdefault(moduli[b].tobytes(), []).append(b)
        local = list(groups.values())
        remote: list[list[int]] = []
        if self.processes > 1 and len(local) > 1:
            # Designs already factorised here stay here; the new ones are shared out evenly between
            # this process and the helpers, which work while this one does its part.
            is_kept = [self._kept_index(moduli[g[0]]) is not None for g in local]
            kept = [g for g, k in zip(local, is_kept, strict=True) if k]
            new = [g for g, k in zip(local, is_kept, strict=True) if not k]
            n_remote = len(new) * (self.processes - 1) // self.processes
            remote, local = new[:n_remote], kept + new[n_remote:]
            try:
                pending = self._helper_pool().submit(
                    [(moduli[g[0]], [_sparse(forces[b, self.free]) for b in g]) for g in remote]
                )
            except _HelperLost as exc:
                warnings.warn(f"{exc}; its designs are evaluated here and new helpers start next time", stacklevel=2)
                self.close()
                local, remote = local + remote, []
        try:
            for group in local:
                for b in group:
                    out[b] = self._compliance_of(moduli[group[0]], forces[b])
        finally:
            results = None
            if remote:  # collect every reply, even after an error here, so the pipes stay in step
                try:
                    results = pending.result()
                except _HelperLost as exc:
                    warnings.warn(f"{exc}; its designs are evaluated here and new helpers start next time",
                                  stacklevel=2)
                    self.close()
        if remote:
            if results is None:
                results = [[self._compliance_of(moduli[g[0]], forces[b]) for b in g] for g in remote]
            for group, values in zip(remote, results, strict=True):
                out[group] = values
        return out

    def _compliance_of(self, moduli: np.ndarray, force: np.ndarray) -> float:
        f_free = force[self.free]
        return float(f_free @ self._solve(self._factor_for(moduli), f_free))

    def close(self) -> None:
        """Stop the helper processes of :attr:`processes`, if any were started."""
        if self._helpers is not None:
            helpers, self._helpers = self._helpers, None
            helpers.close()

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

    def _kept_index(self, moduli: np.ndarray) -> int | None:
        for k, (kept_moduli, _) in enumerate(self._kept):
            if np.array_equal(kept_moduli, moduli):
                return k
        return None

    def _factor_for(self, moduli: np.ndarray) -> object:
        """The factorisation for these element moduli: a kept one, or a new one that evicts the oldest."""
        k = self._kept_index(moduli)
        if k is not None:
            self._kept.append(self._kept.pop(k))
            return self._kept[-1][1]
        recycled = self._kept.pop(0)[1] if len(self._kept) >= self.keep_factorisations else None
        factor = self._factorise(self._gather @ moduli, recycled)
        self._kept.append((moduli.copy(), factor))
        return factor

    def _factorise(self, entries: np.ndarray, recycled: object | None) -> object:
        """Factorise the reduced stiffness matrix with these CSC entries (reusing ``recycled``'s memory)."""
        if self.solver == "superlu":
            k = sp.csc_matrix((entries, self._indices, self._indptr), shape=(self.free.size,) * 2)
            try:
                return splu(k, permc_spec="MMD_AT_PLUS_A")
            except RuntimeError as exc:  # "Factor is exactly singular"
                raise np.linalg.LinAlgError(_SINGULAR) from exc
        from cvxopt import cholmod, matrix

        if self._cholmod_matrix is None:
            from cvxopt import spmatrix

            # The triplets are already in CSC order, so the values of the cvxopt matrix line up
            # with ``entries`` and are replaced in place for each design.
            cols = np.repeat(np.arange(self.free.size), np.diff(self._indptr))
            self._cholmod_matrix = spmatrix(
                matrix(entries),
                matrix(self._indices.astype(np.int64)),
                matrix(cols.astype(np.int64)),
                (self.free.size, self.free.size),
            )
        a = self._cholmod_matrix
        # The symbolic analysis (AMD ordering, supernodes) depends on the pattern only: it is done
        # once per kept slot, and a numeric factorisation overwrites the evicted design's factor.
        factor = recycled if recycled is not None else cholmod.symbolic(a, uplo="L")
        a.V = matrix(entries)
        try:
            cholmod.numeric(a, factor)
        except ArithmeticError as exc:  # not positive definite: only with emin = 0 and a void region
            raise np.linalg.LinAlgError(_SINGULAR) from exc
        return factor

    def _solve(self, factor: object, rhs: np.ndarray) -> np.ndarray:
        if self.solver == "superlu":
            return factor.solve(rhs)
        from cvxopt import cholmod, matrix

        b = matrix(np.ascontiguousarray(rhs, dtype=np.float64))
        cholmod.solve(factor, b)
        return np.asarray(b).ravel()

    def _helper_pool(self) -> _HelperPool:
        if self._helpers is None or self._helpers.size != self.processes - 1:
            self.close()
            self._helpers = _HelperPool(self.processes - 1, self._init_args)
            weakref.finalize(self, self._helpers.close)
        return self._helpers

    def __getstate__(self) -> dict:
        # cvxopt objects and helper processes do not pickle; a copy factorises afresh.
        state = dict(self.__dict__)
        state.update(_kept=[], _cholmod_matrix=None, _helpers=None)
        return state

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


def _sparse(vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nonzero = np.flatnonzero(vector)
    return nonzero, vector[nonzero]


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """A helper process's loop: factorise the designs it is sent and return their compliances."""
    nelx, nely, fixed, nu, penal, emin, solver = pickle.load(stdin)
    model = FEModel(nelx, nely, fixed, nu=nu, penal=penal, emin=emin, solver=solver)
    nfree = model.free.size
    while True:
        try:
            jobs = pickle.load(stdin)
        except EOFError:
            return
        try:
            results = []
            for moduli, loads in jobs:
                factor = model._factor_for(moduli)
                values = []
                for index, value in loads:
                    rhs = np.zeros(nfree)
                    rhs[index] = value
                    values.append(float(rhs @ model._solve(factor, rhs)))
                results.append(values)
            reply: tuple = ("ok", results)
        except Exception as exc:  # raised again in the caller
            reply = ("error", type(exc).__name__, str(exc))
        pickle.dump(reply, stdout)
        stdout.flush()


class _Pending:
    def __init__(self, pool: _HelperPool, sizes: list[int]) -> None:
        self.pool, self.sizes = pool, sizes

    def result(self) -> list[list[float]]:
        """Every helper's reply in job order; a helper's error is raised after all replies are read."""
        out: list[list[float]] = []
        error: Exception | None = None
        for proc, size in zip(self.pool.procs, self.sizes, strict=True):
            if size == 0:
                continue
            try:
                reply = pickle.load(proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                raise _HelperLost(f"an FEM helper process stopped (exit code {proc.poll()})") from exc
            if reply[0] == "error":
                kind = {"LinAlgError": np.linalg.LinAlgError, "ValueError": ValueError}.get(reply[1], RuntimeError)
                error = error or kind(reply[2])
            else:
                out.extend(reply[1])
        if error is not None:
            raise error
        return out


class _HelperLost(RuntimeError):
    pass


class _HelperPool:
    """Helper processes, each with its own FEModel, fed through pipes.

    Each runs this file as a script (``python fem.py``): it imports only numpy, scipy and cvxopt,
    starts in well under a second, and does not re-run the caller's main module, so a script
    without an ``if __name__ == "__main__"`` guard is safe.
    """

    def __init__(self, size: int, init_args: tuple) -> None:
        self.size = size
        self.procs: list[subprocess.Popen] = []
        for _ in range(size):
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)
            pickle.dump(init_args, proc.stdin)
            proc.stdin.flush()
            self.procs.append(proc)

    def submit(self, jobs: list) -> _Pending:
        # Contiguous chunks, so the results come back in the order of the jobs.
        bounds = np.linspace(0, len(jobs), self.size + 1).astype(int)
        chunks = [jobs[bounds[i] : bounds[i + 1]] for i in range(self.size)]
        for proc, chunk in zip(self.procs, chunks, strict=True):
            if chunk:
                try:
                    pickle.dump(chunk, proc.stdin)
                    proc.stdin.flush()
                except OSError as exc:
                    raise _HelperLost(f"an FEM helper process stopped (exit code {proc.poll()})") from exc
        return _Pending(self, [len(c) for c in chunks])

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.close()  # the helper sees the end of its input and exits
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs = []


if __name__ == "__main__":  # a helper process of _HelperPool
    import signal

    # Ctrl-C reaches the whole process group; the caller decides what stops, and a helper ends when
    # its input does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    _serve(sys.stdin.buffer, _stdout)
