"""Binary focal loss (Lin et al. 2017) and class-balanced cross-entropy, on logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch convention)


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float | None = 0.25, gamma: float = 2.0,
               reduction: str = "mean") -> torch.Tensor:
    """FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t).

    `alpha` weighs positives (alpha) against negatives (1 - alpha); None weighs both 1. With
    gamma = 0 and alpha = None it is exactly binary cross-entropy.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative (got {gamma})")
    targets = targets.to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none' (got {reduction!r})")


def balanced_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with positives and negatives weighted to equal total weight in the batch."""
    targets = targets.to(logits.dtype)
    pos = targets.sum().clamp(min=1.0)
    neg = (1 - targets).sum().clamp(min=1.0)
    weight = targets * (0.5 / pos) + (1 - targets) * (0.5 / neg)
    return (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight).sum()
