"""Turning a loose `--task` text ("stack", "put the red block in the bowl") into (family, seed)."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from vla.envs.tabletop import language, tasks
from vla.registry import lookup

SEARCH_SEEDS = 20_000


def resolve_task(
    suite: Any, text: str, *, split: str, seed: int, robot: str = "panda"
) -> tuple[str, int, str]:
    """Returns (family, seed, note) for a family name or an instruction.

    `robot="humanoid"` resolves among the humanoid's families and instructions
    (`vla.envs.tabletop.humanoid.show`).

    A family name is used as is. A tabletop instruction selects its family and the first seed >= `seed`
    whose episode asks for the same thing (same objects, container, direction). Anything else gets the
    family whose templates read most alike, with a note saying so.

    Raises:
        KeyError: if `text` is empty or resembles nothing.
    """
    if robot != "panda":
        from vla.envs.tabletop.humanoid import show as humanoid_show

        lookup({"humanoid": 0}, robot, kind="tabletop robot")
        return humanoid_show.resolve_task(text, split=split, seed=seed)
    key = text.strip().lower().replace(" ", "_")
    if key in suite.families:
        return key, seed, ""
    if getattr(suite, "name", "") != "tabletop":
        close = difflib.get_close_matches(key, list(suite.families), n=1)
        if not close:
            raise KeyError(f"unknown task '{text}'; families: {', '.join(suite.families)}")
        return close[0], seed, f"'{text}' taken as family '{close[0]}'"
    close = difflib.get_close_matches(key, list(tasks.FAMILIES), n=1, cutoff=0.75)
    if close:
        return close[0], seed, f"'{text}' taken as family '{close[0]}'"
    try:
        family, slots = language.parse(text)
    except ValueError:
        return (
            _closest_family(text),
            seed,
            f"'{text}' is not an exact instruction; showing the closest family",
        )
    for s in range(seed, seed + SEARCH_SEEDS):
        spec = tasks.sample_episode(family, split, np.random.default_rng(s))
        if spec.slots == slots:
            return family, s, ""
    return (
        family,
        seed,
        f"no {split} episode among {SEARCH_SEEDS} seeds asks exactly '{text}'; showing {family}",
    )


def _closest_family(text: str) -> str:
    words = text.strip().lower()
    if not words:
        raise KeyError("empty --task; give a family name or an instruction")
    scored = []
    for family in tasks.FAMILIES:
        temps = language.TRAIN_TEMPLATES[family] + language.HELD_OUT_TEMPLATES[family]
        best = max(difflib.SequenceMatcher(None, words, t.split("{")[0]).ratio() for t in temps)
        scored.append((best, family))
    return max(scored)[1]
