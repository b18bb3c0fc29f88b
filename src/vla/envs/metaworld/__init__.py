"""The `metaworld` suite: Meta-World v3's 50 tasks (MT1 / MT10 / MT50) from pixels, as a vla plug-in.

Importing this package registers the suite and nothing else; Meta-World and MuJoCo load when the suite
is first built. Meta-World itself is a dependency of vla (`metaworld==3.1.1`, which pins mujoco 3.3.0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vla.envs.base import register_suite

if TYPE_CHECKING:
    from vla.envs.metaworld.suite import MetaWorldSuite


def _factory() -> MetaWorldSuite:
    from vla.envs.tabletop import use_headless_gl

    use_headless_gl()  # before Meta-World imports MuJoCo
    from vla.envs.metaworld.suite import MetaWorldSuite

    return MetaWorldSuite()


register_suite("metaworld", _factory)
