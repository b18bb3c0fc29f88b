"""One policy for several robots: a shared vision-language trunk, and per robot its own state encoder,
fusion, action head, sub-goal head and normalization (BC-Z's per-robot heads).

Why heads per robot rather than one padded action space with a robot token (Octo, π0): the robots here
differ in everything after the trunk. A Panda acts in 7 dims from 2 cameras and a 22-float state; the
G1 in 22 dims from 3 cameras and 100 floats, with groups (waist, balance, a second hand) the Panda
lacks. Padding would make the Panda's head predict 15 dims that mean nothing and its normalization
share statistics with a humanoid's joints. What transfers between them is seeing: which object the
instruction names and where it is, which the shared trunk carries (one FiLM CNN over every camera of
every robot, each camera in its own slot of the camera embedding: `VisionConfig.camera_slots`).

A joint checkpoint is a directory of ordinary single-robot checkpoints, one per robot, plus
`joint.json`:

    checkpoint/joint.json                 {"embodiments": ["panda_tabletop", "unitree_g1_tabletop"]}
    checkpoint/panda_tabletop/...         config.json, model.safetensors, stats.json, metadata.json
    checkpoint/unitree_g1_tabletop/...

so each robot's part loads, serves, evaluates and exports like any checkpoint
(`Policy.from_pretrained(dir, embodiment=name)` or the sub-directory itself), and asking a joint
checkpoint for a robot it has no head for is an error naming the ones it has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.checkpoint_layout import JOINT_FILE
from vla.models.policy import Policy
from vla.types import ActionChunk, JointBatch, Observation

__all__ = ["JOINT_FILE", "JointPolicy"]


class JointPolicy(nn.Module):
    """Several single-robot `Policy`s whose vision and language modules are one shared trunk.

    The registered modules carry the usual top-level names (vision, language, state, fusion, head,
    goal, normalizer), the per-robot ones as `ModuleDict`s keyed by embodiment name, so the
    optimizer's per-module groups, staged freezing, EMA and the training state work unchanged and
    every parameter is stored once.

    Args:
        members: embodiment name -> a policy built for that robot. Their configs must agree on the
            trunk (vision and language settings, image size, history length) and name every
            member's cameras in `vision.camera_slots`.
    """

    def __init__(self, members: dict[str, Policy]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a joint policy needs at least two robots, got {sorted(members)}")
        names = list(members)
        first = members[names[0]]
        for name in names[1:]:
            _check_same_trunk(first, members[name], names[0], name)
        for policy in members.values():
            if policy.grounding is not None:
                raise ValueError(
                    "a joint policy has no grounding head (grounding_loss must be 0): the grounding "
                    "labels are one suite's scene layout, not every robot's"
                )
            policy.vision.encoders = first.vision.encoders
            policy.vision.cam_embed = first.vision.cam_embed
            policy.vision.time_embed = first.vision.time_embed
            policy.language = first.language
        self.vision = first.vision
        self.language = first.language
        self.state = nn.ModuleDict({n: p.state for n, p in members.items()})
        self.fusion = nn.ModuleDict({n: p.fusion for n, p in members.items()})
        self.head = nn.ModuleDict({n: p.head for n, p in members.items()})
        self.goal = nn.ModuleDict({n: p.goal for n, p in members.items() if p.goal is not None})
        self.normalizer = nn.ModuleDict({n: p.normalizer for n, p in members.items()})
        # Not registered: every module they hold is registered above, once.
        self._members: dict[str, Policy] = {}
        object.__setattr__(self, "_members", dict(members))
        self.device = first.device

    @property
    def members(self) -> dict[str, Policy]:
        """Embodiment name -> that robot's policy (sharing this trunk)."""
        return dict(self._members)

    def member(self, embodiment: str) -> Policy:
        """The policy of robot `embodiment`; a robot without a head is a ValueError naming the heads."""
        if embodiment not in self._members:
            raise ValueError(
                f"this joint policy has no head for embodiment '{embodiment}'; it has {sorted(self._members)}"
            )
        return self._members[embodiment]

    def train(self, mode: bool = True) -> JointPolicy:
        super().train(mode)
        for p in self._members.values():
            p.train(mode)
        return self

    def to(self, *args: Any, **kwargs: Any) -> JointPolicy:
        super().to(*args, **kwargs)
        for p in self._members.values():
            p.to(*args, **kwargs)
        self.device = next(self.parameters()).device
        for p in self._members.values():
            p.device = self.device
        return self

    def loss(self, batch: JointBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The mean of every robot's loss over the batch's windows (each robot's loss weighted by its
        share of the windows), with each robot's metrics under "<embodiment>/<metric>"."""
        if not isinstance(batch, JointBatch):
            raise TypeError(f"a joint policy trains on a JointBatch, got {type(batch).__name__}")
        unknown = sorted(set(batch.parts) - set(self._members))
        if unknown:
            raise ValueError(f"batch holds robots {unknown} this joint policy has no head for")
        total = len(batch)
        loss = torch.zeros((), device=self.device)
        metrics: dict[str, float] = {}
        for name, part in batch.parts.items():
            if len(part) == 0:
                continue
            part_loss, part_metrics = self._members[name].loss(part)
            loss = loss + part_loss * (len(part) / total)
            metrics.update({f"{name}/{k}": v for k, v in part_metrics.items()})
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def predict(self, obs: Observation, *, embodiment: str, **kwargs: Any) -> ActionChunk:
        """`Policy.predict` of robot `embodiment`'s head."""
        return self.member(embodiment).predict(obs, **kwargs)

    def num_params(self, *, trainable_only: bool = False) -> int:
        """Parameters stored once (the trunk counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def member_dirs(self, directory: str | Path) -> list[Path]:
        """Where `save_pretrained(directory)` puts each robot's checkpoint."""
        return [Path(directory) / name for name in self._members]

    def save_pretrained(self, directory: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
        """Writes one checkpoint per robot into `directory/<embodiment>/` and `directory/joint.json`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        names = list(self._members)
        for name, sub in zip(names, self.member_dirs(out), strict=True):
            self._members[name].save_pretrained(
                sub, metadata={**(metadata or {}), "joint": {"embodiments": names}}
            )
        (out / JOINT_FILE).write_text(json.dumps({"embodiments": names}, indent=1))
        return out


def _check_same_trunk(a: Policy, b: Policy, name_a: str, name_b: str) -> None:
    """Refuses members whose trunks cannot be one module."""
    ca, cb = a.config, b.config
    diffs = [
        key
        for key, va, vb in (
            ("vision", ca.vision, cb.vision),
            ("language", ca.language, cb.language),
            ("image_size", ca.image_size, cb.image_size),
            ("obs_horizon", ca.obs_horizon, cb.obs_horizon),
            ("fusion.dim", ca.fusion.dim, cb.fusion.dim),
        )
        if va != vb
    ]
    if diffs:
        raise ValueError(
            f"robots '{name_a}' and '{name_b}' cannot share a trunk: their configs differ in {diffs}"
        )
    shapes_a = {k: v.shape for k, v in a.vision.state_dict().items()}
    shapes_b = {k: v.shape for k, v in b.vision.state_dict().items()}
    if shapes_a != shapes_b:
        raise ValueError(
            f"robots '{name_a}' and '{name_b}' cannot share a trunk: their vision weights differ in shape "
            "(set vision.camera_slots to every robot's cameras)"
        )
