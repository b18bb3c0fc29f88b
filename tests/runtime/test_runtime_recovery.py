"""One recovery policy: SafeController and the policy server retry and hold by the same rules
(`vla.runtime.recovery.Recovery`), and `make_safe_controller` runs the policy's own execute_steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from vla.runtime.client import PolicyClient
from vla.runtime.recovery import RETRYABLE, Recovery, RecoveryConfig, make_safe_controller
from vla.runtime.safety import SafetyConfig, SafetyFilter
from vla.runtime.server import PolicyServer, ServeConfig
from vla.types import ActionChunk, Observation


@dataclass(frozen=True)
class _Cfg:
    obs_horizon: int = 1
    action_horizon: int = 4
    steps_per_chunk: int = 4


class FailingPolicy:
    """Fails its first `failures` calls (NaN actions, an exception, or a confidence of 0.1), then
    returns small finite chunks with confidence 0.9."""

    def __init__(self, embodiment, *, failures: int, how: str, steps_per_chunk: int = 4) -> None:
        self.embodiment = embodiment
        self.config = _Cfg(steps_per_chunk=steps_per_chunk)
        self.failures = failures
        self.how = how
        self.calls = 0

    def predict(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        b = obs.state.shape[0]
        actions = np.full((b, 4, 7), 0.01, np.float32)
        conf = np.full(b, 0.9, np.float32)
        if self.calls <= self.failures:
            if self.how == "raise":
                raise RuntimeError("scripted failure")
            if self.how == "nan":
                actions[:] = np.nan
            else:
                conf[:] = 0.1
        return ActionChunk(actions=actions, confidence=conf)


SAFETY = SafetyConfig(min_confidence=0.5)


def _through_controller(rt, policy, recovery: RecoveryConfig) -> dict:
    ctl = make_safe_controller(policy, safety=SAFETY, recovery=recovery)
    o = rt.make_obs()
    obs = {"images": {"scene": o["images/scene"], "wrist": o["images/wrist"]}, "state": o["state"]}
    action = ctl.act({**obs, "instruction": o["prompt"]})
    return {
        "calls": policy.calls,
        "retries": ctl.stats["retry"],
        "exhausted": ctl.failed,
        "held": bool(np.all(action[:6] == 0.0)),
        "estop": ctl.safety.estopped,
    }


def _through_server(rt, policy, recovery: RecoveryConfig) -> dict:
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0, safety=SAFETY, recovery=recovery))
    port = server.start()
    try:
        with PolicyClient("127.0.0.1", port) as client:
            reply = client.infer(rt.make_obs())
            estop = client.infer(rt.make_obs())["safety"]["estop"] if recovery.latch_estop else False
    finally:
        server.stop()
    return {
        "calls": policy.calls - (1 if recovery.latch_estop else 0),
        "retries": reply["safety"]["retries"],
        "exhausted": reply["safety"]["recovery_exhausted"],
        "held": bool(np.all(reply["actions"][:, :6] == 0.0)),
        "estop": estop,
    }


@pytest.mark.parametrize("how", ["nan", "raise", "low_confidence"])
@pytest.mark.parametrize(("failures", "max_retries"), [(0, 2), (1, 2), (2, 2), (3, 2), (1, 0), (5, 1)])
def test_controller_and_server_recover_by_the_same_rules(rt, how, failures, max_retries):
    emb = rt.make_test_embodiment()
    recovery = RecoveryConfig(max_retries=max_retries, latch_estop=True)
    got = {
        path: run(rt, FailingPolicy(emb, failures=failures, how=how), recovery)
        for path, run in (("controller", _through_controller), ("server", _through_server))
    }
    exhausted = failures > max_retries
    expected = {
        "calls": min(failures, max_retries) + 1,
        "retries": min(failures, max_retries),
        "exhausted": exhausted,
        "held": exhausted,  # zero deltas when every attempt failed, the policy's 0.01 otherwise
        "estop": exhausted,  # latch_estop=True latches the stop once the retries are exhausted
    }
    assert got["controller"] == expected
    assert got["server"] == expected


def test_server_reports_the_error_of_an_exhausted_model_failure(rt):
    policy = FailingPolicy(rt.make_test_embodiment(), failures=10, how="raise")
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0))
    port = server.start()
    try:
        with PolicyClient("127.0.0.1", port) as client:
            reply = client.infer(rt.make_obs())
            assert client.metadata["recovery"] == {"max_retries": 1, "latch_estop": False}
    finally:
        server.stop()
    assert reply["safety"]["recovery_exhausted"] is True
    assert reply["safety"]["error"] == "RuntimeError: scripted failure"
    np.testing.assert_array_equal(reply["actions"][:, :6], 0.0)


def test_recovery_policy_retries_only_what_a_new_plan_can_cure(embodiment):
    filt = SafetyFilter(embodiment)
    rec = Recovery(RecoveryConfig(max_retries=3, latch_estop=True), safety=filt)
    attempts = rec.attempts()
    seen = []
    for attempt in attempts:
        seen.append(attempt)
        attempts.judge(["estop"] if attempt == 1 else ["low_confidence", "velocity"])
    assert seen == [0, 1]  # an e-stop is accepted as is (a hold), never re-planned
    assert not attempts.exhausted and attempts.retries == 1 and rec.stats["retry"] == 1
    assert {"non_finite_action", "low_confidence", "policy_error"} == RETRYABLE
    attempts = rec.attempts()
    for _ in attempts:
        attempts.judge(["non_finite_action"])
    assert attempts.exhausted and attempts.retries == 3
    assert rec.stats == {"retry": 4, "recovery_exhausted": 1}
    assert filt.estopped


@pytest.mark.parametrize(("steps_per_chunk", "given", "calls"), [(2, None, 4), (1, None, 8), (2, 4, 2)])
def test_safe_controller_runs_the_policys_own_execute_steps(rt, steps_per_chunk, given, calls):
    """README's `make_safe_controller(policy)` must re-plan as often as `vla eval` does."""
    policy = FailingPolicy(rt.make_test_embodiment(), failures=0, how="nan", steps_per_chunk=steps_per_chunk)
    ctl = make_safe_controller(policy, execute_steps=given)
    o = rt.make_obs()
    obs = {"images": {"scene": o["images/scene"], "wrist": o["images/wrist"]}, "state": o["state"]}
    for _ in range(8):
        ctl.act({**obs, "instruction": "go"})
    assert policy.calls == calls


def test_safe_controller_uses_a_real_policys_steps_per_chunk(rt):
    policy = rt.build_tiny_policy(execute_steps=1)
    ctl = make_safe_controller(policy)
    assert ctl.controller.execute_steps == policy.config.steps_per_chunk == 1
    half = make_safe_controller(rt.build_tiny_policy())  # execute_steps=0: half the 4-step chunk
    assert half.controller.execute_steps == 2
