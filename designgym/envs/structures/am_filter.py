"""Langelaar's additive-manufacturing filter: the densities a printer can deposit, layer by layer.

A blueprint density field ``x`` becomes a printed field ``xi``: an element on the baseplate prints as
drawn; any other prints at most as dense as the densest of the three elements under it in the layer
before (its 45-degree support cone). Smooth maximum and minimum make the filter differentiable, so
SIMP can optimise through it; with a hard maximum and minimum on a 0/1 design it is exactly the
overhang rule of :func:`~designgym.envs.printing.overhang_fraction`.

M. Langelaar, "An additive manufacturing filter for topology optimization of print-ready designs",
Structural and Multidisciplinary Optimization 55 (2017) 871-883, and its 2D setting (smooth maximum
``(sum xi**P)**(1/Q)`` with ``Q = P + log(3) / log(xi0)``, so that three supports all at ``xi0`` give
``xi0``; smooth minimum ``(a + b - sqrt((a - b)**2 + eps) + sqrt(eps)) / 2``).
"""

from __future__ import annotations

import math

import numpy as np

from designgym.envs.printing import BUILD_TURNS


class AMFilter:
    """The filter for one grid shape and build direction; :meth:`forward` then :meth:`backward`.

    Args:
        shape: ``(rows, cols)`` of the design, row 0 at the top.
        build_direction: ``up`` (baseplate under the bottom row), ``left``, ``down`` or ``right``.
        p: exponent of the smooth maximum (larger: closer to the hard maximum).
        eps: smoothing of the minimum.
        xi0: the density at which the smooth maximum of three equal supports is exact.
    """

    def __init__(self, shape: tuple[int, int], build_direction: str = "up", p: float = 40.0, eps: float = 1e-4,
                 xi0: float = 0.5) -> None:
        if build_direction not in BUILD_TURNS:
            raise ValueError(f"build_direction must be one of {', '.join(BUILD_TURNS)}, got {build_direction!r}")
        self.shape = tuple(shape)
        self.turns = BUILD_TURNS[build_direction]
        self.p, self.eps = float(p), float(eps)
        self.q = self.p + math.log(3) / math.log(xi0)
        self._saved: tuple[np.ndarray, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The printed densities of the blueprint ``x`` (same shape); keeps what :meth:`backward` needs."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != self.shape:
            raise ValueError(f"the AM filter was made for shape {self.shape}, got {x.shape}")
        blueprint = np.rot90(x, self.turns)  # the build now runs from the bottom row up
        rows, cols = blueprint.shape
        printed = np.empty_like(blueprint)
        printed[-1] = blueprint[-1]  # the baseplate layer
        # The layer under each row, with a void cell at each end: its three supports are three shifted views.
        below = np.zeros((rows, cols + 2))
        sums = np.empty((rows, cols))
        support_max = np.empty((rows, cols))
        for row in range(rows - 2, -1, -1):  # (SIMP calls this thousands of times: no np.pad, one power)
            below[row, 1:-1] = printed[row + 1]
            powers = below[row] ** self.p
            sums[row] = powers[:-2] + powers[1:-1] + powers[2:] + 1e-300
            support_max[row] = sums[row] ** (1.0 / self.q)
            printed[row] = _smooth_min(blueprint[row], support_max[row], self.eps)
        self._saved = (blueprint, below, sums, support_max)
        return np.rot90(printed, -self.turns).copy()

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """The derivative of a function of the printed field with respect to the blueprint, given its
        derivative ``grad`` with respect to the printed field (of the last :meth:`forward`)."""
        if self._saved is None:
            raise RuntimeError("backward needs a forward first")
        blueprint, below, sums, support_max = self._saved
        lam = np.rot90(np.asarray(grad, dtype=np.float64), self.turns)
        rows, cols = blueprint.shape
        out = np.zeros_like(blueprint)
        carried = np.zeros(cols)  # what the layer above passed down to this one
        for row in range(rows - 1):
            total = lam[row] + carried
            a, b = blueprint[row], support_max[row]
            root = np.sqrt((a - b) ** 2 + self.eps)
            out[row] = total * 0.5 * (1.0 - (a - b) / root)
            d_max = total * 0.5 * (1.0 + (a - b) / root)
            # d smooth_max / d support_k = (P / Q) * S**(1/Q - 1) * support_k**(P - 1)
            scale = d_max * (self.p / self.q) * sums[row] ** (1.0 / self.q - 1.0)
            slopes = below[row] ** (self.p - 1.0)
            passed = np.zeros(cols + 2)
            passed[:-2] += scale * slopes[:-2]
            passed[1:-1] += scale * slopes[1:-1]
            passed[2:] += scale * slopes[2:]
            carried = passed[1:-1]
        out[-1] = lam[-1] + carried  # the baseplate layer prints as drawn
        return np.rot90(out, -self.turns).copy()


def _smooth_min(a: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    return 0.5 * (a + b - np.sqrt((a - b) ** 2 + eps) + math.sqrt(eps))
