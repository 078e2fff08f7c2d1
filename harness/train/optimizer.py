"""AdamW with linear warmup (then constant or linearly decaying), and the step on accumulated gradients."""

from __future__ import annotations

import torch

from harness.distributed import average_gradients

__all__ = ["apply_gradients", "make_optimizer"]


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    decay_steps: int | None = None,
    min_factor: float = 0.05,
):
    """AdamW over the trainable parameters; lr warms up linearly over `warmup_steps`, then stays
    constant, or decays linearly to `min_factor * lr` at `decay_steps` if given."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warmup = max(warmup_steps, 1)

    def factor(step: int) -> float:
        decay = 1.0 if decay_steps is None else max(min_factor, 1 - step / decay_steps)
        return min(1.0, (step + 1) / warmup, decay)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def apply_gradients(model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> float:
    """Clip + step on gradients already accumulated (micro-batched updates); returns the grad norm."""
    average_gradients(model)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return float(grad_norm)
