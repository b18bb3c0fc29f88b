"""Continuous chunk regression (ACT, OpenVLA-OFT's L1 head): H steps decoded in parallel.

A small ensemble of output MLPs shares the fused features; each is trained on the target on its own,
the prediction is their mean and their disagreement is the confidence (Lakshminarayanan et al. 2017,
on the last layers only so it costs one extra matmul rather than K policies). Outputs are bounded with
a scaled tanh: targets lie in [-1, 1] apart from the 2% of values beyond the q01/q99 quantiles, hence
the 1.1 margin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla.models.config import HeadConfig
from vla.models.fusion import FusionOut
from vla.models.heads.base import ActionHead, masked_mean, spread_confidence

BOUND = 1.1


class RegressionHead(ActionHead):
    """Per-step ensemble MLP: features (B, H, D) -> K predictions (B, H, K, A).

    With `binary_dims` (head.gripper="bce"), those dimensions are open/close logits trained with binary
    cross-entropy and decoded to the q01 / q99 ends (-1 / +1), so a gripper command is never half-way.
    """

    binary: torch.Tensor

    def __init__(
        self, cfg: HeadConfig, *, dim: int, action_dim: int, binary_dims: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.k = cfg.ensemble
        self.hidden = cfg.hidden
        self.tanh = cfg.tanh
        self.kind = cfg.loss
        self.fc1 = nn.Linear(dim, cfg.ensemble * cfg.hidden)
        self.w2 = nn.Parameter(torch.randn(cfg.ensemble, cfg.hidden, action_dim) * cfg.hidden**-0.5)
        self.b2 = nn.Parameter(torch.zeros(cfg.ensemble, action_dim))
        binary = torch.zeros(action_dim, dtype=torch.bool)
        binary[list(binary_dims)] = True
        self.register_buffer("binary", binary, persistent=False)
        self.has_binary = bool(binary_dims)

    def members(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (B, H, D) -> per-member actions (B, H, K, A) in normalized units."""
        B, H, _ = feats.shape
        h = F.gelu(self.fc1(feats)).view(B, H, self.k, self.hidden)  # (B, H, K, hid)
        out = torch.einsum("bhkd,kda->bhka", h, self.w2) + self.b2  # (B, H, K, A)
        cont = BOUND * torch.tanh(out) if self.tanh else out
        # Binary dims (a gripper trained with BCE) stay logits.
        return torch.where(self.binary, out, cont) if self.has_binary else cont

    def loss(
        self, fused: FusionOut, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        pred = self.members(fused.features)  # (B, H, K, A)
        diff = pred - target[:, :, None]
        err = diff.abs() if self.kind == "l1" else diff.pow(2)
        if self.has_binary:
            closed = (target > 0).float()[:, :, None].expand_as(pred)  # normalized +1 = closed
            bce = F.binary_cross_entropy_with_logits(pred, closed, reduction="none")
            err = torch.where(self.binary, bce, err)
        loss = masked_mean(err, valid)
        with torch.no_grad():
            l1 = masked_mean((self._actions(pred).mean(2) - target).abs(), valid)
        return loss, {"loss": float(loss.detach()), "l1": float(l1)}

    def _actions(self, pred: torch.Tensor) -> torch.Tensor:
        """Member outputs (B, H, K, A) -> normalized actions (binary dims: logits -> -1 / +1)."""
        if not self.has_binary:
            return pred
        return torch.where(self.binary, torch.where(pred > 0, 1.0, -1.0), pred)

    def sample(
        self, fused: FusionOut, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        pred = self.members(fused.features)  # (B, H, K, A)
        if self.has_binary:
            # Members vote on binary dims through their probabilities: 2p - 1 in [-1, 1].
            soft = torch.where(self.binary, 2 * torch.sigmoid(pred) - 1, pred)
            conf = spread_confidence(soft.permute(2, 0, 1, 3)) if self.k > 1 else None
            mean = soft.mean(2)
            return torch.where(self.binary, torch.where(mean > 0, 1.0, -1.0), mean), conf
        conf = spread_confidence(pred.permute(2, 0, 1, 3)) if self.k > 1 else None
        return pred.mean(2), conf
