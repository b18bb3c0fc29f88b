"""The built-in MuJoCo suite `tabletop`: a Franka Panda, coloured objects and containers, six families.

Importing this package registers the suite (`vla.envs.get_suite("tabletop")`); the heavy modules
(MuJoCo, rendering) load only when the suite is first built.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# MuJoCo picks its GL backend when it is first imported; without a display only EGL (or OSMesa) can
# render, and the default (GLFW) fails deep inside the renderer. An explicit user choice wins.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from vla.envs.base import register_suite
from vla.envs.tabletop.embodiment import make_embodiment

if TYPE_CHECKING:
    from vla.envs.tabletop.suite import TabletopSuite


def _factory() -> TabletopSuite:
    from vla.envs.tabletop.suite import TabletopSuite

    return TabletopSuite()


register_suite("tabletop", _factory)

__all__ = ["make_embodiment"]
