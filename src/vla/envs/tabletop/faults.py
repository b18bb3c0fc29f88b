"""Injected skill failures, to measure what re-planning recovers (`vla eval --inject-drops`).

`DropFault` wraps any tabletop actor: in a drawn share of step attempts it opens the gripper once the
hand has held something for a few control steps and carried it up, as a slipping grasp would. The
object falls; the step monitor sees the drop from the robot state and the executor retries or re-plans.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.envs.tabletop.embodiment import make_embodiment

GRIPPER = 6  # index of the gripper command in an ee_delta action (1 closes)
HELD_STEPS = 6  # closed-gripper actions before the fault opens it (the object is up in the air by then)


class DropFault:
    """Opens the gripper mid-carry in `rate` of the attempts (each `reset` starts an attempt).

    Args:
        actor: the wrapped actor (ee_delta actions).
        rate: share of attempts with a fault, in [0, 1].
        seed: seed of the draws.
        at: attempts (0 = the first `reset`) that get a fault whatever the draw: a failure exactly where
            a test or a demonstration wants one.

    Attributes:
        injected: attempts that got a fault so far.
    """

    def __init__(self, actor: Any, *, rate: float, seed: int = 0, at: tuple[int, ...] = ()) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        if any(i < 0 for i in at):
            raise ValueError(f"attempt indices must be >= 0, got {at}")
        self.actor = actor
        self.rate = rate
        self.at = frozenset(at)
        self.attempt = -1
        self._rng = np.random.default_rng([seed, 23])
        self._ee_z = make_embodiment((8, 8)).state_slice("ee_pos").start + 2
        self.injected = 0
        self._armed = False
        self._closed = 0

    def reset(self) -> None:
        self.actor.reset()
        self.attempt += 1
        draw = bool(
            self._rng.random() < self.rate
        )  # drawn every attempt, so `at` leaves the rest as they were
        self._armed = draw or self.attempt in self.at
        self._closed = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        action = np.array(self.actor.act(obs), dtype=np.float32)
        if not self._armed:
            return action
        self._closed = self._closed + 1 if action[GRIPPER] > 0.5 else 0
        if self._closed >= HELD_STEPS and float(obs["state"][self._ee_z]) > 0.11:
            self.injected += 1
            self._armed = False
            action[GRIPPER] = 0.0
        return action
