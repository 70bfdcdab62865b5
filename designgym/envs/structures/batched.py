"""The structures judged as batched torch work on one device: FE solve, repair and rules.

:class:`TorchFE` gives the compliance of a batch of density fields on one mesh with an exact
direct solve. With the mesh's DOFs numbered column of nodes by column of nodes (as
:mod:`designgym.envs.structures.fem` numbers them), a Q4 element joins two neighbouring node
columns only, so the stiffness matrix is block tridiagonal with ``m = 2 (nely + 1)`` square blocks:
``K = tridiag(C_{i-1}^T, D_i, C_i)``. Its block Cholesky factorisation runs over the ``nelx + 1``
node columns one after the other, each step a batched dense ``m x m`` Cholesky, triangular solve
and product for every design at once::

    L_0 L_0^T = D_0,   W_i = L_i^{-1} C_i,   L_{i+1} L_{i+1}^T = D_{i+1} - W_i^T W_i

and the compliance ``f^T K^{-1} f = |L^{-1} f|^2`` needs only the forward substitution
``y_{i+1} = L_{i+1}^{-1} (f_{i+1} - W_i^T y_i)``, so nothing but the latest block is kept. It is the
same arithmetic as a sparse Cholesky in this ordering (float64 throughout) and agrees with CHOLMOD
to about 1e-10 relative on designs that carry their load (``tests/test_batched_structures.py`` asks
for 1e-6); where the load hangs on void, compliance measures the 1e-9 void modulus and any two
direct solvers differ by up to 1e-4 (CHOLMOD and SuperLU as well), which the floored gain hides. Supported DOFs keep
their rows and columns as rows of the identity with a zero load, which leaves the free DOFs'
solution unchanged.

:class:`TorchStructureJudge` does for a batch of designs what
:class:`~designgym.envs.structures.problems.PointLoadStructure` does for one: the repair (the
densest cells at the volume budget joined to the supports, as
:func:`~designgym.envs.manufacturing.keep_budget_joined` picks them, ties to the lower flat index)
and the judgement (volume, floating material, load path, log stiffness gain), with the
connectivity as a flood fill of 4-neighbour dilations. On the CPU the repaired designs and the
violations equal the numpy path's exactly and the objectives agree to 1e-6 relative; on a GPU a
batch of designs never leaves the device between the generator and the numbers of its judgement.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from designgym.envs.structures.fem import E0, FEModel


class TorchFE:
    """The compliance of batches of density fields on one :class:`FEModel`'s mesh and supports.

    Args:
        model: the mesh, supports, Poisson's ratio, SIMP penalty and void modulus.
        device: where the work runs (``"cpu"``, ``"cuda"``...).
        batch_chunk: designs solved together at most; a larger batch is solved in chunks of this
            size (the blocks of one design take ``16 m^2 (nelx + 1)`` bytes: 4.5 MB at 64 x 32).
            Default: 2,048 on a GPU, where the steps of the elimination are launches that a larger
            batch shares, and 64 on the CPU, where it only costs memory.
    """

    def __init__(self, model: FEModel, device: str | torch.device = "cpu", batch_chunk: int | None = None) -> None:
        self.model = model
        self.device = torch.device(device)
        if batch_chunk is None:
            batch_chunk = 2048 if self.device.type == "cuda" else 64
        if batch_chunk < 1:
            raise ValueError(f"batch_chunk must be >= 1, got {batch_chunk}")
        self.batch_chunk = int(batch_chunk)
        self.nelx, self.nely = model.nelx, model.nely
        self.m = 2 * (self.nely + 1)  # DOFs per node column
        self.columns = self.nelx + 1
        m, n = self.m, self.columns
        # Every element-matrix entry lands in a diagonal block D_c (both DOFs in node column c) or
        # in the upper off-diagonal block C_c (columns c and c + 1); the lower ones are C's transpose.
        dof_a = np.repeat(model.edofs, 8, axis=1).ravel()
        dof_b = np.tile(model.edofs, (1, 8)).ravel()
        element = np.repeat(np.arange(model.edofs.shape[0]), 64)
        value = np.tile(model.ke.ravel(), model.edofs.shape[0])
        col_a, loc_a = np.divmod(dof_a, m)
        col_b, loc_b = np.divmod(dof_b, m)
        diagonal, upper = col_a == col_b, col_b == col_a + 1
        target = np.where(diagonal, (col_a * m + loc_a) * m + loc_b, n * m * m + (col_a * m + loc_a) * m + loc_b)
        keep = diagonal | upper
        self._size = n * m * m + (n - 1) * m * m
        with warnings.catch_warnings():  # torch calls its sparse CSR support a beta
            warnings.simplefilter("ignore", UserWarning)
            gather = torch.sparse_coo_tensor(
                torch.as_tensor(np.stack([target[keep], element[keep]])), torch.as_tensor(value[keep]),
                (self._size, model.edofs.shape[0]), dtype=torch.float64, check_invariants=True,
            ).coalesce()
            self._gather = gather.to_sparse_csr().to(self.device)
        free = np.ones(model.ndof, dtype=bool)
        free[model.fixed] = False
        free_cols = torch.as_tensor(free.reshape(n, m), device=self.device)
        self._keep_d = (free_cols[:, :, None] & free_cols[:, None, :]).to(torch.float64)
        self._keep_c = (free_cols[:-1, :, None] & free_cols[1:, None, :]).to(torch.float64)
        self._fixed_eye = torch.diag_embed((~free_cols).to(torch.float64))
        self._free = torch.as_tensor(free, device=self.device)

    def moduli(self, densities: torch.Tensor) -> torch.Tensor:
        """Young's modulus per element ``[B, elements]`` in the model's element order (column by column)."""
        x = densities.to(self.device, torch.float64).transpose(1, 2).reshape(densities.shape[0], -1)
        return self.model.emin + x**self.model.penal * (E0 - self.model.emin)

    def compliance(self, densities: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        """``f^T u`` of each density field ``[B, nely, nelx]`` under its force ``[B, ndof]``; NaN where
        the stiffness matrix is not positive definite (the numpy path's ``LinAlgError``)."""
        if densities.ndim != 3 or tuple(densities.shape[1:]) != (self.nely, self.nelx):
            raise ValueError(f"densities must have shape (batch, nely, nelx) = (B, {self.nely}, {self.nelx}), "
                             f"got {tuple(densities.shape)}")
        if tuple(forces.shape) != (densities.shape[0], self.model.ndof):
            raise ValueError(f"forces must have shape (batch, ndof) = ({densities.shape[0]}, {self.model.ndof}), "
                             f"got {tuple(forces.shape)}")
        forces = forces.to(self.device, torch.float64)
        parts = [self._compliance(densities[s : s + self.batch_chunk], forces[s : s + self.batch_chunk])
                 for s in range(0, densities.shape[0], self.batch_chunk)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=self.device)

    def _compliance(self, densities: torch.Tensor, forces: torch.Tensor) -> torch.Tensor:
        b, m, n = densities.shape[0], self.m, self.columns
        entries = (self._gather @ self.moduli(densities).T.contiguous()).T  # [B, blocks' entries]
        d = entries[:, : n * m * m].reshape(b, n, m, m) * self._keep_d + self._fixed_eye
        c = entries[:, n * m * m :].reshape(b, n - 1, m, m) * self._keep_c
        f = (forces * self._free).reshape(b, n, m)
        total = torch.zeros(b, dtype=torch.float64, device=self.device)
        failed = torch.zeros(b, dtype=torch.bool, device=self.device)
        wy = None  # [W_i | y_i] = L_i^{-1} [C_i | rhs_i]: one triangular solve per column
        for i in range(n):
            s, rhs = d[:, i], f[:, i, :, None]
            if i:
                update = wy[:, :, :m].transpose(1, 2) @ wy  # W^T [W | y]: one product per column
                s = s - update[:, :, :m]
                rhs = rhs - update[:, :, m:]
            lower, info = torch.linalg.cholesky_ex(s)
            failed |= info != 0
            right = torch.cat([c[:, i], rhs], dim=2) if i < n - 1 else rhs
            wy = torch.linalg.solve_triangular(lower, right, upper=False)
            total += (wy[:, :, -1] ** 2).sum(dim=1)
        return torch.where(failed | ~torch.isfinite(total), torch.full_like(total, math.nan), total)


def _neighbours(mask: torch.Tensor) -> torch.Tensor:
    """Cells with a 4-neighbour in ``mask`` (``[B, rows, cols]`` bool), the cell itself included."""
    grown = mask.clone()
    grown[:, 1:, :] |= mask[:, :-1, :]
    grown[:, :-1, :] |= mask[:, 1:, :]
    grown[:, :, 1:] |= mask[:, :, :-1]
    grown[:, :, :-1] |= mask[:, :, 1:]
    return grown


def joined(mask: torch.Tensor, seeds: torch.Tensor, check_every: int = 16) -> torch.Tensor:
    """Cells of ``mask`` joined through ``mask`` (4-neighbours) to a ``seeds`` cell of ``mask``:
    the pieces that :func:`scipy.ndimage.label` would find touching the seeds."""
    reached = mask & seeds
    while True:
        for _ in range(check_every):  # a device sync only every few steps
            reached = _neighbours(reached) & mask
        grown = _neighbours(reached) & mask
        if torch.equal(grown, reached):
            return reached
        reached = grown


class TorchStructureJudge:
    """Repair and judge batches of designs of a point-load structure as torch work on one device.

    Made by :meth:`~designgym.envs.structures.problems.PointLoadStructure.torch_judge`; the problem
    keeps the conditions' meaning (where the load acts, the uniform reference) and this object the
    batched arithmetic.
    """

    def __init__(self, problem: Any, device: str | torch.device = "cpu") -> None:
        self.problem = problem
        self.device = torch.device(device)
        self.fe = TorchFE(problem.model, self.device)
        self.anchored = torch.as_tensor(problem._anchored_cells(), device=self.device)
        self._loaded: dict[int, torch.Tensor] = {}  # the loaded cells of each load node, on the device

    def loaded_cells(self, nodes: Sequence[int]) -> torch.Tensor:
        """``[B, rows, cols]`` masks of the cells that share each loaded node, stacked on the device."""
        for node in set(nodes) - set(self._loaded):
            self._loaded[node] = torch.as_tensor(self.problem.loaded_cells(node), device=self.device)
        return torch.stack([self._loaded[node] for node in nodes])

    def repair(self, densities: torch.Tensor, conditions: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """:meth:`PointLoadStructure.repair` of each density field, as ``float32`` 0/1 designs on the device."""
        x = densities.to(self.device, torch.float64)
        b, rows, cols = x.shape
        cells = torch.as_tensor([int(round(c["volfrac"] * rows * cols)) for c in conditions], device=self.device)
        flat = x.reshape(b, -1)
        order = torch.argsort(-flat, dim=1, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(flat.shape[1], device=self.device).expand(b, -1))
        anchored = self.anchored.expand(b, -1, -1)
        kept = joined((rank < cells[:, None]).reshape(b, rows, cols), anchored)
        missing = cells - kept.reshape(b, -1).sum(dim=1)
        while bool((missing > 0).any()):
            frontier = torch.where(kept.reshape(b, -1).any(dim=1)[:, None, None], _neighbours(kept) & ~kept, anchored)
            frontier = frontier.reshape(b, -1) & (missing > 0)[:, None]
            if not bool(frontier.any()):
                break
            # The ``missing`` frontier cells of lowest rank, per design.
            key = torch.where(frontier, rank, torch.full_like(rank, flat.shape[1]))
            by_rank = torch.argsort(key, dim=1)
            take = (torch.arange(flat.shape[1], device=self.device) < missing[:, None]) & torch.gather(frontier, 1,
                                                                                                     by_rank)
            chosen = torch.zeros_like(take).scatter_(1, by_rank, take)
            kept = kept | chosen.reshape(b, rows, cols)
            missing = missing - chosen.sum(dim=1)
        return kept.to(torch.float32)

    def evaluate(self, designs: torch.Tensor, conditions: Sequence[Mapping[str, Any]]) -> list[tuple[dict, dict]]:
        """``(objectives, violations)`` of each design, as ``PointLoadStructure._evaluate`` gives them."""
        problem = self.problem
        b = designs.shape[0]
        if b == 0:
            return []
        solid = designs.to(self.device) >= 0.5
        loads = [problem._load(c) for c in conditions]
        forces = torch.zeros(b, problem.model.ndof, dtype=torch.float64)
        nodes = torch.as_tensor([node for node, _ in loads])
        forces[torch.arange(b), 2 * nodes] = torch.as_tensor([f[0] for _, f in loads], dtype=torch.float64)
        forces[torch.arange(b), 2 * nodes + 1] = torch.as_tensor([f[1] for _, f in loads], dtype=torch.float64)
        compliance = self.fe.compliance(solid.to(torch.float64), forces.to(self.device))
        uniform = torch.as_tensor([problem._uniform_compliance(c) for c in conditions], dtype=torch.float64,
                                  device=self.device)
        solved = torch.isfinite(compliance) & (compliance > 0)
        compliance = torch.where(solved, compliance, uniform * math.exp(-problem.gain_floor))
        gain = torch.clamp(torch.log(uniform / compliance), min=problem.gain_floor)
        count = solid.reshape(b, -1).sum(dim=1)
        volume = count.to(torch.float64) / solid[0].numel()
        held = joined(solid, self.anchored.expand(b, -1, -1))
        floating = torch.where(count > 0, (count - held.reshape(b, -1).sum(dim=1)).to(torch.float64)
                               / count.clamp(min=1), torch.ones_like(volume))
        loaded = self.loaded_cells([node for node, _ in loads])
        reaches = (held & loaded).reshape(b, -1).any(dim=1)
        load_path = torch.where(solved & reaches, torch.zeros_like(volume), torch.ones_like(volume))
        volfrac = torch.as_tensor([c["volfrac"] for c in conditions], dtype=torch.float64, device=self.device)
        excess = torch.clamp(volume - volfrac - problem.volume_tolerance, min=0.0)
        numbers = torch.stack([gain, compliance, volume, excess, floating, load_path], dim=1).cpu().numpy()
        return [({"log_stiffness_gain": float(r[0]), "compliance": float(r[1]), "volume_fraction": float(r[2])},
                 {"volume_excess": float(r[3]), "floating_material": float(r[4]), "load_path": float(r[5])})
                for r in numbers]
