"""SIMP topology optimisation: density filter and optimality-criteria updates (the classical 88-line scheme).

This is the reference optimizer structural problems compare agents with, and the source of the
training designs of their generators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from designgym.envs.structures.am_filter import AMFilter
from designgym.envs.structures.fem import FEModel


def density_filter(nelx: int, nely: int, rmin: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Linear hat filter of radius ``rmin`` on element centres: ``(H, row sums of H)``, element order."""
    if rmin <= 0:
        raise ValueError(f"filter radius rmin must be > 0, got {rmin}")
    reach = int(np.ceil(rmin)) - 1
    cols, rows = np.meshgrid(np.arange(nelx), np.arange(nely), indexing="ij")
    cols, rows = cols.ravel(), rows.ravel()  # element e = col * nely + row
    i_all, j_all, w_all = [], [], []
    for dc in range(-reach, reach + 1):
        for dr in range(-reach, reach + 1):
            weight = rmin - np.hypot(dc, dr)
            if weight <= 0:
                continue
            c2, r2 = cols + dc, rows + dr
            inside = (c2 >= 0) & (c2 < nelx) & (r2 >= 0) & (r2 < nely)
            i_all.append((cols * nely + rows)[inside])
            j_all.append((c2 * nely + r2)[inside])
            w_all.append(np.full(int(inside.sum()), weight))
    n = nelx * nely
    h = sp.csr_matrix((np.concatenate(w_all), (np.concatenate(i_all), np.concatenate(j_all))), shape=(n, n))
    return h, np.asarray(h.sum(axis=1)).ravel()


@dataclass
class SimpResult:
    """A finished SIMP run.

    Attributes:
        density: the physical (filtered) density field, ``(nely, nelx)``, row 0 at the top.
        compliance: compliance of ``density``.
        iterations: optimality-criteria updates made.
        converged: whether the largest density change fell below the tolerance.
        history: compliance after each iteration.
    """

    density: np.ndarray
    compliance: float
    iterations: int
    converged: bool
    history: list[float] = field(default_factory=list)


def simp(
    model: FEModel,
    force: np.ndarray,
    volfrac: float,
    rmin: float = 1.5,
    max_iter: int = 200,
    tol: float = 0.01,
    move: float = 0.2,
    progress: bool = False,
    callback: Callable[[int, np.ndarray, float], None] | None = None,
    start: np.ndarray | None = None,
    build_direction: str | None = None,
) -> SimpResult:
    """Minimise compliance at volume fraction ``volfrac`` with a density filter and OC updates.

    With ``build_direction`` the filtered field is a blueprint that Langelaar's AM filter
    (:class:`~designgym.envs.structures.am_filter.AMFilter`) turns into what a printer deposits
    without supports; compliance and volume are those of the printed field, which is returned.

    Args:
        model: the mesh and supports (its ``penal`` is the SIMP penalty).
        force: the load vector.
        volfrac: target volume fraction in ``(0, 1]``.
        rmin: density-filter radius in elements.
        max_iter: most iterations.
        tol: stop when no design variable changes by more than this.
        move: largest change of a design variable per iteration.
        progress: show a progress bar.
        callback: called as ``callback(iteration, physical_density, compliance)`` after each update.
        start: the design variables to start from, ``(nely, nelx)`` in ``[0, 1]`` (a design to
            polish); the uniform field at ``volfrac`` by default. They are filtered like every
            later iterate.
        build_direction: ``up``, ``left``, ``down`` or ``right`` to print without supports
            (the baseplate under the bottom row for ``up``); ``None``: no printing limit.
    """
    if not 0 < volfrac <= 1:
        raise ValueError(f"volfrac must be in (0, 1], got {volfrac}")
    nelx, nely = model.nelx, model.nely
    h, hs = density_filter(nelx, nely, rmin)
    if start is None:
        x = np.full(nelx * nely, float(volfrac))  # design variables, element order
        x_phys = x.copy()
    else:
        start = np.asarray(start, dtype=np.float64)
        if start.shape != (nely, nelx) or not np.all(np.isfinite(start)) or start.min() < 0 or start.max() > 1:
            raise ValueError(f"start must be a ({nely}, {nelx}) field of values in [0, 1], got shape {start.shape}")
        x = start.T.ravel().copy()
        x_phys = (h @ x) / hs
    am = None if build_direction is None else AMFilter((nely, nelx), build_direction)
    # Printing wants a black-and-white blueprint: a grey printed field loses most of its stiffness when
    # it is made 0/1 (a 40 % grey AM optimum kept 1/40 of it). So behind the AM filter the filtered field
    # passes a Heaviside projection whose sharpness doubles every PROJECTION_STEP iterations.
    beta = 1.0 if am is not None else None

    def physical(x: np.ndarray) -> np.ndarray:
        """The field the physics sees: filtered, and projected and printed when there is a build direction."""
        blueprint = _grid((h @ x) / hs, nelx, nely)
        return blueprint if am is None else am.forward(_project(blueprint, beta))

    def volume(trial: np.ndarray) -> float:
        """The volume the constraint holds: of the filtered field, or of what prints from it."""
        return float(((h @ trial) / hs).mean()) if am is None else float(physical(trial).mean())

    history: list[float] = []
    converged = False
    iteration = 0
    bar = tqdm(range(max_iter), desc="SIMP", unit="it", disable=not progress, leave=False)
    field_now = _grid(x_phys, nelx, nely) if am is None else physical(x)
    for iteration in bar:  # noqa: B007 (the count is reported after the loop)
        c, dc_grid = model.compliance_and_sensitivity(field_now, force)
        history.append(c)
        dv_grid = np.ones_like(dc_grid)
        if am is not None:  # chain rule through the printer and the projection, on this iterate's field
            slope = _project_slope(_grid((h @ x) / hs, nelx, nely), beta)
            dc_grid, dv_grid = am.backward(dc_grid) * slope, am.backward(dv_grid) * slope
        dc = h.T @ (dc_grid.T.ravel() / hs)  # chain rule through the density filter
        dv = h.T @ (dv_grid.T.ravel() / hs)
        x_new = _oc_update(x, dc, dv, volfrac, move, volume)
        change = float(np.max(np.abs(x_new - x)))
        x = x_new
        sharpened = beta is not None and beta < PROJECTION_BETA_MAX and (iteration + 1) % PROJECTION_STEP == 0
        if sharpened:
            beta *= 2.0
        field_now = physical(x)
        if callback is not None:
            callback(iteration + 1, field_now, c)
        bar.set_postfix(compliance=f"{c:.4g}", change=f"{change:.3f}")
        if change < tol and (beta is None or beta >= PROJECTION_BETA_MAX) and not sharpened:
            converged = True
            break
    return SimpResult(field_now, model.compliance(field_now, force), iteration + 1, converged, history)


#: The projection behind the AM filter: threshold, largest sharpness, iterations between doublings.
PROJECTION_ETA, PROJECTION_BETA_MAX, PROJECTION_STEP = 0.5, 32.0, 40


def _project(field: np.ndarray, beta: float) -> np.ndarray:
    """Smoothed Heaviside projection about ``PROJECTION_ETA`` with sharpness ``beta`` (0 stays 0, 1 stays 1)."""
    eta = PROJECTION_ETA
    return (np.tanh(beta * eta) + np.tanh(beta * (field - eta))) / (np.tanh(beta * eta) + np.tanh(beta * (1 - eta)))


def _project_slope(field: np.ndarray, beta: float) -> np.ndarray:
    eta = PROJECTION_ETA
    return beta * (1 - np.tanh(beta * (field - eta)) ** 2) / (np.tanh(beta * eta) + np.tanh(beta * (1 - eta)))


def _oc_update(
    x: np.ndarray, dc: np.ndarray, dv: np.ndarray, volfrac: float, move: float, volume: Callable[[np.ndarray], float]
) -> np.ndarray:
    """Optimality-criteria step; the Lagrange multiplier of the volume constraint by bisection."""
    low, high = 0.0, 1e9
    # Behind the AM filter an element that cannot print moves neither compliance nor volume (dv 0).
    ratio = np.sqrt(np.maximum(-dc, 0.0) / np.maximum(dv, 1e-12))
    while high > 1e-30 and (high - low) / (high + low) > 1e-3:  # high shrinks to 0 when no step adds volume
        mid = 0.5 * (low + high)
        x_new = np.clip(x * ratio / np.sqrt(mid), np.maximum(0.0, x - move), np.minimum(1.0, x + move))
        if volume(x_new) > volfrac:
            low = mid
        else:
            high = mid
    return x_new


def _grid(x: np.ndarray, nelx: int, nely: int) -> np.ndarray:
    """Element-order vector to a ``(nely, nelx)`` field."""
    return x.reshape(nelx, nely).T
