"""Safety filter between a policy and a robot, configured from the robot's `Embodiment`. On by default.

Every command passes these checks, in order (the first three replace the command by a *hold*):

1. latched e-stop (`estop()` until `release_estop()`)                      -> hold, reason "estop"
   a latching state guard of the robot trips (`Embodiment.state_guards`,   -> hold, the guard's reason
   e.g. the G1's fall: pelvis low or tilted); it latches the e-stop           (e.g. "fall")
   the caller demands a hold (`act(..., hold=reason)`), e.g. the controller's -> hold, that reason
   instruction check refused the instruction                                  ("ungroundable_instruction")
2. NaN/inf in the action                                                  -> hold, reason "non_finite_action"
   NaN/inf in the state fields the filter reads                           -> hold, reason "non_finite_state"
3. confidence below `min_confidence` (when the policy reports one)        -> hold, reason "low_confidence"
4. action bounds of every group, gripper range, joint-position limits     -> clip, "action_bounds",
                                                                             "gripper_range", "joint_limits"
5. rate limits on the per-step change of the command: for absolute joint targets the change is a
   velocity (<= max_joint_velocity * velocity_scale / control_hz) and its change an acceleration
   (<= max_joint_acceleration / control_hz**2); for delta commands (ee_delta) the command already is a
   velocity, so its change per step is bounded (<= max_delta_change * group range)  -> "velocity",
                                                                             "acceleration"
6. end-effector workspace box (delta-position groups): the delta is clipped so that the current ee
   position plus the delta stays inside the box (a chunk accumulates its deltas)  -> "workspace"
7. a non-latching state guard trips (e.g. the G1's CoM within its balance margin of the support
   polygon's edge): the groups it names are held, the rest pass as filtered    -> the guard's reason
                                                                             (e.g. "balance_margin")

State guards are the robot's declaration (`vla.spaces.StateGuard`): the filter reads the declared state
field, never a robot by name, and an embodiment without guards (the Panda) is filtered as before.
A guard's field is read with the other state fields, so NaN/inf there is "non_finite_state".

A hold is zero for delta groups and the last safe command for absolute groups (before any command: the
measured joint positions, and the measured gripper if the state reports it in the command's units, else
the bounded value nearest zero). Limits and velocity bounds are hard; the acceleration
bound gives way when only violating it keeps the command inside a hard limit. Every intervention is
counted in `stats` and logged on the "vla.runtime.safety" logger (holds at WARNING, clips at INFO).

`physical_stats` counts only the interventions that change what the robot does: a hold always, a clip
when the filtered command differs from what the robot's own driver would have made of the raw command
(`Embodiment.driver_clips`: e.g. Meta-World clips every action to [-1, 1] itself, so clipping 1.05 to
1.0 there changes nothing physical and is counted in `stats` only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

import numpy as np

from vla.runtime.safety_limits import Limits, SafetyConfig
from vla.spaces import Embodiment

logger = logging.getLogger(__name__)

# "ungroundable_instruction": the controller's instruction check refused the command's instruction
# (`vla.models.instruction_check`), so the policy is not asked at all.
HOLD_REASONS = (
    "estop",
    "non_finite_action",
    "non_finite_state",
    "low_confidence",
    "ungroundable_instruction",
)
__all__ = ["HOLD_REASONS", "Limits", "SafetyConfig", "SafetyFilter"]


class SafetyFilter:
    """Clips or holds commands so they respect the embodiment's limits; keeps per-reason counts.

    Use `act(action, state)` once per control step (stateful: rate limits refer to the previous command),
    or `filter_chunk(actions, state)` for a whole predicted chunk (the server's case).
    """

    def __init__(self, embodiment: Embodiment, config: SafetyConfig | None = None) -> None:
        self.embodiment = embodiment
        self.config = config or SafetyConfig()
        self.limits = Limits.resolve(embodiment, self.config)
        self.action_dim = int(self.limits.low.shape[0])
        self.state_dim = embodiment.state_dim
        # Reasons whose intervention replaces the whole command (what `blocked` reports).
        self.hold_reasons = HOLD_REASONS + tuple(
            dict.fromkeys(g.guard.reported for g in self.limits.guards if g.guard.latch or g.hold.all())
        )
        self.stats: Counter[str] = Counter()
        self.physical_stats: Counter[str] = Counter()
        self.last_reasons: tuple[str, ...] = ()
        self._estop = threading.Event()
        self._estop_reason = ""
        self._estop_since: float | None = None  # time.time() of the latch
        self._prev: np.ndarray | None = None
        self._prev2: np.ndarray | None = None
        self._first_ref: np.ndarray | None = None

    # ---- e-stop -------------------------------------------------------------------------------------
    def estop(self, reason: str = "operator") -> None:
        """Latches the e-stop: every command is a hold until `release_estop()` (not cleared by reset)."""
        if not self._estop.is_set():
            logger.warning("e-stop latched (%s)", reason)
            self._estop_since = time.time()
        self._estop_reason = reason
        self._estop.set()

    def release_estop(self, *, by: str = "local caller", reason: str = "") -> None:
        """Releases a latched e-stop; rate limits restart from the held command.

        Args:
            by: who releases it (logged with the time and the reason the stop was latched for).
            reason: why the operator releases it.
        """
        if self._estop.is_set():
            since = "" if self._estop_since is None else f" since {_utc(self._estop_since)}"
            logger.warning(
                "e-stop released by %s at %s (reason: %s); it was latched%s for: %s",
                by,
                _utc(time.time()),
                reason or "none given",
                since,
                self._estop_reason,
            )
        self._estop.clear()
        self._estop_since = None

    @property
    def estop_reason(self) -> str:
        """Why the e-stop was latched ("" when it never was)."""
        return self._estop_reason

    @property
    def estopped(self) -> bool:
        return self._estop.is_set()

    def reset(self) -> None:
        """Forgets the previous commands (new episode). The e-stop latch and the stats are kept."""
        self._prev = None
        self._prev2 = None
        self._first_ref = None
        self.last_reasons = ()

    @property
    def interventions(self) -> int:
        return sum(self.stats.values())

    # ---- filtering ----------------------------------------------------------------------------------
    def act(
        self,
        action: np.ndarray,
        state: np.ndarray,
        *,
        confidence: float | None = None,
        commit: bool = True,
        hold: str | None = None,
    ) -> np.ndarray:
        """Filters one command.

        Args:
            action: float [A], robot units.
            state: float [S], the measured state at this step.
            confidence: the policy's confidence in [0, 1], or None.
            commit: remember the result as the command sent (rate limits of the next step refer to it).
                Recovery filters candidate commands with commit=False and commits the one it sends.
            hold: a hold the caller demands, with its reason (one of `HOLD_REASONS`); an e-stop or a
                fall still takes precedence.

        Returns:
            float32 [A], the command to send. `last_reasons` lists the interventions.
        """
        action, state = self._check(action, state, 1)
        ref1 = self._prev if self._prev is not None else self._measured(state)
        ref2 = self._prev2 if self._prev is not None else None
        if self._prev is None:
            self._first_ref = ref1  # the measured start acts as the command before the first one
        ee_pos = state[self.limits.state_ee] if self.limits.state_ee is not None else None
        if hold is not None and hold not in HOLD_REASONS:
            raise ValueError(f"unknown hold reason '{hold}'; known: {list(HOLD_REASONS)}")
        cmd, reasons, physical = self._step(action[0], state, ref1, ref2, ee_pos, confidence, hold)
        if commit:
            self.commit(cmd)
        self._record(reasons, physical=reasons if physical else [])
        return cmd.astype(np.float32)

    def commit(self, command: np.ndarray) -> None:
        """Records `command` (float [A], already filtered) as the one sent at this step."""
        self._prev2 = self._prev if self._prev is not None else self._first_ref
        self._prev = np.asarray(command, dtype=np.float64).reshape(self.action_dim).copy()

    @property
    def blocked(self) -> bool:
        """True when the last filtered command was replaced by a hold."""
        return any(r in self.hold_reasons for r in self.last_reasons)

    def filter_chunk(
        self,
        actions: np.ndarray,
        state: np.ndarray,
        *,
        confidence: float | None = None,
        prev_action: np.ndarray | None = None,
    ) -> np.ndarray:
        """Filters a predicted chunk as if it were executed from `state`, step after step.

        Rate limits apply inside the chunk; its first step is referred to `prev_action` (the last
        executed command) when given, else to the measured joint positions. A chunk's ee deltas are
        accumulated, so every predicted ee position stays in the workspace. Does not touch the
        per-step memory of `act`.

        Args:
            actions: float [H, A].
            state: float [S].
            confidence: the policy's confidence for this chunk, or None.
            prev_action: float [A] or None.

        Returns:
            float32 [H, A]. `last_reasons` lists every intervention in the chunk (unique, in order).
        """
        actions, state = self._check(actions, state, None)
        if prev_action is not None:
            prev = np.asarray(prev_action, dtype=np.float64).reshape(-1)
            if prev.shape != (self.action_dim,) or not np.all(np.isfinite(prev)):
                raise ValueError(f"prev_action must be finite float [{self.action_dim}]")
            ref1: np.ndarray = np.clip(prev, self.limits.low, self.limits.high)
        else:
            ref1 = self._measured(state)
        ref2: np.ndarray | None = None
        ee_pos = None
        if self.limits.state_ee is not None:
            ee_pos = state[self.limits.state_ee].copy()
        out = np.empty_like(actions)
        all_reasons: list[str] = []
        physical_reasons: list[str] = []
        for h in range(actions.shape[0]):
            cmd, reasons, physical = self._step(actions[h], state, ref1, ref2, ee_pos, confidence)
            out[h] = cmd
            all_reasons.extend(reasons)
            physical_reasons.extend(reasons if physical else [])
            if ee_pos is not None and self.limits.ee is not None and np.all(np.isfinite(ee_pos)):
                ee_pos = ee_pos + cmd[self.limits.ee]  # where the ee will be after this step
            ref2, ref1 = ref1, cmd
        self._record(tuple(dict.fromkeys(all_reasons)), counts=all_reasons, physical=physical_reasons)
        return out.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """The limits in force, as plain lists/floats (None = unlimited): what the server announces.

        Returns:
            {"action_space", "control_hz", "groups": [{"name", "units", "low", "high", "max_step",
            "max_step_change", "hold"}], "workspace": {"group", "low", "high", "margin"} or None,
            "min_confidence", "velocity_scale", "max_joint_acceleration", "max_delta_change",
            "rate_limit_gripper", "hold_reasons", "state_guards": [{"name", "reason", "field",
            "indices", "low", "high", "groups", "latch", "why"}]}. `max_step` bounds
            |cmd_t - cmd_{t-1}| and `max_step_change` the change of that step, per dimension, in the
            group's units; a guard's thresholds are the ones in force.
        """
        lim, cfg = self.limits, self.config
        space = self.embodiment.action_space(cfg.action_space)
        groups = []
        for g in space.groups:
            sl = space.slice(g.name)
            groups.append(
                {
                    "name": g.name,
                    "units": g.units,
                    "low": _plain(lim.low[sl]),
                    "high": _plain(lim.high[sl]),
                    "max_step": _plain(lim.vel[sl]),
                    "max_step_change": _plain(lim.acc[sl]),
                    "hold": "zero" if bool(lim.is_delta[sl].all()) else "last safe command",
                }
            )
        workspace = None
        if lim.ee is not None:
            ee = next(g.name for g in space.groups if space.slice(g.name) == lim.ee)
            workspace = {
                "group": ee,
                "low": _plain(lim.workspace_low),
                "high": _plain(lim.workspace_high),
                "margin": float(cfg.workspace_margin),
            }
        return {
            "action_space": space.name,
            "control_hz": float(self.embodiment.control_hz),
            "groups": groups,
            "workspace": workspace,
            "min_confidence": cfg.min_confidence,
            "velocity_scale": float(cfg.velocity_scale),
            "max_joint_acceleration": cfg.max_joint_acceleration,
            "max_delta_change": cfg.max_delta_change,
            "rate_limit_gripper": bool(cfg.rate_limit_gripper),
            "hold_reasons": list(self.hold_reasons),
            "state_guards": [
                {
                    "name": g.guard.name,
                    "reason": g.guard.reported,
                    "field": g.guard.field,
                    "indices": list(g.guard.indices),
                    "low": g.guard.low,
                    "high": g.guard.high,
                    "groups": list(g.guard.groups) or [gr.name for gr in space.groups],
                    "latch": g.guard.latch,
                    "why": g.guard.why,
                }
                for g in lim.guards
            ],
        }

    # ---- internals ----------------------------------------------------------------------------------
    def _check(
        self, action: np.ndarray, state: np.ndarray, rows: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(action, dtype=np.float64)
        if rows == 1:
            a = a.reshape(1, -1) if a.ndim == 1 else a
        if a.ndim != 2 or a.shape[1] != self.action_dim or (rows is not None and a.shape[0] != rows):
            want = f"[{self.action_dim}]" if rows == 1 else f"[H, {self.action_dim}]"
            raise ValueError(f"safety filter expects actions {want}, got shape {list(np.shape(action))}")
        s = np.asarray(state, dtype=np.float64)
        if s.shape != (self.state_dim,):
            raise ValueError(f"safety filter expects state [{self.state_dim}], got shape {list(s.shape)}")
        return a, s

    def _measured(self, state: np.ndarray) -> np.ndarray:
        """Reference for the first command: measured joints/gripper where known, NaN (unknown) elsewhere."""
        lim = self.limits
        ref = np.full(self.action_dim, np.nan)
        if lim.joints is not None and lim.state_joints is not None:
            ref[lim.joints] = state[lim.state_joints]
        return ref

    def _hold(self, state: np.ndarray, ref1: np.ndarray) -> np.ndarray:
        lim = self.limits
        hold = np.where(np.isfinite(ref1), ref1, np.nan)
        if lim.gripper is not None and lim.state_gripper is not None:
            g = state[lim.state_gripper]
            hold[lim.gripper] = np.where(np.isfinite(hold[lim.gripper]), hold[lim.gripper], g)
        hold[lim.is_delta] = 0.0
        hold = np.where(np.isfinite(hold), hold, 0.0)  # nothing known: the bounded value nearest zero
        return np.clip(hold, lim.low, lim.high)

    def _step(
        self,
        a: np.ndarray,
        state: np.ndarray,
        ref1: np.ndarray,
        ref2: np.ndarray | None,
        ee_pos: np.ndarray | None,
        confidence: float | None,
        hold: str | None = None,
    ) -> tuple[np.ndarray, list[str], bool]:
        """One command: (filtered command, reasons, whether it differs from the driver's own result)."""
        lim = self.limits
        hold_reason = None
        latching = next((g for g in lim.guards if g.guard.latch and g.trips(state)), None)
        if self._estop.is_set():
            hold_reason = "estop"
        elif latching is not None:
            hold_reason = latching.guard.reported
            self.estop(hold_reason)
        elif hold is not None:
            hold_reason = hold
        elif not np.all(np.isfinite(a)):
            hold_reason = "non_finite_action"
        elif not np.all(np.isfinite(state[self._read_fields()])):
            hold_reason = "non_finite_state"
        elif self.config.min_confidence is not None and confidence is not None:
            c = float(confidence)
            if not np.isfinite(c) or c < self.config.min_confidence:
                hold_reason = "low_confidence"
        if hold_reason is not None:
            return self._hold(state, ref1), [hold_reason], True
        reasons: list[str] = []
        cmd = np.clip(a, lim.low, lim.high)
        changed = cmd != a
        if changed.any():
            for sl, name in ((lim.gripper, "gripper_range"), (lim.joints, "joint_limits")):
                if sl is not None and changed[sl].any():
                    reasons.append(name)
                    changed[sl] = False
            if changed.any():
                reasons.append("action_bounds")
        known = np.isfinite(ref1)
        if known.any():
            step = cmd - np.where(known, ref1, 0.0)
            if ref2 is not None:
                known2 = known & np.isfinite(ref2)
                prev_step = np.where(known2, ref1 - np.where(known2, ref2, 0.0), 0.0)
                acc = np.where(known2, lim.acc, np.inf)
                s1 = np.clip(step, prev_step - acc, prev_step + acc)
                if np.any(s1[known] != step[known]):
                    reasons.append("acceleration")
                step = s1
            # Hard interval: velocity bound and the position bounds (ref1 is within them, so 0 is inside).
            base = np.where(known, ref1, 0.0)
            hard_lo = np.maximum(-lim.vel, lim.low - base)
            hard_hi = np.minimum(lim.vel, lim.high - base)
            s2 = np.clip(step, hard_lo, hard_hi)
            if np.any(np.abs(s2 - step)[known] > 1e-12):
                reasons.append("velocity")
            cmd = np.where(known, base + s2, cmd)
        if lim.ee is not None and ee_pos is not None:
            d = cmd[lim.ee]
            d_ws = np.clip(d, lim.workspace_low - ee_pos, lim.workspace_high - ee_pos)
            d_ws = np.clip(d_ws, lim.low[lim.ee], lim.high[lim.ee])  # bounds win when already outside
            if np.any(d_ws != d):
                reasons.append("workspace")
                cmd[lim.ee] = d_ws
        cmd = np.clip(cmd, lim.low, lim.high)
        held = np.zeros(self.action_dim, dtype=bool)
        for g in lim.guards:
            if not g.guard.latch and g.trips(state):
                reasons.append(g.guard.reported)
                held |= g.hold
        if held.any():  # a hold is not rate-limited: it is the command the robot can always take
            cmd[held] = self._hold(state, ref1)[held]
        physical = bool(reasons) and bool(np.any(np.abs(cmd - lim.driver_command(a, ee_pos)) > 1e-9))
        physical = physical or bool(held.any())
        return cmd, list(dict.fromkeys(reasons)), physical

    def _read_fields(self) -> list[int]:
        lim = self.limits
        idx: list[int] = []
        guarded = tuple(g.state for g in lim.guards)
        for sl in (
            lim.state_ee if lim.ee is not None else None,
            lim.state_joints,
            lim.state_gripper,
            *guarded,
        ):
            if sl is not None:
                idx.extend(range(sl.start, sl.stop))
        return list(dict.fromkeys(idx))

    def _record(
        self,
        reasons: tuple[str, ...] | list[str],
        counts: list[str] | None = None,
        *,
        physical: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.last_reasons = tuple(dict.fromkeys(reasons))
        for r in counts if counts is not None else reasons:
            self.stats[r] += 1
        for r in physical:
            self.physical_stats[r] += 1
        for r in self.last_reasons:
            guard = any(r == g.guard.reported for g in self.limits.guards)
            # A refused instruction holds every step until a new one comes; its controller warns once.
            warn = (r in self.hold_reasons or guard) and r != "ungroundable_instruction"
            level = logging.WARNING if warn else logging.INFO
            logger.log(level, "safety intervention: %s", r)


def _plain(a: np.ndarray) -> list[float | None]:
    """float array -> list of floats, None where unlimited (inf), for msgpack/JSON metadata."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(a, dtype=np.float64).reshape(-1)]


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
