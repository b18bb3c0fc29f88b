"""Multi-camera, multi-frame image encoder: uint8 images -> D-wide vision tokens.

Each camera has its own backbone (or one shared backbone when `share_cameras`), a pooling step and a
projection to the fusion width D; every token gets a learned camera embedding and a learned frame
(history step) embedding, so the fusion can tell the wrist view from the scene view and now from before.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla.models.config import PolicyConfig
from vla.models.vision import SpatialSoftmax, TokenLearner, build_conv_backbone
from vla.models.vit import HFVision, ViT


@dataclass(frozen=True)
class VisionOut:
    """Vision tokens plus what is needed to paint attention back onto the images.

    Attributes:
        tokens: (B, V * T * n, D), ordered camera-major, then frame, then token.
        maps: per camera, (B, n, h * w) spatial weights of its last frame's n tokens (None: identity).
        grid: (h, w) of the feature map the maps live on.
        spans: per camera, the [start, stop) slice of its last frame's tokens within `tokens`.
        features: per camera, its last frame's feature map (B, C, h, w) for convolutional backbones
            (the attention grounding head reads them), else None.
    """

    tokens: torch.Tensor
    maps: list[torch.Tensor | None]
    grid: tuple[int, int]
    spans: list[tuple[int, int]]
    features: list[torch.Tensor | None] = field(default_factory=list)


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ random shift: replicate-pad by `pad` px, crop back at a random offset per image.

    x: (N, C, Hi, Wi) float -> same shape. Integer shifts through grid_sample (exact, batched).
    """
    n, _, h, w = x.shape
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    eps_h, eps_w = 1.0 / (h + 2 * pad), 1.0 / (w + 2 * pad)
    ar_h = torch.linspace(-1.0 + eps_h, 1.0 - eps_h, h + 2 * pad, device=x.device)[:h]
    ar_w = torch.linspace(-1.0 + eps_w, 1.0 - eps_w, w + 2 * pad, device=x.device)[:w]
    gy, gx = torch.meshgrid(ar_h, ar_w, indexing="ij")
    base = torch.stack([gx, gy], dim=-1)[None].expand(n, h, w, 2)  # (N, h, w, 2)
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), device=x.device).float()
    shift = shift * torch.tensor([2.0 * eps_w, 2.0 * eps_h], device=x.device)
    return F.grid_sample(x, base + shift, padding_mode="zeros", align_corners=False)


class CameraEncoder(nn.Module):
    """Backbone + pooling + projection for one camera: float (N, 3, Hi, Wi) -> tokens (N, n, D)."""

    def __init__(
        self, cfg: PolicyConfig, *, cond_dim: int | None, dim: int, hf_config: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        v = cfg.vision
        self.pool = v.pool
        self.backbone: nn.Module
        if v.kind in ("cnn", "resnet18"):
            self.backbone = build_conv_backbone(
                v.kind, v.channels, v.strides, cond_dim=cond_dim if v.film else None
            )
        elif v.kind == "vit":
            self.backbone = ViT(cfg.image_size, v.patch_size, v.vit_dim, v.vit_depth, v.vit_heads)
        else:
            self.backbone = HFVision(v.pretrained_path, hf_config=hf_config)
        c = int(getattr(self.backbone, "out_channels", 0))
        with torch.no_grad():
            probe = self.backbone(torch.zeros(1, 3, *cfg.image_size), None)
        self.is_map = probe.ndim == 4
        self.grid: tuple[int, int] = (
            (int(probe.shape[2]), int(probe.shape[3])) if self.is_map else _token_grid(probe.shape[1])
        )
        self.keypoints: SpatialSoftmax | None = None
        self.learner: TokenLearner | None = None
        if v.pool == "spatial_softmax":
            self.keypoints = SpatialSoftmax(c, v.num_keypoints)
            self.proj = nn.Linear(self.keypoints.out_dim + c, dim)
        elif v.pool == "token_learner":
            self.learner = TokenLearner(c, v.num_tokens)
            self.proj = nn.Linear(c, dim)
        else:
            self.proj = nn.Linear(c, dim)
        n = self.grid[0] * self.grid[1] if v.pool == "tokens" else 1
        self.num_tokens = v.num_tokens if v.pool == "token_learner" else n
        self.pos = nn.Parameter(torch.randn(1, self.num_tokens, dim) * 0.02)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x: (N, 3, Hi, Wi); cond: (N, Dc) -> tokens (N, n, D), maps (N, n, h*w) or None (identity),
        and the feature map (N, C, h, w) for convolutional backbones (else None)."""
        f = self.backbone(x, cond)
        maps: torch.Tensor | None
        if self.keypoints is not None:
            kp, att = self.keypoints(f)  # (N, 2K), (N, K, h*w)
            tokens = self.proj(torch.cat([kp, f.mean(dim=(2, 3))], dim=-1))[:, None]  # (N, 1, D)
            maps = att.mean(1, keepdim=True)
        elif self.learner is not None:
            t, maps = self.learner(f)  # (N, K, C), (N, K, h*w)
            tokens = self.proj(t)
        else:
            if self.is_map:
                seq = f.flatten(2).transpose(1, 2)  # (N, h*w, C)
            else:
                seq = f[:, 1:] if f.shape[1] == self.grid[0] * self.grid[1] + 1 else f  # drop CLS
            if self.pool == "avg":
                pooled = (
                    f[:, :1] if not self.is_map and f.shape[1] != seq.shape[1] else seq.mean(1, keepdim=True)
                )
                tokens = self.proj(pooled)
                maps = torch.full((x.shape[0], 1, seq.shape[1]), 1.0 / seq.shape[1], device=x.device)
            else:
                tokens = self.proj(seq)
                maps = None
        return tokens + self.pos, maps, f if self.is_map else None


def _token_grid(n_tokens: int) -> tuple[int, int]:
    """(h, w) of a square patch grid behind n tokens (with or without a CLS token)."""
    for n in (n_tokens - 1, n_tokens):
        side = round(n**0.5)
        if side * side == n and n > 0:
            return side, side
    return 1, n_tokens


class VisionEncoder(nn.Module):
    """All cameras and frames: dict of uint8 (B, T, Hi, Wi, 3) -> VisionOut with D-wide tokens."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, cfg: PolicyConfig, *, cond_dim: int, dim: int, hf_config: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.cameras = cfg.cameras
        self.image_size = cfg.image_size
        self.shift = cfg.vision.random_shift
        self.shared = cfg.vision.share_cameras
        # Each camera's slot in the camera embedding and FiLM one-hot (`VisionConfig.camera_slots`).
        slots = cfg.vision.camera_slots or cfg.cameras
        self.slots = [slots.index(c) for c in cfg.cameras]
        n_enc = 1 if self.shared else len(cfg.cameras)
        film_dim = cond_dim + len(slots) if self.shared else cond_dim
        self.encoders = nn.ModuleList(
            [CameraEncoder(cfg, cond_dim=film_dim, dim=dim, hf_config=hf_config) for _ in range(n_enc)]
        )
        self.cam_embed = nn.Parameter(torch.randn(len(slots), 1, dim) * 0.02)
        self.time_embed = nn.Parameter(torch.randn(cfg.obs_horizon, 1, dim) * 0.02)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    @property
    def first(self) -> CameraEncoder:
        return typing.cast(CameraEncoder, self.encoders[0])

    @property
    def grid(self) -> tuple[int, int]:
        return self.first.grid

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 (N, Hi', Wi', 3) -> float (N, 3, Hi, Wi), resized if needed, roughly zero-mean."""
        x = img.permute(0, 3, 1, 2).float().div_(255.0)
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        if self.training and self.shift > 0:
            x = random_shift(x, self.shift)
        return (x - self.mean) / self.std

    def forward(self, images: dict[str, torch.Tensor], cond: torch.Tensor) -> VisionOut:
        """images: camera -> uint8 (B, T, Hi, Wi, 3); cond: (B, Dc) instruction embedding."""
        V = len(self.cameras)
        B, T = images[self.cameras[0]].shape[:2]
        c = cond.repeat_interleave(T, dim=0)  # (B*T, Dc)
        xs = [self.preprocess(images[cam].reshape(B * T, *images[cam].shape[2:])) for cam in self.cameras]
        if self.shared:
            # One backbone pass over every camera (much cheaper than V small passes on a CPU); FiLM gets
            # the camera's one-hot beside the instruction so the shared convolutions can still specialize.
            eye = torch.eye(self.cam_embed.shape[0], device=c.device)[self.slots]  # (V, slots)
            onehot = eye.repeat_interleave(B * T, dim=0)  # (V*B*T, slots)
            tok, m, f = self.first(torch.cat(xs), torch.cat([c.repeat(V, 1), onehot], dim=1))  # (V*B*T, n, D)
            outs = list(
                zip(
                    tok.chunk(V),
                    [None] * V if m is None else m.chunk(V),
                    [None] * V if f is None else f.chunk(V),
                    strict=True,
                )
            )
        else:
            outs = [enc(x, c) for enc, x in zip(self.encoders, xs, strict=True)]
        all_tokens, maps, spans, feats = [], [], [], []
        offset = 0
        for v, (tok, m, f) in enumerate(outs):
            n = tok.shape[1]
            tok = tok.reshape(B, T, n, -1) + self.time_embed[None, :T] + self.cam_embed[self.slots[v]]
            all_tokens.append(tok.reshape(B, T * n, -1))
            maps.append(None if m is None else m.reshape(B, T, n, -1)[:, -1])
            spans.append((offset + (T - 1) * n, offset + T * n))
            feats.append(None if f is None else f.reshape(B, T, *f.shape[1:])[:, -1])  # (B, C, h, w)
            offset += T * n
        return VisionOut(torch.cat(all_tokens, dim=1), maps, self.grid, spans, feats)
