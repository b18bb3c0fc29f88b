"""The checks before the first action of an instruction: its words, its skill, then the scene it names.

`GroundingCheck` joins a checkpoint's optional checks: the instruction check on text
(`vla.models.instruction_check`: empty, garbled, unfamiliar), the skill check (`vla.models.skill_check`,
opt-in: a verb no skill covers) and the presence check on the scene camera's frame
(`vla.models.presence`: a named object that is not there). Every route that acts on an
instruction (`vla eval`'s controllers, `vla serve`, the ROS 2 node) loads it with `GroundingCheck.load`
and judges through a `FirstFrameVerdict`, which judges an instruction once, on the frame it first
arrived with, and keeps that verdict until the instruction changes or the episode resets: mid-task the
object may be in the hand or inside a bowl, which must not turn into a refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla.models.instruction_check import InstructionCheck, Verdict
from vla.models.presence import PresenceCheck
from vla.models.skill_check import SkillCheck


class GroundingCheck:
    """Words first (cheap, cached per string), then the skill (cached), then the scene; any part may be absent."""

    def __init__(
        self,
        words: InstructionCheck | None = None,
        scene: PresenceCheck | None = None,
        skills: SkillCheck | None = None,
    ) -> None:
        if words is None and scene is None and skills is None:
            raise ValueError(
                "a grounding check needs at least one of an instruction, skill or presence check"
            )
        self.words = words
        self.scene = scene
        self.skills = skills

    def judge(self, instruction: str, images: dict[str, np.ndarray] | None) -> Verdict:
        """The verdict on `instruction` with the scene `images` show (None: the words only)."""
        if self.words is not None:
            verdict = self.words(instruction)
            if not verdict.ok:
                return verdict
        if self.skills is not None:
            verdict = self.skills(instruction)
            if not verdict.ok:
                return verdict
        if self.scene is None or images is None:
            return Verdict(True)
        return self.scene(instruction, images)

    def warm(self) -> None:
        """Loads what loads lazily (the skill check's language model), before the first instruction."""
        if self.skills is not None:
            self.skills.warm()

    @classmethod
    def load(cls, directory: str | Path) -> GroundingCheck | None:
        """The checkpoint's checks, or None when it has none of their files."""
        words, scene, skills = (
            InstructionCheck.load(directory),
            PresenceCheck.load(directory),
            SkillCheck.load(directory),
        )
        if words is None and scene is None and skills is None:
            return None
        return cls(words, scene, skills)

    @classmethod
    def of(cls, check: Any) -> GroundingCheck:
        """`check` as a GroundingCheck (an `InstructionCheck` alone becomes its words part)."""
        if isinstance(check, GroundingCheck):
            return check
        if isinstance(check, InstructionCheck):
            return cls(check)
        if isinstance(check, PresenceCheck):
            return cls(scene=check)
        raise TypeError(
            f"expected a GroundingCheck, InstructionCheck or PresenceCheck, got {type(check).__name__}"
        )


class FirstFrameVerdict:
    """One episode's (or one client's) verdict: judged on an instruction's first frame, then kept."""

    def __init__(self, check: GroundingCheck) -> None:
        self.check = check
        self._last: tuple[str, Verdict] | None = None

    def __call__(self, instruction: str, images: dict[str, np.ndarray] | None) -> Verdict:
        if self._last is None or self._last[0] != instruction:
            self._last = (instruction, self.check.judge(instruction, images))
        return self._last[1]

    def reset(self) -> None:
        """A new episode: the next instruction is judged on its own first frame again."""
        self._last = None
