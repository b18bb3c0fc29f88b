"""diffusion: Diffusion Policy — FiLM CNN + spatial softmax, 2 frames, DDPM (100 levels), DDIM 10 steps.

After Chi et al. 2023: a transformer denoiser over a 16-step chunk.

Differs: a compact CNN instead of ResNet-18, and a 2-layer transformer denoiser (the paper's
"transformer" variant) instead of the 1-D conv U-Net, to stay fast on a CPU.
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="diffusion",
        obs_horizon=2,
        action_horizon=16,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="cnn",
            channels=(32, 64, 64, 64),
            strides=(2, 2, 2, 1),
            film=True,
            pool="spatial_softmax",
            num_keypoints=32,
            random_shift=4,
        ),
        language=LanguageConfig(kind="minilm"),
        fusion=FusionConfig(kind="concat", dim=256, dropout=0.1),
        head=HeadConfig(kind="diffusion", hidden=128, denoiser_depth=2, train_steps=100, sample_steps=10),
    )
