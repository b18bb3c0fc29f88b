"""Contracts shared by every area: types, embodiments, name lookup."""

import numpy as np
import pytest

from vla.registry import lookup
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField
from vla.types import ActionChunk, DatasetStats, FeatureStats, Observation


def _embodiment() -> Embodiment:
    arm = ActionGroup("arm_pos", 3, (-0.05,) * 3, (0.05,) * 3, "m")
    grip = ActionGroup("gripper", 1, (0.0,), (1.0,), "fraction")
    return Embodiment(
        name="toy",
        action_spaces=(ActionSpace("ee_delta", (arm, grip)),),
        state_fields=(StateField("joint_pos", 2, "rad"), StateField("ee_pos", 3, "m")),
        cameras=("scene",),
        image_size=(8, 8),
        control_hz=10.0,
        joint_low=(-1.0, -1.0),
        joint_high=(1.0, 1.0),
        max_joint_velocity=(2.0, 2.0),
        workspace_low=(0.0, -0.5, 0.0),
        workspace_high=(1.0, 0.5, 1.0),
    )


def test_embodiment_json_round_trip_and_slices():
    emb = _embodiment()
    again = Embodiment.from_dict(emb.to_dict())
    assert again == emb
    assert emb.state_dim == 5
    assert emb.state_slice("ee_pos") == slice(2, 5)
    assert emb.action_space().slice("gripper") == slice(3, 4)
    np.testing.assert_allclose(emb.action_space().high, [0.05, 0.05, 0.05, 1.0], rtol=1e-6)


def test_embodiment_rejects_bad_limits_and_unknown_names():
    with pytest.raises(ValueError, match="low must be <= high"):
        ActionGroup("g", 1, (1.0,), (0.0,), "m")
    with pytest.raises(ValueError, match="need 2 values"):
        ActionGroup("g", 2, (0.0,), (1.0,), "m")
    with pytest.raises(KeyError, match="no state field 'wheel'"):
        _embodiment().state_slice("wheel")
    with pytest.raises(ValueError, match="missing key"):
        Embodiment.from_dict({"name": "x"})


def test_compatibility_reports_each_mismatch():
    emb = _embodiment()
    other = Embodiment.from_dict({**emb.to_dict(), "cameras": ["top"]})
    assert emb.compatible_with(emb) == []
    assert any("cameras" in p for p in emb.compatible_with(other))


def test_observation_as_batch_adds_batch_and_time_axes():
    obs = Observation(
        images={"scene": np.zeros((8, 8, 3), np.uint8)}, state=np.zeros(5, np.float32), instruction="go"
    )
    b = obs.as_batch()
    assert b.images["scene"].shape == (1, 1, 8, 8, 3)
    assert b.state.shape == (1, 1, 5)
    assert b.instruction == ["go"]


def test_action_chunk_requires_three_axes():
    with pytest.raises(ValueError, match=r"\[B, H, A\]"):
        ActionChunk(actions=np.zeros((4, 7), np.float32))


def test_stats_round_trip_and_validation():
    f = FeatureStats(*(np.arange(3.0) for _ in range(6)), count=10)
    stats = DatasetStats(state=f, action=f)
    again = DatasetStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(again.action.q99, f.q99)
    bad = stats.to_dict()
    del bad["action"]["std"]
    with pytest.raises(ValueError, match=r"action.*std"):
        DatasetStats.from_dict(bad)
    bad = stats.to_dict()
    bad["state"]["mean"][0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        DatasetStats.from_dict(bad)


def test_lookup_suggests_close_name():
    with pytest.raises(KeyError, match="Did you mean 'tabletop'"):
        lookup({"tabletop": 1, "metaworld": 2}, "tabeltop", kind="suite")
    assert lookup({"a": 1}, "a", kind="x") == 1
