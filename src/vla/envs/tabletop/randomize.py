"""Domain randomization of appearance: lighting, tints, scene-camera pose and image noise.

Only appearance changes, never physics, so an expert's success rate is the same with or without it.
Object tints are small (±0.06 per channel) so a red block stays red: the instruction must remain
true after randomization.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla.envs.tabletop.scene import SceneModel


@dataclass(frozen=True)
class RandomizationConfig:
    """Ranges of every randomized quantity.

    Attributes:
        light_scale: (low, high) multiplier of light and headlight intensities.
        light_shift: max shift of the top light's position (m).
        table_tint: max change per RGB channel of the table and floor.
        object_tint: max change per RGB channel of objects and containers.
        camera_shift: max shift of the scene camera's position (m, per axis).
        camera_tilt: max rotation of the scene camera (rad, per axis).
        noise_std: (low, high) range of the per-episode Gaussian pixel noise std (0-255 scale).
    """

    light_scale: tuple[float, float] = (0.6, 1.3)
    light_shift: float = 0.4
    table_tint: float = 0.15
    object_tint: float = 0.06
    camera_shift: float = 0.03
    camera_tilt: float = 0.04
    noise_std: tuple[float, float] = (0.0, 6.0)

    def __post_init__(self) -> None:
        if not 0 < self.light_scale[0] <= self.light_scale[1]:
            raise ValueError(f"light_scale must be 0 < low <= high, got {self.light_scale}")
        if not 0 <= self.noise_std[0] <= self.noise_std[1]:
            raise ValueError(f"noise_std must be 0 <= low <= high, got {self.noise_std}")
        if min(self.light_shift, self.table_tint, self.object_tint, self.camera_shift, self.camera_tilt) < 0:
            raise ValueError("randomization magnitudes must be >= 0")


def restore_nominal(scene: SceneModel) -> None:
    """Undoes any randomization: the model looks exactly as compiled."""
    m = scene.model
    m.geom_rgba[:] = scene.nominal_geom_rgba
    m.light_diffuse[:] = scene.nominal_light_diffuse
    m.light_pos[:] = scene.nominal_light_pos
    m.vis.headlight.ambient[:] = scene.nominal_headlight_ambient
    m.cam_pos[:] = scene.nominal_cam_pos
    m.cam_quat[:] = scene.nominal_cam_quat


def apply_randomization(
    scene: SceneModel, rng: np.random.Generator, config: RandomizationConfig | None = None
) -> dict[str, float]:
    """Randomizes the model's appearance for one episode.

    Args:
        scene: the scene whose model is changed in place (starting from nominal values).
        rng: the episode's generator.
        config: ranges (defaults if None).

    Returns:
        The drawn scalar parameters (for the episode metadata), including `noise_std`, which the env
        applies to rendered images.
    """
    cfg = config or RandomizationConfig()
    restore_nominal(scene)
    m = scene.model
    scale = float(rng.uniform(*cfg.light_scale))
    m.light_diffuse[:] = np.clip(scene.nominal_light_diffuse * scale, 0.0, 1.0)
    m.light_pos[:, :2] += rng.uniform(-cfg.light_shift, cfg.light_shift, size=(m.nlight, 2))
    m.vis.headlight.ambient[:] = np.clip(
        scene.nominal_headlight_ambient * float(rng.uniform(*cfg.light_scale)), 0, 1
    )
    for g in (scene.table_geom, m.geom("floor").id):
        m.geom_rgba[g, :3] = np.clip(
            m.geom_rgba[g, :3] + rng.uniform(-cfg.table_tint, cfg.table_tint, 3), 0, 1
        )
    tinted = [h.geom for h in scene.objects.values()] + [
        g for gs in scene.container_geoms.values() for g in gs
    ]
    for g in tinted:
        m.geom_rgba[g, :3] = np.clip(
            m.geom_rgba[g, :3] + rng.uniform(-cfg.object_tint, cfg.object_tint, 3), 0, 1
        )
    cam = scene.scene_cam
    m.cam_pos[cam] += rng.uniform(-cfg.camera_shift, cfg.camera_shift, 3)
    tilt = rng.uniform(-cfg.camera_tilt, cfg.camera_tilt, 3)
    angle = float(np.linalg.norm(tilt))
    if angle > 0:
        dq = np.empty(4)
        mujoco.mju_axisAngle2Quat(dq, tilt / angle, angle)
        q = np.empty(4)
        mujoco.mju_mulQuat(q, m.cam_quat[cam].copy(), dq)
        m.cam_quat[cam] = q
    return {"light_scale": scale, "noise_std": float(rng.uniform(*cfg.noise_std))}


def add_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Returns `image` (uint8 [Hi, Wi, 3]) with Gaussian pixel noise of `std` (0-255 scale)."""
    if std <= 0:
        return image
    noisy = image.astype(np.float32) + rng.normal(0.0, std, size=image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)
