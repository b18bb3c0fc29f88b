"""The built-in MuJoCo suite `tabletop`: a Franka Panda, coloured objects and containers, six families.

Importing this package registers the suite (`vla.envs.get_suite("tabletop")`) and changes nothing
else; the heavy modules (MuJoCo, rendering) load only when the suite is first built, which is also
when headless rendering is chosen (`use_headless_gl`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vla.envs.base import register_suite
from vla.envs.tabletop.embodiment import make_embodiment

if TYPE_CHECKING:
    from vla.envs.tabletop.suite import TabletopSuite


def use_headless_gl() -> None:
    """Chooses EGL rendering unless the user chose a GL backend (MUJOCO_GL). MuJoCo picks its backend
    when it is first imported; without a display only EGL (or OSMesa) can render, and the default
    (GLFW) fails deep inside the renderer. No effect once MuJoCo is imported."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def _factory() -> TabletopSuite:
    use_headless_gl()  # before the suite's modules import MuJoCo
    from vla.envs.tabletop.suite import TabletopSuite

    return TabletopSuite()


register_suite("tabletop", _factory)

__all__ = ["make_embodiment", "use_headless_gl"]
