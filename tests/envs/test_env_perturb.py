"""Sensor perturbations (`vla eval --perturb`): each changes the observation as documented, from the
episode seed; the actor sees the perturbed copy while the simulation (and the labeller) do not."""

from __future__ import annotations

import numpy as np
import pytest

from vla.config import EvalConfig
from vla.rollout import EpisodeJob
from vla.rollout.loop import run_episode
from vla.rollout.perturb import Perturbation, Perturber, gaussian_blur


def _obs(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": {c: rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for c in ("scene", "wrist")},
        "state": np.linspace(-1, 1, 22).astype(np.float32),
        "instruction": "touch the red block",
    }


def test_noise_has_the_asked_std_and_leaves_the_input_alone() -> None:
    obs = _obs()
    flat = {**obs, "images": {c: np.full((64, 64, 3), 128, np.uint8) for c in obs["images"]}}
    out = Perturber(["noise=10"], seed=1)(flat)
    assert abs(float(out["images"]["scene"].astype(np.float32).std()) - 10.0) < 0.5
    assert np.all(flat["images"]["scene"] == 128), "the env's observation is not changed in place"
    np.testing.assert_array_equal(out["state"], flat["state"])


def test_blur_smooths_and_keeps_a_flat_image_flat() -> None:
    img = np.zeros((21, 21, 3), np.uint8)
    img[10, 10] = 255
    out = gaussian_blur(img, 1.5)
    assert out[10, 10, 0] < 255 and out[10, 12, 0] > 0 and out.dtype == np.uint8
    assert abs(int(out[..., 0].sum()) - 255) < 10  # the kernel sums to one
    flat = np.full((8, 8, 3), 77, np.uint8)
    np.testing.assert_array_equal(gaussian_blur(flat, 2.0), flat)


def test_dropout_of_a_camera_blacks_only_that_camera() -> None:
    out = Perturber(["dropout=wrist"], seed=0)(_obs())
    assert not out["images"]["wrist"].any() and out["images"]["scene"].any()
    flaky = Perturber(["dropout=0.5"], seed=0)
    dead = [not flaky(_obs())["images"]["scene"].any() for _ in range(400)]
    assert 0.4 < np.mean(dead) < 0.6


def test_occluder_is_one_grey_square_fixed_for_the_episode() -> None:
    p = Perturber(["occluder=0.25"], seed=3)
    a, b = p(_obs(0)), p(_obs(1))
    grey = np.all(a["images"]["scene"] == 128, axis=-1)
    assert grey.sum() >= 36  # 6 x 6 of 24 x 24 (plus any pixel already grey)
    np.testing.assert_array_equal(grey & np.all(b["images"]["scene"] == 128, axis=-1), grey)


def test_state_noise_and_reproducibility() -> None:
    a = Perturber(["state_noise=0.01", "noise=3"], seed=5)(_obs())
    b = Perturber(["state_noise=0.01", "noise=3"], seed=5)(_obs())
    np.testing.assert_array_equal(a["state"], b["state"])
    np.testing.assert_array_equal(a["images"]["scene"], b["images"]["scene"])
    assert 0.003 < float(np.std(a["state"] - _obs()["state"])) < 0.03


@pytest.mark.parametrize("bad", ["noise", "fog=1", "noise=-1", "blur=x", "occluder=2", "dropout="])
def test_bad_specs_name_the_problem(bad: str) -> None:
    with pytest.raises(ValueError, match="perturbation"):
        Perturbation.parse(bad)
    with pytest.raises(ValueError, match="perturbation"):
        EvalConfig(checkpoint="x", perturb=(bad,))


class _Recorder:
    """An actor that keeps what it was shown and holds still."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def reset(self) -> None:
        self.seen.clear()

    def act(self, obs: dict) -> np.ndarray:
        self.seen.append(obs)
        return np.zeros(7, np.float32)


def test_the_actor_sees_the_perturbed_view_and_the_labeller_the_true_one(make_env) -> None:
    env = make_env("touch")
    actor, labeller = _Recorder(), _Recorder()
    job = EpisodeJob(
        "tabletop", "touch", 4, image_size=(32, 32), perturb=("dropout=wrist",), record_steps=True
    )
    env.max_steps, steps = 3, env.max_steps
    try:
        result = run_episode(env, actor, job, labeller=labeller)
    finally:
        env.max_steps = steps
    assert all(not o["images"]["wrist"].any() for o in actor.seen)
    assert all(o["images"]["wrist"].any() for o in labeller.seen)
    assert result.steps_data is not None and not result.steps_data["images"]["wrist"].any()
