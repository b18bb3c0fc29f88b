"""State encoder and fusion of [language, state, vision] tokens into per-step action features.

Three fusions, all returning features (B, H, D) for the H steps of the chunk plus the token context
(B, M, D) that generative heads can attend to:
- "concat": one MLP over every token concatenated (the fast CPU default, used by the `default`
  preset). Per-step features = the fused vector + a learned step embedding.
- "transformer": self-attention over [language, state, vision, H action queries], the queries read out
  in parallel (OpenVLA-OFT's parallel decoding; π0/Octo prefix + readout tokens).
- "decoder": transformer encoder over the tokens and a DETR-style decoder of H learned action queries
  cross-attending to it (ACT).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla.models.cameras import VisionOut
from vla.models.config import PolicyConfig
from vla.models.language import LanguageOut
from vla.models.layers import Block


@dataclass(frozen=True)
class FusionOut:
    """features: (B, H, D); context: (B, M, D) with mask (B, M) (True = real token);
    vision_weights: (B, Nv) attention of the action queries over the vision tokens, or None."""

    features: torch.Tensor
    context: torch.Tensor
    context_mask: torch.Tensor
    vision_weights: torch.Tensor | None


class StateEncoder(nn.Module):
    """MLP over the T normalized state vectors -> one token: (B, T, S) -> (B, 1, D)."""

    def __init__(self, state_dim: int, horizon: int, hidden: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(state_dim * horizon, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.LayerNorm(dim)
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.mlp(state.flatten(1))[:, None]


class Fusion(nn.Module):
    """[language, state, vision] tokens -> FusionOut (see module docstring for the kinds)."""

    def __init__(
        self, cfg: PolicyConfig, *, lang_dim: int, num_vision_tokens: int, num_state_tokens: int = 1
    ) -> None:
        super().__init__()
        f = cfg.fusion
        D, H = f.dim, cfg.action_horizon
        self.kind = f.kind
        self.use_lang_tokens = cfg.language.use_tokens and f.kind != "concat"
        self.lang = nn.Sequential(nn.Linear(lang_dim, D), nn.LayerNorm(D))
        self.type_embed = nn.Parameter(torch.randn(4, 1, D) * 0.02)  # language, state, vision, query
        self.queries = nn.Parameter(torch.randn(1, H, D) * 0.02)
        self.drop = nn.Dropout(f.dropout)
        if f.kind == "concat":
            n_in = (1 + num_state_tokens + num_vision_tokens) * D
            self.mlp = nn.Sequential(
                nn.Linear(n_in, D), nn.GELU(), nn.Dropout(f.dropout), nn.Linear(D, D), nn.GELU()
            )
            self.norm = nn.LayerNorm(D)
        else:
            self.encoder = nn.ModuleList([Block(D, f.heads, f.dropout) for _ in range(f.depth)])
            self.norm = nn.LayerNorm(D)
            if f.kind == "decoder":
                self.decoder = nn.ModuleList(
                    [Block(D, f.heads, f.dropout, cross=True) for _ in range(f.dec_depth)]
                )

    def forward(
        self, lang: LanguageOut, state: torch.Tensor, vision: VisionOut, *, return_weights: bool = False
    ) -> FusionOut:
        """lang: LanguageOut; state: the state token(s) (B, S, D) (the state, then e.g. the grounding
        token); vision: tokens (B, Nv, D)."""
        B = state.shape[0]
        if self.use_lang_tokens:
            lt = self.lang(lang.tokens) + self.type_embed[0]  # (B, L, D)
            lmask = lang.mask
        else:
            lt = self.lang(lang.sentence)[:, None] + self.type_embed[0]  # (B, 1, D)
            lmask = torch.ones(B, 1, dtype=torch.bool, device=state.device)
        st = state + self.type_embed[1]  # (B, S, D)
        vt = vision.tokens + self.type_embed[2]  # (B, Nv, D)
        ctx = torch.cat([lt, st, vt], dim=1)  # (B, M, D)
        cmask = torch.cat(
            [lmask, torch.ones(B, st.shape[1] + vt.shape[1], dtype=torch.bool, device=ctx.device)], dim=1
        )
        v0 = lt.shape[1] + st.shape[1]  # index of the first vision token in ctx
        weights = None
        if self.kind == "concat":
            g = self.norm(self.mlp(self.drop(ctx).flatten(1)))  # (B, D)
            feats = g[:, None] + self.queries  # (B, H, D)
            return FusionOut(feats, ctx, cmask, None)
        q = self.queries.expand(B, -1, -1) + self.type_embed[3]  # (B, H, D)
        H = q.shape[1]
        if self.kind == "transformer":
            x = torch.cat([ctx, q], dim=1)  # (B, M + H, D)
            mask = torch.cat([cmask, torch.ones(B, H, dtype=torch.bool, device=ctx.device)], dim=1)
            for i, blk in enumerate(self.encoder):
                last = i == len(self.encoder) - 1
                x, w = blk(x, mask=mask, return_weights=return_weights and last)
                if w is not None:
                    weights = w[:, -H:, v0 : v0 + vt.shape[1]].mean(1)  # (B, Nv)
            x = self.norm(x)
            return FusionOut(x[:, -H:], x[:, :-H], cmask, weights)
        x = ctx
        for blk in self.encoder:
            x, _ = blk(x, mask=cmask)
        memory = self.norm(x)
        for i, blk in enumerate(self.decoder):
            last = i == len(self.decoder) - 1
            q, w = blk(q, memory=memory, memory_mask=cmask, return_weights=return_weights and last)
            if w is not None:
                weights = w[:, :, v0 : v0 + vt.shape[1]].mean(1)  # (B, Nv)
        return FusionOut(q, memory, cmask, weights)
