"""The `Generator`: a torch module that turns latent vectors into designs.

A generator knows nothing about problems or RL: it maps ``z[B, latent_dim]`` to
``designs[B, *design_shape]``, batched, on the device it lives on. A conditional generator also
takes a vector of conditions per design, ``c[B, conditions_dim]``, so that one latent space serves
every brief (a footprint, a parcel): the env passes the problem's
:meth:`~designgym.envs.problem.Problem.conditions_vector`.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch import nn


def default_device() -> torch.device:
    """CUDA when a GPU is present, the CPU otherwise; the CPU in a child forked after the parent used
    CUDA (a vector env's worker), where CUDA cannot start again."""
    if torch.cuda._is_in_bad_fork():
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks :func:`default_device`; anything else is taken as given."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return default_device()
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return resolved


class Generator(nn.Module, abc.ABC):
    """Base class of latent-to-design generators.

    Subclasses set :attr:`latent_dim` and :attr:`design_shape` and implement :meth:`_decode`.
    Latents follow a standard normal prior, so ``|z_i| <= 3`` covers nearly all of the mass.

    Attributes:
        latent_dim: length of a latent vector.
        design_shape: shape of one design, ``(rows, cols)`` for 2D grids.
        conditions_dim: length of the conditions vector a conditional generator decodes with; 0
            (the default) for an unconditional one.
        condition_keys: for a conditional generator that ships with designgym, the keys of the
            conditions its vector was made from, in order (the problem's conditions space);
            empty when unknown.
        name: the name it is loaded by, when it ships with designgym.
    """

    latent_dim: int
    design_shape: tuple[int, ...]
    conditions_dim: int = 0
    condition_keys: tuple[str, ...] = ()
    name: str = ""

    @property
    def device(self) -> torch.device:
        """The device the generator's parameters live on."""
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @torch.no_grad()
    def decode(
        self, z: torch.Tensor | np.ndarray, conditions: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """Decode a batch of latents ``z[B, latent_dim]`` to designs ``[B, *design_shape]``.

        A conditional generator (``conditions_dim > 0``) needs ``conditions[B, conditions_dim]``,
        one row per latent; an unconditional one takes none. Numpy input is accepted and moved to
        the generator's device; the result stays a tensor on that device. Use
        :meth:`decode_numpy` for numpy out. On CUDA, decoding uses cuDNN's deterministic kernels,
        so the same latent always gives the same design.
        """
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        label = self.name or type(self).__name__
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"generator {label} decodes latents of shape (batch, {self.latent_dim}), got {tuple(z.shape)}"
            )
        if self.conditions_dim == 0:
            if conditions is not None:
                raise ValueError(f"generator {label} is unconditional; decode latents without conditions")
        else:
            if conditions is None:
                raise ValueError(
                    f"generator {label} is conditional: pass conditions of shape (batch, {self.conditions_dim}) "
                    "with the latents (a problem's conditions_vector per design)"
                )
            conditions = torch.as_tensor(conditions, dtype=torch.float32, device=self.device)
            if conditions.shape != (z.shape[0], self.conditions_dim):
                raise ValueError(
                    f"generator {label} decodes with conditions of shape ({z.shape[0]}, {self.conditions_dim}), "
                    f"one row per latent; got {tuple(conditions.shape)}"
                )
            if not torch.all(torch.isfinite(conditions)):
                raise ValueError(f"generator {label}: the conditions hold NaN or infinite values")
        was_training = self.training
        if was_training:  # switching modes walks every submodule: only when needed
            self.eval()
        try:
            # cuDNN may otherwise pick kernels that sum in a different order from call to call, and
            # the same seed must give the same design (Gymnasium's seeding contract).
            with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
                return self._decode(z) if conditions is None else self._decode(z, conditions)
        finally:
            if was_training:
                self.train()

    def decode_numpy(self, z: np.ndarray, conditions: np.ndarray | None = None) -> np.ndarray:
        """:meth:`decode` with numpy in and ``float32`` numpy out."""
        return self.decode(z, conditions).detach().to("cpu").numpy().astype(np.float32, copy=False)

    @abc.abstractmethod
    def _decode(self, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """Map checked latents (and, for a conditional generator, their conditions) on the right
        device to designs; called in eval mode without grad."""
