"""A grounding policy at run time: every engine backend builds the same grounding token as the policy,
and the controllers hold the scene estimate of an episode's first frame until the next reset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla.runtime.chunking import ChunkBroker, TemporalEnsembler
from vla.runtime.engine import Engine, EngineConfig
from vla.runtime.onnx_export import ATOL
from vla.types import Observation


def _obs(rt, seed: int) -> Observation:
    req = rt.make_obs(np.random.default_rng(seed))
    return Observation(
        images={c: req[f"images/{c}"] for c in ("scene", "wrist")},
        state=req["state"],
        instruction=req["prompt"],
    )


@pytest.fixture(scope="module")
def grounded(rt):
    torch.set_num_threads(1)
    return rt.build_tiny_policy(grounding_loss=1.0).eval()


def test_engine_backends_build_the_grounding_token_like_the_policy(grounded, rt) -> None:
    obs = _obs(rt, 0)
    held = grounded.estimate(_obs(rt, 1))["scene"]  # another frame's estimate, as a controller would hold it
    eager = Engine(grounded)
    onnx = Engine(grounded, EngineConfig(backend="onnx"))
    for o in (obs, dataclasses.replace(obs, features={"scene": held[0]})):
        ref = grounded.predict(o).actions
        np.testing.assert_allclose(eager.predict(o).actions, ref, atol=1e-6)
        np.testing.assert_allclose(onnx.predict(o).actions, ref, atol=ATOL)
    # The held scene matters: it is not this frame's estimate, so the chunk differs.
    assert not np.allclose(
        grounded.predict(obs).actions,
        eager.predict(dataclasses.replace(obs, features={"scene": held[0]})).actions,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="feature 'scene' must be float"):
        eager.predict(dataclasses.replace(obs, features={"scene": np.zeros((2, 3, 8), np.float32)}))


@pytest.mark.parametrize("make", [lambda p: ChunkBroker(p, execute_steps=1), TemporalEnsembler])
def test_controllers_hold_the_first_frames_scene_until_reset(grounded, rt, make) -> None:
    engine = Engine(grounded)
    first, later, other = _obs(rt, 0), _obs(rt, 1), _obs(rt, 2)
    ctrl = make(engine)
    ctrl.reset()
    ctrl.act(first)
    want = grounded.estimate(first)["scene"]
    np.testing.assert_allclose(ctrl.history.held["scene"], want, atol=1e-6)
    action = ctrl.act(later)  # acts on the later frame with the first frame's scene
    expect = grounded.predict(dataclasses.replace(later, features={"scene": want[0]})).actions[0, 0]
    if isinstance(ctrl, ChunkBroker):
        np.testing.assert_allclose(action, expect, atol=1e-5)
    np.testing.assert_allclose(ctrl.history.held["scene"], want, atol=1e-6)
    ctrl.reset()  # a new episode reads its own first frame
    ctrl.act(other)
    np.testing.assert_allclose(ctrl.history.held["scene"], grounded.estimate(other)["scene"], atol=1e-6)
    assert not np.allclose(ctrl.history.held["scene"], want, atol=1e-4)
    # An observation that brings its own scene (a client holding it) keeps it.
    mine = np.zeros(8, np.float32)
    ctrl.act(dataclasses.replace(later, features={"scene": mine}))
    np.testing.assert_array_equal(
        ctrl.history.push(dataclasses.replace(later, features={"scene": mine})).features["scene"], mine[None]
    )
