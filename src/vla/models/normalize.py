"""Normalization inside the policy, from statistics that are saved with its weights.

Choices (and why):
- Actions: min/max scaling to [-1, 1] using the q01/q99 quantiles, not the raw min/max, so one outlier
  step does not squeeze every other action into a sliver of the range. Bounded targets suit every head:
  tanh-bounded regression, 256 uniform bins on [-1, 1] (RT-2/OpenVLA also bin between quantiles) and the
  unit-variance noise of diffusion / flow matching. A binary gripper (0/1) maps exactly to -1/+1.
- State: mean/std, because state dimensions are unbounded and roughly Gaussian around a working pose;
  standardized inputs train the MLP well.
- Predicted actions are clamped to the demonstrations' own per-dimension [min, max]. The regression
  head's tanh reaches 1.1x the q01/q99 half-range, so near a saturated command (a gripper at 1, a
  Meta-World hand at its +-1 limit) its outputs went past what any demonstration did and past the
  robot's bounds, and the safety filter clipped a large share of all steps for nothing
  (docs/measured.md, "Safety interventions"). A policy has no reason to command beyond what it was
  shown; the safety filter stays the hard limit.
Dimensions that never vary (q99 == q01, std == 0) get a unit scale so they pass through instead of
exploding; the statistics live in non-persistent buffers and are saved as stats.json, never guessed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vla.types import DatasetStats

_EPS = 1e-6


class Normalizer(nn.Module):
    """Maps state and actions between robot units and the normalized space the network sees."""

    action_center: torch.Tensor
    action_half: torch.Tensor
    action_min: torch.Tensor
    action_max: torch.Tensor
    state_mean: torch.Tensor
    state_std: torch.Tensor

    def __init__(self, stats: DatasetStats) -> None:
        super().__init__()
        lo = np.asarray(stats.action.q01, dtype=np.float64)
        hi = np.asarray(stats.action.q99, dtype=np.float64)
        span = hi - lo
        # Constant dimensions: centre on the value with unit half-range so they map to 0.
        half = np.where(span > _EPS, span / 2.0, 1.0)
        center = (hi + lo) / 2.0
        std = np.asarray(stats.state.std, dtype=np.float64)
        self.register_buffer("action_center", torch.tensor(center, dtype=torch.float32), persistent=False)
        self.register_buffer("action_half", torch.tensor(half, dtype=torch.float32), persistent=False)
        amin = np.minimum(np.asarray(stats.action.min, dtype=np.float64), lo)
        amax = np.maximum(np.asarray(stats.action.max, dtype=np.float64), hi)
        self.register_buffer("action_min", torch.tensor(amin, dtype=torch.float32), persistent=False)
        self.register_buffer("action_max", torch.tensor(amax, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "state_mean", torch.tensor(np.asarray(stats.state.mean), dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "state_std", torch.tensor(np.where(std > _EPS, std, 1.0), dtype=torch.float32), persistent=False
        )
        self.action_dim = int(center.shape[0])
        self.state_dim = int(std.shape[0])

    def state(self, x: torch.Tensor) -> torch.Tensor:
        """float [..., S] robot units -> standardized."""
        return (x - self.state_mean) / self.state_std

    def action(self, x: torch.Tensor) -> torch.Tensor:
        """float [..., A] robot units -> [-1, 1] between q01 and q99 (values beyond go past +-1)."""
        return (x - self.action_center) / self.action_half

    def unaction(self, x: torch.Tensor) -> torch.Tensor:
        """float [..., A] normalized -> robot units, within the demonstrations' [min, max]."""
        return torch.minimum(
            torch.maximum(x * self.action_half + self.action_center, self.action_min), self.action_max
        )
