"""Where the presence net sees a named object: its pixel, and that pixel on a plane in the world.

The presence net (`vla.models.presence`) scores every cell of its grid for "this colour and this
shape here". The peak cell of an object's joint map, refined by the weighted mean of its neighbours
that score at least `KEEP` of the peak, is the object's image position; a calibrated camera turns it
into a point on the table plane. Because colour and shape are read apart, this also works for pairs
no training scene had, where a grounding head trained on (instruction, position) pairs guesses
(docs/measured.md, "Grounding from the presence net").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vla.models.presence import PresenceCheck

KEEP = 0.3  # cells within this fraction of the peak take part in the refined position
RADIUS = 3  # cells around the peak that may take part (an object spans 3-5 cells)


def joint_maps(check: PresenceCheck, image: np.ndarray, names: list[str]) -> np.ndarray:
    """float32 [len(names), H/2, W/2]: P(every attribute of the name) per cell of `image` [H, W, 3]."""
    with torch.no_grad():
        probs = [F.softmax(lg, dim=1)[0] for lg in check.net(torch.from_numpy(image[None]))]
    out = []
    for name in names:
        joint = torch.ones_like(probs[0][0])
        for g, cls in enumerate(check.spec.class_index(name)):
            joint = joint * probs[g][cls]
        out.append(joint.numpy())
    return np.stack(out).astype(np.float32)


def peak_pixel(joint: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(u, v, peak): the refined position in full-resolution pixels (u right, v down) and its score."""
    i, j = np.unravel_index(int(np.argmax(joint)), joint.shape)
    peak = float(joint[i, j])
    i0, i1 = max(0, i - RADIUS), min(joint.shape[0], i + RADIUS + 1)
    j0, j1 = max(0, j - RADIUS), min(joint.shape[1], j + RADIUS + 1)
    w = joint[i0:i1, j0:j1]
    w = np.where(w >= KEEP * peak, w, 0.0)
    ii, jj = np.mgrid[i0:i1, j0:j1]
    v = float((ii * w).sum() / w.sum()) if w.sum() > 0 else float(i)
    u = float((jj * w).sum() / w.sum()) if w.sum() > 0 else float(j)
    return (u + 0.5) * scale, (v + 0.5) * scale, peak


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera: position, axes (MuJoCo's: x right, y up, looking along -z) and vertical fov.

    Attributes:
        pos: float [3] in the world (robot base) frame; xaxis, yaxis: float [3] unit vectors.
        fovy_deg: vertical field of view; size: (H, W) of the image the pixels refer to.
    """

    pos: tuple[float, float, float]
    xaxis: tuple[float, float, float]
    yaxis: tuple[float, float, float]
    fovy_deg: float
    size: tuple[int, int]

    def on_plane(self, u: float, v: float, z: float) -> np.ndarray:
        """The world point at height `z` that pixel (u, v) sees (float64 [3])."""
        h, w = self.size
        f = (h / 2) / np.tan(np.deg2rad(self.fovy_deg) / 2)
        x, y = np.asarray(self.xaxis), np.asarray(self.yaxis)
        d = x * (u - w / 2) / f - y * (v - h / 2) / f - np.cross(x, y)
        p = np.asarray(self.pos, dtype=np.float64)
        if abs(d[2]) < 1e-9:
            raise ValueError(f"pixel ({u:.1f}, {v:.1f}) looks parallel to the plane z = {z}")
        return p + d * ((z - p[2]) / d[2])
