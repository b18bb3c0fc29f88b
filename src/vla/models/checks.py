"""What a policy accepts: its embodiment and statistics, a training batch, an observation to act on.

Each check names the offending key and what was expected, before any computation.
"""

from __future__ import annotations

import numpy as np
import torch

from vla.models.config import PolicyConfig
from vla.spaces import Embodiment
from vla.types import Batch, DatasetStats, Observation


def check_compatible(cfg: PolicyConfig, emb: Embodiment, stats: DatasetStats) -> None:
    """Refuses stats or cameras that do not fit the embodiment, naming both sides."""
    a_dim, s_dim = emb.action_space().dim, emb.state_dim
    if stats.action.dim != a_dim:
        raise ValueError(
            f"stats.action has {stats.action.dim} dims but embodiment '{emb.name}' acts in {a_dim}"
        )
    if stats.state.dim != s_dim:
        raise ValueError(
            f"stats.state has {stats.state.dim} dims but embodiment '{emb.name}' has state {s_dim}"
        )
    missing = [c for c in cfg.cameras if c not in emb.cameras]
    if missing:
        raise ValueError(
            f"config cameras {missing} are not cameras of '{emb.name}' (it has {list(emb.cameras)})"
        )


def validate_observation(obs: Observation, cfg: PolicyConfig, state_dim: int) -> Observation:
    """Checks cameras, dtypes and shapes and returns the observation with (B, T) axes.

    Raises:
        ValueError: naming the offending key and the expected shape or dtype.
    """
    if not isinstance(obs, Observation):
        raise TypeError(f"predict expects a vla.types.Observation, got {type(obs).__name__}")
    missing = [c for c in cfg.cameras if c not in obs.images]
    if missing:
        raise ValueError(
            f"observation lacks cameras {missing}; the policy needs {list(cfg.cameras)}, got {sorted(obs.images)}"
        )
    state = np.asarray(obs.state)
    if state.ndim not in (1, 3) or state.shape[-1] != state_dim:
        raise ValueError(
            f"observation 'state' must be float [{state_dim}] or [B, T, {state_dim}], got shape {state.shape}"
        )
    single = state.ndim == 1
    b = obs.as_batch() if single else obs
    B, T = b.state.shape[:2]
    for c in cfg.cameras:
        img = b.images[c]
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise ValueError(
                f"image '{c}' must be a uint8 numpy array, got {getattr(img, 'dtype', type(img))}"
            )
        want = "[Hi, Wi, 3]" if single else f"[{B}, {T}, Hi, Wi, 3]"
        if img.ndim != 5 or img.shape[:2] != (B, T) or img.shape[-1] != 3:
            raise ValueError(
                f"image '{c}' must be uint8 {want}, got shape {img.shape if not single else img.shape[2:]}"
            )
    for name, value in b.features.items():
        arr = np.asarray(value)
        if arr.ndim != 2 or arr.shape[0] != B or not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(
                f"observation feature '{name}' must be float [D] or [{B}, D], got {arr.dtype} {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"observation feature '{name}' holds NaN or inf")
    n = 1 if isinstance(b.instruction, str) else len(b.instruction)
    if n != B:
        raise ValueError(f"observation 'instruction' must hold {B} strings (one per batch row), got {n}")
    return b


def check_batch(batch: Batch, cfg: PolicyConfig, state_dim: int, action_dim: int) -> None:
    """Checks a training batch's cameras, dtypes and shapes against the policy's config and sizes."""
    missing = [c for c in cfg.cameras if c not in batch.images]
    if missing:
        raise ValueError(f"batch lacks cameras {missing}; the policy needs {list(cfg.cameras)}")
    T = batch.state.shape[1]
    if batch.state.ndim != 3 or batch.state.shape[-1] != state_dim:
        raise ValueError(f"batch 'state' must be [B, T, {state_dim}], got {tuple(batch.state.shape)}")
    if cfg.obs_horizon > T:
        raise ValueError(
            f"batch has {T} frames of history but the policy needs obs_horizon={cfg.obs_horizon}"
        )
    for c in cfg.cameras:
        img = batch.images[c]
        if img.dtype != torch.uint8 or img.ndim != 5 or img.shape[-1] != 3:
            raise ValueError(
                f"batch image '{c}' must be uint8 [B, T, Hi, Wi, 3], got {img.dtype} {tuple(img.shape)}"
            )
    H, A = cfg.action_horizon, action_dim
    if batch.actions.ndim != 3 or batch.actions.shape[1] < H or batch.actions.shape[2] != A:
        raise ValueError(f"batch 'actions' must be [B, >={H}, {A}], got {tuple(batch.actions.shape)}")
    if tuple(batch.action_pad.shape) != tuple(batch.actions.shape[:2]):
        raise ValueError(
            f"batch 'action_pad' must be [B, H] = {tuple(batch.actions.shape[:2])}, got {tuple(batch.action_pad.shape)}"
        )
