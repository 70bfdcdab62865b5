"""Model definitions of the generators that ship with designgym."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from designgym.generators.base import Generator


class ConvVAE(Generator):
    """A convolutional variational autoencoder over 2D grids.

    The decoder is the generator: ``z ~ N(0, I)`` in, a density grid in ``[0, 1]`` out. The encoder
    is kept so that a design can be mapped back to a latent (the nearest design a generator can
    make, a warm start for latent search).

    The grid is halved by stride-2 convolutions while its shorter side stays at least 4 cells; a
    side that does not divide evenly is zero-padded at the bottom/right on the way in and cropped
    on the way out, so any grid of at least 8 x 8 works (32 x 32 sections, 32 x 64 cantilevers,
    20 x 60 MBB beams).

    Args:
        latent_dim: length of the latent vector.
        size: side of a square grid (the older spelling of ``shape=(size, size)``).
        channels: feature channels of the first encoder layer (doubled at each halving).
        shape: ``(rows, cols)`` of the grid; overrides ``size``.
    """

    def __init__(
        self, latent_dim: int = 8, size: int = 32, channels: int = 32, shape: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        rows, cols = (int(size), int(size)) if shape is None else (int(shape[0]), int(shape[1]))
        if min(rows, cols) < 8:
            raise ValueError(f"ConvVAE needs a grid of at least 8 x 8 cells, got {rows} x {cols}")
        if latent_dim < 1 or channels < 2:
            raise ValueError(f"ConvVAE needs latent_dim >= 1 and channels >= 2, got {latent_dim} and {channels}")
        self.latent_dim = latent_dim
        self.design_shape = (rows, cols)
        if shape is None:
            self.config = {"latent_dim": latent_dim, "size": size, "channels": channels}
        else:
            self.config = {"latent_dim": latent_dim, "shape": [rows, cols], "channels": channels}
        levels = int(math.floor(math.log2(min(rows, cols) / 4)))
        step = 2**levels
        self._padded = (-(-rows // step) * step, -(-cols // step) * step)
        widths = [channels * 2**i for i in range(levels)]

        enc: list[nn.Module] = []
        c_in = 1
        for width in widths:
            enc += [nn.Conv2d(c_in, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            c_in = width
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self._top = (widths[-1], self._padded[0] // step, self._padded[1] // step)
        flat = widths[-1] * self._top[1] * self._top[2]
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)

        self.from_z = nn.Sequential(nn.Linear(latent_dim, flat), nn.LeakyReLU(0.2))
        dec: list[nn.Module] = []
        for width_in, width_out in zip(widths[::-1], widths[::-1][1:] + [channels // 2], strict=True):
            dec += [
                nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1),
                nn.BatchNorm2d(width_out),
                nn.LeakyReLU(0.2),
            ]
        self.decoder = nn.Sequential(*dec, nn.Conv2d(channels // 2, 1, 3, padding=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | x)`` for designs ``x[B, rows, cols]``."""
        rows, cols = self.design_shape
        x = F.pad(x, (0, self._padded[1] - cols, 0, self._padded[0] - rows))
        h = self.encoder(x.unsqueeze(1))
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output ``[B, rows, cols]`` (differentiable; used in training)."""
        h = self.from_z(z).view(-1, *self._top)
        rows, cols = self.design_shape
        return self.decoder(h)[:, 0, :rows, :cols]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))


#: Architectures a weights card may name.
ARCHITECTURES: dict[str, type[Generator]] = {"ConvVAE": ConvVAE}
