"""Telling a diverged training run from a fault, and saying so in one line.

A learning rate far too high drives the policy's weights to NaN or infinity within a few updates; the
next forward pass then fails deep inside torch (a distribution refuses its NaN mean, and prints the whole
tensor), or the env refuses a NaN action. Whatever failed, a model whose weights are no longer finite
diverged, and the fix is a setting, not a bug report.
"""

from __future__ import annotations

from typing import Any


class TrainingDiverged(RuntimeError):
    """The agent's weights became NaN or infinite; the message names the step and the settings to change."""


def nonfinite_parameters(model: Any) -> list[str]:
    """Names of the model's policy parameters that hold NaN or infinite values."""
    import torch

    policy = getattr(model, "policy", None)
    if policy is None or not hasattr(policy, "named_parameters"):
        return []
    with torch.no_grad():
        return [name for name, p in policy.named_parameters() if not bool(torch.isfinite(p).all())]


def _outputs_not_finite(failure: BaseException | None) -> bool:
    """Whether ``failure`` is a torch distribution refusing the policy's NaN or infinite outputs (weights
    can be finite and still overflow: a log standard deviation of 1e3)."""
    if not isinstance(failure, ValueError) or "invalid values" not in str(failure):
        return False
    tb = failure.__traceback__
    while tb is not None:
        if "distributions" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def raise_if_diverged(model: Any, settings: dict[str, Any], failure: BaseException | None = None) -> None:
    """Raise :class:`TrainingDiverged` (from nothing: the cause is the divergence, not where it surfaced)
    when the model's weights, or its outputs that ``failure`` refused, are not finite; otherwise return
    and let the caller re-raise ``failure``."""
    bad = nonfinite_parameters(model)
    if not bad and not _outputs_not_finite(failure):
        return
    what = (f"{len(bad)} weight tensor(s) of the policy became NaN or infinite" if bad
            else "the policy's outputs became NaN or infinite")
    shown = {k: settings[k] for k in ("learning_rate", "max_grad_norm", "ent_coef", "batch_size") if k in settings}
    at = f" at step {int(getattr(model, 'num_timesteps', 0))}"
    surfaced = f" (it surfaced as {type(failure).__name__})" if failure is not None else ""
    raise TrainingDiverged(
        f"training diverged{at}: {what}{surfaced}"
        + (f" with {', '.join(f'{k}={v}' for k, v in shown.items())}" if shown else "")
        + "; lower learning_rate (or set max_grad_norm), and start a new run"
    ) from None
