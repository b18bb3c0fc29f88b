"""Instruction templates, parsing and train-split paraphrasing."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import language, tasks


def test_env_every_family_has_enough_templates() -> None:
    for family in tasks.FAMILIES:
        train = language.templates(family, held_out=False)
        held = language.templates(family, held_out=True)
        assert len(train) >= 5
        assert len(held) >= 3
        assert not set(train) & set(held)


@pytest.mark.parametrize("family", tasks.FAMILIES)
def test_env_parse_recovers_every_template(family) -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        spec = tasks.sample_episode(family, "train", rng)
        for held_out in (False, True):
            for t in language.templates(family, held_out=held_out):
                text = language.fill(t, spec.slots)
                assert language.parse(text) == (family, spec.slots), text


def test_env_paraphrase_keeps_meaning_and_uses_train_templates() -> None:
    rng = np.random.default_rng(1)
    text = "give the red block a push to the left"  # a held-out template
    seen = set()
    for _ in range(60):
        out = language.paraphrase(text, rng)
        assert language.parse(out) == ("push", {"obj": "red block", "direction": "left"})
        seen.add(out)
    expected = {
        language.fill(t, {"obj": "red block", "direction": "left"}) for t in language.TRAIN_TEMPLATES["push"]
    }
    assert seen == expected


def test_env_paraphrase_rejects_foreign_text() -> None:
    with pytest.raises(ValueError, match="not a tabletop instruction"):
        language.paraphrase("make me a sandwich", np.random.default_rng(0))
    with pytest.raises(ValueError, match="not a tabletop instruction"):
        language.paraphrase("pick up the pink block", np.random.default_rng(0))


def test_env_show_resolves_families_typos_and_instructions() -> None:
    from vla.envs import get_suite
    from vla.envs.tabletop.show import resolve_task

    suite = get_suite("tabletop")
    assert resolve_task(suite, "stack", split="train", seed=3) == ("stack", 3, "")
    family, _, note = resolve_task(suite, "move nxt to", split="train", seed=0)
    assert family == "move_next_to"
    assert note
    family, seed, note = resolve_task(suite, "push the red block to the left", split="train", seed=0)
    spec = tasks.sample_episode(family, "train", np.random.default_rng(seed))
    assert (family, note) == ("push", "")
    assert spec.slots == {"obj": "red block", "direction": "left"}
