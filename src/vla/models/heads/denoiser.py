"""The network shared by the diffusion and flow-matching heads (an "action expert", as in π0).

Noisy action chunk (B, H, A) + time (B,) + per-step features (B, H, D) -> (B, H, A). Each action step
is one token; tokens attend to each other (smooth chunks) and cross-attend to the fused observation
context (π0's action expert attending to the VLM prefix; Diffusion Policy's transformer variant).
"""

from __future__ import annotations

import torch
from torch import nn

from vla.models.fusion import FusionOut
from vla.models.layers import Block, sinusoidal


class Denoiser(nn.Module):
    def __init__(
        self, *, dim: int, hidden: int, depth: int, heads: int, action_dim: int, horizon: int
    ) -> None:
        super().__init__()
        self.inp = nn.Linear(action_dim, hidden)
        self.cond = nn.Linear(dim, hidden)
        self.ctx = nn.Linear(dim, hidden)
        self.pos = nn.Parameter(torch.randn(1, horizon, hidden) * 0.02)
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        h = heads if hidden % heads == 0 else 1
        self.blocks = nn.ModuleList([Block(hidden, h, 0.0, cross=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, action_dim)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, t: torch.Tensor, fused: FusionOut) -> torch.Tensor:
        """x: (B, H, A) noisy actions; t: (B,) time in [0, 1000); fused: its features (B, H, D)."""
        te = self.time(sinusoidal(t, self.hidden))[:, None]  # (B, 1, hid)
        h = self.inp(x) + self.cond(fused.features) + self.pos + te  # (B, H, hid)
        mem = self.ctx(fused.context)  # (B, M, hid)
        for blk in self.blocks:
            h, _ = blk(h, memory=mem, memory_mask=fused.context_mask)
        return self.out(self.norm(h))


def repeat_fused(fused: FusionOut, k: int) -> FusionOut:
    """The same conditioning k times along the batch (for drawing k samples at once)."""
    return FusionOut(
        fused.features.repeat(k, 1, 1),
        fused.context.repeat(k, 1, 1),
        fused.context_mask.repeat(k, 1),
        None,
    )
