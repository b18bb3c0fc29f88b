"""The instruction check refuses empty, garbled and unfamiliar instructions and passes every split the
policy should act on; it round-trips through its checkpoint file; the controller holds on a refusal
without calling the policy."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop.tasks import FAMILIES, sample_episode
from vla.models.instruction_check import FILE, InstructionCheck


def _instructions(split: str, seeds: range) -> list[str]:
    return [sample_episode(f, split, np.random.default_rng(s)).instruction for f in FAMILIES for s in seeds]


@pytest.fixture(scope="module")
def check() -> InstructionCheck:
    return InstructionCheck.fit(_instructions("train", range(40)))


@pytest.mark.parametrize("split", ["train", "unseen", "paraphrase"])
def test_instructions_of_the_acting_splits_pass(check, split):
    # New seeds: unseen compositions and held-out paraphrases are not refused for being new.
    refused = [t for t in _instructions(split, range(100000, 100020)) if not check(t).ok]
    assert refused == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (" ", "empty"),
        ("1234 5678", "empty"),
        ("xqv blorp zut", "garbled"),
        ("asdf qwer", "garbled"),
        ("touch the laptop", "unfamiliar"),
        ("pick up the umbrella", "unfamiliar"),
    ],
)
def test_ungroundable_text_is_refused_with_its_reason(check, text, kind):
    v = check(text)
    assert not v.ok and v.kind == kind
    assert repr(text) in v.reason


def test_the_check_round_trips_through_its_file(check, tmp_path):
    check.save(tmp_path)
    loaded = InstructionCheck.load(tmp_path)
    assert loaded is not None and loaded.instructions == check.instructions
    for text in ("touch the red block", "touch the laptop", "xqv blorp"):
        assert loaded(text) == check(text)
    assert InstructionCheck.load(tmp_path / "missing") is None


def test_a_broken_check_file_is_a_clear_error(tmp_path):
    from safetensors.numpy import save_file

    save_file({"bank": np.zeros((2, 384), np.float32)}, str(tmp_path / FILE), metadata={"words": "[]"})
    with pytest.raises(ValueError, match="not a valid instruction check"):
        InstructionCheck.load(tmp_path)


def test_fitting_on_no_instruction_is_refused():
    with pytest.raises(ValueError, match="no non-empty instruction"):
        InstructionCheck.fit(["", "  "])


class _CountingPolicy:
    """A policy-like object that moves every step, so a hold is visible."""

    def __init__(self, embodiment):
        self.embodiment = embodiment
        self.calls = 0

    def predict(self, obs):
        from vla.types import ActionChunk

        self.calls += 1
        return ActionChunk(actions=np.full((obs.state.shape[0], 4, 7), 0.02, np.float32))


def test_the_controller_holds_on_a_refused_instruction_and_never_calls_the_policy(check):
    from vla.envs.tabletop.embodiment import make_embodiment
    from vla.runtime.recovery import make_safe_controller

    emb = make_embodiment((32, 32))
    policy = _CountingPolicy(emb)
    ctl = make_safe_controller(policy, execute_steps=4, instruction_check=check)
    img = np.zeros((32, 32, 3), np.uint8)
    obs = {"images": {"scene": img, "wrist": img}, "state": np.zeros(emb.state_dim, np.float32)}
    for _ in range(3):
        cmd = ctl.act({**obs, "instruction": "touch the laptop"})
        assert np.allclose(cmd[:6], 0.0)  # ee deltas held at zero
    assert policy.calls == 0
    assert ctl.safety.stats["ungroundable_instruction"] == 3
    assert ctl.refusal is not None and ctl.refusal.kind == "unfamiliar"
    moved = ctl.act({**obs, "instruction": "touch the red block"})
    assert policy.calls == 1 and ctl.refusal is None and np.abs(moved[:3]).max() > 0
