"""Scripted experts for every tabletop family: closed-loop waypoints + IK, reading privileged state.

An expert is a small state machine of phases ("move above the object", "descend", "close", ...). Each
phase names a TCP waypoint, recomputed every step from the live object poses (so a nudged object is
followed), a gripper command, and a tolerance; the action is the clipped step toward the waypoint in
`ee_delta` form (converted to joint targets through the env's IK in `joint_pos` mode). Small per-episode
offsets and per-step action noise, drawn from the episode seed, make demonstrations diverse yet
reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks, ungroundable
from vla.envs.tabletop.embodiment import MAX_DPOS, MAX_DROT
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.ik import rotation_error
from vla.envs.tabletop.spots import free_spot_next_to

CARRY_Z = 0.15  # m, TCP height while carrying: clears the bowl's 4 cm wall with any held object
HOVER = 0.09  # m, above the object's centre before descending
DOWN = np.diag([1.0, -1.0, -1.0])  # TCP orientation pointing down with yaw 0
MAX_RETRIES = 2
# Free-space speed of the scripted moves (m per 10 Hz step), half the action limit MAX_DPOS. Measured:
# at the full 5 cm/step, touch/pick episodes last 6-11 steps and a default-preset policy trained on 40
# demos per family succeeded in 7% of episodes (it saw ~300 frames per family and every small error was
# a large miss); slower, finer demonstrations give more frames per episode and room for correction.
EXPERT_STEP = 0.025
PUSH_Z = 0.024  # m, TCP height while pushing
# How close (m) the carried object must be above its destination before the expert lowers it. With
# 1 cm, demonstrations lowered while still converging sideways, and a policy re-planning every step
# imitated that loosely: it lowered from 2-3 cm off and released there, and a stacked object fell off
# its base (traced: 1-2 cm TCP error at release in the failed stack episodes of the `grounded` preset).
# Converging first, then lowering straight down, makes "over the spot" the cue to descend. Measured
# (docs/measured.md, "Re-planning every step"): the same success within noise (82.7% vs 84.0% held,
# 85.7% vs 83.0% with the averaged estimate); kept because the demonstrated descent is the cleaner one.
# The pick's hover above the object uses the same tolerance, for the same reason: with 2 cm, demonstrations
# descended diagonally from up to 2 cm off, and a traced stack rollout dropped 6 cm while 3 cm off to the
# side and closed there (the block then sat on a pad's edge and slipped; docs/measured.md).
OVER_TOL = 0.004
# Relabelling a push: an object more than this (m) to the side of the pushing hand's line is no longer
# being pushed (the fingers are 2 cm wide), so the script goes back behind it.
PUSH_LINE_TOL = 0.025
# Relabelling a grasp: the hand this far (m) from the grasp point before the fingers hold the object
# has left it; the script starts over from above the object.
GRASP_LEFT = 0.02


@dataclass
class Phase:
    """One stage of a script.

    Attributes:
        name: for debugging and tests.
        waypoint: returns the TCP target (m, [3]) from the env's live state.
        gripper: 0 open, 1 closed.
        tol: distance (m) at which the phase is done; None means "after `steps` steps".
        steps: the phase's step budget (it ends after this many steps even if not converged).
        max_step: largest TCP move per step (m), lower for pushing and placing.
        holding: the object should be in the gripper; if it is not (slipped or missed), the script
            starts over from the first phase, at most `MAX_RETRIES` times per episode.
    """

    name: str
    waypoint: Callable[[], np.ndarray]
    gripper: float
    tol: float | None
    steps: int
    max_step: float = EXPERT_STEP
    holding: bool = False


def _rz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class TabletopExpert:
    """Scripted demonstrator for a `TabletopEnv` (any family, any split, either action mode)."""

    def __init__(
        self, env: TabletopEnv, *, noise: float = 0.002, dart_noise: float = 0.006, relabel: bool = False
    ) -> None:
        if not isinstance(env, TabletopEnv):
            raise TypeError(f"TabletopExpert needs a TabletopEnv, got {type(env).__name__}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        if dart_noise < 0:
            raise ValueError(f"dart_noise must be >= 0, got {dart_noise}")
        self.env = env
        self.noise = noise
        # DART (Laskey et al., 2017): the executed move is perturbed by `dart_noise` (m, std) but the
        # demonstration records the expert's clean intent (`label`), so a dataset shows how to recover
        # from the small drifts a learned policy makes, instead of only the expert's own perfect path.
        self.dart_noise = dart_noise
        # Labelling states another actor visits (DAgger, `relabel`): the script follows the scene instead
        # of its own schedule. A phase that waits for a tolerance never times out (the policy, not the
        # script, decides how long the approach takes); "close" lasts until the fingers hold the
        # object (asking to open again one step after asking to close taught hesitation at the grasp:
        # docs/measured.md, "DAgger"); a grasp the policy made skips to the carry; a
        # lost object or a push that slid off its line starts over, with no retry limit; the push starts
        # behind where the object is now. Off by default: the demonstrations stay as they were.
        self.relabel = relabel
        self.label: np.ndarray | None = None
        self._episode = -1
        self._phases: list[Phase] = []
        self._phase = 0
        self._phase_steps = 0
        self._yaw = 0.0
        self._rng = np.random.default_rng(0)
        self._retries = 0
        self._spot: np.ndarray | None = None
        self._spot_episode = -1

    def reset(self) -> None:
        """Plans for the env's current episode (call after `env.reset`)."""
        env = self.env
        if env.task is None:
            raise RuntimeError("TabletopExpert.reset called before env.reset()")
        self._episode = env.episode_index
        # Its own stream, derived from the episode seed: the same seed gives the same demonstration.
        self._rng = np.random.default_rng([int(env.episode_meta["seed"]), 7])
        self._phases = self._plan(env.task)
        self._phase = 0
        self._phase_steps = 0
        self._retries = 0

    @property
    def phase(self) -> str:
        """Name of the current phase ("done" when the script has finished)."""
        return self._phases[self._phase].name if self._phase < len(self._phases) else "done"

    def act(self, obs: dict) -> np.ndarray:
        """Returns the next action (float32, in the env's action mode) for observation `obs`."""
        if self._episode != self.env.episode_index:
            self.reset()
        env = self.env
        pos, mat = env.tcp_pose()
        if self._lost_object():
            self._phase, self._phase_steps = 0, 0
            self._retries += 1
        if self.relabel:
            self._follow_scene(pos)
        while self._phase < len(self._phases):
            ph = self._phases[self._phase]
            target = ph.waypoint()
            done_by_tol = ph.tol is not None and np.linalg.norm(target - pos) < ph.tol
            timed_out = self._phase_steps >= ph.steps and not (self.relabel and ph.tol is not None)
            if done_by_tol or timed_out:
                self._phase += 1
                self._phase_steps = 0
                continue
            break
        holding = False
        if self._phase >= len(self._phases):
            target, gripper, max_step = pos, self._phases[-1].gripper, EXPERT_STEP
        else:
            ph = self._phases[self._phase]
            target, gripper, max_step, holding = ph.waypoint(), ph.gripper, ph.max_step, ph.holding
            self._phase_steps += 1
        delta = target - pos
        norm = float(np.linalg.norm(delta))
        if norm > max_step:
            delta *= max_step / norm
        delta += self._rng.normal(0.0, self.noise, 3) * (norm > 0.01)
        rot = rotation_error(_rz(self._yaw) @ DOWN, mat)
        clean = np.concatenate(
            [np.clip(delta, -MAX_DPOS, MAX_DPOS), np.clip(rot, -MAX_DROT, MAX_DROT), [gripper]]
        )
        action = clean.copy()
        # Perturb only free-space moves without an object in hand: near a waypoint (grasp, press)
        # precision matters more, and a jolt while carrying can shake the object loose.
        action[:3] += self._rng.normal(0.0, self.dart_noise, 3) * (norm > 0.03 and not holding)
        action[:3] = np.clip(action[:3], -MAX_DPOS, MAX_DPOS)
        self.label = (env.ee_delta_to_joint_pos(clean) if env.action_mode == "joint_pos" else clean).astype(
            np.float32
        )
        if env.action_mode == "joint_pos":
            return env.ee_delta_to_joint_pos(action)
        return action.astype(np.float32)

    def _lost_object(self) -> bool:
        if self._phase >= len(self._phases) or not self._phases[self._phase].holding:
            return False
        task = self.env.task
        assert task is not None
        retry = self.relabel or self._retries < MAX_RETRIES
        return retry and task.target not in self.env.sim_state().gripper_contacts

    def _follow_scene(self, pos: np.ndarray) -> None:
        """Relabelling: moves the script to where the scene is (see `relabel` in `__init__`)."""
        task = self.env.task
        assert task is not None
        names = [ph.name for ph in self._phases]
        if "lift" in names and self._phase < names.index("lift"):
            held = task.target in self.env.sim_state().gripper_contacts
            closed = float(self.env.robot_state()[self.env.embodiment.state_slice("gripper")][0]) < 0.07
            if held and closed:  # the policy grasped it: carry on from the lift
                self._phase, self._phase_steps = names.index("lift"), 0
            elif names[self._phase] == "close":
                # Keep asking to close until the fingers hold it (the policy may close a step or two
                # later than the script's single step), unless the hand left the grasp point.
                away = float(np.linalg.norm(self._phases[self._phase].waypoint() - pos)) > GRASP_LEFT
                self._phase, self._phase_steps = (0, 0) if away else (self._phase, 0)
        if task.family == "push" and self._phase < len(names) and names[self._phase] == "push":
            d = np.array([*tasks.DIRECTION_VECTORS[task.direction or "left"], 0.0])
            rel = self.env.object_position(task.target) - pos
            side = float(np.linalg.norm(rel[:2] - (rel[:2] @ d[:2]) * d[:2]))
            if side > PUSH_LINE_TOL or float(rel[:2] @ d[:2]) < 0.0:  # slid off the line, or behind the hand
                self._phase, self._phase_steps = 0, 0

    # ------------------------------------------------------------------ scripts
    def _plan(self, spec: tasks.EpisodeSpec) -> list[Phase]:
        env = self.env
        if spec.ungroundable:  # nothing to do: hold where the hand is, gripper open, for the window
            home = env.tcp_pose()[0].copy()
            return [Phase("hold", lambda: home, 0.0, None, ungroundable.HOLD_STEPS)]
        t = spec.target
        half = obj.SHAPE_SPECS[t[1]].half_height
        jitter = self._rng.normal(0.0, 0.002, 3)
        jitter[2] = 0.0
        self._yaw = self._grasp_yaw(t) if t[1] == "block" else 0.0

        def at_obj(dz: float) -> Callable[[], np.ndarray]:
            return lambda: env.object_position(t) + jitter + np.array([0.0, 0.0, dz])

        grasp_dz = max(0.018 - half, 0.0)  # TCP at the centre, but never low enough to hit the table
        pick = [
            Phase("above", lambda: self._above(t), 0.0, OVER_TOL, 25),
            Phase("descend", at_obj(grasp_dz), 0.0, 0.008, 15, 0.04),
            # One step: the fingers close within it, and the next frame already lifts. With 4 steps the
            # 3 frames of waiting looked exactly like the first lift frame to a policy reading the finger
            # opening and the hand-object offset, and it learned to wait holding the object (run A in
            # docs/measured.md: 82.5%; run B with this: 92.2%).
            Phase("close", at_obj(grasp_dz), 1.0, None, 1),
        ]
        if spec.family == "pick_up":
            return [*pick, Phase("lift", lambda: self._lifted(0.17), 1.0, 0.01, 30, holding=True)]
        if spec.family == "touch":
            self._yaw = 0.0
            # The closed finger tips sit 12 mm below the TCP: aim them 6 mm into the object's top.
            return [
                Phase("above", lambda: self._above(t), 1.0, 0.02, 25),
                Phase("press", at_obj(half + 0.006), 1.0, 0.004, 20, 0.02),
            ]
        if spec.family == "push":
            assert spec.direction is not None
            d = np.array([*tasks.DIRECTION_VECTORS[spec.direction], 0.0])
            start = env.object_position(t)
            self._yaw = 0.0
            reach = obj.SHAPE_SPECS[t[1]].radius + 0.035

            def behind() -> np.ndarray:
                # Finger tips 12 mm above the table: pads dragged along the table (friction 1.5)
                # twisted the wrist against its 12 Nm limit and jammed the push.
                here = env.object_position(t) if self.relabel else start
                return np.array([*(here - d * reach)[:2], PUSH_Z])

            goal = start + d * (tasks.PUSH_DISTANCE + 0.03)
            goal[2] = PUSH_Z
            return [
                Phase("above", lambda: behind() + np.array([0.0, 0.0, 0.08]), 1.0, 0.015, 25),
                Phase("descend", behind, 1.0, 0.006, 15, 0.04),
                Phase("push", lambda: goal, 1.0, 0.006, 30, 0.025),
                Phase("retreat", lambda: goal + np.array([0.0, 0.0, 0.1]), 0.0, 0.02, 10),
            ]
        # put_in, stack, move_next_to: pick, carry over the destination, lower, release, retreat.
        dest, release_z = self._destination(spec)
        carry = [
            Phase("lift", lambda: self._lifted(CARRY_Z), 1.0, 0.02, 15, holding=True),
            Phase("carry", lambda: self._holding_target(t, dest(), CARRY_Z), 1.0, OVER_TOL, 40, holding=True),
            Phase("lower", lambda: self._holding_target(t, dest(), release_z), 1.0, 0.005, 20, 0.03),
            Phase("release", lambda: self._holding_target(t, dest(), release_z), 0.0, None, 4),
            Phase("retreat", lambda: self._lifted(CARRY_Z), 0.0, 0.02, 15),
        ]
        return pick + carry

    def _above(self, key: tuple[str, str]) -> np.ndarray:
        p = self.env.object_position(key)
        return np.array([p[0], p[1], max(p[2] + HOVER, 0.1)])

    def _lifted(self, z: float) -> np.ndarray:
        pos = self.env.tcp_pose()[0]
        return np.array([pos[0], pos[1], z])

    def _holding_target(self, key: tuple[str, str], dest_xy: np.ndarray, obj_z: float) -> np.ndarray:
        """TCP target that brings the held object's centre to (dest_xy, obj_z), using its grasp offset."""
        offset = self.env.object_position(key) - self.env.tcp_pose()[0]
        return np.array([dest_xy[0] - offset[0], dest_xy[1] - offset[1], obj_z - offset[2]])

    def _grasp_yaw(self, key: tuple[str, str]) -> float:
        """TCP yaw in [-π/4, π/4] that aligns the fingers' closing axis with a block face."""
        yaw = self.env.object_yaw(key)
        return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)

    def _destination(self, spec: tasks.EpisodeSpec) -> tuple[Callable[[], np.ndarray], float]:
        """Returns (live xy of where the object goes, height of its centre at release)."""
        env = self.env
        half = obj.SHAPE_SPECS[spec.target[1]].half_height
        if spec.family == "put_in":
            assert spec.container is not None
            c = obj.CONTAINERS[spec.container]
            xy = np.asarray(spec.containers[spec.container]) + self._rng.normal(0.0, 0.004, 2)
            return (lambda: xy), c.top + half + 0.02
        if spec.family == "stack":
            assert spec.other is not None
            base = spec.other
            top = 2 * obj.SHAPE_SPECS[base[1]].half_height
            return (lambda: env.object_position(base)[:2]), top + half + 0.006
        assert spec.other is not None
        spot = self._free_spot_next_to(spec)  # at planning time: the scene the labels were read from
        return (lambda: spot), half + 0.006

    def _free_spot_next_to(self, spec: tasks.EpisodeSpec) -> np.ndarray:
        """The episode's spot beside the reference (`vla.envs.tabletop.spots`), chosen once from the
        scene as it was at the first plan (the episode's start, where the grounding labels are read),
        and kept through retries, so the carry does not chase a spot that moves."""
        if self._spot is None or self._spot_episode != self.env.episode_index:
            self._spot = free_spot_next_to(self.env, spec)
            self._spot_episode = self.env.episode_index
        return self._spot
