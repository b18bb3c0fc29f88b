"""Where a checkpoint's files are: an ordinary checkpoint directory, or a joint one (`vla.models.joint`)
holding one per robot beside `joint.json`. Plain files only (no torch), so commands can check a path
before they load anything."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["JOINT_FILE", "joint_members", "member_directory", "not_a_checkpoint"]

JOINT_FILE = "joint.json"


def joint_members(directory: str | Path) -> list[str] | None:
    """The embodiments of a joint checkpoint directory, or None when it is not one."""
    path = Path(directory) / JOINT_FILE
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())["embodiments"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a joint checkpoint index ({e})") from e
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: 'embodiments' must be a list of names, got {names!r}")
    return names


def member_directory(directory: str | Path, embodiment: str | None) -> Path:
    """The checkpoint directory of robot `embodiment` inside a joint checkpoint, or `directory`
    itself when it is an ordinary checkpoint (and `embodiment` is None or unchecked here).

    Raises:
        ValueError: a joint checkpoint without `embodiment`, or without a head for it.
    """
    d = Path(directory)
    names = joint_members(d)
    if names is None:
        return d
    if embodiment is None:
        raise ValueError(
            f"checkpoint '{d}' is a joint checkpoint of {names}; name the robot "
            f"(Policy.from_pretrained(dir, embodiment=...)) or use one of "
            f"{[str(d / n) for n in names]}"
        )
    if embodiment not in names:
        raise ValueError(f"joint checkpoint '{d}' has no head for embodiment '{embodiment}'; it has {names}")
    return d / embodiment


def not_a_checkpoint(directory: str | Path) -> str:
    """Why `directory` (which has no config.json) is not a checkpoint, pointing into a joint one."""
    try:
        names = joint_members(directory)
    except ValueError as e:
        return str(e)
    if names:
        return (
            f"{directory} is a joint checkpoint of {names}: pass one robot's part, "
            f"{' or '.join(str(Path(directory) / n) for n in names)}"
        )
    return f"{directory} is not a checkpoint directory (no config.json)"
