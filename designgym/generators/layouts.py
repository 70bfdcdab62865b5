"""A generator whose latent is a structured description of a plan, solved into the plan's cells.

:class:`SlicingPlanGenerator` maps each latent number through the standard normal CDF to ``(0, 1)``
and hands the eleven numbers to :func:`designgym.envs.architecture.floorplan_layout.layout`, which
cuts the brief's footprint into a corridor and rooms. It has no trained weights: the description is
the design's meaning, and a prior sample ``z ~ N(0, I)`` is a uniform draw of every choice. Its
shipped ``.pt`` file is an empty state dict, kept so that it loads, is checked and is documented
like every other generator (its card records how often its plans meet every rule).
"""

from __future__ import annotations

import numpy as np
import torch

from designgym.generators.base import Generator


class SlicingPlanGenerator(Generator):
    """Floor plans as a corridor spine and sliced strips of rooms, decoded from a latent of 11.

    Conditional on the brief: decode with ``FloorPlan.conditions_vector`` (every condition scaled to
    ``[-1, 1]``, the order of the conditions space), as the pixel generator ``floorplan-cvae``.
    Decoding runs on the CPU (a dynamic programme per plan, a few milliseconds); the result is put
    on the device the latents came from.

    Args:
        size: the :class:`~designgym.envs.architecture.floorplan.FloorPlan` grid's side in cells.
        cell_m: its cell side in metres.
    """

    def __init__(self, size: int = 24, cell_m: float = 0.5) -> None:
        super().__init__()
        from designgym.envs.architecture.floorplan import FloorPlan
        from designgym.envs.architecture.floorplan_layout import PARAMETERS, Briefs

        self.problem = FloorPlan(size=size, cell_m=cell_m)
        self.latent_dim = len(PARAMETERS)
        self.design_shape = (size, size)
        self.conditions_dim = self.problem.conditions_dim
        self.condition_keys = tuple(self.problem.conditions_space.spaces)
        self._briefs = Briefs(self.problem)

    def conditions_from_vector(self, vector: np.ndarray) -> dict[str, float | int]:
        """The brief a conditions vector was made from (the inverse of ``conditions_vector``)."""
        from gymnasium import spaces

        out: dict[str, float | int] = {}
        values = np.asarray(vector, dtype=np.float64)
        for value, (key, space) in zip(values, self.problem.conditions_space.spaces.items(), strict=True):
            t = (min(1.0, max(-1.0, float(value))) + 1.0) / 2.0
            if isinstance(space, spaces.Discrete):
                out[key] = int(space.start) + int(round(t * max(int(space.n) - 1, 1)))
            else:
                low, high = float(space.low), float(space.high)
                out[key] = low + t * (high - low)
        return out

    def _decode(self, z: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        from designgym.envs.architecture.floorplan_layout import layout

        u = torch.special.ndtr(z.double()).cpu().numpy()
        rows = conditions.double().cpu().numpy()
        plans = np.empty((len(u), *self.design_shape), dtype=np.float32)
        for i, (description, vector) in enumerate(zip(u, rows, strict=True)):
            brief = self._briefs(self.conditions_from_vector(vector))
            plans[i] = layout(self.problem, brief.conditions, description, brief)
        return torch.as_tensor(plans, device=z.device)
