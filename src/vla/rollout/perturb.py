"""Sensor perturbations for robustness evaluation (`vla eval --perturb KIND=VALUE`), for any suite.

Each perturbation changes what the actor observes, never the simulation: the env renders and steps as
always, and the actor (the policy) gets a perturbed copy of each observation. Several compose in the
order given. Draws come from the episode seed, so an evaluation stays reproducible.

  noise=STD          Gaussian pixel noise of STD (0-255 scale) on every camera, every frame
  blur=SIGMA         Gaussian blur of SIGMA pixels on every camera
  dropout=CAMERA     that camera's images are black for the whole episode (a dead camera)
  dropout=P          each camera's frame is black with probability P, per frame (a flaky link)
  occluder=FRACTION  a grey square of FRACTION x the image side, at a random place per camera and
                     episode (something in front of the lens or between camera and table)
  state_noise=STD    Gaussian noise of STD (in each state field's own units) on the state vector

Scene-level changes (camera pose, lighting, colours) are the suite's business: the tabletop suite's
`randomized` split moves the scene camera, relights and retints the scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("noise", "blur", "dropout", "occluder", "state_noise")
# Stream index of the perturbation draws (apart from the env's, the expert's and beta-mixing's).
_STREAM = 13
_GREY = 128


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: `kind` (one of `KINDS`) and its value (a number, or a camera for dropout)."""

    kind: str
    value: float
    camera: str = ""

    @classmethod
    def parse(cls, text: str) -> Perturbation:
        """Parses "kind=value" (see the module doc), with an error that names what was expected."""
        kind, sep, raw = text.partition("=")
        kind = kind.strip()
        if not sep or kind not in KINDS:
            raise ValueError(
                f"perturbation '{text}' must look like KIND=VALUE with KIND one of {list(KINDS)}"
            )
        try:
            value = float(raw)
        except ValueError:
            if kind != "dropout" or not raw.strip():
                raise ValueError(f"perturbation '{text}': {kind} takes a number, got '{raw}'") from None
            return cls(kind, 1.0, camera=raw.strip())
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"perturbation '{text}': the value must be a finite number >= 0")
        if kind in ("dropout", "occluder") and value > 1:
            raise ValueError(f"perturbation '{text}': {kind} takes a fraction in [0, 1] (or a camera name)")
        return cls(kind, value)


class Perturber:
    """Applies perturbations to the observations of one episode.

    Args:
        specs: "kind=value" strings (`Perturbation.parse`), applied in order.
        seed: the episode seed.
    """

    def __init__(self, specs: tuple[str, ...] | list[str], *, seed: int) -> None:
        self.perturbations = tuple(Perturbation.parse(s) for s in specs)
        self._rng = np.random.default_rng([int(seed), _STREAM])
        self._places: dict[str, tuple[int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self.perturbations)

    def __call__(self, obs: dict[str, Any]) -> dict[str, Any]:
        """A perturbed copy of `obs` ({"images": {camera: uint8 [Hi, Wi, 3]}, "state": [S], ...})."""
        if not self.perturbations:
            return obs
        images = {cam: np.asarray(img) for cam, img in obs["images"].items()}
        state = np.asarray(obs["state"])
        for p in self.perturbations:
            for cam in images if p.kind != "state_noise" else ():
                images[cam] = self._image(p, cam, images[cam])
            if p.kind == "state_noise" and p.value > 0:
                state = (state + self._rng.normal(0.0, p.value, state.shape)).astype(state.dtype)
        return {**obs, "images": images, "state": state}

    def _image(self, p: Perturbation, cam: str, img: np.ndarray) -> np.ndarray:
        if p.kind == "noise" and p.value > 0:
            noisy = img.astype(np.float32) + self._rng.normal(0.0, p.value, img.shape).astype(np.float32)
            return np.clip(noisy, 0, 255).astype(np.uint8)
        if p.kind == "blur" and p.value > 0:
            return gaussian_blur(img, p.value)
        if p.kind == "dropout":
            dead = cam == p.camera if p.camera else bool(self._rng.random() < p.value)
            return np.zeros_like(img) if dead else img
        if p.kind == "occluder" and p.value > 0:
            h, w = img.shape[:2]
            side = max(1, round(p.value * min(h, w)))
            if cam not in self._places:  # one place per camera and episode
                self._places[cam] = (
                    int(self._rng.integers(0, h - side + 1)),
                    int(self._rng.integers(0, w - side + 1)),
                )
            y, x = self._places[cam]
            out = img.copy()
            out[y : y + side, x : x + side] = _GREY
            return out
        return img


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 [Hi, Wi, C] blurred by a separable Gaussian of `sigma` pixels (edges repeated)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(k[i] * np.take(padded, np.arange(i, i + n), axis=axis) for i in range(k.size))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
