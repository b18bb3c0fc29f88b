"""Scripted whole-body experts for the humanoid tabletop families, reading privileged state.

As the Panda experts (`vla.envs.tabletop.expert`): a small state machine of phases, each a palm
waypoint recomputed every step from the live object pose (heading frame), a hand closure and a
tolerance; the action steers the acting palm(s) toward the waypoint through the arm groups of the
"whole_body" action. The waist, base and balance groups stay 0: the controller keeps the CoM over the
feet by itself, and every target of the families is within the arms' reach standing upright
(docs/robots.md, "Reach"). Small per-episode offsets and per-step noise, drawn from the episode seed,
vary the demonstrations reproducibly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla.envs.tabletop.humanoid import objects as obj
from vla.envs.tabletop.humanoid import tasks
from vla.envs.tabletop.humanoid.env import HumanoidTabletopEnv
from vla.robots.g1.embodiment import MAX_DPOS

# Free-space palm speed, m per 0.1 s step: 3/4 of the action bound. At the bound (4 cm) the hand
# reached the object while the arm still swung and the fingers shoved the object aside.
EXPERT_STEP = 0.03
HOVER = 0.10  # m, the palm above the object's centre before descending
LIFT = 0.12  # m, the palm's lift above the grasp height (the success threshold is 6 cm)
MAX_RETRIES = 2
# Lowest palm (grasp centre) height, m: 4 cm above the table top. With the palm 3 cm up (the centre
# of the 6 cm ball the pool had first) the knuckles pressed on the table and pushed the robot over.
MIN_PALM_Z = tasks.TABLE_TOP + 0.04
# `lift_box`: palms start this far (m) outside the box's ends, then squeeze to `BOX_SQUEEZE` inside
# them. The palm site is the grasp centre, ~4 cm in from the palm plate, so the site must go inside
# the box's end for the plate to press on it; the position servos turn the residual error into force.
BOX_OUTSIDE = 0.10
BOX_SQUEEZE = 0.02
# The palms meet the box this far (m) ahead of its centre: the grasp centre sits ahead of the palm
# plate's middle, and palms level with the centre pressed on the box's rear half and squirted it
# forward out of the grip (measured).
BOX_FORWARD = 0.02
# The fingers half closed (0 open .. 1 closed) from the squeeze on: they curl over the box's ends and
# hold it when the palms alone let it slip (20/20 seeds with, 16/20 without, both with the grip stop).
BOX_CLOSURE = 0.5
# The squeeze stops once both palms have touched the box this many steps in a row; squeezing for its
# whole 20-step budget pushed the box 6-9 cm forward and out of the grip in 8 of 20 seeds (measured).
BOX_GRIP_STEPS = 2
# Relabelling (DAgger): the object moved this far (m) from where the script anchored its grasp, with
# nothing holding it (knocked), or the palm is this far from the grasp point while closing: start over.
KNOCKED = 0.02
GRASP_LEFT = 0.03


@dataclass(frozen=True)
class Phase:
    """One stage of a script.

    Attributes:
        name: for debugging and tests.
        targets: returns {hand: palm target float [3], heading frame} for the hands that move.
        closure: hand closure of the acting hand(s), 0 open .. 1 closed.
        tol: largest palm error (m) at which the phase is done; None: after `steps` steps.
        steps: the phase's step budget (it ends after this many steps even if not converged).
        max_step: largest palm move per step, m.
        holding: the object should be in hand; if it is not, the script starts over (at most
            `MAX_RETRIES` times per episode).
        until: the phase is also done once this returns True (checked before each step).
    """

    name: str
    targets: Callable[[], dict[str, np.ndarray]]
    closure: float
    tol: float | None
    steps: int
    max_step: float = EXPERT_STEP
    holding: bool = False
    until: Callable[[], bool] | None = None


class HumanoidExpert:
    """Scripted demonstrator for a `HumanoidTabletopEnv` (any family and split)."""

    def __init__(
        self,
        env: HumanoidTabletopEnv,
        *,
        noise: float = 0.002,
        dart_noise: float = 0.006,
        relabel: bool = False,
    ) -> None:
        if not isinstance(env, HumanoidTabletopEnv):
            raise TypeError(f"HumanoidExpert needs a HumanoidTabletopEnv, got {type(env).__name__}")
        if noise < 0 or dart_noise < 0:
            raise ValueError(f"noise and dart_noise must be >= 0, got {noise}, {dart_noise}")
        self.env = env
        self.noise = noise
        # DART (Laskey et al., 2017), as the Panda expert: the executed palm move is perturbed by
        # `dart_noise` (m, std) while `label` keeps the clean intent, so the demonstrations show how
        # to come back from the drift a learned policy makes. Free-space moves only (> 3 cm from the
        # waypoint, nothing held): near a grasp precision matters, and a jolt can shake a load loose.
        self.dart_noise = dart_noise
        # Labelling states another actor visits (DAgger, `relabel`), as the Panda expert's mode: the
        # script follows the scene instead of its own schedule (`_follow_scene`). A phase that waits for
        # a tolerance never times out; a palm already on the descent column below the hover point goes
        # on down instead of being sent back up; "close" lasts until the hand holds the object; a
        # knocked object, a palm that left the grasp point or a lost load starts over, with no retry
        # limit. Off by default: the demonstrations stay as they were.
        self.relabel = relabel
        self.label: np.ndarray | None = None
        self._anchor: list[np.ndarray] = []  # where the grasp was planned (set by the scripts)
        self._episode = -1
        self._phases: list[Phase] = []
        self._phase = 0
        self._phase_steps = 0
        self._retries = 0
        self._rng = np.random.default_rng(0)
        space = env.robot.space
        self._dim = space.dim
        self._arm = {h: space.slice(f"{h}_arm") for h in ("left", "right")}
        self._hands = space.slice("hands")

    def reset(self) -> None:
        """Plans for the env's current episode (call after `env.reset`)."""
        task = self.env.task
        if task is None:
            raise RuntimeError("HumanoidExpert.reset called before env.reset()")
        self._episode = self.env.episode_index
        self._rng = np.random.default_rng([int(self.env.episode_meta["seed"]), 7])
        self._phases = self._plan(task)
        self._phase = 0
        self._phase_steps = 0
        self._retries = 0

    @property
    def phase(self) -> str:
        """Name of the current phase ("done" when the script has finished)."""
        return self._phases[self._phase].name if self._phase < len(self._phases) else "done"

    def act(self, obs: dict) -> np.ndarray:
        """Returns the next action (float32 [22], the "whole_body" space) for observation `obs`."""
        if self._episode != self.env.episode_index:
            self.reset()
        palms = {h: self.env.palm_position(h) for h in ("left", "right")}
        if self._lost_object():
            self._phase, self._phase_steps = 0, 0
            self._retries += 1
        if self.relabel:
            self._follow_scene(palms)
        while self._phase < len(self._phases):
            ph = self._phases[self._phase]
            err = max(float(np.linalg.norm(t - palms[h])) for h, t in ph.targets().items())
            reached = ph.tol is not None and err < ph.tol
            timed_out = self._phase_steps >= ph.steps and not (self.relabel and ph.tol is not None)
            if self.relabel and ph.name == "close" and not self._held():
                timed_out = False  # keep closing until the fingers hold it
            if reached or timed_out or (ph.until is not None and ph.until()):
                self._phase, self._phase_steps = self._phase + 1, 0
                continue
            break
        ph = self._phases[min(self._phase, len(self._phases) - 1)]
        targets = ph.targets() if self._phase < len(self._phases) else {}
        self._phase_steps += 1
        action = np.zeros(self._dim)
        jolts = np.zeros(self._dim)
        for hand, target in targets.items():
            delta = target - palms[hand]
            norm = float(np.linalg.norm(delta))
            if norm > ph.max_step:
                delta *= ph.max_step / norm
            delta += self._rng.normal(0.0, self.noise, 3) * (norm > 0.01)
            action[self._arm[hand].start : self._arm[hand].start + 3] = np.clip(delta, -MAX_DPOS, MAX_DPOS)
            free = norm > 0.03 and not ph.holding
            jolts[self._arm[hand].start : self._arm[hand].start + 3] = (
                self._rng.normal(0.0, self.dart_noise, 3) * free
            )
        action[self._hands] = self._closure(ph.closure)
        self.label = action.astype(np.float32)
        executed = action + jolts
        for hand in targets:
            arm = slice(self._arm[hand].start, self._arm[hand].start + 3)
            executed[arm] = np.clip(executed[arm], -MAX_DPOS, MAX_DPOS)
        return executed.astype(np.float32)

    # ------------------------------------------------------------------ scripts
    def _closure(self, closure: float) -> np.ndarray:
        task = self.env.task
        assert task is not None
        if task.hand == "both":
            return np.array([closure, closure])
        return np.array([closure, 0.0]) if task.hand == "left" else np.array([0.0, closure])

    def _held(self) -> bool:
        """Whether the acting hand(s) touch the target now."""
        task = self.env.task
        assert task is not None
        contacts = self.env.sim_state().contacts
        hands = ("left", "right") if task.hand == "both" else (task.hand,)
        return all(task.target in contacts[h] for h in hands)

    def _lost_object(self) -> bool:
        if self._phase >= len(self._phases) or not self._phases[self._phase].holding:
            return False
        if self._retries >= MAX_RETRIES and not self.relabel:
            return False
        return not self._held()

    def _follow_scene(self, palms: dict[str, np.ndarray]) -> None:
        """Relabelling: moves the script to where the scene is (see `relabel` in `__init__`)."""
        if self._phase >= len(self._phases):
            return
        task = self.env.task
        assert task is not None
        names = [ph.name for ph in self._phases]
        name = names[self._phase]
        pick = task.family == "pick_up"
        if pick and self._phase < names.index("lift") and self._anchor:
            moved = float(np.linalg.norm((self.env.object_position(task.target) - self._anchor[0])[:2]))
            if moved > KNOCKED and not self._held():  # knocked off the grasp point: go round again
                self._phase, self._phase_steps = 0, 0
                return
        if name == "close" and pick:
            targets = self._phases[self._phase].targets()
            if any(float(np.linalg.norm(t - palms[h])) > GRASP_LEFT for h, t in targets.items()):
                self._phase, self._phase_steps = 0, 0
                return
        if name == "above" and self._phase + 1 < len(self._phases):
            # On the descent column (within the phase's tolerance sideways) and already below the
            # hover point: the other actor went down early; carry on down rather than back up.
            ph = self._phases[self._phase]
            targets = ph.targets()
            side = max(float(np.linalg.norm((t - palms[h])[:2])) for h, t in targets.items())
            below = all(palms[h][2] < t[2] for h, t in targets.items())
            if ph.tol is not None and side < ph.tol and below:
                self._phase, self._phase_steps = self._phase + 1, 0

    def _plan(self, spec: tasks.EpisodeSpec) -> list[Phase]:
        env, t = self.env, spec.target
        jitter = self._rng.normal(0.0, 0.003, 3) * np.array([1.0, 1.0, 0.0])
        if spec.family == "lift_box":
            return self._plan_box(spec)
        hand = spec.hand
        # Where the object stood when the palm last hovered over it (set by the "above" phase, which
        # tracks it live). `pick_up` descends and closes there rather than on the live pose: a ball
        # nudged by the descending wrist rolled on, the palm followed it, nudged it again, and chased
        # it 8 cm inward until the robot had to bend and tipped over (issue 22, seed 1).
        anchor = [env.object_position(t)]
        self._anchor = anchor

        def at(dz: float, *, live: bool = True) -> Callable[[], dict[str, np.ndarray]]:
            def targets() -> dict[str, np.ndarray]:
                obj_now = env.object_position(t)
                if obj_now[2] < tasks.TABLE_TOP:
                    # Off the table (it rolled over the edge): no target to chase. Reaching after it
                    # drove the palm under the table's edge and levered the robot over backward.
                    return {hand: env.palm_position(hand)}
                if live:
                    anchor[0] = obj_now
                p = anchor[0] + jitter
                # Never lower than `MIN_PALM_Z`: the knuckles would press on the table top.
                return {hand: np.array([p[0], p[1], max(p[2], MIN_PALM_Z) + dz])}

            return targets

        above = Phase("above", at(HOVER), 0.0, 0.015, 30)
        if spec.family == "touch":
            # The palm down to the object's centre, then the fingers close on it: an open hand can
            # enclose a 5 cm object without touching it (2 of 20 seeds, measured). Live targets: a
            # touch succeeds at the first contact, so a nudged object is not chased.
            return [
                above,
                Phase("reach", at(0.0), 0.0, 0.006, 20, 0.015),
                Phase("close", at(0.0), 1.0, None, 8),
            ]
        grasp_z = max(float(env.object_position(t)[2]), MIN_PALM_Z)

        def lifted() -> dict[str, np.ndarray]:
            here = env.palm_position(hand)
            return {hand: np.array([here[0], here[1], grasp_z + LIFT])}

        return [
            above,
            Phase("descend", at(0.0, live=False), 0.0, 0.006, 15, 0.02),
            # Fingers close at 2 rad/s (the controller's limit): ~1 rad takes 5 steps.
            Phase("close", at(0.0, live=False), 1.0, None, 6),
            Phase("lift", lifted, 1.0, 0.01, 25, 0.02, holding=True),
        ]

    def _plan_box(self, spec: tasks.EpisodeSpec) -> list[Phase]:
        env, t = self.env, spec.target
        half_y = obj.BOX.half[1]

        # The squeeze aims at where the box stood when the palms came down beside it (`centre`, set by
        # the approach phases), not where it is now: targets that followed the live box chased it
        # across the table when one palm touched it first.
        centre = [env.object_position(t)]
        self._anchor = centre

        def beside(offset: float, dz: float = 0.0, *, live: bool) -> Callable[[], dict[str, np.ndarray]]:
            def targets() -> dict[str, np.ndarray]:
                if live:
                    centre[0] = env.object_position(t)
                c = centre[0] + np.array([BOX_FORWARD, 0.0, 0.0])
                return {
                    "left": c + np.array([0.0, half_y + offset, dz]),
                    "right": c + np.array([0.0, -(half_y + offset), dz]),
                }

            return targets

        grasp_z = float(centre[0][2])
        touching = [0]

        def gripped() -> bool:
            contacts = env.sim_state().contacts
            both = all(t in contacts[h] for h in ("left", "right"))
            touching[0] = touching[0] + 1 if both else 0
            return touching[0] > BOX_GRIP_STEPS

        def lifted() -> dict[str, np.ndarray]:
            return {h: np.array([*env.palm_position(h)[:2], grasp_z + LIFT]) for h in ("left", "right")}

        return [
            Phase("above", beside(BOX_OUTSIDE, HOVER, live=True), 0.0, 0.015, 30),
            Phase("descend", beside(BOX_OUTSIDE, live=True), 0.0, 0.008, 20, 0.02),
            Phase("squeeze", beside(-BOX_SQUEEZE, live=False), BOX_CLOSURE, 0.01, 20, 0.01, until=gripped),
            Phase("lift", lifted, BOX_CLOSURE, 0.01, 25, 0.015, holding=True),
        ]
