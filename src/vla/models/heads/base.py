"""What every action head offers, and the masked mean they share.

Heads work in normalized action space ([-1, 1] between the q01 and q99 quantiles, see normalize.py);
the policy converts to robot units. Each head has
    loss(fused, target (B, H, A), valid (B, H) bool) -> (scalar loss, metrics)
    sample(fused, *, generator, with_confidence) -> (actions (B, H, A), confidence (B,) in [0, 1] or None)
Padded steps past an episode's end (Batch.action_pad) are excluded through `valid`.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from vla.models.fusion import FusionOut

# Spread of normalized actions at which confidence falls to 1/e: a tenth of the [-1, 1] range.
CONFIDENCE_SCALE = 0.1


def masked_mean(err: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of err (B, H, ...) over the steps where valid (B, H) is True (0 if none is)."""
    w = valid.float().reshape(*valid.shape, *([1] * (err.ndim - 2))).expand_as(err)
    return (err * w).sum() / w.sum().clamp(min=1.0)


def spread_confidence(samples: torch.Tensor) -> torch.Tensor:
    """Confidence from the disagreement of K predictions (K, B, H, A) -> (B,) in (0, 1]."""
    spread = samples.std(dim=0).mean(dim=(1, 2))  # (B,)
    return torch.exp(-spread / CONFIDENCE_SCALE)


class ActionHead(nn.Module, abc.ABC):
    """Base class: subclasses implement `loss` and `sample`."""

    @abc.abstractmethod
    def loss(
        self, fused: FusionOut, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss in normalized space and float metrics for logging."""

    @abc.abstractmethod
    def sample(
        self, fused: FusionOut, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalized actions (B, H, A) and a confidence (B,) (None if the head has none cheaply)."""


def entropy_confidence(logits: torch.Tensor) -> torch.Tensor:
    """1 - mean normalized entropy of categorical logits (B, H, A, nb) -> (B,) in [0, 1]."""
    logp = logits.log_softmax(-1)
    ent = -(logp.exp() * logp).sum(-1)  # (B, H, A)
    return (1.0 - ent.mean(dim=(1, 2)) / math.log(logits.shape[-1])).clamp(0.0, 1.0)
