"""Small transformer building blocks whose attention weights can be read back (for grounding maps).

Pre-norm blocks (GPT-2 / ViT style) built on `scaled_dot_product_attention` for speed; when asked, the
attention is computed explicitly so its weights can be returned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of queries x over keys/values y."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        key_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, N, D) queries; y: (B, M, D) keys; key_mask: bool (B, M), True = attend.

        Returns the output (B, N, D) and, if asked, weights averaged over heads (B, N, M).
        """
        B, N, D = x.shape
        M = y.shape[1]
        hs = D // self.heads
        q = self.q(x).view(B, N, self.heads, hs).transpose(1, 2)  # (B, nh, N, hs)
        k, v = self.kv(y).view(B, M, 2, self.heads, hs).permute(2, 0, 3, 1, 4)  # (B, nh, M, hs) each
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, M)
        weights = None
        if return_weights:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, N, M)
            if mask is not None:
                att = att.masked_fill(~mask, float("-inf"))
            att = att.softmax(-1)
            weights = att.mean(1)
            o = att @ v
        else:
            p = self.dropout if self.training else 0.0
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        o = o.transpose(1, 2).reshape(B, N, D)
        return self.out(o), weights


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(
        self, dim: int, heads: int, dropout: float, *, cross: bool = False, mlp_ratio: int = 4
    ) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.cross = Attention(dim, heads, dropout) if cross else None
        self.nc = nn.LayerNorm(dim) if cross else None
        self.n2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, N, D); mask: bool (B, N); memory: (B, M, D). Returns x and the last attention weights."""
        h = self.n1(x)
        a, w = self.attn(h, h, key_mask=mask, return_weights=return_weights and self.cross is None)
        x = x + self.drop(a)
        if self.cross is not None and self.nc is not None:
            if memory is None:
                raise ValueError("a cross-attention block needs `memory`")
            a, w = self.cross(self.nc(x), memory, key_mask=memory_mask, return_weights=return_weights)
            x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.n2(x)))
        return x, w


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of scalars t (B,) in [0, 1000) -> (B, dim) (DDPM / transformer style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    return F.pad(emb, (0, dim - emb.shape[-1]))
