"""Milliseconds per compliance evaluation: designgym's FEModel against a straightforward SciPy code.

The straightforward code is what one writes first: element DOF lists built in Python for every
design, a COO matrix of the full system, the free rows and columns sliced out, ``spsolve``. It
runs in this process on the same random density fields of a cantilever as designgym's FEModel,
one design at a time with CHOLMOD (the default), as one ``compliance_batch`` call, and with the
SuperLU fallback; the ratio (straightforward over CHOLMOD one at a time) is what counts.

    python benchmarks/fem.py                 # 64x32, 128x64, 256x128
    python benchmarks/fem.py --sizes 64x32 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from functools import partial

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from designgym.envs.structures.fem import FEModel, element_stiffness, node_id


def cantilever(nelx: int, nely: int) -> tuple[np.ndarray, np.ndarray]:
    ndof = 2 * (nelx + 1) * (nely + 1)
    fixed = np.arange(2 * (nely + 1))
    force = np.zeros(ndof)
    force[2 * node_id(nely, nelx, nely // 2) + 1] = -1.0
    return fixed, force


def straightforward_compliance(density: np.ndarray, fixed: np.ndarray, force: np.ndarray) -> float:
    nely, nelx = density.shape
    ke = element_stiffness(0.3)
    rows, cols, vals = [], [], []
    for c in range(nelx):
        for r in range(nely):
            n1 = c * (nely + 1) + r
            n2 = (c + 1) * (nely + 1) + r
            edof = [2 * n1 + 2, 2 * n1 + 3, 2 * n2 + 2, 2 * n2 + 3, 2 * n2, 2 * n2 + 1, 2 * n1, 2 * n1 + 1]
            e = 1e-9 + density[r, c] ** 3 * (1 - 1e-9)
            for a in range(8):
                for b in range(8):
                    rows.append(edof[a])
                    cols.append(edof[b])
                    vals.append(e * ke[a, b])
    ndof = force.size
    k = sp.coo_matrix((vals, (rows, cols)), shape=(ndof, ndof)).tocsc()
    free = np.setdiff1d(np.arange(ndof), fixed)
    u = np.zeros(ndof)
    u[free] = spsolve(k[free][:, free], force[free])
    return float(force @ u)


def time_per_call(fn, designs) -> float:
    # Warm up on a design that is not timed: FEModel keeps the factorisation of its last design,
    # and a timed repeat of it would be a substitution, not an evaluation.
    fn(designs[0] * 0.5)
    start = time.perf_counter()
    for d in designs:
        fn(d)
    return (time.perf_counter() - start) / len(designs) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="*", default=["64x32", "128x64", "256x128"])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import cvxopt

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"cvxopt {cvxopt.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"{'mesh':>9} {'cholmod ms':>11} {'batched ms':>11} {'superlu ms':>11} {'straightforward ms':>19} "
        f"{'ratio':>7} {'max rel diff':>13}"
    )
    rng = np.random.default_rng(0)
    for size in args.sizes:
        nelx, nely = map(int, size.split("x"))
        fixed, force = cantilever(nelx, nely)
        designs = [rng.uniform(0.01, 1.0, (nely, nelx)) for _ in range(args.repeats)]
        model = FEModel(nelx, nely, fixed, solver="cholmod")
        superlu = FEModel(nelx, nely, fixed, solver="superlu")
        fast = time_per_call(partial(model.compliance, force=force), designs)
        batched = batch_ms(model, designs, force)
        lu = time_per_call(partial(superlu.compliance, force=force), designs)
        slow_designs = designs[: max(2, args.repeats // 3)]  # the slow code takes seconds at 256x128
        slow = time_per_call(partial(straightforward_compliance, fixed=fixed, force=force), slow_designs)
        diff = max(
            abs(model.compliance(d, force) - straightforward_compliance(d, fixed, force)) / model.compliance(d, force)
            for d in designs[:2]
        )
        print(f"{size:>9} {fast:11.2f} {batched:11.2f} {lu:11.2f} {slow:19.2f} {slow / fast:6.1f}x {diff:13.1e}")
        repeat = repeat_design_ms(model, designs[0], nely, nelx)
        print(f"{'':>9} the same design under 10 loads along the tip: {repeat:.2f} ms each (kept factorisation)")


def batch_ms(model: FEModel, designs: list[np.ndarray], force: np.ndarray) -> float:
    """Milliseconds per design of one ``compliance_batch`` call over all the designs."""
    model.compliance(designs[0] * 0.5, force)
    start = time.perf_counter()
    model.compliance_batch(np.stack(designs), np.tile(force, (len(designs), 1)))
    return (time.perf_counter() - start) / len(designs) * 1e3


def repeat_design_ms(model: FEModel, design: np.ndarray, nely: int, nelx: int) -> float:
    """Milliseconds per compliance of one design under loads at each node of the right edge."""
    loads = []
    for row in np.linspace(0, nely, 10).astype(int):
        f = np.zeros(model.ndof)
        f[2 * node_id(nely, nelx, row) + 1] = -1.0
        loads.append(f)
    model.compliance(design, loads[0])
    start = time.perf_counter()
    for f in loads:
        model.compliance(design, f)
    return (time.perf_counter() - start) / len(loads) * 1e3


if __name__ == "__main__":
    main()
