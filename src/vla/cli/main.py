"""Entry point of the `vla` command. Each area adds its commands in its own module's `register`."""

from __future__ import annotations

import logging
import os
import sys

import typer

# Headless rendering and quiet offline model loading unless the user chose otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# OpenMP wait policy, read once when torch loads (FACTS.md, "Threads on a shared 2-core machine"). A
# single busy process with 2 threads is fastest when its worker threads spin between parallel regions
# (measured with `vla bench model`: forward 1.6 ms median vs 5.4 ms PASSIVE, training 543 vs 419
# samples/s), but spinning threads next to another busy process slow both by up to 50x. So the
# commands that own the machine (one training process, the demo, the model benchmark) spin briefly:
# ACTIVE with a finite GOMP_SPINCOUNT (libgomp's default 300k spins, ~1 ms) so idle threads still go to
# sleep, e.g. while the demo's evaluation workers run (plain ACTIVE spins for ever and steals a core).
# Everything that runs beside other work (servers, engines, worker pools, DDP ranks) waits passively.
# A user's own settings win.
_ALONE = (("bench", "model"), ("train",), ("models",), ("demo",))
_args = tuple(sys.argv[1:3])
_alone = any(_args[: len(cmd)] == cmd for cmd in _ALONE) and "LOCAL_RANK" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE" if _alone else "PASSIVE")
if _alone:
    os.environ.setdefault("GOMP_SPINCOUNT", "300000")

from vla.cli import data, env, models, ros2, runtime, train  # noqa: E402 (after the environment is set)

app = typer.Typer(help="vla: Vision-Language-Action policies on a CPU.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks; each prints a table and ends with one JSON line.", no_args_is_help=True)
app.add_typer(bench, name="bench")

for area in (env, data, models, train, runtime, ros2):
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
