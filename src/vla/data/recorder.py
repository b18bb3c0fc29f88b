"""Records demonstrations step by step: `start(instruction, meta)` -> `add(step)` -> `end(success)`.

The episode in progress lives in memory; `end` writes it to the file in one atomic append (see
`vla.data.journal`). A crash or kill -9 loses at most the episode in progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla.data.episode import Episode, Step
from vla.data.writer import DatasetWriter
from vla.spaces import Embodiment


class Recorder:
    """Turns a stream of steps into episodes in a dataset file.

    Args:
        path: the .h5 dataset (created if missing, appended to otherwise).
        embodiment: the robot, stored in the file and checked against later appends.
        suite: the suite name, "" if none.
        env_args: how the envs were made, JSON-serializable.
        keep_failed: whether `end(success=False)` still writes the episode.
        compression: image compression, "gzip" (level 1, default), "lzf" or "none".
    """

    def __init__(
        self,
        path: str | Path,
        *,
        embodiment: Embodiment | None = None,
        suite: str = "",
        env_args: dict[str, Any] | None = None,
        keep_failed: bool = False,
        compression: str = "gzip",
    ) -> None:
        self.writer = DatasetWriter(
            path, embodiment=embodiment, suite=suite, env_args=env_args, compression=compression
        )
        self.keep_failed = keep_failed
        self._steps: list[Step] | None = None
        self._instruction = ""
        self._meta: dict[str, Any] = {}

    @property
    def recording(self) -> bool:
        return self._steps is not None

    def start(self, instruction: str, meta: dict[str, Any] | None = None) -> None:
        """Begins an episode; `meta` holds extras such as family, split, seed."""
        if self._steps is not None:
            raise RuntimeError("start() called while an episode is being recorded; call end() or discard()")
        if not isinstance(instruction, str) or not instruction:
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        self._steps = []
        self._instruction = instruction
        self._meta = dict(meta or {})

    def add(self, step: Step) -> None:
        """Appends one step to the episode in progress."""
        if self._steps is None:
            raise RuntimeError("add() called before start()")
        if self._steps:
            first = self._steps[0]
            if step.images.keys() != first.images.keys():
                raise ValueError(f"step has cameras {sorted(step.images)}, expected {sorted(first.images)}")
            if step.state.shape != first.state.shape or step.action.shape != first.action.shape:
                raise ValueError(
                    f"step has state {step.state.shape} / action {step.action.shape}, "
                    f"expected {first.state.shape} / {first.action.shape}"
                )
        self._steps.append(step)

    def end(self, success: bool) -> int | None:
        """Finishes the episode and writes it (unless it failed and failures are not kept).

        Returns:
            The episode's index in the dataset, or None if it was not written.
        """
        if self._steps is None:
            raise RuntimeError("end() called before start()")
        steps, self._steps = self._steps, None
        if not steps or (not success and not self.keep_failed):
            return None
        episode = Episode.from_steps(steps, instruction=self._instruction, success=success, meta=self._meta)
        return self.writer.append(episode)

    def discard(self) -> None:
        """Drops the episode in progress."""
        self._steps = None
