"""Model definitions of the generators that ship with designgym."""

from __future__ import annotations

import math

import torch
from torch import nn

from designgym.generators.base import Generator


class ConvVAE(Generator):
    """A convolutional variational autoencoder over square 2D grids.

    The decoder is the generator: ``z ~ N(0, I)`` in, a density grid in ``[0, 1]`` out. The encoder
    is kept so that a design can be mapped back to a latent (the nearest design a generator can
    make, a warm start for latent search).

    Args:
        latent_dim: length of the latent vector.
        size: side of the square grid; a power of two, at least 8.
        channels: feature channels of the first encoder layer (doubled at each halving).
    """

    def __init__(self, latent_dim: int = 8, size: int = 32, channels: int = 32) -> None:
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"ConvVAE needs a power-of-two grid side >= 8, got {size}")
        self.latent_dim = latent_dim
        self.design_shape = (size, size)
        self.config = {"latent_dim": latent_dim, "size": size, "channels": channels}
        levels = int(math.log2(size)) - 2  # down to a 4 x 4 feature map
        widths = [channels * 2**i for i in range(levels)]

        enc: list[nn.Module] = []
        c_in = 1
        for width in widths:
            enc += [nn.Conv2d(c_in, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            c_in = width
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        flat = widths[-1] * 16
        self.to_mu = nn.Linear(flat, latent_dim)
        self.to_logvar = nn.Linear(flat, latent_dim)

        self.from_z = nn.Sequential(nn.Linear(latent_dim, flat), nn.LeakyReLU(0.2))
        self._top = (widths[-1], 4, 4)
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
        h = self.encoder(x.unsqueeze(1))
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output ``[B, rows, cols]`` (differentiable; used in training)."""
        h = self.from_z(z).view(-1, *self._top)
        return self.decoder(h).squeeze(1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))


#: Architectures a weights card may name.
ARCHITECTURES: dict[str, type[Generator]] = {"ConvVAE": ConvVAE}
