"""`vla` commands of the data area."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
