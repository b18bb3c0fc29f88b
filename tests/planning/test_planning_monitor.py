"""The tabletop step monitor on synthetic state streams: a push is done once the low hand has travelled
far enough (no rise needed), and a release away from where the object belongs is a failure."""

from __future__ import annotations

import numpy as np

from vla.envs.tabletop.embodiment import make_embodiment
from vla.envs.tabletop.step_monitor import PUSH_TRAVEL, StateStepMonitor
from vla.planning.plan import SceneDescription, Step

EMB = make_embodiment((8, 8))


def _obs(ee: tuple[float, float, float], gripper: float) -> dict:
    s = np.zeros(EMB.state_dim, np.float32)
    s[EMB.state_slice("ee_pos")] = ee
    s[EMB.state_slice("gripper")] = gripper
    return {"state": s}


def _step(skill: str, **slots: str) -> Step:
    return Step(skill, tuple(sorted(slots.items())))


SCENE = SceneDescription(
    objects=("red block", "blue ball"),
    containers=("bowl",),
    positions={"red block": (0.5, 0.0), "blue ball": (0.5, 0.2), "bowl": (0.6, -0.2)},
)


def test_push_succeeds_while_the_hand_is_still_low() -> None:
    m = StateStepMonitor()
    m.start(_step("push", obj="red block", direction="left"), _obs((0.5, -0.05, 0.2), 0.0))
    verdict = "running"
    for y in np.arange(-0.05, -0.05 + PUSH_TRAVEL + 0.02, 0.01):  # "left" is +y
        verdict = m.update(_obs((0.5, float(y), 0.02), 0.0))
        if verdict != "running":
            break
    assert verdict == "success" and m.reason == "pushed"


def _place(step: Step, at: tuple[float, float], scene: SceneDescription | None = SCENE) -> str:
    m = StateStepMonitor()
    m.start(step, _obs((0.5, 0.0, 0.2), 0.08), scene=scene)
    stream = [((0.5, 0.0, 0.03), 0.03)] * 3  # closed on the object
    stream += [((at[0], at[1], 0.15), 0.03)] * 2  # carried over `at`
    stream += [((at[0], at[1], 0.06), 0.03), ((at[0], at[1], 0.06), 0.08), ((at[0], at[1], 0.12), 0.08)]
    verdict = "running"
    for ee, g in stream:
        verdict = m.update(_obs(ee, g))
        if verdict != "running":
            return f"{verdict}: {m.reason}"
    return verdict


def test_release_over_the_container_succeeds_and_beside_it_fails() -> None:
    step = _step("put_in", obj="red block", container="bowl")
    assert _place(step, (0.61, -0.19)) == "success: placed and released"
    assert _place(step, (0.6, 0.0)).startswith("failure: failed: released")
    assert _place(step, (0.6, 0.0), scene=None) == "success: placed and released"  # nothing to check


def test_stack_and_next_to_are_checked_against_the_other_object() -> None:
    assert _place(_step("stack", obj="red block", base="blue ball"), (0.5, 0.21)).startswith("success")
    assert "beside" in _place(_step("stack", obj="red block", base="blue ball"), (0.5, 0.28))
    nxt = _step("move_next_to", obj="red block", ref="blue ball")
    assert _place(nxt, (0.5, 0.2 - 0.075)).startswith("success")
    assert "not next to" in _place(nxt, (0.5, 0.0))
    assert "not next to" in _place(nxt, (0.5, 0.2))  # on top of it
