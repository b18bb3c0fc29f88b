"""Entry point of the `vla` command. Each area adds its commands in its own module's `register`."""

from __future__ import annotations

import logging
import os

import typer

# Headless rendering and quiet offline model loading unless the user chose otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vla.cli import data, env, models, runtime, train

app = typer.Typer(help="vla: Vision-Language-Action policies on a CPU.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks; each prints a table and ends with one JSON line.", no_args_is_help=True)
app.add_typer(bench, name="bench")

for area in (env, data, models, train, runtime):
    area.register(app, bench)


def main() -> None:
    # Library modules log progress on the "vla" logger; the command line shows it on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("vla").setLevel(logging.INFO)
    # Every clipped command would be a line; holds (WARNING) still show, counts are in the stats.
    logging.getLogger("vla.runtime.safety").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()
