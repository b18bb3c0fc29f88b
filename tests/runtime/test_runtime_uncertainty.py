"""MC-dropout confidence on a real (tiny, untrained) policy, and how `vla serve --min-confidence`
gets a confidence for every head (or refuses)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vla.models.config import PolicyConfig
from vla.runtime.client import PolicyClient
from vla.runtime.engine import Engine, EngineConfig
from vla.runtime.recovery import RecoveryConfig, make_safe_controller
from vla.runtime.safety import SafetyConfig
from vla.runtime.uncertainty import MCDropout, MCDropoutConfig, confidence_plan, dropout_modules
from vla.types import Observation

NO_CONF = {"head.ensemble": 1}  # a regression head without an ensemble has no confidence of its own


@pytest.fixture(scope="module")
def policy(rt):
    torch.set_num_threads(1)
    return rt.build_tiny_policy(**NO_CONF)


def _obs(rt, seed: int = 0) -> Observation:
    o = rt.make_obs(np.random.default_rng(seed))
    return Observation({"scene": o["images/scene"], "wrist": o["images/wrist"]}, o["state"], o["prompt"])


def test_actions_are_the_policys_and_confidence_comes_from_the_spread(rt, policy):
    obs = _obs(rt)
    assert policy.predict(obs).confidence is None
    mc = MCDropout(policy, MCDropoutConfig(samples=6, seed=3))
    chunk = mc.predict(obs)
    np.testing.assert_array_equal(chunk.actions, policy.predict(obs).actions)  # dropout off for actions
    spread = chunk.info["mc_dropout_spread"]
    assert chunk.confidence.shape == (1,) and chunk.confidence.dtype == np.float32
    assert spread[0] > 0  # dropout on: the stochastic passes disagree
    np.testing.assert_allclose(chunk.confidence, np.exp(-spread / 0.1), rtol=1e-6)
    assert 0.0 < chunk.confidence[0] < 1.0
    again = mc.predict(obs)  # a seed gives every call the same masks
    np.testing.assert_array_equal(again.confidence, chunk.confidence)
    wide = MCDropout(policy, MCDropoutConfig(samples=6, seed=3, scale=1.0)).predict(obs)
    assert wide.confidence[0] > chunk.confidence[0]  # a larger scale forgives more spread


def test_batches_get_one_confidence_per_row(rt, policy):
    a, b = _obs(rt, 1).as_batch(), _obs(rt, 2).as_batch()
    both = Observation(
        {c: np.concatenate([a.images[c], b.images[c]]) for c in a.images},
        np.concatenate([a.state, b.state]),
        ["open the drawer", "touch the red block"],
    )
    mc = MCDropout(policy, MCDropoutConfig(samples=4, seed=0))
    chunk = mc.predict(both)
    assert chunk.actions.shape[0] == 2 and chunk.confidence.shape == (2,)
    assert chunk.confidence[0] != chunk.confidence[1]


def test_only_the_fusion_dropout_runs_in_train_mode(rt, policy):
    seen: dict[str, list[bool]] = {"dropout": [], "vision": [], "head": []}
    mods = dropout_modules(policy)
    assert mods and all(m in set(policy.fusion.modules()) for m in mods)
    hooks = [
        mods[0].register_forward_hook(lambda m, i, o: seen["dropout"].append(m.training)),
        policy.vision.register_forward_hook(lambda m, i, o: seen["vision"].append(m.training)),
        policy.head.register_forward_hook(lambda m, i, o: seen["head"].append(m.training)),
    ]
    try:
        MCDropout(policy, MCDropoutConfig(samples=3)).predict(_obs(rt))
    finally:
        for h in hooks:
            h.remove()
    assert seen["dropout"] == [False, True]  # the deterministic pass, then the stochastic batch
    assert not any(seen["vision"])
    assert not any(m.training for m in policy.modules())  # everything back in eval mode


def test_policy_without_dropout_is_refused(rt):
    flat = rt.build_tiny_policy(**NO_CONF, **{"fusion.dropout": 0.0})
    with pytest.raises(ValueError, match=r"fusion\.dropout=0\.0: train it with -p fusion\.dropout=0\.1"):
        MCDropout(flat)


def test_engine_backends(rt, policy):
    obs = _obs(rt)
    eager = Engine(policy, EngineConfig())
    got = MCDropout(eager, MCDropoutConfig(samples=4, seed=1)).predict(obs)
    ref = MCDropout(policy, MCDropoutConfig(samples=4, seed=1)).predict(obs)
    np.testing.assert_allclose(got.actions, ref.actions, atol=1e-6)
    np.testing.assert_allclose(got.confidence, ref.confidence, rtol=1e-4)
    assert MCDropout(eager).config is policy.config  # a transparent wrapper for everything else
    with pytest.raises(ValueError, match="needs the eager engine backend, got 'int8'"):
        MCDropout(Engine(policy, EngineConfig(backend="int8")))


def test_the_safety_filter_holds_on_low_mc_dropout_confidence(rt, policy):
    env_obs = {"images": _obs(rt).images, "state": _obs(rt).state, "instruction": "go"}
    strict = MCDropout(policy, MCDropoutConfig(samples=3, scale=1e-9, seed=0))  # confidence ~ 0
    ctl = make_safe_controller(
        strict, safety=SafetyConfig(min_confidence=0.5), recovery=RecoveryConfig(max_retries=1)
    )
    ctl.act(env_obs)
    assert ctl.failed and ctl.safety.stats["low_confidence"] == 2  # held, re-planned once, held
    lenient = MCDropout(policy, MCDropoutConfig(samples=3, scale=1e9, seed=0))  # confidence ~ 1
    ctl = make_safe_controller(lenient, safety=SafetyConfig(min_confidence=0.5))
    ctl.act(env_obs)
    assert not ctl.failed and ctl.safety.stats["low_confidence"] == 0


def _cfg(**overrides) -> PolicyConfig:
    from vla.presets import get_preset

    return get_preset("default").override(overrides)


@pytest.mark.parametrize(
    ("overrides", "backend", "source"),
    [
        ({}, "onnx", "head"),  # regression ensemble of 3
        ({"head.kind": "binned"}, "int8", "head"),
        ({"head.kind": "diffusion"}, "eager", "sampling"),
        ({"head.kind": "flow"}, "compile", "sampling"),
        (NO_CONF, "eager", "mc_dropout"),
    ],
)
def test_confidence_plan_per_head(overrides, backend, source):
    plan = confidence_plan(_cfg(**overrides), backend=backend)
    assert plan.source == source
    assert plan.with_confidence == (source == "sampling") and plan.mc_dropout == (source == "mc_dropout")


def test_confidence_plan_refusals():
    with pytest.raises(ValueError, match=r"regression head with head\.ensemble=1 gives none"):
        confidence_plan(_cfg(**NO_CONF, **{"fusion.dropout": 0.0}), backend="eager")
    with pytest.raises(ValueError, match="needs --backend eager"):
        confidence_plan(_cfg(**NO_CONF), backend="onnx")
    assert confidence_plan(_cfg(), backend="eager", mc_dropout=True).source == "mc_dropout"


def test_serve_refuses_min_confidence_without_a_confidence(rt, tmp_path):
    from vla.cli.main import app

    ckpt = tmp_path / "flat"
    rt.build_tiny_policy(**NO_CONF, **{"fusion.dropout": 0.0}).save_pretrained(ckpt)
    args = ["serve", "--checkpoint", str(ckpt), "--port", "0", "--min-confidence", "0.3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "regression head with head.ensemble=1 gives none" in result.output


def test_served_regression_head_without_ensemble_gets_mc_dropout_confidence(rt, tmp_path):
    from vla.cli.runtime import build_server

    ckpt = tmp_path / "mc"
    rt.build_tiny_policy(**NO_CONF).save_pretrained(ckpt)
    server, source = build_server(ckpt, port=0, min_confidence=0.99)
    assert source == "mc_dropout" and isinstance(server.policy, MCDropout)
    assert server.metadata()["safety_limits"]["min_confidence"] == 0.99
    server.start()
    try:
        with PolicyClient("127.0.0.1", server.port) as client:
            reply = client.infer(rt.make_obs())
    finally:
        server.stop()
    assert 0.0 < reply["confidence"] < 0.99  # an untrained policy: far from sure
    assert "low_confidence" in reply["safety"]["interventions"]
