"""default: the fast CPU policy — FiLM GroupNorm CNN over both cameras, spatial softmax, L1 8-step chunk.

Why this shape: a small FiLM-conditioned CNN with an L1 chunk head trains fast on a CPU, and from one
low-resolution camera its limits are small objects and a single viewpoint. Here two 96 px cameras (scene
+ wrist) go through one 4-stage GroupNorm CNN in a single batched pass (two small passes cost almost
twice as much on a CPU); FiLM conditions every stage on the cached MiniLM sentence embedding plus the
camera's one-hot, so the instruction decides which block the keypoints track (distractors share colour
or shape) and each camera still gets its own modulation. Spatial softmax (32 keypoints per camera on a
12 x 12 map) keeps *where* precise. Three ensemble output heads give a confidence for one extra matmul.
A random shift of 4 px regularizes.

`goal_loss=1.0`: the auxiliary sub-goal target (`vla.data.subgoals`, where the gripper will next close or
open) is what makes this policy generalize to new layouts: without it the policy memorizes its
demonstrations (docs/measured.md#learning has the runs with and without it).
"""

from __future__ import annotations

from vla.models.config import FusionConfig, HeadConfig, LanguageConfig, PolicyConfig, VisionConfig


def config() -> PolicyConfig:
    return PolicyConfig(
        name="default",
        obs_horizon=1,
        action_horizon=8,
        cameras=("scene", "wrist"),
        image_size=(96, 96),
        vision=VisionConfig(
            kind="cnn",
            channels=(16, 32, 64, 64),
            strides=(2, 2, 2, 1),
            film=True,
            share_cameras=True,
            pool="spatial_softmax",
            num_keypoints=32,
            random_shift=4,
        ),
        language=LanguageConfig(kind="minilm"),
        fusion=FusionConfig(kind="concat", dim=256, dropout=0.1, state_hidden=128),
        head=HeadConfig(kind="regression", loss="l1", tanh=True, ensemble=3, hidden=256),
        goal_loss=1.0,
    )
