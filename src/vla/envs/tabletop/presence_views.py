"""Views for the presence check: first frames of episode scenes with a per-pixel map of each attribute.

The presence check (`vla.models.presence`) learns, from pixels only, which colour and which shape each
pixel of the scene camera shows, so it can tell whether "the green ball" is on the table before the
arm moves. The simulator labels that for free: MuJoCo's segmentation render gives each pixel's geom,
and each object of the pool is one geom of one (colour, shape) pair. Containers, the table and the
robot are background.

Scenes are ordinary episode resets (first frame, arm at home: the frame the check judges), so the maps
only ever show the split's pairs; on the `train` split the four held-out pairs never appear, which is
what makes finding "the purple ball" on the `unseen` split a test of composition.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.env import TabletopEnv

CAMERA = "scene"
# Attribute groups, in the order the maps hold them; class 0 of every group is "no object here".
GROUPS: dict[str, tuple[str, ...]] = {"colour": tuple(obj.COLOURS), "shape": tuple(obj.SHAPES)}


def _geom_classes(env: TabletopEnv) -> np.ndarray:
    """int16 [ngeom, 2]: each geom's (colour, shape) class (1-based; 0 for everything but objects)."""
    out = np.zeros((env.model.ngeom, len(GROUPS)), dtype=np.int16)
    for (colour, shape), h in env.scene.objects.items():
        out[h.geom] = (GROUPS["colour"].index(colour) + 1, GROUPS["shape"].index(shape) + 1)
    return out


def render_presence_views(
    seeds: list[int], *, family_of: list[str], split: str = "train", image_size: tuple[int, int] = (96, 96)
) -> dict[str, Any]:
    """The first frame of every (seed, family) episode and its attribute maps.

    Returns:
        dict with "images" uint8 [N, Hi, Wi, 3] (the scene camera), "maps" int16 [N, 2, Hi, Wi]
        (colour and shape class per pixel, 0 = background), "objects" (N lists of "colour shape"
        names on the table) and "instruction" (N strings).
    """
    if len(seeds) != len(family_of):
        raise ValueError(f"{len(seeds)} seeds but {len(family_of)} families; give one family per seed")
    envs: dict[str, TabletopEnv] = {}
    seg: dict[str, mujoco.Renderer] = {}
    images, maps, names, instructions = [], [], [], []
    try:
        for seed, fam in zip(seeds, family_of, strict=True):
            env = envs.get(fam)
            if env is None:
                env = envs[fam] = TabletopEnv(fam, split=split, image_size=image_size)
                seg[fam] = mujoco.Renderer(env.model, height=image_size[0], width=image_size[1])
                seg[fam].enable_segmentation_rendering()
            env.reset(seed=int(seed))
            assert env.task is not None
            images.append(env.camera_images()[CAMERA])
            r = seg[fam]
            r.update_scene(env.data, camera=CAMERA, scene_option=env._vis_option)
            ids = r.render()  # int32 [Hi, Wi, 2]: (object id, object type) per pixel, -1 for none
            geom = np.where(ids[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), ids[..., 0], -1)
            classes = _geom_classes(env)
            m = np.zeros((len(GROUPS), *image_size), dtype=np.int16)
            hit = geom >= 0
            m[:, hit] = classes[geom[hit]].T
            maps.append(m)
            names.append([obj.describe(*k) for k in env.task.objects])
            instructions.append(env.task.instruction)
    finally:
        for r in seg.values():
            r.close()
        for env in envs.values():
            env.close()
    return {
        "images": np.stack(images),
        "maps": np.stack(maps),
        "objects": names,
        "instruction": instructions,
    }
