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

    Three kinds of grid:

    - densities (``classes=1``, ``scale=1``): the decoder's sigmoid, in ``[0, 1]``;
    - fields (``classes=1``, ``scale`` > 0): the sigmoid times ``scale`` (heights in metres);
    - labels (``classes=K >= 2``): one logit per class and cell; a design holds the most likely
      class of each cell as a float code ``0 .. K-1`` (room types of a floor plan), times
      ``scale`` (storeys of 3.5 m give heights in metres that come in whole storeys).

    With ``conditions_dim > 0`` it is a conditional VAE: the conditions vector joins the
    encoder's features before ``q(z | x, c)`` and the latent at the decoder's input, so one latent
    space serves every brief and the prior ``N(0, I)`` holds for each of them. With
    ``coord_head=True`` the last layers also see, at every cell, its coordinates and the
    conditions (a "CoordConv" head): an edge that a condition places (a footprint's width, a
    setback line) is then a threshold a 3 x 3 convolution can draw to the cell, instead of
    something the upsampling path has to spell out from a 4 x 4 bottleneck.

    Args:
        latent_dim: length of the latent vector.
        size: side of a square grid (the older spelling of ``shape=(size, size)``).
        channels: feature channels of the first encoder layer (doubled at each halving).
        shape: ``(rows, cols)`` of the grid; overrides ``size``.
        conditions_dim: length of the conditions vector (0: unconditional).
        coord_head: give the output layers each cell's coordinates and the conditions.
        classes: 1 for densities and fields, K >= 2 for label grids of K classes.
        scale: what a decoded 1 (a field) or class 1 (a label grid) stands for; 1 for densities.
    """

    def __init__(
        self,
        latent_dim: int = 8,
        size: int = 32,
        channels: int = 32,
        shape: tuple[int, int] | None = None,
        conditions_dim: int = 0,
        classes: int = 1,
        scale: float = 1.0,
        coord_head: bool = False,
    ) -> None:
        super().__init__()
        rows, cols = (int(size), int(size)) if shape is None else (int(shape[0]), int(shape[1]))
        if min(rows, cols) < 8:
            raise ValueError(f"ConvVAE needs a grid of at least 8 x 8 cells, got {rows} x {cols}")
        if latent_dim < 1 or channels < 2:
            raise ValueError(f"ConvVAE needs latent_dim >= 1 and channels >= 2, got {latent_dim} and {channels}")
        if conditions_dim < 0 or classes < 1 or not scale > 0:
            raise ValueError(
                "ConvVAE needs conditions_dim >= 0, classes >= 1 and scale > 0; "
                f"got conditions_dim={conditions_dim}, classes={classes}, scale={scale}"
            )
        self.latent_dim = latent_dim
        self.design_shape = (rows, cols)
        self.conditions_dim = int(conditions_dim)
        self.classes = int(classes)
        self.scale = float(scale)
        if shape is None:
            self.config = {"latent_dim": latent_dim, "size": size, "channels": channels}
        else:
            self.config = {"latent_dim": latent_dim, "shape": [rows, cols], "channels": channels}
        # Older cards name only the keys above; the new ones are written only when they differ.
        self.coord_head = bool(coord_head)
        extra = {"conditions_dim": self.conditions_dim, "classes": self.classes, "scale": self.scale,
                 "coord_head": self.coord_head}
        defaults = {"conditions_dim": 0, "classes": 1, "scale": 1.0, "coord_head": False}
        self.config.update({k: v for k, v in extra.items() if v != defaults[k]})
        levels = int(math.floor(math.log2(min(rows, cols) / 4)))
        step = 2**levels
        self._padded = (-(-rows // step) * step, -(-cols // step) * step)
        widths = [channels * 2**i for i in range(levels)]

        enc: list[nn.Module] = []
        c_in = self.classes
        for width in widths:
            enc += [nn.Conv2d(c_in, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            c_in = width
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self._top = (widths[-1], self._padded[0] // step, self._padded[1] // step)
        flat = widths[-1] * self._top[1] * self._top[2]
        self.to_mu = nn.Linear(flat + self.conditions_dim, latent_dim)
        self.to_logvar = nn.Linear(flat + self.conditions_dim, latent_dim)

        self.from_z = nn.Sequential(nn.Linear(latent_dim + self.conditions_dim, flat), nn.LeakyReLU(0.2))
        dec: list[nn.Module] = []
        for width_in, width_out in zip(widths[::-1], widths[::-1][1:] + [channels // 2], strict=True):
            dec += [
                nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1),
                nn.BatchNorm2d(width_out),
                nn.LeakyReLU(0.2),
            ]
        if self.coord_head:
            self.decoder = nn.Sequential(*dec)
            side = channels // 2 + 2 + self.conditions_dim
            self.head = nn.Sequential(
                nn.Conv2d(side, channels // 2, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(channels // 2 + 2 + self.conditions_dim, self.classes, 3, padding=1),
            )
            ys = (torch.arange(self._padded[0], dtype=torch.float32) + 0.5) / rows * 2 - 1
            xs = (torch.arange(self._padded[1], dtype=torch.float32) + 0.5) / cols * 2 - 1
            self.register_buffer("coords", torch.stack(torch.meshgrid(ys, xs, indexing="ij")), persistent=False)
        else:
            self.decoder = nn.Sequential(*dec, nn.Conv2d(channels // 2, self.classes, 3, padding=1))

    def encode(self, x: torch.Tensor, conditions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | x, c)`` for designs ``x[B, rows, cols]``.

        Densities are taken as they are, fields are divided by ``scale``, and label grids hold
        class codes times ``scale`` (one-hot encoded here).
        """
        rows, cols = self.design_shape
        x = x / self.scale
        if self.classes > 1:
            x = F.one_hot(x.round().long().clamp(0, self.classes - 1), self.classes).permute(0, 3, 1, 2).float()
        else:
            x = x.unsqueeze(1)
        x = F.pad(x, (0, self._padded[1] - cols, 0, self._padded[0] - rows))
        h = self._join(self.encoder(x), conditions)
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder output before the sigmoid or softmax (differentiable; used in training).

        ``[B, rows, cols]`` for densities and fields, ``[B, classes, rows, cols]`` for labels.
        """
        h = self.from_z(self._join(z, conditions)).view(-1, *self._top)
        rows, cols = self.design_shape
        h = self.decoder(h)
        if self.coord_head:
            h = self.head[1](self.head[0](self._with_coords(h, conditions)))
            h = self.head[2](self._with_coords(h, conditions))
        out = h[:, :, :rows, :cols]
        return out if self.classes > 1 else out[:, 0]

    def _with_coords(self, h: torch.Tensor, conditions: torch.Tensor | None) -> torch.Tensor:
        parts = [h, self.coords.to(h.dtype).expand(h.shape[0], -1, -1, -1)]
        if self.conditions_dim:
            parts.append(conditions.to(h.dtype)[:, :, None, None].expand(-1, -1, *h.shape[2:]))
        return torch.cat(parts, dim=1)

    def forward(
        self, x: torch.Tensor, conditions: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x, conditions)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_logits(z, conditions), mu, logvar

    def _decode(self, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.decode_logits(z, conditions)
        out = logits.argmax(dim=1).to(torch.float32) if self.classes > 1 else torch.sigmoid(logits)
        return out * self.scale if self.scale != 1.0 else out

    def _join(self, features: torch.Tensor, conditions: torch.Tensor | None) -> torch.Tensor:
        if self.conditions_dim == 0:
            return features
        if conditions is None or conditions.shape != (features.shape[0], self.conditions_dim):
            got = None if conditions is None else tuple(conditions.shape)
            raise ValueError(
                f"this ConvVAE is conditional: it needs conditions of shape ({features.shape[0]}, "
                f"{self.conditions_dim}), got {got}"
            )
        return torch.cat([features, conditions.to(features.dtype)], dim=1)


#: Architectures a weights card may name.
def _architectures() -> dict[str, type[Generator]]:
    from designgym.generators.layouts import SlicingPlanGenerator

    return {"ConvVAE": ConvVAE, "SlicingPlanGenerator": SlicingPlanGenerator}


ARCHITECTURES: dict[str, type[Generator]] = _architectures()
