"""metaworld: `default` for Meta-World from one camera: `corner2` at 96 px, 8-step chunk, 4 executed.

Why this shape (the runs behind each choice: docs/measured.md, "Meta-World"):
- one camera, `corner2`, the published protocol's only view; 96 px because the puck, the pegs and the
  goal markers are 2-4 pixels wide at 64 px, and the CNN's cost is what the 2-core budget buys;
- the FiLM CNN with spatial-softmax keypoints of `default`: the instruction picks which object the
  keypoints track, and keypoints keep positions precise;
- 8 actions per chunk (0.1 s at Meta-World's 80 Hz), re-planned every 4: Meta-World's scripted
  policies are proportional controllers, so a chunk executed open loop for long overshoots;
- the sub-goal loss of `default` (`goal_loss`): where the hand will be at the next gripper event.
"""

from __future__ import annotations

from vla.models.config import PolicyConfig
from vla.presets import default


def config() -> PolicyConfig:
    return default.config().override(
        {
            "name": "metaworld",
            "cameras": ("corner2",),
            "image_size": (96, 96),
            "action_horizon": 8,
            "execute_steps": 4,
        }
    )
