"""The VLA model family: one architecture (vision + language + state -> fusion -> action head), many
variants selected by `PolicyConfig` (see `vla.presets` for RT-1, OpenVLA-OFT, ACT, Diffusion Policy, π0)."""

from vla.models.config import (
    FusionConfig,
    HeadConfig,
    LanguageConfig,
    PolicyConfig,
    VisionConfig,
    parse_overrides,
)
from vla.models.policy import Policy, build_policy

__all__ = [
    "FusionConfig",
    "HeadConfig",
    "LanguageConfig",
    "Policy",
    "PolicyConfig",
    "VisionConfig",
    "build_policy",
    "parse_overrides",
]
