"""The presence check: its views, its threshold, its verdicts, and the first-frame latch every route uses.

How well the trained net finds objects is measured by `vla models presence` on thousands of scenes
(docs/measured.md, "Refusing what cannot be grounded"), not here.
"""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.presence_views import CAMERA, GROUPS, render_presence_views
from vla.models.grounding_check import FirstFrameVerdict, GroundingCheck
from vla.models.presence import FILE, PresenceCheck, PresenceSpec, fit_threshold, presence_scores

SPEC = PresenceSpec(
    GROUPS, {obj.describe(c, s): (c, s) for c, s in obj.ALL_PAIRS}, CAMERA, (96, 96), ("colour",)
)


@pytest.fixture(scope="module")
def views():
    seeds = list(range(60_000_000, 60_000_012))
    return render_presence_views(seeds, family_of=["stack", "touch", "put_in"] * 4)


def test_the_maps_mark_every_object_on_the_table_and_nothing_else(views):
    for maps, on_table in zip(views["maps"], views["objects"], strict=True):
        colour, shape = maps
        pairs = {(int(c), int(s)) for c, s in zip(colour[colour > 0], shape[colour > 0], strict=True)}
        want = {tuple(SPEC.class_index(n)) for n in on_table}
        assert pairs == want  # each object seen, with its own colour and shape, and no other pair
        assert (colour > 0).sum() < 0.1 * colour.size  # the table, containers and the arm are background
        assert np.array_equal(colour > 0, shape > 0)
    assert all(set(names) <= {obj.describe(*p) for p in obj.TRAIN_PAIRS} for names in views["objects"])


def test_the_threshold_separates_validation_scores_and_refuses_few_present_objects():
    rng = np.random.default_rng(0)
    present = rng.random((400, 6)) < 0.4
    scores = np.where(present, rng.uniform(0.5, 1.0, present.shape), rng.uniform(0.0, 0.4, present.shape))
    scores[0, 0], present[0, 0] = 0.05, True  # one present object the net missed
    fit = fit_threshold(scores.astype(np.float32), present, np.ones(6, bool))
    assert 0.4 < fit["threshold"] < 0.5
    assert fit["present_refused"] <= 0.01 and fit["absent_passed"] == 0.0
    with pytest.raises(ValueError, match="present and absent"):
        fit_threshold(scores, np.ones_like(present), np.ones(6, bool))


def test_verdicts_name_the_missing_object_and_bad_images_are_clear_errors(views, tmp_path):
    check = PresenceCheck(SPEC.net(), SPEC, 0.5)
    image = views["images"][0]
    scores = presence_scores(check.net, SPEC, image[None])[0]
    names = list(SPEC.objects)
    low = names[int(np.argmin(scores))]
    v = check(f"pick up the {low}", {CAMERA: image})
    assert scores.min() < 0.5  # an untrained net finds nothing, so the least-found object is refused
    assert not v.ok and v.kind == "absent_object" and low in v.reason
    unknown = check("touch the banana", {CAMERA: image})
    assert not unknown.ok and unknown.kind == "unknown_object"
    assert check.mentions("stack the red block on the Blue  Ball") == ["red block", "blue ball"]
    with pytest.raises(ValueError, match="uint8"):
        check("touch the red block", {CAMERA: image.astype(np.float32)})
    with pytest.raises(ValueError, match=r"images\['scene'\]"):
        check("touch the red block", {"wrist": image})
    check.save(tmp_path)
    again = PresenceCheck.load(tmp_path)
    assert again is not None and again.threshold == 0.5 and again.spec == SPEC
    np.testing.assert_allclose(presence_scores(again.net, SPEC, image[None])[0], scores, rtol=1e-6)
    assert PresenceCheck.load(tmp_path / "nothing") is None
    (tmp_path / "bad").mkdir()
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "bad" / FILE), metadata={"format": "other"})
    with pytest.raises(ValueError, match="not a valid presence check"):
        PresenceCheck.load(tmp_path / "bad")


def test_the_verdict_is_judged_on_the_first_frame_and_kept_until_reset(views):
    """Mid-task the object is in the hand or in a bowl: the first frame's verdict must stand."""
    net = SPEC.net()
    first, later = views["images"][1], np.zeros_like(views["images"][1])
    names = list(SPEC.objects)
    a, b = (presence_scores(net, SPEC, im[None])[0] for im in (first, later))
    j = int(np.argmax(np.abs(a - b)))  # the object whose score the two frames disagree on most
    assert a[j] != b[j]
    threshold = float((a[j] + b[j]) / 2)
    text = f"touch the {names[j]}"
    latch = FirstFrameVerdict(GroundingCheck(scene=PresenceCheck(net, SPEC, threshold)))
    first_verdict = latch(text, {CAMERA: first})
    assert first_verdict.ok == (a[j] >= threshold)
    assert latch(text, {CAMERA: later}) == first_verdict  # kept: judged on the instruction's first frame
    assert latch(f"poke the {names[j]}", {CAMERA: later}).ok == (b[j] >= threshold)  # a new instruction
    latch.reset()
    assert latch(text, {CAMERA: later}).ok == (b[j] >= threshold)  # a new episode judges again
    assert latch(text, {CAMERA: later}).ok != first_verdict.ok


def test_the_controller_holds_on_an_absent_object_and_judges_again_after_reset(views):
    from vla.envs.tabletop.embodiment import make_embodiment
    from vla.runtime.recovery import make_safe_controller
    from vla.types import ActionChunk

    class Moving:
        def __init__(self, embodiment):
            self.embodiment, self.calls = embodiment, 0

        def predict(self, obs):
            self.calls += 1
            return ActionChunk(actions=np.full((obs.state.shape[0], 4, 7), 0.02, np.float32))

    net = SPEC.net()
    shown, hidden = views["images"][2], np.zeros_like(views["images"][2])
    a, b = (presence_scores(net, SPEC, im[None])[0] for im in (shown, hidden))
    j = int(np.argmax(a - b))  # the object the scene frame shows more than the black one
    check = GroundingCheck(scene=PresenceCheck(net, SPEC, float((a[j] + b[j]) / 2)))
    emb = make_embodiment((96, 96))
    policy = Moving(emb)
    ctl = make_safe_controller(policy, execute_steps=4, instruction_check=check)
    text = f"touch the {list(SPEC.objects)[j]}"
    state = np.zeros(emb.state_dim, np.float32)
    for _ in range(2):
        cmd = ctl.act({"images": {"scene": hidden, "wrist": hidden}, "state": state, "instruction": text})
        assert np.allclose(cmd[:6], 0.0)
    assert policy.calls == 0 and ctl.refusal is not None and ctl.refusal.kind == "absent_object"
    assert ctl.safety.stats["ungroundable_instruction"] == 2
    ctl.act({"images": {"scene": shown, "wrist": shown}, "state": state, "instruction": text})
    assert policy.calls == 0  # same instruction, same episode: still its first frame's verdict
    ctl.reset()
    moved = ctl.act({"images": {"scene": shown, "wrist": shown}, "state": state, "instruction": text})
    assert policy.calls == 1 and ctl.refusal is None and np.abs(moved[:3]).max() > 0


def test_the_scene_camera_model_matches_mujocos_and_pixels_land_back_on_the_plane():
    from vla.envs.tabletop.detector_grounding import scene_camera
    from vla.envs.tabletop.env import TabletopEnv

    env = TabletopEnv("touch", image_size=(96, 96))
    try:
        env.reset(seed=3)
        m, d = env.model, env.data
        cid = m.camera("scene").id
        cam = scene_camera((96, 96))
        np.testing.assert_allclose(cam.pos, d.cam_xpos[cid], atol=1e-6)
        rot = d.cam_xmat[cid].reshape(3, 3)
        np.testing.assert_allclose(
            np.array([cam.xaxis, cam.yaxis]), rot[:, :2].T, atol=1e-5
        )  # the MJCF holds 6 digits
        assert cam.fovy_deg == float(m.cam_fovy[cid])
        # A point on the plane z = 0.02, projected into the image with MuJoCo's pose, comes back.
        point = np.array([0.55, -0.12, 0.02])
        c = rot.T @ (point - d.cam_xpos[cid])  # camera frame: x right, y up, looking along -z
        f = 48.0 / np.tan(np.deg2rad(cam.fovy_deg) / 2)
        u, v = 48.0 + f * c[0] / -c[2], 48.0 - f * c[1] / -c[2]
        np.testing.assert_allclose(cam.on_plane(u, v, 0.02), point, atol=1e-5)  # 0.01 mm
    finally:
        env.close()


def test_refining_moves_target_and_place_by_what_the_net_sees(views):
    from vla.envs.tabletop.detector_grounding import refine_scene

    check = PresenceCheck(SPEC.net(), SPEC, 1e-6)  # every peak counts as found
    image = views["images"][0]
    est = np.array([0.5, 0.0, 0.02, 0.5, 0.1, 0.12, 1.0, 0.0], np.float32)
    one = refine_scene(est, "touch the red block", image, check)
    moved = one[0:2] - est[0:2]
    assert np.abs(moved).sum() > 0 and one[2] == est[2] and np.all(one[5:] == est[5:])
    np.testing.assert_allclose(one[3:5] - est[3:5], moved, atol=1e-6)  # the place follows the target
    held = refine_scene(est, "put the red block in the bowl", image, check)
    np.testing.assert_array_equal(held[3:6], est[3:6])  # a container's place stays the policy's
    two = refine_scene(est, "stack the red block on the blue ball", image, check)
    np.testing.assert_allclose(two[0:2], one[0:2], atol=1e-6)
    assert not np.allclose(two[3:5], one[3:5])  # the place is where the second object is seen
    np.testing.assert_array_equal(refine_scene(est, "touch the banana", image, check), est)


def test_detector_grounding_is_on_by_default_only_where_it_can_refine(tmp_path) -> None:
    from types import SimpleNamespace

    from vla.models.config import PolicyConfig
    from vla.rollout.policy_actor import detector_grounding_default

    grounded = SimpleNamespace(config=PolicyConfig(grounding_loss=1.0))
    label_free = SimpleNamespace(config=PolicyConfig())
    ckpt = str(tmp_path)
    assert not detector_grounding_default(None, ckpt, "tabletop", grounded)  # no presence file yet
    (tmp_path / FILE).write_bytes(b"")
    assert detector_grounding_default(None, ckpt, "tabletop", grounded)
    assert not detector_grounding_default(None, ckpt, "tabletop", label_free)  # no estimate to refine
    assert not detector_grounding_default(None, ckpt, "metaworld", grounded)  # the suite cannot refine
    assert not detector_grounding_default(False, ckpt, "tabletop", grounded)
    assert detector_grounding_default(True, ckpt, "metaworld", label_free)  # as asked; the factory judges
