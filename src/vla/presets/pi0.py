"""pi0: π0 in small — prefix transformer over ViT patches, language and state; flow-matching expert.

After Black et al. 2024: the expert cross-attends to the prefix; 10 Euler steps per 16-step chunk.

Differs: a 2-layer ViT + 2-layer transformer instead of PaliGemma (3 B), MiniLM language tokens, and
the expert attends to the prefix's final layer only (π0 shares every layer's keys and values).
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="pi0",
        obs_horizon=1,
        action_horizon=16,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="vit", patch_size=12, vit_dim=128, vit_depth=2, vit_heads=4, pool="tokens", random_shift=4
        ),
        language=LanguageConfig(kind="minilm", use_tokens=True),
        fusion=FusionConfig(kind="transformer", dim=128, depth=2, heads=4, dropout=0.1),
        head=HeadConfig(kind="flow", hidden=128, denoiser_depth=2, sample_steps=10),
    )
