"""Action heads: regression (chunked L1/MSE), binned tokens, diffusion, flow matching."""

from __future__ import annotations

from vla.models.config import PolicyConfig
from vla.models.heads.base import ActionHead
from vla.models.heads.binned import BinnedHead
from vla.models.heads.diffusion import DiffusionHead
from vla.models.heads.flow import FlowHead
from vla.models.heads.regression import RegressionHead

__all__ = ["ActionHead", "BinnedHead", "DiffusionHead", "FlowHead", "RegressionHead", "build_head"]


def build_head(cfg: PolicyConfig, *, action_dim: int, gripper_dims: tuple[int, ...] = ()) -> ActionHead:
    """Returns the head `cfg.head.kind` names, sized for the fusion width and the chunk length.

    `gripper_dims` are the action indices of the embodiment's gripper (used when head.gripper="bce").
    """
    h, D = cfg.head, cfg.fusion.dim
    if h.kind == "regression":
        if h.gripper == "bce" and not gripper_dims:
            raise ValueError("head.gripper='bce' needs an action group named 'gripper' in the embodiment")
        binary = gripper_dims if h.gripper == "bce" else ()
        return RegressionHead(h, dim=D, action_dim=action_dim, binary_dims=binary)
    if h.kind == "binned":
        return BinnedHead(h, dim=D, action_dim=action_dim)
    if h.kind == "diffusion":
        return DiffusionHead(
            h, dim=D, heads=cfg.fusion.heads, action_dim=action_dim, horizon=cfg.action_horizon
        )
    return FlowHead(h, dim=D, heads=cfg.fusion.heads, action_dim=action_dim, horizon=cfg.action_horizon)
