"""Labelled scenes for grounding pretraining: rendered frames + where the instructed objects are.

Why: behaviour cloning on 50 demonstrations per family sees only ~300 table layouts, too few for a CNN
trained from scratch to learn *which* block "the red cube" is among same-colour and same-shape
distractors (docs/measured.md: 11.7% on the full suite). The simulator knows every object's pose, so
labelled views are free and unlimited: each scene is an ordinary episode reset (same families,
instructions and split as the demonstrations), with labels read from the simulator. They are perception labels (object poses), not demonstrations: no expert action and no
grasp pose is in them; how to act on a position is still learned from the demonstrations alone.

Labels: `vla.envs.tabletop.labels` (target and place positions, block yaw). The first view of every
scene is the episode's own start (arm at home, nothing hidden): a policy reads the scene from its
episode's first frame and holds that estimate (`vla.models.grounding`), so that view must be right.
Further views (`views` > 1) put the arm at random poses, for a live estimate; the held estimate
does not need them (measured: 24,000 first frames gave a better held estimate than 16,000 scenes x 2
views, docs/measured.md).
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from vla.envs.tabletop.embodiment import CAMERAS, WORKSPACE_HIGH, WORKSPACE_LOW
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.labels import scene_labels
from vla.envs.tabletop.panda import FINGER_MAX

DOWN = np.diag([1.0, -1.0, -1.0])  # TCP pointing down, yaw 0 (as the experts hold it)
NEAR = 0.06  # m, xy spread of the close-up arm poses (the wrist camera's grasping and placing views)


def _rz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose_arm(env: TabletopEnv, rng: np.random.Generator) -> None:
    """Teleports the arm (no physics) to a random pointing-down pose: half of the time close above one
    of the scene's objects or containers (the views the wrist camera has while grasping or placing),
    otherwise anywhere over the workspace.

    Close poses go to a *random* object, not to the target: close to the target only, "the target is
    where the hand is" would be a shortcut, and the head learned it (its estimate followed the hand
    once the arm came near; measured on pick_up rollouts).
    """
    spec = env.task
    assert spec is not None
    low, high = np.asarray(WORKSPACE_LOW), np.asarray(WORKSPACE_HIGH)
    if rng.random() < 0.5:
        spots = [env.object_position(k) for k in spec.objects]
        spots += [np.array([x, y, 0.02]) for x, y in spec.containers.values()]
        near = spots[int(rng.integers(len(spots)))]
        xy = near[:2] + rng.uniform(-NEAR, NEAR, size=2)
        pos = np.clip(np.array([*xy, near[2] + rng.uniform(0.0, 0.14)]), low, high)
    else:
        pos = rng.uniform(low, high)
        pos[2] = rng.uniform(low[2], min(high[2], 0.3))
    mat = _rz(rng.uniform(-np.pi / 4, np.pi / 4)) @ DOWN
    d, sc = env.data, env.scene
    q = env.ik.solve(d.qpos.copy(), pos, mat, d.qpos[sc.arm_qpos].copy())
    d.qpos[sc.arm_qpos] = q
    d.qpos[sc.finger_qpos] = FINGER_MAX * (1.0 if rng.random() < 0.6 else rng.uniform(0.0, 1.0))
    mujoco.mj_forward(env.model, d)


def render_scenes(
    seeds: list[int],
    *,
    family_of: list[str],
    views: int,
    split: str = "train",
    image_size: tuple[int, int] = (96, 96),
) -> dict[str, Any]:
    """Renders `views` arm poses of the episode scene of every (seed, family).

    Returns:
        dict with "images" (camera -> uint8 [N, Hi, Wi, 3]), "state" float32 [N, 22] (the robot state
        of the view; joint velocities are 0), "instruction" (N strings), "family" (N strings),
        "labels" float32 [N, 8] and "mask" float32 [N, 8]; N = len(seeds) * views.
    """
    if len(seeds) != len(family_of):
        raise ValueError(f"{len(seeds)} seeds but {len(family_of)} families; give one family per seed")
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    envs: dict[str, TabletopEnv] = {}
    images: dict[str, list[np.ndarray]] = {c: [] for c in CAMERAS}
    instr: list[str] = []
    fams: list[str] = []
    labels, masks, states = [], [], []
    try:
        for seed, fam in zip(seeds, family_of, strict=True):
            env = envs.get(fam)
            if env is None:
                env = envs[fam] = TabletopEnv(fam, split=split, image_size=image_size)
            env.reset(seed=int(seed))
            lab, mask = scene_labels(env)
            rng = np.random.default_rng([int(seed), 17])
            for view in range(views):
                if view > 0:
                    pose_arm(env, rng)
                frame = env.camera_images()
                states.append(env.robot_state())
                for c in CAMERAS:
                    images[c].append(frame[c])
                instr.append(env.task.instruction if env.task else "")
                fams.append(fam)
                labels.append(lab)
                masks.append(mask)
    finally:
        for env in envs.values():
            env.close()
    return {
        "images": {c: np.stack(v) for c, v in images.items()},
        "state": np.stack(states).astype(np.float32),
        "instruction": instr,
        "family": fams,
        "labels": np.stack(labels).astype(np.float32),
        "mask": np.stack(masks).astype(np.float32),
    }
