"""HG-DAgger's gate (Kelly et al., 2019): the expert takes the controls only where the policy strays.

In HG-DAgger a human watches the policy drive and takes over when it leaves what they judge safe, drives
until the state is back in hand, and hands back; only those corrections become training data. Here the
scripted expert (the suite's labeller) is the human, and the judgement is how far the policy's action is
from the expert's for the same state: per action dimension, the difference over the dimension's range
(the env's action bounds), the largest over the dimensions. That needs nothing suite-specific, and it
is the quantity a tolerance on the expert's own reference would bound on a delta-action robot.

    expert idle  --(discrepancy > tolerance for `patience` steps in a row)-->  expert drives
    expert drives --(drove >= `hold` steps and discrepancy <= tolerance)-->   expert idle

`patience` keeps one noisy step from counting as a departure; `hold` lets the correction bring the
state back before the policy gets it again (handing back at the first agreeing step made the two
alternate every step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Takeover:
    """When the expert takes over and hands back (see the module doc).

    Attributes:
        tolerance: largest discrepancy (fraction of each dimension's range) the expert lets pass.
        patience: consecutive steps over `tolerance` before the expert takes over (>= 1).
        hold: fewest steps the expert drives once it has taken over (>= 1).
    """

    tolerance: float = 0.25
    patience: int = 2
    hold: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.tolerance <= 1.0:
            raise ValueError(f"Takeover.tolerance must be in (0, 1], got {self.tolerance}")
        for name in ("patience", "hold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Takeover.{name} must be an int >= 1, got {value!r}")

    def gate(self, low: np.ndarray, high: np.ndarray) -> TakeoverGate:
        """A gate for one actor pair on an env with action bounds `low`, `high`."""
        return TakeoverGate(self, low, high)


class TakeoverGate:
    """The per-episode state of a `Takeover` (call `reset` at each episode's start)."""

    def __init__(self, spec: Takeover, low: np.ndarray, high: np.ndarray) -> None:
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError(f"action bounds must be two [A] vectors, got {low.shape} and {high.shape}")
        self.spec = spec
        self._width = high - low
        self._free = self._width > 0  # fixed dimensions (low == high) cannot disagree
        self.reset()

    def reset(self) -> None:
        self.driving = False
        self._over = 0
        self._drove = 0

    def discrepancy(self, action: np.ndarray, label: np.ndarray) -> float:
        """The largest per-dimension |action - label| over the dimension's range."""
        diff = np.abs(np.asarray(action, np.float64) - np.asarray(label, np.float64))
        if diff.shape != self._width.shape:
            raise ValueError(f"actions must be [{self._width.size}], got {diff.shape}")
        if not np.all(np.isfinite(diff)):
            return float("inf")
        return float(np.max(diff[self._free] / self._width[self._free], initial=0.0))

    def step(self, action: np.ndarray, label: np.ndarray) -> bool:
        """Whether the expert drives this step, given the policy's `action` and the expert's `label`."""
        d = self.discrepancy(action, label)
        if self.driving:
            self._drove += 1
            if self._drove > self.spec.hold and d <= self.spec.tolerance:
                self.driving, self._over = False, 0
            return self.driving
        self._over = self._over + 1 if d > self.spec.tolerance else 0
        if self._over >= self.spec.patience:
            self.driving, self._drove = True, 1
        return self.driving
