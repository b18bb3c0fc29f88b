"""The `scene` estimate with the instructed objects placed by the presence net (opt-in:
`vla eval --set detector_grounding=true`).

A `grounded` policy holds its own first-frame estimate of the `scene` feature (`labels.py`: target,
place, yaw). Its grounding head learned positions from (instruction, scene) pairs, so for a pair no
training scene had ("the purple ball" on the `unseen` split) it is centimetres off. The presence net
reads colour and shape apart and finds such pairs (`vla.models.presence_locate`); this module puts its
positions into the estimate:

- `target` (x, y): the first object the instruction names, seen by the scene camera, on the plane of
  an object's centre (`PLANE_Z`);
- `place` (x, y): the second object named (stack on it, move next to it); with one object named and
  no container, the place moves with the target (pushed-to, lifted-to and touched points are defined
  from it); a container's place stays the policy's (the presence net does not see containers);
- heights and the block yaw stay the policy's.

An object the net does not find (peak under the check's threshold) keeps the policy's estimate.
"""

from __future__ import annotations

import numpy as np

from vla.envs.tabletop.objects import CONTAINERS
from vla.envs.tabletop.scene import SCENE_CAMERA_POS, SCENE_CAMERA_TARGET, look_at_xyaxes
from vla.models.presence import PresenceCheck
from vla.models.presence_locate import PinholeCamera, joint_maps, peak_pixel

PLANE_Z = 0.02  # m: the height of an object's centre (blocks 2.0, balls 2.2, cylinders 2.5 cm)
SCENE_FOVY = 48.0  # the scene camera's, as scene.build_xml writes it


def _vec(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def scene_camera(size: tuple[int, int]) -> PinholeCamera:
    """The scene camera as `scene.build_xml` places it, for images of `size` (H, W)."""
    xy = look_at_xyaxes(SCENE_CAMERA_POS, SCENE_CAMERA_TARGET, up=np.array([0.0, 0.0, 1.0]))
    return PinholeCamera(_vec(SCENE_CAMERA_POS), _vec(xy[:3]), _vec(xy[3:]), SCENE_FOVY, size)


def refine_scene(
    estimate: np.ndarray, instruction: str, image: np.ndarray, check: PresenceCheck
) -> np.ndarray:
    """`estimate` float32 [8] (the `scene` feature) with the named objects' x, y from `image`."""
    out = np.asarray(estimate, dtype=np.float32).copy()
    named = check.mentions(instruction)
    if not named:
        return out
    cam = scene_camera(check.spec.image_size)
    maps = joint_maps(check, image, named[:2])
    scale = image.shape[0] / maps.shape[1]
    found = []
    for joint in maps:
        u, v, peak = peak_pixel(joint, scale)
        found.append(cam.on_plane(u, v, PLANE_Z)[:2] if peak >= check.threshold else None)
    if found[0] is not None:
        delta = found[0] - out[0:2]
        out[0:2] = found[0]
        has_container = any(f" {c}" in f" {instruction.lower()}" for c in CONTAINERS)
        if len(named) == 1 and not has_container:
            out[3:5] += delta
    if len(found) > 1 and found[1] is not None:
        out[3:5] = found[1]
    return out
