"""Safety filter: property tests (no output ever leaves the limits), holds, e-stop latch, stats."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vla.runtime.safety import SafetyConfig, SafetyFilter

EPS = 1e-6
# Model outputs: anything a broken network could emit, including NaN, inf and absurd magnitudes.
wild = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(-(2.0**100), 2.0**100, width=32),
    st.floats(-0.125, 0.125, width=32),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _state(emb, rng_vals: np.ndarray, ee: np.ndarray) -> np.ndarray:
    s = np.zeros(emb.state_dim, np.float32)
    lo, hi = np.asarray(emb.joint_low), np.asarray(emb.joint_high)
    s[:7] = lo + (hi - lo) * rng_vals
    s[15:18] = ee
    s[18:22] = (1, 0, 0, 0)
    return s


unit7 = arrays(np.float64, 7, elements=st.floats(0, 1))
ee_inside = arrays(np.float64, 3, elements=st.floats(0, 1))


def _ee(emb, u: np.ndarray) -> np.ndarray:
    lo, hi = np.asarray(emb.workspace_low), np.asarray(emb.workspace_high)
    return lo + (hi - lo) * u


@SETTINGS
@given(chunk=arrays(np.float32, (6, 7), elements=wild), u=unit7, e=ee_inside, conf=st.floats(0, 1))
def test_ee_delta_chunk_never_leaves_limits(rt, chunk, u, e, conf):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb, SafetyConfig(min_confidence=0.2))
    state = _state(emb, u, _ee(emb, e))
    out = f.filter_chunk(chunk, state, confidence=conf)
    space = emb.action_space("ee_delta")
    assert out.shape == (6, 7) and np.all(np.isfinite(out))
    assert np.all(out >= space.low - EPS) and np.all(out <= space.high + EPS)
    # Every predicted ee position along the chunk stays in the workspace box.
    ee = state[15:18] + np.cumsum(out[:, :3], axis=0)
    assert np.all(ee >= np.asarray(emb.workspace_low) - EPS) and np.all(
        ee <= np.asarray(emb.workspace_high) + EPS
    )
    assert np.all((out[:, 6] >= 0) & (out[:, 6] <= 1))
    if conf < 0.2:
        assert set(f.last_reasons) <= {"low_confidence", "non_finite_action"}
        np.testing.assert_array_equal(out[:, :6], 0.0)
    # Rate limit on delta commands: change per step <= 0.5 * range, except where the workspace or a
    # hold had to intervene.
    if not set(f.last_reasons) & {"workspace", "non_finite_action", "low_confidence"}:
        rng = space.high - space.low
        assert np.all(np.abs(np.diff(out[:, :6], axis=0)) <= 0.5 * rng[:6] + EPS)


@SETTINGS
@given(actions=arrays(np.float32, (8, 8), elements=wild), u=unit7, e=ee_inside)
def test_joint_pos_steps_never_leave_limits(rt, actions, u, e):
    emb = rt.make_test_embodiment()
    cfg = SafetyConfig(action_space="joint_pos")
    f = SafetyFilter(emb, cfg)
    state = _state(emb, u, _ee(emb, e))
    lo, hi = np.asarray(emb.joint_low), np.asarray(emb.joint_high)
    vmax = np.asarray(emb.max_joint_velocity) / emb.control_hz
    amax = cfg.max_joint_acceleration / emb.control_hz**2
    prev, prev_step = state[:7].astype(np.float64), None
    for a in actions:
        out = f.act(a, state).astype(np.float64)
        assert np.all(np.isfinite(out))
        assert np.all(out[:7] >= lo - EPS) and np.all(out[:7] <= hi + EPS)
        assert 0 <= out[7] <= 1
        step = out[:7] - prev
        assert np.all(np.abs(step) <= vmax + 1e-5)  # velocity bound is hard
        if prev_step is not None and not f.blocked:
            # acceleration gives way only at a position limit
            at_limit = (np.abs(out[:7] - lo) < 1e-5) | (np.abs(out[:7] - hi) < 1e-5)
            assert np.all((np.abs(step - prev_step) <= amax + 1e-5) | at_limit)
        prev_step = step
        prev = out[:7]


@SETTINGS
@given(a=arrays(np.float32, 7, elements=wild), ee=arrays(np.float64, 3, elements=st.floats(-2, 2)))
def test_outside_workspace_moves_back_within_bounds(rt, a, ee):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb)
    state = _state(emb, np.full(7, 0.5), ee)
    out = f.act(a, state)
    space = emb.action_space("ee_delta")
    assert np.all(out >= space.low - EPS) and np.all(out <= space.high + EPS)
    lo, hi = np.asarray(emb.workspace_low), np.asarray(emb.workspace_high)
    dist_before = np.maximum(lo - ee, 0) + np.maximum(ee - hi, 0)
    after = ee + out[:3]
    dist_after = np.maximum(lo - after, 0) + np.maximum(after - hi, 0)
    assert np.all(dist_after <= dist_before + EPS)


def test_nan_holds_last_safe_command_and_counts(rt, caplog):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb, SafetyConfig(action_space="joint_pos"))
    state = _state(emb, np.full(7, 0.5), _ee(emb, np.full(3, 0.5)))
    good = np.r_[state[:7] + 0.01, 1.0].astype(np.float32)
    first = f.act(good, state)
    np.testing.assert_allclose(first, good, atol=1e-6)
    with caplog.at_level(logging.WARNING, logger="vla.runtime.safety"):
        held = f.act(np.full(8, np.nan, np.float32), state)
    np.testing.assert_array_equal(held, first)  # joints and the closed gripper stay where they were
    assert f.last_reasons == ("non_finite_action",)
    assert "non_finite_action" in caplog.text
    f.act(np.r_[state[:7], 1.0].astype(np.float32) + 10, state)
    assert f.stats["non_finite_action"] == 1 and f.stats["joint_limits"] + f.stats["velocity"] >= 1


def test_ee_delta_hold_is_zero_motion(rt):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb)
    state = _state(emb, np.full(7, 0.5), _ee(emb, np.full(3, 0.5)))
    f.act(np.array([0.01, 0, 0, 0, 0, 0, 1.0], np.float32), state)
    out = f.act(np.array([np.inf, 0, 0, 0, 0, 0, 0.0], np.float32), state)
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 0, 1.0])


def test_estop_latches_until_released(rt):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb)
    state = _state(emb, np.full(7, 0.5), _ee(emb, np.full(3, 0.5)))
    a = np.array([0.01, 0.01, 0, 0, 0, 0, 0.0], np.float32)
    f.estop("test")
    for _ in range(3):
        np.testing.assert_array_equal(f.act(a, state)[:6], 0.0)
        assert f.last_reasons == ("estop",)
    f.reset()  # a new episode does not clear the latch
    assert f.estopped
    np.testing.assert_array_equal(f.filter_chunk(np.tile(a, (4, 1)), state)[:, :6], 0.0)
    f.release_estop()
    np.testing.assert_allclose(f.act(a, state), a, atol=1e-7)
    assert f.stats["estop"] == 3 + 4


def test_real_tabletop_embodiment_resolves():
    from vla.envs.tabletop.embodiment import make_embodiment

    emb = make_embodiment()
    ee = SafetyFilter(emb).limits
    assert ee.ee == slice(0, 3) and ee.gripper == slice(6, 7) and ee.state_ee == slice(15, 18)
    assert ee.state_gripper is None  # finger opening (m) is not a gripper command
    jp = SafetyFilter(emb, SafetyConfig(action_space="joint_pos")).limits
    assert jp.joints == slice(0, 7) and jp.state_joints == slice(0, 7)


def test_bad_shapes_are_refused(rt):
    f = SafetyFilter(rt.make_test_embodiment())
    with pytest.raises(ValueError, match=r"expects actions \[7\]"):
        f.act(np.zeros(8), np.zeros(22))
    with pytest.raises(ValueError, match=r"expects state \[22\]"):
        f.act(np.zeros(7), np.zeros(21))
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyConfig(velocity_scale=2.0)


@SETTINGS
@given(chunk=arrays(np.float32, (6, 8), elements=wild), u=unit7, e=ee_inside, prev=st.booleans())
def test_joint_pos_chunk_never_leaves_limits(rt, chunk, u, e, prev):
    emb = rt.make_test_embodiment()
    f = SafetyFilter(emb, SafetyConfig(action_space="joint_pos"))
    state = _state(emb, u, _ee(emb, e))
    prev_action = np.r_[state[:7], 0.0] if prev else None
    out = f.filter_chunk(chunk, state, prev_action=prev_action).astype(np.float64)
    lo, hi = np.asarray(emb.joint_low), np.asarray(emb.joint_high)
    vmax = np.asarray(emb.max_joint_velocity) / emb.control_hz
    assert np.all(np.isfinite(out))
    assert np.all(out[:, :7] >= lo - EPS) and np.all(out[:, :7] <= hi + EPS)
    assert np.all((out[:, 7] >= 0) & (out[:, 7] <= 1))
    # Velocity from the measured joints (or the previous command) through every step of the chunk.
    path = np.vstack([state[:7], out[:, :7]])
    assert np.all(np.abs(np.diff(path, axis=0)) <= vmax + 1e-5)


def test_works_for_a_foreign_embodiment_without_joints_or_workspace():
    """A LeRobot-imported robot: one wide 'action' group, no joint limits; NaN still holds."""
    from vla.data.lerobot_import import describe_embodiment

    info = {"features": {"observation.state": {"shape": [6]}, "action": {"shape": [6]}}, "fps": 30}
    f = SafetyFilter(describe_embodiment(info, ["top"], (64, 64)))
    np.testing.assert_array_equal(f.act(np.ones(6), np.zeros(6)), np.ones(6))
    np.testing.assert_array_equal(f.act(np.full(6, np.nan), np.zeros(6)), np.ones(6))  # hold the last command
    assert f.last_reasons == ("non_finite_action",)
