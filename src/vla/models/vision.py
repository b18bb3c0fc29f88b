"""Convolutional image backbones (compact GroupNorm CNN, ResNet-18 layout) and their pooling.

Backbones map float images (N, 3, Hi, Wi) to a feature map (N, C, h, w), optionally FiLM-conditioned on
the instruction embedding after every stage (RT-1, after Perez et al. 2018). GroupNorm, not BatchNorm:
batch statistics break with the small batches and single-observation inference of robot policies
(Diffusion Policy replaces BatchNorm for the same reason).

Pooling turns a feature map into tokens: spatial softmax (Levine et al. 2016: expected x/y of K learned
keypoint maps, cheap and precise about *where*), average pooling, every position, or TokenLearner
(Ryoo et al. 2021, as in RT-1: K learned spatial attention maps, each pooling the map into one token).
Every pool also returns the spatial maps behind its tokens, for grounding overlays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FiLM(nn.Module):
    """Feature-wise affine modulation x * (1 + gamma(c)) + beta(c); starts as the identity."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: (N, C, h, w); cond: (N, Dc)."""
        gamma, beta = self.proj(cond)[:, :, None, None].chunk(2, dim=1)  # (N, C, 1, 1) each
        return x * (1.0 + gamma) + beta


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class CompactCNN(nn.Module):
    """Plain 3x3 conv stages, GroupNorm, optional FiLM, ReLU. Sized for CPU speed."""

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], *, cond_dim: int | None) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.films = nn.ModuleList()
        c_in = 3
        for c, s in zip(channels, strides, strict=True):
            self.convs.append(nn.Conv2d(c_in, c, 3, stride=s, padding=1))
            self.norms.append(nn.GroupNorm(_groups(c), c))
            if cond_dim is not None:
                self.films.append(FiLM(cond_dim, c))
            c_in = c
        self.out_channels = c_in

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x: (N, 3, Hi, Wi) float; cond: (N, Dc) or None -> (N, C, h, w)."""
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = norm(conv(x))
            if len(self.films) and cond is not None:
                x = self.films[i](x, cond)
            x = F.relu(x)
        return x


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.n1 = nn.GroupNorm(_groups(c_out), c_out)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.n2 = nn.GroupNorm(_groups(c_out), c_out)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.GroupNorm(_groups(c_out), c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.skip(x) + self.n2(self.c2(F.relu(self.n1(self.c1(x))))))


class ResNet18(nn.Module):
    """ResNet-18 layout (7x7 stem, 4 stages of 2 basic blocks), GroupNorm, FiLM after each stage.

    `width` is the first stage's channels (64 in the original; smaller widths for CPU budgets).
    """

    def __init__(self, width: int, *, cond_dim: int | None) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False),
            nn.GroupNorm(_groups(width), width),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.stages = nn.ModuleList()
        self.films = nn.ModuleList()
        c_in = width
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.stages.append(nn.Sequential(_BasicBlock(c_in, w, stride), _BasicBlock(w, w, 1)))
            if cond_dim is not None:
                self.films.append(FiLM(cond_dim, w))
            c_in = w
        self.out_channels = c_in

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """x: (N, 3, Hi, Wi) -> (N, 8 * width, Hi / 32, Wi / 32)."""
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if len(self.films) and cond is not None:
                x = self.films[i](x, cond)
        return x


def _keypoint_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(x, y) in [-1, 1] of every cell of an h x w map, row-major: (h * w, 2)."""
    ys = torch.linspace(-1.0, 1.0, h, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.flatten(), gy.flatten()], dim=-1)


class SpatialSoftmax(nn.Module):
    """K keypoints: softmax over positions of K learned maps -> expected (x, y) in [-1, 1]."""

    def __init__(self, channels: int, num_keypoints: int) -> None:
        super().__init__()
        # A 1x1 convolution written as a matmul: PyTorch's CPU path for 1x1 convs is several times slower.
        self.weight = nn.Parameter(torch.randn(num_keypoints, channels) * channels**-0.5)
        self.bias = nn.Parameter(torch.zeros(num_keypoints, 1))
        self.log_temp = nn.Parameter(torch.zeros(()))
        self.out_dim = 2 * num_keypoints
        self._grids: dict[tuple[int, int, str], torch.Tensor] = {}

    def _grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._grids:
            # Built outside inference mode so the cached grid can also serve training steps.
            with torch.inference_mode(False):
                self._grids[key] = _keypoint_grid(h, w, device)
        return self._grids[key]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, h, w) -> keypoints (N, 2K) and attention maps (N, K, h * w)."""
        h, w = x.shape[-2:]
        logits = (self.weight @ x.flatten(2) + self.bias) / self.log_temp.exp()  # (N, K, h*w)
        att = logits.softmax(-1)
        kp = att @ self._grid(h, w, x.device)  # (N, K, 2)
        return kp.flatten(1), att


class TokenLearner(nn.Module):
    """RT-1's TokenLearner: K spatial attention maps from a small conv MLP, each pooling one token."""

    def __init__(self, channels: int, num_tokens: int) -> None:
        super().__init__()
        hidden = max(channels // 2, num_tokens)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, num_tokens, 1))
        self.norm = nn.GroupNorm(_groups(channels), channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C, h, w) -> tokens (N, K, C) and their maps (N, K, h * w)."""
        x = self.norm(x)
        att = self.mlp(x).flatten(2).softmax(-1)  # (N, K, h*w)
        tokens = att @ x.flatten(2).transpose(1, 2)  # (N, K, C)
        return tokens, att


def build_conv_backbone(
    kind: str, channels: tuple[int, ...], strides: tuple[int, ...], *, cond_dim: int | None
) -> CompactCNN | ResNet18:
    """Returns the conv backbone `kind` ("cnn" or "resnet18")."""
    if kind == "cnn":
        return CompactCNN(channels, strides, cond_dim=cond_dim)
    if kind == "resnet18":
        return ResNet18(channels[0], cond_dim=cond_dim)
    raise ValueError(f"not a convolutional backbone: '{kind}' (expected 'cnn' or 'resnet18')")
