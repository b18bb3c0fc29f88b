"""Step-success detection for the tabletop skills from the robot's own state, never the simulator's flag.

`StateStepMonitor` reads only what a real Panda reports, the observation's state vector: the finger
opening (`gripper`, 0 closed to 0.08 m open) and the end-effector position (`ee_pos`). Each skill has a
signature in that signal:

* holding = the fingers stopped part-closed (an object between them) for 2 frames; closing fully from
  holding means the object slipped out (failure);
* pick_up: holding, and the hand at least `LIFT` above where it closed;
* put_in / stack / move_next_to: holding, then opened low (TCP below `RELEASE_Z`); opening high is a
  drop (failure); opening away from where the object belongs is a misplacement (failure): over the
  container's inner area (`PLACE_MARGIN`), within `STACK_TOL` of the base, or beside the
  reference (`NEXT_TO_*`), read from the scene description the step started with; done once the hand
  rises after the release;
* push: the hand low (below `PUSH_Z`) moved at least `PUSH_TRAVEL` along the asked direction. It
  does not wait for the hand to rise: demonstrations end when the object has moved, so a learned
  policy never shows the rise, and waiting for it timed a finished push out as a failure (measured:
  39 of 50 pushes the simulator counted as done, docs/measured.md "Planner");
* touch: the closed hand came down and stopped (below `TOUCH_Z`, < 3 mm per step for 2 frames);
* any skill: no signature within its step budget (`tasks.MAX_STEPS`) is a failure ("timeout").

What it cannot see: where an object ended up (an object released over the bowl that rolls out still
looks like a placement). Without a scene description it skips the misplacement check. How often its
verdicts agree with the simulator's flag: docs/measured.md, "Planner".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks
from vla.envs.tabletop.embodiment import make_embodiment
from vla.planning.plan import SceneDescription, Step

HOLD_MIN, HOLD_MAX = 0.012, 0.07  # m of finger opening that means "something between the fingers"
OPEN = 0.07
CLOSED = 0.008
LIFT = 0.06
RELEASE_Z = 0.10
PUSH_Z = 0.04
# The hand starts a push ~3.5 cm behind the object's edge (the expert's approach), so it has travelled
# that much more than the object when the object has moved PUSH_DISTANCE.
PUSH_TRAVEL = tasks.PUSH_DISTANCE + 0.035
TOUCH_Z = 0.10
PLACE_SKILLS = ("put_in", "stack", "move_next_to")
# Release checks (m, hand position against the scene description; the held object sits up to ~2.5 cm
# off the hand's centre, measured in docs/measured.md "grasp offset").
# The hand over the container's inner area itself: with a 2 cm margin, releases 6-7 cm from the tray's
# centre along its 5 cm half-width passed, and the object lay outside (traced on spatial seeds
# 100000-100001 with a learned policy).
PLACE_MARGIN = 0.0
STACK_TOL = 0.035
# Next to: the hand's centre from the reference's, beyond the two footprints' radii; below the minimum
# the object went onto the reference, above the maximum it is not next to it.
NEXT_TO_MIN, NEXT_TO_MAX = -0.015, tasks.NEXT_TO_GAP + 0.03


class StateStepMonitor:
    """Judges one step at a time from observations (see module doc).

    Attributes:
        reason: why the last step ended ("" while running).
    """

    def __init__(self) -> None:
        emb = make_embodiment((8, 8))
        self._g = emb.state_slice("gripper")
        self._ee = emb.state_slice("ee_pos")
        self.reason = ""
        self._step: Step | None = None
        self._t = 0

    def budget(self, step: Step) -> int:
        """Control steps a skill gets before the monitor calls it a failure."""
        return tasks.MAX_STEPS[step.skill]

    def start(self, step: Step, obs: dict[str, Any], scene: SceneDescription | None = None) -> None:
        """Starts judging `step` from observation `obs` (the first of the step); `scene` (the planner's
        description of the scene now) says where a placed object belongs."""
        self._step = step
        self._scene = scene
        self._t = 0
        self.reason = ""
        self._hold = 0
        self._held = False
        self._grasp: np.ndarray | None = None
        self._released_z: float | None = None
        self._low: np.ndarray | None = None
        self._prev = self._read(obs)[1]
        self._still = 0
        self._descended = False
        self._top = float(self._prev[2])

    def _read(self, obs: dict[str, Any]) -> tuple[float, np.ndarray]:
        s = np.asarray(obs["state"], dtype=np.float64)
        return float(s[self._g][0]), s[self._ee]

    def _fail(self, reason: str) -> str:
        self.reason = f"failed: {reason}"
        return "failure"

    def _ok(self, reason: str) -> str:
        self.reason = reason
        return "success"

    def update(self, obs: dict[str, Any]) -> str:
        """Reads the next observation; returns "running", "success" or "failure" (why: `reason`)."""
        if self._step is None:
            raise RuntimeError("StateStepMonitor.update called before start()")
        step, self._t = self._step, self._t + 1
        g, ee = self._read(obs)
        moved = float(np.linalg.norm(ee - self._prev))
        self._prev = ee
        self._top = max(self._top, float(ee[2]))
        self._hold = self._hold + 1 if HOLD_MIN < g < HOLD_MAX else 0
        if self._hold >= 2 and not self._held:
            self._held, self._grasp = True, ee.copy()
        verdict = self._judge(step, g, ee, moved)
        if verdict == "running" and self._t >= self.budget(step):
            return self._fail(f"timeout after {self._t} control steps")
        return verdict

    def _judge(self, step: Step, g: float, ee: np.ndarray, moved: float) -> str:
        skill = step.skill
        if skill in ("pick_up", *PLACE_SKILLS) and self._held:
            assert self._grasp is not None
            if g < CLOSED and self._released_z is None:
                return self._fail("the object slipped out of the gripper")
            if skill == "pick_up":
                return self._ok("lifted") if ee[2] > self._grasp[2] + LIFT else "running"
            if g > OPEN and self._released_z is None:
                if ee[2] > RELEASE_Z:
                    return self._fail(f"the object was dropped from {ee[2]:.2f} m")
                misplaced = self._misplaced(step, ee)
                if misplaced:
                    return self._fail(misplaced)
                self._released_z = float(ee[2])
            if self._released_z is not None and ee[2] > self._released_z + 0.02:
                return self._ok("placed and released")
            return "running"
        if skill == "push":
            direction = np.asarray(tasks.DIRECTION_VECTORS[step.slots["direction"]])
            if ee[2] < PUSH_Z:
                if self._low is None:
                    self._low = ee[:2].copy()
                if float((ee[:2] - self._low) @ direction) >= PUSH_TRAVEL:
                    return self._ok("pushed")
            return "running"
        if skill == "touch":
            self._descended = self._descended or ee[2] < self._top - 0.03
            self._still = self._still + 1 if moved < 0.003 else 0
            if self._descended and ee[2] < TOUCH_Z and g < CLOSED and self._still >= 2:
                return self._ok("came down and stopped")
        return "running"

    def _misplaced(self, step: Step, ee: np.ndarray) -> str:
        """Why a release at hand position `ee` is not where the step puts the object ("" if it is)."""
        where = self._scene.positions if self._scene is not None else {}
        slots = step.slots
        if step.skill == "put_in" and slots["container"] in where:
            c = obj.CONTAINERS[slots["container"]]
            off = np.abs(ee[:2] - np.asarray(where[slots["container"]]))
            if np.any(off > np.asarray(c.inner_half) + PLACE_MARGIN):
                return f"released {100 * float(np.linalg.norm(off)):.1f} cm from the {slots['container']}'s centre"
        if step.skill == "stack" and slots["base"] in where:
            d = float(np.linalg.norm(ee[:2] - np.asarray(where[slots["base"]])))
            if d > STACK_TOL:
                return f"released {100 * d:.1f} cm beside the {slots['base']}"
        if step.skill == "move_next_to" and slots["ref"] in where:
            d = float(np.linalg.norm(ee[:2] - np.asarray(where[slots["ref"]])))
            if not NEXT_TO_MIN + _footprint(slots) <= d <= NEXT_TO_MAX + _footprint(slots):
                return f"released {100 * d:.1f} cm from the {slots['ref']}, not next to it"
        return ""


def _footprint(slots: dict[str, str]) -> float:
    """The two objects' radii (m): centre distance when their footprints touch."""
    shape = {name: name.split()[-1] for name in (slots["obj"], slots["ref"])}
    return sum(obj.SHAPE_SPECS[s].radius for s in shape.values() if s in obj.SHAPE_SPECS)
