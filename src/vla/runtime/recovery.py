"""Recovery: what happens when the policy fails or the safety filter holds its command.

One policy, used by every path that turns predictions into robot commands (`SafeController` for robot
loops and the evaluator, `vla serve` for every reply):

    an attempt fails when the policy raises, or when the filter holds its output for a reason a new
    plan could cure (`RETRYABLE`: NaN/inf action, low confidence, a policy error). Then the caller
    drops its current plan and plans again from the same observation, up to `max_retries` times. If
    every attempt fails, the robot holds (the filter's hold: zero deltas, last safe absolute targets),
    the step is flagged (stats["recovery_exhausted"]) and, with `latch_estop=True`, the e-stop latches
    until an operator releases it.

An e-stop or a bad state are not retried: a new plan cannot fix them.

`Recovery.attempts()` is that policy as a loop both callers drive (the server's model call is
asynchronous, the controller's is not, so the loop body stays with the caller):

    attempts = recovery.attempts()
    for attempt in attempts:          # 0, then one more per retry; stops once an attempt is accepted
        ...plan (re-plan when attempt > 0), filter...
        attempts.judge(reasons)       # the filter's `last_reasons` (or `unfiltered_reasons`)
    if attempts.exhausted: ...hold...
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vla.runtime.chunking import ChunkBroker, PolicyLike, TemporalEnsembler, make_controller, to_observation
from vla.runtime.safety import SafetyConfig, SafetyFilter
from vla.spaces import Embodiment
from vla.types import Observation

if TYPE_CHECKING:
    from vla.models.instruction_check import Verdict

logger = logging.getLogger(__name__)

# Failures a new plan from the same observation can cure. "policy_error" is an exception from the policy.
RETRYABLE = frozenset({"non_finite_action", "low_confidence", "policy_error"})


@dataclass(frozen=True)
class RecoveryConfig:
    """What happens after a failed attempt (the same for SafeController and the policy server).

    Attributes:
        max_retries: re-plans tried for one step (or one server reply) after a failure (0 = hold at once).
        latch_estop: latch the safety filter's e-stop when the retries are exhausted.
    """

    max_retries: int = 2
    latch_estop: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.max_retries <= 100:
            raise ValueError(f"max_retries must be in [0, 100], got {self.max_retries}")


def unfiltered_reasons(actions: np.ndarray, error: str | None) -> tuple[str, ...]:
    """The failure reasons of raw policy output when no safety filter judges it (unsafe mode)."""
    if error is not None:
        return ("policy_error",)
    return () if np.all(np.isfinite(actions)) else ("non_finite_action",)


class Attempts:
    """The attempts of one step under a `Recovery` policy (see the module docstring for the loop).

    Attributes:
        retries: re-plans made so far in this step.
        reasons: the reasons of the last judged attempt.
        accepted: True once an attempt had no retryable reason.
    """

    def __init__(self, recovery: Recovery) -> None:
        self._recovery = recovery
        self.retries = 0
        self.reasons: tuple[str, ...] = ()
        self.accepted = False
        self._done = False

    def __iter__(self) -> Iterator[int]:
        rec = self._recovery
        for attempt in range(rec.config.max_retries + 1):
            if attempt > 0:
                self.retries = attempt
                rec.stats["retry"] += 1
            yield attempt
            if self.accepted:
                self._done = True
                return
        self._done = True
        rec._exhausted(self)

    def judge(self, reasons: Iterable[str]) -> bool:
        """Records the reasons of this attempt; returns True (and ends the loop) when it is accepted."""
        self.reasons = tuple(reasons)
        self.accepted = not set(self.reasons) & RETRYABLE
        return self.accepted

    @property
    def exhausted(self) -> bool:
        """True when the loop ended without an accepted attempt: the caller must hold."""
        return self._done and not self.accepted


class Recovery:
    """The recovery policy: retry on `RETRYABLE` reasons up to `max_retries`, then hold.

    Args:
        config: retry settings.
        safety: the filter whose e-stop latches on exhaustion when `config.latch_estop` (None: unsafe).

    Attributes:
        stats: counts of "policy_error", "retry" and "recovery_exhausted" (the filter keeps its own).
    """

    def __init__(self, config: RecoveryConfig | None = None, *, safety: SafetyFilter | None = None) -> None:
        self.config = config or RecoveryConfig()
        self.safety = safety
        self.stats: Counter[str] = Counter()

    def attempts(self) -> Attempts:
        """A new step's attempts (iterate it; see the module docstring)."""
        return Attempts(self)

    def _exhausted(self, attempts: Attempts) -> None:
        self.stats["recovery_exhausted"] += 1
        logger.warning(
            "recovery exhausted after %d attempts (%s): safe stop",
            attempts.retries + 1,
            ", ".join(attempts.reasons) or "no reason",
        )
        if self.config.latch_estop and self.safety is not None:
            self.safety.estop("recovery exhausted")


class SafeController:
    """A chunking controller behind a safety filter, with re-planning on failure (`Recovery`).

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
        instruction_check: Any = None,
    ) -> None:
        self.controller = controller
        self.instruction_check = instruction_check
        # Judged on the instruction's first frame and kept for the episode (vla.models.grounding_check).
        self._verdicts: Any = None
        if instruction_check is not None:
            from vla.models.grounding_check import FirstFrameVerdict, GroundingCheck

            self._verdicts = FirstFrameVerdict(GroundingCheck.of(instruction_check))
        self.refusal: Verdict | None = None
        self.safety = safety
        self.recovery = Recovery(config, safety=safety)
        self.config = self.recovery.config
        self.failed = False
        self.stats = self.recovery.stats
        self.last_error: str | None = None

    def reset(self) -> None:
        """Starts a new episode: clears the chunk, history and rate-limit memory (not a latched e-stop)."""
        self.controller.reset()
        if self.safety is not None:
            self.safety.reset()
        if self._verdicts is not None:
            self._verdicts.reset()
        self.failed = False

    def act(self, obs: Observation | dict[str, Any]) -> np.ndarray:
        """Returns the command float32 [A] to send for this step (always finite with the filter on)."""
        ob = to_observation(obs)  # converted once, so retries re-use the same history frame
        self.failed = False
        if self.instruction_check is not None:
            refused = self._refused(ob)
            if refused is not None:
                return refused
        command: np.ndarray | None = None
        attempts = self.recovery.attempts()
        for attempt in attempts:
            if attempt > 0:
                self.controller.replan()
            try:
                raw = self.controller.act(ob)
                self.last_error = None
            except Exception as e:  # any policy failure is a failed attempt, retried by the policy
                self.stats["policy_error"] += 1
                self.last_error = f"{type(e).__name__}: {e}"
                logger.warning("policy failed (attempt %d): %s", attempt + 1, self.last_error)
                raw = np.full(self._action_dim(), np.nan, dtype=np.float32)
            if self.safety is None:
                command = raw
                attempts.judge(unfiltered_reasons(raw, self.last_error))
            else:
                conf = self.controller.last_confidence
                command = self.safety.act(raw, ob.state, confidence=conf, commit=False)
                attempts.judge(self.safety.last_reasons)  # e-stop / bad state: a hold, not retried
        assert command is not None
        if attempts.exhausted:
            self.failed = True
            if self.safety is None:
                raise RuntimeError(
                    f"policy gave no finite action after {attempts.retries + 1} attempts "
                    f"(last error: {self.last_error}); no safety filter to hold (unsafe mode)"
                )
        if self.safety is not None:
            self.safety.commit(command)  # the accepted command, or the hold
        return command

    def _refused(self, ob: Observation) -> np.ndarray | None:
        """The hold for an instruction the check refuses (the policy is not called), else None."""
        assert self._verdicts is not None
        text = ob.instruction if isinstance(ob.instruction, str) else " ".join(ob.instruction)
        verdict = self._verdicts(text, ob.images)
        if verdict.ok:
            self.refusal = None
            return None
        if self.refusal != verdict:
            logger.warning("holding: %s", verdict.reason)
        self.refusal = verdict
        if self.safety is None:
            raise RuntimeError(f"refused instruction and no safety filter to hold: {verdict.reason}")
        return self.safety.act(
            np.zeros(self.safety.action_dim, dtype=np.float32), ob.state, hold="ungroundable_instruction"
        )

    def _action_dim(self) -> int:
        if self.safety is not None:
            return self.safety.action_dim
        return 1


def steps_per_chunk_of(policy: Any) -> int | None:
    """The actions a controller should run from each chunk of `policy`: its `config.steps_per_chunk`
    (a `vla.models` policy or an Engine), else None (the whole chunk)."""
    steps = getattr(getattr(policy, "config", None), "steps_per_chunk", None)
    return int(steps) if isinstance(steps, int | np.integer) and steps >= 1 else None


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
    instruction_check: Any = None,
) -> SafeController:
    """Builds chunking + safety filter + recovery around any policy (the safety filter is on by default).

    Args:
        policy: anything with `predict(Observation) -> ActionChunk`.
        embodiment: the robot's limits (default: `policy.embodiment`).
        mode: "chunk" (execute `execute_steps`, then re-plan) or "ensemble" (ACT temporal ensembling).
        execute_steps: actions per chunk in "chunk" mode. None: the policy's own
            `config.steps_per_chunk` (what `vla eval` runs), or the whole chunk for a policy without one.
        decay: ensembling weight decay.
        safety: filter settings (default `SafetyConfig()`).
        recovery: retry settings (default `RecoveryConfig()`).
        unsafe_no_filter: drive the robot without the safety filter. Only for experiments in simulation.
        instruction_check: refuses instructions the policy cannot ground: a checkpoint's
            `GroundingCheck` (`vla.models.grounding_check`: words, then the first frame's scene) or an
            `InstructionCheck` alone; a refused instruction is a hold with reason
            "ungroundable_instruction" and the policy is not called. None: no check.

    Returns:
        The SafeController; call `reset()` at an episode start and `act(obs)` every control step.
    """
    if execute_steps is None and mode == "chunk":
        execute_steps = steps_per_chunk_of(policy)
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
    return SafeController(controller, filt, config=recovery, instruction_check=instruction_check)
