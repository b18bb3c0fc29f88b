"""π0's flow-matching action expert (Black et al. 2024): x_t = t * noise + (1 - t) * actions, the network
predicts the velocity noise - actions; t ~ Beta(1.5, 1) (more weight on noisy times, as openpi does);
sampling integrates from t = 1 to 0 with `sample_steps` (10) Euler steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla.models.config import HeadConfig
from vla.models.fusion import FusionOut
from vla.models.heads.base import ActionHead, masked_mean, spread_confidence
from vla.models.heads.denoiser import Denoiser, repeat_fused

TIME_SCALE = 999.0  # the denoiser's time embedding expects [0, 1000)


class FlowHead(ActionHead):
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
        self.steps = cfg.sample_steps
        self.k = cfg.confidence_samples
        self.beta = torch.distributions.Beta(torch.tensor(1.5), torch.tensor(1.0))

    def loss(
        self, fused: FusionOut, target: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        B = target.shape[0]
        t = (self.beta.sample((B,)) * 0.999 + 0.001).to(target.device)  # (B,)
        noise = torch.randn_like(target)
        tt = t[:, None, None]
        x_t = tt * noise + (1 - tt) * target
        v = self.net(x_t, t * TIME_SCALE, fused)
        loss = masked_mean(F.mse_loss(v, noise - target, reduction="none"), valid)
        return loss, {"loss": float(loss.detach())}

    def _euler(
        self, fused: FusionOut, shape: tuple[int, ...], generator: torch.Generator | None
    ) -> torch.Tensor:
        device = fused.features.device
        x = torch.randn(shape, generator=generator, device=device)
        dt = 1.0 / self.steps
        for i in range(self.steps):
            t = torch.full((shape[0],), 1.0 - i * dt, device=device)
            x = x - dt * self.net(x, t * TIME_SCALE, fused)
        return x

    def sample(
        self, fused: FusionOut, *, generator: torch.Generator | None = None, with_confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, H = fused.features.shape[:2]
        A = self.net.out.out_features
        if not with_confidence:
            return self._euler(fused, (B, H, A), generator), None
        xs = self._euler(repeat_fused(fused, self.k), (self.k * B, H, A), generator).view(self.k, B, H, A)
        return xs.mean(0), spread_confidence(xs)
