"""Named policy families, one small plain-Python file each, looked up by name with a did-you-mean.

get_preset("act") -> PolicyConfig
list_presets()    -> ["act", "default", ...]
"""

from __future__ import annotations

from collections.abc import Callable

from vla.models.config import PolicyConfig
from vla.presets import act, default, diffusion, grounded, metaworld, octo, openvla, pi0, rt1
from vla.registry import lookup

_PRESETS: dict[str, Callable[[], PolicyConfig]] = {
    "default": default.config,
    "grounded": grounded.config,
    "metaworld": metaworld.config,
    "rt1": rt1.config,
    "openvla": openvla.config,
    "act": act.config,
    "diffusion": diffusion.config,
    "pi0": pi0.config,
    "octo": octo.config,
}


def list_presets() -> list[str]:
    """Names of every preset, sorted."""
    return sorted(_PRESETS)


def get_preset(name: str) -> PolicyConfig:
    """Returns the preset's config; a typo raises a KeyError with the closest name."""
    return lookup(_PRESETS, name, kind="preset")()


def describe(name: str) -> str:
    """First line of the preset module's docstring (for `vla models list`)."""
    fn = lookup(_PRESETS, name, kind="preset")
    import sys

    doc = sys.modules[fn.__module__].__doc__ or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first.split(": ", 1)[1] if first.startswith(f"{name}: ") else first
