"""Safety filter: a robot's declared state guards (balance margin holds some groups, a fall latches).

A small made-up legged robot declares the guards; the filter reads only the declaration. The G1's own
guards, on its simulated body, are tested in tests/robots/test_robots_g1_safety.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vla.runtime.safety import HOLD_REASONS, SafetyConfig, SafetyFilter
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField, StateGuard

GUARDS = (
    StateGuard("margin", "balance_margin", low=0.02, groups=("arm", "base")),
    StateGuard("fall_height", "height", reason="fall", low=0.5, latch=True),
    StateGuard("fall_tilt", "quat", reason="fall", indices=(1, 2), high=math.sin(0.3), latch=True),
)


def _embodiment(guards: tuple[StateGuard, ...] = GUARDS) -> Embodiment:
    space = ActionSpace(
        "body",
        (
            ActionGroup("arm", 3, (-0.04,) * 3, (0.04,) * 3, "m", delta=True),
            ActionGroup("hand", 1, (0.0,), (1.0,), "fraction"),
            ActionGroup("base", 2, (-0.2, -0.1), (0.2, 0.1), "m/s", delta=True),
        ),
    )
    return Embodiment(
        name="test_legged",
        action_spaces=(space,),
        state_fields=(
            StateField("balance_margin", 1, "m"),
            StateField("height", 1, "m"),
            StateField("quat", 4, "wxyz"),
        ),
        cameras=("head",),
        image_size=(8, 8),
        control_hz=10.0,
        joint_low=(),
        joint_high=(),
        max_joint_velocity=(),
        workspace_low=(0.0, -0.5, 0.7),
        workspace_high=(0.6, 0.5, 1.2),
        state_guards=guards,
    )


def _state(margin: float = 0.08, height: float = 0.78, tilt: float = 0.0) -> np.ndarray:
    return np.array([margin, height, math.cos(tilt / 2), math.sin(tilt / 2), 0.0, 0.0], dtype=np.float32)


ACTION = np.array([0.03, -0.02, 0.01, 0.7, 0.1, 0.05])


def test_guards_round_trip_and_are_announced() -> None:
    emb = _embodiment()
    assert Embodiment.from_dict(json.loads(json.dumps(emb.to_dict()))) == emb
    described = SafetyFilter(emb).describe()
    assert [g["name"] for g in described["state_guards"]] == ["margin", "fall_height", "fall_tilt"]
    assert described["state_guards"][0]["groups"] == ["arm", "base"]
    assert "fall" in described["hold_reasons"] and "margin" not in described["hold_reasons"]
    assert [g["hold"] for g in described["groups"]] == ["zero", "last safe command", "zero"]


def test_balance_margin_holds_only_its_groups_and_is_counted() -> None:
    f = SafetyFilter(_embodiment())
    out = f.act(ACTION, _state())
    np.testing.assert_allclose(out, ACTION, atol=1e-6)
    out = f.act(ACTION, _state(margin=0.01))
    assert f.last_reasons == ("margin",) and not f.blocked and not f.estopped
    np.testing.assert_array_equal(out[[0, 1, 2, 4, 5]], 0.0)  # arm and base deltas held at zero
    assert out[3] == pytest.approx(0.7)  # the hand is free
    assert f.stats["margin"] == 1 and f.physical_stats["margin"] == 1
    f.act(ACTION, _state())  # margin restored: motion resumes
    assert f.last_reasons == ()


def test_fall_latches_the_stop_until_released() -> None:
    f = SafetyFilter(_embodiment())
    f.act(ACTION, _state())
    out = f.act(ACTION, _state(tilt=0.7))
    assert f.last_reasons == ("fall",) and f.blocked and f.estopped and f.estop_reason == "fall"
    np.testing.assert_allclose(out, [0, 0, 0, 0.7, 0, 0], atol=1e-6)  # hand keeps its last command
    f.reset()  # a new episode does not clear it
    f.act(ACTION, _state())
    assert f.last_reasons == ("estop",) and f.blocked
    f.release_estop(by="test", reason="robot stood up")
    np.testing.assert_allclose(f.act(ACTION, _state()), ACTION, atol=1e-6)
    assert f.stats["fall"] == 1 and f.stats["estop"] == 1
    f.act(ACTION, _state(height=0.3))
    assert f.last_reasons == ("fall",) and f.stats["fall"] == 2


def test_chunk_from_a_fallen_state_is_all_hold_and_latches() -> None:
    f = SafetyFilter(_embodiment())
    out = f.filter_chunk(np.tile(ACTION, (4, 1)), _state(height=0.2))
    assert f.estopped and f.last_reasons == ("fall", "estop")
    np.testing.assert_array_equal(out[:, [0, 1, 2, 4, 5]], 0.0)


def test_non_finite_guarded_state_holds() -> None:
    f = SafetyFilter(_embodiment())
    out = f.act(ACTION, _state(margin=float("nan")))
    assert f.last_reasons == ("non_finite_state",) and not f.estopped
    np.testing.assert_array_equal(out[[0, 1, 2, 4, 5]], 0.0)


def test_thresholds_can_be_configured_and_typos_are_named() -> None:
    f = SafetyFilter(_embodiment(), SafetyConfig(guard_thresholds=(("margin", 0.1),)))
    f.act(ACTION, _state(margin=0.08))
    assert f.last_reasons == ("margin",)
    with pytest.raises(ValueError, match=r"\['margn'\].*margin"):
        SafetyFilter(_embodiment(), SafetyConfig(guard_thresholds=(("margn", 0.1),)))


def test_bad_guard_declarations_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="field 'com'"):
        _embodiment((StateGuard("g", "com", low=0.0),))
    with pytest.raises(ValueError, match=r"indices \[4\]"):
        _embodiment((StateGuard("g", "quat", indices=(4,), high=1.0),))
    with pytest.raises(ValueError, match="unique"):
        _embodiment((StateGuard("g", "height", low=0.1), StateGuard("g", "height", low=0.2)))
    with pytest.raises(ValueError, match="neither"):
        StateGuard("g", "height")
    with pytest.raises(ValueError, match=r"groups \['legs'\]"):
        SafetyFilter(_embodiment((StateGuard("g", "height", low=0.1, groups=("legs",)),)))


def test_embodiment_without_guards_has_the_old_hold_reasons() -> None:
    f = SafetyFilter(_embodiment(()))
    assert f.hold_reasons == HOLD_REASONS and f.describe()["state_guards"] == []
    f.act(ACTION, _state(margin=-1.0, height=0.0))
    assert f.last_reasons == ()
