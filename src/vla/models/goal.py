"""Auxiliary sub-goal head: vision tokens -> where the end effector will be at the next gripper event.

Trained beside the action head when `PolicyConfig.goal_loss` > 0 (target from `vla.data.subgoals`,
standardized with the dataset's `ee_pos` state statistics). It reads the vision tokens only, so its
gradient reaches the FiLM-conditioned encoder directly: to place the sub-goal the encoder must find the
instructed object among distractors of the same colour or shape. Not used by `predict`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GoalHead(nn.Module):
    """(B, Nv, D) vision tokens -> (B, E) standardized sub-goal position (E = the ee_pos size)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, num_tokens: int, dim: int, *, mean: torch.Tensor, std: torch.Tensor, hidden: int = 256
    ):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(num_tokens * dim, hidden), nn.GELU(), nn.Linear(hidden, int(mean.numel()))
        )
        self.register_buffer("mean", mean.float().clone(), persistent=False)
        self.register_buffer("std", std.float().clamp_min(1e-3).clone(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens.flatten(1))

    def loss(self, tokens: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Huber loss in standardized units, and the mean position error in centimetres (a metric)."""
        pred = self(tokens)  # (B, E)
        target = (goal - self.mean) / self.std
        err_cm = ((pred.detach() - target) * self.std).norm(dim=-1).mean().item() * 100.0
        return F.smooth_l1_loss(pred, target), err_cm
