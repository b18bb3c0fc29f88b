"""rt1: RT-1 in small — FiLM CNN, TokenLearner, transformer, 256-bin action tokens (Brohan et al. 2022).

Differs from the paper for CPU budgets: a 4-stage CNN instead of FiLM-EfficientNet-B3, 2 history frames
instead of 6, 8 TokenLearner tokens per camera-frame, and a 4-step chunk of tokens decoded in parallel
(RT-1 emitted one step per call).
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="rt1",
        obs_horizon=2,
        action_horizon=4,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="cnn",
            channels=(32, 64, 64, 96),
            strides=(2, 2, 2, 1),
            film=True,
            pool="token_learner",
            num_tokens=8,
            random_shift=4,
        ),
        language=LanguageConfig(kind="minilm"),
        fusion=FusionConfig(kind="transformer", dim=128, depth=3, heads=4, dropout=0.1),
        head=HeadConfig(kind="binned", num_bins=256, hidden=256),
    )
