"""Grounding head: vision tokens -> where the instructed objects are, fed to the action head as a token.

What it predicts: one declared episode feature (`vla.features`, `PolicyConfig.grounding_feature`)
laid out as `LAYOUT`: the instructed object's position ("target"), where it should go ("place"), and
the target's yaw as a cos/sin pair, from the FiLM-conditioned vision tokens and the end-effector pose.
Any suite that declares a feature of this layout can train it. It is trained on labelled rendered
views (`vla collect-grounding`, `vla train --grounding`): finding the object is learned from
unlimited free views instead of a few hundred demonstrations.

How the action head uses it: the scene estimate, relative to the end effector, is one more fusion
token, so the action head sees "the target is 6 cm ahead and 2 cm left" instead of having to find the
target itself; acting on a relative position transfers across layouts.

Which estimate (decided by measurement, docs/measured.md):
- At run time the estimate is read once, from the episode's *first* frame (arm at home, nothing
  hidden), and held for the episode (`vla.runtime.chunking.ObservationHistory`). Estimated live, frame by frame,
  it placed the target within 1-2 cm on the first frame but drifted 10-20 cm towards the hand as the
  arm came close, and the policy closed the gripper above the object (docs/measured.md).
  Holding is right because nothing moves before the robot touches it, and the place (container, base,
  reference) does not move at all; after a grasp the held target is where the object *was*, which is
  also what the demonstrations' token says.
- In training the token is built from the scene labels the demonstration recorded at its start
  (`Batch.features[name]`) plus Gaussian noise of `grounding_noise` metres, the size of the head's own error.
  Built from the head's co-trained prediction instead, the token is noise early in training and the
  action head learns to ignore it. Datasets without recorded labels fall back to the head's own
  (detached) prediction on each frame.

Positions are standardized with the dataset's `ee_pos` statistics, the same units as the state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla.features import Feature
from vla.models.cameras import VisionOut
from vla.models.grounding_attention import ROLES, RoleAttention, RolePhrases
from vla.models.language import LanguageOut

# The layout of the feature the head estimates: (part name, kind, size), in order. The positions are
# the instruction's roles (`ROLES`); the angle is the target's yaw as one cos/sin pair.
LAYOUT = (("target", "position", 3), ("place", "position", 3), ("yaw", "angle", 2))
NUM_LABELS = sum(size for _, _, size in LAYOUT)


def check_feature(feature: Feature) -> None:
    """Raises unless `feature` is laid out as the head estimates it (`LAYOUT`)."""
    if feature.layout() != LAYOUT or feature.scope != "episode":
        raise ValueError(
            f"the grounding head estimates an episode feature laid out as {list(LAYOUT)}; feature "
            f"'{feature.name}' is a {feature.scope} feature laid out as {list(feature.layout())}"
        )


FINE_SCALE = 0.03  # m: the fine copy of the token's offsets saturates beyond a few centimetres


class GroundingHead(nn.Module):
    """Vision output + (B, P) standardized end-effector pose + the instruction's encoding -> (B, 8)
    prediction, and the (B, 1, D) grounding token for fusion.

    Predictors (`PolicyConfig.grounding_head`): "mlp" reads the pooled vision tokens and the
    sentence embedding; "phrases" adds a phrase vector per role; "roles" reads one vision pass per
    role, conditioned on that role's phrase (`conditions`); "attention"
    (`vla.models.grounding_attention`) attends per role over the instruction's tokens and the
    cameras' feature maps.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        *,
        pose_dim: int,
        lang_dim: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        hidden: int = 256,
        kind: str = "mlp",
        channels: int = 0,
        num_cameras: int = 0,
    ) -> None:
        super().__init__()
        if mean.numel() != 3:
            raise ValueError(
                f"grounding needs a 3-D end-effector position, got ee_pos of {mean.numel()} dims"
            )
        self.kind = kind
        self.mlp: nn.Sequential | None = None
        self.roles: nn.ModuleList | None = None
        self.yaw: nn.Sequential | None = None  # "roles": the block's yaw, from the target's pass
        self.attention: RoleAttention | None = None
        self.phrases: RolePhrases | None = None
        if kind in ("mlp", "phrases"):
            n_lang = lang_dim
            if kind == "phrases":
                self.phrases = RolePhrases(lang_dim)
                n_lang += len(ROLES) * lang_dim
            self.mlp = _mlp(num_tokens * dim + pose_dim + n_lang, hidden, NUM_LABELS)
        elif kind == "roles":
            # One vision pass per role, FiLM-conditioned on that role's phrase; each role's MLP reads
            # its own pass (see `conditions`).
            self.phrases = RolePhrases(lang_dim)
            per_role = num_tokens * dim + pose_dim + 2 * lang_dim
            self.roles = nn.ModuleList([_mlp(per_role, hidden, 3) for _ in ROLES])
            self.yaw = _mlp(per_role, hidden, 2)
        elif kind == "attention":
            if channels <= 0 or num_cameras <= 0:
                raise ValueError(
                    "grounding_head='attention' needs a convolutional vision backbone (feature maps)"
                )
            self.attention = RoleAttention(
                channels, num_cameras, lang_dim=lang_dim, pose_dim=pose_dim, hidden=hidden
            )
        else:
            raise ValueError(
                f"grounding head kind must be 'mlp', 'phrases', 'roles' or 'attention', got '{kind}'"
            )
        self.embed = nn.Sequential(
            nn.Linear(NUM_LABELS + 6, dim), nn.GELU(), nn.Linear(dim, dim), nn.LayerNorm(dim)
        )
        self.register_buffer("mean", mean.float().clone(), persistent=False)
        self.register_buffer("std", std.float().clamp_min(1e-3).clone(), persistent=False)

    @property
    def per_role_vision(self) -> bool:
        """Whether the head reads one vision pass per role (`conditions`) instead of the sentence's."""
        return self.roles is not None

    def conditions(self, lang: LanguageOut) -> list[torch.Tensor]:
        """The FiLM condition of each role's vision pass ("roles" head): the role's phrase vector,
        unit-normalized like the sentence embedding the encoder is otherwise conditioned on.

        Why: with one sentence-conditioned pass, "stack the red block on the blue cube" and its role
        swap give almost the same embedding (cosine ~0.99), and an MLP over pooled tokens must bind
        words to objects by itself; the place of stack / move_next_to was then 6-10 cm off. Conditioned
        on "the blue cube" alone, a pass only has to find the object a phrase names, which the
        target role already does to 1-2 cm.
        """
        assert self.phrases is not None
        phrase = self.phrases(lang.tokens, lang.mask)  # (B, R, Dl)
        return [F.normalize(phrase[:, r], dim=-1) for r in range(len(ROLES))]

    def forward(
        self, vis: VisionOut | list[VisionOut], pose: torch.Tensor, lang: LanguageOut
    ) -> torch.Tensor:
        """Prediction (B, 8): target and place positions standardized like ee_pos, then yaw cos/sin.

        `vis` is the sentence-conditioned vision output, or for the "roles" head one output per role
        (vision conditioned on `conditions(lang)`). The instruction is an input beside the
        FiLM-conditioned vision: which tracked object plays which role is in the words.
        """
        if self.roles is not None:
            if not isinstance(vis, list) or len(vis) != len(ROLES):
                raise ValueError(f"the 'roles' grounding head needs one vision output per role {ROLES}")
            assert self.phrases is not None and self.yaw is not None
            phrase = self.phrases(lang.tokens, lang.mask)  # (B, R, Dl)
            x = [
                torch.cat([v.tokens.flatten(1), pose, lang.sentence, phrase[:, r]], dim=1)
                for r, v in enumerate(vis)
            ]
            pos = [mlp(xr) for mlp, xr in zip(self.roles, x, strict=True)]
            return torch.cat([*pos, self.yaw(x[0])], dim=1)
        if isinstance(vis, list):
            raise ValueError(f"the '{self.kind}' grounding head reads one vision output, got a list")
        if self.attention is not None:
            feats = [f for f in vis.features if f is not None]
            return self.attention(feats, lang.tokens, lang.mask, lang.sentence, pose)
        assert self.mlp is not None
        words = [lang.sentence]
        if self.phrases is not None:
            words.append(self.phrases(lang.tokens, lang.mask).flatten(1))  # (B, R * Dl)
        return self.mlp(torch.cat([vis.tokens.flatten(1), pose, *words], dim=1))

    def token(self, scene: torch.Tensor, ee: torch.Tensor) -> torch.Tensor:
        """The fusion token (B, 1, D) from a scene (B, 8) in label units (metres, yaw cos/sin) and the
        end effector (B, 3, metres).

        The offsets enter twice: standardized (the whole workspace) and as tanh(offset / 3 cm), which
        resolves the last centimetres of a grasp or a placement. Without the fine copy, a policy given
        the true scene still grasped 2 cm off centre and the object slipped while carried (put_in).
        """
        e = (ee - self.mean) / self.std
        s = self.standardize(scene)
        fine = torch.tanh((scene[:, 0:6] - ee.repeat(1, 2)) / FINE_SCALE)
        rel = torch.cat([s[:, 0:3] - e, s[:, 3:6] - e, s[:, 6:8], fine], dim=1)
        return self.embed(rel.detach())[:, None]

    def standardize(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels in metres (B, 8) -> the prediction's units."""
        out = labels.clone()
        out[:, 0:3] = (labels[:, 0:3] - self.mean) / self.std
        out[:, 3:6] = (labels[:, 3:6] - self.mean) / self.std
        return out

    def to_labels(self, pred: torch.Tensor) -> torch.Tensor:
        """Prediction (B, 8) -> label units: target and place positions in metres, then yaw cos/sin."""
        out = pred.clone()
        out[:, 0:3] = pred[:, 0:3] * self.std + self.mean
        out[:, 3:6] = pred[:, 3:6] * self.std + self.mean
        return out

    @staticmethod
    def perturb(scene: torch.Tensor, mask: torch.Tensor | None, noise: float) -> torch.Tensor:
        """Recorded labels (B, 8) as an estimate would give them: positions plus N(0, noise) metres per
        axis, yaw turned by N(0, 10 * noise) radians of 4θ, and a yaw that does not apply (mask 0, a
        round object) replaced by a random one, since the head's yaw there means nothing."""
        B = scene.shape[0]
        pos = scene[:, 0:6] + noise * torch.randn(B, 6, device=scene.device)
        ang = torch.atan2(scene[:, 7], scene[:, 6]) + 10.0 * noise * torch.randn(B, device=scene.device)
        if mask is not None:
            free = mask[:, 6] < 0.5
            ang = torch.where(free, (torch.rand(B, device=scene.device) * 2 - 1) * torch.pi, ang)
        return torch.cat([pos, torch.cos(ang)[:, None], torch.sin(ang)[:, None]], dim=1)

    def loss(
        self, pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked Huber loss of a prediction (B, 8) (`forward`) in standardized units; metrics: mean
        target / place error in centimetres."""
        if labels.shape != pred.shape or mask.shape != pred.shape:
            raise ValueError(
                f"grounding labels and mask must be [B, {NUM_LABELS}], got {tuple(labels.shape)} and {tuple(mask.shape)}"
            )
        per = F.smooth_l1_loss(pred, self.standardize(labels), reduction="none") * mask
        loss = per.sum() / mask.sum().clamp_min(1.0)
        with torch.no_grad():
            err = (self.to_labels(pred)[:, :6] - labels[:, :6]).view(-1, 2, 3).norm(dim=-1).mean(0) * 100.0
        return loss, {
            "ground_loss": float(loss.detach()),
            "target_cm": float(err[0]),
            "place_cm": float(err[1]),
        }


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_out)
    )
