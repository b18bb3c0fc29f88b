"""Entry point of the `vla` command. Each area adds its commands in its own module's `register`.

Importing this module changes nothing in the process: the environment the commands need (headless
rendering, offline model loading, the OpenMP wait policy) is set by `main()`, before any command
imports torch or MuJoCo (the area modules import them lazily, inside their commands).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping, Sequence

import typer

from vla.cli import dagger, data, env, models, planning, ros2, runtime, train
from vla.registry import UnknownNameError

app = typer.Typer(help="vla: Vision-Language-Action policies on a CPU.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks; each prints a table and ends with one JSON line.", no_args_is_help=True)
app.add_typer(bench, name="bench")

for area in (env, data, models, train, dagger, runtime, ros2, planning):
    area.register(app, bench)

# Commands that own the machine (one training process, the demo, the model benchmark).
# `dagger` trains in its own process between rollouts; its rollout workers run one thread each, and a
# single thread has no OpenMP team to spin.
_ALONE = (("bench", "model"), ("train",), ("dagger",), ("models",), ("demo",))


def configure_environment(argv: Sequence[str], environ: MutableMapping[str, str] | None = None) -> None:
    """Sets what the command `argv` (without the program name) needs before torch or MuJoCo load.

    Headless rendering (MuJoCo reads MUJOCO_GL at its import; without a display only EGL or OSMesa
    render), offline model loading, and the OpenMP wait policy, which libgomp reads once when torch
    loads (docs/runtime.md, "Threads"): a single busy process with 2 threads is fastest when its
    worker threads spin between parallel regions, but spinning threads next to another busy process
    slow both by up to 50x. So the commands that own the machine spin briefly (ACTIVE with a finite
    GOMP_SPINCOUNT, libgomp's default 300k spins, ~1 ms, so idle threads still go to sleep, e.g. while
    the demo's evaluation workers run; plain ACTIVE spins for ever and steals a core), and everything
    that runs beside other work (servers, engines, worker pools, DDP ranks) waits passively. A user's
    own settings win.

    Args:
        argv: the command line after the program name, e.g. ["train", "data.h5"].
        environ: the environment to update (default: `os.environ`).
    """
    env_vars = os.environ if environ is None else environ
    env_vars.setdefault("MUJOCO_GL", "egl")
    env_vars.setdefault("PYOPENGL_PLATFORM", env_vars["MUJOCO_GL"])
    env_vars.setdefault("HF_HUB_OFFLINE", "1")
    env_vars.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = tuple(argv[:2])
    alone = any(args[: len(cmd)] == cmd for cmd in _ALONE) and "LOCAL_RANK" not in env_vars
    env_vars.setdefault("OMP_WAIT_POLICY", "ACTIVE" if alone else "PASSIVE")
    if alone and env_vars["OMP_WAIT_POLICY"].upper() == "ACTIVE":
        env_vars.setdefault("GOMP_SPINCOUNT", "300000")


def main() -> None:
    configure_environment(sys.argv[1:])
    # Library modules log progress on the "vla" logger; the command line shows it on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("vla").setLevel(logging.INFO)
    # Every clipped command would be a line; holds (WARNING) still show, counts are in the stats.
    logging.getLogger("vla.runtime.safety").setLevel(logging.WARNING)
    try:
        app()
    except UnknownNameError as e:  # a mistyped suite / preset name: the message, not a traceback
        typer.secho(f"error: {e}", fg="red", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
