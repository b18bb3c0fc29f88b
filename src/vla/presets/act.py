"""act: ACT — ResNet-18-layout tokens, transformer encoder, DETR action-query decoder, L1 16-step chunk.

After Zhao et al. 2023.

Differs: a narrow ResNet-18 (base width 16, GroupNorm) from scratch instead of ImageNet ResNet-18, no
CVAE latent (the L1 chunk alone already works on scripted demos), and the instruction as one extra
token (ACT had none). Temporal ensembling is the runtime's wrapper.
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="act",
        obs_horizon=1,
        action_horizon=16,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="resnet18", channels=(16,), strides=(1,), film=False, pool="tokens", random_shift=4
        ),
        language=LanguageConfig(kind="minilm"),
        fusion=FusionConfig(kind="decoder", dim=128, depth=2, dec_depth=2, heads=4, dropout=0.1),
        head=HeadConfig(kind="regression", loss="l1", tanh=True, ensemble=3, hidden=128),
    )
