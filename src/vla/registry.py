"""Name lookup with a did-you-mean, shared by suites, presets and heads."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

V = TypeVar("V")


class UnknownNameError(KeyError):
    """An unknown suite / preset / head name. A KeyError (callers catch those) whose message prints
    as written: a plain KeyError shows the repr of its message, wrapped in quotes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def lookup(table: Mapping[str, V], name: str, *, kind: str) -> V:
    """Returns `table[name]`, or raises an UnknownNameError (a KeyError) that lists the choices and
    the closest match.

    Args:
        table: the known names.
        name: the name asked for.
        kind: what the names are ("suite", "preset", ...), for the message.
    """
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    if name in table:
        return table[name]
    raise UnknownNameError(
        f"unknown {kind} '{name}'.{did_you_mean(name, table)} Known: {', '.join(sorted(table))}"
    )


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`" Did you mean 'x'?"` for the closest of `choices` to `name`, or "" when none is close.

    Args:
        name: the unknown name.
        choices: the known names.

    Returns:
        the hint, with a leading space, ready to append to an error message.
    """
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
