"""The skill check's file and its input errors (its judgement with the real SmolLM2 is tested in
tests/planning/test_planning_offline.py, which loads the model once for the planner tests)."""

from __future__ import annotations

import json

import pytest

from vla.models.skill_check import FILE, SkillCheck

EXAMPLES = [("lift the green cylinder", "pick up"), ("open the red block", "none")]


def test_the_check_round_trips_and_bad_files_or_data_are_clear_errors(tmp_path):
    check = SkillCheck(EXAMPLES, ["pick up"], threshold=1.25)
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
