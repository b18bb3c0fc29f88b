"""Action heads: regression (chunked L1/MSE), binned tokens, diffusion, flow matching."""

from __future__ import annotations

from vla.models.config import PolicyConfig
from vla.models.heads.base import ActionHead
from vla.models.heads.binned import BinnedHead
from vla.models.heads.diffusion import DiffusionHead
from vla.models.heads.flow import FlowHead
from vla.models.heads.regression import RegressionHead

__all__ = ["ActionHead", "BinnedHead", "DiffusionHead", "FlowHead", "RegressionHead", "build_head"]


def build_head(cfg: PolicyConfig, *, action_dim: int) -> ActionHead:
    """Returns the head `cfg.head.kind` names, sized for the fusion width and the chunk length."""
    h, D = cfg.head, cfg.fusion.dim
    if h.kind == "regression":
        return RegressionHead(h, dim=D, action_dim=action_dim)
    if h.kind == "binned":
        return BinnedHead(h, dim=D, action_dim=action_dim)
    if h.kind == "diffusion":
        return DiffusionHead(
            h, dim=D, heads=cfg.fusion.heads, action_dim=action_dim, horizon=cfg.action_horizon
        )
    return FlowHead(h, dim=D, heads=cfg.fusion.heads, action_dim=action_dim, horizon=cfg.action_horizon)
