"""Embodiments: what a robot accepts as actions, what its state vector holds, and its hard limits.

An `Embodiment` is plain data (JSON round-trip). It travels inside every dataset and checkpoint so that
a policy trained for one robot refuses to drive another, and the safety filter reads its limits from it,
including the robot's own state checks (`StateGuard`: a humanoid's balance margin and fall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ActionGroup:
    """A named slice of an action vector, e.g. the arm's position deltas or the gripper.

    Attributes:
        name: e.g. "arm_pos", "arm_rot", "gripper", "joints", "base".
        size: number of dimensions.
        low, high: hard limits per dimension, in `units`.
        units: e.g. "m", "rad", "fraction (0 open, 1 closed)".
        delta: whether the group commands a change per step (a pose delta, a velocity) rather than a
            target: the safety filter holds it at zero and bounds its change per step. None: inferred
            from the name ("delta" in the group's or its space's name), as for the Panda's groups.
    """

    name: str
    size: int
    low: tuple[float, ...]
    high: tuple[float, ...]
    units: str
    delta: bool | None = None

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"action group '{self.name}': size must be positive, got {self.size}")
        if len(self.low) != self.size or len(self.high) != self.size:
            raise ValueError(
                f"action group '{self.name}': low/high need {self.size} values, got {len(self.low)}/{len(self.high)}"
            )
        if any(lo > hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError(f"action group '{self.name}': low must be <= high, got {self.low} > {self.high}")


@dataclass(frozen=True)
class ActionSpace:
    """One action mode of a robot (e.g. end-effector delta pose, absolute joint targets)."""

    name: str
    groups: tuple[ActionGroup, ...]
    description: str = ""

    @property
    def dim(self) -> int:
        return sum(g.size for g in self.groups)

    @property
    def low(self) -> np.ndarray:
        return np.concatenate([np.asarray(g.low, dtype=np.float32) for g in self.groups])

    @property
    def high(self) -> np.ndarray:
        return np.concatenate([np.asarray(g.high, dtype=np.float32) for g in self.groups])

    def slice(self, group: str) -> slice:
        """Returns where `group` lies in the flat action vector."""
        start = 0
        for g in self.groups:
            if g.name == group:
                return slice(start, start + g.size)
            start += g.size
        raise KeyError(
            f"action space '{self.name}' has no group '{group}'; groups: {[g.name for g in self.groups]}"
        )


@dataclass(frozen=True)
class StateField:
    """A named slice of the flat state vector."""

    name: str
    size: int
    units: str


@dataclass(frozen=True)
class Effector:
    """An end effector: the state field that holds its position and the action dimension that
    closes it (e.g. a humanoid's left palm and the first of its `hands` closures).

    Attributes:
        state_field: the position field (3 floats), e.g. "left_hand_pos".
        action_group: the group of the default action space that opens and closes it.
        index: which dimension of that group.
    """

    state_field: str
    action_group: str
    index: int = 0


@dataclass(frozen=True)
class StateGuard:
    """A check of the measured state under which the safety filter stops motion (fall/balance checks).

    The guard reads one value from the state: of the field's elements in `indices` (all of them when
    empty), the element itself when there is one, else their Euclidean norm. It trips when that value
    is below `low` or above `high`.

    Attributes:
        name: names the guard (unique within the embodiment; `SafetyConfig.guard_thresholds` keys).
        field: the state field read (`Embodiment.state_fields`).
        reason: the intervention reason reported and counted when it trips ("" = `name`); guards may
            share one, e.g. two views of a fall.
        indices: elements of the field read (see above).
        low, high: the trip thresholds, in the field's units (None: no bound on that side).
        groups: the action groups held while it trips (empty: the whole command).
        latch: a trip latches the filter's e-stop (until an operator releases it), for states a hold
            cannot recover from (a fall).
        why: where the thresholds come from (for readers and the server's limits announcement).
    """

    name: str
    field: str
    reason: str = ""
    indices: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None
    groups: tuple[str, ...] = ()
    latch: bool = False
    why: str = ""

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError(f"state guard '{self.name}': needs a low or a high threshold, got neither")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"state guard '{self.name}': low {self.low} > high {self.high}")

    @property
    def reported(self) -> str:
        """The reason the filter reports for this guard."""
        return self.reason or self.name

    def value(self, field_values: np.ndarray) -> float:
        """The guarded value of the field's elements (float [F]), as the class doc says."""
        v = np.asarray(field_values, dtype=np.float64).reshape(-1)
        sel = v[list(self.indices)] if self.indices else v
        return float(sel[0]) if sel.size == 1 else float(np.linalg.norm(sel))

    def trips(self, field_values: np.ndarray) -> bool:
        """Whether the guard trips on the field's elements (float [F])."""
        x = self.value(field_values)
        return (self.low is not None and x < self.low) or (self.high is not None and x > self.high)


# Clips a robot's own command interface may apply (`Embodiment.driver_clips`).
DRIVER_CLIPS = ("action_bounds", "workspace")


@dataclass(frozen=True)
class Embodiment:
    """A robot as policies, datasets and the safety filter see it.

    Attributes:
        name: e.g. "franka_panda".
        action_spaces: the action modes the robot accepts; the first is the default.
        state_fields: layout of the flat state vector, in order.
        cameras: camera names, in the order models see them.
        image_size: (height, width) of every camera image.
        control_hz: control rate in Hz (one action per step).
        joint_low, joint_high: arm joint position limits (rad), for the safety filter.
        max_joint_velocity: rad/s per joint.
        workspace_low, workspace_high: end-effector position box (m) in the robot base frame.
        gripper_range: (open, closed) command values.
        driver_clips: the safety filter's clips the robot's own command interface applies too
            (`DRIVER_CLIPS`): "action_bounds" (commands clipped to the action space's bounds),
            "workspace" (end-effector targets clipped to the workspace box). The filter still applies
            them; it counts an intervention as physical only when its command differs from what the
            driver would have made of the raw one (`SafetyFilter.physical_stats`). Empty: every clip
            counts as physical.
        state_guards: the robot's checks of its measured state (`StateGuard`), e.g. a humanoid's
            balance margin and fall; empty for a fixed-base arm.
        effectors: the end effectors (`Effector`) when there are several (a humanoid's two hands);
            empty means one, the "ee_pos" field and the "gripper" group, when the robot has them.
    """

    name: str
    action_spaces: tuple[ActionSpace, ...]
    state_fields: tuple[StateField, ...]
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    control_hz: float
    joint_low: tuple[float, ...]
    joint_high: tuple[float, ...]
    max_joint_velocity: tuple[float, ...]
    workspace_low: tuple[float, float, float]
    workspace_high: tuple[float, float, float]
    gripper_range: tuple[float, float] = (0.0, 1.0)
    driver_clips: tuple[str, ...] = ()
    state_guards: tuple[StateGuard, ...] = ()
    effectors: tuple[Effector, ...] = ()

    def __post_init__(self) -> None:
        if not self.action_spaces:
            raise ValueError(f"embodiment '{self.name}' declares no action space")
        self._check_guards()
        self._check_effectors()
        unknown = [c for c in self.driver_clips if c not in DRIVER_CLIPS]
        if unknown:
            raise ValueError(
                f"embodiment '{self.name}': unknown driver_clips {unknown}; known: {DRIVER_CLIPS}"
            )
        n = len(self.joint_low)
        if len(self.joint_high) != n or len(self.max_joint_velocity) != n:
            raise ValueError(f"embodiment '{self.name}': joint limits and velocities must have one length")
        if self.control_hz <= 0:
            raise ValueError(f"embodiment '{self.name}': control_hz must be positive, got {self.control_hz}")

    def _check_guards(self) -> None:
        names = [g.name for g in self.state_guards]
        if len(set(names)) != len(names):
            raise ValueError(f"embodiment '{self.name}': state guard names must be unique, got {names}")
        sizes = {f.name: f.size for f in self.state_fields}
        for g in self.state_guards:
            if g.field not in sizes:
                raise ValueError(
                    f"embodiment '{self.name}': state guard '{g.name}' reads field '{g.field}', which the "
                    f"state does not have; fields: {list(sizes)}"
                )
            bad = [i for i in g.indices if not 0 <= i < sizes[g.field]]
            if bad:
                raise ValueError(
                    f"embodiment '{self.name}': state guard '{g.name}' indices {bad} are outside field "
                    f"'{g.field}' of size {sizes[g.field]}"
                )

    def _check_effectors(self) -> None:
        sizes = {f.name: f.size for f in self.state_fields}
        groups = {g.name: g.size for g in self.action_spaces[0].groups}
        for e in self.effectors:
            if sizes.get(e.state_field) != 3:
                raise ValueError(
                    f"embodiment '{self.name}': effector field '{e.state_field}' must be a 3-float state "
                    f"field; fields: {sizes}"
                )
            if not 0 <= e.index < groups.get(e.action_group, 0):
                raise ValueError(
                    f"embodiment '{self.name}': effector action '{e.action_group}'[{e.index}] is not in "
                    f"the default action space's groups {groups}"
                )

    def effector_layout(self) -> list[tuple[slice, int]]:
        """(position slice of the state, closure dimension of the default action) per end effector:
        the declared `effectors`, else ("ee_pos", "gripper"[0]) when both exist, else none."""
        space = self.action_spaces[0]
        if self.effectors:
            return [
                (self.state_slice(e.state_field), space.slice(e.action_group).start + e.index)
                for e in self.effectors
            ]
        if any(f.name == "ee_pos" for f in self.state_fields) and any(
            g.name == "gripper" for g in space.groups
        ):
            return [(self.state_slice("ee_pos"), space.slice("gripper").start)]
        return []

    @property
    def state_dim(self) -> int:
        return sum(f.size for f in self.state_fields)

    def action_space(self, name: str | None = None) -> ActionSpace:
        """Returns the named action space (the default one when `name` is None)."""
        if name is None:
            return self.action_spaces[0]
        for space in self.action_spaces:
            if space.name == name:
                return space
        raise KeyError(
            f"embodiment '{self.name}' has no action space '{name}'; "
            f"available: {[s.name for s in self.action_spaces]}"
        )

    def state_slice(self, name: str) -> slice:
        """Returns where field `name` lies in the flat state vector."""
        start = 0
        for f in self.state_fields:
            if f.name == name:
                return slice(start, start + f.size)
            start += f.size
        raise KeyError(
            f"embodiment '{self.name}' has no state field '{name}'; fields: {[f.name for f in self.state_fields]}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Embodiment:
        try:
            spaces = tuple(
                ActionSpace(
                    name=s["name"],
                    groups=tuple(
                        ActionGroup(
                            g["name"],
                            int(g["size"]),
                            tuple(g["low"]),
                            tuple(g["high"]),
                            g["units"],
                            delta=None if g.get("delta") is None else bool(g["delta"]),
                        )
                        for g in s["groups"]
                    ),
                    description=s.get("description", ""),
                )
                for s in d["action_spaces"]
            )
            fields = tuple(StateField(f["name"], int(f["size"]), f["units"]) for f in d["state_fields"])
            return cls(
                name=d["name"],
                action_spaces=spaces,
                state_fields=fields,
                cameras=tuple(d["cameras"]),
                image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
                control_hz=float(d["control_hz"]),
                joint_low=tuple(d["joint_low"]),
                joint_high=tuple(d["joint_high"]),
                max_joint_velocity=tuple(d["max_joint_velocity"]),
                workspace_low=(
                    float(d["workspace_low"][0]),
                    float(d["workspace_low"][1]),
                    float(d["workspace_low"][2]),
                ),
                workspace_high=(
                    float(d["workspace_high"][0]),
                    float(d["workspace_high"][1]),
                    float(d["workspace_high"][2]),
                ),
                gripper_range=(float(d["gripper_range"][0]), float(d["gripper_range"][1])),
                driver_clips=tuple(str(c) for c in d.get("driver_clips", ())),
                state_guards=tuple(
                    StateGuard(
                        name=g["name"],
                        field=g["field"],
                        reason=g.get("reason", ""),
                        indices=tuple(int(i) for i in g.get("indices", ())),
                        low=None if g.get("low") is None else float(g["low"]),
                        high=None if g.get("high") is None else float(g["high"]),
                        groups=tuple(g.get("groups", ())),
                        latch=bool(g.get("latch", False)),
                        why=g.get("why", ""),
                    )
                    for g in d.get("state_guards", ())
                ),
                effectors=tuple(
                    Effector(str(e["state_field"]), str(e["action_group"]), int(e.get("index", 0)))
                    for e in d.get("effectors", ())
                ),
            )
        except KeyError as e:
            raise ValueError(f"embodiment description is missing key {e}") from e

    def compatible_with(self, other: Embodiment) -> list[str]:
        """Returns the reasons `other` cannot run a policy made for this embodiment (empty if it can)."""
        problems = []
        if self.action_spaces[0].dim != other.action_spaces[0].dim:
            problems.append(f"action dim {self.action_spaces[0].dim} != {other.action_spaces[0].dim}")
        if self.state_dim != other.state_dim:
            problems.append(f"state dim {self.state_dim} != {other.state_dim}")
        missing = [c for c in self.cameras if c not in other.cameras]
        if missing:
            problems.append(f"cameras {missing} missing (has {list(other.cameras)})")
        return problems
