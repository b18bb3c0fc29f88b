"""Chunk broker, temporal ensembling, observation history and recovery."""

from __future__ import annotations

import numpy as np
import pytest

from vla.runtime import ChunkBroker, RecoveryConfig, SafetyConfig, TemporalEnsembler, make_controller
from vla.runtime.recovery import make_safe_controller
from vla.types import ActionChunk, Observation


class TablePolicy:
    """Returns chunk number c (c = 0, 1, ...) as actions[h] = 10 * c + h in every dimension."""

    def __init__(self, horizon: int = 4, dim: int = 2) -> None:
        self.horizon, self.dim, self.calls = horizon, dim, 0

    def predict(self, obs: Observation) -> ActionChunk:
        base = 10.0 * self.calls + np.arange(self.horizon, dtype=np.float32)
        self.calls += 1
        return ActionChunk(actions=np.repeat(base[None, :, None], self.dim, axis=2))


def _obs(i: float = 0.0) -> Observation:
    return Observation(
        images={"scene": np.full((4, 4, 3), int(i) % 255, np.uint8)},
        state=np.full(3, i, np.float32),
        instruction="go",
    )


def test_chunk_broker_executes_k_then_replans():
    p = TablePolicy()
    broker = ChunkBroker(p, execute_steps=3)
    got = [float(broker.act(_obs())[0]) for _ in range(7)]
    assert got == [0, 1, 2, 10, 11, 12, 20]
    assert p.calls == 3
    broker.reset()
    assert float(broker.act(_obs())[0]) == 30  # a reset re-plans at once
    with pytest.raises(ValueError, match="exceeds the policy's chunk length"):
        ChunkBroker(TablePolicy(), execute_steps=5).act(_obs())


def test_chunk_broker_default_runs_whole_chunk():
    broker = make_controller(TablePolicy(), mode="chunk")
    assert [float(broker.act(_obs())[0]) for _ in range(5)] == [0, 1, 2, 3, 10]


def test_temporal_ensembler_matches_act_weights():
    decay = 0.5
    ens = TemporalEnsembler(TablePolicy(), decay=decay)
    out = [float(ens.act(_obs())[0]) for _ in range(6)]
    # Step t sees chunks made at s = max(0, t-3)..t; chunk s predicts 10 s + (t - s) for step t.
    for t, value in enumerate(out):
        starts = np.arange(max(0, t - 3), t + 1)
        preds = 10.0 * starts + (t - starts)
        w = np.exp(-decay * np.arange(len(starts)))  # oldest first
        assert value == pytest.approx(float((w * preds).sum() / w.sum()), rel=1e-6)
    with pytest.raises(ValueError, match="unknown controller mode 'bogus'"):
        make_controller(TablePolicy(), mode="bogus")


def test_history_stacks_and_pads():
    class Hist(TablePolicy):
        config = type("C", (), {"obs_horizon": 3})()

        def predict(self, obs):
            self.last = obs
            return super().predict(obs)

    p = Hist()
    broker = ChunkBroker(p, execute_steps=1)
    broker.act(_obs(1))
    assert p.last.state.shape == (1, 3, 3)
    np.testing.assert_array_equal(p.last.state[0, :, 0], [1, 1, 1])
    broker.act(_obs(2))
    broker.act(_obs(3))
    broker.act(_obs(4))
    np.testing.assert_array_equal(p.last.state[0, :, 0], [2, 3, 4])
    assert p.last.images["scene"].shape == (1, 3, 4, 4, 3)
    assert p.last.instruction == ["go"]


class FlakyPolicy:
    """Fails (NaN chunk or exception) for the first `failures` calls, then returns small deltas."""

    def __init__(self, embodiment, failures: int, how: str = "nan") -> None:
        self.embodiment, self.failures, self.how, self.calls = embodiment, failures, how, 0

    def predict(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        if self.calls <= self.failures:
            if self.how == "raise":
                raise RuntimeError("boom")
            return ActionChunk(actions=np.full((1, 4, 7), np.nan, np.float32))
        return ActionChunk(actions=np.full((1, 4, 7), 0.01, np.float32))


def _env_obs(rt):
    o = rt.make_obs()
    return {
        "images": {"scene": o["images/scene"], "wrist": o["images/wrist"]},
        "state": o["state"],
        "instruction": "go",
    }


@pytest.mark.parametrize("how", ["nan", "raise"])
def test_recovery_replans_then_succeeds(rt, how):
    emb = rt.make_test_embodiment()
    p = FlakyPolicy(emb, failures=2, how=how)
    ctl = make_safe_controller(p, mode="chunk", recovery=RecoveryConfig(max_retries=2))
    out = ctl.act(_env_obs(rt))
    np.testing.assert_allclose(out, 0.01, atol=1e-6)
    assert not ctl.failed and p.calls == 3 and ctl.stats["retry"] == 2


def test_recovery_limit_then_safe_stop(rt):
    emb = rt.make_test_embodiment()
    p = FlakyPolicy(emb, failures=100)
    ctl = make_safe_controller(p, recovery=RecoveryConfig(max_retries=2, latch_estop=True))
    out = ctl.act(_env_obs(rt))
    assert ctl.failed and p.calls == 3  # 1 try + 2 re-plans, then stop
    np.testing.assert_array_equal(out[:6], 0.0)  # hold: zero deltas
    assert ctl.stats["recovery_exhausted"] == 1
    assert ctl.safety is not None and ctl.safety.estopped  # latched: an operator must release it
    ctl.act(_env_obs(rt))
    assert ctl.safety.last_reasons == ("estop",)


def test_unsafe_mode_is_explicit_and_raises_when_exhausted(rt):
    p = FlakyPolicy(rt.make_test_embodiment(), failures=100)
    ctl = make_safe_controller(p, unsafe_no_filter=True, recovery=RecoveryConfig(max_retries=1))
    assert ctl.safety is None
    with pytest.raises(RuntimeError, match="no finite action after 2 attempts"):
        ctl.act(_env_obs(rt))
    with pytest.raises(ValueError, match="needs the robot's Embodiment"):
        make_safe_controller(TablePolicy())


def test_safe_controller_clips_and_ensembles(rt):
    emb = rt.make_test_embodiment()

    class Big(FlakyPolicy):
        def predict(self, obs):
            return ActionChunk(
                actions=np.full((1, 4, 7), 5.0, np.float32), confidence=np.array([0.9], np.float32)
            )

    ctl = make_safe_controller(Big(emb, 0), mode="ensemble", safety=SafetyConfig(min_confidence=0.5))
    out = ctl.act(_env_obs(rt))
    np.testing.assert_allclose(out, [0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0], atol=1e-6)
    assert "action_bounds" in ctl.safety.last_reasons
