"""Confidence means something: higher on training-like inputs than on corrupted ones."""

from __future__ import annotations

import numpy as np
import pytest

from vla.presets import get_preset
from vla.types import Observation


@pytest.mark.parametrize(("name", "steps"), [("default", 150), ("rt1", 120)])
def test_models_confidence_drops_on_corrupted_inputs(kit, name: str, steps: int) -> None:
    data = kit.make_toy(n=32, T=get_preset(name).obs_horizon)
    policy = kit.build(kit.tiny(get_preset(name)), data)
    kit.fit(policy, data, steps=steps)
    clean = policy.predict(data.obs()).confidence
    rng = np.random.default_rng(0)
    obs = data.obs()
    noise = Observation(
        images={k: rng.integers(0, 256, v.shape, dtype=np.uint8) for k, v in obs.images.items()},
        state=obs.state,
        instruction=obs.instruction,
    )
    shuffled = Observation(
        images=obs.images, state=rng.permuted(obs.state * 4.0, axis=-1), instruction=obs.instruction
    )
    assert clean is not None
    for corrupted in (noise, shuffled):
        conf = policy.predict(corrupted).confidence
        assert conf is not None
        assert float(clean.mean()) > float(conf.mean()), (
            f"clean {clean.mean():.3f} <= corrupted {conf.mean():.3f}"
        )
    assert ((clean >= 0) & (clean <= 1)).all()


def test_models_sampling_heads_confidence_on_request(kit) -> None:
    data = kit.make_toy(n=4)
    policy = kit.build(kit.tiny(get_preset("pi0")), data)
    assert policy.predict(data.obs()).confidence is None
    conf = policy.predict(data.obs(), with_confidence=True).confidence
    assert conf is not None and conf.shape == (4,) and ((conf > 0) & (conf <= 1)).all()
