"""The grounding head (`PolicyConfig.grounding_loss`): learns where the named thing is from labelled
views, feeds a scene (recorded in training, estimated or held at run time) to the action head as a
detached token, and travels with the checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla.envs.tabletop.labels import SCENE
from vla.models import Policy, build_policy
from vla.presets import get_preset
from vla.types import GroundingBatch

HI = 32


def _views(kit, n: int = 48, seed: int = 0, *, both_named: bool = False):
    """Two 6x6 spots, red and blue, at random places; the instruction names one, the label is its
    (x, y, 0.5) as target and the other's as place, yaw unlabelled. With `both_named`, the instruction
    names both in the order of their roles ("move the red spot to the blue spot"), so only word
    order tells the target from the place."""
    data = kit.make_toy(n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    xy = rng.integers(0, HI - 6, (n, 2, 2))
    data.images["scene"][:] = 20
    names = []
    labels = np.zeros((n, 8), dtype=np.float32)
    for i in range(n):
        for k, colour in enumerate(((255, 0, 0), (0, 0, 255))):
            x, y = xy[i, k]
            data.images["scene"][i, :, y : y + 6, x : x + 6] = colour
        pick = int(rng.integers(2))
        if both_named:
            first, second = ("red", "blue") if pick == 0 else ("blue", "red")
            names.append(f"move the {first} spot to the {second} spot")
        else:
            names.append("touch the red spot" if pick == 0 else "touch the blue spot")
        labels[i, 0:2] = xy[i, pick] / (HI - 6)
        labels[i, 3:5] = xy[i, 1 - pick] / (HI - 6)
    labels[:, 2] = labels[:, 5] = 0.5
    data.state[:, :, -3:] = labels[:, None, :3]  # ee_pos statistics cover the labels' range
    data.instruction = names
    mask = np.ones_like(labels)
    mask[:, 6:] = 0.0
    batch = GroundingBatch(
        images={c: torch.from_numpy(v[:, -1:]) for c, v in data.images.items()},
        state=torch.from_numpy(data.state[:, -1]),
        instruction=names,
        labels=torch.from_numpy(labels),
        mask=torch.from_numpy(mask),
    )
    return data, batch


def _build(kit, data, grounding_loss: float, embodiment=None, head: str = "mlp") -> Policy:
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("default"), grounding_loss=grounding_loss, goal_loss=0.0, grounding_head=head)
    return build_policy(
        cfg, embodiment=embodiment or kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,)
    )


def test_models_grounding_head_only_when_asked_and_possible(kit) -> None:
    data, batch = _views(kit)
    plain = _build(kit, data, 0.0)
    assert plain.grounding is None and "grounding" not in plain.param_groups_by_name()
    with pytest.raises(ValueError, match="no grounding head"):
        plain.grounding_loss(batch)
    grounded = _build(kit, data, 1.0)
    assert grounded.grounding is not None and grounded.param_groups_by_name()["grounding"]
    # Without an end-effector position there is nothing to express the estimate relative to.
    with pytest.raises(ValueError, match="ee_pos"):
        _build(kit, data, 1.0, embodiment=kit.embodiment())
    # The `grounded` preset is `default` plus the head.
    assert get_preset("grounded").grounding_loss > 0 and get_preset("default").grounding_loss == 0


@pytest.mark.parametrize(
    ("head", "both_named"),
    [("mlp", False), ("phrases", True), ("roles", True), ("attention", False), ("attention", True)],
)
def test_models_grounding_learns_which_spot_is_named(kit, tmp_path, head: str, both_named: bool) -> None:
    data, batch = _views(kit, both_named=both_named)
    policy = _build(kit, data, 1.0, head=head)
    assert policy.grounding is not None
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    policy.train()
    first = None
    for _ in range(200):
        loss, metrics = policy.grounding_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = metrics["target_cm"] if first is None else first
    assert metrics["target_cm"] < 0.5 * first
    obs = dataclasses.replace(data.obs(), instruction=batch.instruction)
    pred = torch.from_numpy(policy.estimate(obs)["scene"])  # (n, 8) label units
    assert pred.shape == (len(batch.instruction), 8)
    err = float((pred[:, 0:2] - batch.labels[:, 0:2]).abs().mean())
    swapped = float((pred[:, 0:2] - batch.labels[:, 3:5]).abs().mean())  # the other spot
    assert err < 0.3 * swapped, f"target error {err:.3f} vs {swapped:.3f} for the unnamed spot"
    if head == "roles":  # the place role finds the other named spot, not the target
        place = float((pred[:, 3:5] - batch.labels[:, 3:5]).abs().mean())
        wrong = float((pred[:, 3:5] - batch.labels[:, 0:2]).abs().mean())
        assert place < 0.3 * wrong, f"place error {place:.3f} vs {wrong:.3f} for the target spot"
    # Checkpoint data: saved and loaded with the policy, giving the same estimate.
    loaded = Policy.from_pretrained(policy.save_pretrained(tmp_path / "ckpt"))
    np.testing.assert_allclose(loaded.estimate(obs)["scene"], pred.numpy(), atol=1e-5)


def test_models_grounding_token_is_detached_from_behaviour_cloning(kit) -> None:
    data, _ = _views(kit)
    policy = _build(kit, data, 1.0)
    assert policy.grounding is not None
    policy.train()
    loss, _ = policy.loss(data.batch())
    loss.backward()
    mlp_grads = [p.grad for p in policy.grounding.mlp.parameters()]
    assert all(g is None or float(g.abs().sum()) == 0.0 for g in mlp_grads)
    embed_grads = [p.grad for p in policy.grounding.embed.parameters()]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in embed_grads)  # the token is used
    # ...and it changes the actions: another estimate gives another chunk.
    policy.eval()
    before = policy.predict(data.obs()).actions
    with torch.no_grad():
        policy.grounding.mlp[-1].bias.add_(1.0)
    assert not np.allclose(policy.predict(data.obs()).actions, before, atol=1e-4)


def test_models_grounding_rejects_bad_labels(kit) -> None:
    data, batch = _views(kit, n=4)
    policy = _build(kit, data, 1.0)
    bad = dataclasses.replace(batch, labels=batch.labels[:, :6])
    with pytest.raises(ValueError, match="labels and mask"):
        policy.grounding_loss(bad)
    no_wrist = dataclasses.replace(batch, images={"scene": batch.images["scene"]})
    if "wrist" in policy.config.cameras:
        with pytest.raises(ValueError, match="lacks cameras"):
            policy.grounding_loss(no_wrist)


def test_models_grounding_token_reads_the_recorded_or_held_scene(kit) -> None:
    data, views = _views(kit, n=8)
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("default"), grounding_loss=1.0, goal_loss=0.0, grounding_noise=0.0)
    policy = build_policy(cfg, embodiment=kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,))
    policy.eval()  # no dropout: the losses below differ only through the scene
    batch = data.batch()
    recorded = dataclasses.replace(batch, features={"scene": views.labels, "scene_mask": views.mask})
    moved = views.labels.clone()
    moved[:, 0:3] += 0.2
    with torch.no_grad():
        a = float(policy.loss(recorded)[0])
        b = float(
            policy.loss(dataclasses.replace(recorded, features={**recorded.features, "scene": moved}))[0]
        )
        live = float(policy.loss(batch)[0])  # no recorded scene: the head's own estimate
    assert a != b and a != live
    # Training noise: the same batch gives another token, hence another loss, on every draw.
    noisy = build_policy(
        dataclasses.replace(cfg, grounding_noise=0.02),
        embodiment=policy.embodiment,
        stats=data.stats(),
        features=(SCENE,),
    ).eval()
    with torch.no_grad():
        assert float(noisy.loss(recorded)[0]) != float(noisy.loss(recorded)[0])
    # At run time a held scene replaces the live estimate; holding this frame's estimate changes nothing.
    obs = dataclasses.replace(data.obs(), instruction=views.instruction)
    est = policy.estimate(obs)["scene"]
    np.testing.assert_allclose(
        policy.predict(dataclasses.replace(obs, features={"scene": est})).actions,
        policy.predict(obs).actions,
        atol=1e-6,
    )
    other = policy.predict(dataclasses.replace(obs, features={"scene": moved.numpy()})).actions
    assert not np.allclose(other, policy.predict(obs).actions, atol=1e-4)
    with pytest.raises(ValueError, match="'scene' must hold 8"):
        policy.predict(dataclasses.replace(obs, features={"scene": est[:, :6]}))
    with pytest.raises(ValueError, match="'scene' holds NaN"):
        policy.predict(dataclasses.replace(obs, features={"scene": np.full_like(est, np.nan)}))


@pytest.mark.parametrize("which", ["none", "wrist"])
def test_models_fusion_vision_limits_what_the_action_path_sees(kit, which: str, tmp_path) -> None:
    data, views = _views(kit, n=8)
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("grounded"), goal_loss=0.0, grounding_noise=0.0)
    # The preset's state fields are tabletop's; this toy robot has others.
    cfg = cfg.override({"fusion.vision": which, "fusion.state_fields": ()})
    policy = build_policy(
        cfg, embodiment=kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,)
    ).eval()
    assert policy.reads_vision == (which == "wrist")
    obs = dataclasses.replace(
        data.obs(), instruction=views.instruction, features={"scene": views.labels.numpy()}
    )
    base = policy.predict(obs).actions
    # With the scene held, a different scene-camera image cannot change the actions...
    flipped = {**obs.images, "scene": obs.images["scene"][..., ::-1, :, :].copy()}
    np.testing.assert_allclose(policy.predict(dataclasses.replace(obs, images=flipped)).actions, base)
    # ...while the wrist image does exactly when the action path reads it.
    dark = {**obs.images, "wrist": np.zeros_like(obs.images["wrist"])}
    changed = not np.allclose(policy.predict(dataclasses.replace(obs, images=dark)).actions, base, atol=1e-5)
    assert changed == (which == "wrist")
    # Training still works (no vision pass at all for "none" when the scene is recorded) and the
    # setting travels with the checkpoint.
    policy.train()
    loss, _ = policy.loss(
        dataclasses.replace(data.batch(), features={"scene": views.labels, "scene_mask": views.mask})
    )
    loss.backward()
    loaded = Policy.from_pretrained(policy.eval().save_pretrained(tmp_path / "ckpt"))
    assert loaded.config.fusion.vision == which
    np.testing.assert_allclose(loaded.predict(obs).actions, base, atol=1e-6)


def test_models_fusion_vision_rejects_bad_values(kit) -> None:
    cfg = get_preset("grounded")
    with pytest.raises(ValueError, match=r"fusion\.vision must be 'all', 'none' or one of the cameras"):
        cfg.override({"fusion.vision": "left"})
    with pytest.raises(ValueError, match=r"needs fusion\.kind='concat'"):
        cfg.override({"fusion.vision": "none", "fusion.kind": "transformer"})


def test_models_state_fields_choose_what_the_state_token_reads(kit) -> None:
    data, _ = _views(kit, n=4)
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("default"), goal_loss=0.0).override({"fusion.state_fields": "joints"})
    policy = build_policy(
        cfg, embodiment=kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,)
    ).eval()
    obs = data.obs()
    base = policy.predict(obs).actions
    moved = obs.state.copy()
    moved[..., -3:] += 0.5  # ee_pos: not read
    np.testing.assert_allclose(policy.predict(dataclasses.replace(obs, state=moved)).actions, base)
    moved[..., 0] += 0.5  # joints: read
    assert not np.allclose(policy.predict(dataclasses.replace(obs, state=moved)).actions, base, atol=1e-5)
    bad = cfg.override({"fusion.state_fields": "joints,elbow"})
    with pytest.raises(ValueError, match=r"fusion.state_fields \['elbow'\] are not state fields"):
        build_policy(bad, embodiment=kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,))
