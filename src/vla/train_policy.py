"""The policy config a training run builds: its preset, the run's overrides, and the data's cameras."""

from __future__ import annotations

import logging

from vla.config import TrainConfig
from vla.models import PolicyConfig, parse_overrides
from vla.presets import get_preset
from vla.spaces import Embodiment

log = logging.getLogger("vla.train")

__all__ = ["build_policy_config", "fit_cameras"]


def build_policy_config(cfg: TrainConfig) -> PolicyConfig:
    """The preset named by `cfg`, with its overrides applied."""
    policy_cfg = get_preset(cfg.preset)
    if cfg.policy_overrides:
        policy_cfg = policy_cfg.override(parse_overrides(list(cfg.policy_overrides)))
    return policy_cfg


def fit_cameras(policy_cfg: PolicyConfig, embodiment: Embodiment, overrides: tuple[str, ...]) -> PolicyConfig:
    """The preset's cameras, or, when the data's robot lacks one of them and `cameras` was not set
    by hand, every camera of the robot in its declared order: a preset is written for the Panda's
    scene + wrist pair, and `vla train data/g1.h5` should train on the G1's head and wrist cameras
    rather than fail. A hand-set `cameras` is kept (a missing one is then an error naming both)."""
    if all(c in embodiment.cameras for c in policy_cfg.cameras):
        return policy_cfg
    if "cameras" in parse_overrides(list(overrides)):
        return policy_cfg
    cams = tuple(embodiment.cameras)
    log.info(
        "cameras %s (the %s preset's %s are not %s's)",
        list(cams),
        policy_cfg.name,
        list(policy_cfg.cameras),
        embodiment.name,
    )
    return policy_cfg.override({"cameras": cams})
