"""Discretized action tokens (RT-1, RT-2 / OpenVLA): every action dimension of every step is one of
`num_bins` uniform bins on [-1, 1] (the normalized q01..q99 range), trained with cross-entropy.

All H x A tokens are predicted at once from the per-step features (OpenVLA-OFT's parallel decoding
instead of one autoregressive pass per token). The confidence is one minus the mean normalized entropy
of the token distributions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla.models.config import HeadConfig
from vla.models.fusion import FusionOut
from vla.models.heads.base import ActionHead, entropy_confidence, masked_mean


class BinnedHead(ActionHead):
    """features (B, H, D) -> logits (B, H, A, num_bins)."""

    centers: torch.Tensor

    def __init__(self, cfg: HeadConfig, *, dim: int, action_dim: int) -> None:
        super().__init__()
        self.nb = cfg.num_bins
        self.a = action_dim
        self.mlp = nn.Sequential(
            nn.Linear(dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, action_dim * cfg.num_bins)
        )
        self.register_buffer("centers", torch.linspace(-1.0, 1.0, cfg.num_bins), persistent=False)

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        B, H, _ = feats.shape
        return self.mlp(feats).view(B, H, self.a, self.nb)

    def to_bins(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized actions -> bin indices (values beyond [-1, 1] fall in the end bins)."""
        return ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * (self.nb - 1)).round().long()

    def loss(
        self, fused: FusionOut, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.logits(fused.features)  # (B, H, A, nb)
        ce = F.cross_entropy(logits.flatten(0, 2), self.to_bins(target).flatten(), reduction="none")
        loss = masked_mean(ce.view(target.shape), valid)
        with torch.no_grad():
            acc = masked_mean((logits.argmax(-1) == self.to_bins(target)).float(), valid)
        return loss, {"loss": float(loss.detach()), "token_accuracy": float(acc)}

    def sample(
        self, fused: FusionOut, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.logits(fused.features)
        return self.centers[logits.argmax(-1)], entropy_confidence(logits)
