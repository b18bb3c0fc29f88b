"""Windows of several robots' datasets as one index space, for training one joint policy.

Window i belongs to robot r when `offsets[r] <= i < offsets[r + 1]`; a batch of indices becomes a
`JointBatch` with one `Batch` per robot that drew any. Sampling weights give every robot the same
share of each batch, whatever its episodes' lengths, so "equal data" means equal windows per robot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla.data.sampler import WindowDataset
from vla.types import JointBatch

__all__ = ["JointWindows"]


class JointWindows:
    """Robot (embodiment name) -> its `WindowDataset`, indexed as one concatenation in that order."""

    def __init__(self, parts: dict[str, WindowDataset]) -> None:
        if not parts:
            raise ValueError("JointWindows needs at least one robot's windows")
        self.parts = dict(parts)
        self.names = list(parts)
        sizes = [len(p) for p in parts.values()]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (R + 1,)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def robot_of(self, idx: np.ndarray) -> np.ndarray:
        """int [len(idx)]: the robot (position in `names`) of each window index."""
        return np.searchsorted(self.offsets, idx, side="right") - 1

    def get_batch(self, idx: Sequence[int] | np.ndarray) -> JointBatch:
        """The windows `idx` as one `Batch` per robot (robots that drew none are left out)."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        robot = self.robot_of(idx)
        out = {}
        for r, name in enumerate(self.names):
            sel = idx[robot == r] - self.offsets[r]
            if sel.size:
                out[name] = self.parts[name].get_batch(sel)
        return JointBatch(out)

    @property
    def family_names(self) -> list[str]:
        """The task families of every robot, sorted."""
        return sorted({f for p in self.parts.values() for f in p.family_names})

    def weights(self, *, balance_families: bool) -> np.ndarray:
        """float64 [len]: every robot the same total probability; within a robot, every family the
        same (`balance_families`) or every window the same."""
        out = []
        for p in self.parts.values():
            w = p.family_weights() if balance_families else np.full(len(p), 1.0 / len(p))
            out.append(w / (w.sum() * len(self.parts)))
        return np.concatenate(out)
