"""Tabletop simulation speed: env.step/s with both cameras rendered, one process and one per core.

Same measurement as `vla bench sim`. Run it alone on the machine (other jobs share the 2 cores):

    MUJOCO_GL=egl python benchmarks/bench_sim.py --seconds 20

Prints a table and, last, one JSON line with "steps_per_s_one_process" and "steps_per_s_all_cores".
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import typer

from vla.cli.env import bench_sim

if __name__ == "__main__":
    typer.run(bench_sim)
