"""octo: Octo in small — CNN tokens of 2 frames, language tokens and readouts in a transformer; diffusion.

After the Octo Model Team 2024.

Differs: 2 transformer layers instead of 12, a 2-layer transformer denoiser instead of Octo's MLP
diffusion head, and block-causal attention between frames is not enforced (2 frames, one chunk).
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="octo",
        obs_horizon=2,
        action_horizon=8,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="cnn",
            channels=(32, 64, 64),
            strides=(2, 2, 2),
            film=False,
            pool="token_learner",
            num_tokens=9,
            random_shift=4,
        ),
        language=LanguageConfig(kind="minilm", use_tokens=True),
        fusion=FusionConfig(kind="transformer", dim=128, depth=2, heads=4, dropout=0.1),
        head=HeadConfig(kind="diffusion", hidden=128, denoiser_depth=2, train_steps=100, sample_steps=10),
    )
