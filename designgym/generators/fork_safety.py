"""A process forked from a designgym process runs torch on one thread, so that it cannot hang.

torch's CPU kernels run on a GNU OpenMP (libgomp) thread pool that starts with the first parallel
op (loading or running a generator is one) and does not survive ``fork()``: the child inherits the
pool's bookkeeping but none of its threads, and its first parallel op waits for them at a barrier
forever. Gymnasium's ``AsyncVectorEnv`` builds one env in the parent for its spaces before it forks
its workers (fork is the default start method on Linux up to Python 3.13), and Stable-Baselines3's
``SubprocVecEnv`` with ``start_method="fork"`` or any ``multiprocessing`` fork after a generator ran
meets the same hang.

With one thread, torch runs every kernel on the calling thread and the dead pool is never waited
on. PyTorch's own ``DataLoader`` workers run on one thread too, and a vector env's
worker wants no more: its siblings take the other cores. A forked child may raise the count with
``torch.set_num_threads`` only if its parent never ran a parallel torch op. The BLAS under NumPy,
SciPy and CHOLMOD (OpenBLAS on pthreads) rebuilds its own pool after a fork and needs nothing here,
and a spawned child is a fresh process that keeps torch's default thread count.
"""

from __future__ import annotations

import os

import torch


def _one_torch_thread() -> None:
    torch.set_num_threads(1)


# Windows has no fork (nor os.register_at_fork).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_torch_thread)
