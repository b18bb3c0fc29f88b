"""Transformer image backbones: a small ViT (patches + CLS + position embeddings) and any local
`transformers` vision model (ViT, ResNet, ConvNeXt, ... loaded from a directory, safetensors only).

Both return either tokens (N, L, C) or a feature map (N, C, h, w); the camera encoder pools them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.models.layers import Block


class ViT(nn.Module):
    """Patch embedding + learned position embeddings + CLS token + pre-norm transformer blocks."""

    def __init__(self, image_size: tuple[int, int], patch: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.grid = (image_size[0] // patch, image_size[1] // patch)
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, 0.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.out_channels = dim

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, 3, Hi, Wi) -> tokens (N, 1 + h*w, C), CLS first. `cond` is unused (no FiLM)."""
        p = self.patch(x).flatten(2).transpose(1, 2)  # (N, h*w, C)
        x = torch.cat([self.cls.expand(p.shape[0], -1, -1), p], dim=1) + self.pos
        for blk in self.blocks:
            x, _ = blk(x)
        return self.norm(x)


class HFVision(nn.Module):
    """A pretrained `transformers` vision backbone from a local directory (fine-tuned with the policy).

    The model's config is kept so a checkpoint can rebuild the architecture without the original
    directory (`from_config`), then take the weights from model.safetensors.
    """

    def __init__(self, path: str, *, hf_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        if hf_config is not None:
            cfg_dict = dict(hf_config)
            model_type = cfg_dict.pop("model_type")
            self.model = AutoModel.from_config(AutoConfig.for_model(model_type, **cfg_dict))
        else:
            p = Path(path)
            if not p.is_dir():
                raise FileNotFoundError(f"vision backbone directory '{path}' does not exist")
            if not any(p.glob("*.safetensors")):
                raise ValueError(
                    f"vision backbone '{path}' has no .safetensors weights; vla never unpickles .bin files"
                )
            self.model = AutoModel.from_pretrained(str(p), local_files_only=True, use_safetensors=True)
        cfg = self.model.config
        self.hf_config = cfg.to_dict()
        self.tokens_out = cfg.model_type not in ("resnet", "convnext", "convnextv2", "regnet", "efficientnet")
        sizes = getattr(cfg, "hidden_sizes", None)
        self.out_channels = int(sizes[-1]) if (not self.tokens_out and sizes) else int(cfg.hidden_size)
        self.interpolate = cfg.model_type in ("vit", "deit", "dinov2")

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, 3, Hi, Wi) -> tokens (N, L, C) or a feature map (N, C, h, w)."""
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        return self.model(pixel_values=x, **kwargs).last_hidden_state
