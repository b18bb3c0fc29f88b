"""The generic safety filter on the G1: per-group limits under wild actions, balance margin, fall stop.

Real MuJoCo physics; one robot is built for the module (~4 s) and reset per test. The pushes are those
of tests/robots/test_robots_g1.py (400 N backward for 0.3 s tips the robot, 20 N does not).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from vla.robots.g1 import layout
from vla.robots.g1.embodiment import BALANCE_STOP_MARGIN
from vla.robots.g1.robot import G1Robot
from vla.runtime.safety import SafetyFilter

# Anything a broken policy could emit: NaN, inf, absurd magnitudes, and values near the bounds.
wild = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(-(2.0**60), 2.0**60, width=32),
    st.floats(-0.25, 1.125, width=32),
)
HELD = ("left_arm", "right_arm", "base")  # what the balance margin stops


@pytest.fixture(scope="module")
def robot() -> Iterator[G1Robot]:
    r = G1Robot()
    yield r
    r.close()


def _motion(robot: G1Robot) -> np.ndarray:
    """Both palms moving forward and up, hands half closed: motion the balance margin must stop."""
    a = np.zeros(robot.space.dim)
    for arm in ("left_arm", "right_arm"):
        a[robot.space.slice(arm)][[0, 2]] = 0.01
    a[robot.space.slice("hands")] = 0.5
    return a


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(arrays(np.float64, 22, elements=wild), min_size=1, max_size=6))
def test_wild_actions_stay_inside_every_group_and_nan_holds(robot: G1Robot, actions: list) -> None:
    state = robot.reset(0)
    f = SafetyFilter(robot.embodiment)
    space, lim = robot.space, f.limits
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    prev: np.ndarray | None = None
    for a in actions:
        out = f.act(a, state).astype(np.float64)
        assert np.all(np.isfinite(out))
        for g in space.groups:
            sl = space.slice(g.name)
            assert np.all(out[sl] >= low[sl] - 1e-6) and np.all(out[sl] <= high[sl] + 1e-6), g.name
        if not np.all(np.isfinite(a)):
            assert f.last_reasons == ("non_finite_action",)
            for name in HELD:  # palm deltas and the base velocity hold at zero, never repeat
                np.testing.assert_array_equal(out[space.slice(name)], 0.0)
            if prev is not None:  # absolute targets (hands, waist, CoM offset) keep the last command
                keep = ~lim.is_delta
                np.testing.assert_allclose(out[keep], prev[keep], atol=1e-6)
        elif prev is not None:  # the per-step change of a delta command is bounded
            step = np.abs(out - prev)[lim.is_delta]
            assert np.all(step <= lim.vel[lim.is_delta] + 1e-6)
        prev = out


def test_a_push_that_tips_it_trips_the_margin_first_then_latches_a_fall(robot: G1Robot) -> None:
    robot.reset(3)
    robot.hold(3)
    f = SafetyFilter(robot.embodiment)
    pelvis = robot.model.body(layout.PELVIS).id
    fall_guards = [g for g in f.limits.guards if g.guard.latch]
    first: dict[str, int] = {}
    motion = _motion(robot)
    for step in range(30):
        robot.data.xfrc_applied[pelvis, :3] = [-400.0, 0.0, 0.0] if step < 3 else 0.0
        state = robot.state()
        # The filter's fall check, read from the state, is the robot's own fall detector.
        assert any(g.trips(state) for g in fall_guards) == robot.fallen
        cmd = f.act(motion, state)
        for r in f.last_reasons:
            first.setdefault(r, step)
        if "balance_margin" in f.last_reasons:
            for name in HELD:
                np.testing.assert_array_equal(cmd[robot.space.slice(name)], 0.0)
        robot.step(cmd)
        if f.estopped:
            break
    assert "balance_margin" in first and "fall" in first, first
    assert first["balance_margin"] < first["fall"]
    assert f.estopped and f.estop_reason == "fall" and robot.fallen
    # Latched: whatever comes next is a hold, counted under "estop".
    f.act(motion, robot.state())
    assert f.last_reasons == ("estop",) and f.blocked
    assert f.stats["fall"] == 1 and f.stats["balance_margin"] >= 1 and f.stats["estop"] == 1


@pytest.mark.parametrize(("force", "move"), [(-20.0, False), (0.0, True)], ids=["small_push", "motion"])
def test_a_small_push_or_palm_motion_trips_nothing(robot: G1Robot, force: float, move: bool) -> None:
    # Both at once do: the 20 N push with the palms moving lifted part of the feet for 0.3 s (8 foot
    # contacts -> 4, margin -5 cm, measured) before the robot settled back; the arms are held then.
    robot.reset(4)
    f = SafetyFilter(robot.embodiment)
    pelvis = robot.model.body(layout.PELVIS).id
    zero = np.zeros(robot.space.dim)
    lowest = np.inf
    for step in range(13):
        robot.data.xfrc_applied[pelvis, :3] = [force, 0.0, 0.0] if step < 3 else 0.0
        state = robot.state()
        lowest = min(lowest, float(state[robot.embodiment.state_slice("balance_margin")][0]))
        robot.step(f.act(_motion(robot) if move and step < 8 else zero, state))
    assert not robot.fallen and lowest > BALANCE_STOP_MARGIN
    assert not {"balance_margin", "fall", "estop"} & set(f.stats)
