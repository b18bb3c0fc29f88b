"""One recorded demonstration (an `Episode`) and one control step of it (a `Step`).

Shapes (N steps, S state dim, A action dim, Hi x Wi images):
    images[camera]  uint8   [N, Hi, Wi, 3]
    state           float32 [N, S]
    actions         float32 [N, A]
    timestamps      float64 [N]   seconds since the episode start
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Extras an episode may carry as plain HDF5 attributes (everything else goes into the `meta` JSON too).
MetaValue = str | int | float | bool


def check_array(value: Any, *, name: str, dtype: Any, ndim: int, where: str) -> np.ndarray:
    """Returns `value` as an array after checking its dtype and rank, or raises a ValueError naming it.

    Args:
        value: the array to check.
        name: the field's name, for the message.
        dtype: the required numpy dtype (no silent casts: a float64 image is a bug upstream).
        ndim: the required number of axes.
        where: the place the array comes from (file, episode), for the message.
    """
    arr = np.asarray(value)
    if arr.dtype != np.dtype(dtype):
        raise ValueError(f"{where}: {name} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if arr.ndim != ndim:
        raise ValueError(f"{where}: {name} has shape {arr.shape}, expected {ndim} axes")
    return arr


@dataclass(frozen=True)
class Step:
    """One control step as the recorder receives it.

    Attributes:
        images: camera name -> uint8 [Hi, Wi, 3].
        state: float32 [S], the state the action was chosen from.
        action: float32 [A], the action applied at this step.
        timestamp: seconds since the episode start.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    timestamp: float

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("step has no camera images")
        for cam, img in self.images.items():
            arr = check_array(img, name=f"images['{cam}']", dtype=np.uint8, ndim=3, where="step")
            if arr.shape[2] != 3:
                raise ValueError(f"step: images['{cam}'] has shape {arr.shape}, expected (Hi, Wi, 3)")
        check_array(self.state, name="state", dtype=np.float32, ndim=1, where="step")
        check_array(self.action, name="action", dtype=np.float32, ndim=1, where="step")
        if not np.isfinite(self.timestamp):
            raise ValueError(f"step: timestamp must be finite, got {self.timestamp}")


@dataclass(frozen=True)
class Episode:
    """A complete demonstration.

    Attributes:
        images: camera name -> uint8 [N, Hi, Wi, 3].
        state: float32 [N, S].
        actions: float32 [N, A].
        timestamps: float64 [N], seconds since the episode start.
        instruction: the language command the demonstration follows.
        success: whether the task was achieved.
        meta: extras such as family, split, seed (JSON-serializable values).
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    actions: np.ndarray
    timestamps: np.ndarray
    instruction: str
    success: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate(where="episode")

    def validate(self, *, where: str) -> None:
        """Raises a ValueError naming `where` and the field if any array is malformed."""
        n = len(self)
        if n == 0:
            raise ValueError(f"{where}: episode has no steps")
        if not self.images:
            raise ValueError(f"{where}: episode has no camera images")
        check_array(self.state, name="state", dtype=np.float32, ndim=2, where=where)
        check_array(self.actions, name="actions", dtype=np.float32, ndim=2, where=where)
        check_array(self.timestamps, name="timestamps", dtype=np.float64, ndim=1, where=where)
        for key, arr in (("actions", self.actions), ("timestamps", self.timestamps)):
            if arr.shape[0] != n:
                raise ValueError(f"{where}: {key} has {arr.shape[0]} steps, expected {n} (as state)")
        for cam, img in self.images.items():
            check_array(img, name=f"images['{cam}']", dtype=np.uint8, ndim=4, where=where)
            if img.shape[0] != n or img.shape[3] != 3:
                raise ValueError(f"{where}: images['{cam}'] has shape {img.shape}, expected ({n}, Hi, Wi, 3)")
        if not isinstance(self.instruction, str):
            raise ValueError(f"{where}: instruction must be a string, got {type(self.instruction).__name__}")

    def __len__(self) -> int:
        return int(np.asarray(self.state).shape[0])

    @property
    def family(self) -> str:
        """The task family ("" when the episode was recorded without one)."""
        return str(self.meta.get("family", ""))

    @classmethod
    def from_steps(
        cls, steps: list[Step], *, instruction: str, success: bool, meta: dict[str, Any] | None = None
    ) -> Episode:
        """Stacks recorded steps into an episode; every step must have the same cameras and shapes."""
        if not steps:
            raise ValueError("cannot build an episode from zero steps")
        first = steps[0]
        for i, step in enumerate(steps[1:], start=1):
            if step.images.keys() != first.images.keys():
                raise ValueError(
                    f"step {i}: cameras {sorted(step.images)} differ from step 0's {sorted(first.images)}"
                )
            for cam in first.images:
                if step.images[cam].shape != first.images[cam].shape:
                    raise ValueError(
                        f"step {i}: images['{cam}'] has shape {step.images[cam].shape}, "
                        f"expected {first.images[cam].shape}"
                    )
            if step.state.shape != first.state.shape:
                raise ValueError(
                    f"step {i}: state has shape {step.state.shape}, expected {first.state.shape}"
                )
            if step.action.shape != first.action.shape:
                raise ValueError(
                    f"step {i}: action has shape {step.action.shape}, expected {first.action.shape}"
                )
        return cls(
            images={cam: np.stack([s.images[cam] for s in steps]) for cam in first.images},
            state=np.stack([s.state for s in steps]),
            actions=np.stack([s.action for s in steps]),
            timestamps=np.asarray([s.timestamp for s in steps], dtype=np.float64),
            instruction=instruction,
            success=bool(success),
            meta=dict(meta or {}),
        )
