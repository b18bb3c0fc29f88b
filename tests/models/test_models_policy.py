"""Policy behaviour: input validation, history padding, padded steps, submodule groups, normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.models.normalize import Normalizer
from vla.presets import get_preset
from vla.types import DatasetStats, Observation


@pytest.fixture
def policy_and_data(kit):
    data = kit.make_toy(n=4)
    return kit.build(kit.tiny(get_preset("default")), data), data


def test_models_predict_single_step_and_batched(policy_and_data, kit) -> None:
    policy, data = policy_and_data
    single = Observation({k: v[0, 0] for k, v in data.images.items()}, data.state[0, 0], data.instruction[0])
    a = policy.predict(single)
    b = policy.predict(data.obs())
    assert a.actions.shape == (1, 4, kit.A) and a.actions.dtype == np.float32
    assert a.confidence is not None and a.confidence.shape == (1,)
    np.testing.assert_allclose(a.actions[0], b.actions[0], atol=1e-5)
    # Other image sizes are resized inside.
    big = Observation(
        {k: np.repeat(np.repeat(v, 2, axis=2), 2, axis=3) for k, v in data.images.items()},
        data.state,
        data.instruction,
    )
    assert policy.predict(big).actions.shape == b.actions.shape


def test_models_history_is_padded_for_single_steps(kit) -> None:
    data = kit.make_toy(n=2, T=2)
    policy = kit.build(kit.tiny(get_preset("rt1")), data)
    one = Observation({k: v[:, -1:] for k, v in data.images.items()}, data.state[:, -1:], data.instruction)
    rep = Observation(
        {k: np.repeat(v[:, -1:], 2, axis=1) for k, v in data.images.items()},
        np.repeat(data.state[:, -1:], 2, axis=1),
        data.instruction,
    )
    np.testing.assert_allclose(policy.predict(one).actions, policy.predict(rep).actions, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda o: Observation({"scene": o.images["scene"]}, o.state, o.instruction),
            r"lacks cameras \['wrist'\]",
        ),
        (
            lambda o: Observation(
                {**o.images, "wrist": o.images["wrist"].astype(np.float32)}, o.state, o.instruction
            ),
            "image 'wrist' must be a uint8",
        ),
        (
            lambda o: Observation({**o.images, "scene": o.images["scene"][..., :2]}, o.state, o.instruction),
            r"image 'scene' must be uint8 \[4, 1, Hi, Wi, 3\]",
        ),
        (lambda o: Observation(o.images, o.state[..., :3], o.instruction), r"'state' must be float \[4\]"),
        (lambda o: Observation(o.images, o.state, o.instruction[:2]), "must hold 4 strings"),
    ],
)
def test_models_predict_rejects_bad_inputs(policy_and_data, change, message: str) -> None:
    policy, data = policy_and_data
    with pytest.raises(ValueError, match=message):
        policy.predict(change(data.obs()))


def test_models_loss_ignores_padded_steps(policy_and_data) -> None:
    policy, data = policy_and_data
    policy.eval()  # no dropout: the two losses must be comparable
    batch = data.batch()
    batch.action_pad[:, 2:] = True
    loss_a, _ = policy.loss(batch)
    batch.actions[:, 2:] += 100.0  # garbage past the episode end
    loss_b, _ = policy.loss(batch)
    torch.testing.assert_close(loss_a, loss_b)
    batch.action_pad[:, 2:] = False
    assert float(policy.loss(batch)[0].detach()) > float(loss_a.detach()) + 1.0


def test_models_param_groups_and_freezing(policy_and_data) -> None:
    policy, _ = policy_and_data
    groups = policy.param_groups_by_name()
    assert set(groups) == {"vision", "language", "state", "fusion", "head"}
    assert groups["vision"] and groups["state"] and groups["fusion"] and groups["head"]
    assert groups["language"] == []  # frozen MiniLM is not trained nor saved
    policy.set_trainable(["vision"], trainable=False)
    assert policy.param_groups_by_name()["vision"] == []
    assert policy.num_params(trainable_only=True) < policy.num_params()
    policy.set_trainable(["vision"], trainable=True)
    assert policy.num_params(trainable_only=True) == policy.num_params()
    with pytest.raises(ValueError, match="unknown submodule"):
        policy.set_trainable(["eyes"], trainable=False)


def test_models_normalizer_roundtrip_and_constant_dims(kit) -> None:
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    x[:, 2] = 0.5  # a dimension that never moves
    stats = DatasetStats(state=kit.stats(x), action=kit.stats(x))
    norm = Normalizer(stats)
    t = torch.from_numpy(x)
    n = norm.action(t)
    assert float(n[:, :2].abs().max()) < 1.6 and torch.all(n[:, 2] == 0)
    torch.testing.assert_close(norm.unaction(n), t)
    assert torch.isfinite(norm.state(t)).all()


def test_models_build_checks_embodiment_against_stats(kit) -> None:
    data = kit.make_toy(n=4)
    bad = DatasetStats(state=kit.stats(np.zeros((4, 5))), action=data.stats().action)
    from vla.models import build_policy

    with pytest.raises(ValueError, match=r"stats\.state has 5 dims"):
        build_policy(kit.tiny(get_preset("default")), embodiment=kit.embodiment(), stats=bad)
    with pytest.raises(ValueError, match=r"config cameras \['top'\]"):
        build_policy(
            kit.tiny(get_preset("default"), cameras=["top"]), embodiment=kit.embodiment(), stats=data.stats()
        )


@pytest.mark.parametrize("name", ["default", "openvla"])
def test_models_training_step_after_predict(kit, name: str) -> None:
    """Caches filled under inference_mode (instruction embeddings, keypoint grids) must not leak into
    autograd: predict, then train on the same instructions."""
    data = kit.make_toy(n=4)
    policy = kit.build(kit.tiny(get_preset(name)), data)
    policy.predict(data.obs())
    single = Observation({k: v[0, 0] for k, v in data.images.items()}, data.state[0, 0], data.instruction[0])
    policy.predict(single)
    losses = kit.fit(policy, data, steps=2)
    assert all(np.isfinite(losses))


def test_models_state_dropout_blanks_the_state_in_training_only(kit) -> None:
    data = kit.make_toy(n=8)
    policy = kit.build(kit.tiny(get_preset("default"), **{"fusion.state_dropout": 0.999}), data)
    batch, other = data.batch(), data.batch()
    other.state = other.state + 3.0
    policy.train()
    torch.manual_seed(1)
    a = policy.loss(batch)[0].detach()
    torch.manual_seed(1)
    b = policy.loss(other)[0].detach()
    torch.testing.assert_close(a, b)  # the state never reached the fusion
    policy.eval()
    assert not torch.equal(policy.loss(batch)[0].detach(), policy.loss(other)[0].detach())
