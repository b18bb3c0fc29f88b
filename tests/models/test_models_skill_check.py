"""The skill check (SmolLM2, few-shot): unknown verbs score towards "none", skills do not; its file."""

from __future__ import annotations

import json

import pytest

from vla.models.grounding_check import GroundingCheck
from vla.models.skill_check import FILE, SkillCheck

EXAMPLES = [
    ("lift the green cylinder", "pick up"),
    ("open the red block", "none"),
    ("poke the yellow block", "touch"),
    ("pour the blue ball", "none"),
    ("shove the purple block to the left", "push"),
    ("wipe the green ball", "none"),
]


def test_an_unknown_verb_leans_to_none_and_is_refused_with_its_reason():
    check = SkillCheck(EXAMPLES, ["pick up", "touch", "push"], threshold=0.0, threads=2)
    skill, _ = check.margin("pick up the red block")
    unknown, _ = check.margin("juggle the red block")
    assert unknown > skill  # "none" is preferred more for the verb no skill has
    check.threshold = (skill + unknown) / 2
    refused = check("juggle the red block")
    assert not refused.ok and refused.kind == "unknown_skill" and "pick up, touch, push" in refused.reason
    assert check("pick up the red block").ok
    # Judged before the scene in a GroundingCheck; no frame is needed to refuse it.
    assert GroundingCheck(skills=check).judge("juggle the red block", None).kind == "unknown_skill"


def test_the_check_round_trips_and_bad_files_or_data_are_clear_errors(tmp_path):
    check = SkillCheck(EXAMPLES, ["pick up", "touch", "push"], threshold=1.25)
    again = SkillCheck.load(check.save(tmp_path).parent)
    assert again is not None and again.examples == EXAMPLES and again.threshold == 1.25
    assert again.prefix == check.prefix
    assert SkillCheck.load(tmp_path / "none") is None
    (tmp_path / FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a valid skill check"):
        SkillCheck.load(tmp_path)
    with pytest.raises(ValueError, match="families"):
        SkillCheck.fit(["lift it"], [], ["red block"])
    with pytest.raises(ValueError, match="no instruction has a family"):
        SkillCheck.fit(["lift it"], [""], ["red block"])
    with pytest.raises(ValueError, match="names no objects"):
        SkillCheck.fit(["lift it"], ["pick_up"], [])
