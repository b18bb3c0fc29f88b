"""Turning a loose `--task` text ("lift_box", "touch the red ball") into a humanoid (family, seed)."""

from __future__ import annotations

import difflib

import numpy as np

from vla.envs.tabletop.humanoid import language, tasks

SEARCH_SEEDS = 5_000


def resolve_task(text: str, *, split: str, seed: int) -> tuple[str, int, str]:
    """Returns (family, seed, note) for a humanoid family name or instruction.

    A family name (or a near miss, with a note) is used as is. An instruction of a humanoid template
    selects its family and the first seed >= `seed` whose episode asks for the same thing (object,
    colour and hand).

    Raises:
        KeyError: `text` is neither a family nor a humanoid instruction.
    """
    key = text.strip().lower().replace(" ", "_")
    if key in tasks.FAMILIES:
        return key, seed, ""
    close = difflib.get_close_matches(key, list(tasks.FAMILIES), n=1, cutoff=0.75)
    if close:
        return close[0], seed, f"'{text}' taken as family '{close[0]}'"
    try:
        family, slots = language.parse(text)
    except ValueError:
        raise KeyError(
            f"unknown humanoid task '{text}'; families: {', '.join(tasks.FAMILIES)}, or an instruction "
            f"such as '{language.TRAIN_TEMPLATES['pick_up'][0].format(obj='red block')}'"
        ) from None
    for s in range(seed, seed + SEARCH_SEEDS):
        if tasks.sample_episode(family, split, np.random.default_rng(s)).slots == slots:
            return family, s, ""
    return (
        family,
        seed,
        f"no {split} episode among {SEARCH_SEEDS} seeds asks exactly '{text}'; showing {family}",
    )
