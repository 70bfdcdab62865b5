"""The `Generator`: a torch module that turns latent vectors into designs.

A generator knows nothing about problems or RL: it maps ``z[B, latent_dim]`` to
``designs[B, *design_shape]`` with values in ``[0, 1]``, batched, on the device it lives on.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch import nn


def default_device() -> torch.device:
    """CUDA when a GPU is present, the CPU otherwise."""
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
        name: the name it is loaded by, when it ships with designgym.
    """

    latent_dim: int
    design_shape: tuple[int, ...]
    name: str = ""

    @property
    def device(self) -> torch.device:
        """The device the generator's parameters live on."""
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @torch.no_grad()
    def decode(self, z: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Decode a batch of latents ``z[B, latent_dim]`` to designs ``[B, *design_shape]`` in ``[0, 1]``.

        Numpy input is accepted and moved to the generator's device; the result stays a tensor
        on that device. Use :meth:`decode_numpy` for numpy out. On CUDA, decoding uses cuDNN's
        deterministic kernels, so the same latent always gives the same design.
        """
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"generator {self.name or type(self).__name__} decodes latents of shape "
                f"(batch, {self.latent_dim}), got {tuple(z.shape)}"
            )
        was_training = self.training
        if was_training:  # switching modes walks every submodule: only when needed
            self.eval()
        try:
            # cuDNN may otherwise pick kernels that sum in a different order from call to call, and
            # the same seed must give the same design (Gymnasium's seeding contract).
            with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
                return self._decode(z)
        finally:
            if was_training:
                self.train()

    def decode_numpy(self, z: np.ndarray) -> np.ndarray:
        """:meth:`decode` with numpy in and ``float32`` numpy out."""
        return self.decode(z).detach().to("cpu").numpy().astype(np.float32, copy=False)

    @abc.abstractmethod
    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map checked latents on the right device to designs; called in eval mode without grad."""
