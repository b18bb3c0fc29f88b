"""openvla: OpenVLA-OFT in small — ViT patches + language tokens in a transformer, parallel 256-bin tokens.

An 8-step chunk of tokens decoded in parallel (OFT's parallel decoding with action queries).

Differs: a 2-layer ViT (patch 12) and a 3-layer transformer stand in for SigLIP/DINOv2 + Llama-2; the
language tokens come from the frozen MiniLM instead of the LLM's own embeddings.
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="openvla",
        obs_horizon=1,
        action_horizon=8,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="vit", patch_size=12, vit_dim=128, vit_depth=2, vit_heads=4, pool="tokens", random_shift=4
        ),
        language=LanguageConfig(kind="minilm", use_tokens=True),
        fusion=FusionConfig(kind="transformer", dim=128, depth=3, heads=4, dropout=0.1),
        head=HeadConfig(kind="binned", num_bins=256, hidden=256),
    )
