"""Recovery: what a controller does when the policy fails or the safety filter blocks its command.

`SafeController` is what evaluators and robot loops should drive: chunking (`make_controller`) wrapped
by the safety filter (on unless `unsafe_no_filter=True`) and this recovery policy:

    a step fails when the policy raises, or when the filter holds its command for a reason a new plan
    could cure (NaN/inf action, low confidence). Then the controller drops its current chunk and plans
    again from the same observation, up to `max_retries` times in the same step. If every attempt
    fails, the robot holds (the filter's hold: zero deltas, last safe absolute targets), the step is
    flagged (`failed`, stats["recovery_exhausted"]) and, with `latch_estop=True`, the e-stop latches
    until an operator releases it.

An e-stop or a bad state are not retried: a new plan cannot fix them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla.runtime.chunking import ChunkBroker, PolicyLike, TemporalEnsembler, make_controller, to_observation
from vla.runtime.safety import SafetyConfig, SafetyFilter
from vla.spaces import Embodiment
from vla.types import Observation

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({"non_finite_action", "low_confidence"})


@dataclass(frozen=True)
class RecoveryConfig:
    """What SafeController does after a failed step.

    Attributes:
        max_retries: re-plans tried in one step after a failure (0 = hold at once).
        latch_estop: latch the safety filter's e-stop when the retries are exhausted.
    """

    max_retries: int = 2
    latch_estop: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.max_retries <= 100:
            raise ValueError(f"max_retries must be in [0, 100], got {self.max_retries}")


class SafeController:
    """A chunking controller behind a safety filter, with re-planning on failure.

    Attributes:
        failed: True when the last step ended in a safe stop (every attempt failed).
        stats: counts of "policy_error", "retry", "recovery_exhausted" (the filter keeps its own).
    """

    def __init__(
        self,
        controller: ChunkBroker | TemporalEnsembler,
        safety: SafetyFilter | None,
        *,
        config: RecoveryConfig | None = None,
    ) -> None:
        self.controller = controller
        self.safety = safety
        self.config = config or RecoveryConfig()
        self.failed = False
        self.stats: Counter[str] = Counter()
        self.last_error: str | None = None

    def reset(self) -> None:
        """Starts a new episode: clears the chunk, history and rate-limit memory (not a latched e-stop)."""
        self.controller.reset()
        if self.safety is not None:
            self.safety.reset()
        self.failed = False

    def act(self, obs: Observation | dict[str, Any]) -> np.ndarray:
        """Returns the command float32 [A] to send for this step (always finite with the filter on)."""
        ob = to_observation(obs)  # converted once, so retries re-use the same history frame
        self.failed = False
        command: np.ndarray | None = None
        for attempt in range(self.config.max_retries + 1):
            if attempt > 0:
                self.stats["retry"] += 1
                self.controller.replan()
            try:
                raw = self.controller.act(ob)
                self.last_error = None
            except Exception as e:  # any policy failure is a failed step, retried below
                self.stats["policy_error"] += 1
                self.last_error = f"{type(e).__name__}: {e}"
                logger.warning("policy failed (attempt %d): %s", attempt + 1, self.last_error)
                raw = np.full(self._action_dim(), np.nan, dtype=np.float32)
            if self.safety is None:
                if np.all(np.isfinite(raw)):
                    return raw
                continue
            command = self.safety.act(raw, ob.state, confidence=self.controller.last_confidence, commit=False)
            # An e-stop or bad state holds with a non-retryable reason: returned as is, not retried.
            if not set(self.safety.last_reasons) & RETRYABLE:
                self.safety.commit(command)
                return command
        self.failed = True
        self.stats["recovery_exhausted"] += 1
        logger.warning("recovery exhausted after %d attempts: safe stop", self.config.max_retries + 1)
        if self.safety is None:
            raise RuntimeError(
                f"policy gave no finite action after {self.config.max_retries + 1} attempts "
                f"(last error: {self.last_error}); no safety filter to hold (unsafe mode)"
            )
        if self.config.latch_estop:
            self.safety.estop("recovery exhausted")
        assert command is not None
        self.safety.commit(command)  # the hold
        return command

    def _action_dim(self) -> int:
        if self.safety is not None:
            return self.safety.action_dim
        return 1


def make_safe_controller(
    policy: PolicyLike,
    *,
    embodiment: Embodiment | None = None,
    mode: str = "chunk",
    execute_steps: int | None = None,
    decay: float = 0.01,
    safety: SafetyConfig | None = None,
    recovery: RecoveryConfig | None = None,
    unsafe_no_filter: bool = False,
) -> SafeController:
    """Builds chunking + safety filter + recovery around any policy (the safety filter is on by default).

    Args:
        policy: anything with `predict(Observation) -> ActionChunk`.
        embodiment: the robot's limits (default: `policy.embodiment`).
        mode: "chunk" (execute `execute_steps`, then re-plan) or "ensemble" (ACT temporal ensembling).
        execute_steps: actions per chunk in "chunk" mode (None: the whole chunk).
        decay: ensembling weight decay.
        safety: filter settings (default `SafetyConfig()`).
        recovery: retry settings (default `RecoveryConfig()`).
        unsafe_no_filter: drive the robot without the safety filter. Only for experiments in simulation.
    """
    controller = make_controller(policy, mode=mode, execute_steps=execute_steps, decay=decay)
    filt = None
    if not unsafe_no_filter:
        emb = embodiment if embodiment is not None else getattr(policy, "embodiment", None)
        if not isinstance(emb, Embodiment):
            raise ValueError(
                "the safety filter needs the robot's Embodiment: pass embodiment=..., or a policy with an "
                "`embodiment` attribute (or explicitly unsafe_no_filter=True)"
            )
        filt = SafetyFilter(emb, safety)
    else:
        logger.warning("safety filter DISABLED (unsafe_no_filter=True)")
    return SafeController(controller, filt, config=recovery)
