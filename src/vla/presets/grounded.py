"""grounded: `default` plus a grounding head co-trained on labelled rendered scenes (`--grounding`), and an
action path that acts on that head's scene estimate instead of on pixels.

Why: `default` learns where the instructed object is only from demonstrations, and 50 per family are
too few (docs/measured.md, "Full suite"). The simulator labels object positions
for free, so this preset adds a head (vla.models.grounding) trained on `vla collect-grounding` views;
the scene, relative to the end effector, is one more fusion token: in training the scene the
demonstration recorded, at run time the head's estimate of the episode's first frame, held.
Train with `vla train DATA --preset grounded --grounding VIEWS.h5`.

The choices beyond the head were measured as one set on the full tabletop suite at 50 demos per
family (the figures: docs/measured.md, "Full suite"):
- `grounding_head="roles"`: one vision pass per role, conditioned on that role's phrase; it closed
  most of the gap between the held estimate and the true scene (with one sentence-conditioned pass,
  stack / move_next_to took the wrong object as base or reference).
- `fusion.vision="none"`, `fusion.state_fields=("gripper", "ee_quat")`: the action path reads the
  instruction, the gripper and orientation, and the scene relative to the hand; with 50 demonstrations
  it otherwise recognizes training trajectories by their pixels and joint angles (copycat).
- `grounding_noise=0.003`: the training token's noise matches the head's ~1 cm first-frame error.
- `head.gripper="bce"`: open / close as a classification, a crisper release than a regressed value.
- wider fusion and head (512) with less dropout (0.05): the action path has fewer inputs to fit.
- `execute_steps=1`: controllers re-plan every step (a call costs a few ms). Running half the 8-step
  chunk open loop, the gripper closed on the chunk's schedule while the arm was still above the
  object; re-planning every step was the largest single gain on the same checkpoint.
- `grounding_shift=2`: the held estimate is the mean over nine 2-pixel shifts of the first frame,
  which lowers its first-frame error for 8 more grounding passes once per episode.
"""

from __future__ import annotations

from vla.models.config import PolicyConfig
from vla.presets import default


def config() -> PolicyConfig:
    return default.config().override(
        {
            "name": "grounded",
            "grounding_loss": 1.0,
            "grounding_head": "roles",
            "grounding_noise": 0.003,
            "fusion.vision": "none",
            "fusion.state_fields": ("gripper", "ee_quat"),
            "fusion.dim": 512,
            "fusion.dropout": 0.05,
            "head.hidden": 512,
            "head.gripper": "bce",
            "execute_steps": 1,
            "grounding_shift": 2,
        }
    )
