"""Grounding head: vision tokens -> where the instructed objects are, fed back to the policy as a token.

Co-trained on labelled rendered scenes (`vla collect-grounding`, `vla train --grounding`; labels in
`vla.envs.tabletop.grounding`): from the FiLM-conditioned vision tokens and the end-effector pose it
predicts the instructed object's position, where it should go, and a block's yaw. The pose is an input
because the wrist camera sees the target relative to the hand: close to a grasp, when the arm hides the
target from the scene camera, only pose + wrist view place it on the table (without the pose the
estimate jumped by 10-15 cm there, measured on pick_up rollouts). Its prediction, relative to the end
effector, becomes one more fusion token, so the action head sees "the target is 6 cm ahead and 2 cm
left" instead of having to find the target itself from a few hundred demonstrations: acting on a
relative position transfers across layouts, finding the object is learned from unlimited free views.

The token is built from the *detached* prediction: behaviour cloning does not pull the grounding
estimate towards whatever helps fit the demonstrations; the labels alone decide what it means.
Positions are standardized with the dataset's `ee_pos` statistics, the same units as the state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_LABELS = 8  # target xyz, place xyz, yaw (cos 4θ, sin 4θ): vla.envs.tabletop.grounding.LABELS


class GroundingHead(nn.Module):
    """(B, Nv, D) vision tokens + (B, P) standardized end-effector pose -> (B, 8) prediction, and the
    (B, 1, D) grounding token for fusion."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        *,
        pose_dim: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        if mean.numel() != 3:
            raise ValueError(
                f"grounding needs a 3-D end-effector position, got ee_pos of {mean.numel()} dims"
            )
        self.mlp = nn.Sequential(
            nn.Linear(num_tokens * dim + pose_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, NUM_LABELS),
        )
        self.embed = nn.Sequential(
            nn.Linear(NUM_LABELS, dim), nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim)
        )
        self.register_buffer("mean", mean.float().clone(), persistent=False)
        self.register_buffer("std", std.float().clamp_min(1e-3).clone(), persistent=False)

    def forward(self, tokens: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Prediction (B, 8): target and place positions standardized like ee_pos, then yaw cos/sin."""
        return self.mlp(torch.cat([tokens.flatten(1), pose], dim=1))

    def token(self, pred: torch.Tensor, ee: torch.Tensor) -> torch.Tensor:
        """The fusion token (B, 1, D) from a prediction (B, 8) and the end effector (B, 3, metres)."""
        e = (ee - self.mean) / self.std
        rel = torch.cat([pred[:, 0:3] - e, pred[:, 3:6] - e, pred[:, 6:8]], dim=1)
        return self.embed(rel.detach())[:, None]

    def standardize(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels in metres (B, 8) -> the prediction's units."""
        out = labels.clone()
        out[:, 0:3] = (labels[:, 0:3] - self.mean) / self.std
        out[:, 3:6] = (labels[:, 3:6] - self.mean) / self.std
        return out

    def to_metres(self, pred: torch.Tensor) -> torch.Tensor:
        """Prediction (B, 8) -> target and place positions in metres (B, 6) (yaw dropped)."""
        return torch.cat([pred[:, 0:3] * self.std + self.mean, pred[:, 3:6] * self.std + self.mean], dim=1)

    def loss(
        self, tokens: torch.Tensor, pose: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked Huber loss in standardized units; metrics: mean target / place error in centimetres."""
        pred = self(tokens, pose)
        if labels.shape != pred.shape or mask.shape != pred.shape:
            raise ValueError(
                f"grounding labels and mask must be [B, {NUM_LABELS}], got {tuple(labels.shape)} and {tuple(mask.shape)}"
            )
        per = F.smooth_l1_loss(pred, self.standardize(labels), reduction="none") * mask
        loss = per.sum() / mask.sum().clamp_min(1.0)
        with torch.no_grad():
            err = (self.to_metres(pred) - labels[:, :6]).view(-1, 2, 3).norm(dim=-1).mean(0) * 100.0
        return loss, {
            "ground_loss": float(loss.detach()),
            "target_cm": float(err[0]),
            "place_cm": float(err[1]),
        }
