"""The safety filter's configuration and the per-dimension limits it resolves from an `Embodiment`.

`SafetyConfig` holds the limits beyond the embodiment's own; `Limits.resolve` finds each action group's
role (gripper, absolute joints, end-effector delta) and turns both into arrays the filter
(`vla.runtime.safety`) applies per step, plus which of its clips the robot's driver applies too, and
the robot's declared state guards (`Embodiment.state_guards`) with the action dimensions they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vla.spaces import ActionSpace, Embodiment, StateGuard

_POS_NAMES = ("pos", "trans", "xyz")


@dataclass(frozen=True)
class SafetyConfig:
    """Limits beyond the ones the Embodiment already states.

    Attributes:
        action_space: which of the embodiment's action spaces the policy outputs (None: the default).
        velocity_scale: fraction of the embodiment's joint speed limit allowed (absolute joint targets).
        max_joint_acceleration: rad/s^2 for absolute joint targets; None disables the check.
        max_delta_change: largest per-step change of a delta command, as a fraction of its group's range
            (high - low); None disables it.
        workspace_margin: metres by which the end-effector box is shrunk on every side.
        min_confidence: hold when the policy's confidence is below this; None never holds for it.
        rate_limit_gripper: also rate-limit the gripper (off: grippers open/close as a step by design).
        guard_thresholds: (guard name, threshold) pairs replacing the threshold an embodiment's state
            guard declares (its one bound, low or high), e.g. (("balance_margin", 0.03),) for the G1.
    """

    action_space: str | None = None
    velocity_scale: float = 1.0
    max_joint_acceleration: float | None = 20.0
    max_delta_change: float | None = 0.5
    workspace_margin: float = 0.0
    min_confidence: float | None = None
    rate_limit_gripper: bool = False
    guard_thresholds: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f"velocity_scale must be in (0, 1], got {self.velocity_scale}")
        if self.max_joint_acceleration is not None and self.max_joint_acceleration <= 0:
            raise ValueError(
                f"max_joint_acceleration must be positive or None, got {self.max_joint_acceleration}"
            )
        if self.max_delta_change is not None and self.max_delta_change <= 0:
            raise ValueError(f"max_delta_change must be positive or None, got {self.max_delta_change}")
        if self.workspace_margin < 0:
            raise ValueError(f"workspace_margin must be >= 0, got {self.workspace_margin}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1] or None, got {self.min_confidence}")
        names = [n for n, _ in self.guard_thresholds]
        if len(set(names)) != len(names):
            raise ValueError(f"guard_thresholds names a guard twice: {names}")
        if not all(np.isfinite(float(v)) for _, v in self.guard_thresholds):
            raise ValueError(f"guard_thresholds must be finite, got {self.guard_thresholds}")


@dataclass(frozen=True)
class ResolvedGuard:
    """A state guard with its threshold in force and where it reads and holds.

    Attributes:
        guard: the declaration (threshold replaced by `SafetyConfig.guard_thresholds` if named there).
        state: where its field lies in the state vector.
        hold: bool [A], the action dimensions it holds when it trips (all for an empty `groups`).
    """

    guard: StateGuard
    state: slice
    hold: np.ndarray

    def trips(self, state: np.ndarray) -> bool:
        return self.guard.trips(state[self.state])


def resolve_guards(emb: Embodiment, space: ActionSpace, cfg: SafetyConfig) -> tuple[ResolvedGuard, ...]:
    """The embodiment's state guards for action space `space`, thresholds overridden by `cfg`.

    Raises:
        ValueError: a guard holds a group `space` lacks, or `cfg` names an unknown guard or one with
            two bounds (which of them to replace would be a guess).
    """
    by_name = {g.name: g for g in emb.state_guards}
    unknown = [n for n, _ in cfg.guard_thresholds if n not in by_name]
    if unknown:
        raise ValueError(
            f"guard_thresholds name guards {unknown} that embodiment '{emb.name}' does not declare; "
            f"its guards: {sorted(by_name) or 'none'}"
        )
    override = dict(cfg.guard_thresholds)
    out = []
    group_names = [g.name for g in space.groups]
    for g in emb.state_guards:
        if g.name in override:
            if g.low is not None and g.high is not None:
                raise ValueError(f"state guard '{g.name}' has a low and a high bound; cannot replace one")
            value = float(override[g.name])
            g = replace(g, low=value) if g.low is not None else replace(g, high=value)
        missing = [n for n in g.groups if n not in group_names]
        if missing:
            raise ValueError(
                f"embodiment '{emb.name}': state guard '{g.name}' holds groups {missing} that action space "
                f"'{space.name}' does not have; its groups: {group_names}"
            )
        hold = np.zeros(space.dim, dtype=bool)
        for n in g.groups or tuple(group_names):
            hold[space.slice(n)] = True
        out.append(ResolvedGuard(guard=g, state=emb.state_slice(g.field), hold=hold))
    return tuple(out)


@dataclass(frozen=True)
class Limits:
    """The per-dimension limits the filter enforces, resolved from an Embodiment (all float64 [A]).

    `vel` bounds |cmd_t - cmd_{t-1}| and `acc` bounds |(cmd_t - cmd_{t-1}) - (cmd_{t-1} - cmd_{t-2})|
    (inf where unlimited). `is_delta` marks dims held at zero. Slices locate groups in the action
    (`ee`, `joints`, `gripper`) and fields in the state (`state_ee`, `state_joints`, `state_gripper`).
    `space_low`/`space_high` are the action space's own bounds and `driver_bounds`/`driver_workspace`
    whether the robot's driver clips to them and to the embodiment's workspace box
    (`Embodiment.driver_clips`).
    """

    low: np.ndarray
    high: np.ndarray
    vel: np.ndarray
    acc: np.ndarray
    is_delta: np.ndarray
    ee: slice | None
    joints: slice | None
    gripper: slice | None
    state_ee: slice | None
    state_joints: slice | None
    state_gripper: slice | None
    workspace_low: np.ndarray
    workspace_high: np.ndarray
    space_low: np.ndarray
    space_high: np.ndarray
    driver_bounds: bool
    driver_workspace: bool
    driver_workspace_low: np.ndarray
    driver_workspace_high: np.ndarray
    guards: tuple[ResolvedGuard, ...] = ()

    @classmethod
    def resolve(cls, emb: Embodiment, cfg: SafetyConfig) -> Limits:
        """Finds each group's role from its name: "gripper*", "*joint*" (absolute joint targets of the
        embodiment's joint count, in non-delta spaces), and the 3-D "*pos*"/"*trans*" group of a delta
        space (end-effector translation, kept inside the workspace). A group is a delta when it says so
        (`ActionGroup.delta`), else when "delta" is in the space or group name."""
        space: ActionSpace = emb.action_space(cfg.action_space)
        low = space.low.astype(np.float64)
        high = space.high.astype(np.float64)
        a = space.dim
        vel = np.full(a, np.inf)
        acc = np.full(a, np.inf)
        is_delta = np.zeros(a, dtype=bool)
        ee = joints = gripper = None
        space_delta = "delta" in space.name.lower()
        n_joints = len(emb.joint_low)
        hz = emb.control_hz
        for g in space.groups:
            sl = space.slice(g.name)
            name = g.name.lower()
            if "gripper" in name:
                gripper = sl
                glo, ghi = sorted(emb.gripper_range)
                low[sl] = np.maximum(low[sl], glo)
                high[sl] = np.minimum(high[sl], ghi)
                if cfg.rate_limit_gripper and cfg.max_delta_change is not None:
                    vel[sl] = cfg.max_delta_change * (high[sl] - low[sl])
            elif g.delta if g.delta is not None else (space_delta or "delta" in name):
                is_delta[sl] = True
                if cfg.max_delta_change is not None:
                    vel[sl] = cfg.max_delta_change * (high[sl] - low[sl])
                if g.size == 3 and any(p in name for p in _POS_NAMES):
                    ee = sl
            elif "joint" in name and g.size == n_joints:
                joints = sl
                low[sl] = np.maximum(low[sl], np.asarray(emb.joint_low, dtype=np.float64))
                high[sl] = np.minimum(high[sl], np.asarray(emb.joint_high, dtype=np.float64))
                vel[sl] = np.asarray(emb.max_joint_velocity, dtype=np.float64) * cfg.velocity_scale / hz
                if cfg.max_joint_acceleration is not None:
                    acc[sl] = cfg.max_joint_acceleration / hz**2
        if np.any(low > high):
            raise ValueError(
                f"embodiment '{emb.name}': action bounds of space '{space.name}' do not overlap the joint "
                f"limits / gripper range (low {low.tolist()} > high {high.tolist()})"
            )
        fields = {f.name: f.size for f in emb.state_fields}
        units = {f.name: f.units for f in emb.state_fields}
        gripper_units = next((g.units for g in space.groups if "gripper" in g.name.lower()), None)

        def field(name: str, size: int | None) -> slice | None:
            if name in fields and (size is None or fields[name] == size):
                return emb.state_slice(name)
            return None

        margin = cfg.workspace_margin
        ws_low = np.asarray(emb.workspace_low, dtype=np.float64) + margin
        ws_high = np.asarray(emb.workspace_high, dtype=np.float64) - margin
        if np.any(ws_low > ws_high):
            raise ValueError(f"workspace_margin {margin} m leaves an empty workspace box")
        state_ee = field("ee_pos", 3)
        if ee is not None and state_ee is None:
            raise ValueError(
                f"embodiment '{emb.name}': action space '{space.name}' moves the end effector but the state "
                "has no 3-D 'ee_pos' field, so the workspace cannot be enforced"
            )
        return cls(
            low=low,
            high=high,
            vel=vel,
            acc=acc,
            is_delta=is_delta,
            ee=ee,
            joints=joints,
            gripper=gripper,
            state_ee=state_ee,
            state_joints=field("joint_pos", n_joints),
            # The measured gripper can only stand in for a command when both use the same units (the
            # Panda of the built-in suite measures finger opening in m but commands a closing fraction).
            state_gripper=(
                field("gripper", gripper.stop - gripper.start)
                if gripper is not None and units.get("gripper") == gripper_units
                else None
            ),
            workspace_low=ws_low,
            workspace_high=ws_high,
            space_low=space.low.astype(np.float64),
            space_high=space.high.astype(np.float64),
            driver_bounds="action_bounds" in emb.driver_clips,
            driver_workspace="workspace" in emb.driver_clips and ee is not None,
            driver_workspace_low=np.asarray(emb.workspace_low, dtype=np.float64),
            driver_workspace_high=np.asarray(emb.workspace_high, dtype=np.float64),
            guards=resolve_guards(emb, space, cfg),
        )

    def driver_command(self, a: np.ndarray, ee_pos: np.ndarray | None) -> np.ndarray:
        """What the robot's driver would make of command `a` (float [A]) by itself, at `ee_pos`."""
        out = np.clip(a, self.space_low, self.space_high) if self.driver_bounds else a.copy()
        if self.driver_workspace and self.ee is not None and ee_pos is not None:
            out[self.ee] = np.clip(
                out[self.ee], self.driver_workspace_low - ee_pos, self.driver_workspace_high - ee_pos
            )
        return out
